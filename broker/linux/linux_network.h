// SPDX-License-Identifier: Apache-2.0
// The Linux network backend: each network is a bridge made over netlink.
#ifndef VMNET_BROKER_LINUX_LINUX_NETWORK_H
#define VMNET_BROKER_LINUX_LINUX_NETWORK_H

#include <systemd/sd-event.h>

#include "core/backend.h"
#include "core/guest_addr.h"

struct linux_backend;

// Opens the netlink socket. Returns 0 and stores a new backend in *out, or a
// negative errno (out untouched).
int linux_backend_new(struct linux_backend **out);
void linux_backend_free(struct linux_backend *backend); // accepts NULL

// Removes bridges a previous broker instance left behind (see
// linux_bridge_is_marked()); returns how many were removed. Logs each.
int linux_backend_remove_stale(struct linux_backend *backend);

struct stable_addresses;
// Takes stable (NULL: none): networks get the subnet and IPv6 prefix their
// name had last time, when still free, and each choice is remembered.
void linux_backend_set_stable_addresses(struct linux_backend *backend,
                                        struct stable_addresses *stable);

// Networks without a static subnet get a free /24 from first to last
// (network addresses of /24s); by default 192.168.64.0 to 192.168.255.0.
// A change applies to the creations that start after it.
void linux_backend_set_subnet_pool(struct linux_backend *backend,
                                   uint32_t first, uint32_t last);

// The per-host secret guest MACs are keyed with (state_dir.h). Set before
// the first interface is opened.
void linux_backend_set_mac_key(struct linux_backend *backend,
                               const uint8_t key[GUEST_MAC_KEY_LEN]);

struct linux_backend_services {
    // Where dnsmasq children are supervised (SIGCHLD must be blocked).
    sd_event *event;
    // dnsmasq's files live in <runtime_dir>/<network>/.
    const char *runtime_dir;
    // NULL: /usr/sbin/dnsmasq.
    const char *dnsmasq_path;
};

// Turns the bridge-only backend into the full one: every network created
// afterwards also gets its nftables rules, forwarding, IPv6 ULA, DHCP/DNS
// and router advertisements. Creates the broker's nftables table (replacing
// one a previous instance left) and kills dnsmasq instances a previous
// broker left in runtime_dir. Returns 0 or a negative errno (logged).
int linux_backend_enable_services(
    struct linux_backend *backend,
    const struct linux_backend_services *services);

// Closes a descriptor open_interface handed out, once the transport has
// sent it (or given up), on the worker: when the client has already closed
// its copy, this close removes the device, which waits for an RCU grace
// period (tens of ms). Interface counts stay exact: interface_exists() of
// an interface whose close is still pending waits for that close.
void linux_backend_close_sent(struct linux_backend *backend, int fd);

extern const struct network_backend_ops
    linux_backend_ops; // ctx is a struct linux_backend *

#endif
