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

static bool library_acquire(void *ctx) {
    vmnet_broker_network_t *network = NULL;

    if (vmnet_broker_connection_acquire(ctx, "shared", &network) !=
        VMNET_BROKER_SUCCESS)
        return false;
    vmnet_broker_network_free(network);
    return true;
}

// Three rows for one way of acquiring: median, p99 and rate.
static void round_trip_rows(const char *way, struct summary s,
                            struct summary echo) {
    char metric[96];
    char value[64];
    char baseline[64];
    char ratio[32];
    char verdict[96];
    double median_ratio = echo.median_us > 0 ? s.median_us / echo.median_us
                                             : 0;

    snprintf(metric, sizeof(metric), "acquire, %s: median", way);
    snprintf(value, sizeof(value), "%.1f us", s.median_us);
    snprintf(baseline, sizeof(baseline), "%.1f us echo", echo.median_us);
    snprintf(verdict, sizeof(verdict), "%s (goal <= %.1fx: %s)",
             format_ratio(ratio, sizeof(ratio), s.median_us, echo.median_us),
             GOAL_RATIO, median_ratio <= GOAL_RATIO ? "met" : "MISSED");
    table_row(metric, value, baseline, verdict);

    snprintf(metric, sizeof(metric), "acquire, %s: p99", way);
    snprintf(value, sizeof(value), "%.1f us", s.p99_us);
    snprintf(baseline, sizeof(baseline), "%.1f us echo", echo.p99_us);
    table_row(metric, value, baseline,
              format_ratio(ratio, sizeof(ratio), s.p99_us, echo.p99_us));

    snprintf(metric, sizeof(metric), "acquire, %s: round trips/s", way);
    snprintf(value, sizeof(value), "%.0f", s.per_second);
    snprintf(baseline, sizeof(baseline), "%.0f echo", echo.per_second);
    table_row(metric, value, baseline,
              format_ratio(ratio, sizeof(ratio), s.per_second,
                           echo.per_second));
}

bool bench_round_trip(struct bench *bench) {
    struct exchange echo = {.socket_path = bench->echo.socket_path,
                            .request = bench->request,
                            .request_len = bench->request_len,
                            .reply_len = bench->reply_len,
                            .fd = -1};
    struct exchange raw = echo;
    vmnet_broker_connection_t *connection = NULL;
    struct samples echo_samples = {0};
    struct samples raw_samples = {0};
    struct samples library_samples = {0};
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
    if (!samples_init(&echo_samples, ROUND_TRIPS) ||
        !samples_init(&raw_samples, ROUND_TRIPS) ||
        !samples_init(&library_samples, ROUND_TRIPS))
        goto out;
    // The first acquire on each connection takes the reference; the warm-up
    // makes every later one an acquire of a network already held.
    if (!bench_warm_up(exchange_round_trip, &echo, WARM_UP) ||
        !bench_warm_up(exchange_round_trip, &raw, WARM_UP) ||
        !bench_warm_up(library_acquire, connection, WARM_UP))
        goto out;
    for (int slice = 0; slice < SLICES; slice++) {
        size_t n = ROUND_TRIPS / SLICES;
        if (!samples_measure(&echo_samples, exchange_round_trip, &echo, n) ||
            !samples_measure(&raw_samples, exchange_round_trip, &raw, n) ||
            !samples_measure(&library_samples, library_acquire, connection,
                             n))
            goto out;
    }

    snprintf(title, sizeof(title),
             "Acquire of a held network: %d round trips each, request %zu B, "
             "reply %zu B",
             ROUND_TRIPS, bench->request_len, bench->reply_len);
    table_section(title);
    struct summary echo_summary = samples_summarize(&echo_samples);
    round_trip_rows("raw protocol", samples_summarize(&raw_samples),
                    echo_summary);
    round_trip_rows("library", samples_summarize(&library_samples),
                    echo_summary);
    status = true;
out:
    samples_free(&library_samples);
    samples_free(&raw_samples);
    samples_free(&echo_samples);
    vmnet_broker_connection_close(connection);
    if (raw.fd >= 0)
        close(raw.fd);
    if (echo.fd >= 0)
        close(echo.fd);
    return status;
}
