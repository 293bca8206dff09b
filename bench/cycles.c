// SPDX-License-Identifier: Apache-2.0
// Connect + acquire + close cycles against connect + echo + close.
#include <stdio.h>

#include "bench.h"
#include "vmnet-broker.h"

#define CYCLES 2000
#define WARM_UP 200
// Taking turns, as the round trips do, so load changes touch all alike.
#define SLICES 10

static bool library_cycle(void *ctx) {
    const char *socket_path = ctx;
    vmnet_broker_connection_t *connection = NULL;
    vmnet_broker_network_t *network = NULL;
    bool status;

    if (vmnet_broker_connect(socket_path, &connection) != VMNET_BROKER_SUCCESS)
        return false;
    status = vmnet_broker_connection_acquire(connection, "shared", &network) ==
             VMNET_BROKER_SUCCESS;
    vmnet_broker_network_free(network);
    vmnet_broker_connection_close(connection);
    return status;
}

static void cycle_rows(const char *way, struct summary s, struct summary echo) {
    char metric[96];
    char value[64];
    char baseline[64];
    char ratio[32];

    snprintf(metric, sizeof(metric), "%s: cycles/s", way);
    snprintf(value, sizeof(value), "%.0f", s.per_second);
    snprintf(baseline, sizeof(baseline), "%.0f echo", echo.per_second);
    table_row(
        metric, value, baseline,
        format_ratio(ratio, sizeof(ratio), s.per_second, echo.per_second));

    snprintf(metric, sizeof(metric), "%s: median cycle", way);
    snprintf(value, sizeof(value), "%.1f us", s.median_us);
    snprintf(baseline, sizeof(baseline), "%.1f us echo", echo.median_us);
    table_row(metric, value, baseline,
              format_ratio(ratio, sizeof(ratio), s.median_us, echo.median_us));
}

bool bench_cycles(struct bench *bench, const char *placement) {
    struct exchange echo = {.socket_path = bench->echo.socket_path,
                            .fd = -1,
                            .request = bench->request,
                            .request_len = bench->request_len,
                            .reply_len = bench->reply_len};
    struct exchange raw = echo;
    char *broker_path = bench->broker.socket_path;
    struct samples echo_samples = {0};
    struct samples raw_samples = {0};
    struct samples library_samples = {0};
    struct summary echo_summary;
    char title[128];
    bool status = false;

    raw.socket_path = broker_path;
    if (!samples_init(&echo_samples, CYCLES) ||
        !samples_init(&raw_samples, CYCLES) ||
        !samples_init(&library_samples, CYCLES))
        goto out;
    if (!bench_warm_up(exchange_cycle, &echo, WARM_UP) ||
        !bench_warm_up(exchange_cycle, &raw, WARM_UP) ||
        !bench_warm_up(library_cycle, broker_path, WARM_UP))
        goto out;
    for (int slice = 0; slice < SLICES; slice++) {
        size_t n = CYCLES / SLICES;
        if (!samples_measure(&echo_samples, exchange_cycle, &echo, n) ||
            !samples_measure(&raw_samples, exchange_cycle, &raw, n) ||
            !samples_measure(&library_samples, library_cycle, broker_path, n))
            goto out;
    }
    // The broker may still be closing the last connections; the next
    // measurement must not pay for them.
    if (!broker_process_wait_peers(&bench->broker, 0))
        goto out;

    snprintf(title, sizeof(title),
             "Connect + acquire `shared` + close, %d cycles, %s", CYCLES,
             placement);
    table_section(title);
    echo_summary = samples_summarize(&echo_samples);
    cycle_rows("raw protocol", samples_summarize(&raw_samples), echo_summary);
    cycle_rows("library", samples_summarize(&library_samples), echo_summary);
    status = true;
out:
    samples_free(&library_samples);
    samples_free(&raw_samples);
    samples_free(&echo_samples);
    return status;
}
