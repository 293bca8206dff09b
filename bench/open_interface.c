// SPDX-License-Identifier: Apache-2.0
// open_interface round trips vs acquire and vs a TAP device made in-process.
#include <net/if.h>
#include <stdio.h>
#include <unistd.h>

#include "bench.h"
#include "vmnet-broker.h"

#define ROUND_TRIPS 500
#define WARM_UP 20
// The kinds take turns in slices, so that a change in load touches all
// three alike.
#define SLICES 10

struct interface_bench {
    vmnet_broker_connection_t *connection;
    struct nl_sock *sock;
    int bridge_ifindex;
    unsigned bare_index;
};

// Each returns the duration of the timed part in *ns; closing the
// descriptor (which removes the device) is not timed.
typedef bool (*timed_op)(struct interface_bench *b, uint64_t *ns);

static bool open_interface(struct interface_bench *b, uint64_t *ns) {
    vmnet_broker_interface_t *iface = NULL;
    uint64_t start = bench_now_ns();
    vmnet_broker_return_t r =
        vmnet_broker_connection_open_interface(b->connection, "shared", &iface);

    *ns = bench_now_ns() - start;
    vmnet_broker_interface_free(iface);
    return r == VMNET_BROKER_SUCCESS;
}

// The acquire of a held network, as the round trip measurement times it.
static bool acquire(struct interface_bench *b, uint64_t *ns) {
    vmnet_broker_network_t *network = NULL;
    uint64_t start = bench_now_ns();
    vmnet_broker_return_t r =
        vmnet_broker_connection_acquire(b->connection, "shared", &network);

    vmnet_broker_network_free(network);
    *ns = bench_now_ns() - start;
    return r == VMNET_BROKER_SUCCESS;
}

static bool bare_tap(struct interface_bench *b, uint64_t *ns) {
    uint64_t start = bench_now_ns();
    int fd = bare_tap_open(b->sock, b->bare_index++, b->bridge_ifindex);

    *ns = bench_now_ns() - start;
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

static bool run(timed_op op, struct interface_bench *b, size_t n,
                struct samples *samples) {
    for (size_t i = 0; i < n; i++) {
        uint64_t ns;
        if (!op(b, &ns))
            return false;
        if (samples != NULL && samples->n < samples->capacity)
            samples->ns[samples->n++] = ns;
    }
    return true;
}

static void row(const char *metric, double value_us, double baseline_us,
                const char *baseline_name) {
    char value[32];
    char baseline[64];
    char ratio[32];

    snprintf(value, sizeof(value), "%.1f us", value_us);
    snprintf(baseline, sizeof(baseline), "%.1f us %s", baseline_us,
             baseline_name);
    table_row(metric, value, baseline,
              format_ratio(ratio, sizeof(ratio), value_us, baseline_us));
}

bool bench_open_interface(struct bench *bench) {
    struct interface_bench b = {0};
    const timed_op ops[] = {open_interface, acquire, bare_tap};
    struct samples samples[3] = {0};
    struct summary opened, acquired, bare;
    vmnet_broker_network_t *network = NULL;
    const char *bridge;
    char title[128];
    bool status = false;

    b.sock = bare_bridge_socket();
    if (b.sock == NULL ||
        vmnet_broker_connect(bench->broker.socket_path, &b.connection) !=
            VMNET_BROKER_SUCCESS ||
        vmnet_broker_connection_acquire(b.connection, "shared", &network) !=
            VMNET_BROKER_SUCCESS)
        goto out;
    bridge = vmnet_broker_network_bridge(network);
    if (bridge == NULL)
        goto out;
    // The bare devices join the same bridge as the broker's.
    b.bridge_ifindex = (int)if_nametoindex(bridge);
    if (b.bridge_ifindex == 0)
        goto out;
    for (size_t k = 0; k < 3; k++) {
        if (!samples_init(&samples[k], ROUND_TRIPS) ||
            !run(ops[k], &b, WARM_UP, NULL))
            goto out;
    }
    for (int slice = 0; slice < SLICES; slice++) {
        for (size_t k = 0; k < 3; k++) {
            if (!run(ops[k], &b, ROUND_TRIPS / SLICES, &samples[k]))
                goto out;
        }
    }

    opened = samples_summarize(&samples[0]);
    acquired = samples_summarize(&samples[1]);
    bare = samples_summarize(&samples[2]);
    snprintf(title, sizeof(title),
             "open_interface on `shared`: %zu round trips, library, each "
             "descriptor closed untimed",
             opened.n);
    table_section(title);
    row("open_interface: median", opened.median_us, bare.median_us,
        "bare TAP + enslave");
    row("open_interface: p99", opened.p99_us, bare.p99_us,
        "bare TAP + enslave");
    row("open_interface against acquire: median", opened.median_us,
        acquired.median_us, "acquire (held)");
    row("open_interface against acquire: p99", opened.p99_us, acquired.p99_us,
        "acquire (held)");
    status = true;
out:
    for (size_t k = 0; k < 3; k++)
        samples_free(&samples[k]);
    vmnet_broker_network_free(network);
    vmnet_broker_connection_close(b.connection);
    bare_bridge_socket_free(b.sock);
    return status;
}
