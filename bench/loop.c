// SPDX-License-Identifier: Apache-2.0
// The event loop under load (issue 10): status beside churn, idle and
// non-reading connections, simultaneous acquirers, teardown, many networks.
#include <dirent.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define STATUS_SAMPLES 2000
#define CHURNERS 2
// Networks each churner cycles through: each is idle long enough between
// two uses to be removed, so every cycle creates and removes one.
#define CHURN_NETWORKS 10
#define IDLE_CONNECTIONS 2000
#define NON_READERS 8
#define ACQUIRERS 64
#define TEARDOWNS 5
#define IDLE_SECONDS 0.2
// More than the default pool's 192 /24s: creation goes on until it fails.
#define LOOP_CONFIGURED 260
// Networks used before the "many networks" part.
#define FIRST_FREE_NETWORK (CHURNERS * CHURN_NETWORKS + 10)

static const char status_request[] = "{\"command\":\"status\"}";

static void sleep_us(long us) {
    struct timespec ts = {.tv_sec = us / 1000000,
                          .tv_nsec = (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

// One request, one reply of any length (and any descriptor it carries,
// closed). Returns the reply's length, or -1.
static ssize_t request(int fd, const char *text, char *reply, size_t size) {
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = reply, .iov_len = size - 1};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control,
                         .msg_controllen = sizeof(control)};
    ssize_t n;

    if (send(fd, text, strlen(text), MSG_NOSIGNAL) != (ssize_t)strlen(text))
        return -1;
    do
        n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        if (c != NULL && c->cmsg_type == SCM_RIGHTS) {
            int received;
            memcpy(&received, CMSG_DATA(c), sizeof(received));
            close(received);
        }
        reply[n] = '\0';
    }
    return n;
}

struct status_ctx {
    int fd;
    char *reply;
    size_t size;
};

static bool status_round_trip(void *arg) {
    struct status_ctx *ctx = arg;
    return request(ctx->fd, status_request, ctx->reply, ctx->size) > 0;
}

static double max_us(const struct samples *samples) {
    uint64_t max = 0;
    for (size_t i = 0; i < samples->n; i++)
        max = samples->ns[i] > max ? samples->ns[i] : max;
    return max / 1e3;
}

// status round trips on a fresh connection into *samples.
static bool measure_status(const struct broker_process *broker,
                           struct samples *samples) {
    static char reply[512 * 1024];
    struct status_ctx ctx = {.reply = reply, .size = sizeof(reply)};
    bool ok;

    ctx.fd = exchange_connect(broker->socket_path);
    if (ctx.fd < 0)
        return false;
    ok = bench_warm_up(status_round_trip, &ctx, 50) &&
         samples_measure(samples, status_round_trip, &ctx, STATUS_SAMPLES);
    close(ctx.fd);
    return ok;
}

// goal_p99_us 0: the p99 goal is 2x idle.
static void status_rows(const char *what, const struct samples *load,
                        const struct samples *idle, double goal_p99_us,
                        double goal_max_us) {
    struct summary l = samples_summarize(load), i = samples_summarize(idle);
    char metric[128], value[64], baseline[64], verdict[96];

    snprintf(metric, sizeof(metric), "status p50, %s", what);
    snprintf(value, sizeof(value), "%.1f us", l.median_us);
    snprintf(baseline, sizeof(baseline), "%.1f us idle", i.median_us);
    table_row(metric, value, baseline, "");
    snprintf(metric, sizeof(metric), "status p99, %s", what);
    snprintf(value, sizeof(value), "%.1f us", l.p99_us);
    snprintf(baseline, sizeof(baseline), "%.1f us idle", i.p99_us);
    if (goal_p99_us > 0)
        snprintf(verdict, sizeof(verdict), "goal < %.0f ms: %s",
                 goal_p99_us / 1e3, l.p99_us < goal_p99_us ? "met" : "missed");
    else
        snprintf(verdict, sizeof(verdict), "goal <= 2x idle: %s",
                 l.p99_us <= 2 * i.p99_us ? "met" : "missed");
    table_row(metric, value, baseline, verdict);
    snprintf(metric, sizeof(metric), "status max, %s", what);
    snprintf(value, sizeof(value), "%.1f us", max_us(load));
    snprintf(baseline, sizeof(baseline), "%.1f us idle", max_us(idle));
    snprintf(verdict, sizeof(verdict), "goal < %.0f ms: %s", goal_max_us / 1e3,
             max_us(load) < goal_max_us ? "met" : "missed");
    table_row(metric, value, baseline, goal_max_us > 0 ? verdict : "");
}

// A client that, until killed, connects, acquires one of its networks,
// opens an interface on it (the TAP closes with the descriptor) and
// closes: creations, removals and TAP teardowns all the time.
static pid_t start_churner(const struct broker_process *broker, int index) {
    pid_t pid = fork();

    if (pid != 0)
        return pid;
    for (unsigned i = 0;; i++) {
        char text[128], reply[8192];
        int fd = exchange_connect(broker->socket_path);
        unsigned net = 1 + index * CHURN_NETWORKS + i % CHURN_NETWORKS;
        if (fd < 0)
            _exit(1);
        snprintf(text, sizeof(text),
                 "{\"command\":\"open_interface\",\"network_name\":\"net%u\"}",
                 net);
        request(fd, text, reply, sizeof(reply));
        close(fd);
    }
}

static bool status_under_churn(const struct broker_process *broker,
                               const struct samples *idle) {
    struct samples churn;
    pid_t churners[CHURNERS];
    unsigned long before = 0;
    bool ok;

    if (!samples_init(&churn, STATUS_SAMPLES))
        return false;
    for (int c = 0; c < CHURNERS; c++)
        churners[c] = start_churner(broker, c);
    // Churn first reaches its pace.
    sleep_us(500000);
    (void)before;
    ok = measure_status(broker, &churn);
    for (int c = 0; c < CHURNERS; c++)
        netns_kill(churners[c]);
    if (ok)
        status_rows("while 2 clients create, remove, open and close", &churn,
                    idle, 0, 5000);
    samples_free(&churn);
    return ok && broker_process_wait_peers(broker, 0);
}

static bool status_with_crowd(const struct broker_process *broker,
                              const struct samples *idle) {
    static int fds[IDLE_CONNECTIONS + NON_READERS];
    struct samples crowd;
    size_t n = 0;
    bool ok = false;

    if (!samples_init(&crowd, STATUS_SAMPLES))
        return false;
    for (; n < IDLE_CONNECTIONS + NON_READERS; n++) {
        fds[n] = exchange_connect(broker->socket_path);
        if (fds[n] < 0)
            goto out;
    }
    // The non-readers pipeline status requests until their socket is
    // full, and never read a reply.
    for (size_t i = IDLE_CONNECTIONS; i < n; i++) {
        for (int sent = 0; sent < 10000; sent++) {
            if (send(fds[i], status_request, strlen(status_request),
                     MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
                break;
        }
    }
    ok = measure_status(broker, &crowd);
    if (ok)
        status_rows("2,000 idle + 8 non-reading connections", &crowd, idle,
                    5000, 0);
out:
    while (n > 0)
        close(fds[--n]);
    samples_free(&crowd);
    return ok && broker_process_wait_peers(broker, 0);
}

static long creations(const struct broker_process *broker) {
    static char reply[64 * 1024];
    int fd = exchange_connect(broker->socket_path);
    char *p;
    long n = -1;

    if (fd < 0)
        return -1;
    if (request(fd, status_request, reply, sizeof(reply)) > 0 &&
        (p = strstr(reply, "\"creations\":")) != NULL)
        n = strtol(p + strlen("\"creations\":"), NULL, 10);
    close(fd);
    return n;
}

static bool acquire_one(int fd, unsigned net) {
    char text[128], reply[8192];
    snprintf(text, sizeof(text),
             "{\"command\":\"acquire\",\"network_name\":\"net%u\"}", net);
    if (request(fd, text, reply, sizeof(reply)) <= 0) {
        fprintf(stderr, "bench: loop: acquire of net%u: no reply\n", net);
        return false;
    }
    if (strncmp(reply, "{\"network\"", 10) != 0) {
        // The pool being full is expected once; anything else is news.
        fprintf(stderr, "bench: loop: acquire of net%u: %.300s\n", net, reply);
        return false;
    }
    return true;
}

// Rounds of the 64 acquirers besides the first: creation times vary from
// one to the next by more than the 5 ms the goal allows, so one of each
// says little; the medians of these say more.
#define ACQUIRER_ROUNDS 5

static bool status_lists(int fd, unsigned net);

// The networks of the first round (as measured before): one client alone,
// then the 64.
#define ACQUIRER_NET_ALONE (CHURNERS * CHURN_NETWORKS + 1)
#define ACQUIRER_NET_SHARED (CHURNERS * CHURN_NETWORKS + 2)
// Those of the other rounds, from the top of the configured ones, which the
// pool-filling part never reaches: two per round.
#define ACQUIRER_NET_ROUND(r) (LOOP_CONFIGURED - 2 * (unsigned)(r))

struct acquirers_round {
    uint64_t alone_ns; // one client creating a network alone
    uint64_t first_ns; // the 64: from the first send to the first reply
    uint64_t last_ns;  // ... and to the last reply
    long creations;    // creations the 64 caused (goal 1)
    int holder;        // holds both networks until the rounds end, or -1
};

// One round: a client creates network `alone` by itself (the creation
// time), then 64 connections of this one process send an acquire of
// network `shared` at once and the replies are awaited in order (each recv
// returns as soon as that reply is there, so the last one's time is exact).
// One process, not 64: forking 64 clients on a small machine would time
// their scheduling, not the broker. The client alone then holds both
// networks (round->holder), so that no removal runs while later rounds are
// timed.
static bool acquirers_round(const struct broker_process *broker, unsigned alone,
                            unsigned shared, long quiet_us,
                            struct acquirers_round *round) {
    int fds[ACQUIRERS];
    char text[128], reply[8192];
    uint64_t start;
    long before, after;
    bool ok;
    size_t n = 0;

    round->holder = exchange_connect(broker->socket_path);
    ok = round->holder >= 0;
    start = bench_now_ns();
    ok = ok && acquire_one(round->holder, alone);
    round->alone_ns = bench_now_ns() - start;
    for (; ok && n < ACQUIRERS; n++) {
        fds[n] = exchange_connect(broker->socket_path);
        ok = fds[n] >= 0;
    }
    before = creations(broker);
    sleep_us(quiet_us);
    snprintf(text, sizeof(text),
             "{\"command\":\"acquire\",\"network_name\":\"net%u\"}", shared);
    start = bench_now_ns();
    for (size_t i = 0; ok && i < n; i++)
        ok = send(fds[i], text, strlen(text), MSG_NOSIGNAL) > 0;
    for (size_t i = 0; ok && i < n; i++) {
        ok = recv(fds[i], reply, sizeof(reply), 0) > 0 &&
             strncmp(reply, "{\"network\"", 10) == 0;
        if (i == 0)
            round->first_ns = bench_now_ns() - start;
    }
    round->last_ns = bench_now_ns() - start;
    after = creations(broker);
    round->creations = after - before;
    ok = ok && acquire_one(round->holder, shared);
    while (n > 0)
        close(fds[--n]);
    return ok && before >= 0 && after >= 0;
}

// Whether network netN is gone: not listed, and its bridge not in the
// kernel.
static bool network_gone(int fd, unsigned net) {
    char bridge[IFNAMSIZ];

    snprintf(bridge, sizeof(bridge), "vmb-net%u", net);
    return !status_lists(fd, net) && if_nametoindex(bridge) == 0;
}

// Until every network the rounds made is gone, so that what follows
// (teardown, the pool filled) starts from the broker as it was.
static bool acquirers_removed(const struct broker_process *broker) {
    int fd = exchange_connect(broker->socket_path);
    uint64_t start = bench_now_ns();
    bool gone = false;

    while (fd >= 0 && !gone && bench_now_ns() - start < 20000000000ull) {
        gone = network_gone(fd, ACQUIRER_NET_ALONE) &&
               network_gone(fd, ACQUIRER_NET_SHARED);
        for (int r = 0; gone && r < ACQUIRER_ROUNDS; r++)
            gone = network_gone(fd, ACQUIRER_NET_ROUND(r)) &&
                   network_gone(fd, ACQUIRER_NET_ROUND(r) - 1);
        if (!gone)
            sleep_us(20000);
    }
    if (fd >= 0)
        close(fd);
    return gone;
}

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double median_ms(uint64_t *ns, size_t n) {
    qsort(ns, n, sizeof(*ns), compare_u64);
    return (n % 2 ? ns[n / 2] : (ns[n / 2 - 1] + ns[n / 2]) / 2) / 1e6;
}

static bool simultaneous_acquirers(const struct broker_process *broker) {
    struct acquirers_round first = {.holder = -1}, rounds[ACQUIRER_ROUNDS];
    uint64_t alone[ACQUIRER_ROUNDS], last[ACQUIRER_ROUNDS],
        spread[ACQUIRER_ROUNDS];
    char value[64], baseline[64], verdict[96];
    double alone_ms, last_ms;
    bool one_each = true, ok = false;
    int r = 0;

    // Removals of the churn's networks (0.2 s after their last use) run on
    // the same worker as creations: let them end so that every figure
    // below sees the same quiet broker.
    sleep_us(1000000);
    // Each round's two creations from a quiet machine: nothing is removed
    // meanwhile (every network stays held), and the creation alone's
    // dnsmasq has settled before the 64 send.
    for (; r < ACQUIRER_ROUNDS; r++) {
        sleep_us(300000);
        if (!acquirers_round(broker, ACQUIRER_NET_ROUND(r),
                             ACQUIRER_NET_ROUND(r) - 1, 300000, &rounds[r]))
            goto out;
        alone[r] = rounds[r].alone_ns;
        last[r] = rounds[r].last_ns;
        spread[r] = rounds[r].last_ns - rounds[r].first_ns;
        one_each = one_each && rounds[r].creations == 1;
    }
    // The first method, kept for comparison with earlier runs: the 64 right
    // after the creation alone, once. The second creation then shares the
    // machine with the first's dnsmasq starting up.
    sleep_us(300000);
    if (!acquirers_round(broker, ACQUIRER_NET_ALONE, ACQUIRER_NET_SHARED, 0,
                         &first))
        goto out;
    table_row("64 clients acquire one new network: creations",
              first.creations == 1 && one_each ? "1" : "more than 1",
              "each of 6 rounds", "goal 1");
    alone_ms = median_ms(alone, ACQUIRER_ROUNDS);
    last_ms = median_ms(last, ACQUIRER_ROUNDS);
    snprintf(value, sizeof(value), "%.2f ms", last_ms);
    snprintf(baseline, sizeof(baseline), "%.2f ms one client alone", alone_ms);
    snprintf(verdict, sizeof(verdict), "goal <= creation + 5 ms: %s",
             last_ms <= alone_ms + 5 ? "met" : "missed");
    table_row("64 clients acquire one new network: last reply (median of 5)",
              value, baseline, verdict);
    snprintf(value, sizeof(value), "%.3f ms",
             median_ms(spread, ACQUIRER_ROUNDS));
    table_row("  first to last of the 64 replies (median of 5)", value, "",
              "the broker's fan-out");
    snprintf(value, sizeof(value), "%.2f ms", first.last_ns / 1e6);
    snprintf(baseline, sizeof(baseline), "%.2f ms one client alone",
             first.alone_ns / 1e6);
    snprintf(verdict, sizeof(verdict), "goal <= creation + 5 ms: %s",
             first.last_ns <= first.alone_ns + 5000000 ? "met" : "missed");
    table_row("  the same once, right after the creation alone", value,
              baseline, verdict);
    ok = true;
out:
    if (first.holder >= 0)
        close(first.holder);
    while (r > 0) {
        if (rounds[--r].holder >= 0)
            close(rounds[r].holder);
    }
    return ok && acquirers_removed(broker);
}

// Whether status lists the network netN as made (a fresh status each call).
static bool status_lists(int fd, unsigned net) {
    static char reply[512 * 1024];
    char needle[64];

    // Configured networks are listed too, without a bridge.
    snprintf(needle, sizeof(needle), "\"bridge\":\"vmb-net%u\"", net);
    return request(fd, status_request, reply, sizeof(reply)) > 0 &&
           strstr(reply, needle) != NULL;
}

// A netlink socket that hears links come and go, or -1.
static int link_events_open(void) {
    struct sockaddr_nl addr = {.nl_family = AF_NETLINK,
                               .nl_groups = RTMGRP_LINK};
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    NETLINK_ROUTE);

    if (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

// Reads what the kernel said: true once RTM_DELLINK of ifindex came, or
// when events were lost (ENOBUFS) and the link is gone by now (then the
// time taken is later than the event: never flattering).
static bool link_deleted(int events, int ifindex, const char *name) {
    char buffer[16384] __attribute__((aligned(NLMSG_ALIGNTO)));
    ssize_t n;

    while ((n = recv(events, buffer, sizeof(buffer), 0)) != 0) {
        if (n < 0)
            return errno == ENOBUFS && if_nametoindex(name) == 0;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buffer;
             NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
            const struct ifinfomsg *ifi = NLMSG_DATA(h);
            if (h->nlmsg_type == RTM_DELLINK &&
                h->nlmsg_len >= NLMSG_LENGTH(sizeof(*ifi)) &&
                ifi->ifi_family == AF_UNSPEC && ifi->ifi_index == ifindex)
                return true;
        }
    }
    return false;
}

// The baseline: a bare bridge (up, with an address), 0.2 s old, deleted
// over netlink by the bench itself, timed from the request to its RTM_DELLINK:
// what the kernel alone takes. Returns the time in ms, or -1.
static double bare_bridge_deletion(struct nl_sock *sock, int events,
                                   unsigned index) {
    char name[IFNAMSIZ];
    int ifindex;
    uint64_t start;

    snprintf(name, sizeof(name), "bbare%u", index);
    if (!bare_bridge_create(sock, name, index) ||
        (ifindex = (int)if_nametoindex(name)) == 0)
        return -1;
    // As old as the network is when its delay ends: a bridge deleted at
    // once after its making takes longer (work it started is cancelled).
    sleep_us((long)(IDLE_SECONDS * 1e6));
    // Events of its making are not what is timed.
    link_deleted(events, ifindex, name);
    start = bench_now_ns();
    if (!bare_bridge_delete(sock, name))
        return -1;
    for (;;) {
        struct pollfd p = {.fd = events, .events = POLLIN};

        if (link_deleted(events, ifindex, name))
            return (bench_now_ns() - start) / 1e6;
        if (poll(&p, 1, 20000) <= 0)
            return -1;
    }
}

static double max_of(double a, double b) { return a > b ? a : b; }

// Acquire, close, then poll the removal's three marks: when status stops
// listing the network (the broker's part: a new acquire then creates it
// afresh), when the bridge's name leaves the kernel (its deletion has
// started: no frame reaches it any more), and when the kernel reports it
// deleted (RTM_DELLINK, sent once its unregistration is done). All are
// timed from the client's close, before the broker sees it and starts the
// delay: a little more than the time past the broker's deadline, never
// less. Each removal is preceded by the baseline.
static bool teardown_delay(const struct broker_process *broker) {
    double worst_listed = 0, worst_unnamed = 0, worst_bridge = 0;
    double worst_bare = 0;
    char value[64], baseline[64], verdict[96];
    int watcher = exchange_connect(broker->socket_path);
    int events = link_events_open();
    struct nl_sock *sock = bare_bridge_socket();
    bool ok = false;

    if (watcher < 0 || events < 0 || sock == NULL) {
        fprintf(stderr, "bench: loop: cannot watch links: %s\n",
                strerror(errno));
        goto out;
    }
    // The networks of the 64 acquirers are removed 0.2 s after their
    // close, on the worker that removes these: let them go first, so that
    // each figure is one removal's.
    sleep_us(1000000);
    for (int t = 0; t < TEARDOWNS; t++) {
        unsigned net = CHURNERS * CHURN_NETWORKS + 3 + t;
        char bridge[IFNAMSIZ];
        uint64_t released, unlisted = 0, unnamed = 0, gone = 0;
        double bare = bare_bridge_deletion(sock, events, 240 + (unsigned)t);
        int ifindex, fd;

        if (bare < 0) {
            fprintf(stderr, "bench: loop: cannot delete a bare bridge\n");
            goto out;
        }
        worst_bare = max_of(worst_bare, bare);
        snprintf(bridge, sizeof(bridge), "vmb-net%u", net);
        fd = exchange_connect(broker->socket_path);
        if (fd < 0 || !acquire_one(fd, net) ||
            (ifindex = (int)if_nametoindex(bridge)) == 0) {
            if (fd >= 0)
                close(fd);
            goto out;
        }
        close(fd);
        released = bench_now_ns();
        while (unlisted == 0 || gone == 0) {
            struct pollfd p = {.fd = events, .events = POLLIN};
            // Woken by the event itself; the timeout paces the rest.
            struct timespec pace = {.tv_nsec = 100000};
            uint64_t now = bench_now_ns();

            if (now - released > 20000000000ull)
                goto out;
            if (unnamed == 0 && if_nametoindex(bridge) == 0)
                unnamed = bench_now_ns();
            if (gone == 0 && link_deleted(events, ifindex, bridge))
                gone = bench_now_ns();
            // Until the delay is almost over there is nothing to see: do
            // not load the broker with status requests meanwhile.
            if (unlisted == 0 && now - released > IDLE_SECONDS * 1e9 - 2e6 &&
                !status_lists(watcher, net))
                unlisted = bench_now_ns();
            if (gone == 0 || unlisted == 0)
                ppoll(&p, gone == 0 ? 1 : 0, &pace, NULL);
        }
        // Gone before it was seen unnamed: the event came first.
        if (unnamed == 0)
            unnamed = gone;
        fprintf(stderr,
                "bench: loop: teardown %d past the delay: status %+.2f ms, "
                "name %+.2f ms, RTM_DELLINK %+.2f ms (bare bridge %.2f ms)\n",
                t + 1, (unlisted - released) / 1e6 - IDLE_SECONDS * 1e3,
                (unnamed - released) / 1e6 - IDLE_SECONDS * 1e3,
                (gone - released) / 1e6 - IDLE_SECONDS * 1e3, bare);
        worst_listed = max_of(worst_listed,
                              (unlisted - released) / 1e6 - IDLE_SECONDS * 1e3);
        worst_unnamed = max_of(worst_unnamed,
                               (unnamed - released) / 1e6 - IDLE_SECONDS * 1e3);
        worst_bridge =
            max_of(worst_bridge, (gone - released) / 1e6 - IDLE_SECONDS * 1e3);
    }
    snprintf(value, sizeof(value), "%.2f ms", worst_listed);
    snprintf(verdict, sizeof(verdict), "goal < 5 ms: %s",
             worst_listed < 5 ? "met" : "missed");
    table_row("network gone from status after the idle delay (worst of 5)",
              value, "0.2 s idle delay", verdict);
    snprintf(value, sizeof(value), "%.2f ms", worst_unnamed);
    snprintf(verdict, sizeof(verdict), "goal < 5 ms: %s",
             worst_unnamed < 5 ? "met" : "missed");
    table_row("bridge's name gone from the kernel after the delay (worst)",
              value, "0.2 s idle delay", verdict);
    snprintf(value, sizeof(value), "%.2f ms", worst_bridge);
    snprintf(baseline, sizeof(baseline), "%.2f ms bare bridge", worst_bare);
    snprintf(verdict, sizeof(verdict), "goal < 5 ms: %s",
             worst_bridge < 5 ? "met" : "missed");
    table_row("RTM_DELLINK of the bridge after the idle delay (worst of 5)",
              value, baseline, verdict);
    ok = true;
out:
    if (watcher >= 0)
        close(watcher);
    if (events >= 0)
        close(events);
    bare_bridge_socket_free(sock);
    return ok;
}

// Resident memory and CPU time of every dnsmasq (the bench's PID namespace
// holds only the broker's), and how many there are.
struct dnsmasq_totals {
    long count;
    long rss_kib;
    uint64_t cpu_ns;
};

static void dnsmasq_totals(struct dnsmasq_totals *totals) {
    DIR *proc = opendir("/proc");
    struct dirent *e;

    memset(totals, 0, sizeof(*totals));
    if (proc == NULL)
        return;
    while ((e = readdir(proc)) != NULL) {
        char path[300], comm[32] = "";
        struct proc_memory memory;
        uint64_t cpu;
        FILE *f;
        pid_t pid = (pid_t)atoi(e->d_name);

        if (pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        if (fgets(comm, sizeof(comm), f) == NULL)
            comm[0] = '\0';
        fclose(f);
        if (strcmp(comm, "dnsmasq\n") != 0)
            continue;
        if (proc_memory_read(pid, &memory)) {
            totals->rss_kib += memory.rss_kib;
            totals->count++;
        }
        if (proc_cpu_ns(pid, &cpu))
            totals->cpu_ns += cpu;
    }
    closedir(proc);
}

// CPU time of every thread of pid (/proc/PID/schedstat is the main
// thread's alone; the broker creates networks on a worker thread).
static uint64_t process_cpu_ns(pid_t pid) {
    char path[64];
    struct dirent *e;
    uint64_t total = 0;
    DIR *tasks;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    tasks = opendir(path);
    if (tasks == NULL)
        return 0;
    while ((e = readdir(tasks)) != NULL) {
        uint64_t ns;
        pid_t tid = (pid_t)atoi(e->d_name);
        if (tid > 0 && proc_cpu_ns(tid, &ns))
            total += ns;
    }
    closedir(tasks);
    return total;
}

// CPU time the broker and every dnsmasq (those running before it, and the
// new one) spent during one creation.
struct creation_cost {
    uint64_t wall_ns;
    uint64_t broker_cpu_ns;
    uint64_t dnsmasq_cpu_ns;
};

static bool timed_acquire(const struct broker_process *broker, int fd,
                          unsigned net, struct creation_cost *cost) {
    struct dnsmasq_totals before, after;
    uint64_t broker_before, broker_after, start;
    bool ok;

    dnsmasq_totals(&before);
    broker_before = process_cpu_ns(broker->pid);
    start = bench_now_ns();
    ok = acquire_one(fd, net);
    cost->wall_ns = bench_now_ns() - start;
    broker_after = process_cpu_ns(broker->pid);
    // The dnsmasq instances' rescans of this creation's address changes
    // may still run: give them a moment to end before reading.
    sleep_us(20000);
    dnsmasq_totals(&after);
    cost->broker_cpu_ns =
        broker_after > broker_before ? broker_after - broker_before : 0;
    cost->dnsmasq_cpu_ns =
        after.cpu_ns > before.cpu_ns ? after.cpu_ns - before.cpu_ns : 0;
    return ok;
}

static bool many_networks(const struct broker_process *broker) {
    static int fds[LOOP_CONFIGURED / 8 + 1];
    struct proc_memory before, after;
    struct creation_cost first = {0}, last = {0};
    struct dnsmasq_totals dnsmasqs;
    size_t n_fds = 0;
    unsigned made = 0;
    char value[64], baseline[64], verdict[96];

    if (!proc_memory_read(broker->pid, &before))
        return false;
    for (unsigned net = FIRST_FREE_NETWORK; net <= LOOP_CONFIGURED; net++) {
        struct creation_cost cost;
        if (made % 8 == 0) {
            // A peer holds at most 8 networks: the next 8 on a new one.
            fds[n_fds] = exchange_connect(broker->socket_path);
            if (fds[n_fds] < 0)
                break;
            n_fds++;
        }
        if (!timed_acquire(broker, fds[n_fds - 1], net, &cost))
            break; // the pool is full
        if (made == 0)
            first = cost;
        last = cost;
        made++;
    }
    proc_memory_read(broker->pid, &after);
    dnsmasq_totals(&dnsmasqs);
    // Networks made earlier in this run are alive too (within their idle
    // delay, or held): count what status lists.
    snprintf(value, sizeof(value), "%u (+%d idle/held before)", made,
             FIRST_FREE_NETWORK - 1);
    snprintf(verdict, sizeof(verdict), "goal 190: %s",
             made >= 190 ? "met" : "see count");
    table_row("networks created until the pool was full", value,
              "192 /24s in the pool", verdict);
    snprintf(value, sizeof(value), "%.1f ms", last.wall_ns / 1e6);
    snprintf(baseline, sizeof(baseline), "%.1f ms the first",
             first.wall_ns / 1e6);
    snprintf(verdict, sizeof(verdict), "goal <= 2x: %s",
             last.wall_ns <= 2 * first.wall_ns ? "met" : "missed");
    table_row("creation of the last network", value, baseline, verdict);
    // Where the difference goes: the broker's own work, and every running
    // dnsmasq rescanning all interfaces at the new bridge's addresses.
    snprintf(value, sizeof(value), "%.1f ms", last.broker_cpu_ns / 1e6);
    snprintf(baseline, sizeof(baseline), "%.1f ms the first",
             first.broker_cpu_ns / 1e6);
    table_row("  broker CPU during the last creation", value, baseline, "");
    snprintf(value, sizeof(value), "%.1f ms", last.dnsmasq_cpu_ns / 1e6);
    snprintf(baseline, sizeof(baseline), "%.1f ms the first",
             first.dnsmasq_cpu_ns / 1e6);
    table_row("  CPU of all dnsmasq during the last creation", value, baseline,
              "");
    snprintf(value, sizeof(value), "%ld KiB", after.rss_kib);
    snprintf(baseline, sizeof(baseline), "%ld KiB before", before.rss_kib);
    table_row("broker RSS with the pool full", value, baseline, "");
    snprintf(value, sizeof(value), "%ld KiB",
             dnsmasqs.count > 0 ? dnsmasqs.rss_kib / dnsmasqs.count : 0);
    snprintf(baseline, sizeof(baseline), "%ld dnsmasq running", dnsmasqs.count);
    table_row("dnsmasq RSS per network", value, baseline, "");
    while (n_fds > 0)
        close(fds[--n_fds]);
    return made > 0;
}

bool bench_loop(struct bench *bench) {
    struct broker_process broker = {.idle = "0.2"};
    struct samples idle;
    bool ok = false;

    (void)bench;
    if (!samples_init(&idle, STATUS_SAMPLES))
        return false;
    if (!broker_process_start(&broker, bench->broker_binary, LOOP_CONFIGURED)) {
        broker_process_show_log(&broker);
        goto out;
    }
    table_section("The event loop under load (a broker with a 0.2 s idle "
                  "delay)");
    fprintf(stderr, "bench: loop: status idle\n");
    if (!measure_status(&broker, &idle))
        goto out;
    fprintf(stderr, "bench: loop: status under churn\n");
    if (!status_under_churn(&broker, &idle))
        goto out;
    fprintf(stderr, "bench: loop: status beside 2,008 connections\n");
    if (!status_with_crowd(&broker, &idle))
        goto out;
    fprintf(stderr, "bench: loop: 64 simultaneous acquirers\n");
    if (!simultaneous_acquirers(&broker))
        goto out;
    fprintf(stderr, "bench: loop: teardown after the idle delay\n");
    if (!teardown_delay(&broker))
        goto out;
    fprintf(stderr, "bench: loop: networks until the pool is full\n");
    if (!many_networks(&broker))
        goto out;
    ok = true;
out:
    if (!ok)
        broker_process_show_log(&broker);
    broker_process_stop(&broker);
    samples_free(&idle);
    return ok;
}
