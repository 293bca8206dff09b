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

// Removes bridges (and TAPs) a previous broker of this instance left behind
// (see linux_bridge_is_marked(): another runtime directory's broker's are
// not its); returns how many bridges were removed. Logs each.
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
    // The runtime directory's descriptor (kept open by the caller for the
    // backend's life), where networks.json is read and written; -1: no
    // state file, no adoption.
    int runtime_dir_fd;
    // The configurations adopted networks must still match; NULL: adopt
    // nothing.
    const struct config_source_ops *configs;
    void *configs_ctx;
};

// Turns the bridge-only backend into the full one: every network created
// afterwards also gets its nftables rules, forwarding, IPv6 ULA, DHCP/DNS
// and router advertisements. First adopts what a previous broker left
// running (networks.json in the runtime directory): each recorded network
// whose configuration still matches, whose bridge is there with its mark
// and gateway address and whose dnsmasq files are there keeps its bridge,
// TAP devices, guest reservations and dnsmasq (restarted if it died).
// Everything else a previous broker left is removed: its bridges, TAP
// devices and dnsmasq instances. Then makes the broker's nftables table
// (replacing one a previous instance left) with the adopted networks'
// rules and TAP chains in the same transaction. The adopted networks wait
// for linux_backend_hand_over(). From then on networks.json lists every
// ready network, written on each change. Returns 0 or a negative errno
// (logged).
int linux_backend_enable_services(
    struct linux_backend *backend,
    const struct linux_backend_services *services);

// Hands each adopted network to the core: network() registers it (the
// handle is the backend's, as create() would give; has_ports: its bridge
// has ports) and returns BROKER_OK, or an error and the network is removed;
// interface() then counts each of its TAP devices (uid and index from the
// device's mark) against its user.
struct linux_adopt_ops {
    int (*network)(void *ctx, const struct network_config *config,
                   const struct network_info *info, void *handle,
                   bool has_ports);
    void (*interface)(void *ctx, uint32_t uid, const char *network,
                      unsigned index, const char *ifname);
};
void linux_backend_hand_over(struct linux_backend *backend,
                             const struct linux_adopt_ops *ops, void *ctx);

// Told when a network's bridge gets its first port (any enslaved link: a
// VM's TAP, a veth) or loses its last, from the event loop.
typedef void (*linux_ports_changed_fn)(void *ctx, const char *network,
                                       bool has_ports);
void linux_backend_set_ports_watch(struct linux_backend *backend,
                                   linux_ports_changed_fn changed, void *ctx);

// Called (with ctx) whenever a network's degraded() answer may have changed
// (its dnsmasq was given up on or started again, a repair failed), so the
// status is built again (broker_backend_changed()).
void linux_backend_set_health_changed(struct linux_backend *backend,
                                      void (*changed)(void *ctx), void *ctx);

struct linux_network;
// (Re-)adds every rule of one live network: its own nftables rules (unless
// the firewall has them) and the chains of its TAP devices that a flushed
// table took with it. On the backend's worker only. Returns how many TAP
// chains were restored, or a negative errno (logged).
int network_restore_rules(struct linux_backend *backend,
                          struct linux_network *network);

// Closes a descriptor open_interface handed out, once the transport has
// sent it (or given up), on the worker: when the client has already closed
// its copy, this close removes the device, which waits for an RCU grace
// period (tens of ms). Interface counts stay exact: interface_exists() of
// an interface whose close is still pending may count until then, and an
// open at a limit waits (settle_interfaces, without blocking the loop).
void linux_backend_close_sent(struct linux_backend *backend, int fd);

extern const struct network_backend_ops
    linux_backend_ops; // ctx is a struct linux_backend *

#endif
