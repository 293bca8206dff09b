// SPDX-License-Identifier: Apache-2.0
// Examples of the main calls, run by go test against the real broker.

package vmnetbroker_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	vmnetbroker "github.com/vmnet-broker/vmnet-broker/bindings/go"
)

// The original API: one process-wide connection holds the network for the
// life of the process.
func ExampleAcquireNetwork() {
	network, err := vmnetbroker.AcquireNetwork("shared")
	if err != nil {
		fmt.Println("acquire:", err)
		return
	}
	fmt.Println(network.Name, network.Mode, network.Bridge)
	// Output: shared shared vmb-shared
}

func ExampleReleaseNetwork() {
	if _, err := vmnetbroker.AcquireNetwork("host"); err != nil {
		fmt.Println("acquire:", err)
		return
	}
	fmt.Println(vmnetbroker.ReleaseNetwork("host"))
	// Output: <nil>
}

// Errors are status codes, matched with errors.Is.
func ExampleError() {
	_, err := vmnetbroker.AcquireNetwork("no-such-network")
	fmt.Println(errors.Is(err, vmnetbroker.ErrNotFound))
	// Output: true
}

// The broker's reason for a refusal, for people: read it right after the
// failing call (the error itself stays a status code for errors.Is).
func ExampleConn_LastMessage() {
	conn, err := vmnetbroker.Connect("")
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer conn.Close()
	if _, err := conn.Acquire("bad name!"); err != nil {
		fmt.Println(errors.Is(err, vmnetbroker.ErrInvalidRequest),
			strings.HasPrefix(conn.LastMessage(), "invalid network name"))
	}
	// Output: true true
}

// An explicit connection is one peer with its own references.
func ExampleConnect() {
	conn, err := vmnetbroker.Connect("") // $VMNET_BROKER_SOCKET, else the default
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer conn.Close() // drops the connection's networks
	network, err := conn.Acquire("shared")
	if err != nil {
		fmt.Println("acquire:", err)
		return
	}
	fmt.Println(network.Name, network.PrefixLength)
	// Output: shared 24
}

// A TAP device for QEMU: its descriptor goes to the child as fd 3.
func ExampleConn_OpenInterface() {
	conn, err := vmnetbroker.Connect("")
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer conn.Close()
	iface, err := conn.OpenInterface("shared")
	if err != nil {
		fmt.Println("open interface:", err)
		return
	}
	defer iface.Close()
	// qemu-system-x86_64 -netdev tap,id=n0,fd=3 -device virtio-net-pci,netdev=n0,mac=...
	cmd := exec.Command("sh", "-c", `test -e /proc/self/fd/3 && echo "fd 3 is the TAP"`)
	cmd.ExtraFiles = []*os.File{iface.File()}
	out, err := cmd.Output()
	fmt.Print(string(out))
	fmt.Println(err, iface.Network)
	// Output:
	// fd 3 is the TAP
	// <nil> shared
}

// The broker's state as Go structs.
func ExampleConn_Status() {
	conn, err := vmnetbroker.Connect("")
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer conn.Close()
	if _, err := conn.Acquire("host"); err != nil {
		fmt.Println("acquire:", err)
		return
	}
	status, err := conn.Status()
	if err != nil {
		fmt.Println("status:", err)
		return
	}
	host := status.Network("host")
	fmt.Println(host.Mode, host.Bridge, host.IdleRemaining == nil)
	// A network that works only in part says why.
	if host.Degraded {
		fmt.Println("degraded:", host.DegradedReason)
	}
	// Output: host vmb-host true
}

// A child holding a copy of the connection keeps its networks alive as
// long as it runs, even after this process closes the connection.
func ExampleConn_File() {
	conn, err := vmnetbroker.Connect("")
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer conn.Close()
	if _, err := conn.Acquire("shared"); err != nil {
		fmt.Println("acquire:", err)
		return
	}
	f, err := conn.File()
	if err != nil {
		fmt.Println("file:", err)
		return
	}
	defer f.Close()
	cmd := exec.Command("true")
	cmd.ExtraFiles = []*os.File{f} // the child's fd 3
	fmt.Println(cmd.Run())
	// Output: <nil>
}

// The original API's interface call: a TAP device on the network, over
// the process-wide connection.
func ExampleOpenInterface() {
	iface, err := vmnetbroker.OpenInterface("host")
	if err != nil {
		fmt.Println("open interface:", err)
		return
	}
	defer iface.Close() // the device goes away with the last descriptor
	fmt.Println(iface.Network, iface.Bridge, iface.File() != nil)
	// Output: host vmb-host true
}

// Release drops one connection's reference without closing it.
func ExampleConn_Release() {
	conn, err := vmnetbroker.Connect("")
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer conn.Close()
	if _, err := conn.Acquire("host"); err != nil {
		fmt.Println("acquire:", err)
		return
	}
	fmt.Println(conn.Release("host"))
	fmt.Println(errors.Is(conn.Release("host"), vmnetbroker.ErrNotFound))
	// Output:
	// <nil>
	// true
}
