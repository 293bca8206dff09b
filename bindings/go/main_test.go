// SPDX-License-Identifier: Apache-2.0
// Test setup: the real broker in this (private) network namespace, and helper child processes.

package vmnetbroker

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// Every wait for something the broker does is bounded by this; it is far
// longer than any of them needs, so a slow machine makes a test slower,
// never failed.
const waitLimit = 20 * time.Second

// PR_SET_CHILD_SUBREAPER (linux/prctl.h), not in package syscall.
const prSetChildSubreaper = 36

// nobody and nogroup on Debian: the unprivileged peer.
const nobody = 65534

// The environment: the broker binary (set by ctest), whether a missing
// broker is an error rather than a skip (set by run-tests.sh), the helper
// mode of a re-executed test binary, and the network namespace
// run-tests.sh left (the machine's).
const (
	brokerBinEnv  = "VMNET_BROKER_BIN"
	requireEnv    = "VMNET_BROKER_GO_REQUIRE"
	helperModeEnv = "VMNET_BROKER_GO_HELPER"
	outerNetnsEnv = "VMNET_BROKER_GO_OUTER_NETNS"
)

var (
	// Why the tests that need a broker are skipped; "" when one runs.
	skipReason string
	broker     *exec.Cmd
	brokerDir  string
	socketPath string
	// A copy of the test binary that uid nobody may execute (go test's
	// own directory is mode 0700).
	helperBinary string
)

// Configured networks: net1..net7 open to all (with shared and host, 9
// distinct names for the 9th-network test), rootonly for root alone.
var configs = map[string]string{
	"net1":     `{"mode": "host"}`,
	"net2":     `{"mode": "host"}`,
	"net3":     `{"mode": "host"}`,
	"net4":     `{"mode": "host"}`,
	"net5":     `{"mode": "host"}`,
	"net6":     `{"mode": "host"}`,
	"net7":     `{"mode": "host", "description": "seventh"}`,
	"rootonly": `{"mode": "host", "allowed_users": [0]}`,
	// Its dnsmasq fails at every restart (failingDnsmasq).
	"degraded": `{"mode": "host"}`,
}

// failingDnsmasq stands in for dnsmasq (the broker's test hook
// VMNET_BROKER_DNSMASQ): the network "degraded" gets the real dnsmasq once,
// then each restart fails at once, so the broker gives up on it; the other
// networks' dnsmasq runs as usual. The broker starts it with
// --conf-file=RUNTIME_DIR/NETWORK/dnsmasq.conf.
const failingDnsmasq = `#!/bin/sh
case "$*" in
*/degraded/dnsmasq.conf*)
    [ -e "$0.started" ] && exit 1
    : > "$0.started" ;;
esac
exec /usr/sbin/dnsmasq "$@"
`

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperModeEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if reason := startBroker(); reason != "" {
		stopBroker()
		if os.Getenv(requireEnv) != "" {
			fmt.Fprintln(os.Stderr, "vmnetbroker tests: cannot run:", reason)
			return 1
		}
		skipReason = reason
		fmt.Fprintln(os.Stderr, "vmnetbroker tests: tests needing the broker skipped:", reason)
		// Examples talk to the broker and cannot skip: run the tests
		// only, each of which says why it skips.
		if err := flag.Set("test.run", "^Test"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}
	code := m.Run()
	stopBroker()
	return code
}

// needBroker skips t unless the broker runs.
func needBroker(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// startBroker starts the broker; it returns why it could not ("" when it
// runs).
func startBroker() string {
	bin := os.Getenv(brokerBinEnv)
	if bin == "" {
		return brokerBinEnv + " is not set (ctest sets it to the broker it built; " +
			"run bindings/go/run-tests.sh)"
	}
	if os.Geteuid() != 0 {
		return "not root (the broker makes bridges)"
	}
	// Never on the machine's own interfaces: run-tests.sh runs go test
	// under unshare -n.
	// run-tests.sh names the namespace it started in (in a PID namespace
	// of its own, /proc/1 is no longer the machine's init).
	self, err1 := os.Readlink("/proc/self/ns/net")
	outer, err2 := os.Getenv(outerNetnsEnv), error(nil)
	if outer == "" {
		outer, err2 = os.Readlink("/proc/1/ns/net")
	}
	if err1 != nil || err2 != nil || self == outer {
		return "not in a private network namespace (run bindings/go/run-tests.sh, " +
			"which uses unshare -n)"
	}
	// Helpers a killed broker leaves behind (dnsmasq) become our
	// children, so stopBroker can end them.
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		return "cannot become a subreaper: " + e.Error()
	}
	var err error
	brokerDir, err = os.MkdirTemp("", "vmnet-broker-go-test.")
	if err != nil {
		return err.Error()
	}
	// Unprivileged peers must reach the socket and the helper binary.
	if err := os.Chmod(brokerDir, 0o755); err != nil {
		return err.Error()
	}
	configDir := filepath.Join(brokerDir, "config.d")
	if err := os.Mkdir(configDir, 0o755); err != nil {
		return err.Error()
	}
	for name, text := range configs {
		if err := os.WriteFile(filepath.Join(configDir, name+".json"), []byte(text), 0o644); err != nil {
			return err.Error()
		}
	}
	wrapper := filepath.Join(brokerDir, "failing-dnsmasq.sh")
	if err := os.WriteFile(wrapper, []byte(failingDnsmasq), 0o755); err != nil {
		return err.Error()
	}
	if helperBinary, err = copyExecutable(brokerDir); err != nil {
		return "cannot copy the test binary: " + err.Error()
	}
	socketPath = filepath.Join(brokerDir, "broker.sock")
	log, err := os.Create(filepath.Join(brokerDir, "broker.log"))
	if err != nil {
		return err.Error()
	}
	defer log.Close()
	// The test's own guest MAC key (--state-dir), never the host's.
	broker = exec.Command(bin, "--socket", socketPath, "--config-dir", configDir,
		"--idle-timeout", "600", "--state-dir", filepath.Join(brokerDir, "state"))
	broker.Stdout = log
	broker.Stderr = log
	broker.Env = filterEnv(os.Environ(), "LISTEN_FDS", "LISTEN_PID", "NOTIFY_SOCKET",
		"VMNET_BROKER_DNSMASQ")
	broker.Env = append(broker.Env, "VMNET_BROKER_DNSMASQ="+wrapper)
	// The default instance's plain names ("vmb-net7"), which the tests expect.
	broker.Env = append(broker.Env, "VMNET_BROKER_INSTANCE=default")
	broker.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := broker.Start(); err != nil {
		broker = nil
		return "cannot start the broker: " + err.Error()
	}
	// The process-wide connection (AcquireNetwork) finds it here.
	os.Setenv(SocketEnv, socketPath)
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		if c, err := Connect(socketPath); err == nil {
			_, err = c.Status()
			c.Close()
			if err == nil {
				return ""
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "the broker did not start:\n" + brokerLog()
}

func brokerLog() string {
	text, _ := os.ReadFile(filepath.Join(brokerDir, "broker.log"))
	return string(text)
}

// stopBroker stops the broker (SIGTERM is ignored while peers such as the
// process-wide connection remain: then SIGKILL), ends whatever it left
// (dnsmasq) and removes the directory.
func stopBroker() {
	if broker != nil {
		broker.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { broker.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			broker.Process.Kill()
			<-done
		}
		broker = nil
	}
	killOrphans()
	if brokerDir != "" {
		os.RemoveAll(brokerDir)
	}
}

// killOrphans kills and reaps our remaining children: the broker's
// helpers, reparented to us as the subreaper.
func killOrphans() {
	for round := 0; round < 16; round++ {
		text, _ := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/children", os.Getpid()))
		pids := strings.Fields(string(text))
		tasks, _ := filepath.Glob("/proc/self/task/*/children")
		for _, task := range tasks {
			more, _ := os.ReadFile(task)
			pids = append(pids, strings.Fields(string(more))...)
		}
		if len(pids) == 0 {
			return
		}
		for _, p := range pids {
			pid, err := strconv.Atoi(p)
			if err != nil {
				continue
			}
			syscall.Kill(pid, syscall.SIGKILL)
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
		}
	}
}

func filterEnv(env []string, drop ...string) []string {
	var out []string
next:
	for _, kv := range env {
		for _, d := range drop {
			if strings.HasPrefix(kv, d+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

func copyExecutable(dir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	in, err := os.Open(self)
	if err != nil {
		return "", err
	}
	defer in.Close()
	path := filepath.Join(dir, "vmnetbroker.test")
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", err
	}
	return path, out.Close()
}

// helper returns a command running the test binary in helper mode.
func helper(mode string, extra ...*os.File) *exec.Cmd {
	cmd := exec.Command(helperBinary)
	cmd.Env = append(os.Environ(), helperModeEnv+"="+mode)
	cmd.ExtraFiles = extra
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// runHelper is main() of a re-executed test binary; its exit status is
// the result.
func runHelper(mode string) int {
	switch mode {
	case "hold":
		// Holds the descriptors it inherited until killed.
		for {
			time.Sleep(time.Hour)
		}
	case "tap":
		// Descriptor 3 must be a TAP device: print its name.
		name, flags, err := tunGetIff(3)
		if err != nil {
			fmt.Fprintln(os.Stderr, "TUNGETIFF on fd 3:", err)
			return 1
		}
		fmt.Printf("%s %d\n", name, flags)
		return 0
	case "not-allowed":
		return notAllowed()
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 2
}

// notAllowed runs as uid nobody: every way of using rootonly is
// ErrNotAllowed, while an open network works (so the broker was reached).
func notAllowed() int {
	failed := false
	check := func(what string, err error) {
		if !errors.Is(err, ErrNotAllowed) {
			fmt.Fprintf(os.Stderr, "%s: got %v, want ErrNotAllowed\n", what, err)
			failed = true
		}
	}
	c, err := Connect("")
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		return 1
	}
	defer c.Close()
	if _, err := c.Acquire("net1"); err != nil {
		fmt.Fprintln(os.Stderr, "acquire net1 as nobody:", err)
		return 1
	}
	_, err = c.Acquire("rootonly")
	check("Conn.Acquire", err)
	_, err = c.OpenInterface("rootonly")
	check("Conn.OpenInterface", err)
	_, err = AcquireNetwork("rootonly")
	check("AcquireNetwork", err)
	_, err = OpenInterface("rootonly")
	check("OpenInterface", err)
	var e Error
	if !errors.As(err, &e) || e != 3 {
		fmt.Fprintf(os.Stderr, "errors.As: %v\n", err)
		failed = true
	}
	if failed {
		return 1
	}
	fmt.Println("not allowed")
	return 0
}

// TAP flags (linux/if_tun.h) and TUNGETIFF (_IOR('T', 210, unsigned int)).
const (
	iffTap     = 0x0002
	iffNoPI    = 0x1000
	iffVnetHdr = 0x4000
	tunGetIFF  = 0x800454d2
)

// tunGetIff returns the name and flags of the TUN/TAP device fd is
// attached to.
func tunGetIff(fd uintptr) (string, uint16, error) {
	var ifr [40]byte // struct ifreq: name[16], then short flags
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, tunGetIFF, uintptr(unsafe.Pointer(&ifr[0])))
	if e != 0 {
		return "", 0, e
	}
	name := string(bytes.TrimRight(ifr[:16], "\x00"))
	flags := *(*uint16)(unsafe.Pointer(&ifr[16]))
	return name, flags, nil
}

// linkMaster returns the name of the bridge link name is a port of ("" for
// none), read over rtnetlink in this namespace.
func linkMaster(name string) (string, bool, error) {
	rib, err := syscall.NetlinkRIB(syscall.RTM_GETLINK, syscall.AF_UNSPEC)
	if err != nil {
		return "", false, err
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return "", false, err
	}
	names := map[int32]string{}
	masters := map[string]int32{}
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type != syscall.RTM_NEWLINK {
			continue
		}
		info := (*syscall.IfInfomsg)(unsafe.Pointer(&m.Data[0]))
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			return "", false, err
		}
		var link string
		master := int32(0)
		for _, a := range attrs {
			switch a.Attr.Type {
			case syscall.IFLA_IFNAME:
				link = string(bytes.TrimRight(a.Value, "\x00"))
			case syscall.IFLA_MASTER:
				master = *(*int32)(unsafe.Pointer(&a.Value[0]))
			}
		}
		names[info.Index] = link
		masters[link] = master
	}
	master, ok := masters[name]
	if !ok {
		return "", false, nil
	}
	return names[master], true, nil
}
