// SPDX-License-Identifier: Apache-2.0
// The Linux network backend: each network is a bridge made over netlink.
#ifndef VMNET_BROKER_LINUX_LINUX_NETWORK_H
#define VMNET_BROKER_LINUX_LINUX_NETWORK_H

#include "core/backend.h"

struct linux_backend;

// Opens the netlink socket. Returns 0 and stores a new backend in *out, or a
// negative errno (out untouched).
int linux_backend_new(struct linux_backend **out);
void linux_backend_free(struct linux_backend *backend); // accepts NULL

// Removes bridges a previous broker instance left behind (see
// linux_bridge_is_marked()); returns how many were removed. Logs each.
int linux_backend_remove_stale(struct linux_backend *backend);

extern const struct network_backend_ops
    linux_backend_ops; // ctx is a struct linux_backend *

#endif
