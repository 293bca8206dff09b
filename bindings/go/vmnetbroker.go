// SPDX-License-Identifier: Apache-2.0
// Errors, the library's version and the original API over the process-wide connection.

package vmnetbroker

// #include <stdlib.h>
// #include "vmnet-broker.h"
import "C"

import (
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// Error is a status code of the C library (vmnet_broker_return_t). Values
// 3 to 7 are the broker's own error codes on the wire; 1 and 2 come from
// the client side. Match them with errors.Is.
type Error uint32

// The C library's status codes (never renumbered).
const (
	// The broker could not be reached or written to, did not reply in
	// time, or the connection was closed or lost.
	ErrConnectionFailure Error = C.VMNET_BROKER_CONNECTION_FAILURE
	// The original package's name for ErrConnectionFailure (the same value).
	ErrXPCFailure Error = C.VMNET_BROKER_XPC_FAILURE
	// The broker's reply could not be understood.
	ErrInvalidReply Error = C.VMNET_BROKER_INVALID_REPLY
	// The user is not allowed to use the network.
	ErrNotAllowed Error = C.VMNET_BROKER_NOT_ALLOWED
	// The request was malformed (an invalid network name, say).
	ErrInvalidRequest Error = C.VMNET_BROKER_INVALID_REQUEST
	// No such network, or (Release) the connection does not hold it.
	ErrNotFound Error = C.VMNET_BROKER_NOT_FOUND
	// The broker failed to create the network or the TAP device.
	ErrCreateFailure Error = C.VMNET_BROKER_CREATE_FAILURE
	// Internal error; also a 9th network or a 17th interface on one
	// connection.
	ErrInternalError Error = C.VMNET_BROKER_INTERNAL_ERROR
)

// Error returns the C library's description (vmnet_broker_strerror). A
// value the library does not know keeps its number: "unknown status (42)".
func (e Error) Error() string {
	text := C.GoString(C.vmnet_broker_strerror(C.vmnet_broker_return_t(e)))
	if e == 0 || e > ErrInternalError {
		text += " (" + strconv.FormatUint(uint64(e), 10) + ")"
	}
	return text
}

// status turns a C status code into an error: nil for success.
func status(rc C.vmnet_broker_return_t) error {
	if rc == C.VMNET_BROKER_SUCCESS {
		return nil
	}
	return Error(rc)
}

// sysError is a system call that failed in the binding itself: it keeps
// the errno (errors.As, errors.Unwrap) and matches its status code with
// errors.Is, so that every error of the package is a status code.
type sysError struct {
	op   string
	code Error
	err  error
}

func (e *sysError) Error() string {
	return "vmnet-broker: " + e.op + ": " + e.err.Error()
}

func (e *sysError) Unwrap() error { return e.err }

func (e *sysError) Is(target error) bool { return target == e.code }

// Defaults of the C library.
const (
	// DefaultSocket is the broker's socket when $VMNET_BROKER_SOCKET is
	// not set (VMNET_BROKER_DEFAULT_SOCKET).
	DefaultSocket = "/run/vmnet-broker/vmnet-broker.sock"
	// SocketEnv names the broker's socket (VMNET_BROKER_SOCKET_ENV).
	SocketEnv = "VMNET_BROKER_SOCKET"
	// TimeoutEnv is the process-wide connection's reply timeout in
	// milliseconds, 0 waiting forever (VMNET_BROKER_TIMEOUT_MS); read
	// when that connection is opened.
	TimeoutEnv = "VMNET_BROKER_TIMEOUT_MS"
	// DefaultTimeout is how long a call waits for the broker's reply
	// unless told otherwise (VMNET_BROKER_DEFAULT_TIMEOUT_MS).
	DefaultTimeout = 30 * time.Second
)

// Version returns the C library's version, "MAJOR.MINOR.PATCH": the
// version of the sources compiled in, or of the installed library under
// the vmnetbroker_system tag.
func Version() string {
	return C.GoString(C.vmnet_broker_version())
}

// cString returns s as a NUL-terminated C string in Go memory, which cgo
// may pass to C for the length of a call (saving a C malloc and free per
// call). A string holding a NUL byte cannot be passed: ErrInvalidRequest.
func cString(s string) ([]byte, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, ErrInvalidRequest
	}
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b, nil
}

func cPtr(b []byte) *C.char { return (*C.char)(unsafe.Pointer(&b[0])) }

// AcquireNetwork acquires the network name over the process-wide
// connection (opened on first use at $VMNET_BROKER_SOCKET, else
// DefaultSocket, and kept open for the life of the process, so the network
// stays acquired until ReleaseNetwork or the process exits). Safe for
// concurrent use. If the connection is lost the call fails with
// ErrConnectionFailure, the broker drops every reference it held, and the
// next call opens a new connection.
func AcquireNetwork(name string) (*Network, error) {
	b, err := cString(name)
	if err != nil {
		return nil, err
	}
	return acquire(nil, b)
}

// ReleaseNetwork drops the process-wide connection's reference to the
// network name (ErrNotFound if it holds none).
func ReleaseNetwork(name string) error {
	b, err := cString(name)
	if err != nil {
		return err
	}
	return status(C.vmnet_broker_release_network(cPtr(b)))
}

// OpenInterface opens a TAP device on the network name over the
// process-wide connection, acquiring the network on it first if needed.
func OpenInterface(name string) (*Interface, error) {
	b, err := cString(name)
	if err != nil {
		return nil, err
	}
	var rc C.vmnet_broker_return_t
	i := C.vmnet_broker_open_interface(cPtr(b), &rc)
	if i == nil {
		return nil, failure(rc)
	}
	return takeInterface(i), nil
}

// LastMessage returns why the broker refused the last request made over
// the process-wide connection (its reply's "message": why a creation
// failed, the 8-network limit, the naming rule), or "" when that call
// succeeded or no reply carried one. See (*Conn).LastMessage.
func LastMessage() string {
	return takeCString(C.vmnet_broker_last_message())
}

// takeCString copies a malloc'd C string into Go memory and frees it; ""
// for NULL.
func takeCString(p *C.char) string {
	if p == nil {
		return ""
	}
	defer C.free(unsafe.Pointer(p))
	return C.GoString(p)
}

// failure is the error of a call that returned no object: its status, or
// ErrInternalError should the library report success without one.
func failure(rc C.vmnet_broker_return_t) error {
	if rc == C.VMNET_BROKER_SUCCESS {
		return ErrInternalError
	}
	return Error(rc)
}
