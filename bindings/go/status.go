// SPDX-License-Identifier: Apache-2.0
// The broker's status snapshot as Go structs (the "status" object of docs/protocol.md).

package vmnetbroker

// #include "vmnet-broker.h"
import "C"

import "encoding/json"

// Status is a snapshot of the broker's state.
type Status struct {
	// The broker's version; "" from a broker too old to send it.
	Version string
	// The networks that exist: in use, or idle and waiting for removal.
	Networks []NetworkStatus
	// The peers (connections) the broker serves, the asking one included.
	Peers []PeerStatus
	// The whole "status" object, for keys a later broker adds.
	JSON json.RawMessage
}

// NetworkStatus is one network of a Status.
type NetworkStatus struct {
	Name         string
	Mode         string
	Bridge       string
	Subnet       string
	UUID         string
	PrefixLength int
	// How many peers hold it.
	Peers int
	// Kept even when unused.
	Persistent bool
	// Seconds until the unused network is removed; nil while it is in
	// use, or persistent.
	IdleRemaining *float64
	// It works only in part: its dnsmasq was given up on, or the broker
	// could not repair its bridge or rules.
	Degraded bool
	// Why it is degraded, in words; "" while it is not.
	DegradedReason string
}

// PeerStatus is one peer (connection) of a Status.
type PeerStatus struct {
	PID, UID, GID int
	// The networks it holds.
	Networks []string
}

// takeStatus copies s into a Status and frees it.
func takeStatus(s *C.vmnet_broker_status_t) *Status {
	st := &Status{
		Version: goString(C.vmnet_broker_status_broker_version(s)),
		JSON:    goJSON(C.vmnet_broker_status_json(s)),
	}
	nn := C.vmnet_broker_status_network_count(s)
	st.Networks = make([]NetworkStatus, 0, int(nn))
	for i := C.size_t(0); i < nn; i++ {
		n := NetworkStatus{
			Name:         goString(C.vmnet_broker_status_network_name(s, i)),
			Mode:         goString(C.vmnet_broker_status_network_mode(s, i)),
			Bridge:       goString(C.vmnet_broker_status_network_bridge(s, i)),
			Subnet:       goString(C.vmnet_broker_status_network_subnet(s, i)),
			UUID:         goString(C.vmnet_broker_status_network_uuid(s, i)),
			PrefixLength: int(C.vmnet_broker_status_network_prefix_length(s, i)),
			Peers:        int(C.vmnet_broker_status_network_peers(s, i)),
			Persistent:   bool(C.vmnet_broker_status_network_persistent(s, i)),
			Degraded:     bool(C.vmnet_broker_status_network_degraded(s, i)),
			DegradedReason: goString(
				C.vmnet_broker_status_network_degraded_reason(s, i)),
		}
		// The library gives a negative number for JSON's null.
		if idle := float64(C.vmnet_broker_status_network_idle_remaining(s, i)); idle >= 0 {
			n.IdleRemaining = &idle
		}
		st.Networks = append(st.Networks, n)
	}
	np := C.vmnet_broker_status_peer_count(s)
	st.Peers = make([]PeerStatus, 0, int(np))
	for i := C.size_t(0); i < np; i++ {
		p := PeerStatus{
			PID: int(C.vmnet_broker_status_peer_pid(s, i)),
			UID: int(C.vmnet_broker_status_peer_uid(s, i)),
			GID: int(C.vmnet_broker_status_peer_gid(s, i)),
		}
		held := C.vmnet_broker_status_peer_network_count(s, i)
		p.Networks = make([]string, 0, int(held))
		for j := C.size_t(0); j < held; j++ {
			p.Networks = append(p.Networks,
				goString(C.vmnet_broker_status_peer_network_name(s, i, j)))
		}
		st.Peers = append(st.Peers, p)
	}
	C.vmnet_broker_status_free(s)
	return st
}

// Network returns the status of the network name, or nil if it does not
// exist.
func (s *Status) Network(name string) *NetworkStatus {
	for i := range s.Networks {
		if s.Networks[i].Name == name {
			return &s.Networks[i]
		}
	}
	return nil
}
