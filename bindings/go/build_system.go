// SPDX-License-Identifier: Apache-2.0
// cgo flags for -tags vmnetbroker_system: link the installed C library.

//go:build vmnetbroker_system

package vmnetbroker

// For distributions that package libvmnet-broker: its header and library
// come from pkg-config (vmnet-broker.pc); nothing is compiled from the
// module's copy of libclient.

// #cgo pkg-config: vmnet-broker
import "C"
