// SPDX-License-Identifier: Apache-2.0
// The core's lifecycle rules (references, idle removal, limits, policy).
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/broker.h"
#include "core/log.h"
#include "fake_backend.h"

#define T0 1000000u
#define IDLE FAKE_IDLE_USEC

static struct fake_backend backend;
static struct fake_configs configs;
static struct broker *broker;

// Where failed acquires must leave their out-parameter: an address no
// network has (struct network is opaque here, so not one of those).
static const char sentinel_network;
#define SENTINEL ((const struct network *)&sentinel_network)

static void setup(void) {
    memset(&backend, 0, sizeof(backend));
    memset(&configs, 0, sizeof(configs));
    broker = fake_broker_new(&backend, &configs);
    ck_assert_ptr_nonnull(broker);
}

static void teardown(void) {
    unsigned creates = backend.creates;
    broker_free(broker);
    broker = NULL;
    // Whatever a test left behind, freeing the broker removes all of it,
    // each network exactly once.
    ck_assert_uint_eq(backend.live, 0);
    ck_assert_uint_eq(backend.destroys, creates);
}

static struct peer *connect_peer(int32_t pid, uint32_t uid, uint32_t gid) {
    struct peer_cred cred = fake_cred(pid, uid, gid);
    struct peer *peer = broker_peer_connect(broker, &cred, NULL);
    ck_assert_ptr_nonnull(peer);
    return peer;
}

static struct peer *connect_root(int32_t pid) {
    return connect_peer(pid, FAKE_ROOT_UID, 0);
}

static const struct network *acquire_ok(struct peer *peer, const char *name,
                                        uint64_t now) {
    const struct network *network = SENTINEL;
    ck_assert_int_eq(broker_acquire(broker, peer, name, now, &network),
                     BROKER_OK);
    ck_assert_ptr_ne(network, SENTINEL);
    ck_assert_ptr_nonnull(network);
    ck_assert_str_eq(network_get_name(network), name);
    return network;
}

static const struct network *find_network(const char *name) {
    for (const struct network *n = broker_network_first(broker); n;
         n = broker_network_next(n)) {
        if (strcmp(network_get_name(n), name) == 0)
            return n;
    }
    return NULL;
}

static bool peer_holds(const struct peer *peer, const struct network *network) {
    return peer_find_network(peer, network) >= 0;
}

START_TEST(test_acquire_creates_on_first_use) {
    struct peer *a = connect_root(100);
    const struct network *n = acquire_ok(a, "shared", T0);

    ck_assert_uint_eq(backend.creates, 1);
    ck_assert_str_eq(backend.last_created, "shared");
    ck_assert_int_eq(network_get_config(n)->mode, NETWORK_MODE_SHARED);
    ck_assert_uint_eq(network_get_peers(n), 1);
    ck_assert_uint_eq(broker_network_count(broker), 1);
    ck_assert_ptr_eq(find_network("shared"), n);
    ck_assert_uint_eq(peer_get_network_count(a), 1);
    ck_assert(peer_holds(a, n));
    ck_assert_uint_eq(broker_next_deadline(broker), NO_DEADLINE);
}
END_TEST

START_TEST(test_second_peer_gets_same_network) {
    struct peer *a = connect_root(100);
    struct peer *b = connect_peer(101, FAKE_USER_UID, FAKE_USER_GID);
    const struct network *first = acquire_ok(a, "shared", T0);
    char uuid[NETWORK_UUID_LEN + 1];
    const struct network *second = NULL;

    strcpy(uuid, network_get_info(first)->uuid);
    second = acquire_ok(b, "shared", T0 + 1);

    ck_assert_ptr_eq(second, first);
    ck_assert_str_eq(network_get_info(second)->uuid, uuid);
    ck_assert_uint_eq(network_get_peers(second), 2);
    ck_assert_uint_eq(backend.creates, 1);
    ck_assert_uint_eq(broker_network_count(broker), 1);
}
END_TEST

START_TEST(test_same_peer_acquiring_many_times_counts_once) {
    struct peer *a = connect_root(100);
    const struct network *first = acquire_ok(a, "host", T0);

    for (int i = 0; i < 20; i++)
        ck_assert_ptr_eq(acquire_ok(a, "host", T0 + (uint64_t)i), first);

    ck_assert_uint_eq(network_get_peers(first), 1);
    ck_assert_uint_eq(peer_get_network_count(a), 1);
    ck_assert_uint_eq(backend.creates, 1);
    // One reference, so one release leaves it unused and a second has
    // nothing left to drop.
    ck_assert_int_eq(broker_release(broker, a, "host", T0 + 100), BROKER_OK);
    ck_assert_uint_eq(network_get_peers(first), 0);
    ck_assert_int_eq(broker_release(broker, a, "host", T0 + 101),
                     BROKER_ERR_NOT_FOUND);
}
END_TEST

START_TEST(test_unknown_name_is_not_found) {
    struct peer *a = connect_root(100);
    const struct network *out = SENTINEL;

    ck_assert_int_eq(broker_acquire(broker, a, "nosuch", T0, &out),
                     BROKER_ERR_NOT_FOUND);
    ck_assert_ptr_eq(out, SENTINEL);
    ck_assert_uint_eq(configs.lookups, 1);
    ck_assert_uint_eq(backend.creates, 0);
    ck_assert_uint_eq(broker_network_count(broker), 0);
    ck_assert_uint_eq(peer_get_network_count(a), 0);
}
END_TEST

START_TEST(test_ninth_distinct_network_is_internal_error) {
    struct peer *a = connect_root(100);
    const struct network *held[PEER_MAX_NETWORKS];
    const struct network *out = SENTINEL;

    for (int i = 0; i < PEER_MAX_NETWORKS; i++)
        held[i] = acquire_ok(a, fake_open_names[i], T0);
    ck_assert_uint_eq(peer_get_network_count(a), PEER_MAX_NETWORKS);

    ck_assert_int_eq(broker_acquire(broker, a, fake_open_names[8], T0, &out),
                     BROKER_ERR_INTERNAL);
    ck_assert_ptr_eq(out, SENTINEL);
    ck_assert_uint_eq(backend.creates, PEER_MAX_NETWORKS);
    ck_assert_uint_eq(broker_network_count(broker), PEER_MAX_NETWORKS);
    ck_assert_ptr_null(find_network(fake_open_names[8]));
    ck_assert_uint_eq(peer_get_network_count(a), PEER_MAX_NETWORKS);

    // The limit is on distinct networks: one already held is still fine.
    ck_assert_ptr_eq(acquire_ok(a, fake_open_names[3], T0 + 1), held[3]);
    ck_assert_uint_eq(network_get_peers(held[3]), 1);
    ck_assert_uint_eq(backend.creates, PEER_MAX_NETWORKS);
}
END_TEST

START_TEST(test_ninth_network_existing_elsewhere_is_not_referenced) {
    struct peer *a = connect_root(100);
    struct peer *b = connect_root(101);
    const struct network *out = SENTINEL;
    const struct network *ninth = acquire_ok(b, fake_open_names[8], T0);

    for (int i = 0; i < PEER_MAX_NETWORKS; i++)
        acquire_ok(a, fake_open_names[i], T0);

    ck_assert_int_eq(broker_acquire(broker, a, fake_open_names[8], T0, &out),
                     BROKER_ERR_INTERNAL);
    ck_assert_ptr_eq(out, SENTINEL);
    ck_assert_uint_eq(network_get_peers(ninth), 1);
    ck_assert(!peer_holds(a, ninth));
}
END_TEST

START_TEST(test_disconnect_drops_references_and_starts_idle_delay) {
    struct peer *a = connect_root(100);
    struct peer *b = connect_root(101);
    const struct network *shared = acquire_ok(a, "shared", T0);
    const struct network *host = acquire_ok(a, "host", T0);

    acquire_ok(b, "shared", T0);
    broker_peer_disconnect(broker, a, T0 + 5);

    ck_assert_uint_eq(broker_peer_count(broker), 1);
    ck_assert_uint_eq(network_get_peers(shared), 1);
    ck_assert_uint_eq(network_get_idle_deadline(shared), NO_DEADLINE);
    ck_assert_uint_eq(network_get_peers(host), 0);
    ck_assert_uint_eq(network_get_idle_deadline(host), T0 + 5 + IDLE);
    ck_assert_uint_eq(broker_next_deadline(broker), T0 + 5 + IDLE);
    // The delay has only started: nothing is removed yet.
    ck_assert_uint_eq(backend.destroys, 0);
    ck_assert_uint_eq(broker_network_count(broker), 2);
}
END_TEST

START_TEST(test_expire_respects_the_deadline) {
    struct peer *a = connect_root(100);

    acquire_ok(a, "shared", T0);
    broker_peer_disconnect(broker, a, T0);

    broker_expire(broker, T0);
    broker_expire(broker, T0 + IDLE - 1);
    ck_assert_uint_eq(backend.destroys, 0);
    ck_assert_ptr_nonnull(find_network("shared"));

    broker_expire(broker, T0 + IDLE);
    ck_assert_uint_eq(backend.destroys, 1);
    ck_assert_str_eq(backend.last_destroyed, "shared");
    ck_assert_uint_eq(broker_network_count(broker), 0);
    ck_assert_ptr_null(broker_network_first(broker));
    ck_assert_uint_eq(broker_next_deadline(broker), NO_DEADLINE);

    broker_expire(broker, T0 + 10 * IDLE);
    ck_assert_uint_eq(backend.destroys, 1);
}
END_TEST

START_TEST(test_expire_late_removes) {
    struct peer *a = connect_root(100);

    acquire_ok(a, "host", T0);
    broker_peer_disconnect(broker, a, T0);
    // An event loop that wakes late must still remove the network.
    broker_expire(broker, T0 + 3 * IDLE);
    ck_assert_uint_eq(backend.destroys, 1);
    ck_assert_uint_eq(broker_network_count(broker), 0);
}
END_TEST

START_TEST(test_expire_keeps_networks_in_use) {
    struct peer *a = connect_root(100);
    struct peer *b = connect_root(101);

    acquire_ok(a, "shared", T0);
    acquire_ok(b, "host", T0);
    broker_peer_disconnect(broker, a, T0);

    broker_expire(broker, T0 + 10 * IDLE);
    ck_assert_uint_eq(backend.destroys, 1);
    ck_assert_str_eq(backend.last_destroyed, "shared");
    ck_assert_ptr_nonnull(find_network("host"));
}
END_TEST

START_TEST(test_next_deadline_is_the_earliest) {
    struct peer *a = connect_root(100);

    acquire_ok(a, "net1", T0);
    acquire_ok(a, "net2", T0);
    ck_assert_int_eq(broker_release(broker, a, "net2", T0 + 5), BROKER_OK);
    ck_assert_int_eq(broker_release(broker, a, "net1", T0 + 10), BROKER_OK);
    ck_assert_uint_eq(broker_next_deadline(broker), T0 + 5 + IDLE);

    broker_expire(broker, T0 + 5 + IDLE);
    ck_assert_ptr_null(find_network("net2"));
    ck_assert_ptr_nonnull(find_network("net1"));
    ck_assert_uint_eq(broker_next_deadline(broker), T0 + 10 + IDLE);
}
END_TEST

START_TEST(test_acquire_during_idle_delay_reuses_the_instance) {
    struct peer *a = connect_root(100);
    struct peer *b = NULL;
    const struct network *first = acquire_ok(a, "shared", T0);
    char uuid[NETWORK_UUID_LEN + 1];
    char bridge[NETWORK_BRIDGE_MAX + 1];

    strcpy(uuid, network_get_info(first)->uuid);
    strcpy(bridge, network_get_info(first)->bridge);
    broker_peer_disconnect(broker, a, T0);

    b = connect_root(101);
    ck_assert_ptr_eq(acquire_ok(b, "shared", T0 + IDLE - 1), first);
    ck_assert_str_eq(network_get_info(first)->uuid, uuid);
    ck_assert_str_eq(network_get_info(first)->bridge, bridge);
    ck_assert_uint_eq(network_get_peers(first), 1);
    ck_assert_uint_eq(backend.creates, 1);
    ck_assert_uint_eq(broker_next_deadline(broker), NO_DEADLINE);

    // The cancelled removal must not fire later.
    broker_expire(broker, T0 + 10 * IDLE);
    ck_assert_uint_eq(backend.destroys, 0);
}
END_TEST

START_TEST(test_acquire_after_removal_creates_a_new_instance) {
    struct peer *a = connect_root(100);
    char uuid[NETWORK_UUID_LEN + 1];

    strcpy(uuid, network_get_info(acquire_ok(a, "shared", T0))->uuid);
    ck_assert_int_eq(broker_release(broker, a, "shared", T0), BROKER_OK);
    broker_expire(broker, T0 + IDLE);
    ck_assert_uint_eq(backend.destroys, 1);

    ck_assert_str_ne(
        network_get_info(acquire_ok(a, "shared", T0 + IDLE + 1))->uuid, uuid);
    ck_assert_uint_eq(backend.creates, 2);
}
END_TEST

START_TEST(test_release_drops_one_reference) {
    struct peer *a = connect_root(100);
    struct peer *b = connect_root(101);
    const struct network *n = acquire_ok(a, "shared", T0);

    acquire_ok(b, "shared", T0);
    ck_assert_int_eq(broker_release(broker, a, "shared", T0 + 1), BROKER_OK);
    ck_assert_uint_eq(network_get_peers(n), 1);
    ck_assert_uint_eq(peer_get_network_count(a), 0);
    ck_assert(!peer_holds(a, n));
    ck_assert(peer_holds(b, n));
    ck_assert_uint_eq(broker_next_deadline(broker), NO_DEADLINE);

    ck_assert_int_eq(broker_release(broker, b, "shared", T0 + 2), BROKER_OK);
    ck_assert_uint_eq(network_get_peers(n), 0);
    ck_assert_uint_eq(broker_next_deadline(broker), T0 + 2 + IDLE);
    // Releasing is not removing: the idle delay still applies.
    ck_assert_uint_eq(backend.destroys, 0);
}
END_TEST

START_TEST(test_release_of_network_not_held_is_not_found) {
    struct peer *a = connect_root(100);
    struct peer *b = connect_root(101);
    const struct network *n = acquire_ok(b, "shared", T0);

    // Neither a network that does not exist nor one held by someone else.
    ck_assert_int_eq(broker_release(broker, a, "nosuch", T0),
                     BROKER_ERR_NOT_FOUND);
    ck_assert_int_eq(broker_release(broker, a, "host", T0),
                     BROKER_ERR_NOT_FOUND);
    ck_assert_int_eq(broker_release(broker, a, "shared", T0),
                     BROKER_ERR_NOT_FOUND);
    ck_assert_uint_eq(network_get_peers(n), 1);
    ck_assert(peer_holds(b, n));
    ck_assert_uint_eq(configs.lookups, 1);
}
END_TEST

START_TEST(test_release_keeps_the_other_networks) {
    struct peer *a = connect_root(100);
    const struct network *n1 = acquire_ok(a, "net1", T0);
    const struct network *n2 = acquire_ok(a, "net2", T0);
    const struct network *n3 = acquire_ok(a, "net3", T0);

    ck_assert_int_eq(broker_release(broker, a, "net1", T0), BROKER_OK);
    ck_assert_uint_eq(peer_get_network_count(a), 2);
    ck_assert(!peer_holds(a, n1));
    ck_assert(peer_holds(a, n2));
    ck_assert(peer_holds(a, n3));
    // The freed slot is usable: 8 distinct networks again.
    for (int i = 3; i < PEER_MAX_NETWORKS + 1; i++)
        acquire_ok(a, fake_open_names[i], T0);
    ck_assert_uint_eq(peer_get_network_count(a), PEER_MAX_NETWORKS);
}
END_TEST

START_TEST(test_backend_failure_is_create_failure) {
    struct peer *a = connect_root(100);
    const struct network *out = SENTINEL;

    backend.fail_create = true;
    ck_assert_int_eq(broker_acquire(broker, a, "shared", T0, &out),
                     BROKER_ERR_CREATE_FAILURE);
    ck_assert_ptr_eq(out, SENTINEL);
    ck_assert_uint_eq(broker_network_count(broker), 0);
    ck_assert_ptr_null(broker_network_first(broker));
    ck_assert_uint_eq(peer_get_network_count(a), 0);
    ck_assert_uint_eq(broker_next_deadline(broker), NO_DEADLINE);

    // Nothing is stuck: the next attempt creates it.
    backend.fail_create = false;
    ck_assert_uint_eq(network_get_peers(acquire_ok(a, "shared", T0 + 1)), 1);
    ck_assert_uint_eq(backend.creates, 1);
}
END_TEST

START_TEST(test_invalid_config_is_create_failure) {
    struct peer *a = connect_root(100);
    const struct network *out = SENTINEL;

    ck_assert_int_eq(broker_acquire(broker, a, "bad", T0, &out),
                     BROKER_ERR_CREATE_FAILURE);
    ck_assert_ptr_eq(out, SENTINEL);
    ck_assert_uint_eq(backend.creates, 0);
    ck_assert_uint_eq(broker_network_count(broker), 0);
    ck_assert_uint_eq(peer_get_network_count(a), 0);
}
END_TEST

START_TEST(test_not_allowed_creates_nothing) {
    struct peer *a = connect_peer(100, FAKE_USER_UID, FAKE_USER_GID);
    const struct network *out = SENTINEL;

    ck_assert_int_eq(broker_acquire(broker, a, "restricted", T0, &out),
                     BROKER_ERR_NOT_ALLOWED);
    ck_assert_ptr_eq(out, SENTINEL);
    ck_assert_uint_eq(backend.creates, 0);
    ck_assert_uint_eq(broker_network_count(broker), 0);
    ck_assert_uint_eq(peer_get_network_count(a), 0);
}
END_TEST

START_TEST(test_not_allowed_on_existing_network) {
    struct peer *root = connect_root(100);
    struct peer *a = connect_peer(101, FAKE_USER_UID, FAKE_USER_GID);
    const struct network *n = acquire_ok(root, "restricted", T0);
    const struct network *out = SENTINEL;

    ck_assert_int_eq(broker_acquire(broker, a, "restricted", T0, &out),
                     BROKER_ERR_NOT_ALLOWED);
    ck_assert_ptr_eq(out, SENTINEL);
    ck_assert_uint_eq(network_get_peers(n), 1);
    ck_assert_uint_eq(peer_get_network_count(a), 0);

    // Nor may it keep an unused network alive.
    broker_peer_disconnect(broker, root, T0 + 1);
    ck_assert_int_eq(broker_acquire(broker, a, "restricted", T0 + 2, &out),
                     BROKER_ERR_NOT_ALLOWED);
    ck_assert_uint_eq(broker_next_deadline(broker), T0 + 1 + IDLE);
}
END_TEST

START_TEST(test_allowed_by_uid) {
    struct peer *a = connect_peer(100, FAKE_ALLOWED_UID, FAKE_USER_GID);
    acquire_ok(a, "restricted", T0);
    ck_assert_uint_eq(backend.creates, 1);
}
END_TEST

START_TEST(test_allowed_by_primary_group) {
    struct peer *a = connect_peer(100, FAKE_USER_UID, FAKE_ALLOWED_GID);
    acquire_ok(a, "restricted", T0);
}
END_TEST

START_TEST(test_allowed_by_supplementary_group) {
    struct peer_cred cred = fake_cred(100, FAKE_USER_UID, FAKE_USER_GID);
    struct peer *a = NULL;

    cred.groups[cred.n_groups++] = 4000;
    cred.groups[cred.n_groups++] = FAKE_ALLOWED_SUPPLEMENTARY_GID;
    a = broker_peer_connect(broker, &cred, NULL);
    ck_assert_ptr_nonnull(a);
    acquire_ok(a, "restricted", T0);
}
END_TEST

START_TEST(test_root_is_always_allowed) {
    struct peer *root = connect_root(100);
    acquire_ok(root, "restricted", T0);
}
END_TEST

START_TEST(test_open_network_allows_any_user) {
    struct peer *a = connect_peer(100, 65534, 65534);
    acquire_ok(a, "net1", T0);
}
END_TEST

START_TEST(test_persistent_network_never_expires) {
    struct peer *a = connect_root(100);
    const struct network *n = NULL;

    ck_assert_int_eq(broker_create_persistent(broker, "net1"), BROKER_OK);
    ck_assert_uint_eq(backend.creates, 1);
    n = find_network("net1");
    ck_assert_ptr_nonnull(n);
    ck_assert(network_get_config(n)->persistent);
    ck_assert_uint_eq(network_get_peers(n), 0);
    ck_assert_uint_eq(broker_next_deadline(broker), NO_DEADLINE);

    ck_assert_ptr_eq(acquire_ok(a, "net1", T0), n);
    ck_assert_uint_eq(backend.creates, 1);
    broker_peer_disconnect(broker, a, T0 + 1);
    ck_assert_uint_eq(network_get_peers(n), 0);
    ck_assert_uint_eq(broker_next_deadline(broker), NO_DEADLINE);

    broker_expire(broker, NO_DEADLINE - 1);
    ck_assert_uint_eq(backend.destroys, 0);
    ck_assert_ptr_eq(find_network("net1"), n);
}
END_TEST

START_TEST(test_persistent_of_an_idle_network_cancels_removal) {
    struct peer *a = connect_root(100);
    const struct network *n = acquire_ok(a, "net2", T0);

    ck_assert_int_eq(broker_release(broker, a, "net2", T0), BROKER_OK);
    ck_assert_int_eq(broker_create_persistent(broker, "net2"), BROKER_OK);
    ck_assert_int_eq(broker_create_persistent(broker, "net2"), BROKER_OK);
    ck_assert_uint_eq(backend.creates, 1);
    ck_assert_ptr_eq(find_network("net2"), n);
    ck_assert_uint_eq(broker_next_deadline(broker), NO_DEADLINE);
    broker_expire(broker, T0 + 10 * IDLE);
    ck_assert_uint_eq(backend.destroys, 0);
}
END_TEST

START_TEST(test_persistent_failures_create_nothing) {
    ck_assert_int_eq(broker_create_persistent(broker, "nosuch"),
                     BROKER_ERR_NOT_FOUND);
    ck_assert_int_eq(broker_create_persistent(broker, "bad"),
                     BROKER_ERR_CREATE_FAILURE);
    backend.fail_create = true;
    ck_assert_int_eq(broker_create_persistent(broker, "shared"),
                     BROKER_ERR_CREATE_FAILURE);
    ck_assert_uint_eq(backend.creates, 0);
    ck_assert_uint_eq(broker_network_count(broker), 0);
}
END_TEST

START_TEST(test_free_destroys_everything) {
    struct peer *a = connect_root(100);

    acquire_ok(a, "shared", T0);
    acquire_ok(a, "net1", T0);
    ck_assert_int_eq(broker_release(broker, a, "net1", T0), BROKER_OK);
    ck_assert_int_eq(broker_create_persistent(broker, "net2"), BROKER_OK);

    broker_free(broker);
    broker = NULL;
    ck_assert_uint_eq(backend.destroys, 3);
    ck_assert_uint_eq(backend.live, 0);
}
END_TEST

// ---- Ports and adoption (issue 12) ------------------------------------

START_TEST(test_ports_keep_an_unused_network) {
    struct peer *a = connect_root(100);
    const struct network *n = acquire_ok(a, "shared", T0);

    broker_network_ports_changed(broker, "shared", true, T0 + 1);
    ck_assert(network_get_has_ports(n));
    broker_peer_disconnect(broker, a, T0 + 2);
    // No peer, but a VM's port: in use.
    ck_assert_uint_eq(network_get_idle_deadline(n), NO_DEADLINE);
    broker_expire(broker, T0 + 10 * IDLE);
    ck_assert_uint_eq(backend.destroys, 0);
    // The last port goes: the idle delay starts from then.
    broker_network_ports_changed(broker, "shared", false, T0 + 20 * IDLE);
    ck_assert_uint_eq(network_get_idle_deadline(n), T0 + 21 * IDLE);
    broker_expire(broker, T0 + 21 * IDLE - 1);
    ck_assert_uint_eq(backend.destroys, 0);
    broker_expire(broker, T0 + 21 * IDLE);
    ck_assert_uint_eq(backend.destroys, 1);
}
END_TEST

START_TEST(test_ports_during_idle_delay_cancel_it) {
    struct peer *a = connect_root(100);
    const struct network *n = acquire_ok(a, "host", T0);

    broker_peer_disconnect(broker, a, T0);
    ck_assert_uint_eq(network_get_idle_deadline(n), T0 + IDLE);
    broker_network_ports_changed(broker, "host", true, T0 + 1);
    ck_assert_uint_eq(network_get_idle_deadline(n), NO_DEADLINE);
    ck_assert_uint_eq(broker_next_deadline(broker), NO_DEADLINE);
    // A peer that leaves while ports remain starts nothing either.
    a = connect_root(101);
    acquire_ok(a, "host", T0 + 2);
    ck_assert_int_eq(broker_release(broker, a, "host", T0 + 3), BROKER_OK);
    ck_assert_uint_eq(network_get_idle_deadline(n), NO_DEADLINE);
    // Unknown names are ignored.
    broker_network_ports_changed(broker, "nosuch", true, T0 + 4);
}
END_TEST

START_TEST(test_adopt_registers_a_ready_network) {
    struct network_config config;
    struct network_info info;
    struct fake_handle *h = fake_adopted_handle(&backend, "shared", &info);
    const struct network *n, *got;
    struct peer *a;

    ck_assert(network_config_builtin("shared", &config));
    ck_assert_int_eq(broker_adopt(broker, &config, &info, h, true, T0),
                     BROKER_OK);
    n = find_network("shared");
    ck_assert_ptr_nonnull(n);
    ck_assert_int_eq(network_get_state(n), NETWORK_READY);
    ck_assert_str_eq(network_get_info(n)->uuid, info.uuid);
    ck_assert_uint_eq(network_get_idle_deadline(n), NO_DEADLINE);
    // A client re-acquiring gets the same instance: nothing is created.
    a = connect_root(100);
    got = acquire_ok(a, "shared", T0 + 1);
    ck_assert_ptr_eq(got, n);
    ck_assert_uint_eq(backend.creates, 1);
    // Adopting a name that runs is refused.
    ck_assert_int_eq(broker_adopt(broker, &config, &info, h, false, T0),
                     BROKER_ERR_INVALID_REQUEST);
    broker_peer_disconnect(broker, a, T0 + 2);
    broker_network_ports_changed(broker, "shared", false, T0 + 3);
    broker_expire(broker, T0 + 3 + IDLE);
    ck_assert_uint_eq(backend.destroys, 1);
    ck_assert_ptr_null(find_network("shared"));
}
END_TEST

START_TEST(test_adopt_without_ports_starts_the_idle_delay) {
    struct network_config config;
    struct network_info info;
    struct fake_handle *h = fake_adopted_handle(&backend, "host", &info);

    ck_assert(network_config_builtin("host", &config));
    ck_assert_int_eq(broker_adopt(broker, &config, &info, h, false, T0),
                     BROKER_OK);
    ck_assert_uint_eq(broker_next_deadline(broker), T0 + IDLE);
}
END_TEST

START_TEST(test_adopted_interface_counts_for_its_user) {
    struct network_config config;
    struct network_info info;
    struct fake_handle *h = fake_adopted_handle(&backend, "shared", &info);
    const struct network *n;
    struct interface_info iface;
    struct peer *p;
    int fd = -1;

    ck_assert(network_config_builtin("shared", &config));
    ck_assert_int_eq(broker_adopt(broker, &config, &info, h, true, T0),
                     BROKER_OK);
    // fif0 exists: index 0 of the user is taken.
    backend.interface_alive[0] = true;
    backend.interfaces_opened = 1;
    broker_adopt_interface(broker, FAKE_USER_UID, "shared", 0, "fif0");
    n = find_network("shared");
    ck_assert_uint_eq(broker_network_interfaces(broker, n), 1);
    p = connect_peer(100, FAKE_USER_UID, FAKE_USER_GID);
    ck_assert_int_eq(
        broker_open_interface(broker, p, "shared", T0 + 1, &n, &iface, &fd),
        BROKER_OK);
    ck_assert_uint_eq(backend.last_index, 1);
    close(fd);
}
END_TEST

START_TEST(test_free_leaves_networks_with_ports) {
    struct peer *a = connect_root(100);

    acquire_ok(a, "shared", T0);
    acquire_ok(a, "host", T0);
    broker_network_ports_changed(broker, "shared", true, T0);
    broker_free(broker);
    broker = NULL;
    ck_assert_uint_eq(backend.leaves, 1);
    ck_assert_uint_eq(backend.abandons, 1);
    ck_assert_uint_eq(backend.live, 0);
}
END_TEST

START_TEST(test_free_null) { broker_free(NULL); }
END_TEST

static bool peer_listed(const struct peer *peer) {
    for (const struct peer *p = broker_peer_first(broker); p;
         p = broker_peer_next(p)) {
        if (p == peer)
            return true;
    }
    return false;
}

static unsigned listed_peers(void) {
    unsigned n = 0;
    for (const struct peer *p = broker_peer_first(broker); p;
         p = broker_peer_next(p))
        n++;
    return n;
}

START_TEST(test_peer_count_and_list) {
    struct peer *p[4];

    ck_assert_uint_eq(broker_peer_count(broker), 0);
    ck_assert_ptr_null(broker_peer_first(broker));
    for (int i = 0; i < 4; i++)
        p[i] = connect_peer(100 + i, FAKE_USER_UID + (uint32_t)i, 0);
    ck_assert_uint_eq(broker_peer_count(broker), 4);
    ck_assert_uint_eq(listed_peers(), 4);
    ck_assert_int_eq(peer_get_cred(p[2])->pid, 102);
    ck_assert_uint_eq(peer_get_cred(p[2])->uid, FAKE_USER_UID + 2);

    // Unlinking from the middle, both ends and the last one left.
    broker_peer_disconnect(broker, p[1], T0);
    ck_assert_uint_eq(broker_peer_count(broker), 3);
    ck_assert_uint_eq(listed_peers(), 3);
    ck_assert(!peer_listed(p[1]));
    broker_peer_disconnect(broker, p[0], T0);
    broker_peer_disconnect(broker, p[3], T0);
    ck_assert_uint_eq(broker_peer_count(broker), 1);
    ck_assert_uint_eq(listed_peers(), 1);
    ck_assert(peer_listed(p[2]));
    broker_peer_disconnect(broker, p[2], T0);
    ck_assert_uint_eq(broker_peer_count(broker), 0);
    ck_assert_ptr_null(broker_peer_first(broker));
}
END_TEST

START_TEST(test_network_count_and_creation_order) {
    struct peer *a = connect_root(100);
    const char *names[] = {"net3", "shared", "net1", "host"};
    const struct network *n = NULL;

    for (size_t i = 0; i < 4; i++) {
        acquire_ok(a, names[i], T0);
        ck_assert_uint_eq(broker_network_count(broker), i + 1);
    }
    n = broker_network_first(broker);
    for (size_t i = 0; i < 4; i++, n = broker_network_next(n)) {
        ck_assert_ptr_nonnull(n);
        ck_assert_str_eq(network_get_name(n), names[i]);
    }
    ck_assert_ptr_null(n);
}
END_TEST

START_TEST(test_huge_idle_delay_does_not_wrap) {
    struct fake_backend own_backend = {0};
    struct fake_configs own_configs = {0};
    struct broker_options options = {
        .backend = &fake_backend_ops,
        .backend_ctx = &own_backend,
        .configs = &fake_config_ops,
        .configs_ctx = &own_configs,
        .idle_usec = UINT64_MAX - 10,
    };
    struct broker *b = broker_new(&options);
    struct peer_cred cred = fake_cred(100, 0, 0);
    struct peer *a = NULL;
    const struct network *out = NULL;

    ck_assert_ptr_nonnull(b);
    a = broker_peer_connect(b, &cred, NULL);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(broker_acquire(b, a, "shared", T0, &out), BROKER_OK);
    broker_peer_disconnect(b, a, T0);
    ck_assert_uint_gt(broker_next_deadline(b), T0);
    broker_expire(b, T0 + 1000 * (uint64_t)IDLE);
    ck_assert_uint_eq(own_backend.destroys, 0);
    broker_free(b);
    ck_assert_uint_eq(own_backend.destroys, 1);
}
END_TEST

// Opens an interface for peer on name and closes the descriptor at once
// (the fake device stays "alive" until the test says otherwise).
static int open_iface(struct peer *peer, const char *name,
                      struct interface_info *info) {
    const struct network *network = NULL;
    int fd = -1;
    int status =
        broker_open_interface(broker, peer, name, 0, &network, info, &fd);
    if (status == BROKER_OK) {
        ck_assert_int_ge(fd, 0);
        ck_assert_ptr_eq(network, find_network(name));
        close(fd);
    } else {
        ck_assert_int_eq(fd, -1);
    }
    return status;
}

START_TEST(test_open_interface_acquires_the_network) {
    struct peer *peer = connect_peer(10, FAKE_USER_UID, FAKE_USER_GID);
    struct interface_info info;

    ck_assert_int_eq(open_iface(peer, "shared", &info), BROKER_OK);
    ck_assert_str_eq(info.name, "fif0");
    ck_assert(peer_holds(peer, find_network("shared")));
    ck_assert_uint_eq(network_get_peers(find_network("shared")), 1);
}
END_TEST

START_TEST(test_two_connections_of_one_user_get_distinct_indexes) {
    struct peer *a = connect_peer(10, FAKE_USER_UID, FAKE_USER_GID);
    struct peer *b = connect_peer(11, FAKE_USER_UID, FAKE_USER_GID);
    struct peer *other = connect_peer(12, FAKE_USER_UID + 1, FAKE_USER_GID);
    struct interface_info info;

    ck_assert_int_eq(open_iface(a, "shared", &info), BROKER_OK);
    ck_assert_uint_eq(backend.last_index, 0);
    // Same user, another connection: a second VM must get another MAC.
    ck_assert_int_eq(open_iface(b, "shared", &info), BROKER_OK);
    ck_assert_uint_eq(backend.last_index, 1);
    // Another user numbers its own VMs from 0.
    ck_assert_int_eq(open_iface(other, "shared", &info), BROKER_OK);
    ck_assert_uint_eq(backend.last_index, 0);
    // Another network numbers from 0 as well.
    ck_assert_int_eq(open_iface(a, "host", &info), BROKER_OK);
    ck_assert_uint_eq(backend.last_index, 0);
    // When the first VM lets its interface go, its index is free again:
    // a VM started again gets its MAC back.
    backend.interface_alive[0] = false;
    ck_assert_int_eq(open_iface(b, "shared", &info), BROKER_OK);
    ck_assert_uint_eq(backend.last_index, 0);
}
END_TEST

START_TEST(test_interface_limit_per_connection) {
    struct peer *peer = connect_peer(10, FAKE_USER_UID, FAKE_USER_GID);
    struct interface_info info;

    for (int i = 0; i < PEER_MAX_INTERFACES; i++)
        ck_assert_int_eq(open_iface(peer, "shared", &info), BROKER_OK);
    ck_assert_int_eq(open_iface(peer, "shared", &info), BROKER_ERR_INTERNAL);
    ck_assert_uint_eq(backend.interfaces_opened, PEER_MAX_INTERFACES);
    // A device that is gone no longer counts.
    backend.interface_alive[3] = false;
    ck_assert_int_eq(open_iface(peer, "shared", &info), BROKER_OK);
}
END_TEST

START_TEST(test_interface_limit_per_user) {
    struct interface_info info;
    int opened = 0;

    // Many connections of one user cannot get past the user's limit.
    for (int c = 0; opened < USER_MAX_INTERFACES; c++) {
        struct peer *peer = connect_peer(100 + c, FAKE_USER_UID, FAKE_USER_GID);
        for (int i = 0; i < PEER_MAX_INTERFACES && opened < USER_MAX_INTERFACES;
             i++, opened++)
            ck_assert_int_eq(open_iface(peer, "shared", &info), BROKER_OK);
    }
    struct peer *late = connect_peer(999, FAKE_USER_UID, FAKE_USER_GID);
    ck_assert_int_eq(open_iface(late, "shared", &info), BROKER_ERR_INTERNAL);
    // The failed call released what it acquired.
    ck_assert(!peer_holds(late, find_network("shared")));
    // Another user is not affected.
    struct peer *other = connect_peer(1000, FAKE_USER_UID + 1, FAKE_USER_GID);
    ck_assert_int_eq(open_iface(other, "shared", &info), BROKER_OK);
}
END_TEST

START_TEST(test_failed_interface_leaves_the_peer_as_it_was) {
    struct peer *peer = connect_peer(10, FAKE_USER_UID, FAKE_USER_GID);
    struct interface_info info;

    backend.fail_interface = true;
    // Not held before: the reference the call took is given back.
    ck_assert_int_eq(open_iface(peer, "shared", &info),
                     BROKER_ERR_CREATE_FAILURE);
    ck_assert(!peer_holds(peer, find_network("shared")));
    ck_assert_uint_eq(network_get_peers(find_network("shared")), 0);
    // Held before: it stays held.
    acquire_ok(peer, "host", 0);
    ck_assert_int_eq(open_iface(peer, "host", &info),
                     BROKER_ERR_CREATE_FAILURE);
    ck_assert(peer_holds(peer, find_network("host")));
    // Errors of the acquire itself are passed on.
    backend.fail_interface = false;
    ck_assert_int_eq(open_iface(peer, "nosuch", &info), BROKER_ERR_NOT_FOUND);
}
END_TEST

static Suite *broker_suite(void) {
    Suite *s = suite_create("broker");
    TCase *acquire = tcase_create("acquire");
    TCase *idle = tcase_create("idle");
    TCase *release = tcase_create("release");
    TCase *failure = tcase_create("failure");
    TCase *policy = tcase_create("policy");
    TCase *lifetime = tcase_create("lifetime");
    TCase *interfaces = tcase_create("interfaces");

    tcase_add_checked_fixture(acquire, setup, teardown);
    tcase_add_test(acquire, test_acquire_creates_on_first_use);
    tcase_add_test(acquire, test_second_peer_gets_same_network);
    tcase_add_test(acquire, test_same_peer_acquiring_many_times_counts_once);
    tcase_add_test(acquire, test_unknown_name_is_not_found);
    tcase_add_test(acquire, test_ninth_distinct_network_is_internal_error);
    tcase_add_test(acquire,
                   test_ninth_network_existing_elsewhere_is_not_referenced);
    tcase_add_test(acquire, test_network_count_and_creation_order);
    suite_add_tcase(s, acquire);

    tcase_add_checked_fixture(idle, setup, teardown);
    tcase_add_test(idle,
                   test_disconnect_drops_references_and_starts_idle_delay);
    tcase_add_test(idle, test_expire_respects_the_deadline);
    tcase_add_test(idle, test_expire_late_removes);
    tcase_add_test(idle, test_expire_keeps_networks_in_use);
    tcase_add_test(idle, test_next_deadline_is_the_earliest);
    tcase_add_test(idle, test_acquire_during_idle_delay_reuses_the_instance);
    tcase_add_test(idle, test_acquire_after_removal_creates_a_new_instance);
    tcase_add_test(idle, test_huge_idle_delay_does_not_wrap);
    tcase_add_test(idle, test_ports_keep_an_unused_network);
    tcase_add_test(idle, test_ports_during_idle_delay_cancel_it);
    tcase_add_test(idle, test_adopt_registers_a_ready_network);
    tcase_add_test(idle, test_adopt_without_ports_starts_the_idle_delay);
    tcase_add_test(idle, test_adopted_interface_counts_for_its_user);
    tcase_add_test(idle, test_free_leaves_networks_with_ports);
    suite_add_tcase(s, idle);

    tcase_add_checked_fixture(release, setup, teardown);
    tcase_add_test(release, test_release_drops_one_reference);
    tcase_add_test(release, test_release_of_network_not_held_is_not_found);
    tcase_add_test(release, test_release_keeps_the_other_networks);
    suite_add_tcase(s, release);

    tcase_add_checked_fixture(failure, setup, teardown);
    tcase_add_test(failure, test_backend_failure_is_create_failure);
    tcase_add_test(failure, test_invalid_config_is_create_failure);
    suite_add_tcase(s, failure);

    tcase_add_checked_fixture(policy, setup, teardown);
    tcase_add_test(policy, test_not_allowed_creates_nothing);
    tcase_add_test(policy, test_not_allowed_on_existing_network);
    tcase_add_test(policy, test_allowed_by_uid);
    tcase_add_test(policy, test_allowed_by_primary_group);
    tcase_add_test(policy, test_allowed_by_supplementary_group);
    tcase_add_test(policy, test_root_is_always_allowed);
    tcase_add_test(policy, test_open_network_allows_any_user);
    suite_add_tcase(s, policy);

    tcase_add_checked_fixture(lifetime, setup, teardown);
    tcase_add_test(lifetime, test_persistent_network_never_expires);
    tcase_add_test(lifetime,
                   test_persistent_of_an_idle_network_cancels_removal);
    tcase_add_test(lifetime, test_persistent_failures_create_nothing);
    tcase_add_test(lifetime, test_free_destroys_everything);
    tcase_add_test(lifetime, test_free_null);
    tcase_add_test(lifetime, test_peer_count_and_list);

    tcase_add_checked_fixture(interfaces, setup, teardown);
    tcase_add_test(interfaces, test_open_interface_acquires_the_network);
    tcase_add_test(interfaces,
                   test_two_connections_of_one_user_get_distinct_indexes);
    tcase_add_test(interfaces, test_interface_limit_per_connection);
    tcase_add_test(interfaces, test_interface_limit_per_user);
    tcase_add_test(interfaces, test_failed_interface_leaves_the_peer_as_it_was);
    suite_add_tcase(s, interfaces);
    suite_add_tcase(s, lifetime);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(broker_suite());
    int failed;

    // The core logs every acquire and release; only errors help here.
    log_set_level(LOG_LEVEL_ERROR);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
