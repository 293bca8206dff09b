// SPDX-License-Identifier: Apache-2.0
// cgo flags for the default build: libclient's own sources compiled in.

//go:build !vmnetbroker_system

package vmnetbroker

// The libclient_*.c files include libclient's sources, so that `go get`
// builds the package from the module alone (a C compiler and jansson's
// development files are all it needs). libclient_version.c defines the
// version string.

// #cgo CFLAGS: -I${SRCDIR}/../../libclient/include -I${SRCDIR}/../../libclient
// #cgo CFLAGS: -D_GNU_SOURCE
// #cgo pkg-config: jansson
// #cgo LDFLAGS: -pthread
import "C"
