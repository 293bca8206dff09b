// SPDX-License-Identifier: Apache-2.0
// Compiles libclient/default_connection.c into the Go package (cgo builds only its own folder).

//go:build !vmnetbroker_system

#include "../../libclient/default_connection.c"
