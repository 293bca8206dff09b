// SPDX-License-Identifier: Apache-2.0
// Compiles libclient/version.c into the Go package (cgo builds only its own folder).

//go:build !vmnetbroker_system

// CMake passes ${PROJECT_VERSION}; cgo cannot pass a quoted string in
// CFLAGS, so it is written here. TestVersionMatchesCMake checks that it
// equals CMakeLists.txt's project(VERSION).
#define VMNET_BROKER_VERSION_STRING "0.1.0"

#include "../../libclient/version.c"
