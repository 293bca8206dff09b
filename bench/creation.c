// SPDX-License-Identifier: Apache-2.0
// Cold creation: acquire of a network that does not exist yet, vs a bare
// bridge.
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "vmnet-broker.h"

// Network i of CREATIONS (bench.h) is made once only, so every acquire is a
// creation.
#define UUID_SIZE 37

struct creation {
    const struct broker_process *broker;
    char name[16];
    char uuids[CREATIONS][UUID_SIZE];
    size_t n_uuids;
    // Acquires that returned a uuid seen before: not creations.
    unsigned reused;
};

// Whether uuid was returned before; remembers it if not.
static bool seen(struct creation *c, const char *uuid) {
    for (size_t i = 0; i < c->n_uuids; i++) {
        if (strcmp(c->uuids[i], uuid) == 0)
            return true;
    }
    if (c->n_uuids < CREATIONS)
        snprintf(c->uuids[c->n_uuids++], UUID_SIZE, "%s", uuid);
    return false;
}

// Connects (untimed), then times the acquire of c->name alone.
static bool timed_acquire(struct creation *c, struct samples *samples) {
    vmnet_broker_connection_t *connection = NULL;
    vmnet_broker_network_t *network = NULL;
    const char *uuid;
    const char *bridge;
    uint64_t start;
    uint64_t elapsed;
    bool status = false;

    if (vmnet_broker_connect(c->broker->socket_path, &connection) !=
        VMNET_BROKER_SUCCESS)
        goto out;
    start = bench_now_ns();
    if (vmnet_broker_connection_acquire(connection, c->name, &network) !=
        VMNET_BROKER_SUCCESS)
        goto out;
    elapsed = bench_now_ns() - start;
    uuid = vmnet_broker_network_uuid(network);
    bridge = vmnet_broker_network_bridge(network);
    // A network made for this acquire has a uuid never seen and a bridge
    // that exists.
    if (uuid == NULL || bridge == NULL || if_nametoindex(bridge) == 0)
        goto out;
    if (seen(c, uuid))
        c->reused++;
    if (samples->n < samples->capacity)
        samples->ns[samples->n++] = elapsed;
    status = true;
out:
    vmnet_broker_network_free(network);
    // The network stays, idle, for the rest of the run: closing the
    // connection only starts its idle delay.
    vmnet_broker_connection_close(connection);
    return status;
}

static bool timed_bare_bridge(struct nl_sock *sock, unsigned index,
                              struct samples *samples) {
    char name[IFNAMSIZ];
    uint64_t start;
    uint64_t elapsed;
    bool made;

    snprintf(name, sizeof(name), "bare%u", index);
    start = bench_now_ns();
    made = bare_bridge_create(sock, name, index);
    elapsed = bench_now_ns() - start;
    // Deleted at once so the broker sees the same host every time.
    if (!bare_bridge_delete(sock, name) || !made)
        return false;
    if (samples->n < samples->capacity)
        samples->ns[samples->n++] = elapsed;
    return true;
}

// The smallest and the largest sample, in milliseconds.
static void min_max_ms(const struct samples *samples, double *min,
                       double *max) {
    uint64_t lo = UINT64_MAX;
    uint64_t hi = 0;

    for (size_t i = 0; i < samples->n; i++) {
        lo = samples->ns[i] < lo ? samples->ns[i] : lo;
        hi = samples->ns[i] > hi ? samples->ns[i] : hi;
    }
    *min = samples->n > 0 ? lo / 1e6 : 0;
    *max = hi / 1e6;
}

bool bench_creation(struct bench *bench) {
    struct creation c = {.broker = &bench->broker};
    struct nl_sock *sock = bare_bridge_socket();
    struct samples broker_samples = {0};
    struct samples bare_samples = {0};
    struct summary made;
    struct summary bare;
    char title[128];
    char value[64];
    char baseline[64];
    char ratio[32];
    double min, max, bare_min, bare_max;
    bool status = false;

    if (sock == NULL || !samples_init(&broker_samples, CREATIONS) ||
        !samples_init(&bare_samples, CREATIONS))
        goto out;
    for (unsigned i = 1; i <= CREATIONS && i <= bench->broker.configured; i++) {
        snprintf(c.name, sizeof(c.name), "net%u", i);
        // Not in the broker's status yet: this acquire must make it.
        if (broker_process_network_peers(c.broker, c.name) != -1)
            goto out;
        if (!timed_bare_bridge(sock, i, &bare_samples) ||
            !timed_acquire(&c, &broker_samples))
            goto out;
    }

    made = samples_summarize(&broker_samples);
    bare = samples_summarize(&bare_samples);
    min_max_ms(&broker_samples, &min, &max);
    min_max_ms(&bare_samples, &bare_min, &bare_max);
    snprintf(title, sizeof(title),
             "Cold creation: acquire of %zu networks not made yet "
             "(configured net1..net%zu)",
             made.n, made.n);
    table_section(title);
    snprintf(value, sizeof(value), "%.2f ms", made.median_us / 1e3);
    snprintf(baseline, sizeof(baseline), "%.2f ms bare bridge",
             bare.median_us / 1e3);
    table_row(
        "acquire of a new network: median", value, baseline,
        format_ratio(ratio, sizeof(ratio), made.median_us, bare.median_us));
    snprintf(value, sizeof(value), "%.2f / %.2f ms", min, max);
    snprintf(baseline, sizeof(baseline), "%.2f / %.2f ms", bare_min, bare_max);
    table_row("acquire of a new network: min / max", value, baseline, "");
    snprintf(value, sizeof(value), "%zu of %zu", c.n_uuids, made.n);
    table_row("new uuids (each a real creation)", value, "",
              c.reused == 0 ? "all new" : "SOME REUSED");
    status = true;
out:
    samples_free(&bare_samples);
    samples_free(&broker_samples);
    bare_bridge_socket_free(sock);
    return status;
}
