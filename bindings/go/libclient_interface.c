// SPDX-License-Identifier: Apache-2.0
// Compiles libclient/interface.c into the Go package (cgo builds only its own folder).

//go:build !vmnetbroker_system

#include "../../libclient/interface.c"
