// SPDX-License-Identifier: Apache-2.0
// Timing of repeated operations and their median, 99th percentile and rate.
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

bool samples_init(struct samples *samples, size_t capacity) {
    uint64_t *ns = calloc(capacity, sizeof(*ns));

    if (ns == NULL)
        return false;
    samples->ns = ns;
    samples->n = 0;
    samples->capacity = capacity;
    return true;
}

void samples_free(struct samples *samples) {
    if (samples == NULL)
        return;
    free(samples->ns);
    samples->ns = NULL;
    samples->n = 0;
    samples->capacity = 0;
}

uint64_t bench_now_ns(void) {
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool bench_warm_up(bench_op op, void *ctx, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!op(ctx))
            return false;
    }
    return true;
}

bool samples_measure(struct samples *samples, bench_op op, void *ctx,
                     size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint64_t start = bench_now_ns();
        if (!op(ctx))
            return false;
        uint64_t elapsed = bench_now_ns() - start;
        if (samples->n < samples->capacity)
            samples->ns[samples->n++] = elapsed;
    }
    return true;
}

static int compare_ns(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

struct summary samples_summarize(const struct samples *samples) {
    struct summary summary = {0};
    uint64_t *sorted;
    uint64_t total = 0;
    size_t n = samples->n;

    if (n == 0)
        return summary;
    // Sorted in a copy: the caller may go on adding samples.
    sorted = malloc(n * sizeof(*sorted));
    if (sorted == NULL)
        return summary;
    memcpy(sorted, samples->ns, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), compare_ns);
    for (size_t i = 0; i < n; i++)
        total += sorted[i];
    summary.n = n;
    summary.median_us = n % 2 == 1 ? sorted[n / 2] / 1e3
                                   : (sorted[n / 2 - 1] + sorted[n / 2]) / 2e3;
    // The nearest-rank percentile: the smallest sample with at least 99%
    // of the samples at or below it.
    summary.p99_us = sorted[(n * 99 + 99) / 100 - 1] / 1e3;
    summary.per_second = total > 0 ? n / (total / 1e9) : 0;
    free(sorted);
    return summary;
}
