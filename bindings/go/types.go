// SPDX-License-Identifier: Apache-2.0
// Networks, interfaces and status snapshots as Go values, copied out of the C objects.

package vmnetbroker

/*
#include "vmnet-broker.h"

// Every field of a network in one cgo call (each call costs about as much
// as copying all of them): acquire is the call VM managers repeat.
struct vmnb_network_fields {
	const char *name, *mode, *uuid, *bridge, *subnet, *mask, *gateway;
	const char *description, *dhcp_start, *dhcp_end, *dns, *ipv6_prefix;
	const char *json;
	unsigned prefix_length, ipv6_prefix_length, mtu;
};

static void vmnb_network_fields(vmnet_broker_network_t *n,
				struct vmnb_network_fields *f) {
	f->name = vmnet_broker_network_name(n);
	f->mode = vmnet_broker_network_mode(n);
	f->uuid = vmnet_broker_network_uuid(n);
	f->bridge = vmnet_broker_network_bridge(n);
	f->subnet = vmnet_broker_network_subnet(n);
	f->mask = vmnet_broker_network_mask(n);
	f->gateway = vmnet_broker_network_gateway(n);
	f->description = vmnet_broker_network_description(n);
	f->dhcp_start = vmnet_broker_network_dhcp_start(n);
	f->dhcp_end = vmnet_broker_network_dhcp_end(n);
	f->dns = vmnet_broker_network_dns(n);
	f->ipv6_prefix = vmnet_broker_network_ipv6_prefix(n);
	f->json = vmnet_broker_network_json(n);
	f->prefix_length = vmnet_broker_network_prefix_length(n);
	f->ipv6_prefix_length = vmnet_broker_network_ipv6_prefix_length(n);
	f->mtu = vmnet_broker_network_mtu(n);
}

struct vmnb_interface_fields {
	const char *name, *mac, *network, *bridge, *json;
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
	f->mtu = vmnet_broker_interface_mtu(i);
	f->fd = vmnet_broker_interface_take_fd(i);
}
*/
import "C"

import (
	"encoding/json"
	"os"
	"sync"
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

// takeNetwork copies n into a Network and frees it.
func takeNetwork(n *C.vmnet_broker_network_t) *Network {
	var f C.struct_vmnb_network_fields
	C.vmnb_network_fields(n, &f)
	network := &Network{
		Name:             goString(f.name),
		Mode:             goString(f.mode),
		UUID:             goString(f.uuid),
		Bridge:           goString(f.bridge),
		Subnet:           goString(f.subnet),
		Mask:             goString(f.mask),
		Gateway:          goString(f.gateway),
		MTU:              int(f.mtu),
		PrefixLength:     int(f.prefix_length),
		Description:      goString(f.description),
		DHCPStart:        goString(f.dhcp_start),
		DHCPEnd:          goString(f.dhcp_end),
		DNS:              goString(f.dns),
		IPv6Prefix:       goString(f.ipv6_prefix),
		IPv6PrefixLength: int(f.ipv6_prefix_length),
		JSON:             goJSON(f.json),
	}
	C.vmnet_broker_network_free(n)
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
