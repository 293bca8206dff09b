// SPDX-License-Identifier: Apache-2.0
// Bench: acquire of a held network through the Go binding beside the same C call, same run.

// Usage (as root, inside a private network namespace: bench/go-acquire.sh
// does both): vmnet-broker-go-bench -broker PATH
//
// It starts the broker in a temporary directory, holds "shared" on two
// connections, one for each side, and times acquire of the held network
// (one request and its reply) through Conn.Acquire and through
// vmnet_broker_connection_acquire() called in a C loop, with no Go in
// between. The two take turns in slices so a change in the machine's load
// touches both alike. Never fails on a figure; exits 1 only when it
// cannot measure.
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../../libclient/include
#include <stdint.h>
#include <time.h>
#include "vmnet-broker.h"

// The C side: n acquires, each timed, into ns[]. Symbols come from the Go
// binding, which compiles libclient into this program.
static int c_acquire_loop(vmnet_broker_connection_t *c, const char *name,
			  int n, int64_t *ns) {
	for (int i = 0; i < n; i++) {
		struct timespec a, b;
		vmnet_broker_network_t *net = NULL;
		clock_gettime(CLOCK_MONOTONIC, &a);
		vmnet_broker_return_t rc =
			vmnet_broker_connection_acquire(c, name, &net);
		if (rc == VMNET_BROKER_SUCCESS)
			vmnet_broker_network_free(net);
		clock_gettime(CLOCK_MONOTONIC, &b);
		if (rc != VMNET_BROKER_SUCCESS)
			return (int)rc;
		ns[i] = (int64_t)(b.tv_sec - a.tv_sec) * 1000000000 +
			(b.tv_nsec - a.tv_nsec);
	}
	return 0;
}
*/
import "C"

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"syscall"
	"time"
	"unsafe"

	vmnetbroker "github.com/vmnet-broker/vmnet-broker/bindings/go"
)

const (
	warmUp    = 2000
	perSlice  = 2000
	slices    = 10
	goalRatio = 1.1
	network   = "shared"
)

func main() {
	bin := flag.String("broker", "", "the vmnet-broker binary")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "usage: vmnet-broker-go-bench -broker PATH")
		os.Exit(2)
	}
	if err := run(*bin); err != nil {
		fmt.Fprintln(os.Stderr, "vmnet-broker-go-bench:", err)
		os.Exit(1)
	}
}

func run(bin string) error {
	dir, err := os.MkdirTemp("", "vmnet-broker-go-bench.")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "broker.sock")
	if err := os.Mkdir(filepath.Join(dir, "config.d"), 0o755); err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(dir, "broker.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	broker := exec.Command(bin, "--socket", socket, "--config-dir", filepath.Join(dir, "config.d"),
		"--idle-timeout", "600")
	broker.Stdout, broker.Stderr = log, log
	broker.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := broker.Start(); err != nil {
		return err
	}
	defer stop(broker)

	goConn, err := connectWhenUp(socket)
	if err != nil {
		logText, _ := os.ReadFile(filepath.Join(dir, "broker.log"))
		return fmt.Errorf("the broker did not start: %v\n%s", err, logText)
	}
	defer goConn.Close()
	path := append([]byte(socket), 0)
	var cConn *C.vmnet_broker_connection_t
	if rc := C.vmnet_broker_connect((*C.char)(unsafe.Pointer(&path[0])), &cConn); rc != 0 {
		return vmnetbroker.Error(rc)
	}
	defer C.vmnet_broker_connection_close(cConn)
	name := append([]byte(network), 0)
	cName := (*C.char)(unsafe.Pointer(&name[0]))

	// Both hold the network before anything is timed.
	if _, err := goConn.Acquire(network); err != nil {
		return err
	}
	cNs := make([]int64, 0, slices*perSlice)
	goNs := make([]int64, 0, slices*perSlice)
	buf := make([]int64, perSlice)
	// The C loop writes into Go memory: pinned for the call by cgo.
	cSlice := func(n int) error {
		if rc := C.c_acquire_loop(cConn, cName, C.int(n), (*C.int64_t)(unsafe.Pointer(&buf[0]))); rc != 0 {
			return vmnetbroker.Error(rc)
		}
		return nil
	}
	goSlice := func(n int) error {
		for i := 0; i < n; i++ {
			start := time.Now()
			if _, err := goConn.Acquire(network); err != nil {
				return err
			}
			buf[i] = int64(time.Since(start))
		}
		return nil
	}
	// The same C call made from Go one cgo call at a time, without the
	// binding: what cgo itself costs, as opposed to the binding's work.
	cgoNs := make([]int64, 0, slices*perSlice)
	cgoSlice := func(n int) error {
		var one [1]int64
		for i := 0; i < n; i++ {
			start := time.Now()
			if rc := C.c_acquire_loop(cConn, cName, 1, (*C.int64_t)(unsafe.Pointer(&one[0]))); rc != 0 {
				return vmnetbroker.Error(rc)
			}
			buf[i] = int64(time.Since(start))
		}
		return nil
	}
	if err := cgoSlice(warmUp % perSlice); err != nil {
		return err
	}
	if err := cSlice(warmUp % perSlice); err != nil {
		return err
	}
	if err := goSlice(warmUp % perSlice); err != nil {
		return err
	}
	// One OS thread for both, as a Go VM manager's goroutine would mostly
	// get; the GC runs as it would in a real program.
	runtime.LockOSThread()
	for s := 0; s < slices; s++ {
		if err := cSlice(perSlice); err != nil {
			return err
		}
		cNs = append(cNs, buf...)
		if err := goSlice(perSlice); err != nil {
			return err
		}
		goNs = append(goNs, buf...)
		if err := cgoSlice(perSlice); err != nil {
			return err
		}
		cgoNs = append(cgoNs, buf...)
	}
	runtime.UnlockOSThread()

	c, g, cg := summarize(cNs), summarize(goNs), summarize(cgoNs)
	ratio := g.median / c.median
	verdict := "met"
	if ratio > goalRatio {
		verdict = "MISSED"
	}
	fmt.Printf("# Go binding: acquire of a held network (%d round trips each, %d slices, %s)\n",
		len(goNs), slices, runtime.Version())
	fmt.Printf("%-44s %12s %12s\n", "metric", "value", "baseline")
	fmt.Printf("%-44s %10.2f µs %10.2f µs   C vmnet_broker_connection_acquire\n",
		"Conn.Acquire median", g.median/1e3, c.median/1e3)
	fmt.Printf("%-44s %10.2f µs %10.2f µs   C\n", "Conn.Acquire p99", g.p99/1e3, c.p99/1e3)
	fmt.Printf("%-44s %10.3fx %12s   goal <= %.1fx: %s\n", "Go / C (medians)", ratio, "1.000x",
		goalRatio, verdict)
	fmt.Printf("%-44s %10.2f µs %10.2f µs   C (cgo's own share: %.3fx)\n",
		"the C call through bare cgo, median", cg.median/1e3, c.median/1e3, cg.median/c.median)
	return nil
}

// stop ends the broker. It ignores SIGTERM while it still counts peers,
// and may not have seen our connections close yet: ask again until it
// exits, and kill it after 10 s.
func stop(broker *exec.Cmd) {
	done := make(chan struct{})
	go func() { broker.Wait(); close(done) }()
	deadline := time.After(10 * time.Second)
	for {
		broker.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
			return
		case <-deadline:
			broker.Process.Kill()
			<-done
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func connectWhenUp(socket string) (*vmnetbroker.Conn, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := vmnetbroker.Connect(socket)
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type summary struct{ median, p99 float64 }

func summarize(ns []int64) summary {
	sorted := append([]int64(nil), ns...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	return summary{
		median: float64(sorted[len(sorted)/2]),
		p99:    float64(sorted[len(sorted)*99/100]),
	}
}
