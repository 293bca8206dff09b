// SPDX-License-Identifier: Apache-2.0
// At --verbose: each network's DHCP leases logged as guests take and drop them.
#include "lease_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/network_config.h"
#include "linux_dnsmasq.h"

struct lease_log {
    const struct dnsmasq *dnsmasq;
    char network[NETWORK_NAME_MAX + 1];
    char lease_file[64];
    int watch_descriptor;
    // Armed by a change, fires once it has settled: dnsmasq truncates the
    // file before writing it again, and a reading in between would see every
    // lease gone and back.
    sd_event_source *settle;
    // The leases last logged, to tell what changed.
    struct dnsmasq_lease *known;
    size_t n_known;
    struct lease_log *next;
};

// One inotify instance for every network's lease file: the kernel's default
// of 128 instances per user must not cap the number of networks.
static struct {
    int fd;
    sd_event_source *source;
    struct lease_log *logs;
} watch = {.fd = -1};

static const struct dnsmasq_lease *find(const struct dnsmasq_lease *leases,
                                        size_t n, const uint8_t mac[6]) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(leases[i].mac, mac, 6) == 0)
            return &leases[i];
    return NULL;
}

static void log_lease(const char *network, const char *what,
                      const struct dnsmasq_lease *lease) {
    char address[INET_ADDRSTRLEN];
    struct in_addr in = {.s_addr = htonl(lease->address)};

    inet_ntop(AF_INET, &in, address, sizeof(address));
    log_debug("network %s: lease %s: %02x:%02x:%02x:%02x:%02x:%02x %s%s%s%s",
              network, what, lease->mac[0], lease->mac[1], lease->mac[2],
              lease->mac[3], lease->mac[4], lease->mac[5], address,
              lease->hostname[0] != '\0' ? " '" : "", lease->hostname,
              lease->hostname[0] != '\0' ? "'" : "");
}

// Reads the lease file again and logs what differs from the last reading.
static void refresh(struct lease_log *log) {
    struct dnsmasq_lease *leases = NULL;
    size_t n = 0;

    if (dnsmasq_read_leases(log->dnsmasq, &leases, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        const struct dnsmasq_lease *was =
            find(log->known, log->n_known, leases[i].mac);
        if (was == NULL)
            log_lease(log->network, "new", &leases[i]);
        else if (was->address != leases[i].address ||
                 strcmp(was->hostname, leases[i].hostname) != 0)
            log_lease(log->network, "changed", &leases[i]);
    }
    for (size_t i = 0; i < log->n_known; i++)
        if (find(leases, n, log->known[i].mac) == NULL)
            log_lease(log->network, "gone", &log->known[i]);
    free(log->known);
    log->known = leases;
    log->n_known = n;
}

#define SETTLE_USEC 100000ull

static int on_settled(sd_event_source *s, uint64_t usec, void *userdata) {
    (void)s;
    (void)usec;
    refresh(userdata);
    return 0;
}

// A change to log's lease file: read it once the writes have settled.
static void changed(struct lease_log *log) {
    int enabled = SD_EVENT_OFF;

    sd_event_source_get_enabled(log->settle, &enabled);
    if (enabled != SD_EVENT_OFF)
        return;
    if (sd_event_source_set_time_relative(log->settle, SETTLE_USEC) < 0 ||
        sd_event_source_set_enabled(log->settle, SD_EVENT_ONESHOT) < 0)
        refresh(log);
}

static int on_event(sd_event_source *s, int fd, uint32_t revents,
                    void *userdata) {
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;

    (void)s;
    (void)revents;
    (void)userdata;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *event = (const void *)p;
            p += sizeof(*event) + event->len;
            for (struct lease_log *log = watch.logs; log; log = log->next)
                if (log->watch_descriptor == event->wd && event->len > 0 &&
                    strcmp(event->name, log->lease_file) == 0)
                    changed(log);
        }
    }
    return 0;
}

static int open_watch(sd_event *event) {
    int r;

    if (watch.fd >= 0)
        return 0;
    watch.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (watch.fd < 0)
        return -errno;
    r = sd_event_add_io(event, &watch.source, watch.fd, EPOLLIN, on_event,
                        NULL);
    if (r < 0) {
        close(watch.fd);
        watch.fd = -1;
    }
    return r;
}

int lease_log_start(sd_event *event, const struct dnsmasq *d,
                    const char *network, const char *directory,
                    const char *lease_file, struct lease_log **out) {
    struct lease_log *log = NULL;
    int r = 0;

    *out = NULL;
    if (log_get_level() < LOG_LEVEL_DEBUG)
        goto out;
    r = -ENOMEM;
    log = calloc(1, sizeof(*log));
    if (log == NULL)
        goto out;
    log->dnsmasq = d;
    log->watch_descriptor = -1;
    snprintf(log->network, sizeof(log->network), "%s", network);
    snprintf(log->lease_file, sizeof(log->lease_file), "%s", lease_file);
    r = open_watch(event);
    if (r < 0)
        goto out;
    r = sd_event_add_time_relative(event, &log->settle, CLOCK_MONOTONIC,
                                   SETTLE_USEC, 10000, on_settled, log);
    if (r < 0)
        goto out;
    sd_event_source_set_enabled(log->settle, SD_EVENT_OFF);
    // The directory, not the file: dnsmasq makes the file with the first
    // lease. It rewrites the file in place, so a modification is the event.
    log->watch_descriptor = inotify_add_watch(
        watch.fd, directory, IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO);
    if (log->watch_descriptor < 0) {
        r = -errno;
        goto out;
    }
    log->next = watch.logs;
    watch.logs = log;
    refresh(log);
    *out = log;
    log = NULL;
    r = 0;
out:
    if (r < 0) {
        log_warning("network %s: cannot watch its leases: %s", network,
                    strerror(-r));
        if (log != NULL)
            sd_event_source_disable_unref(log->settle);
    }
    free(log);
    return r;
}

void lease_log_free(struct lease_log *log) {
    if (log == NULL)
        return;
    for (struct lease_log **p = &watch.logs; *p; p = &(*p)->next) {
        if (*p == log) {
            *p = log->next;
            break;
        }
    }
    // The watch goes with the directory too; removing it first keeps a
    // later directory of the same descriptor number from being mistaken.
    inotify_rm_watch(watch.fd, log->watch_descriptor);
    sd_event_source_disable_unref(log->settle);
    free(log->known);
    free(log);
}
