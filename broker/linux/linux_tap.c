// SPDX-License-Identifier: Apache-2.0
// TAP devices on a network's bridge, handed to unprivileged VMs by descriptor.
#include "linux_tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/guest_addr.h"
#include "core/log.h"
#include "linux_bridge.h"
#include "linux_instance.h"
#include "nl_errno.h"

// Random names collide only when the host is full of TAP devices; past this
// many tries something else is wrong.
#define NAME_ATTEMPTS 16

// Creates the device on a fresh descriptor under a random free name, written
// into name. Returns the descriptor or a negative errno.
static int create_device(char name[IFNAMSIZ]) {
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    int status = -errno;

    if (fd < 0) {
        log_error("tap: cannot open /dev/net/tun: %s", strerror(-status));
        goto out;
    }
    status = -EEXIST;
    for (int attempt = 0; attempt < NAME_ATTEMPTS; attempt++) {
        struct ifreq ifr = {0};
        uint32_t suffix;

        if (getrandom(&suffix, sizeof(suffix), 0) != (ssize_t)sizeof(suffix)) {
            status = -errno;
            log_error("tap: cannot read random bytes: %s", strerror(-status));
            goto out;
        }
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s%08x", LINUX_TAP_PREFIX,
                 (unsigned)suffix);
        // IFF_TUN_EXCL makes an existing name fail with EBUSY instead of
        // attaching to that device: without it a persistent TAP someone
        // else left with a colliding name would be handed to the client.
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_TUN_EXCL;
        if (ioctl(fd, TUNSETIFF, &ifr) == 0) {
            memcpy(name, ifr.ifr_name, IFNAMSIZ);
            status = 0;
            break;
        }
        // EEXIST: the name was taken between the kernel's check and its
        // registration of the device.
        if (errno != EBUSY && errno != EEXIST) {
            status = -errno;
            log_error("tap: cannot create %s: %s", ifr.ifr_name,
                      strerror(-status));
            goto out;
        }
    }
    if (status < 0) {
        log_error("tap: no free name after %d attempts", NAME_ATTEMPTS);
        goto out;
    }
    status = fd;
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    return status;
}

// The descriptor works for any holder; the owner marks the device as the
// client's (ip -d link shows it) and is the only user the kernel lets attach
// another queue to it.
static int set_owner(int fd, const char *name, uint32_t uid, uint32_t gid) {
    if (ioctl(fd, TUNSETOWNER, (unsigned long)uid) != 0 ||
        ioctl(fd, TUNSETGROUP, (unsigned long)gid) != 0) {
        int status = -errno;
        log_error("tap: cannot give %s to uid %u gid %u: %s", name,
                  (unsigned)uid, (unsigned)gid, strerror(-status));
        return status;
    }
    return 0;
}

// The TAP's own address starts with 0xfe, the highest locally administered
// unicast first byte (as libvirt does): a bridge without a fixed address
// takes the lowest of its ports' addresses, so with any other port it never
// takes this one. And it can never equal a guest's 02:76 address, which the
// bridge would treat as its own (a port's address is a local FDB entry) and
// never forward to the guest.
static int tap_own_mac(const char *name, uint8_t mac[6]) {
    if (getrandom(mac + 1, 5, 0) != 5) {
        int status = -errno;
        log_error("tap: cannot read random bytes for %s: %s", name,
                  strerror(-status));
        return status;
    }
    mac[0] = TAP_OWN_MAC_FIRST;
    return 0;
}

// Sets the TAP's address, MTU and alias (the mark tap_remove_marked()
// looks for: only CAP_NET_ADMIN can set an alias, so a holder of the
// descriptor cannot forge or clear it), brings it up and makes it a port of
// the bridge, in one netlink request.
static int attach_to_bridge(struct nl_sock *sock, const char *name,
                            struct rtnl_link *bridge_link, const char *alias) {
    struct rtnl_link *tap = rtnl_link_alloc();
    struct rtnl_link *change = rtnl_link_alloc();
    struct nl_addr *address = NULL;
    unsigned ifindex = if_nametoindex(name);
    uint8_t mac[6];
    int status = -ENOMEM;

    if (tap == NULL || change == NULL) {
        log_error("tap: out of memory");
        goto out;
    }
    if (ifindex == 0) {
        status = -errno;
        log_error("tap: %s vanished: %s", name, strerror(-status));
        goto out;
    }
    status = tap_own_mac(name, mac);
    if (status < 0)
        goto out;
    address = nl_addr_build(AF_LLC, mac, sizeof(mac));
    if (address == NULL) {
        status = -ENOMEM;
        log_error("tap: out of memory");
        goto out;
    }
    rtnl_link_set_ifindex(tap, (int)ifindex);
    rtnl_link_set_addr(change, address);
    // The bridge's MTU, so that enslaving this port never lowers it.
    rtnl_link_set_mtu(change, rtnl_link_get_mtu(bridge_link));
    rtnl_link_set_master(change, rtnl_link_get_ifindex(bridge_link));
    rtnl_link_set_flags(change, IFF_UP);
    rtnl_link_set_ifalias(change, alias);
    status = nl_to_errno(rtnl_link_change(sock, tap, change, 0));
    if (status < 0)
        log_error("tap: cannot attach %s to bridge %s: %s", name,
                  rtnl_link_get_name(bridge_link), strerror(-status));
out:
    nl_addr_put(address);
    rtnl_link_put(change);
    rtnl_link_put(tap);
    return status;
}

// Looks the bridge up before any device exists, so that a wrong name costs
// nothing to undo.
static int find_bridge(struct nl_sock *sock, const char *bridge,
                       struct rtnl_link **bridge_link) {
    struct rtnl_link *link = NULL;
    const char *kind;
    int status = nl_to_errno(rtnl_link_get_kernel(sock, 0, bridge, &link));

    if (status < 0) {
        log_error("tap: bridge %s: %s", bridge, strerror(-status));
        goto out;
    }
    kind = rtnl_link_get_type(link);
    if (kind == NULL || strcmp(kind, "bridge") != 0) {
        // Enslaving to some other kind (a bond) could succeed and do harm.
        status = -EINVAL;
        log_error("tap: %s is not a bridge", bridge);
        goto out;
    }
    *bridge_link = link;
    link = NULL;
    status = 0;
out:
    rtnl_link_put(link);
    return status;
}

int tap_open(const char *bridge, const char *network_name, uint32_t uid,
             uint32_t gid, unsigned index, const uint8_t *mac_key,
             struct tap_info *info) {
    struct nl_sock *sock = nl_socket_alloc();
    struct rtnl_link *bridge_link = NULL;
    char name[IFNAMSIZ];
    char alias[TAP_ALIAS_MAX];
    int fd = -1;
    int status = -ENOMEM;

    if (sock == NULL) {
        log_error("tap: out of memory");
        goto out;
    }
    status = nl_to_errno(nl_connect(sock, NETLINK_ROUTE));
    if (status < 0) {
        log_error("tap: cannot open a netlink socket: %s", strerror(-status));
        goto out;
    }
    status = find_bridge(sock, bridge, &bridge_link);
    if (status < 0)
        goto out;
    fd = create_device(name);
    if (fd < 0) {
        status = fd;
        goto out;
    }
    // From here a failure closes fd, and with it the device goes away.
    status = set_owner(fd, name, uid, gid);
    if (status < 0)
        goto out;
    snprintf(alias, sizeof(alias), "%s %u %u %s", linux_instance_tap_mark(),
             (unsigned)uid, index, network_name);
    status = attach_to_bridge(sock, name, bridge_link, alias);
    if (status < 0)
        goto out;
    memcpy(info->name, name, sizeof(info->name));
    guest_mac(mac_key, network_name, uid, index, info->mac);
    status = fd;
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    rtnl_link_put(bridge_link);
    nl_socket_free(sock);
    return status;
}

bool tap_alias_is_ours(const char *alias) {
    const char *mark = linux_instance_tap_mark();
    size_t length = strlen(mark);

    // The whole first word: "vmnet-broker-tap" must not claim another
    // instance's "vmnet-broker-tap-<id>".
    return alias != NULL && strncmp(alias, mark, length) == 0 &&
           alias[length] == ' ';
}

bool tap_mark_parse(const char *ifname, const char *kind, const char *alias,
                    unsigned *uid, unsigned *index, const char **network) {
    size_t mark = strlen(linux_instance_tap_mark());
    int end = 0;

    if (ifname == NULL || kind == NULL || alias == NULL ||
        strncmp(ifname, LINUX_TAP_PREFIX, strlen(LINUX_TAP_PREFIX)) != 0 ||
        strcmp(kind, "tun") != 0 || !tap_alias_is_ours(alias))
        return false;
    if (sscanf(alias + mark, " %u %u %n", uid, index, &end) != 2 || end == 0)
        return false;
    *network = alias + mark + end;
    return true;
}

// True if link is a TAP device this broker instance made for network_name
// (any network when NULL).
static bool is_marked(struct rtnl_link *link, const char *network_name) {
    unsigned uid, index;
    const char *network;

    if (!tap_mark_parse(rtnl_link_get_name(link), rtnl_link_get_type(link),
                        rtnl_link_get_ifalias(link), &uid, &index, &network))
        return false;
    return network_name == NULL || strcmp(network, network_name) == 0;
}

// Calls each(sock, link, ctx) for every TAP device this broker instance
// made for network_name (any network when NULL); returns how many calls
// returned true, or a negative errno when the links cannot be listed
// (logged).
static int each_marked(struct nl_sock *sock, const char *network_name,
                       bool (*each)(struct nl_sock *sock,
                                    struct rtnl_link *link, void *ctx),
                       void *ctx) {
    struct nl_cache *links = NULL;
    int done = 0;
    int err = nl_to_errno(rtnl_link_alloc_cache(sock, AF_UNSPEC, &links));

    if (err < 0) {
        log_error("tap: cannot list links: %s", strerror(-err));
        return err;
    }
    for (struct nl_object *obj = nl_cache_get_first(links); obj != NULL;
         obj = nl_cache_get_next(obj)) {
        struct rtnl_link *link = (struct rtnl_link *)obj;

        if (is_marked(link, network_name) && each(sock, link, ctx))
            done++;
    }
    nl_cache_free(links);
    return done;
}

static bool remove_one(struct nl_sock *sock, struct rtnl_link *link,
                       void *ctx) {
    // Deleting works whoever holds it and whether or not its holder made
    // it persistent; a holder's descriptor then fails (EBADFD).
    int err = nl_to_errno(rtnl_link_delete(sock, link));

    (void)ctx;
    if (err < 0 && err != -ENOENT && err != -ENODEV) {
        log_error("tap: cannot remove %s (%s): %s", rtnl_link_get_name(link),
                  rtnl_link_get_ifalias(link), strerror(-err));
        return false;
    }
    log_info("removed TAP device %s (%s)", rtnl_link_get_name(link),
             rtnl_link_get_ifalias(link));
    return true;
}

int tap_remove_marked(struct nl_sock *sock, const char *network_name) {
    return each_marked(sock, network_name, remove_one, NULL);
}

struct reattach {
    const char *network_name;
    int bridge_ifindex;
    bool isolate;
};

static bool reattach_one(struct nl_sock *sock, struct rtnl_link *link,
                         void *ctx) {
    const struct reattach *r = ctx;
    struct rtnl_link *change;
    int err;

    if (rtnl_link_get_master(link) == r->bridge_ifindex)
        return false;
    change = rtnl_link_alloc();
    if (change == NULL)
        return false;
    rtnl_link_set_master(change, r->bridge_ifindex);
    rtnl_link_set_flags(change, IFF_UP);
    err = nl_to_errno(rtnl_link_change(sock, link, change, 0));
    rtnl_link_put(change);
    // Isolation is a port flag: it went with the old port.
    if (err >= 0 && r->isolate)
        err = linux_bridge_port_set_isolated(sock, rtnl_link_get_ifindex(link));
    if (err < 0) {
        log_error("tap: cannot attach %s to its network %s again: %s",
                  rtnl_link_get_name(link), r->network_name, strerror(-err));
        return false;
    }
    return true;
}

int tap_reattach_marked(struct nl_sock *sock, const char *network_name,
                        int bridge_ifindex, bool isolate) {
    struct reattach r = {network_name, bridge_ifindex, isolate};

    return each_marked(sock, network_name, reattach_one, &r);
}

int tap_send_with_fd(int socket_fd, const void *data, size_t len, int fd) {
    union {
        struct cmsghdr header; // aligns the buffer for a cmsghdr
        char buffer[CMSG_SPACE(sizeof(int))];
    } control;
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buffer,
        .msg_controllen = sizeof(control.buffer),
    };
    struct cmsghdr *cmsg;

    memset(&control, 0, sizeof(control));
    cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    // MSG_NOSIGNAL: a client that hung up must not kill the broker.
    if (sendmsg(socket_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        return -errno;
    return 0;
}
