// SPDX-License-Identifier: Apache-2.0
// Acquire, release and status against the real broker: what peers get.
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

// Long enough that nothing is removed for idleness during a test.
#define IDLE "60"
#define THREADS 8

static struct harness_broker *broker;

static void setup(void) { broker = harness_test_setup(); }

static void teardown(void) {
    harness_broker_free(broker);
    broker = NULL;
}

// Writes net1..net<count>, host-only networks with no static subnet.
static void write_numbered_configs(int count) {
    for (int i = 1; i <= count; i++) {
        char name[16];
        snprintf(name, sizeof(name), "net%d", i);
        ck_assert(harness_broker_write_config(broker, name,
                                              "{\"mode\": \"host\"}\n"));
    }
}

static unsigned link_mtu(const char *name) {
    char path[128];
    unsigned mtu = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/sys/class/net/%s/mtu", name);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%u", &mtu) != 1)
        mtu = 0;
    fclose(f);
    return mtu;
}

// Checks everything a peer is told about a network against the namespace.
static void check_network(const vmnet_broker_network_t *network,
                          const char *name, const char *mode,
                          const char *bridge, const char *subnet,
                          const char *mask, const char *gateway,
                          unsigned prefix_len) {
    const char *uuid = vmnet_broker_network_uuid(network);
    json_t *json;
    char alias[128];

    ck_assert_str_eq(vmnet_broker_network_name(network), name);
    ck_assert_str_eq(vmnet_broker_network_mode(network), mode);
    ck_assert_str_eq(vmnet_broker_network_bridge(network), bridge);
    ck_assert_str_eq(vmnet_broker_network_subnet(network), subnet);
    ck_assert_str_eq(vmnet_broker_network_mask(network), mask);
    ck_assert_str_eq(vmnet_broker_network_gateway(network), gateway);
    ck_assert_msg(harness_uuid_valid(uuid), "bad uuid '%s'", uuid);
    ck_assert_uint_ge(vmnet_broker_network_mtu(network), 576);
    ck_assert_uint_eq(vmnet_broker_network_mtu(network), link_mtu(bridge));

    // The serialization carries the same values under the documented keys.
    json = json_loads(vmnet_broker_network_json(network),
                      JSON_REJECT_DUPLICATES, NULL);
    ck_assert_ptr_nonnull(json);
    ck_assert_str_eq(json_string_value(json_object_get(json, "name")), name);
    ck_assert_str_eq(json_string_value(json_object_get(json, "mode")), mode);
    ck_assert_str_eq(json_string_value(json_object_get(json, "bridge")),
                     bridge);
    ck_assert_str_eq(json_string_value(json_object_get(json, "subnet")),
                     subnet);
    ck_assert_str_eq(json_string_value(json_object_get(json, "mask")), mask);
    ck_assert_str_eq(json_string_value(json_object_get(json, "gateway")),
                     gateway);
    ck_assert_str_eq(json_string_value(json_object_get(json, "uuid")), uuid);
    ck_assert_int_eq(json_integer_value(json_object_get(json, "mtu")),
                     vmnet_broker_network_mtu(network));
    ck_assert_int_eq(json_integer_value(json_object_get(json, "prefix_length")),
                     prefix_len);
    json_decref(json);

    // And the bridge is really there: up, aliased, with the gateway.
    ck_assert_msg(harness_link_exists(bridge), "no link %s", bridge);
    ck_assert(harness_link_is_bridge(bridge));
    ck_assert(harness_link_is_up(bridge));
    ck_assert(harness_link_alias(bridge, alias, sizeof(alias)));
    ck_assert_str_eq(alias, name);
    ck_assert_msg(harness_link_has_ipv4(bridge, gateway, prefix_len),
                  "%s lacks %s/%u", bridge, gateway, prefix_len);
}

START_TEST(test_acquire_shared) {
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_network_t *network = NULL;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(vmnet_broker_connection_acquire(c, "shared", &network),
                     VMNET_BROKER_SUCCESS);
    ck_assert_ptr_nonnull(network);
    check_network(network, "shared", "shared", "vmb-shared", "192.168.64.0",
                  "255.255.255.0", "192.168.64.1", 24);
    vmnet_broker_network_free(network);
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_acquire_host) {
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_network_t *network = NULL;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(vmnet_broker_connection_acquire(c, "host", &network),
                     VMNET_BROKER_SUCCESS);
    check_network(network, "host", "host", "vmb-host", "192.168.64.0",
                  "255.255.255.0", "192.168.64.1", 24);
    vmnet_broker_network_free(network);
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_acquire_unknown) {
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_network_t *network = NULL;
    int fd = harness_raw_connect(broker->socket_path);
    json_t *reply;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(vmnet_broker_connection_acquire(c, "nosuch", &network),
                     VMNET_BROKER_NOT_FOUND);
    ck_assert_ptr_null(network);
    ck_assert_uint_eq(harness_count_links("vmb-"), 0);
    // The connection is still served.
    ck_assert_int_eq(harness_acquire(c, "shared", NULL), VMNET_BROKER_SUCCESS);

    // On the wire: exactly {"error": 5}.
    ck_assert_int_ge(fd, 0);
    reply = harness_raw_acquire(fd, "nosuch");
    ck_assert_int_eq(harness_reply_error(reply), 5);
    json_decref(reply);
    close(fd);
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_acquire_both) {
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_network_t *shared = NULL, *host = NULL;
    json_t *status;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(vmnet_broker_connection_acquire(c, "shared", &shared),
                     VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(vmnet_broker_connection_acquire(c, "host", &host),
                     VMNET_BROKER_SUCCESS);
    // The second takes the next free /24 after the first.
    check_network(shared, "shared", "shared", "vmb-shared", "192.168.64.0",
                  "255.255.255.0", "192.168.64.1", 24);
    check_network(host, "host", "host", "vmb-host", "192.168.65.0",
                  "255.255.255.0", "192.168.65.1", 24);
    ck_assert_str_ne(vmnet_broker_network_uuid(shared),
                     vmnet_broker_network_uuid(host));

    status = harness_status(broker);
    ck_assert_ptr_nonnull(status);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         harness_status_network(status, "shared"), "peers")),
                     1);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         harness_status_network(status, "host"), "peers")),
                     1);
    ck_assert(harness_status_pid_holds(status, getpid(), "shared"));
    ck_assert(harness_status_pid_holds(status, getpid(), "host"));
    json_decref(status);
    vmnet_broker_network_free(shared);
    vmnet_broker_network_free(host);
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_acquire_same_many_times) {
    write_numbered_configs(7);
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);
    char first[37], uuid[37];
    json_t *status, *peers, *peer;
    size_t i, holders = 0;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(harness_acquire(c, "shared", first), VMNET_BROKER_SUCCESS);
    for (int n = 0; n < 50; n++) {
        ck_assert_int_eq(harness_acquire(c, "shared", uuid),
                         VMNET_BROKER_SUCCESS);
        ck_assert_str_eq(uuid, first);
    }
    ck_assert_uint_eq(harness_count_links("vmb-"), 1);
    ck_assert_int_eq(harness_network_peers(broker, "shared"), 1);

    // The peer lists the network once.
    status = harness_status(broker);
    peers = json_object_get(status, "peers");
    json_array_foreach(peers, i, peer) {
        json_t *held = json_object_get(peer, "networks");
        if (json_array_size(held) == 0)
            continue;
        holders++;
        ck_assert_uint_eq(json_array_size(held), 1);
        ck_assert_str_eq(json_string_value(json_array_get(held, 0)), "shared");
    }
    ck_assert_uint_eq(holders, 1);
    json_decref(status);

    // Repeats took one slot of eight: seven more distinct networks fit.
    for (int n = 1; n <= 7; n++) {
        char name[16];
        snprintf(name, sizeof(name), "net%d", n);
        ck_assert_int_eq(harness_acquire(c, name, NULL), VMNET_BROKER_SUCCESS);
    }
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_nine_distinct_networks) {
    write_numbered_configs(8);
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_network_t *network = NULL;
    char shared_uuid[37], uuid[37];
    char *text = NULL;
    json_t *status;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(harness_acquire(c, "shared", shared_uuid),
                     VMNET_BROKER_SUCCESS);
    for (int n = 1; n <= 7; n++) {
        char name[16], bridge[32];
        snprintf(name, sizeof(name), "net%d", n);
        snprintf(bridge, sizeof(bridge), "vmb-%s", name);
        ck_assert_int_eq(harness_acquire(c, name, NULL), VMNET_BROKER_SUCCESS);
        ck_assert(harness_link_exists(bridge));
    }
    ck_assert_uint_eq(harness_count_links("vmb-"), 8);

    // The ninth distinct network: INTERNAL_ERROR, as in the original, and
    // nothing is created for it.
    ck_assert_int_eq(vmnet_broker_connection_acquire(c, "net8", &network),
                     VMNET_BROKER_INTERNAL_ERROR);
    ck_assert_ptr_null(network);
    ck_assert(!harness_link_exists("vmb-net8"));
    ck_assert_int_eq(harness_network_peers(broker, "net8"), -1);

    // The connection still works: status, a held network, a release that
    // frees a slot for the ninth.
    ck_assert_int_eq(vmnet_broker_connection_status(c, &text),
                     VMNET_BROKER_SUCCESS);
    status = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(status);
    ck_assert_uint_eq(json_array_size(json_object_get(status, "networks")), 8);
    json_decref(status);
    free(text);
    ck_assert_int_eq(harness_acquire(c, "shared", uuid), VMNET_BROKER_SUCCESS);
    ck_assert_str_eq(uuid, shared_uuid);
    ck_assert_int_eq(vmnet_broker_connection_release(c, "net1"),
                     VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(harness_acquire(c, "net8", NULL), VMNET_BROKER_SUCCESS);
    ck_assert(harness_link_exists("vmb-net8"));
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_configured_static_subnet) {
    ck_assert(harness_broker_write_config(
        broker, "lab",
        "{\n  \"description\": \"Lab network\",\n  \"mode\": \"host\",\n"
        "  \"subnet\": \"192.168.42.1\",\n  \"mask\": \"255.255.255.0\"\n}\n"));
    ck_assert(harness_broker_write_config(
        broker, "wide",
        "{\"mode\": \"shared\", \"subnet\": \"10.20.0.1\", "
        "\"mask\": \"255.255.0.0\"}"));
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_network_t *lab = NULL, *wide = NULL;
    json_t *json;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(vmnet_broker_connection_acquire(c, "lab", &lab),
                     VMNET_BROKER_SUCCESS);
    check_network(lab, "lab", "host", "vmb-lab", "192.168.42.0",
                  "255.255.255.0", "192.168.42.1", 24);
    json = json_loads(vmnet_broker_network_json(lab), 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(json, "description")),
                     "Lab network");
    json_decref(json);

    ck_assert_int_eq(vmnet_broker_connection_acquire(c, "wide", &wide),
                     VMNET_BROKER_SUCCESS);
    check_network(wide, "wide", "shared", "vmb-wide", "10.20.0.0",
                  "255.255.0.0", "10.20.0.1", 16);
    vmnet_broker_network_free(lab);
    vmnet_broker_network_free(wide);
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_long_names) {
    static const char *names[] = {
        "project-alpha-network",
        "project-alpha-network2",
        // 64 characters, the longest valid name.
        "n123456789012345678901234567890123456789012345678901234567890123",
    };
    char bridges[3][64];

    for (size_t i = 0; i < 3; i++)
        ck_assert(harness_broker_write_config(broker, names[i],
                                              "{\"mode\": \"host\"}"));
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);
    ck_assert_ptr_nonnull(c);
    for (size_t i = 0; i < 3; i++) {
        vmnet_broker_network_t *network = NULL;
        char alias[128];
        ck_assert_int_eq(vmnet_broker_connection_acquire(c, names[i], &network),
                         VMNET_BROKER_SUCCESS);
        snprintf(bridges[i], sizeof(bridges[i]), "%s",
                 vmnet_broker_network_bridge(network));
        vmnet_broker_network_free(network);
        // An interface name fits in 15 characters; the alias is the name.
        ck_assert_uint_le(strlen(bridges[i]), 15);
        ck_assert_uint_gt(strlen(bridges[i]), 0);
        ck_assert(harness_link_exists(bridges[i]));
        ck_assert(harness_link_alias(bridges[i], alias, sizeof(alias)));
        ck_assert_str_eq(alias, names[i]);
    }
    ck_assert_str_ne(bridges[0], bridges[1]);
    ck_assert_str_ne(bridges[0], bridges[2]);
    ck_assert_str_ne(bridges[1], bridges[2]);
    vmnet_broker_connection_close(c);
}
END_TEST

struct concurrent_peer {
    pthread_barrier_t *start;
    const char *name;
    vmnet_broker_connection_t *connection;
    vmnet_broker_return_t status;
    char uuid[37];
    char subnet[16];
    char bridge[16];
};

// Connects, then acquires at the same moment as every other thread. The
// connection stays open for the main thread to inspect and close.
static void *acquire_concurrently(void *arg) {
    struct concurrent_peer *p = arg;
    vmnet_broker_network_t *network = NULL;

    p->status = vmnet_broker_connect(broker->socket_path, &p->connection);
    pthread_barrier_wait(p->start);
    if (p->status != VMNET_BROKER_SUCCESS)
        return NULL;
    p->status =
        vmnet_broker_connection_acquire(p->connection, p->name, &network);
    if (p->status == VMNET_BROKER_SUCCESS) {
        snprintf(p->uuid, sizeof(p->uuid), "%s",
                 vmnet_broker_network_uuid(network));
        snprintf(p->subnet, sizeof(p->subnet), "%s",
                 vmnet_broker_network_subnet(network));
        snprintf(p->bridge, sizeof(p->bridge), "%s",
                 vmnet_broker_network_bridge(network));
    }
    vmnet_broker_network_free(network);
    return NULL;
}

static void run_concurrently(struct concurrent_peer *peers, size_t n) {
    pthread_barrier_t start;
    pthread_t threads[THREADS];

    ck_assert_uint_le(n, THREADS);
    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (size_t i = 0; i < n; i++) {
        peers[i].start = &start;
        ck_assert_int_eq(
            pthread_create(&threads[i], NULL, acquire_concurrently, &peers[i]),
            0);
    }
    for (size_t i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&start);
}

START_TEST(test_concurrent_same_network) {
    harness_start(broker, IDLE);
    struct concurrent_peer peers[THREADS] = {0};

    for (size_t i = 0; i < THREADS; i++)
        peers[i].name = "shared";
    run_concurrently(peers, THREADS);
    for (size_t i = 0; i < THREADS; i++) {
        ck_assert_int_eq(peers[i].status, VMNET_BROKER_SUCCESS);
        ck_assert_str_eq(peers[i].uuid, peers[0].uuid);
        ck_assert_str_eq(peers[i].bridge, "vmb-shared");
    }
    ck_assert_uint_eq(harness_count_links("vmb-"), 1);
    ck_assert_int_eq(harness_network_peers(broker, "shared"), THREADS);
    ck_assert_uint_eq(harness_broker_log_count(broker, "created network"), 1);
    for (size_t i = 0; i < THREADS; i++)
        vmnet_broker_connection_close(peers[i].connection);
}
END_TEST

START_TEST(test_concurrent_different_networks) {
    write_numbered_configs(THREADS);
    harness_start(broker, IDLE);
    struct concurrent_peer peers[THREADS] = {0};
    char names[THREADS][16];

    for (size_t i = 0; i < THREADS; i++) {
        snprintf(names[i], sizeof(names[i]), "net%zu", i + 1);
        peers[i].name = names[i];
    }
    run_concurrently(peers, THREADS);
    for (size_t i = 0; i < THREADS; i++) {
        char bridge[32];
        snprintf(bridge, sizeof(bridge), "vmb-%s", names[i]);
        ck_assert_int_eq(peers[i].status, VMNET_BROKER_SUCCESS);
        ck_assert_str_eq(peers[i].bridge, bridge);
        ck_assert(harness_link_exists(bridge));
        ck_assert_int_eq(harness_network_peers(broker, names[i]), 1);
        for (size_t j = 0; j < i; j++) {
            ck_assert_str_ne(peers[i].uuid, peers[j].uuid);
            ck_assert_str_ne(peers[i].subnet, peers[j].subnet);
        }
    }
    ck_assert_uint_eq(harness_count_links("vmb-"), THREADS);
    for (size_t i = 0; i < THREADS; i++)
        vmnet_broker_connection_close(peers[i].connection);
}
END_TEST

START_TEST(test_concurrent_processes) {
    harness_start(broker, IDLE);
    const char *names[] = {"shared"};
    pid_t holders[4];
    json_t *status;

    for (size_t i = 0; i < 4; i++) {
        holders[i] = harness_spawn_holder(broker, names, 1);
        ck_assert_int_gt(holders[i], 0);
    }
    status = harness_status(broker);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         harness_status_network(status, "shared"), "peers")),
                     4);
    for (size_t i = 0; i < 4; i++) {
        ck_assert_uint_eq(harness_status_count_pid(status, holders[i]), 1);
        ck_assert(harness_status_pid_holds(status, holders[i], "shared"));
    }
    json_decref(status);
    for (size_t i = 0; i < 4; i++)
        harness_kill_and_reap(holders[i], SIGKILL);
}
END_TEST

START_TEST(test_status) {
    harness_start(broker, IDLE);
    const char *names[] = {"shared", "host"};
    json_t *status, *peers, *peer, *networks, *network;
    size_t i;
    bool found = false;
    pid_t holder;

    // Then the holder and the asking connection are the only peers.
    ck_assert(harness_broker_wait_no_peers(broker));
    holder = harness_spawn_holder(broker, names, 2);
    ck_assert_int_gt(holder, 0);
    status = harness_status(broker);
    ck_assert_ptr_nonnull(status);

    networks = json_object_get(status, "networks");
    ck_assert_uint_eq(json_array_size(networks), 2);
    json_array_foreach(networks, i, network) {
        const char *name = json_string_value(json_object_get(network, "name"));
        char bridge[32];
        ck_assert_ptr_nonnull(name);
        snprintf(bridge, sizeof(bridge), "vmb-%s", name);
        ck_assert_str_eq(json_string_value(json_object_get(network, "mode")),
                         name);
        ck_assert_str_eq(json_string_value(json_object_get(network, "bridge")),
                         bridge);
        ck_assert_ptr_nonnull(
            json_string_value(json_object_get(network, "subnet")));
        ck_assert_int_eq(json_integer_value(json_object_get(network, "peers")),
                         1);
        // In use: no idle removal pending.
        ck_assert(json_is_null(json_object_get(network, "idle_remaining")));
    }

    peers = json_object_get(status, "peers");
    json_array_foreach(peers, i, peer) {
        json_t *held = json_object_get(peer, "networks");
        if (json_integer_value(json_object_get(peer, "pid")) != holder)
            continue;
        ck_assert(!found);
        found = true;
        ck_assert_int_eq(json_integer_value(json_object_get(peer, "uid")), 0);
        ck_assert_uint_eq(json_array_size(held), 2);
        ck_assert(harness_status_pid_holds(status, holder, "shared"));
        ck_assert(harness_status_pid_holds(status, holder, "host"));
    }
    ck_assert_msg(found, "no status peer with the holder's pid %d", holder);
    // The asking connection is a peer too, holding nothing.
    ck_assert_uint_eq(harness_status_count_pid(status, getpid()), 1);
    ck_assert_uint_eq(json_array_size(peers), 2);
    json_decref(status);
    harness_kill_and_reap(holder, SIGKILL);
}
END_TEST

START_TEST(test_release) {
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_connection_t *other = harness_connect(broker);
    char uuid[37], again[37];
    json_t *status, *network, *idle, *reply;
    int fd;

    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(other);
    ck_assert_int_eq(harness_acquire(c, "shared", uuid), VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(vmnet_broker_connection_release(c, "shared"),
                     VMNET_BROKER_SUCCESS);

    status = harness_status(broker);
    network = harness_status_network(status, "shared");
    ck_assert_ptr_nonnull(network);
    ck_assert_int_eq(json_integer_value(json_object_get(network, "peers")), 0);
    idle = json_object_get(network, "idle_remaining");
    ck_assert_msg(json_is_number(idle), "idle_remaining is not a number");
    ck_assert_double_gt(json_number_value(idle), 0);
    ck_assert_double_le(json_number_value(idle), 60);
    ck_assert(!harness_status_pid_holds(status, getpid(), "shared"));
    json_decref(status);
    // Still there during the idle delay.
    ck_assert(harness_link_exists("vmb-shared"));

    // Not held any more, never held, unknown: all NOT_FOUND.
    ck_assert_int_eq(vmnet_broker_connection_release(c, "shared"),
                     VMNET_BROKER_NOT_FOUND);
    ck_assert_int_eq(vmnet_broker_connection_release(c, "host"),
                     VMNET_BROKER_NOT_FOUND);
    ck_assert_int_eq(vmnet_broker_connection_release(c, "nosuch"),
                     VMNET_BROKER_NOT_FOUND);

    // Releasing what only another peer holds changes nothing.
    ck_assert_int_eq(harness_acquire(other, "host", NULL),
                     VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(vmnet_broker_connection_release(c, "host"),
                     VMNET_BROKER_NOT_FOUND);
    ck_assert_int_eq(harness_network_peers(broker, "host"), 1);

    // Acquiring again within the delay: same instance, in use again.
    ck_assert_int_eq(harness_acquire(c, "shared", again), VMNET_BROKER_SUCCESS);
    ck_assert_str_eq(again, uuid);
    status = harness_status(broker);
    network = harness_status_network(status, "shared");
    ck_assert_int_eq(json_integer_value(json_object_get(network, "peers")), 1);
    ck_assert(json_is_null(json_object_get(network, "idle_remaining")));
    json_decref(status);

    // On the wire.
    fd = harness_raw_connect(broker->socket_path);
    ck_assert_int_ge(fd, 0);
    json_decref(harness_raw_acquire(fd, "shared"));
    reply = harness_raw_request(
        fd, "{\"command\": \"release\", \"network_name\": \"shared\"}");
    ck_assert_ptr_nonnull(reply);
    ck_assert_uint_eq(json_object_size(reply), 1);
    ck_assert_str_eq(json_string_value(json_object_get(reply, "released")),
                     "shared");
    json_decref(reply);
    reply = harness_raw_request(
        fd, "{\"command\": \"release\", \"network_name\": \"shared\"}");
    ck_assert_int_eq(harness_reply_error(reply), 5);
    json_decref(reply);
    close(fd);
    vmnet_broker_connection_close(c);
    vmnet_broker_connection_close(other);
}
END_TEST

// The original API in a process of its own, whose process-wide connection
// ends with it. Returns 0, or the number of the step that went wrong.
static int use_process_wide_connection(void *arg) {
    vmnet_broker_network_t *network = NULL, *again = NULL;
    vmnet_broker_return_t status = VMNET_BROKER_INTERNAL_ERROR;
    int step = 1;

    (void)arg;
    if (setenv(VMNET_BROKER_SOCKET_ENV, broker->socket_path, 1) != 0)
        goto out;
    step = 2;
    network = vmnet_broker_acquire_network("shared", &status);
    if (network == NULL || status != VMNET_BROKER_SUCCESS ||
        strcmp(vmnet_broker_network_bridge(network), "vmb-shared") != 0)
        goto out;
    // One connection for the whole process: acquiring again is the same
    // peer holding the same reference.
    step = 3;
    again = vmnet_broker_acquire_network("shared", &status);
    if (again == NULL || status != VMNET_BROKER_SUCCESS ||
        strcmp(vmnet_broker_network_uuid(again),
               vmnet_broker_network_uuid(network)) != 0)
        goto out;
    step = 4;
    if (harness_network_peers(broker, "shared") != 1)
        goto out;
    step = 5;
    if (vmnet_broker_acquire_network("nosuch", &status) != NULL ||
        status != VMNET_BROKER_NOT_FOUND)
        goto out;
    step = 6;
    if (vmnet_broker_release_network("shared") != VMNET_BROKER_SUCCESS ||
        harness_network_peers(broker, "shared") != 0)
        goto out;
    step = 7;
    if (vmnet_broker_release_network("shared") != VMNET_BROKER_NOT_FOUND)
        goto out;
    // Held again when the process ends: the broker drops it then.
    step = 8;
    vmnet_broker_network_free(again);
    again = vmnet_broker_acquire_network("host", &status);
    if (again == NULL || status != VMNET_BROKER_SUCCESS)
        goto out;
    step = 0;
out:
    vmnet_broker_network_free(network);
    vmnet_broker_network_free(again);
    return step;
}

static bool host_unused(void *arg) {
    (void)arg;
    return harness_network_peers(broker, "host") == 0;
}

START_TEST(test_process_wide_api) {
    harness_start(broker, IDLE);

    ck_assert_int_eq(harness_run_child(use_process_wide_connection, NULL), 0);
    ck_assert(harness_wait_for(host_unused, NULL));
}
END_TEST

START_TEST(test_connect_failure) {
    vmnet_broker_connection_t *c = (vmnet_broker_connection_t *)&c;

    // No broker listening there.
    ck_assert_int_eq(vmnet_broker_connect(broker->socket_path, &c),
                     VMNET_BROKER_CONNECTION_FAILURE);
    ck_assert_ptr_eq(c, (vmnet_broker_connection_t *)&c);
    for (int s = VMNET_BROKER_SUCCESS; s <= VMNET_BROKER_INTERNAL_ERROR; s++) {
        const char *text = vmnet_broker_strerror((vmnet_broker_return_t)s);
        ck_assert_ptr_nonnull(text);
        ck_assert_uint_gt(strlen(text), 0);
        ck_assert_str_ne(text, "unknown status");
    }
    ck_assert_str_eq(vmnet_broker_strerror((vmnet_broker_return_t)99),
                     "unknown status");
}
END_TEST

static Suite *acquire_suite(void) {
    Suite *s = suite_create("acquire");
    TCase *tc = tcase_create("acquire");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_acquire_shared);
    tcase_add_test(tc, test_acquire_host);
    tcase_add_test(tc, test_acquire_unknown);
    tcase_add_test(tc, test_acquire_both);
    tcase_add_test(tc, test_acquire_same_many_times);
    tcase_add_test(tc, test_nine_distinct_networks);
    tcase_add_test(tc, test_configured_static_subnet);
    tcase_add_test(tc, test_long_names);
    tcase_add_test(tc, test_concurrent_same_network);
    tcase_add_test(tc, test_concurrent_different_networks);
    tcase_add_test(tc, test_concurrent_processes);
    tcase_add_test(tc, test_status);
    tcase_add_test(tc, test_release);
    tcase_add_test(tc, test_process_wide_api);
    tcase_add_test(tc, test_connect_failure);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(acquire_suite());
}
