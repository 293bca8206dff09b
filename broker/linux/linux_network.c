// SPDX-License-Identifier: Apache-2.0
// The Linux network backend: each network is a bridge made over netlink.
#include "linux_network.h"

#include <errno.h>
#include <net/if.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/log.h"
#include "core/network_config.h"
#include "core/peer.h"
#include "core/status.h"
#include "core/subnet.h"
#include "core/uuid.h"
#include "linux_bridge.h"
#include "linux_dnsmasq.h"
#include "linux_firewall.h"
#include "linux_host_routes.h"
#include "linux_sysctl.h"
#include "linux_tap.h"

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
};

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
    int ifindex;
    char bridge[IFNAMSIZ];
    bool has_rules;
    struct dnsmasq *dnsmasq;
    // While a removal waits for it.
    struct dnsmasq *stopping;
    // The core's completion of create (while dnsmasq starts) or destroy
    // (while it stops).
    backend_create_done_fn created;
    backend_destroy_done_fn destroyed;
    void *done_data;
    char name[NETWORK_NAME_MAX + 1];
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
    // Deletes the broker's whole table: no rule outlives the broker.
    firewall_free(backend->firewall);
    // nl_socket_free() closes the socket if nl_connect() opened it.
    nl_socket_free(backend->sock);
    free(backend->runtime_dir);
    free(backend->dnsmasq_path);
    free(backend);
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
    return removed;
}

// Fills info->subnet, mask and gateway from a static subnet, refusing one
// the host already uses.
static bool use_static_subnet(const struct network_config *config,
                              const struct host_networks *host,
                              struct network_info *info) {
    uint32_t network = config->subnet & config->mask;
    uint32_t broadcast = network | ~config->mask;
    struct ipv4_prefix wanted = {network, ipv4_mask_len(config->mask)};
    char address[16];
    char what[64];

    if (!ipv4_mask_valid(config->mask)) {
        log_error("network %s: invalid mask %s", config->name,
                  ipv4_format(config->mask, address));
        return false;
    }
    for (size_t i = 0; i < host->n; i++) {
        if (ipv4_prefix_overlaps(wanted, host->prefixes[i])) {
            log_error(
                "network %s: subnet %s/%u overlaps %s", config->name,
                ipv4_format(network, address), wanted.len,
                linux_host_networks_describe(host, i, what, sizeof(what)));
            return false;
        }
    }
    info->subnet = network;
    info->mask = config->mask;
    // vmnet accepts the gateway or the network address as "subnet".
    info->gateway = config->subnet != network && config->subnet != broadcast
                        ? config->subnet
                        : network + 1;
    return true;
}

static bool choose_free_subnet(const struct linux_backend *backend,
                               const struct network_config *config,
                               const struct host_networks *host,
                               struct network_info *info) {
    struct ipv4_prefix chosen;
    char first[16], last[16];

    if (!subnet_choose_in(backend->pool_first, backend->pool_last,
                          host->prefixes, host->n, &chosen)) {
        log_error("network %s: every /24 from %s to %s overlaps an address "
                  "or route on the host",
                  config->name, ipv4_format(backend->pool_first, first),
                  ipv4_format(backend->pool_last, last));
        return false;
    }
    info->subnet = chosen.address;
    info->mask = ipv4_prefix_mask(chosen.len);
    info->gateway = chosen.address + 1;
    return true;
}

// A random unique local /64 (RFC 4193: fd00::/8, a 40-bit random global ID,
// subnet 0), new for every instance of a network.
static bool random_ula(uint8_t prefix[16]) {
    memset(prefix, 0, 16);
    prefix[0] = 0xfd;
    return getrandom(prefix + 1, 5, 0) == 5;
}

static void remove_rules(struct linux_backend *backend,
                         struct linux_network *network) {
    if (network->has_rules)
        firewall_remove_network(backend->firewall, network->bridge);
    network->has_rules = false;
}

static void stop_services(struct linux_backend *backend,
                          struct linux_network *network) {
    dnsmasq_stop(network->dnsmasq);
    network->dnsmasq = NULL;
    remove_rules(backend, network);
}

static void on_dnsmasq_ready(void *data, int status);

// Everything beyond the bridge: IPv6, checksums, forwarding, rules, dnsmasq.
// Fills the rest of *info. On failure logs, undoes nothing (the caller's
// stop_services() and bridge removal do) and returns false.
static bool start_services(struct linux_backend *backend,
                           const struct network_config *config,
                           struct linux_network *network,
                           struct network_info *info) {
    uint32_t broadcast = info->subnet | ~info->mask;
    int err;

    info->dns = info->gateway;
    info->dhcp = config->dhcp;
    if (config->has_dhcp_range) {
        info->dhcp_start = config->dhcp_start;
        info->dhcp_end = config->dhcp_end;
    } else {
        // Everything but the network, gateway and broadcast addresses; the
        // gateway is usually the first host, so start after it.
        info->dhcp_start = info->gateway == info->subnet + 1 ? info->subnet + 2
                                                             : info->subnet + 1;
        info->dhcp_end =
            info->gateway == broadcast - 1 ? broadcast - 2 : broadcast - 1;
    }
    info->ipv6 = config->ipv6;
    if (info->ipv6) {
        uint8_t gateway6[16];
        if (config->has_ipv6_prefix) {
            memcpy(info->ipv6_prefix, config->ipv6_prefix, 16);
        } else if (!random_ula(info->ipv6_prefix)) {
            log_error("network %s: cannot read random bytes", config->name);
            return false;
        }
        info->ipv6_prefix_len = 64;
        memcpy(gateway6, info->ipv6_prefix, 16);
        gateway6[15] = 1;
        err = linux_bridge_add_address6(backend->sock, network->ifindex,
                                        gateway6, 64);
        if (err < 0) {
            log_error("network %s: cannot add the IPv6 gateway to %s: %s",
                      config->name, network->bridge, nl_geterror(err));
            return false;
        }
    }
    err = linux_bridge_disable_tx_checksum(network->bridge);
    if (err < 0)
        log_warning("network %s: cannot turn off tx checksum offload on %s "
                    "(%s): guests with vhost-net may miss DHCP replies",
                    config->name, network->bridge, strerror(-err));
    if (config->mode == NETWORK_MODE_SHARED) {
        if (sysctl_enable_forwarding(info->ipv6) < 0)
            return false;
        if (config->n_port_forwards > 0 &&
            sysctl_enable_route_localnet(network->bridge) < 0)
            return false;
        firewall_foreign_forward_drop(backend->firewall);
    }
    if (firewall_add_network(backend->firewall, config, info) < 0)
        return false;
    network->has_rules = true;
    if (dnsmasq_start(&backend->dnsmasq, config, info, on_dnsmasq_ready,
                      network, &network->dnsmasq) < 0)
        return false;
    return true;
}

// Removes the bridge. Returns 0 or a negative errno (logged).
static int remove_bridge(struct linux_backend *backend,
                         struct linux_network *network) {
    int err =
        linux_bridge_delete(backend->sock, network->ifindex, network->bridge);
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

// dnsmasq answered (or failed to): the creation ends.
static void on_dnsmasq_ready(void *data, int status) {
    struct linux_network *network = data;
    struct linux_backend *backend = network->backend;
    backend_create_done_fn created = network->created;
    void *done_data = network->done_data;

    network->created = NULL;
    if (status == 0) {
        created(done_data, BROKER_OK);
        return;
    }
    log_error("network %s: dnsmasq did not start: %s", network->name,
              strerror(-status));
    stop_services(backend, network);
    remove_bridge(backend, network);
    free(network);
    created(done_data, BROKER_ERR_CREATE_FAILURE);
}

static void linux_network_create(void *ctx, const struct network_config *config,
                                 struct network_info *info, void **handle,
                                 backend_create_done_fn done, void *data) {
    struct linux_backend *backend = ctx;
    struct linux_network *network = calloc(1, sizeof(*network));
    struct host_networks host = {0};
    struct network_info made = {0};
    bool bridge_exists = false;
    uint8_t mac[6];
    char gateway[16];
    int status = BROKER_ERR_INTERNAL;
    int err;

    if (network == NULL) {
        log_error("network %s: out of memory", config->name);
        goto out;
    }
    network->backend = backend;
    snprintf(network->name, sizeof(network->name), "%s", config->name);
    if (!uuid_generate(made.uuid) || !linux_bridge_random_mac(mac)) {
        log_error("network %s: cannot read random bytes", config->name);
        goto out;
    }
    status = BROKER_ERR_CREATE_FAILURE;
    linux_bridge_name(config->name, network->bridge);
    err = linux_host_networks_read(backend->sock, &host);
    if (err < 0) {
        log_error("network %s: cannot read the host's addresses and routes: %s",
                  config->name, nl_geterror(err));
        goto out;
    }
    if (config->has_subnet ? !use_static_subnet(config, &host, &made)
                           : !choose_free_subnet(backend, config, &host, &made))
        goto out;
    made.mtu = config->mtu != 0              ? config->mtu
               : host.default_route_mtu != 0 ? host.default_route_mtu
                                             : DEFAULT_MTU;

    err = linux_bridge_add(backend->sock, network->bridge, config->name, mac,
                           made.mtu, &network->ifindex);
    if (err == -NLE_EXIST) {
        log_error("network %s: interface %s exists and is not ours",
                  config->name, network->bridge);
        goto out;
    }
    if (err < 0) {
        log_error("network %s: cannot create bridge %s (mtu %u): %s",
                  config->name, network->bridge, made.mtu, nl_geterror(err));
        goto out;
    }
    bridge_exists = true;
    err = linux_bridge_add_address(backend->sock, network->ifindex,
                                   made.gateway, ipv4_mask_len(made.mask));
    if (err < 0) {
        log_error("network %s: cannot add %s/%u to %s: %s", config->name,
                  ipv4_format(made.gateway, gateway), ipv4_mask_len(made.mask),
                  network->bridge, nl_geterror(err));
        goto out;
    }
    err = linux_bridge_set_up(backend->sock, network->ifindex);
    if (err < 0) {
        log_error("network %s: cannot set %s up: %s", config->name,
                  network->bridge, nl_geterror(err));
        goto out;
    }

    memcpy(made.bridge, network->bridge, sizeof(made.bridge));
    network->created = done;
    network->done_data = data;
    if (backend->firewall != NULL &&
        !start_services(backend, config, network, &made))
        goto out;
    // dnsmasq's readiness, which completes the creation, comes from the
    // event loop: never before this.
    *info = made;
    log_info("network %s: bridge %s, gateway %s/%u, mtu %u", config->name,
             made.bridge, ipv4_format(made.gateway, gateway),
             ipv4_mask_len(made.mask), made.mtu);
    *handle = network;
    // Without services (bridges only) there is nothing to wait for.
    if (network->dnsmasq == NULL) {
        network->created = NULL;
        network = NULL;
        linux_host_networks_clear(&host);
        done(data, BROKER_OK);
        return;
    }
    network = NULL;
    status = BROKER_OK;
out:
    if (network != NULL)
        stop_services(backend, network);
    if (bridge_exists && status != BROKER_OK) {
        err = linux_bridge_delete(backend->sock, network->ifindex,
                                  network->bridge);
        if (err < 0)
            log_error("network %s: cannot remove half-made bridge %s: %s",
                      config->name, network->bridge, nl_geterror(err));
    }
    linux_host_networks_clear(&host);
    free(network);
    if (status != BROKER_OK)
        done(data, status);
}

// dnsmasq has ended: the bridge goes last, and the removal ends.
static void on_dnsmasq_stopped(void *data) {
    struct linux_network *network = data;
    backend_destroy_done_fn destroyed = network->destroyed;
    void *done_data = network->done_data;

    network->stopping = NULL;
    remove_bridge(network->backend, network);
    free(network);
    destroyed(done_data);
}

// The rules go at once (nftables answers within the turn); dnsmasq is asked
// to stop, and the bridge goes once it has (on_dnsmasq_stopped).
static void linux_network_destroy(void *ctx, void *handle,
                                  backend_destroy_done_fn done, void *data) {
    struct linux_backend *backend = ctx;
    struct linux_network *network = handle;
    struct dnsmasq *dnsmasq = network->dnsmasq;

    remove_rules(backend, network);
    network->dnsmasq = NULL;
    network->destroyed = done;
    network->done_data = data;
    if (dnsmasq == NULL) {
        on_dnsmasq_stopped(network);
        return;
    }
    network->stopping = dnsmasq;
    dnsmasq_stop_async(dnsmasq, on_dnsmasq_stopped, network);
}

static void linux_network_abandon(void *ctx, void *handle) {
    struct linux_backend *backend = ctx;
    struct linux_network *network = handle;

    if (network == NULL)
        return;
    // Stopped at once, without the pending removal's callback.
    dnsmasq_stop(network->stopping);
    stop_services(backend, network);
    remove_bridge(backend, network);
    free(network);
}

static int linux_network_open_interface(void *ctx, void *handle,
                                        const char *network_name,
                                        const struct peer_cred *cred,
                                        unsigned index,
                                        struct interface_info *info, int *fd) {
    struct linux_network *network = handle;
    struct tap_info tap;
    int r;

    (void)ctx;
    r = tap_open(network->bridge, network_name, cred->uid, cred->gid, index,
                 &tap);
    if (r < 0)
        return BROKER_ERR_CREATE_FAILURE;
    _Static_assert(sizeof(info->name) == sizeof(tap.name), "ifname sizes");
    memcpy(info->name, tap.name, sizeof(info->name));
    memcpy(info->mac, tap.mac, sizeof(info->mac));
    *fd = r;
    return BROKER_OK;
}

static bool linux_interface_exists(void *ctx, const char *name) {
    (void)ctx;
    return if_nametoindex(name) != 0;
}

const struct network_backend_ops linux_backend_ops = {
    .create = linux_network_create,
    .destroy = linux_network_destroy,
    .abandon = linux_network_abandon,
    .open_interface = linux_network_open_interface,
    .interface_exists = linux_interface_exists,
};
