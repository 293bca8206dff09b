// SPDX-License-Identifier: Apache-2.0
// The Linux network backend: each network is a bridge made over netlink.
#include "linux_network.h"
#include "stable_addresses.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/network_config.h"
#include "core/peer.h"
#include "core/reason.h"
#include "core/status.h"
#include "core/subnet.h"
#include "core/uuid.h"
#include "linux_bridge.h"
#include "linux_dnsmasq.h"
#include "linux_firewall.h"
#include "linux_host_routes.h"
#include "linux_sysctl.h"
#include "linux_tap.h"
#include "linux_worker.h"

#define FORWARD_CHECK_USEC (10 * 1000000ull)

static uint64_t monotonic_usec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

// Threads closing sent TAP descriptors (see struct linux_backend).
#define CLOSERS 8

// The MTU of a network when neither its config nor a default route says.
#define DEFAULT_MTU 1500

struct linux_backend {
    struct nl_sock *sock;
    // NULL until linux_backend_enable_services(): bridges only.
    struct firewall *firewall;
    struct dnsmasq_options dnsmasq;
    char *runtime_dir;
    char *dnsmasq_path;
    uint32_t pool_first;
    uint32_t pool_last;
    // NULL (jobs run inline) until services are enabled.
    struct linux_worker *worker;
    // Close sent TAP descriptors: threads of their own, so a wait for a
    // close never queues behind a creation. Several, taken in turn: a close
    // that is the device's last reference waits for its teardown (an RCU
    // grace period, tens of ms), and one thread made every later close wait
    // behind it, until the client's own closes came first and made each of
    // them last too; a client at its interface limit then waited for a
    // whole queue of teardowns (open_interface p99 0.3-0.5 s).
    struct linux_worker *closers[CLOSERS];
    unsigned next_closer;
    // CLOCK_MONOTONIC microseconds of the last look for a foreign forward
    // policy of drop (worker only).
    uint64_t forward_checked;
    // TAP descriptors handed out and not closed yet.
    struct sent_fd *sent;
    // Each name's last subnet and IPv6 prefix (worker only); NULL: none.
    struct stable_addresses *stable;
    // The per-host secret guest MACs are keyed with (state_dir.h); all
    // zeros until linux_backend_set_mac_key().
    uint8_t mac_key[GUEST_MAC_KEY_LEN];
    // Link removals, so a TAP's rules go with it.
    int link_fd;
    sd_event_source *link_source;
};

struct sent_fd {
    struct linux_backend *backend;
    int fd;
    char name[IFNAMSIZ];
    bool queued;                 // the loop asked the worker to close it
    struct linux_worker *closer; // the one it asked
    bool closed; // the worker did (read under the worker's lock)
    struct sent_fd *next;
};

void linux_backend_set_stable_addresses(struct linux_backend *backend,
                                        struct stable_addresses *stable) {
    stable_addresses_free(backend->stable);
    backend->stable = stable;
}

void linux_backend_set_mac_key(struct linux_backend *backend,
                               const uint8_t key[GUEST_MAC_KEY_LEN]) {
    memcpy(backend->mac_key, key, GUEST_MAC_KEY_LEN);
}

void linux_backend_set_subnet_pool(struct linux_backend *backend,
                                   uint32_t first, uint32_t last) {
    backend->pool_first = first;
    backend->pool_last = last;
}

_Static_assert(NETWORK_BRIDGE_MAX + 1 == IFNAMSIZ,
               "network_info.bridge holds exactly an interface name");

// The handle create() returns: enough to find the bridge again.
struct linux_network {
    struct linux_backend *backend;
    // A copy: the worker reads it while the core may mark the network
    // persistent.
    struct network_config config;
    // What build() made, and where the core wants it.
    struct network_info made;
    struct network_info *info;
    int status;
    int ifindex;
    char bridge[IFNAMSIZ];
    // Written by the worker's jobs, read on the loop once they are done.
    bool bridge_exists;
    bool has_rules;
    struct dnsmasq *dnsmasq;
    // While a removal waits for it.
    struct dnsmasq *stopping;
    // Parts of a removal not ended yet: dnsmasq's exit and the rules'
    // removal run at once; the bridge goes when both have.
    int removal_parts;
    // The core's completion of create (while dnsmasq starts) or destroy
    // (while it stops).
    backend_create_done_fn created;
    backend_destroy_done_fn destroyed;
    void *done_data;
    char name[NETWORK_NAME_MAX + 1];
    // Why the creation failed, for every request waiting on it. Written by
    // build() on the worker, read on the loop once it is done.
    struct reason why;
    // The DHCP reservations of the guests' MACs (loop only), kept for the
    // network's life so a VM started again gets its address back.
    struct dhcp_reservation *guests;
    size_t n_guests;
};

// libnl reports its own codes; callers of linux_backend_new() expect errno.
static int nl_error_to_errno(int nl_error) {
    switch (-nl_error) {
    case NLE_NOMEM:
        return -ENOMEM;
    case NLE_PERM:
        return -EPERM;
    case NLE_NOACCESS:
        return -EACCES;
    case NLE_AF_NOSUPPORT:
        return -EAFNOSUPPORT;
    case NLE_PROTO_MISMATCH:
        return -EPROTONOSUPPORT;
    default:
        return -EIO;
    }
}

int linux_backend_new(struct linux_backend **out) {
    struct linux_backend *backend = calloc(1, sizeof(*backend));
    int status = -ENOMEM;
    int err;

    if (backend == NULL)
        goto out;
    backend->link_fd = -1;
    backend->pool_first = SUBNET_FIRST;
    backend->pool_last = SUBNET_LAST;
    backend->sock = nl_socket_alloc();
    if (backend->sock == NULL)
        goto out;
    err = nl_connect(backend->sock, NETLINK_ROUTE);
    if (err < 0) {
        status = nl_error_to_errno(err);
        goto out;
    }
    *out = backend;
    backend = NULL;
    status = 0;
out:
    linux_backend_free(backend);
    return status;
}

void linux_backend_free(struct linux_backend *backend) {
    if (backend == NULL)
        return;
    sd_event_source_disable_unref(backend->link_source);
    if (backend->link_fd >= 0)
        close(backend->link_fd);
    // Its jobs use the netlink socket and the firewall freed below.
    linux_worker_free(backend->worker);
    for (int i = 0; i < CLOSERS; i++)
        linux_worker_free(backend->closers[i]);
    while (backend->sent != NULL) {
        struct sent_fd *s = backend->sent;
        backend->sent = s->next;
        free(s);
    }
    // Deletes the broker's whole table: no rule outlives the broker.
    firewall_free(backend->firewall);
    // nl_socket_free() closes the socket if nl_connect() opened it.
    nl_socket_free(backend->sock);
    free(backend->runtime_dir);
    free(backend->dnsmasq_path);
    stable_addresses_free(backend->stable);
    free(backend);
}

struct tap_gone {
    struct linux_backend *backend;
    char name[IFNAMSIZ];
};

static void remove_tap_rules(void *data) {
    struct tap_gone *gone = data;

    // A device that left its bridge is reported too, and still needs them.
    if (if_nametoindex(gone->name) == 0)
        firewall_remove_interface(gone->backend->firewall, gone->name);
}

static void queue_tap_gone(struct linux_backend *backend, const char *name) {
    struct tap_gone *gone = calloc(1, sizeof(*gone));

    // Without memory the next TAP's creation sweeps the chain away.
    if (gone == NULL)
        return;
    gone->backend = backend;
    snprintf(gone->name, sizeof(gone->name), "%s", name);
    linux_worker_queue(backend->worker, remove_tap_rules, free, gone);
}

// A link went: when it is one of the broker's TAPs, its chain goes too (the
// kernel keeps a netdev chain whose device is gone).
static void link_removed(struct linux_backend *backend,
                         const struct nlmsghdr *hdr) {
    const struct ifinfomsg *ifi = NLMSG_DATA(hdr);
    int length = (int)hdr->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*ifi));

    // AF_BRIDGE: a port left its bridge (the network went), the device
    // itself is still there.
    if (ifi->ifi_family == AF_BRIDGE)
        return;

    for (const struct rtattr *rta = IFLA_RTA(ifi); RTA_OK(rta, length);
         rta = RTA_NEXT(rta, length)) {
        const char *name = RTA_DATA(rta);

        if (rta->rta_type != IFLA_IFNAME ||
            strnlen(name, RTA_PAYLOAD(rta)) >= IFNAMSIZ)
            continue;
        if (strncmp(name, LINUX_TAP_PREFIX, strlen(LINUX_TAP_PREFIX)) == 0)
            queue_tap_gone(backend, name);
    }
}

static int on_link_event(sd_event_source *source, int fd, uint32_t revents,
                         void *data) {
    struct linux_backend *backend = data;
    char buffer[16384] __attribute__((aligned(NLMSG_ALIGNTO)));
    ssize_t n;

    (void)source;
    (void)revents;
    while ((n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT)) != 0) {
        if (n < 0) {
            // ENOBUFS: events were lost; the next TAP's creation sweeps
            // whatever chain they would have removed.
            if (errno == ENOBUFS)
                continue;
            break;
        }
        for (struct nlmsghdr *hdr = (struct nlmsghdr *)buffer;
             NLMSG_OK(hdr, (size_t)n); hdr = NLMSG_NEXT(hdr, n)) {
            if (hdr->nlmsg_type == RTM_DELLINK &&
                hdr->nlmsg_len >= NLMSG_LENGTH(sizeof(struct ifinfomsg)))
                link_removed(backend, hdr);
        }
    }
    return 0;
}

static int watch_links(struct linux_backend *backend, sd_event *event) {
    struct sockaddr_nl address = {.nl_family = AF_NETLINK,
                                  .nl_groups = RTMGRP_LINK};
    int r;

    backend->link_fd = socket(
        AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    if (backend->link_fd < 0 ||
        bind(backend->link_fd, (struct sockaddr *)&address, sizeof(address)) <
            0) {
        r = -errno;
        log_error("cannot watch links: %s", strerror(-r));
        return r;
    }
    r = sd_event_add_io(event, &backend->link_source, backend->link_fd, EPOLLIN,
                        on_link_event, backend);
    if (r < 0)
        log_error("cannot watch links: %s", strerror(-r));
    return r;
}

int linux_backend_enable_services(
    struct linux_backend *backend,
    const struct linux_backend_services *services) {
    int killed;
    int status = -ENOMEM;

    backend->runtime_dir = strdup(services->runtime_dir);
    if (backend->runtime_dir == NULL)
        goto out;
    if (services->dnsmasq_path != NULL) {
        backend->dnsmasq_path = strdup(services->dnsmasq_path);
        if (backend->dnsmasq_path == NULL)
            goto out;
    }
    backend->dnsmasq.event = services->event;
    backend->dnsmasq.runtime_dir = backend->runtime_dir;
    backend->dnsmasq.dnsmasq_path = backend->dnsmasq_path;
    killed = dnsmasq_remove_stale(backend->runtime_dir);
    if (killed > 0)
        log_info("stopped %d dnsmasq left by a previous broker", killed);
    status = firewall_new(&backend->firewall);
    if (status < 0)
        goto out;
    status = linux_worker_new(services->event, &backend->worker);
    if (status < 0)
        goto out;
    for (int i = 0; i < CLOSERS; i++) {
        status = linux_worker_new(services->event, &backend->closers[i]);
        if (status < 0)
            goto out;
    }
    status = watch_links(backend, services->event);
out:
    return status;
}

int linux_backend_remove_stale(struct linux_backend *backend) {
    struct nl_cache *links = NULL;
    int removed = 0;
    int err = rtnl_link_alloc_cache(backend->sock, AF_UNSPEC, &links);

    if (err < 0) {
        log_error("cannot list links to remove stale bridges: %s",
                  nl_geterror(err));
        return 0;
    }
    for (struct nl_object *obj = nl_cache_get_first(links); obj != NULL;
         obj = nl_cache_get_next(obj)) {
        struct rtnl_link *link = (struct rtnl_link *)obj;
        const char *name = rtnl_link_get_name(link);
        const char *alias = rtnl_link_get_ifalias(link);

        if (!linux_bridge_is_marked(name, rtnl_link_get_type(link), alias))
            continue;
        err = rtnl_link_delete(backend->sock, link);
        if (err < 0) {
            log_error("cannot remove stale bridge %s of network %s: %s", name,
                      alias, nl_geterror(err));
            continue;
        }
        log_info("removed stale bridge %s of network %s", name, alias);
        removed++;
    }
    nl_cache_free(links);
    // TAP devices of a previous broker: persistent ones would live on
    // uncounted, and the others lost their bridge above.
    err = tap_remove_marked(backend->sock, NULL);
    if (err > 0)
        log_info("removed %d TAP devices left by a previous broker", err);
    return removed;
}

// Fills info->subnet, mask and gateway from a static subnet, refusing one
// the host already uses.
static bool use_static_subnet(const struct network_config *config,
                              const struct host_networks *host,
                              struct network_info *info, struct reason *why) {
    uint32_t network = config->subnet & config->mask;
    struct ipv4_prefix wanted = {network, ipv4_mask_len(config->mask)};
    char address[16];
    char what[64];

    if (!ipv4_mask_valid(config->mask)) {
        log_error("network %s: invalid mask %s", config->name,
                  ipv4_format(config->mask, address));
        reason_set(why, "invalid mask %s", address);
        return false;
    }
    for (size_t i = 0; i < host->n; i++) {
        if (ipv4_prefix_overlaps(wanted, host->prefixes[i])) {
            log_error(
                "network %s: subnet %s/%u overlaps %s", config->name,
                ipv4_format(network, address), wanted.len,
                linux_host_networks_describe(host, i, what, sizeof(what)));
            reason_set(why, "subnet %s/%u overlaps %s", address, wanted.len,
                       what);
            return false;
        }
    }
    info->subnet = network;
    info->mask = config->mask;
    info->gateway = network_config_gateway(config);
    return true;
}

static bool overlaps_any(struct ipv4_prefix prefix,
                         const struct host_networks *host) {
    for (size_t i = 0; i < host->n; i++) {
        if (ipv4_prefix_overlaps(prefix, host->prefixes[i]))
            return true;
    }
    return false;
}

// A free /24 of the pool, leaving the subnets other names had last time to
// them while another one is free.
static bool choose_from_pool(const struct linux_backend *backend,
                             const struct network_config *config,
                             const struct host_networks *host,
                             struct ipv4_prefix *chosen) {
    struct ipv4_prefix *used = malloc(host->n * sizeof(*used) + 1);
    size_t n = host->n;
    bool found = false;

    if (used != NULL) {
        memcpy(used, host->prefixes, host->n * sizeof(*used));
        found =
            stable_addresses_others(backend->stable, config->name, &used, &n) &&
            subnet_choose_in(backend->pool_first, backend->pool_last, used, n,
                             chosen);
        free(used);
    }
    return found || subnet_choose_in(backend->pool_first, backend->pool_last,
                                     host->prefixes, host->n, chosen);
}

// The subnet this name had last time when it is still free (the host's
// addresses include every live network's bridge, so never one of the
// broker's own networks), else a free /24 of the pool.
static bool choose_free_subnet(const struct linux_backend *backend,
                               const struct network_config *config,
                               const struct host_networks *host,
                               struct network_info *info, struct reason *why) {
    struct ipv4_prefix chosen;
    char first[16], last[16];

    if (stable_addresses_subnet(backend->stable, config->name, &chosen) &&
        !overlaps_any(chosen, host)) {
        log_debug("network %s: the subnet it had last time is free",
                  config->name);
    } else if (!choose_from_pool(backend, config, host, &chosen)) {
        log_error("network %s: every /24 from %s to %s overlaps an address "
                  "or route on the host",
                  config->name, ipv4_format(backend->pool_first, first),
                  ipv4_format(backend->pool_last, last));
        reason_set(why,
                   "no free subnet: every /24 from %s to %s overlaps an "
                   "address or route on the host",
                   first, last);
        return false;
    }
    if (backend->stable != NULL)
        stable_addresses_remember(backend->stable, config->name, &chosen, NULL);
    info->subnet = chosen.address;
    info->mask = ipv4_prefix_mask(chosen.len);
    info->gateway = chosen.address + 1;
    return true;
}

// A unique local /64 (RFC 4193: fd00::/8, a 40-bit global ID, subnet 0).
// The global ID is a keyed hash of the name under the per-host secret (RFC
// 4193 section 3.2.2 allows any pseudo-random choice), so a name gets the
// same prefix on this host even when subnets.json is lost, and another host
// cannot predict it; random while there is no secret (bridge-only backend).
static bool make_ula(const struct linux_backend *backend, const char *name,
                     uint8_t prefix[16]) {
    static const uint8_t no_key[GUEST_MAC_KEY_LEN];
    char data[NETWORK_NAME_MAX + 8];
    uint64_t hash;
    int len;

    memset(prefix, 0, 16);
    prefix[0] = 0xfd;
    if (memcmp(backend->mac_key, no_key, sizeof(no_key)) == 0)
        return getrandom(prefix + 1, 5, 0) == 5;
    // Prefixed, so that no guest MAC input hashes alike.
    len = snprintf(data, sizeof(data), "ula:%s", name);
    hash = siphash24(backend->mac_key, data, (size_t)len);
    for (int i = 0; i < 5; i++)
        prefix[1 + i] = (uint8_t)(hash >> (8 * i));
    return true;
}

static void remove_rules(struct linux_backend *backend,
                         struct linux_network *network) {
    if (network->has_rules)
        firewall_remove_network(backend->firewall, network->bridge);
    network->has_rules = false;
}

// Everything beyond the bridge but dnsmasq: IPv6, checksums, forwarding,
// rules. Fills the rest of *info. On failure logs, undoes nothing (the
// caller's teardown does) and returns false. On the worker.
static bool add_services(struct linux_backend *backend,
                         const struct network_config *config,
                         struct linux_network *network,
                         struct network_info *info) {
    int err;

    info->dns = info->gateway;
    info->dhcp = config->dhcp;
    if (config->has_dhcp_range) {
        info->dhcp_start = config->dhcp_start;
        info->dhcp_end = config->dhcp_end;
    } else {
        network_default_dhcp_range(info->subnet, info->mask, info->gateway,
                                   &info->dhcp_start, &info->dhcp_end);
    }
    info->ipv6 = config->ipv6;
    if (info->ipv6) {
        uint8_t gateway6[16];
        if (config->has_ipv6_prefix) {
            memcpy(info->ipv6_prefix, config->ipv6_prefix, 16);
        } else if (stable_addresses_ipv6(backend->stable, config->name,
                                         info->ipv6_prefix)) {
            // The prefix this name had last time: guests keep addresses.
        } else if (!make_ula(backend, config->name, info->ipv6_prefix)) {
            log_error("network %s: cannot read random bytes", config->name);
            return false;
        } else if (backend->stable != NULL) {
            stable_addresses_remember(backend->stable, config->name, NULL,
                                      info->ipv6_prefix);
        }
        info->ipv6_prefix_len = 64;
        memcpy(gateway6, info->ipv6_prefix, 16);
        gateway6[15] = 1;
        err = linux_bridge_add_address6(backend->sock, network->ifindex,
                                        gateway6, 64);
        if (err < 0) {
            log_error("network %s: cannot add the IPv6 gateway to %s: %s",
                      config->name, network->bridge, nl_geterror(err));
            reason_set(&network->why, "cannot add the IPv6 gateway to %s: %s",
                       network->bridge, nl_geterror(err));
            return false;
        }
    }
    err = linux_bridge_disable_tx_checksum(network->bridge);
    if (err < 0)
        log_warning("network %s: cannot turn off tx checksum offload on %s "
                    "(%s): guests with vhost-net may miss DHCP replies",
                    config->name, network->bridge, strerror(-err));
    if (config->mode == NETWORK_MODE_SHARED) {
        if (sysctl_enable_forwarding(info->ipv6) < 0) {
            reason_set(&network->why,
                       "cannot turn on IP forwarding (see the broker's log)");
            return false;
        }
        if (config->n_port_forwards > 0 &&
            sysctl_enable_route_localnet(network->bridge) < 0) {
            reason_set(&network->why,
                       "cannot set route_localnet on %s for port forwards "
                       "(see the broker's log)",
                       network->bridge);
            return false;
        }
        // Listing every chain costs in proportion to the networks: look
        // again at most every FORWARD_CHECK_USEC, not at every creation.
        if (backend->forward_checked == 0 ||
            monotonic_usec() - backend->forward_checked >= FORWARD_CHECK_USEC) {
            backend->forward_checked = monotonic_usec();
            firewall_foreign_forward_drop(backend->firewall);
        }
    }
    if (firewall_add_network(backend->firewall, config, info) < 0) {
        reason_set(&network->why,
                   "cannot add the nftables rules (a host port forwarded "
                   "twice? see the broker's log)");
        return false;
    }
    network->has_rules = true;
    // What the rules do, for an administrator reading the log.
    for (size_t i = 0; i < config->n_port_forwards; i++) {
        const struct port_forward *forward = &config->port_forwards[i];
        char guest[16];
        log_info("network %s: forwarding host port %s/%u to %s:%u",
                 config->name, forward->udp ? "udp" : "tcp",
                 (unsigned)forward->host_port,
                 ipv4_format(forward->guest_address, guest),
                 (unsigned)forward->guest_port);
    }
    return true;
}

// Removes the bridge. Returns 0 or a negative errno (logged).
static int remove_bridge(struct linux_backend *backend,
                         struct linux_network *network) {
    int err;

    if (!network->bridge_exists)
        return 0;
    network->bridge_exists = false;
    err = linux_bridge_delete(backend->sock, network->ifindex, network->bridge);
    if (err == 0) {
        log_info("removed bridge %s", network->bridge);
        return 0;
    }
    if (err == -NLE_OBJ_NOTFOUND) {
        log_warning("bridge %s was already removed", network->bridge);
        return 0;
    }
    log_error("cannot remove bridge %s: %s", network->bridge, nl_geterror(err));
    return nl_error_to_errno(err);
}

// On the worker: the bridge and its TAP devices.
static void remove_devices(void *data) {
    struct linux_network *network = data;

    remove_bridge(network->backend, network);
    tap_remove_marked(network->backend->sock, network->config.name);
}

// On the worker: the rules, then the bridge.
static void teardown(void *data) {
    struct linux_network *network = data;

    remove_rules(network->backend, network);
    remove_devices(network);
}

// On the worker: the rules alone, while dnsmasq stops.
static void teardown_rules(void *data) {
    struct linux_network *network = data;

    remove_rules(network->backend, network);
}

// On the worker: everything the kernel does for a new network but dnsmasq
// (netlink, sysctl, nftables: milliseconds the loop must not wait for).
static void build(void *data) {
    struct linux_network *network = data;
    struct linux_backend *backend = network->backend;
    const struct network_config *config = &network->config;
    struct network_info *made = &network->made;
    struct host_networks host = {0};
    uint8_t mac[6];
    char gateway[16];
    int err;

    network->status = BROKER_ERR_INTERNAL;
    if (!uuid_generate(made->uuid) || !linux_bridge_random_mac(mac)) {
        log_error("network %s: cannot read random bytes", config->name);
        goto out;
    }
    network->status = BROKER_ERR_CREATE_FAILURE;
    err = linux_host_networks_read(backend->sock, &host);
    if (err < 0) {
        log_error("network %s: cannot read the host's addresses and routes: %s",
                  config->name, nl_geterror(err));
        reason_set(&network->why,
                   "cannot read the host's addresses and routes: %s",
                   nl_geterror(err));
        goto out;
    }
    if (config->has_subnet
            ? !use_static_subnet(config, &host, made, &network->why)
            : !choose_free_subnet(backend, config, &host, made, &network->why))
        goto out;
    made->mtu = config->mtu != 0              ? config->mtu
                : host.default_route_mtu != 0 ? host.default_route_mtu
                                              : DEFAULT_MTU;
    err = linux_bridge_add(backend->sock, network->bridge, config->name, mac,
                           made->mtu, &network->ifindex);
    if (err == -NLE_EXIST) {
        log_error("network %s: interface %s exists and is not ours",
                  config->name, network->bridge);
        reason_set(&network->why, "interface %s exists and is not the broker's",
                   network->bridge);
        goto out;
    }
    if (err < 0) {
        log_error("network %s: cannot create bridge %s (mtu %u): %s",
                  config->name, network->bridge, made->mtu, nl_geterror(err));
        reason_set(&network->why, "cannot create bridge %s (mtu %u): %s",
                   network->bridge, made->mtu, nl_geterror(err));
        goto out;
    }
    network->bridge_exists = true;
    err = linux_bridge_add_address(backend->sock, network->ifindex,
                                   made->gateway, ipv4_mask_len(made->mask));
    if (err < 0) {
        log_error("network %s: cannot add %s/%u to %s: %s", config->name,
                  ipv4_format(made->gateway, gateway),
                  ipv4_mask_len(made->mask), network->bridge, nl_geterror(err));
        reason_set(&network->why, "cannot add %s/%u to %s: %s", gateway,
                   ipv4_mask_len(made->mask), network->bridge,
                   nl_geterror(err));
        goto out;
    }
    err = linux_bridge_set_up(backend->sock, network->ifindex);
    if (err < 0) {
        log_error("network %s: cannot set %s up: %s", config->name,
                  network->bridge, nl_geterror(err));
        reason_set(&network->why, "cannot set %s up: %s", network->bridge,
                   nl_geterror(err));
        goto out;
    }
    memcpy(made->bridge, network->bridge, sizeof(made->bridge));
    if (backend->firewall != NULL &&
        !add_services(backend, config, network, made))
        goto out;
    log_info("network %s: bridge %s, gateway %s/%u, mtu %u", config->name,
             made->bridge, ipv4_format(made->gateway, gateway),
             ipv4_mask_len(made->mask), made->mtu);
    network->status = BROKER_OK;
out:
    if (network->status != BROKER_OK)
        teardown(network);
    linux_host_networks_clear(&host);
}

// Ends the creation: the handle is freed on failure, as the core expects.
static void end_create(struct linux_network *network, int status) {
    backend_create_done_fn created = network->created;
    void *done_data = network->done_data;
    // A copy: the handle goes before the core hears of the failure.
    struct reason why = network->why;

    network->created = NULL;
    if (status != BROKER_OK)
        free(network);
    created(done_data, status, status != BROKER_OK ? reason_get(&why) : NULL);
}

static void on_failed_teardown(void *data) {
    end_create(data, BROKER_ERR_CREATE_FAILURE);
}

// dnsmasq answered (or failed to): the creation ends.
static void on_dnsmasq_ready(void *data, int status) {
    struct linux_network *network = data;

    if (status == 0) {
        const struct network_info *info = &network->made;
        if (info->dhcp) {
            char start[16], end[16];
            log_info("network %s: DHCP from %s to %s, %zu reservation%s",
                     network->name, ipv4_format(info->dhcp_start, start),
                     ipv4_format(info->dhcp_end, end),
                     network->config.n_reservations,
                     network->config.n_reservations == 1 ? "" : "s");
        }
        end_create(network, BROKER_OK);
        return;
    }
    log_error("network %s: dnsmasq did not start: %s", network->name,
              strerror(-status));
    reason_set(&network->why,
               "cannot start dnsmasq: %s (is the dnsmasq-base package "
               "installed? see the broker's log)",
               strerror(-status));
    dnsmasq_stop(network->dnsmasq);
    network->dnsmasq = NULL;
    linux_worker_queue(network->backend->worker, teardown, on_failed_teardown,
                       network);
}

// Back on the loop after build(): dnsmasq starts here, where its child is
// watched.
static void built(void *data) {
    struct linux_network *network = data;
    struct linux_backend *backend = network->backend;

    if (network->status != BROKER_OK) {
        end_create(network, network->status);
        return;
    }
    *network->info = network->made;
    // Without services (bridges only) there is nothing to wait for.
    if (backend->firewall == NULL) {
        end_create(network, BROKER_OK);
        return;
    }
    if (dnsmasq_start(&backend->dnsmasq, &network->config, &network->made,
                      on_dnsmasq_ready, network, &network->dnsmasq) < 0) {
        reason_set(&network->why,
                   "cannot start dnsmasq (is the dnsmasq-base package "
                   "installed? see the broker's log)");
        linux_worker_queue(backend->worker, teardown, on_failed_teardown,
                           network);
    }
}

static void linux_network_create(void *ctx, const struct network_config *config,
                                 struct network_info *info, void **handle,
                                 backend_create_done_fn done, void *data) {
    struct linux_backend *backend = ctx;
    struct linux_network *network = calloc(1, sizeof(*network));

    if (network == NULL) {
        log_error("network %s: out of memory", config->name);
        done(data, BROKER_ERR_INTERNAL, "the broker is out of memory");
        return;
    }
    network->backend = backend;
    network->config = *config;
    network->info = info;
    network->created = done;
    network->done_data = data;
    snprintf(network->name, sizeof(network->name), "%s", config->name);
    linux_bridge_name(config->name, network->bridge);
    *handle = network;
    linux_worker_queue(backend->worker, build, built, network);
}

static void on_torn_down(void *data) {
    struct linux_network *network = data;
    backend_destroy_done_fn destroyed = network->destroyed;
    void *done_data = network->done_data;

    free(network->guests);
    free(network);
    destroyed(done_data);
}

// dnsmasq has ended and the rules are gone: the bridge goes last. Not
// before dnsmasq's exit: its sockets stay bound to the gateway address
// after the bridge is gone, and a new network given the freed subnet
// could not start its own dnsmasq (EADDRINUSE).
static void removal_part_done(struct linux_network *network) {
    if (--network->removal_parts > 0)
        return;
    linux_worker_queue(network->backend->worker, remove_devices, on_torn_down,
                       network);
}

static void on_rules_removed(void *data) { removal_part_done(data); }

static void on_dnsmasq_stopped(void *data) {
    struct linux_network *network = data;

    network->stopping = NULL;
    removal_part_done(network);
}

// The worker removes the rules while dnsmasq stops; the bridge waits for
// both.
static void linux_network_destroy(void *ctx, void *handle,
                                  backend_destroy_done_fn done, void *data) {
    struct linux_network *network = handle;
    struct dnsmasq *dnsmasq = network->dnsmasq;

    (void)ctx;
    network->dnsmasq = NULL;
    network->destroyed = done;
    network->done_data = data;
    // Set before either part starts: either may end at once (and the last
    // may free the network).
    network->removal_parts = dnsmasq != NULL ? 2 : 1;
    if (dnsmasq != NULL)
        network->stopping = dnsmasq;
    linux_worker_queue(network->backend->worker, teardown_rules,
                       on_rules_removed, network);
    if (dnsmasq != NULL)
        dnsmasq_stop_async(dnsmasq, on_dnsmasq_stopped, network);
}

static void linux_network_abandon(void *ctx, void *handle) {
    struct linux_backend *backend = ctx;
    struct linux_network *network = handle;

    if (network == NULL)
        return;
    // Whatever the worker was doing for any network is done, and nothing it
    // would finish is called.
    linux_worker_drain(backend->worker);
    dnsmasq_stop(network->stopping);
    dnsmasq_stop(network->dnsmasq);
    teardown(network);
    free(network->guests);
    free(network);
}

static void forget_sent(void *data);

// A TAP device being made on the worker: its netlink requests wait for
// the kernel's RTNL lock, which a bridge's removal may hold for long.
struct tap_job {
    struct linux_backend *backend;
    char bridge[IFNAMSIZ];
    char network[NETWORK_NAME_MAX + 1];
    uint32_t uid;
    uint32_t gid;
    unsigned index;
    bool anti_spoofing;
    bool port_isolation;
    struct network_info net;
    struct tap_info tap;
    struct interface_info info;
    int fd; // or a negative errno
    backend_interface_done_fn done;
    void *data;
};

// The guest's port filters (isolation, anti-spoofing), before the client
// has the descriptor and so before the guest can send. Returns 0 or a
// negative errno (logged).
static int filter_tap(struct tap_job *job) {
    struct linux_backend *backend = job->backend;
    int err;

    if (job->port_isolation) {
        err = linux_bridge_port_set_isolated(
            backend->sock, (int)if_nametoindex(job->info.name));
        if (err < 0) {
            log_error("cannot isolate %s on %s: %s", job->info.name,
                      job->bridge, nl_geterror(err));
            return nl_error_to_errno(err);
        }
    }
    if (job->anti_spoofing && backend->firewall != NULL)
        return firewall_add_interface(backend->firewall, &job->net, &job->info);
    return 0;
}

static void open_tap(void *data) {
    struct tap_job *job = data;
    int status;

    // Chains of TAPs whose removal the link monitor has not reported yet.
    if (job->backend->firewall != NULL)
        firewall_remove_gone_interfaces(job->backend->firewall);
    job->fd = tap_open(job->bridge, job->network, job->uid, job->gid,
                       job->index, job->backend->mac_key, &job->tap);
    if (job->fd < 0)
        return;
    _Static_assert(sizeof(job->info.name) == sizeof(job->tap.name),
                   "ifname sizes");
    memcpy(job->info.name, job->tap.name, sizeof(job->info.name));
    memcpy(job->info.mac, job->tap.mac, sizeof(job->info.mac));
    status = filter_tap(job);
    if (status < 0) {
        // Closing the only descriptor removes the device.
        close(job->fd);
        job->fd = status;
        if (job->backend->firewall != NULL)
            firewall_remove_interface(job->backend->firewall, job->info.name);
    }
}

static void tap_opened(void *data) {
    struct tap_job *job = data;
    struct linux_backend *backend = job->backend;
    struct interface_info info;
    struct sent_fd *sent;

    if (job->fd < 0) {
        struct reason why = {0};
        reason_set(&why, "cannot make a TAP device on %s: %s", job->bridge,
                   strerror(-job->fd));
        job->done(job->data, BROKER_ERR_CREATE_FAILURE, NULL, -1,
                  reason_get(&why));
        free(job);
        return;
    }
    info = job->info;
    // Remembered so linux_backend_close_sent() knows the device; without
    // memory it is closed on the loop instead.
    // An entry for the same number not queued for closing is stale (its
    // descriptor was closed elsewhere, as the core does for a peer that left
    // while its interface was being made).
    for (struct sent_fd *s = backend->sent; s != NULL; s = s->next) {
        if (s->fd == job->fd && !s->queued) {
            forget_sent(s);
            break;
        }
    }
    sent = calloc(1, sizeof(*sent));
    if (sent != NULL) {
        sent->backend = backend;
        sent->fd = job->fd;
        memcpy(sent->name, job->tap.name, sizeof(sent->name));
        sent->next = backend->sent;
        backend->sent = sent;
    }
    job->done(job->data, BROKER_OK, &info, job->fd, NULL);
    free(job);
}

// True if address is taken in network for a MAC other than mac: the
// gateway, a configured reservation, another guest's.
static bool address_taken(const struct linux_network *network, uint32_t address,
                          const uint8_t mac[6]) {
    const struct network_config *config = &network->config;

    if (address == network->made.gateway)
        return true;
    for (size_t i = 0; i < config->n_reservations; i++) {
        if (config->reservations[i].address == address)
            return true;
    }
    for (size_t i = 0; i < network->n_guests; i++) {
        if (network->guests[i].address == address &&
            memcmp(network->guests[i].mac, mac, 6) != 0)
            return true;
    }
    return false;
}

// The address reserved for mac on network, reserving one (in dnsmasq too)
// when it has none: stable like the MAC (a hash of it picks the first
// address tried in the DHCP range), never another's. 0 when the network
// has no DHCP or its range is full.
static uint32_t reserve_ipv4(struct linux_network *network,
                             const uint8_t mac[6]) {
    const struct network_info *made = &network->made;
    uint32_t size, first, address = 0;
    struct dhcp_reservation *grown;

    if (!made->dhcp || made->dhcp_end < made->dhcp_start ||
        network->dnsmasq == NULL)
        return 0;
    for (size_t i = 0; i < network->n_guests; i++) {
        if (memcmp(network->guests[i].mac, mac, 6) == 0)
            return network->guests[i].address;
    }
    size = made->dhcp_end - made->dhcp_start + 1;
    first = ((uint32_t)mac[2] << 24 | (uint32_t)mac[3] << 16 |
             (uint32_t)mac[4] << 8 | mac[5]) %
            size;
    for (uint32_t i = 0; i < size && address == 0; i++) {
        uint32_t candidate = made->dhcp_start + (first + i) % size;
        if (!address_taken(network, candidate, mac))
            address = candidate;
    }
    if (address == 0)
        return 0;
    grown = realloc(network->guests, (network->n_guests + 1) * sizeof(*grown));
    if (grown == NULL)
        return 0;
    network->guests = grown;
    memcpy(network->guests[network->n_guests].mac, mac, 6);
    network->guests[network->n_guests].address = address;
    network->n_guests++;
    // Written before the reply: the guest boots after it.
    if (dnsmasq_set_guest_hosts(network->dnsmasq, network->guests,
                                network->n_guests) < 0) {
        network->n_guests--;
        return 0;
    }
    return address;
}

static void
linux_network_open_interface(void *ctx, void *handle, const char *network_name,
                             const struct peer_cred *cred, unsigned index,
                             backend_interface_done_fn done, void *data) {
    struct linux_backend *backend = ctx;
    struct linux_network *network = handle;
    struct tap_job *job = calloc(1, sizeof(*job));
    uint8_t mac[6];

    if (job == NULL) {
        done(data, BROKER_ERR_INTERNAL, NULL, -1,
             "the broker is out of memory");
        return;
    }
    job->backend = backend;
    memcpy(job->bridge, network->bridge, sizeof(job->bridge));
    snprintf(job->network, sizeof(job->network), "%s", network_name);
    job->uid = cred->uid;
    job->gid = cred->gid;
    job->index = index;
    // tap_open() derives the same MAC on the worker; the addresses are
    // chosen here, on the loop, where the network's reservations live.
    guest_mac(backend->mac_key, network_name, cred->uid, index, mac);
    job->info.ipv4 = reserve_ipv4(network, mac);
    if (network->made.ipv6 && network->made.ipv6_prefix_len == 64) {
        guest_slaac(network->made.ipv6_prefix, mac, job->info.ipv6);
        job->info.has_ipv6 = true;
    }
    job->anti_spoofing = network->config.anti_spoofing;
    job->port_isolation = network->config.port_isolation;
    job->net = network->made;
    job->done = done;
    job->data = data;
    linux_worker_queue(backend->worker, open_tap, tap_opened, job);
}

// An interface whose close is still queued may be counted: only at a limit
// does that matter, and linux_settle_interfaces() then waits.
static bool linux_interface_exists(void *ctx, const char *name) {
    (void)ctx;
    return if_nametoindex(name) != 0;
}

static void linux_settle_interfaces(void *ctx) {
    struct linux_backend *backend = ctx;

    for (struct sent_fd *s = backend->sent; s != NULL; s = s->next) {
        if (s->queued)
            linux_worker_wait_for(s->closer, &s->closed);
    }
}

static void close_sent(void *data) {
    struct sent_fd *s = data;
    close(s->fd);
    s->closed = true;
}

static void forget_sent(void *data) {
    struct sent_fd *s = data;
    struct sent_fd **p = &s->backend->sent;

    while (*p != NULL && *p != s)
        p = &(*p)->next;
    if (*p == s)
        *p = s->next;
    free(s);
}

void linux_backend_close_sent(struct linux_backend *backend, int fd) {
    struct sent_fd *s = backend->sent;

    while (s != NULL && (s->fd != fd || s->queued))
        s = s->next;
    if (s == NULL) {
        close(fd);
        return;
    }
    s->queued = true;
    s->closer = backend->closers[backend->next_closer++ % CLOSERS];
    linux_worker_queue(s->closer, close_sent, forget_sent, s);
}

// Read on the loop: the lease file is small (one line per guest) and local.
static int linux_network_leases(void *ctx, void *handle,
                                struct lease_info **leases, size_t *n) {
    struct linux_network *network = handle;
    struct dnsmasq_lease *read = NULL;
    size_t count = 0;

    (void)ctx;
    *leases = NULL;
    *n = 0;
    if (network->dnsmasq == NULL)
        return BROKER_OK;
    if (dnsmasq_read_leases(network->dnsmasq, &read, &count) < 0)
        return BROKER_ERR_INTERNAL;
    _Static_assert(sizeof(read->hostname) == sizeof((*leases)->hostname),
                   "hostname sizes");
    if (count > 0) {
        *leases = calloc(count, sizeof(**leases));
        if (*leases == NULL) {
            free(read);
            return BROKER_ERR_INTERNAL;
        }
    }
    for (size_t i = 0; i < count; i++) {
        memcpy((*leases)[i].mac, read[i].mac, 6);
        (*leases)[i].ipv4 = read[i].address;
        (*leases)[i].expiry = read[i].expiry;
        memcpy((*leases)[i].hostname, read[i].hostname,
               sizeof(read[i].hostname));
    }
    *n = count;
    free(read);
    return BROKER_OK;
}

const struct network_backend_ops linux_backend_ops = {
    .create = linux_network_create,
    .destroy = linux_network_destroy,
    .abandon = linux_network_abandon,
    .open_interface = linux_network_open_interface,
    .interface_exists = linux_interface_exists,
    .settle_interfaces = linux_settle_interfaces,
    .leases = linux_network_leases,
};
