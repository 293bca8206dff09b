// SPDX-License-Identifier: Apache-2.0
// Tests of every call against the real broker: values, errors, peers, interfaces, concurrency.

package vmnetbroker

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func connect(t *testing.T) *Conn {
	t.Helper()
	c, err := Connect(socketPath)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func brokerStatus(t *testing.T) *Status {
	t.Helper()
	c, err := Connect(socketPath)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer c.Close()
	s, err := c.Status()
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return s
}

// peers returns how many peers hold network name (-1: no such network).
func peers(t *testing.T, name string) int {
	t.Helper()
	if n := brokerStatus(t).Network(name); n != nil {
		return n.Peers
	}
	return -1
}

// waitPeers waits until network name has want peers.
func waitPeers(t *testing.T, name string, want int) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		got := peers(t, name)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("network %s: %d peers, want %d", name, got, want)
		}
		runtime.GC() // runs finalizers for the finalizer test
		time.Sleep(10 * time.Millisecond)
	}
}

func wantErr(t *testing.T, what string, err error, want Error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v (%d)", what, err, want, uint32(want))
	}
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestVersionMatchesCMake(t *testing.T) {
	text, err := os.ReadFile("../../CMakeLists.txt")
	if err != nil {
		t.Skip("not in the source tree: ", err)
	}
	m := regexp.MustCompile(`(?s)project\(vmnet-broker\s+VERSION\s+([0-9.]+)`).FindSubmatch(text)
	if m == nil {
		t.Fatal("no project(VERSION) in CMakeLists.txt")
	}
	if got := Version(); got != string(m[1]) {
		t.Errorf("Version() = %q, CMakeLists.txt says %q", got, m[1])
	}
}

func TestErrorValuesAndText(t *testing.T) {
	if ErrXPCFailure != ErrConnectionFailure {
		t.Error("ErrXPCFailure != ErrConnectionFailure")
	}
	want := map[Error]uint32{ErrConnectionFailure: 1, ErrInvalidReply: 2, ErrNotAllowed: 3, ErrInvalidRequest: 4,
		ErrNotFound: 5, ErrCreateFailure: 6, ErrInternalError: 7}
	for e, v := range want {
		if uint32(e) != v {
			t.Errorf("%v = %d, want %d", e, uint32(e), v)
		}
	}
	if ErrNotFound.Error() == "" || ErrNotFound.Error() == ErrNotAllowed.Error() {
		t.Errorf("ErrNotFound.Error() = %q", ErrNotFound.Error())
	}
	if got := Error(42).Error(); got != "unknown status (42)" {
		t.Errorf("Error(42).Error() = %q", got)
	}
	var err error = Error(42)
	if !errors.Is(err, Error(42)) || errors.Is(err, ErrNotFound) {
		t.Error("errors.Is on an unknown value")
	}
}

// Argument errors never reach the C library, and never panic.
func TestNulBytes(t *testing.T) {
	_, err := Connect("/tmp/a\x00b")
	wantErr(t, "Connect", err, ErrInvalidRequest)
	_, err = AcquireNetwork("a\x00b")
	wantErr(t, "AcquireNetwork", err, ErrInvalidRequest)
	wantErr(t, "ReleaseNetwork", ReleaseNetwork("\x00"), ErrInvalidRequest)
	_, err = OpenInterface("x\x00")
	wantErr(t, "OpenInterface", err, ErrInvalidRequest)
}

func TestConnectFailure(t *testing.T) {
	_, err := Connect("/nonexistent/vmnet-broker.sock")
	wantErr(t, "Connect", err, ErrConnectionFailure)
	wantErr(t, "Connect", err, ErrXPCFailure)
}

func TestAcquireRelease(t *testing.T) {
	needBroker(t)
	c := connect(t)
	n, err := c.Acquire("net7")
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if n.Name != "net7" || n.Mode != "host" || n.Bridge != "vmb-net7" ||
		n.Description != "seventh" || !uuidPattern.MatchString(n.UUID) ||
		n.PrefixLength != 24 || n.Mask != "255.255.255.0" || n.MTU < 576 ||
		!strings.HasSuffix(n.Subnet, ".0") || !strings.HasSuffix(n.Gateway, ".1") ||
		n.DHCPStart == "" || n.DHCPEnd == "" || n.DNS != n.Gateway ||
		!strings.HasPrefix(n.IPv6Prefix, "fd") || n.IPv6PrefixLength != 64 {
		t.Errorf("network: %+v", n)
	}
	var obj map[string]interface{}
	if err := json.Unmarshal(n.JSON, &obj); err != nil || obj["name"] != "net7" || obj["uuid"] != n.UUID {
		t.Errorf("JSON %s: %v", n.JSON, err)
	}
	// The same network again on the same connection: one reference.
	again, err := c.Acquire("net7")
	if err != nil || again.UUID != n.UUID {
		t.Errorf("second Acquire: %v %+v", err, again)
	}
	s, err := c.Status()
	if err != nil {
		t.Fatal(err)
	}
	ns := s.Network("net7")
	if ns == nil || ns.Peers != 1 || ns.UUID != n.UUID || ns.Mode != "host" ||
		ns.Bridge != "vmb-net7" || ns.Subnet != n.Subnet || ns.PrefixLength != 24 ||
		ns.Persistent || ns.IdleRemaining != nil {
		t.Errorf("status of net7: %+v", ns)
	}
	if s.Version != Version() {
		t.Errorf("broker version %q, library %q", s.Version, Version())
	}
	if !holds(s, os.Getpid(), "net7") {
		t.Errorf("no peer with pid %d holds net7: %+v", os.Getpid(), s.Peers)
	}
	for _, p := range s.Peers {
		if p.PID == os.Getpid() && (p.UID != 0 || p.GID != 0) {
			t.Errorf("peer %+v: want uid and gid 0", p)
		}
	}
	if err := json.Unmarshal(s.JSON, &obj); err != nil || obj["networks"] == nil {
		t.Errorf("status JSON %s: %v", s.JSON, err)
	}
	if err := c.Release("net7"); err != nil {
		t.Errorf("Release: %v", err)
	}
	wantErr(t, "second Release", c.Release("net7"), ErrNotFound)
	ns = brokerStatus(t).Network("net7")
	if ns == nil || ns.Peers != 0 || ns.IdleRemaining == nil || *ns.IdleRemaining <= 0 {
		t.Errorf("released net7: %+v", ns)
	}
}

// A network whose strings do not fit acquire's buffer is copied the slow
// way, to the same values.
// A network whose dnsmasq the broker gave up on (failingDnsmasq) is
// degraded, with the reason; a healthy one is not.
func TestDegradedOnceDnsmasqIsGivenUp(t *testing.T) {
	needBroker(t)
	c := connect(t)
	for _, name := range []string{"degraded", "net2"} {
		if _, err := c.Acquire(name); err != nil {
			t.Fatalf("Acquire %s: %v", name, err)
		}
	}
	n := brokerStatus(t).Network("degraded")
	if n == nil || n.Degraded || n.DegradedReason != "" {
		t.Fatalf("a new network: got %+v, want not degraded", n)
	}
	text, err := os.ReadFile(filepath.Join(brokerDir, "degraded", "dnsmasq.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(text)))
	if err != nil || pid <= 1 {
		t.Fatalf("dnsmasq.pid: %q", text)
	}
	// Killed, it fails at each restart (a second apart): after five
	// failures in a row the broker gives up on it.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLimit)
	for {
		n = brokerStatus(t).Network("degraded")
		if n != nil && n.Degraded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not degraded after %v: %+v\nbroker log:\n%s", waitLimit, n, brokerLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(n.DegradedReason, "dnsmasq") {
		t.Errorf("DegradedReason = %q, want it to name dnsmasq", n.DegradedReason)
	}
	if h := brokerStatus(t).Network("net2"); h == nil || h.Degraded || h.DegradedReason != "" {
		t.Errorf("net2: got %+v, want not degraded", h)
	}
}

func TestAcquireLargeNetwork(t *testing.T) {
	needBroker(t)
	c := connect(t)
	fast, err := c.Acquire("net7")
	if err != nil {
		t.Fatal(err)
	}
	saved := acquireBuffer
	acquireBuffer = 16
	defer func() { acquireBuffer = saved }()
	slow, err := c.Acquire("net7")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fast, slow) || slow.Description != "seventh" {
		t.Errorf("fast path %+v, slow path %+v", fast, slow)
	}
}

func holds(s *Status, pid int, name string) bool {
	for _, p := range s.Peers {
		if p.PID != pid {
			continue
		}
		for _, n := range p.Networks {
			if n == name {
				return true
			}
		}
	}
	return false
}

func TestErrorsFromTheBroker(t *testing.T) {
	needBroker(t)
	c := connect(t)
	_, err := c.Acquire("no-such-network")
	wantErr(t, "unknown name", err, ErrNotFound)
	_, err = c.Acquire("bad name!")
	wantErr(t, "invalid name", err, ErrInvalidRequest)
	// The error stays a bare Error; the broker's reason is on the Conn.
	if _, ok := err.(Error); !ok {
		t.Errorf("invalid name: error of type %T, want Error", err)
	}
	wantMessage(t, "invalid name", c.LastMessage(), "invalid network name")
	_, err = c.Acquire(strings.Repeat("a", 65))
	wantErr(t, "long name", err, ErrInvalidRequest)
	_, err = c.Acquire("a\x00b")
	wantErr(t, "NUL in name", err, ErrInvalidRequest)
	wantErr(t, "Release of a network not held", c.Release("shared"), ErrNotFound)
	_, err = c.OpenInterface("no-such-network")
	wantErr(t, "OpenInterface unknown", err, ErrNotFound)
	_, err = AcquireNetwork("no-such-network")
	wantErr(t, "AcquireNetwork unknown", err, ErrNotFound)
	wantErr(t, "ReleaseNetwork not held", ReleaseNetwork("net3"), ErrNotFound)

	// 8 distinct networks per connection, as in the original; the 9th is
	// an internal error. The connection stays usable.
	for _, name := range []string{"shared", "host", "net1", "net2", "net3", "net4", "net5", "net6"} {
		if _, err := c.Acquire(name); err != nil {
			t.Fatalf("Acquire %s: %v", name, err)
		}
	}
	_, err = c.Acquire("net7")
	wantErr(t, "9th network", err, ErrInternalError)
	wantMessage(t, "9th network", c.LastMessage(), "8 networks")
	if _, err := c.Acquire("net1"); err != nil {
		t.Errorf("acquire of a held network after the 9th: %v", err)
	}
	if m := c.LastMessage(); m != "" {
		t.Errorf("LastMessage after a success: %q, want \"\"", m)
	}

	// Closed: every call is a connection failure; Close is idempotent.
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, err = c.Acquire("net1")
	wantErr(t, "Acquire after Close", err, ErrConnectionFailure)
	wantErr(t, "Release after Close", c.Release("net1"), ErrConnectionFailure)
	_, err = c.OpenInterface("net1")
	wantErr(t, "OpenInterface after Close", err, ErrConnectionFailure)
	_, err = c.Status()
	wantErr(t, "Status after Close", err, ErrConnectionFailure)
	_, err = c.File()
	wantErr(t, "File after Close", err, ErrConnectionFailure)
	wantErr(t, "SetTimeout after Close", c.SetTimeout(time.Second), ErrConnectionFailure)
	if m := c.LastMessage(); m != "" {
		t.Errorf("LastMessage after Close: %q, want \"\"", m)
	}
}

// wantMessage checks that the broker's message is there and gives the
// reason (the wording is for people, so only a key phrase is checked).
func wantMessage(t *testing.T, what, message, reason string) {
	t.Helper()
	if !strings.Contains(message, reason) {
		t.Errorf("%s: LastMessage %q does not mention %q", what, message, reason)
	}
}

func TestNotAllowedAsNobody(t *testing.T) {
	needBroker(t)
	cmd := helper("not-allowed")
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "not allowed") {
		t.Fatalf("helper as uid %d: %v\n%s", nobody, err, out)
	}
	if n := brokerStatus(t).Network("rootonly"); n != nil {
		t.Errorf("rootonly was created for nobody: %+v", n)
	}
}

func TestTwoConnsAreTwoPeers(t *testing.T) {
	needBroker(t)
	c1, c2 := connect(t), connect(t)
	if _, err := c1.Acquire("net2"); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Acquire("net2"); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Acquire("net3"); err != nil {
		t.Fatal(err)
	}
	s := brokerStatus(t)
	if n := s.Network("net2"); n == nil || n.Peers != 2 {
		t.Errorf("net2: %+v, want 2 peers", n)
	}
	mine := 0
	for _, p := range s.Peers {
		if p.PID == os.Getpid() && len(p.Networks) > 0 &&
			strings.Join(p.Networks, ",") != "" && containsAll(p.Networks, "net2") {
			mine++
		}
	}
	if mine != 2 {
		t.Errorf("%d peers of pid %d hold net2, want 2: %+v", mine, os.Getpid(), s.Peers)
	}
	// Close drops c1's reference at once, not c2's.
	c1.Close()
	waitPeers(t, "net2", 1)
	if peers(t, "net3") != 1 {
		t.Errorf("net3 lost its peer")
	}
	c2.Close()
	waitPeers(t, "net2", 0)
	waitPeers(t, "net3", 0)
}

func containsAll(list []string, names ...string) bool {
	for _, n := range names {
		found := false
		for _, l := range list {
			found = found || l == n
		}
		if !found {
			return false
		}
	}
	return true
}

// A child holding File() keeps the networks after the Conn is closed,
// until it exits.
func TestFileKeepsNetworksInAChild(t *testing.T) {
	needBroker(t)
	c := connect(t)
	if _, err := c.Acquire("net4"); err != nil {
		t.Fatal(err)
	}
	f, err := c.File()
	if err != nil {
		t.Fatal(err)
	}
	child := helper("hold", f)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		child.Process.Kill()
		child.Wait()
	}()
	f.Close()
	c.Close()
	// Still held by the child's copy: the broker never saw a close.
	if got := peers(t, "net4"); got != 1 {
		t.Errorf("net4 has %d peers with the child holding the connection, want 1", got)
	}
	child.Process.Kill()
	child.Wait()
	waitPeers(t, "net4", 0)
}

// A Conn dropped without Close is closed by its finalizer.
func TestFinalizerClosesAForgottenConn(t *testing.T) {
	needBroker(t)
	func() {
		c, err := Connect(socketPath)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Acquire("net6"); err != nil {
			t.Fatal(err)
		}
	}()
	waitPeers(t, "net6", 0)
}

func TestInterface(t *testing.T) {
	needBroker(t)
	c := connect(t)
	iface, err := c.OpenInterface("net5")
	if err != nil {
		t.Fatalf("OpenInterface: %v", err)
	}
	defer iface.Close()
	if !regexp.MustCompile(`^vmt-[0-9a-f]{8}$`).MatchString(iface.Name) ||
		!regexp.MustCompile(`^[0-9a-f][26ae](:[0-9a-f]{2}){5}$`).MatchString(iface.MAC) ||
		iface.Network != "net5" || iface.Bridge != "vmb-net5" || iface.MTU < 576 {
		t.Errorf("interface: %+v", iface)
	}
	if !strings.Contains(string(iface.JSON), iface.MAC) {
		t.Errorf("JSON %s", iface.JSON)
	}
	// The guest's addresses, known before it boots.
	var object map[string]any
	if err := json.Unmarshal(iface.JSON, &object); err != nil ||
		object["ipv4"] != iface.IPv4 || object["ipv6"] != iface.IPv6 {
		t.Errorf("JSON %s, IPv4 %q, IPv6 %q (%v)", iface.JSON, iface.IPv4, iface.IPv6, err)
	}
	if ip := net.ParseIP(iface.IPv4); ip == nil || ip.To4() == nil {
		t.Errorf("IPv4 %q", iface.IPv4)
	}
	if ip := net.ParseIP(iface.IPv6); ip == nil || ip.To4() != nil {
		t.Errorf("IPv6 %q", iface.IPv6)
	}
	f := iface.File()
	if f == nil {
		t.Fatal("File() is nil")
	}
	name, flags, err := tunGetIff(f.Fd())
	if err != nil || name != iface.Name || flags&(iffTap|iffNoPI|iffVnetHdr) != iffTap|iffNoPI|iffVnetHdr {
		t.Errorf("TUNGETIFF: %q %#x %v", name, flags, err)
	}
	master, exists, err := linkMaster(iface.Name)
	if err != nil || !exists || master != "vmb-net5" {
		t.Errorf("%s is a port of %q (exists %v, %v), want vmb-net5", iface.Name, master, exists, err)
	}
	// The opening acquired the network on c.
	if !holds(brokerStatus(t), os.Getpid(), "net5") {
		t.Error("OpenInterface did not acquire net5")
	}
	// Through ExtraFiles the child sees the device as fd 3.
	out, err := helper("tap", f).Output()
	if err != nil || !strings.HasPrefix(string(out), iface.Name+" ") {
		t.Errorf("child with ExtraFiles: %q %v", out, err)
	}
	if err := iface.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if iface.File() != nil || iface.Close() != nil {
		t.Error("File or Close after Close")
	}
	deadline := time.Now().Add(waitLimit)
	for {
		_, exists, err = linkMaster(iface.Name)
		if err != nil || !exists {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists after Close", iface.Name)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The process-wide API too.
	pw, err := OpenInterface("net5")
	if err != nil {
		t.Fatalf("OpenInterface: %v", err)
	}
	if name, _, err := tunGetIff(pw.File().Fd()); err != nil || name != pw.Name {
		t.Errorf("process-wide interface: %q %v", name, err)
	}
	pw.Close()
	if err := ReleaseNetwork("net5"); err != nil {
		t.Errorf("ReleaseNetwork: %v", err)
	}
}

func TestProcessWideAPI(t *testing.T) {
	needBroker(t)
	n, err := AcquireNetwork("net1")
	if err != nil {
		t.Fatalf("AcquireNetwork: %v", err)
	}
	if n.Name != "net1" || n.Bridge != "vmb-net1" || !uuidPattern.MatchString(n.UUID) {
		t.Errorf("network: %+v", n)
	}
	if !holds(brokerStatus(t), os.Getpid(), "net1") {
		t.Error("the process-wide connection does not hold net1")
	}
	if err := ReleaseNetwork("net1"); err != nil {
		t.Errorf("ReleaseNetwork: %v", err)
	}
	wantErr(t, "second ReleaseNetwork", ReleaseNetwork("net1"), ErrNotFound)
	_, err = AcquireNetwork("-lead")
	wantErr(t, "AcquireNetwork invalid name", err, ErrInvalidRequest)
	wantMessage(t, "AcquireNetwork invalid name", LastMessage(), "invalid network name")
}

// 100 goroutines through one Conn and through the process-wide API at
// once (go test -race checks the binding's own state).
func TestConcurrentUse(t *testing.T) {
	needBroker(t)
	c := connect(t)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var n *Network
			var err error
			switch i % 4 {
			case 0, 1:
				n, err = c.Acquire("net6")
			case 2:
				n, err = AcquireNetwork("net6")
			case 3:
				var s *Status
				if s, err = c.Status(); err == nil && s.Network("net6") == nil {
					// Created by another goroutine only later: fine.
					n = &Network{Name: "net6"}
				} else if err == nil {
					n = &Network{Name: s.Network("net6").Name}
				}
			}
			if err != nil {
				errs <- err
			} else if n.Name != "net6" {
				errs <- errors.New("wrong network " + n.Name)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := peers(t, "net6"); got != 2 {
		t.Errorf("net6 has %d peers, want 2 (the Conn and the process-wide connection)", got)
	}
	if err := ReleaseNetwork("net6"); err != nil {
		t.Error(err)
	}
	// Close racing calls: they either finish or fail cleanly.
	var wg2 sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			_, err := c.Acquire("net6")
			if err != nil && !errors.Is(err, ErrConnectionFailure) {
				t.Errorf("Acquire racing Close: %v", err)
			}
		}()
	}
	c.Close()
	wg2.Wait()
	waitPeers(t, "net6", 0)
}

// A stopped broker makes a call time out instead of hanging.
func TestTimeout(t *testing.T) {
	needBroker(t)
	c := connect(t)
	wantErr(t, "negative timeout", c.SetTimeout(-time.Second), ErrInvalidRequest)
	if err := c.SetTimeout(200 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Acquire("net3"); err != nil {
		t.Fatal(err)
	}
	if err := broker.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	_, err := c.Status()
	broker.Process.Signal(syscall.SIGCONT)
	wantErr(t, "Status from a stopped broker", err, ErrConnectionFailure)
	// The connection is lost for good: the broker dropped its references.
	_, err = c.Acquire("net3")
	wantErr(t, "Acquire after the timeout", err, ErrConnectionFailure)
	waitPeers(t, "net3", 0)
}

// Shutdown from another goroutine cancels a call waiting forever.
func TestShutdownCancelsAWaitingCall(t *testing.T) {
	needBroker(t)
	c := connect(t)
	if err := c.SetTimeout(0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Acquire("net2"); err != nil {
		t.Fatal(err)
	}
	if err := broker.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer broker.Process.Signal(syscall.SIGCONT)
	result := make(chan error, 1)
	go func() {
		_, err := c.Status()
		result <- err
	}()
	// Whether Shutdown comes before the request or while it waits, the
	// call fails the same way.
	time.Sleep(50 * time.Millisecond)
	c.Shutdown()
	select {
	case err := <-result:
		wantErr(t, "Status cancelled by Shutdown", err, ErrConnectionFailure)
	case <-time.After(waitLimit):
		t.Fatal("Shutdown did not cancel the waiting call")
	}
	broker.Process.Signal(syscall.SIGCONT)
	_, err := c.Acquire("net2")
	wantErr(t, "Acquire after Shutdown", err, ErrConnectionFailure)
	waitPeers(t, "net2", 0)
	if err := c.Close(); err != nil {
		t.Errorf("Close after Shutdown: %v", err)
	}
}
