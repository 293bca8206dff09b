// SPDX-License-Identifier: Apache-2.0
// Package documentation: what the binding is and how it is built.

// Package vmnetbroker is the Go binding of the vmnet-broker client library
// (libclient/include/vmnet-broker.h): it acquires named, shared,
// reference-counted VM networks from the vmnet-broker daemon.
//
// Import it as
//
//	import vmnetbroker "github.com/vmnet-broker/vmnet-broker/bindings/go"
//
// The original macOS package's names work unchanged over one process-wide
// connection: AcquireNetwork, ReleaseNetwork, OpenInterface, Error and its
// constants (ErrNotFound, ErrXPCFailure, ...), matched with errors.Is. A
// network stays acquired while the connection that acquired it is open;
// the process-wide one stays open for the life of the process.
//
// A VM manager uses explicit connections (Connect): each Conn is one peer
// of the broker with its own references, dropped when it is closed or the
// process exits. Conn.OpenInterface returns a TAP device on the network's
// bridge whose descriptor (Interface.File) goes to QEMU through
// exec.Cmd.ExtraFiles; Conn.File gives a child a copy of the connection so
// the networks live as long as the child.
//
// # Building
//
// By default the package compiles the C library's own sources from the
// module (cgo), so `go get` needs only a C compiler and jansson's
// development files (Debian: build-essential pkg-config libjansson-dev);
// nothing has to be installed from this repository first. With the build
// tag vmnetbroker_system it links the installed library instead, found
// through pkg-config (vmnet-broker.pc):
//
//	go build -tags vmnetbroker_system
//
// Every error the package returns is an Error, or wraps one
// (errors.Is(err, vmnetbroker.ErrConnectionFailure) for a system call that
// failed in the binding itself).
package vmnetbroker
