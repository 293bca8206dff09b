// SPDX-License-Identifier: Apache-2.0
// A small VM manager: N QEMU guests on one named network, each with a TAP from the broker.

// Usage:
//
//	go run ./examples/go-vm-manager -network shared -count 2 \
//	    -kernel /boot/vmlinuz-VERSION -initrd guest.cpio
//
// Each guest gets an interface from OpenInterface: its TAP descriptor goes
// to QEMU as fd 3 through exec.Cmd.ExtraFiles (-netdev tap,fd=3) and its
// MAC to the guest's virtio-net device. The manager waits for the guests;
// Ctrl-C (or SIGTERM) stops them, then it closes the interfaces and the
// connection, which drops its reference to the network.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	vmnetbroker "github.com/vmnet-broker/vmnet-broker/bindings/go"
)

type guest struct {
	index int
	iface *vmnetbroker.Interface
	cmd   *exec.Cmd
}

func main() {
	network := flag.String("network", "shared", "the network the guests share")
	count := flag.Int("count", 2, "how many guests")
	kernel := flag.String("kernel", newestKernel(), "the guests' kernel")
	initrd := flag.String("initrd", "", "the guests' initramfs (tests/qemu/make-initramfs.sh builds one)")
	memory := flag.String("memory", "256", "each guest's memory in MiB")
	accel := flag.String("accel", "", "QEMU's accelerator (default: kvm where /dev/kvm opens, else tcg)")
	qemu := flag.String("qemu", "qemu-system-x86_64", "the QEMU binary")
	socket := flag.String("socket", "", "the broker's socket (default: $VMNET_BROKER_SOCKET, else "+
		vmnetbroker.DefaultSocket+")")
	flag.Parse()

	if missing := whatIsMissing(*qemu, *kernel, *initrd); missing != "" {
		fmt.Fprintln(os.Stderr, "go-vm-manager: cannot start guests:", missing)
		os.Exit(2)
	}
	if *count < 1 || *count > 16 {
		fmt.Fprintln(os.Stderr, "go-vm-manager: -count must be 1 to 16 (16 interfaces per connection)")
		os.Exit(2)
	}
	os.Exit(run(*socket, *network, *count, *accel, *qemu, *kernel, *initrd, *memory))
}

func run(socket, network string, count int, accel, qemu, kernel, initrd, memory string) int {
	// Caught before anything starts, so that no guest is left running.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)

	conn, err := vmnetbroker.Connect(socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-vm-manager: connect to the broker:", err)
		return 1
	}
	// Last: the network stays acquired while any guest runs.
	defer conn.Close()
	n, err := conn.Acquire(network)
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-vm-manager: acquire %s: %v\n", network, err)
		return 1
	}
	fmt.Printf("network %s: bridge %s, %s/%d, gateway %s\n", n.Name, n.Bridge, n.Subnet,
		n.PrefixLength, n.Gateway)

	vhost := "off"
	if accel == "" {
		accel = "tcg"
		if usable("/dev/kvm") {
			accel = "kvm"
		}
	}
	if usable("/dev/vhost-net") {
		vhost = "on"
	}

	var guests []*guest
	var output sync.WaitGroup
	defer func() {
		for _, g := range guests {
			g.iface.Close()
		}
	}()
	for i := 0; i < count; i++ {
		iface, err := conn.OpenInterface(network)
		if err != nil {
			fmt.Fprintf(os.Stderr, "go-vm-manager: interface for guest %d: %v\n", i, err)
			stop(guests)
			return 1
		}
		g := &guest{index: i, iface: iface}
		guests = append(guests, g)
		g.cmd = exec.Command(qemu, "-accel", accel, "-m", memory, "-nographic", "-no-reboot",
			"-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 panic=-1 quiet",
			// ExtraFiles[0] is the guest's fd 3.
			"-netdev", "tap,id=n0,fd=3,vhost="+vhost,
			"-device", "virtio-net-pci,netdev=n0,mac="+iface.MAC)
		g.cmd.ExtraFiles = []*os.File{iface.File()}
		g.cmd.Stdin = nil
		stdout, err := g.cmd.StdoutPipe()
		if err == nil {
			g.cmd.Stderr = g.cmd.Stdout
			err = g.cmd.Start()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "go-vm-manager: start guest %d: %v\n", i, err)
			guests = guests[:len(guests)-1]
			iface.Close()
			stop(guests)
			return 1
		}
		// QEMU holds its own copy now; the device lives as long as it does.
		iface.Close()
		fmt.Printf("guest %d: pid %d, %s, MAC %s\n", i, g.cmd.Process.Pid, iface.Name, iface.MAC)
		output.Add(1)
		go prefixLines(&output, fmt.Sprintf("[guest %d] ", i), stdout)
	}

	done := make(chan struct{})
	go func() {
		output.Wait() // every console closed: the guests are exiting
		for _, g := range guests {
			g.cmd.Wait()
		}
		close(done)
	}()
	stopped := false
	select {
	case <-done:
	case sig := <-signals:
		fmt.Printf("%v: stopping the guests\n", sig)
		stop(guests)
		stopped = true
		<-done
	}
	// A guest that ended by itself must have succeeded; after a stop, one
	// ended by our signal (before QEMU caught it, or the kill) did as asked.
	failed := 0
	for _, g := range guests {
		fmt.Printf("guest %d: %v\n", g.index, g.cmd.ProcessState)
		if !g.cmd.ProcessState.Success() && !(stopped && endedBySignal(g.cmd.ProcessState)) {
			failed++
		}
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func endedBySignal(state *os.ProcessState) bool {
	ws, ok := state.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

// stop asks the guests to end (QEMU quits on SIGTERM), then kills those
// still running after 10 s.
func stop(guests []*guest) {
	for _, g := range guests {
		if g.cmd.Process != nil {
			g.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	time.AfterFunc(10*time.Second, func() {
		for _, g := range guests {
			if g.cmd.Process != nil {
				g.cmd.Process.Kill()
			}
		}
	})
}

func prefixLines(wg *sync.WaitGroup, prefix string, r io.Reader) {
	defer wg.Done()
	scanner := bufio.NewScanner(r)
	for scanner.Scan() {
		fmt.Println(prefix + scanner.Text())
	}
}

func usable(device string) bool {
	f, err := os.OpenFile(device, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// newestKernel is the last /boot/vmlinuz-* in version order, or "".
func newestKernel() string {
	kernels, _ := filepath.Glob("/boot/vmlinuz-*")
	sort.Strings(kernels)
	if len(kernels) == 0 {
		return ""
	}
	return kernels[len(kernels)-1]
}

// whatIsMissing says what the guests need and this machine lacks.
func whatIsMissing(qemu, kernel, initrd string) string {
	if _, err := exec.LookPath(qemu); err != nil {
		return qemu + " is not installed (Debian: apt-get install qemu-system-x86)"
	}
	if kernel == "" {
		return "no kernel: give -kernel (Debian: apt-get install linux-image-cloud-amd64)"
	}
	if _, err := os.Stat(kernel); err != nil {
		return "kernel: " + err.Error()
	}
	if initrd == "" {
		return "no initramfs: give -initrd (tests/qemu/make-initramfs.sh " +
			"KERNEL_VERSION guest.cpio builds one that takes a DHCP lease and powers off)"
	}
	if _, err := os.Stat(initrd); err != nil {
		return "initramfs: " + err.Error()
	}
	return ""
}
