// SPDX-License-Identifier: Apache-2.0
// Networks, interfaces and status snapshots as Go values, copied out of the C objects.

package vmnetbroker

/*
#include <string.h>
#include "vmnet-broker.h"

// Every field of a network in one cgo call (each call costs about as much
// as copying all of them), with the strings' lengths so that Go copies
// them all into one allocation: acquire is the call VM managers repeat.
enum {
	VMNB_NAME, VMNB_MODE, VMNB_UUID, VMNB_BRIDGE, VMNB_SUBNET, VMNB_MASK,
	VMNB_GATEWAY, VMNB_DESCRIPTION, VMNB_DHCP_START, VMNB_DHCP_END, VMNB_DNS,
	VMNB_IPV6_PREFIX, VMNB_JSON, VMNB_STRINGS
};

struct vmnb_network_fields {
	const char *str[VMNB_STRINGS]; // NULL when absent
	size_t len[VMNB_STRINGS];
	unsigned prefix_length, ipv6_prefix_length, mtu;
};

static void vmnb_network_fields(vmnet_broker_network_t *n,
				struct vmnb_network_fields *f) {
	f->str[VMNB_NAME] = vmnet_broker_network_name(n);
	f->str[VMNB_MODE] = vmnet_broker_network_mode(n);
	f->str[VMNB_UUID] = vmnet_broker_network_uuid(n);
	f->str[VMNB_BRIDGE] = vmnet_broker_network_bridge(n);
	f->str[VMNB_SUBNET] = vmnet_broker_network_subnet(n);
	f->str[VMNB_MASK] = vmnet_broker_network_mask(n);
	f->str[VMNB_GATEWAY] = vmnet_broker_network_gateway(n);
	f->str[VMNB_DESCRIPTION] = vmnet_broker_network_description(n);
	f->str[VMNB_DHCP_START] = vmnet_broker_network_dhcp_start(n);
	f->str[VMNB_DHCP_END] = vmnet_broker_network_dhcp_end(n);
	f->str[VMNB_DNS] = vmnet_broker_network_dns(n);
	f->str[VMNB_IPV6_PREFIX] = vmnet_broker_network_ipv6_prefix(n);
	f->str[VMNB_JSON] = vmnet_broker_network_json(n);
	for (int i = 0; i < VMNB_STRINGS; i++)
		f->len[i] = f->str[i] != NULL ? strlen(f->str[i]) : 0;
	f->prefix_length = vmnet_broker_network_prefix_length(n);
	f->ipv6_prefix_length = vmnet_broker_network_ipv6_prefix_length(n);
	f->mtu = vmnet_broker_network_mtu(n);
}

// Acquire in one cgo call (each costs about a tenth of a microsecond):
// acquires name on c (NULL: the process-wide connection), copies the
// network's strings one after another into buf and frees the network. The
// pointers left in f only say which strings were present. When the strings
// do not fit in cap bytes the network is stored in *big instead, for the
// caller to copy and free.
static vmnet_broker_return_t vmnb_acquire(vmnet_broker_connection_t *c,
					  const char *name,
					  struct vmnb_network_fields *f,
					  char *buf, size_t cap,
					  vmnet_broker_network_t **big) {
	vmnet_broker_network_t *n = NULL;
	vmnet_broker_return_t rc;
	size_t total = 0;

	*big = NULL;
	if (c != NULL)
		rc = vmnet_broker_connection_acquire(c, name, &n);
	else
		n = vmnet_broker_acquire_network(name, &rc);
	if (n == NULL)
		return rc != VMNET_BROKER_SUCCESS ? rc : VMNET_BROKER_INTERNAL_ERROR;
	vmnb_network_fields(n, f);
	for (int i = 0; i < VMNB_STRINGS; i++)
		total += f->len[i];
	if (total > cap) {
		*big = n;
		return VMNET_BROKER_SUCCESS;
	}
	for (int i = 0; i < VMNB_STRINGS; i++) {
		if (f->str[i] != NULL)
			memcpy(buf, f->str[i], f->len[i]);
		buf += f->len[i];
	}
	vmnet_broker_network_free(n);
	return VMNET_BROKER_SUCCESS;
}

struct vmnb_interface_fields {
	const char *name, *mac, *network, *bridge, *json, *ipv4, *ipv6;
	unsigned mtu;
	int fd;
};

// Copies the fields and takes the descriptor: the Go side owns it from
// here (an *os.File), and vmnet_broker_interface_free() leaves it open.
static void vmnb_interface_take(vmnet_broker_interface_t *i,
				struct vmnb_interface_fields *f) {
	f->name = vmnet_broker_interface_name(i);
	f->mac = vmnet_broker_interface_mac(i);
	f->network = vmnet_broker_interface_network(i);
	f->bridge = vmnet_broker_interface_bridge(i);
	f->json = vmnet_broker_interface_json(i);
	f->ipv4 = vmnet_broker_interface_ipv4(i);
	f->ipv6 = vmnet_broker_interface_ipv6(i);
	f->mtu = vmnet_broker_interface_mtu(i);
	f->fd = vmnet_broker_interface_take_fd(i);
}
*/
import "C"

import (
	"encoding/json"
	"os"
	"sync"
	"unsafe"
)

// Network is what the broker says about an acquired network (the
// "network" object of docs/protocol.md). A string the broker did not send
// is "", a number 0. Dropping it does not release the network: the
// connection holds the reference.
type Network struct {
	Name    string // "shared"
	Mode    string // "shared" or "host"
	UUID    string // this instance of the network: a new one when made again
	Bridge  string // the Linux bridge to attach a TAP or veth to
	Subnet  string // "192.168.64.0"
	Mask    string // "255.255.255.0"
	Gateway string // the host's address on the bridge
	MTU     int

	PrefixLength     int    // the subnet's prefix length (24)
	Description      string // the configuration's description
	DHCPStart        string // first address DHCP hands out; "" without DHCP
	DHCPEnd          string // last address DHCP hands out
	DNS              string // the DNS server guests are told to use
	IPv6Prefix       string // "fd12:3456:789a:1::"; "" without IPv6
	IPv6PrefixLength int    // 64; 0 without IPv6

	// The whole serialization, so keys a later broker adds stay reachable.
	JSON json.RawMessage
}

// goString is C.GoString with NULL as "": absent fields read as empty.
func goString(s *C.char) string {
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

func goJSON(s *C.char) json.RawMessage {
	if s == nil {
		return nil
	}
	return json.RawMessage(C.GoString(s))
}

// acquireBuffer is the room for a network's strings as vmnb_acquire copies
// them: a network reply is a few hundred bytes. (A variable so that a test
// can take the path of a network too large for it.)
var acquireBuffer = 1024

// Buffers for vmnb_acquire, reused: a new one would be zeroed for every
// call, which cost more than the rest of the binding's work together.
var acquireBuffers = sync.Pool{New: func() interface{} {
	buf := make([]byte, 1024)
	return &buf
}}

// acquire acquires name on c (nil: the process-wide connection).
func acquire(c *C.vmnet_broker_connection_t, name []byte) (*Network, error) {
	var f C.struct_vmnb_network_fields
	var big *C.vmnet_broker_network_t
	bufp := acquireBuffers.Get().(*[]byte)
	defer acquireBuffers.Put(bufp)
	buf := (*bufp)[:acquireBuffer:acquireBuffer]
	rc := C.vmnb_acquire(c, cPtr(name), &f, (*C.char)(unsafe.Pointer(&buf[0])),
		C.size_t(len(buf)), &big)
	if err := status(rc); err != nil {
		return nil, err
	}
	if big != nil {
		return takeNetwork(big), nil
	}
	return newNetwork(&f, buf), nil
}

// takeNetwork copies n into a Network and frees it.
func takeNetwork(n *C.vmnet_broker_network_t) *Network {
	var f C.struct_vmnb_network_fields
	C.vmnb_network_fields(n, &f)
	var buf []byte
	for i := range f.str {
		if f.str[i] != nil {
			buf = append(buf, unsafe.Slice((*byte)(unsafe.Pointer(f.str[i])), int(f.len[i]))...)
		}
	}
	C.vmnet_broker_network_free(n)
	return newNetwork(&f, buf)
}

// newNetwork makes a Network of f's numbers and of the strings laid one
// after another in buf with f's lengths (f's pointers are only looked at
// for NULL). The strings share one allocation, the JSON has its own (buf
// is reused).
func newNetwork(f *C.struct_vmnb_network_fields, buf []byte) *Network {
	var end [C.VMNB_STRINGS]int
	total := 0
	for i := range f.len {
		total += int(f.len[i])
		end[i] = total
	}
	// The JSON comes last (VMNB_JSON): the strings before it are one Go
	// string, the JSON one []byte.
	all := string(buf[:end[C.VMNB_JSON-1]])
	field := func(i int) string {
		if i == 0 {
			return all[:end[0]]
		}
		return all[end[i-1]:end[i]]
	}
	network := &Network{
		Name:             field(C.VMNB_NAME),
		Mode:             field(C.VMNB_MODE),
		UUID:             field(C.VMNB_UUID),
		Bridge:           field(C.VMNB_BRIDGE),
		Subnet:           field(C.VMNB_SUBNET),
		Mask:             field(C.VMNB_MASK),
		Gateway:          field(C.VMNB_GATEWAY),
		MTU:              int(f.mtu),
		PrefixLength:     int(f.prefix_length),
		Description:      field(C.VMNB_DESCRIPTION),
		DHCPStart:        field(C.VMNB_DHCP_START),
		DHCPEnd:          field(C.VMNB_DHCP_END),
		DNS:              field(C.VMNB_DNS),
		IPv6Prefix:       field(C.VMNB_IPV6_PREFIX),
		IPv6PrefixLength: int(f.ipv6_prefix_length),
	}
	if f.str[C.VMNB_JSON] != nil {
		network.JSON = append(json.RawMessage(nil), buf[end[C.VMNB_JSON-1]:end[C.VMNB_JSON]]...)
	}
	return network
}

// Interface is a TAP device the broker made on a network's bridge for this
// process's VM (the "interface" object of docs/protocol.md), with its
// descriptor. The device exists as long as some process holds the
// descriptor: pass File to the VM (exec.Cmd.ExtraFiles) and Close it here
// once the VM has started, or when the VM is done. Keep the connection
// that opened it open while the VM runs: the network lives only as long as
// some connection holds it.
type Interface struct {
	Name    string // "vmt-" and 8 hex digits
	MAC     string // the address the guest should use
	Network string // the network it is on
	Bridge  string // that network's bridge
	MTU     int    // the device's MTU, the bridge's
	// The guest's addresses, known before it boots: the IPv4 address the
	// network's DHCP server reserved for MAC, and the address SLAAC gives
	// MAC in the network's /64; "" when the network has no DHCP (IPv6).
	IPv4 string
	IPv6 string

	// The whole "interface" object, for keys a later broker adds.
	JSON json.RawMessage

	mu     sync.Mutex
	file   *os.File
	closed bool
}

// takeInterface copies i into an Interface that owns its descriptor, and
// frees i.
func takeInterface(i *C.vmnet_broker_interface_t) *Interface {
	var f C.struct_vmnb_interface_fields
	C.vmnb_interface_take(i, &f)
	iface := &Interface{
		Name:    goString(f.name),
		MAC:     goString(f.mac),
		Network: goString(f.network),
		Bridge:  goString(f.bridge),
		MTU:     int(f.mtu),
		IPv4:    goString(f.ipv4),
		IPv6:    goString(f.ipv6),
		JSON:    goJSON(f.json),
	}
	C.vmnet_broker_interface_free(i)
	// The library returns an interface only with its descriptor, which is
	// close-on-exec (so children only get it through ExtraFiles).
	if f.fd >= 0 {
		iface.file = os.NewFile(uintptr(f.fd), "/dev/net/tun:"+iface.Name)
	}
	return iface
}

// File returns the TAP descriptor (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, as
// QEMU's -netdev tap,fd=N,vhost=on expects). It stays owned by the
// Interface: do not close it yourself. Put it in exec.Cmd.ExtraFiles and
// the child sees it as descriptor 3 and up, in order. Nil once Close was
// called.
func (i *Interface) File() *os.File {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return nil
	}
	return i.file
}

// Close closes this process's copy of the TAP descriptor. The device goes
// away once no process (the VM included) holds one. Idempotent: later
// calls return nil.
func (i *Interface) Close() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed || i.file == nil {
		i.closed = true
		return nil
	}
	i.closed = true
	if err := i.file.Close(); err != nil {
		return &sysError{op: "close " + i.Name, code: ErrInternalError, err: err}
	}
	return nil
}
