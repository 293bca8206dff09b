// SPDX-License-Identifier: Apache-2.0
// The broker's core: peers acquire and release named networks.
#ifndef VMNET_BROKER_CORE_BROKER_H
#define VMNET_BROKER_CORE_BROKER_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "peer.h"
#include "registry.h"
#include "status.h"

// The core never reads a clock: every call that can start or end an idle
// delay takes "now" (monotonic microseconds), and the event loop re-arms one
// timer at broker_next_deadline() after each call. Backend completions,
// which arrive without a time, use options.now (or the last "now" seen).
// Tests drive time directly.
struct broker;
struct reason;

struct broker_options {
    const struct network_backend_ops *backend;
    void *backend_ctx;
    const struct config_source_ops *configs;
    void *configs_ctx;
    uint64_t idle_usec;
    // Optional: the current monotonic time, for backend completions.
    uint64_t (*now)(void *ctx);
    void *now_ctx;
};

// Returned by the synchronous wrappers when the network is still being
// created: the peer holds it, but the request's answer comes later.
#define BROKER_PENDING (-1)

// The end of a request. network is valid until the network is removed; fd
// (open_interface, else -1) is a descriptor the callee now owns.
struct broker_result {
    int status;
    // Why it failed, in words (core/reason.h), or NULL; valid during the
    // callback only. Every request waiting on one failed creation gets the
    // same message.
    const char *message;
    const struct network *network;
    struct interface_info interface;
    int fd;
};

// Called exactly once per request, maybe before the request function
// returns (the network was ready), maybe later (it was being created), never
// after the peer disconnected.
typedef void (*broker_done_fn)(void *data, const struct broker_result *result);

// The config source's lookup() may answer BROKER_PENDING: the file changed
// and is being parsed off the event loop. acquire and open_interface then
// wait (their callback comes later, in arrival order, never with the old
// file's rules); broker_leases() returns BROKER_PENDING and its caller
// waits with broker_wait_configs(). Whoever owns the config source calls
// broker_configs_ready() on the loop each time a parse is done: every
// request waiting then is asked again (and may wait again for another
// file).
void broker_configs_ready(struct broker *broker);

typedef void (*broker_retry_fn)(void *data);
// Calls retry(data) from the next broker_configs_ready(), unless peer
// disconnects first. Returns BROKER_OK or BROKER_ERR_INTERNAL (out of
// memory).
int broker_wait_configs(struct broker *broker, struct peer *peer,
                        broker_retry_fn retry, void *data);

// Returns NULL when out of memory.
struct broker *broker_new(const struct broker_options *options);
// Removes every network at once (backend abandon) but leaves ready networks
// with ports running (backend leave, when it has one) for the next broker,
// and frees every peer.
// Pending requests are dropped without their callbacks. Accepts NULL.
void broker_free(struct broker *broker);

// Registers a connected peer. Returns NULL when out of memory.
struct peer *broker_peer_connect(struct broker *broker,
                                 const struct peer_cred *cred, void *transport);
// Drops every reference of peer, drops its waiting requests (their
// callbacks are not called) and frees it. A creation it waited for still
// completes and then follows the idle rule.
void broker_peer_disconnect(struct broker *broker, struct peer *peer,
                            uint64_t now);

// Acquires a reference to name for peer, creating the network if needed,
// and calls done. N peers acquiring a network being created wait on that
// one creation and all get its instance or its error. An acquire of a
// network being removed waits for the removal, then creates it again.
void broker_acquire_async(struct broker *broker, struct peer *peer,
                          const char *name, uint64_t now, broker_done_fn done,
                          void *data);

// Acquires name for peer (as broker_acquire_async) and creates an interface
// on it for the peer's VM; the result carries the interface and a
// descriptor (the broker keeps no copy). On failure a network this call
// acquired is released again. A connection may have PEER_MAX_INTERFACES
// interfaces alive at once and a user USER_MAX_INTERFACES; beyond that
// BROKER_ERR_INTERNAL. A user's count (and its slots, so its MACs) includes
// the devices of its closed connections for as long as they exist.
void broker_open_interface_async(struct broker *broker, struct peer *peer,
                                 const char *name, uint64_t now,
                                 broker_done_fn done, void *data);

// Synchronous forms of the two above, for backends that complete at once
// (tests). On BROKER_OK *out points at the network; otherwise the outs are
// untouched. BROKER_PENDING when the creation has not ended: the peer holds
// the network but this call's answer is dropped.
int broker_acquire(struct broker *broker, struct peer *peer, const char *name,
                   uint64_t now, const struct network **out);
int broker_open_interface(struct broker *broker, struct peer *peer,
                          const char *name, uint64_t now,
                          const struct network **network,
                          struct interface_info *info, int *fd);

// Drops peer's reference to name. BROKER_ERR_NOT_FOUND if it holds none,
// with why in why (may be NULL).
int broker_release(struct broker *broker, struct peer *peer, const char *name,
                   uint64_t now);
int broker_release_why(struct broker *broker, struct peer *peer,
                       const char *name, uint64_t now, struct reason *why);

// The current DHCP leases of network name, for a peer allowed on it: a
// malloc'd array in *leases (caller frees; NULL and *n 0 when none, or the
// network is configured but not running). BROKER_ERR_NOT_FOUND (no such
// network), BROKER_ERR_NOT_ALLOWED, BROKER_ERR_INTERNAL, with why in why.
int broker_leases(struct broker *broker, struct peer *peer, const char *name,
                  struct lease_info **leases, size_t *n, struct reason *why);

// Logs what happened to interface ifname (its holder misused it, and what
// the backend did about it) with the peer it was opened for, or with its
// user when that connection has closed.
void broker_interface_report(struct broker *broker, const char *ifname,
                             const char *what);

// Starts creating name and never removes it for idleness (persistent
// networks). Returns an error when name cannot be looked up; a creation that
// fails later is logged.
int broker_create_persistent(struct broker *broker, const char *name);

// Registers a network the backend found running, made by an earlier broker
// (adoption after a restart), as ready: config, info and the backend's
// handle, which the core owns from now on as if create() had made it.
// has_ports says whether its bridge has ports (broker_network_ports_changed);
// without, the idle rule applies from now. BROKER_OK;
// BROKER_ERR_INVALID_REQUEST when name already exists (the handle stays the
// caller's); BROKER_ERR_INTERNAL without memory.
int broker_adopt(struct broker *broker, const struct network_config *config,
                 const struct network_info *info, void *handle, bool has_ports,
                 uint64_t now);

// Counts an interface of uid on network (index, device ifname) made by an
// earlier broker whose connection is gone, as a closed connection's: against
// uid's limit and its MAC slots, until the device is gone.
void broker_adopt_interface(struct broker *broker, uint32_t uid,
                            const char *network, unsigned index,
                            const char *ifname);

// The backend saw network name's bridge get its first port or lose its
// last. A network with ports is in use: it is not removed for idleness;
// once it has neither ports nor peers the idle delay starts. Unknown names
// are ignored.
void broker_network_ports_changed(struct broker *broker, const char *name,
                                  bool has_ports, uint64_t now);

// Earliest moment broker_expire() has work, or NO_DEADLINE.
uint64_t broker_next_deadline(const struct broker *broker);
// Starts removing every unused network whose idle delay has passed.
void broker_expire(struct broker *broker, uint64_t now);

// The configured networks, running or not (config_source_ops.list, parsed
// once per file change); *configs is malloc'd, the caller frees it. Without
// a list op: none, BROKER_OK.
int broker_list_configs(const struct broker *broker,
                        struct network_config **configs, size_t *n);
// The interfaces the core counts as open on network (for the status): those
// it has handed out and not yet seen gone. It learns that a VM let one go
// when it next counts that user's interfaces (open_interface), which
// changes broker_generation(); a status request never probes devices.
unsigned broker_network_interfaces(const struct broker *broker,
                                   const struct network *network);

// Why network works only in part (the backend's degraded op), or NULL
// while it is whole (and while it is not ready).
const char *broker_network_degraded(const struct broker *broker,
                                    const struct network *network);
// The backend says that something a status shows (a network's degraded
// answer) may have changed: broker_generation() changes.
void broker_backend_changed(struct broker *broker);

unsigned broker_peer_count(const struct broker *broker);
unsigned broker_network_count(const struct broker *broker);
// Every network (creating, ready, and being removed: see
// network_get_state) in creation order, and every connected peer in an
// order of the core's: first, then next until NULL. Any call that changes
// the broker may invalidate them; walk, then call.
const struct network *broker_network_first(const struct broker *broker);
const struct network *broker_network_next(const struct network *network);
const struct peer *broker_peer_first(const struct broker *broker);
const struct peer *broker_peer_next(const struct peer *peer);
// Creations started since the broker began (a network created once for many
// waiting peers counts once).
unsigned long broker_creations(const struct broker *broker);
// Changes whenever anything a status reply shows changes (peers, their
// networks and interfaces, networks and their states, the configured
// networks), so a status can be shared until then.
uint64_t broker_generation(const struct broker *broker);
// The configured networks' part of broker_generation(), into *out; false
// when the config source cannot tell (then nothing built from the list may
// be kept).
bool broker_config_generation(const struct broker *broker, uint64_t *out);

#endif
