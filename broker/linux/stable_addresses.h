// SPDX-License-Identifier: Apache-2.0
// Each network name's last subnet and IPv6 prefix, kept in the state dir.
#ifndef VMNET_BROKER_LINUX_STABLE_ADDRESSES_H
#define VMNET_BROKER_LINUX_STABLE_ADDRESSES_H

#include <stdbool.h>
#include <stdint.h>

#include "core/subnet.h"

// So that a guest keeps its address and lease when its network is removed
// and created again (after an idle delay, a restart, a reboot), the broker
// remembers, per network name, the IPv4 subnet it chose and the IPv6 ULA
// prefix it made, in <state dir>/subnets.json. Used from one thread at a
// time (the backend's worker once the loop runs).
struct stable_addresses;

// Reads subnets.json from dir_fd (which it keeps; dir names it in logs).
// A missing file is an empty memory; an unreadable or malformed one is
// logged and replaced at the next change. Returns NULL when out of memory.
struct stable_addresses *stable_addresses_load(int dir_fd, const char *dir);
// Closes the directory's descriptor. Accepts NULL.
void stable_addresses_free(struct stable_addresses *s);

// The subnet remembered for name; false if none.
bool stable_addresses_subnet(const struct stable_addresses *s, const char *name,
                             struct ipv4_prefix *out);
// Appends to used (a malloc'd array of *n, grown) the subnets remembered
// for every other name, so that a new network leaves them to their names
// while the pool has room. Returns false when out of memory (used kept).
bool stable_addresses_others(const struct stable_addresses *s, const char *name,
                             struct ipv4_prefix **used, size_t *n);
// The IPv6 /64 prefix (16 bytes) remembered for name; false if none.
bool stable_addresses_ipv6(const struct stable_addresses *s, const char *name,
                           uint8_t out[16]);
// Remembers name's subnet and/or IPv6 prefix (NULL: keep what is there)
// and writes the file atomically (a temporary file renamed over it).
// Returns false when it could not be written (logged; memory kept).
bool stable_addresses_remember(struct stable_addresses *s, const char *name,
                               const struct ipv4_prefix *subnet,
                               const uint8_t ipv6[16]);

#endif
