// SPDX-License-Identifier: Apache-2.0
// The core over a backend whose creations and removals end later, driven
// step by step: waiters, fan-out, disconnects and removal races.
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/broker.h"
#include "fake_backend.h"

#define T0 1000000u
#define IDLE FAKE_IDLE_USEC

static struct fake_backend backend;
static struct fake_configs configs;
static struct broker *broker;

// One request's answer, as a transport would receive it.
struct answer {
    unsigned calls;
    struct broker_result result;
};

static void on_answer(void *data, const struct broker_result *result) {
    struct answer *a = data;
    a->calls++;
    a->result = *result;
    if (result->fd >= 0)
        close(result->fd);
}

static void setup(void) {
    memset(&backend, 0, sizeof(backend));
    memset(&configs, 0, sizeof(configs));
    backend.async = true;
    broker = fake_broker_new(&backend, &configs);
    ck_assert_ptr_nonnull(broker);
}

static void teardown(void) {
    unsigned creates = backend.creates;
    broker_free(broker);
    broker = NULL;
    // Whatever is pending when the broker stops is abandoned, each handle
    // exactly once.
    ck_assert_uint_eq(backend.live, 0);
    ck_assert_uint_eq(backend.destroys, creates);
    ck_assert_uint_eq(backend.n_pending_creates, 0);
    ck_assert_uint_eq(backend.n_pending_destroys, 0);
}

static struct peer *connect_root(int32_t pid) {
    struct peer_cred cred = fake_cred(pid, FAKE_ROOT_UID, 0);
    struct peer *peer = broker_peer_connect(broker, &cred, NULL);
    ck_assert_ptr_nonnull(peer);
    return peer;
}

static const struct network *find_network(const char *name) {
    for (const struct network *n = broker_network_first(broker); n;
         n = broker_network_next(n)) {
        if (strcmp(network_get_name(n), name) == 0 &&
            network_get_state(n) != NETWORK_REMOVING)
            return n;
    }
    return NULL;
}

START_TEST(test_many_acquirers_share_one_creation) {
    struct peer *peers[8];
    struct answer answers[8] = {{0}};
    const struct network *n;

    for (int i = 0; i < 8; i++) {
        peers[i] = connect_root(100 + i);
        broker_acquire_async(broker, peers[i], "net1", T0, on_answer,
                             &answers[i]);
        // Nobody is answered while the network is being created.
        ck_assert_uint_eq(answers[i].calls, 0);
    }
    ck_assert_uint_eq(backend.creates, 1);
    ck_assert_uint_eq(broker_creations(broker), 1);
    n = find_network("net1");
    ck_assert_ptr_nonnull(n);
    ck_assert_int_eq(network_get_state(n), NETWORK_CREATING);
    // A creating network is never removed for idleness.
    ck_assert_uint_eq(broker_next_deadline(broker), NO_DEADLINE);

    ck_assert(fake_finish_create(&backend, BROKER_OK));
    for (int i = 0; i < 8; i++) {
        ck_assert_uint_eq(answers[i].calls, 1);
        ck_assert_int_eq(answers[i].result.status, BROKER_OK);
        ck_assert_ptr_eq(answers[i].result.network, n);
    }
    ck_assert_int_eq(network_get_state(n), NETWORK_READY);
    ck_assert_uint_eq(network_get_peers(n), 8);
    ck_assert_uint_eq(backend.creates, 1);
}
END_TEST

START_TEST(test_other_requests_answer_while_creating) {
    struct peer *a = connect_root(100);
    struct peer *b = connect_root(101);
    struct answer slow = {0}, fast = {0};

    broker_acquire_async(broker, a, "net1", T0, on_answer, &slow);
    ck_assert_uint_eq(slow.calls, 0);
    // "host" is made at once by a backend that is not busy with net1 ...
    backend.async = false;
    broker_acquire_async(broker, b, "host", T0, on_answer, &fast);
    ck_assert_uint_eq(fast.calls, 1);
    ck_assert_int_eq(fast.result.status, BROKER_OK);
    // ... and a release of something else is answered too.
    ck_assert_int_eq(broker_release(broker, b, "host", T0 + 1), BROKER_OK);
    ck_assert_uint_eq(slow.calls, 0);
    ck_assert(fake_finish_create(&backend, BROKER_OK));
    ck_assert_uint_eq(slow.calls, 1);
    ck_assert_int_eq(slow.result.status, BROKER_OK);
}
END_TEST

START_TEST(test_failure_reaches_every_waiter) {
    struct peer *peers[3];
    struct answer answers[3] = {{0}};

    for (int i = 0; i < 3; i++) {
        peers[i] = connect_root(100 + i);
        broker_acquire_async(broker, peers[i], "net1", T0, on_answer,
                             &answers[i]);
    }
    ck_assert(fake_finish_create(&backend, BROKER_ERR_CREATE_FAILURE));
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_eq(answers[i].calls, 1);
        ck_assert_int_eq(answers[i].result.status, BROKER_ERR_CREATE_FAILURE);
        ck_assert_ptr_null(answers[i].result.network);
        // The slot the request reserved is free again.
        ck_assert_uint_eq(peer_get_network_count(peers[i]), 0);
    }
    ck_assert_uint_eq(broker_network_count(broker), 0);
    // The next acquire tries again.
    broker_acquire_async(broker, peers[0], "net1", T0 + 1, on_answer,
                         &answers[0]);
    ck_assert_uint_eq(backend.creates, 2);
    ck_assert(fake_finish_create(&backend, BROKER_OK));
    ck_assert_int_eq(answers[0].result.status, BROKER_OK);
}
END_TEST

START_TEST(test_disconnect_while_waiting) {
    struct peer *a = connect_root(100);
    struct peer *b = connect_root(101);
    struct answer gone = {0}, stays = {0};
    const struct network *n;

    broker_acquire_async(broker, a, "net1", T0, on_answer, &gone);
    broker_acquire_async(broker, b, "net2", T0, on_answer, &stays);
    broker_peer_disconnect(broker, a, T0 + 10);
    ck_assert_uint_eq(broker_peer_count(broker), 1);
    // The creation still completes; nobody is answered for a.
    ck_assert(fake_finish_create(&backend, BROKER_OK));
    ck_assert_uint_eq(gone.calls, 0);
    n = find_network("net1");
    ck_assert_ptr_nonnull(n);
    ck_assert_int_eq(network_get_state(n), NETWORK_READY);
    ck_assert_uint_eq(network_get_peers(n), 0);
    // Then the idle rule applies: from the completion's time on (the last
    // time the broker saw).
    ck_assert_uint_eq(broker_next_deadline(broker), T0 + 10 + IDLE);
    broker_expire(broker, T0 + 10 + IDLE);
    ck_assert(fake_finish_destroy(&backend));
    ck_assert_ptr_null(find_network("net1"));
    ck_assert(fake_finish_create(&backend, BROKER_OK));
    ck_assert_uint_eq(stays.calls, 1);
}
END_TEST

START_TEST(test_acquire_during_removal_recreates) {
    struct peer *a = connect_root(100);
    struct answer first = {0}, second = {0};
    const struct network *n;
    char uuid[NETWORK_UUID_LEN + 1];

    broker_acquire_async(broker, a, "net1", T0, on_answer, &first);
    ck_assert(fake_finish_create(&backend, BROKER_OK));
    memcpy(uuid, network_get_info(first.result.network)->uuid, sizeof(uuid));
    ck_assert_int_eq(broker_release(broker, a, "net1", T0), BROKER_OK);
    broker_expire(broker, T0 + IDLE);
    ck_assert_uint_eq(backend.n_pending_destroys, 1);

    // The name is being removed: the acquire waits, and no second creation
    // starts while the first instance still owns the bridge.
    broker_acquire_async(broker, a, "net1", T0 + IDLE + 1, on_answer, &second);
    ck_assert_uint_eq(second.calls, 0);
    ck_assert_uint_eq(backend.creates, 1);
    ck_assert_uint_eq(broker_network_count(broker), 2);

    ck_assert(fake_finish_destroy(&backend));
    ck_assert_uint_eq(backend.creates, 2);
    ck_assert_uint_eq(second.calls, 0);
    ck_assert(fake_finish_create(&backend, BROKER_OK));
    ck_assert_uint_eq(second.calls, 1);
    ck_assert_int_eq(second.result.status, BROKER_OK);
    n = second.result.network;
    ck_assert_str_ne(network_get_info(n)->uuid, uuid);
    ck_assert_uint_eq(network_get_peers(n), 1);
    ck_assert_uint_eq(broker_network_count(broker), 1);
}
END_TEST

START_TEST(test_open_interface_waits_for_creation) {
    struct peer *a = connect_root(100);
    struct answer answer = {0};

    broker_open_interface_async(broker, a, "net1", T0, on_answer, &answer);
    ck_assert_uint_eq(answer.calls, 0);
    ck_assert_uint_eq(backend.interfaces_opened, 0);
    ck_assert(fake_finish_create(&backend, BROKER_OK));
    ck_assert_uint_eq(answer.calls, 1);
    ck_assert_int_eq(answer.result.status, BROKER_OK);
    ck_assert_str_eq(answer.result.interface.name, "fif0");
    ck_assert_uint_eq(peer_get_interface_count(a), 1);
}
END_TEST

START_TEST(test_waiting_networks_count_toward_the_limit) {
    static const char *names[] = {"net1", "net2", "net3", "net4", "net5",
                                  "net6", "net7", "net8", "net9"};
    struct peer *a = connect_root(100);
    struct answer answers[9] = {{0}};

    for (int i = 0; i < 9; i++)
        broker_acquire_async(broker, a, names[i], T0, on_answer, &answers[i]);
    // The ninth is refused at once, before any creation ended.
    ck_assert_uint_eq(answers[8].calls, 1);
    ck_assert_int_eq(answers[8].result.status, BROKER_ERR_INTERNAL);
    ck_assert_uint_eq(backend.creates, 8);
    while (fake_finish_create(&backend, BROKER_OK))
        ;
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(answers[i].result.status, BROKER_OK);
}
END_TEST

START_TEST(test_sync_wrapper_reports_pending) {
    struct peer *a = connect_root(100);
    const struct network *n = NULL;

    ck_assert_int_eq(broker_acquire(broker, a, "net1", T0, &n), BROKER_PENDING);
    ck_assert_ptr_null(n);
    // The peer holds it; the creation ends with nobody to answer.
    ck_assert(fake_finish_create(&backend, BROKER_OK));
    ck_assert_uint_eq(network_get_peers(find_network("net1")), 1);
}
END_TEST

START_TEST(test_stop_while_busy_abandons) {
    struct peer *a = connect_root(100);
    struct answer creating = {0}, ready = {0};

    broker_acquire_async(broker, a, "net1", T0, on_answer, &ready);
    ck_assert(fake_finish_create(&backend, BROKER_OK));
    ck_assert_int_eq(broker_release(broker, a, "net1", T0), BROKER_OK);
    broker_expire(broker, T0 + IDLE);
    broker_acquire_async(broker, a, "net2", T0 + IDLE, on_answer, &creating);
    // teardown frees the broker with a removal and a creation pending.
    ck_assert_uint_eq(backend.n_pending_destroys, 1);
    ck_assert_uint_eq(backend.n_pending_creates, 1);
}
END_TEST

START_TEST(test_generation_moves_on_change) {
    struct peer *a = connect_root(100);
    struct answer answer = {0};
    uint64_t g = broker_generation(broker);

    broker_acquire_async(broker, a, "net1", T0, on_answer, &answer);
    ck_assert_uint_gt(broker_generation(broker), g);
    g = broker_generation(broker);
    ck_assert(fake_finish_create(&backend, BROKER_OK));
    ck_assert_uint_gt(broker_generation(broker), g);
}
END_TEST

START_TEST(test_limit_waits_for_closing_interfaces) {
    struct peer *a = connect_root(100);
    struct answer answer = {0};

    backend.async = false;
    for (int i = 0; i < PEER_MAX_INTERFACES; i++) {
        broker_open_interface_async(broker, a, "net1", T0, on_answer, &answer);
        ck_assert_int_eq(answer.result.status, BROKER_OK);
    }
    ck_assert_uint_eq(backend.settles, 0);
    // The client closed one; the backend's copy is still being closed.
    backend.interface_closing[3] = true;
    broker_open_interface_async(broker, a, "net1", T0, on_answer, &answer);
    // At the limit, the core let the backend settle, and the slot was free.
    ck_assert_uint_eq(backend.settles, 1);
    ck_assert_int_eq(answer.result.status, BROKER_OK);
    ck_assert_uint_eq(peer_get_interface_count(a), PEER_MAX_INTERFACES);
    // Nothing closing: still at the limit, refused.
    broker_open_interface_async(broker, a, "net1", T0, on_answer, &answer);
    ck_assert_int_eq(answer.result.status, BROKER_ERR_INTERNAL);
}
END_TEST

// A settle that takes time keeps only that open waiting: another peer is
// answered meanwhile, and a peer that leaves while its open waits is
// dropped cleanly when the settle ends.
START_TEST(test_limit_settle_waits_without_blocking) {
    struct peer *a = connect_root(100);
    struct peer *b = connect_root(101);
    struct answer answer = {0}, waiting = {0}, other = {0};

    backend.async = false;
    for (int i = 0; i < PEER_MAX_INTERFACES; i++) {
        broker_open_interface_async(broker, a, "net1", T0, on_answer, &answer);
        ck_assert_int_eq(answer.result.status, BROKER_OK);
    }
    backend.interface_closing[3] = true;
    backend.async_settle = true;
    broker_open_interface_async(broker, a, "net1", T0, on_answer, &waiting);
    ck_assert_uint_eq(backend.settles, 1);
    ck_assert_uint_eq(waiting.calls, 0);
    // Another peer's request is answered while the settle runs.
    broker_acquire_async(broker, b, "net1", T0, on_answer, &other);
    ck_assert_uint_eq(other.calls, 1);
    ck_assert_int_eq(other.result.status, BROKER_OK);
    ck_assert(fake_finish_settle(&backend));
    ck_assert_uint_eq(waiting.calls, 1);
    ck_assert_int_eq(waiting.result.status, BROKER_OK);

    // At the limit again, and gone before the settle ends.
    backend.interface_closing[5] = true;
    memset(&waiting, 0, sizeof(waiting));
    broker_open_interface_async(broker, a, "net1", T0, on_answer, &waiting);
    ck_assert_uint_eq(backend.settles, 2);
    broker_peer_disconnect(broker, a, T0);
    ck_assert(fake_finish_settle(&backend));
    ck_assert_uint_eq(waiting.calls, 0);
    ck_assert_uint_eq(network_get_peers(find_network("net1")), 1);
}
END_TEST

START_TEST(test_interface_opened_later) {
    struct peer *a = connect_root(100);
    struct peer *b = connect_root(101);
    struct answer first = {0}, gone = {0};

    backend.async = false;
    backend.async_interfaces = true;
    broker_open_interface_async(broker, a, "net1", T0, on_answer, &first);
    ck_assert_uint_eq(first.calls, 0);
    // The slot is taken meanwhile: the peer counts it.
    ck_assert_uint_eq(peer_get_interface_count(a), 1);
    fake_finish_open(&backend);
    ck_assert_uint_eq(first.calls, 1);
    ck_assert_int_eq(first.result.status, BROKER_OK);
    ck_assert_str_eq(peer_get_interface(a, 0)->name, "fif0");

    // A peer that leaves while its interface is made never hears of it;
    // the interface's descriptor goes back to the backend to close (a
    // TAP's last close waits for the kernel: not on the loop).
    backend.async_interfaces = true;
    broker_open_interface_async(broker, b, "net1", T0, on_answer, &gone);
    broker_peer_disconnect(broker, b, T0 + 1);
    ck_assert_uint_eq(backend.fds_dropped, 0);
    fake_finish_open(&backend);
    ck_assert_uint_eq(gone.calls, 0);
    ck_assert_uint_eq(backend.fds_dropped, 1);
    ck_assert_uint_eq(network_get_peers(find_network("net1")), 1);
}
END_TEST

// A file being parsed off the loop: the acquire waits (never answered from
// the old file), other requests are answered meanwhile, a waiter that
// disconnects is dropped, and once parsed the new rules apply.
START_TEST(test_acquire_waits_for_a_parse) {
    struct peer *a = connect_root(100);
    struct peer *b = connect_root(101);
    struct peer_cred nobody = fake_cred(102, 4242, 4242);
    struct peer *c = broker_peer_connect(broker, &nobody, NULL);
    struct answer first = {0}, gone = {0}, refused = {0}, other = {0};

    ck_assert_ptr_nonnull(c);
    configs.pending = true;
    broker_acquire_async(broker, a, "net1", T0, on_answer, &first);
    broker_acquire_async(broker, b, "net1", T0, on_answer, &gone);
    broker_acquire_async(broker, c, "net1", T0, on_answer, &refused);
    ck_assert_uint_eq(first.calls + gone.calls + refused.calls, 0);
    ck_assert_uint_eq(backend.creates, 0);
    // Another network's request is not held behind the parse.
    broker_acquire_async(broker, b, "shared", T0, on_answer, &other);
    ck_assert(fake_finish_create(&backend, BROKER_OK));
    ck_assert_uint_eq(other.calls, 1);
    ck_assert_int_eq(other.result.status, BROKER_OK);
    broker_peer_disconnect(broker, b, T0 + 1);
    // The parse says: net1 is now restricted.
    configs.pending = false;
    configs.net1_restricted = true;
    broker_configs_ready(broker);
    ck_assert_uint_eq(gone.calls, 0);
    ck_assert_uint_eq(refused.calls, 1);
    ck_assert_int_eq(refused.result.status, BROKER_ERR_NOT_ALLOWED);
    // Root is allowed: one creation, answered when it ends.
    ck_assert_uint_eq(first.calls, 0);
    ck_assert(fake_finish_create(&backend, BROKER_OK));
    ck_assert_uint_eq(first.calls, 1);
    ck_assert_int_eq(first.result.status, BROKER_OK);
    ck_assert_uint_eq(backend.creates, 2);
}
END_TEST

// A waiter that waits again (its file is still being parsed) is asked
// again at the next parse, not in a loop.
START_TEST(test_parse_wait_repeats_until_parsed) {
    struct peer *a = connect_root(100);
    struct answer answer = {0};
    unsigned lookups;

    configs.pending = true;
    broker_acquire_async(broker, a, "net2", T0, on_answer, &answer);
    lookups = configs.lookups;
    broker_configs_ready(broker);
    ck_assert_uint_eq(configs.lookups, lookups + 1);
    ck_assert_uint_eq(answer.calls, 0);
    configs.pending = false;
    broker_configs_ready(broker);
    ck_assert(fake_finish_create(&backend, BROKER_OK));
    ck_assert_uint_eq(answer.calls, 1);
    ck_assert_int_eq(answer.result.status, BROKER_OK);
}
END_TEST

int main(void) {
    Suite *s = suite_create("broker_async");
    TCase *tc = tcase_create("async");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_many_acquirers_share_one_creation);
    tcase_add_test(tc, test_other_requests_answer_while_creating);
    tcase_add_test(tc, test_failure_reaches_every_waiter);
    tcase_add_test(tc, test_disconnect_while_waiting);
    tcase_add_test(tc, test_acquire_during_removal_recreates);
    tcase_add_test(tc, test_open_interface_waits_for_creation);
    tcase_add_test(tc, test_waiting_networks_count_toward_the_limit);
    tcase_add_test(tc, test_sync_wrapper_reports_pending);
    tcase_add_test(tc, test_stop_while_busy_abandons);
    tcase_add_test(tc, test_generation_moves_on_change);
    tcase_add_test(tc, test_limit_waits_for_closing_interfaces);
    tcase_add_test(tc, test_limit_settle_waits_without_blocking);
    tcase_add_test(tc, test_interface_opened_later);
    tcase_add_test(tc, test_acquire_waits_for_a_parse);
    tcase_add_test(tc, test_parse_wait_repeats_until_parsed);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
