// SPDX-License-Identifier: Apache-2.0
// Acquire of a held network, raw and through the library, against bare echo.
#include <stdio.h>
#include <unistd.h>

#include "bench.h"
#include "vmnet-broker.h"

#define ROUND_TRIPS 20000
#define WARM_UP 2000
// The three kinds take turns in this many slices, so that a change in the
// machine's load or clock during the run touches all of them alike.
#define SLICES 10
#define GOAL_RATIO 1.5

// One way of making round trips, and the server that answers them.
struct contender {
    bench_op op;
    void *ctx;
    pid_t server;
    struct samples samples;
    // The server's CPU time over the measured round trips.
    uint64_t server_cpu_ns;
};

static bool library_acquire(void *ctx) {
    vmnet_broker_network_t *network = NULL;

    if (vmnet_broker_connection_acquire(ctx, "shared", &network) !=
        VMNET_BROKER_SUCCESS)
        return false;
    vmnet_broker_network_free(network);
    return true;
}

static bool measure_slice(struct contender *c, size_t n) {
    uint64_t before;
    uint64_t after;

    if (!proc_cpu_ns(c->server, &before) ||
        !samples_measure(&c->samples, c->op, c->ctx, n) ||
        !proc_cpu_ns(c->server, &after))
        return false;
    c->server_cpu_ns += after - before;
    return true;
}

static double server_cpu_us(const struct contender *c) {
    return c->samples.n > 0 ? c->server_cpu_ns / 1e3 / c->samples.n : 0;
}

// The rows of one way of acquiring: median, p99, rate and the broker's CPU
// time per request.
static void round_trip_rows(const char *way, const struct contender *c,
                            const struct contender *echo) {
    struct summary s = samples_summarize(&c->samples);
    struct summary e = samples_summarize(&echo->samples);
    char metric[96];
    char value[64];
    char baseline[64];
    char ratio[32];
    char verdict[96];

    snprintf(metric, sizeof(metric), "acquire, %s: median", way);
    snprintf(value, sizeof(value), "%.1f us", s.median_us);
    snprintf(baseline, sizeof(baseline), "%.1f us echo", e.median_us);
    snprintf(verdict, sizeof(verdict), "%s (goal <= %.1fx: %s)",
             format_ratio(ratio, sizeof(ratio), s.median_us, e.median_us),
             GOAL_RATIO,
             s.median_us <= GOAL_RATIO * e.median_us ? "met" : "MISSED");
    table_row(metric, value, baseline, verdict);

    snprintf(metric, sizeof(metric), "acquire, %s: p99", way);
    snprintf(value, sizeof(value), "%.1f us", s.p99_us);
    snprintf(baseline, sizeof(baseline), "%.1f us echo", e.p99_us);
    table_row(metric, value, baseline,
              format_ratio(ratio, sizeof(ratio), s.p99_us, e.p99_us));

    snprintf(metric, sizeof(metric), "acquire, %s: round trips/s", way);
    snprintf(value, sizeof(value), "%.0f", s.per_second);
    snprintf(baseline, sizeof(baseline), "%.0f echo", e.per_second);
    table_row(metric, value, baseline,
              format_ratio(ratio, sizeof(ratio), s.per_second, e.per_second));

    snprintf(metric, sizeof(metric), "acquire, %s: server CPU/request", way);
    snprintf(value, sizeof(value), "%.2f us", server_cpu_us(c));
    snprintf(baseline, sizeof(baseline), "%.2f us echo", server_cpu_us(echo));
    table_row(metric, value, baseline,
              format_ratio(ratio, sizeof(ratio), server_cpu_us(c),
                           server_cpu_us(echo)));
}

bool bench_round_trip(struct bench *bench, const char *placement) {
    struct exchange echo = {.socket_path = bench->echo.socket_path,
                            .fd = -1,
                            .request = bench->request,
                            .request_len = bench->request_len,
                            .reply_len = bench->reply_len};
    struct exchange raw = echo;
    vmnet_broker_connection_t *connection = NULL;
    struct contender contenders[] = {
        {.op = exchange_round_trip, .ctx = &echo, .server = bench->echo.pid},
        {.op = exchange_round_trip, .ctx = &raw, .server = bench->broker.pid},
        {.op = library_acquire, .server = bench->broker.pid},
    };
    const size_t n_contenders = sizeof(contenders) / sizeof(contenders[0]);
    char title[128];
    bool status = false;

    raw.socket_path = bench->broker.socket_path;
    echo.fd = exchange_connect(echo.socket_path);
    raw.fd = exchange_connect(raw.socket_path);
    if (echo.fd < 0 || raw.fd < 0)
        goto out;
    if (vmnet_broker_connect(bench->broker.socket_path, &connection) !=
        VMNET_BROKER_SUCCESS)
        goto out;
    contenders[2].ctx = connection;
    for (size_t i = 0; i < n_contenders; i++) {
        // The first acquire on each connection takes the reference; the
        // warm-up makes every later one an acquire of a network held.
        if (!samples_init(&contenders[i].samples, ROUND_TRIPS) ||
            !bench_warm_up(contenders[i].op, contenders[i].ctx, WARM_UP))
            goto out;
    }
    for (int slice = 0; slice < SLICES; slice++) {
        for (size_t i = 0; i < n_contenders; i++) {
            if (!measure_slice(&contenders[i], ROUND_TRIPS / SLICES))
                goto out;
        }
    }

    snprintf(title, sizeof(title),
             "Acquire of a held network, %d round trips of %zu B / %zu B, %s",
             ROUND_TRIPS, bench->request_len, bench->reply_len, placement);
    table_section(title);
    round_trip_rows("raw protocol", &contenders[1], &contenders[0]);
    round_trip_rows("library", &contenders[2], &contenders[0]);
    status = true;
out:
    for (size_t i = 0; i < n_contenders; i++)
        samples_free(&contenders[i].samples);
    vmnet_broker_connection_close(connection);
    if (raw.fd >= 0)
        close(raw.fd);
    if (echo.fd >= 0)
        close(echo.fd);
    return status;
}
