// SPDX-License-Identifier: Apache-2.0
// Watches the broker's TAP devices for holders that change their address.
#include "tap_watch.h"

#include <errno.h>
#include <linux/if_arp.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/log.h"
#include "linux_tap.h"
#include "nl_errno.h"

struct tap_watch {
    // Receives RTNLGRP_LINK events only.
    struct nl_sock *events;
    // Sends the repairs: a request on the events socket would interleave
    // its answer with the events.
    struct nl_sock *requests;
    sd_event_source *io;
    tap_watch_report_fn report;
    void *ctx;
};

// Gives the device a fresh address of the broker's kind, or deletes it.
static void repair(struct tap_watch *watch, int ifindex, const char *name,
                   const uint8_t *bad) {
    struct rtnl_link *tap = rtnl_link_alloc(), *change = rtnl_link_alloc();
    struct nl_addr *address = NULL;
    uint8_t mac[6];
    char what[160];
    int err = -ENOMEM;

    if (tap == NULL || change == NULL)
        goto out;
    rtnl_link_set_ifindex(tap, ifindex);
    if (getrandom(mac + 1, 5, 0) != 5) {
        err = -EIO;
        goto out;
    }
    mac[0] = TAP_OWN_MAC_FIRST;
    address = nl_addr_build(AF_LLC, mac, sizeof(mac));
    if (address == NULL)
        goto out;
    rtnl_link_set_addr(change, address);
    err = nl_to_errno(rtnl_link_change(watch->requests, tap, change, 0));
out:
    if (err < 0) {
        // Deleting it is the one sure way to keep the bridge's entry off.
        int del = tap != NULL
                      ? nl_to_errno(rtnl_link_delete(watch->requests, tap))
                      : -ENOMEM;
        snprintf(what, sizeof(what),
                 "its holder set its address to "
                 "%02x:%02x:%02x:%02x:%02x:%02x; cannot restore it (%s), %s",
                 bad[0], bad[1], bad[2], bad[3], bad[4], bad[5], strerror(-err),
                 del < 0 ? "and cannot delete it" : "deleted the device");
    } else {
        snprintf(what, sizeof(what),
                 "its holder set its address to "
                 "%02x:%02x:%02x:%02x:%02x:%02x; restored",
                 bad[0], bad[1], bad[2], bad[3], bad[4], bad[5]);
    }
    watch->report(watch->ctx, name, what);
    nl_addr_put(address);
    rtnl_link_put(change);
    rtnl_link_put(tap);
}

static int on_message(struct nl_msg *msg, void *arg) {
    struct tap_watch *watch = arg;
    struct nlmsghdr *hdr = nlmsg_hdr(msg);
    struct nlattr *tb[IFLA_MAX + 1];
    struct ifinfomsg *ifi;
    const char *name, *alias;
    const uint8_t *address;

    if (hdr->nlmsg_type != RTM_NEWLINK ||
        nlmsg_parse(hdr, sizeof(*ifi), tb, IFLA_MAX, NULL) < 0)
        return NL_OK;
    ifi = nlmsg_data(hdr);
    if (ifi->ifi_type != ARPHRD_ETHER || tb[IFLA_IFNAME] == NULL ||
        tb[IFLA_IFALIAS] == NULL || tb[IFLA_ADDRESS] == NULL ||
        nla_len(tb[IFLA_ADDRESS]) != 6)
        return NL_OK;
    name = nla_get_string(tb[IFLA_IFNAME]);
    alias = nla_get_string(tb[IFLA_IFALIAS]);
    address = nla_data(tb[IFLA_ADDRESS]);
    // Only devices this broker instance made: the alias needs
    // CAP_NET_ADMIN, and another instance watches its own.
    if (strncmp(name, LINUX_TAP_PREFIX, strlen(LINUX_TAP_PREFIX)) != 0 ||
        !tap_alias_is_ours(alias) || address[0] == TAP_OWN_MAC_FIRST)
        return NL_OK;
    repair(watch, ifi->ifi_index, name, address);
    return NL_OK;
}

static int on_readable(sd_event_source *source, int fd, uint32_t revents,
                       void *data) {
    struct tap_watch *watch = data;
    int err;

    (void)source;
    (void)fd;
    (void)revents;
    do
        err = nl_to_errno(nl_recvmsgs_default(watch->events));
    while (err >= 0);
    // Events lost to a full buffer: a change may have been among them.
    if (err == -ENOMEM || err == -ENOBUFS)
        log_warning("tap watch: netlink events were lost (%s)", strerror(-err));
    return 0;
}

int tap_watch_new(sd_event *event, tap_watch_report_fn report, void *ctx,
                  struct tap_watch **out) {
    struct tap_watch *watch = calloc(1, sizeof(*watch));
    int err = -ENOMEM;

    if (watch == NULL)
        goto out;
    watch->report = report;
    watch->ctx = ctx;
    watch->events = nl_socket_alloc();
    watch->requests = nl_socket_alloc();
    if (watch->events == NULL || watch->requests == NULL)
        goto out;
    nl_socket_disable_seq_check(watch->events);
    nl_socket_modify_cb(watch->events, NL_CB_VALID, NL_CB_CUSTOM, on_message,
                        watch);
    err = nl_to_errno(nl_connect(watch->events, NETLINK_ROUTE));
    if (err >= 0)
        err = nl_to_errno(nl_connect(watch->requests, NETLINK_ROUTE));
    if (err >= 0)
        err =
            nl_to_errno(nl_socket_add_membership(watch->events, RTNLGRP_LINK));
    if (err >= 0)
        err = nl_to_errno(nl_socket_set_nonblocking(watch->events));
    if (err < 0) {
        log_error("tap watch: netlink: %s", strerror(-err));
        goto out;
    }
    // A bigger buffer: a burst of link events (many networks made at
    // once) must not drop the one that matters.
    nl_socket_set_buffer_size(watch->events, 4 << 20, 0);
    err = sd_event_add_io(event, &watch->io, nl_socket_get_fd(watch->events),
                          EPOLLIN, on_readable, watch);
    if (err < 0) {
        log_error("tap watch: %s", strerror(-err));
        goto out;
    }
    *out = watch;
    watch = NULL;
    err = 0;
out:
    tap_watch_free(watch);
    return err;
}

void tap_watch_free(struct tap_watch *watch) {
    if (watch == NULL)
        return;
    sd_event_source_unref(watch->io);
    nl_socket_free(watch->events);
    nl_socket_free(watch->requests);
    free(watch);
}
