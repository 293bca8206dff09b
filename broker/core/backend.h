// SPDX-License-Identifier: Apache-2.0
// The seam between the platform-free core and a platform's networks.
#ifndef VMNET_BROKER_CORE_BACKEND_H
#define VMNET_BROKER_CORE_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "network_config.h"

#define NETWORK_UUID_LEN 36
#define NETWORK_BRIDGE_MAX 15

// What a created network looks like. Filled by the backend; the protocol
// layer serializes it. IPv4 addresses are in host byte order.
struct network_info {
    char uuid[NETWORK_UUID_LEN + 1];
    char bridge[NETWORK_BRIDGE_MAX + 1];
    uint32_t subnet; // network address
    uint32_t mask;
    uint32_t gateway;
    unsigned mtu;

    bool dhcp;
    uint32_t dhcp_start;
    uint32_t dhcp_end;
    uint32_t dns; // 0 when the network has no DNS server

    bool ipv6;
    uint8_t ipv6_prefix[16];
    unsigned ipv6_prefix_len;
};

// A virtual interface (a TAP device on Linux) handed to a peer's VM.
struct interface_info {
    char name[NETWORK_BRIDGE_MAX + 1];
    uint8_t mac[6]; // the address the guest should use
};

struct peer_cred;

// A platform's networks. The core calls these from its single thread.
struct network_backend_ops {
    // Creates the network described by config. On success stores the
    // backend's handle in *handle, fills *info and returns 0. On failure
    // returns BROKER_ERR_CREATE_FAILURE (or BROKER_ERR_INTERNAL), logs the
    // reason and leaves nothing half-made behind; *handle and *info are not
    // touched.
    int (*create)(void *ctx, const struct network_config *config,
                  struct network_info *info, void **handle);
    // Removes everything create() made. handle may be NULL (no-op).
    void (*destroy)(void *ctx, void *handle);
    // Optional (NULL: open_interface is an invalid request on this platform).
    // Creates an interface on the network for cred's VM. index numbers the
    // peer's live interfaces on this network (0, 1, ...) so the guest MAC is
    // stable from one run to the next. On success returns BROKER_OK, fills
    // *info and stores a descriptor the caller owns in *fd; otherwise returns
    // an error status (logged) with nothing left behind.
    int (*open_interface)(void *ctx, void *handle, const char *network_name,
                          const struct peer_cred *cred, unsigned index,
                          struct interface_info *info, int *fd);
    // True while the interface called name exists. The broker keeps no
    // descriptor, so this is how it learns a VM has let an interface go.
    bool (*interface_exists)(void *ctx, const char *name);
};

// Where configurations come from (a directory of files, or a test table).
struct config_source_ops {
    // Fills *out with the configuration of name and returns BROKER_OK;
    // BROKER_ERR_NOT_FOUND when no such network exists; and
    // BROKER_ERR_CREATE_FAILURE when its file exists but is invalid (the
    // source logs where). *out is not touched on failure.
    int (*lookup)(void *ctx, const char *name, struct network_config *out);
    // Optional (NULL: the status lists no configured networks). Stores in
    // *configs a malloc'd array (the caller frees it with free()) of every
    // network with a valid configuration, the built-ins included, sorted
    // by name, and their number in *n. Quiet: invalid files are left out
    // and not logged. Returns BROKER_OK or BROKER_ERR_INTERNAL.
    int (*list)(void *ctx, struct network_config **configs, size_t *n);
};

#endif
