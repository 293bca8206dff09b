// SPDX-License-Identifier: Apache-2.0
// vmnet-broker-bench: runs every measurement against baselines, prints a table.
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"

// Networks the config directory holds for the creation measurements.
#define CONFIGURED_NETWORKS (CREATIONS + DHCP_CREATIONS)
// 1,000 peers plus the bench's other sockets.
#define FILES_NEEDED 4096

// The compact request the client library sends.
static const char acquire_request[] =
    "{\"command\":\"acquire\",\"network_name\":\"shared\"}";

static bool raise_file_limit(void) {
    struct rlimit limit;

    if (getrlimit(RLIMIT_NOFILE, &limit) < 0)
        return false;
    if (limit.rlim_cur >= FILES_NEEDED)
        return true;
    limit.rlim_cur = FILES_NEEDED;
    if (limit.rlim_max < FILES_NEEDED)
        limit.rlim_max = FILES_NEEDED;
    return setrlimit(RLIMIT_NOFILE, &limit) == 0;
}

// bench/run.sh makes the bench the first process of a PID namespace, to
// which the kernel delivers only the signals it handles: without this,
// Ctrl-C would be ignored. Its end ends everything else in the namespace
// (the broker, dnsmasq, the guests' programs).
static void on_stop_signal(int signo) { _exit(128 + signo); }

static void handle_stop_signals(void) {
    struct sigaction action = {.sa_handler = on_stop_signal};

    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGHUP, &action, NULL);
}

// Sends the acquire the raw measurements use once, and keeps the broker's
// reply: the echo baseline answers with the same bytes.
static bool learn_acquire_reply(struct bench *bench) {
    int fd = exchange_connect(bench->broker.socket_path);
    ssize_t n = -1;

    if (fd < 0)
        return false;
    bench->request_len = strlen(acquire_request);
    memcpy(bench->request, acquire_request, bench->request_len);
    if (send(fd, bench->request, bench->request_len, MSG_NOSIGNAL) ==
        (ssize_t)bench->request_len)
        n = recv(fd, bench->reply, sizeof(bench->reply), 0);
    close(fd);
    if (n <= 0 || (size_t)n >= sizeof(bench->reply) ||
        strncmp(bench->reply, "{\"network\"", 10) != 0)
        return false;
    bench->reply_len = (size_t)n;
    return true;
}

static void print_header(void) {
    struct utsname host;
    const char *build_type = BENCH_BUILD_TYPE;

    uname(&host);
    printf("vmnet-broker bench: %ld CPUs, Linux %s, build type %s\n",
           sysconf(_SC_NPROCESSORS_ONLN), host.release,
           build_type[0] != '\0' ? build_type : "(none: not optimized)");
    printf("Every figure is measured in this run; \"echo\" is a bare "
           "SOCK_SEQPACKET server\nanswering the same bytes. Goals are "
           "reported, never enforced.\n\n");
}

// Explains a failed step of the run; returns ok.
static bool explain(const struct bench *bench, const char *what, bool ok) {
    if (!ok) {
        fprintf(stderr, "bench: %s failed\n", what);
        broker_process_show_log(&bench->broker);
    }
    return ok;
}

// Runs measure once per placement of the client and the servers.
static bool in_every_placement(struct bench *bench, const char *what,
                               bool (*measure)(struct bench *, const char *)) {
    const pid_t servers[] = {bench->broker.pid, bench->echo.pid};
    char where[96];

    for (size_t p = 0; p < placement_count(); p++) {
        if (!placement_apply((enum placement)p, servers, 2, where,
                             sizeof(where)))
            return explain(bench, "setting CPU affinity", false);
        fprintf(stderr, "bench: %s, %s\n", what, where);
        if (!explain(bench, what, measure(bench, where)))
            return false;
    }
    // Whatever comes next runs where the scheduler puts it.
    return explain(
        bench, "lifting CPU affinity",
        placement_apply(PLACEMENT_SCHEDULED, servers, 2, where, sizeof(where)));
}

int main(int argc, char **argv) {
    struct bench bench = {.broker_binary =
                              argc > 1 ? argv[1] : VMNET_BROKER_BIN};
    bool clean_exit;
    int status = 1;

    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fprintf(stderr, "Usage: %s [BROKER-BINARY]\n", argv[0]);
        return 2;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "bench: must run as root (it makes bridges in a "
                        "private network namespace)\n");
        return 1;
    }
    // Whoever started us: bridges are made in a namespace of our own,
    // never among the host's interfaces.
    if (unshare(CLONE_NEWNET) < 0) {
        fprintf(stderr, "bench: cannot make a network namespace: %s\n",
                strerror(errno));
        return 1;
    }
    if (!raise_file_limit()) {
        fprintf(stderr, "bench: cannot allow %d open files: %s\n", FILES_NEEDED,
                strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    handle_stop_signals();

    fprintf(stderr, "bench: starting %s\n", bench.broker_binary);
    if (!broker_process_start(&bench.broker, bench.broker_binary,
                              CONFIGURED_NETWORKS)) {
        fprintf(stderr, "bench: the broker did not start\n");
        broker_process_show_log(&bench.broker);
        goto out;
    }
    // VMNET_BROKER_BENCH_ONLY=loop: only the event-loop figures (issue 10).
    // With the cycles against the echo baseline, which the goal
    // names too.
    if (getenv("VMNET_BROKER_BENCH_ONLY") != NULL &&
        strcmp(getenv("VMNET_BROKER_BENCH_ONLY"), "loop") == 0) {
        if (!learn_acquire_reply(&bench) ||
            !echo_server_start(&bench.echo, bench.reply, bench.reply_len)) {
            fprintf(stderr, "bench: cannot start the echo baseline\n");
            goto out;
        }
        if (!in_every_placement(&bench, "connect + acquire + close cycles",
                                bench_cycles))
            goto out;
        // One broker per namespace: the loop's own starts after this one.
        echo_server_stop(&bench.echo);
        broker_process_stop(&bench.broker);
        if (!explain(&bench, "event loop", bench_loop(&bench)))
            goto out;
        print_header();
        table_print();
        status = 0;
        goto out;
    }
    // VMNET_BROKER_BENCH_ONLY=throughput: only iperf3's rows (issue 11).
    if (getenv("VMNET_BROKER_BENCH_ONLY") != NULL &&
        strcmp(getenv("VMNET_BROKER_BENCH_ONLY"), "throughput") == 0) {
        fprintf(stderr, "bench: throughput, iperf3\n");
        if (!explain(&bench, "throughput", bench_throughput(&bench)))
            goto out;
        print_header();
        table_print();
        status = 0;
        goto out;
    }
    fprintf(stderr, "bench: memory, idle then with 1,000 peers\n");
    if (!explain(&bench, "memory", bench_memory(&bench)))
        goto out;
    if (!learn_acquire_reply(&bench) ||
        !echo_server_start(&bench.echo, bench.reply, bench.reply_len)) {
        fprintf(stderr, "bench: cannot start the echo baseline\n");
        goto out;
    }
    if (!in_every_placement(&bench, "round trips", bench_round_trip) ||
        !in_every_placement(&bench, "connect + acquire + close cycles",
                            bench_cycles))
        goto out;
    fprintf(stderr, "bench: cold creation\n");
    if (!explain(&bench, "cold creation", bench_creation(&bench)))
        goto out;
    fprintf(stderr, "bench: cold creation until DHCP answers\n");
    if (!explain(&bench, "creation until DHCP answers",
                 bench_network_creation(&bench)))
        goto out;
    fprintf(stderr, "bench: open_interface round trips\n");
    if (!explain(&bench, "open_interface", bench_open_interface(&bench)))
        goto out;
    fprintf(stderr, "bench: throughput, iperf3\n");
    if (!explain(&bench, "throughput", bench_throughput(&bench)))
        goto out;
    echo_server_stop(&bench.echo);
    clean_exit = broker_process_stop(&bench.broker);
    table_section("The broker at the end");
    table_row("exit on SIGTERM with no peers", clean_exit ? "0" : "failed", "",
              "");
    // A broker of its own, now that the first is gone (one per namespace).
    fprintf(stderr, "bench: the event loop under load\n");
    if (!explain(&bench, "event loop", bench_loop(&bench)))
        goto out;
    print_header();
    table_print();
    // Every figure, this one too, is reported rather than enforced.
    status = 0;
out:
    echo_server_stop(&bench.echo);
    broker_process_stop(&bench.broker);
    return status;
}
