// SPDX-License-Identifier: Apache-2.0
// libclient/network.c, compiled into the Go package (cgo: this folder).

// The constraint must stay as go/build reads it.
// clang-format off
//go:build !vmnetbroker_system
// clang-format on

#include "../../libclient/network.c"
