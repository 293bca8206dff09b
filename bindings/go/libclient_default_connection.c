// SPDX-License-Identifier: Apache-2.0
// libclient/default_connection.c, compiled into the Go package.

// The constraint must stay as go/build reads it.
// clang-format off
//go:build !vmnetbroker_system
// clang-format on

#include "../../libclient/default_connection.c"
