// SPDX-License-Identifier: Apache-2.0
// Explicit connections: one peer of the broker each, safe for concurrent use.

package vmnetbroker

/*
#include <fcntl.h>
#include "vmnet-broker.h"

// A close-on-exec copy of the connection's socket, or -1 with errno set.
static int vmnb_dup(const vmnet_broker_connection_t *c) {
	return fcntl(vmnet_broker_connection_fd(c), F_DUPFD_CLOEXEC, 0);
}
*/
import "C"

import (
	"math"
	"os"
	"runtime"
	"sync"
	"time"
)

// Conn is a connection to the broker: one peer, with its own references.
// Networks it acquires stay acquired until Release, Close, or the process
// exits (and, after File, until every process holding a copy has closed
// it or exited). Safe for concurrent use by several goroutines (the C
// library serializes the requests). A Conn that becomes unreachable
// without Close is closed by a finalizer; call Close to drop its networks
// at a known time.
type Conn struct {
	// Held for reading by every call and for writing by Close, which must
	// not free the C connection under a call still using it.
	mu sync.RWMutex
	c  *C.vmnet_broker_connection_t
}

// Connect connects to the broker at socketPath ("": $VMNET_BROKER_SOCKET,
// else DefaultSocket). Each reply is waited for DefaultTimeout unless
// SetTimeout says otherwise. ErrConnectionFailure when the broker cannot
// be reached.
func Connect(socketPath string) (*Conn, error) {
	var path *C.char
	if socketPath != "" {
		b, err := cString(socketPath)
		if err != nil {
			return nil, err
		}
		path = cPtr(b)
	}
	var c *C.vmnet_broker_connection_t
	if err := status(C.vmnet_broker_connect(path, &c)); err != nil {
		return nil, err
	}
	conn := &Conn{c: c}
	runtime.SetFinalizer(conn, (*Conn).Close)
	return conn, nil
}

// SetTimeout sets how long each later call waits for the broker's reply (0:
// forever; rounded up to a millisecond). A call that runs out of time
// returns ErrConnectionFailure and the connection is lost: the broker
// drops its references, and every later call fails the same way.
func (c *Conn) SetTimeout(d time.Duration) error {
	if d < 0 {
		return ErrInvalidRequest
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms > math.MaxUint32 {
		ms = math.MaxUint32
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.c == nil {
		return ErrConnectionFailure
	}
	return status(C.vmnet_broker_connection_set_timeout(c.c, C.uint(ms)))
}

// Acquire acquires the network name (creating it if needed) and describes
// it. A connection holds one reference to a network however often it
// acquires it, and at most 8 networks (ErrInternalError for a 9th).
func (c *Conn) Acquire(name string) (*Network, error) {
	b, err := cString(name)
	if err != nil {
		return nil, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.c == nil {
		return nil, ErrConnectionFailure
	}
	return acquire(c.c, b)
}

// Release drops the connection's reference to the network name
// (ErrNotFound if it holds none).
func (c *Conn) Release(name string) error {
	b, err := cString(name)
	if err != nil {
		return err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.c == nil {
		return ErrConnectionFailure
	}
	return status(C.vmnet_broker_connection_release(c.c, cPtr(b)))
}

// OpenInterface asks the broker for a TAP device on the network name,
// acquiring the network on this connection first if it does not hold it.
// ErrInternalError when the connection already has 16 live interfaces.
func (c *Conn) OpenInterface(name string) (*Interface, error) {
	b, err := cString(name)
	if err != nil {
		return nil, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.c == nil {
		return nil, ErrConnectionFailure
	}
	var i *C.vmnet_broker_interface_t
	if err := status(C.vmnet_broker_connection_open_interface(c.c, cPtr(b), &i)); err != nil {
		return nil, err
	}
	return takeInterface(i), nil
}

// Status asks the broker for its state.
func (c *Conn) Status() (*Status, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.c == nil {
		return nil, ErrConnectionFailure
	}
	var s *C.vmnet_broker_status_t
	if err := status(C.vmnet_broker_connection_get_status(c.c, &s)); err != nil {
		return nil, err
	}
	return takeStatus(s), nil
}

// LastMessage returns why the broker refused the last request made on the
// connection, in English for people (its reply's "message": "subnet ...
// overlaps ...", the 8-network limit, the naming rule), or "" when that
// call succeeded or no reply carried one. Errors stay bare Error values, so
// that errors.Is and type assertions keep working: call LastMessage right
// after the failing call to show the reason. The C library keeps one
// message per connection, the last call's: with goroutines sharing a Conn
// it is the message of whichever call finished last. The wording may
// change between versions; match on the Error, not on this text.
func (c *Conn) LastMessage() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.c == nil {
		return ""
	}
	return takeCString(C.vmnet_broker_connection_last_message(c.c))
}

// File returns a duplicate of the connection's socket (close-on-exec; the
// caller closes it). Give it to a child through exec.Cmd.ExtraFiles and
// the connection's networks stay acquired as long as the child lives, even
// after this process closes the Conn. The child must not talk on it: the
// replies would be read here.
func (c *Conn) File() (*os.File, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.c == nil {
		return nil, ErrConnectionFailure
	}
	fd, err := C.vmnb_dup(c.c)
	if fd < 0 {
		return nil, &sysError{op: "duplicate the connection",
			code: ErrConnectionFailure, err: err}
	}
	return os.NewFile(uintptr(fd), "vmnet-broker-connection"), nil
}

// Shutdown cancels: it shuts the connection down without closing it, from
// any goroutine. A call waiting for a reply returns ErrConnectionFailure at
// once, the broker drops the connection's references (in every process
// sharing the socket, children holding File included), and later calls
// fail the same way. Close still frees it.
func (c *Conn) Shutdown() {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.c != nil {
		C.vmnet_broker_connection_shutdown(c.c)
	}
}

// Close closes the connection: the broker drops its references unless a
// copy from File is still open somewhere. It waits for calls in progress
// on the connection to end. Idempotent: a second Close returns nil; every
// other call after Close returns ErrConnectionFailure.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c == nil {
		return nil
	}
	C.vmnet_broker_connection_close(c.c)
	c.c = nil
	runtime.SetFinalizer(c, nil)
	return nil
}
