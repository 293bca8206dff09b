// SPDX-License-Identifier: Apache-2.0
// libclient/version.c, compiled into the Go package (cgo: this folder).

// The constraint must stay as go/build reads it.
// clang-format off
//go:build !vmnetbroker_system
// clang-format on

// CMake passes ${PROJECT_VERSION}; cgo cannot pass a quoted string in
// CFLAGS, so it is written here. TestVersionMatchesCMake checks that it
// equals CMakeLists.txt's project(VERSION).
#define VMNET_BROKER_VERSION_STRING "0.1.0"

#include "../../libclient/version.c"
