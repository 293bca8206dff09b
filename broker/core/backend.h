// SPDX-License-Identifier: Apache-2.0
// The seam between the platform-free core and a platform's networks.
#ifndef VMNET_BROKER_CORE_BACKEND_H
#define VMNET_BROKER_CORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
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
    // Its DHCP reservation (host byte order), 0 when the network has none.
    uint32_t ipv4;
    // The address SLAAC gives mac in the network's /64, when has_ipv6.
    uint8_t ipv6[16];
    bool has_ipv6;
};

// One DHCPv4 lease of a network (the `leases` command).
struct lease_info {
    uint8_t mac[6];
    uint32_t ipv4;     // host byte order
    int64_t expiry;    // seconds since the epoch; 0: never
    char hostname[64]; // empty when the client sent none
};

struct peer_cred;

struct reason;

// How the backend reports that an operation it started has finished. It
// calls exactly once per started operation, from the core's thread, and may
// call before the starting function returns. message is why a failed
// operation failed, in words for the client (core/reason.h), or NULL; it is
// valid during the call only.
typedef void (*backend_create_done_fn)(void *data, int status,
                                       const char *message);
typedef void (*backend_destroy_done_fn)(void *data);
struct interface_info;
typedef void (*backend_interface_done_fn)(void *data, int status,
                                          const struct interface_info *info,
                                          int fd, const char *message);

// A platform's networks. The core calls these from its single thread; the
// operations that take time (create, destroy) report their end through a
// callback so the core's caller (an event loop) never waits for them.
struct network_backend_ops {
    // Starts creating the network described by config. Stores the backend's
    // handle in *handle before returning (NULL only when it fails at once)
    // and later fills *info and calls done(data, BROKER_OK); on failure
    // calls done(data, BROKER_ERR_CREATE_FAILURE or BROKER_ERR_INTERNAL),
    // logs the reason and leaves nothing half-made behind (the handle is
    // then freed by the backend). config, info and handle stay valid until
    // done is called or abandon() is.
    void (*create)(void *ctx, const struct network_config *config,
                   struct network_info *info, void **handle,
                   backend_create_done_fn done, void *data);
    // Starts removing everything create() made and calls done(data) once
    // it is all gone (the handle is then freed).
    void (*destroy)(void *ctx, void *handle, backend_destroy_done_fn done,
                    void *data);
    // Removes a network whatever it is doing (being created, ready or being
    // removed), now and without calling any pending done. Used when the
    // broker exits. handle may be NULL (no-op).
    void (*abandon)(void *ctx, void *handle);
    // Optional (NULL: open_interface is an invalid request on this platform).
    // Starts creating an interface on the network for cred's VM. index
    // numbers the user's live interfaces on this network (0, 1, ...) so the
    // guest MAC is stable from one run to the next. Calls done(data,
    // BROKER_OK, info, fd) with a descriptor the callee then owns, or
    // done(data, error, NULL, -1) (logged) with nothing left behind; maybe
    // before returning. network_name and cred are valid during the call
    // only.
    void (*open_interface)(void *ctx, void *handle, const char *network_name,
                           const struct peer_cred *cred, unsigned index,
                           backend_interface_done_fn done, void *data);
    // True while the interface called name exists. The broker keeps no
    // descriptor, so this is how it learns a VM has let an interface go.
    bool (*interface_exists)(void *ctx, const char *name);
    // Optional (NULL: no leases to report). Stores the network's current
    // DHCP leases in *leases (malloc'd, the caller frees; NULL with *n 0
    // when none) and returns BROKER_OK, or BROKER_ERR_INTERNAL (logged).
    int (*leases)(void *ctx, void *handle, struct lease_info **leases,
                  size_t *n);
    // Optional. interface_exists() may count an interface whose last
    // descriptor the backend is still closing; this calls done(data) once
    // every close started before the call is done, so the count is exact
    // (maybe before returning; never waiting: the closes are the backend's
    // to finish). Called only when a peer or user is at its interface
    // limit, where exactness matters.
    void (*settle_interfaces)(void *ctx, void (*done)(void *data), void *data);
    // Optional (NULL: close()). Closes a descriptor open_interface() handed
    // over that nobody takes (its peer left, or lost its slot, while it was
    // being made): a TAP's last close tears the device down and waits for
    // the kernel (tens of ms), which the core's caller must not.
    void (*close_fd)(void *ctx, int fd);
    // Optional (NULL: every network is removed when the broker exits).
    // Leaves a ready network running for the next broker to adopt (its
    // bridge has live ports: a VM must not lose its network because the
    // broker stopped) and frees only the handle. Used when the broker exits.
    void (*leave)(void *ctx, void *handle);
    // Optional (NULL: never degraded). Why the network works only in part
    // (its DHCP server was given up on, a repair failed), in words for
    // `status`, or NULL while it is whole. Valid until the next call into
    // the backend. The backend calls broker_backend_changed() when the
    // answer may have changed.
    const char *(*degraded)(void *ctx, void *handle);
};

// Where configurations come from (a directory of files, or a test table).
struct config_source_ops {
    // Fills *out with the configuration of name and returns BROKER_OK;
    // BROKER_ERR_NOT_FOUND when no such network exists; and
    // BROKER_ERR_CREATE_FAILURE when its file exists but is invalid (the
    // source logs where). *out is not touched on failure. Why it failed
    // goes to why (may be NULL), for the request's reply. A source that
    // parses off the event loop answers BROKER_PENDING (-1, broker.h) while
    // name's changed file is being parsed, and has broker_configs_ready()
    // called once it is.
    int (*lookup)(void *ctx, const char *name, struct network_config *out,
                  struct reason *why);
    // Optional (NULL: the status lists no configured networks). Stores in
    // *configs a malloc'd array (the caller frees it with free()) of every
    // network with a valid configuration, the built-ins included, sorted
    // by name, and their number in *n. Quiet: invalid files are left out
    // and not logged. Returns BROKER_OK or BROKER_ERR_INTERNAL.
    // Parsed once per file change, like lookup: never re-read per call.
    int (*list)(void *ctx, struct network_config **configs, size_t *n);
    // Optional (NULL: list's result never changes). A number that changes
    // whenever list's result may have, so that a status built from it can
    // be shared until then.
    uint64_t (*generation)(void *ctx);
};

#endif
