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

#include "core/log.h"
#include "core/network_config.h"
#include "core/peer.h"
#include "core/status.h"
#include "core/subnet.h"
#include "core/uuid.h"
#include "linux_bridge.h"
#include "linux_host_routes.h"
#include "linux_tap.h"

// The MTU of a network when neither its config nor a default route says.
#define DEFAULT_MTU 1500

struct linux_backend {
    struct nl_sock *sock;
};

_Static_assert(NETWORK_BRIDGE_MAX + 1 == IFNAMSIZ,
               "network_info.bridge holds exactly an interface name");

// The handle create() returns: enough to find the bridge again.
struct linux_network {
    int ifindex;
    char bridge[IFNAMSIZ];
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
    // nl_socket_free() closes the socket if nl_connect() opened it.
    nl_socket_free(backend->sock);
    free(backend);
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

static bool choose_free_subnet(const struct network_config *config,
                               const struct host_networks *host,
                               struct network_info *info) {
    struct ipv4_prefix chosen;

    if (!subnet_choose(host->prefixes, host->n, &chosen)) {
        log_error("network %s: every /24 from 192.168.64.0 to 192.168.255.0 "
                  "overlaps an address or route on the host",
                  config->name);
        return false;
    }
    info->subnet = chosen.address;
    info->mask = ipv4_prefix_mask(chosen.len);
    info->gateway = chosen.address + 1;
    return true;
}

static int linux_network_create(void *ctx, const struct network_config *config,
                                struct network_info *info, void **handle) {
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
                           : !choose_free_subnet(config, &host, &made))
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
    log_info("network %s: bridge %s, gateway %s/%u, mtu %u", config->name,
             made.bridge, ipv4_format(made.gateway, gateway),
             ipv4_mask_len(made.mask), made.mtu);
    *info = made;
    *handle = network;
    network = NULL;
    status = BROKER_OK;
out:
    if (bridge_exists && status != BROKER_OK) {
        err = linux_bridge_delete(backend->sock, network->ifindex,
                                  network->bridge);
        if (err < 0)
            log_error("network %s: cannot remove half-made bridge %s: %s",
                      config->name, network->bridge, nl_geterror(err));
    }
    linux_host_networks_clear(&host);
    free(network);
    return status;
}

static void linux_network_destroy(void *ctx, void *handle) {
    struct linux_backend *backend = ctx;
    struct linux_network *network = handle;
    int err;

    if (network == NULL)
        return;
    err = linux_bridge_delete(backend->sock, network->ifindex, network->bridge);
    if (err == 0)
        log_info("removed bridge %s", network->bridge);
    else if (err == -NLE_OBJ_NOTFOUND)
        log_warning("bridge %s was already removed", network->bridge);
    else
        log_error("cannot remove bridge %s: %s", network->bridge,
                  nl_geterror(err));
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
    .open_interface = linux_network_open_interface,
    .interface_exists = linux_interface_exists,
};
