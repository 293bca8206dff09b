// SPDX-License-Identifier: Apache-2.0
// Placeholder until its owner writes it.
typedef int placeholder_linux_host_routes;
