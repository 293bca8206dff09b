// SPDX-License-Identifier: Apache-2.0
// Broker resident memory idle and with 1,000 peers each holding `shared`.
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "vmnet-broker.h"

#define MEMORY_PEERS 1000
#define GOAL_BYTES_PER_PEER 4096
// Acquires made by the warm-up peer: the broker's buffers and the
// allocator's arenas reach their working size before "idle" is read.
#define WARM_UP_ACQUIRES 100

// One peer makes `shared`, acquires it again and again, asks for the
// status, and leaves.
static bool warm_up(const struct broker_process *broker) {
    vmnet_broker_connection_t *connection = NULL;
    char *status_json = NULL;
    bool status = false;

    if (vmnet_broker_connect(broker->socket_path, &connection) !=
        VMNET_BROKER_SUCCESS)
        goto out;
    for (int i = 0; i < WARM_UP_ACQUIRES; i++) {
        vmnet_broker_network_t *network = NULL;
        if (vmnet_broker_connection_acquire(connection, "shared", &network) !=
            VMNET_BROKER_SUCCESS)
            goto out;
        vmnet_broker_network_free(network);
    }
    if (vmnet_broker_connection_status(connection, &status_json) !=
        VMNET_BROKER_SUCCESS)
        goto out;
    status = true;
out:
    free(status_json);
    vmnet_broker_connection_close(connection);
    return status;
}

// Connects a peer that holds `shared`; NULL on failure.
static vmnet_broker_connection_t *holder(const struct broker_process *broker) {
    vmnet_broker_connection_t *connection = NULL;
    vmnet_broker_network_t *network = NULL;

    if (vmnet_broker_connect(broker->socket_path, &connection) !=
        VMNET_BROKER_SUCCESS)
        return NULL;
    if (vmnet_broker_connection_acquire(connection, "shared", &network) !=
        VMNET_BROKER_SUCCESS) {
        vmnet_broker_connection_close(connection);
        return NULL;
    }
    vmnet_broker_network_free(network);
    return connection;
}

// One row: the figure with 1,000 peers, idle, and the cost per peer.
static void memory_row(const char *metric, long held_kib, long idle_kib,
                       bool with_goal) {
    long per_peer = (held_kib - idle_kib) * 1024 / MEMORY_PEERS;
    char value[64];
    char baseline[64];
    char verdict[96];

    snprintf(value, sizeof(value), "%ld KiB", held_kib);
    snprintf(baseline, sizeof(baseline), "%ld KiB idle", idle_kib);
    if (with_goal)
        snprintf(verdict, sizeof(verdict), "%ld B/peer (goal < %d: %s)",
                 per_peer, GOAL_BYTES_PER_PEER,
                 per_peer < GOAL_BYTES_PER_PEER ? "met" : "MISSED");
    else
        snprintf(verdict, sizeof(verdict), "%ld B/peer", per_peer);
    table_row(metric, value, baseline, verdict);
}

bool bench_memory(struct bench *bench) {
    const struct broker_process *broker = &bench->broker;
    vmnet_broker_connection_t **peers = calloc(MEMORY_PEERS, sizeof(*peers));
    struct proc_memory start, idle, held;
    size_t connected = 0;
    unsigned errors = 0;
    long holding = -1;
    char value[64];
    char verdict[96];
    bool status = false;

    if (peers == NULL || !proc_memory_read(broker->pid, &start))
        goto out;
    if (!warm_up(broker) || !broker_process_wait_peers(broker, 0))
        goto out;
    if (!proc_memory_read(broker->pid, &idle))
        goto out;
    for (size_t i = 0; i < MEMORY_PEERS; i++) {
        vmnet_broker_connection_t *connection = holder(broker);
        if (connection == NULL) {
            errors++;
            continue;
        }
        peers[connected++] = connection;
    }
    // Read before asking for the status, whose reply for 1,000 peers is
    // large and would count as theirs.
    if (!proc_memory_read(broker->pid, &held))
        goto out;
    holding = broker_process_network_peers(broker, "shared");

    table_section("Broker memory: 1,000 peers each holding `shared`");
    snprintf(value, sizeof(value), "%ld KiB", start.rss_kib);
    table_row("VmRSS at start, no network yet", value, "", "");
    memory_row("VmRSS with 1,000 peers", held.rss_kib, idle.rss_kib, true);
    memory_row("Pss with 1,000 peers", held.pss_kib, idle.pss_kib, false);
    memory_row("Private_Dirty with 1,000 peers", held.private_dirty_kib,
               idle.private_dirty_kib, false);
    snprintf(value, sizeof(value), "%ld held, %u errors", holding, errors);
    snprintf(verdict, sizeof(verdict), "goal %d held, 0 errors: %s",
             MEMORY_PEERS,
             holding == MEMORY_PEERS && errors == 0 ? "met" : "MISSED");
    table_row("peers holding `shared` (status)", value, "", verdict);
    status = true;
out:
    for (size_t i = 0; i < connected; i++)
        vmnet_broker_connection_close(peers[i]);
    free(peers);
    return status;
}
