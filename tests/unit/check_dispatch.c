// SPDX-License-Identifier: Apache-2.0
// The platform-free dispatcher: replies, their order, shared status,
// waiting connections, over the fake asynchronous backend.
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_backend.h"
#include "protocol/dispatch.h"

#define T0 1000000u

static struct fake_backend backend;
static struct fake_configs configs;
static struct broker *broker;
static struct dispatcher *dispatcher;

// What one transport connection was sent.
struct transport {
    unsigned replies;
    char last[8192];
    const char *last_pointer;
    int last_fd;
};

static void on_reply(void *data, const char *text, size_t len, int fd) {
    struct transport *t = data;
    ck_assert_uint_lt(len, sizeof(t->last));
    memcpy(t->last, text, len);
    t->last[len] = '\0';
    t->last_pointer = text;
    t->last_fd = fd;
    if (fd >= 0)
        close(fd);
    t->replies++;
}

static const struct dispatcher_ops ops = {.reply = on_reply};

static void setup(void) {
    memset(&backend, 0, sizeof(backend));
    memset(&configs, 0, sizeof(configs));
    backend.async = true;
    broker = fake_broker_new(&backend, &configs);
    ck_assert_ptr_nonnull(broker);
    dispatcher = dispatcher_new(broker, &ops);
    ck_assert_ptr_nonnull(dispatcher);
}

static void teardown(void) {
    dispatcher_free(dispatcher);
    broker_free(broker);
    ck_assert_uint_eq(backend.live, 0);
}

static struct dispatch_conn *connect_root(struct transport *t, int32_t pid) {
    struct peer_cred cred = fake_cred(pid, FAKE_ROOT_UID, 0);
    struct dispatch_conn *conn = dispatch_connect(dispatcher, &cred, t);
    ck_assert_ptr_nonnull(conn);
    t->last_fd = -1;
    return conn;
}

static void request(struct dispatch_conn *conn, const char *text,
                    uint64_t now) {
    dispatch_request(conn, text, strlen(text), now);
}

// The integer at key in the last reply, or -1.
static long long reply_int(const struct transport *t, const char *key) {
    json_t *root = json_loads(t->last, 0, NULL);
    json_t *value = root ? json_object_get(root, key) : NULL;
    long long n = json_is_integer(value) ? json_integer_value(value) : -1;
    json_decref(root);
    return n;
}

// The string at key in the last reply, or "" (a copy, valid until the next
// call).
static const char *reply_string(const struct transport *t, const char *key) {
    static char text[512];
    json_t *root = json_loads(t->last, 0, NULL);
    json_t *value = root ? json_object_get(root, key) : NULL;

    snprintf(text, sizeof(text), "%s",
             json_is_string(value) ? json_string_value(value) : "");
    json_decref(root);
    return text;
}

#define assert_message(t, part)                                                \
    ck_assert_msg(strstr(reply_string((t), "message"), (part)) != NULL,        \
                  "no \"%s\" in %s", (part), (t)->last)

START_TEST(test_waiting_connection_does_not_hold_others) {
    struct transport ta = {0}, tb = {0};
    struct dispatch_conn *a = connect_root(&ta, 100);
    struct dispatch_conn *b = connect_root(&tb, 101);

    request(a, "{\"command\":\"acquire\",\"network_name\":\"net1\"}", T0);
    ck_assert_uint_eq(ta.replies, 0);
    ck_assert(dispatch_conn_waiting(a));
    // Another connection is answered meanwhile, and sees the creation.
    request(b, "{\"command\":\"status\"}", T0);
    ck_assert_uint_eq(tb.replies, 1);
    ck_assert_ptr_nonnull(strstr(tb.last, "\"state\":\"creating\""));
    ck_assert(!dispatch_conn_waiting(b));

    ck_assert(fake_finish_create(&backend, BROKER_OK));
    ck_assert_uint_eq(ta.replies, 1);
    ck_assert(!dispatch_conn_waiting(a));
    ck_assert_ptr_nonnull(strstr(ta.last, "\"network\""));
    ck_assert_ptr_nonnull(strstr(ta.last, "vmb-fake1"));
    dispatch_disconnect(a, T0 + 1);
    dispatch_disconnect(b, T0 + 1);
}
END_TEST

START_TEST(test_failure_and_disconnect_while_waiting) {
    struct transport ta = {0}, tb = {0};
    struct dispatch_conn *a = connect_root(&ta, 100);
    struct dispatch_conn *b = connect_root(&tb, 101);

    request(a, "{\"command\":\"acquire\",\"network_name\":\"net1\"}", T0);
    request(b, "{\"command\":\"acquire\",\"network_name\":\"net1\"}", T0);
    ck_assert_uint_eq(backend.creates, 1);
    // a goes away while waiting: it gets nothing, b gets the error.
    dispatch_disconnect(a, T0);
    ck_assert(fake_finish_create(&backend, BROKER_ERR_CREATE_FAILURE));
    ck_assert_uint_eq(ta.replies, 0);
    ck_assert_uint_eq(tb.replies, 1);
    ck_assert_int_eq(reply_int(&tb, "error"), BROKER_ERR_CREATE_FAILURE);
    dispatch_disconnect(b, T0 + 1);
}
END_TEST

START_TEST(test_status_is_shared_until_a_change) {
    struct transport ta = {0}, tb = {0};
    struct dispatch_conn *a = connect_root(&ta, 100);
    struct dispatch_conn *b = connect_root(&tb, 101);
    const char *first;

    request(a, "{\"command\":\"status\"}", T0);
    first = ta.last_pointer;
    request(b, "{\"command\":\"status\"}", T0 + 5);
    // Nothing changed (and nothing shows an idle delay): the same text.
    ck_assert_ptr_eq(tb.last_pointer, first);
    ck_assert_str_eq(tb.last, ta.last);
    backend.async = false;
    request(a, "{\"command\":\"acquire\",\"network_name\":\"net1\"}", T0 + 6);
    request(b, "{\"command\":\"status\"}", T0 + 7);
    ck_assert_ptr_nonnull(strstr(tb.last, "net1"));
    ck_assert_ptr_nonnull(strstr(tb.last, "\"creations\":1"));
    dispatch_disconnect(a, T0 + 8);
    dispatch_disconnect(b, T0 + 8);
}
END_TEST

// The reason travels with its request: a failure decided meanwhile for
// another connection does not leak into it, and every waiter of a failed
// creation gets that creation's message.
START_TEST(test_failure_message_reaches_every_waiter) {
    struct transport ta = {0}, tb = {0}, tc = {0};
    struct dispatch_conn *a = connect_root(&ta, 100);
    struct dispatch_conn *b = connect_root(&tb, 101);
    struct dispatch_conn *c = connect_root(&tc, 102);

    request(a, "{\"command\":\"acquire\",\"network_name\":\"net1\"}", T0);
    request(b, "{\"command\":\"acquire\",\"network_name\":\"net1\"}", T0);
    request(c, "{\"command\":\"release\",\"network_name\":\"net2\"}", T0);
    request(c, "{\"command\":\"acquire\",\"network_name\":\"nosuch\"}", T0);
    ck_assert_uint_eq(tc.replies, 2);
    ck_assert_int_eq(reply_int(&tc, "error"), BROKER_ERR_NOT_FOUND);
    assert_message(&tc, "no network named 'nosuch' is configured");
    ck_assert(fake_finish_create(&backend, BROKER_ERR_CREATE_FAILURE));
    ck_assert_uint_eq(ta.replies, 1);
    ck_assert_uint_eq(tb.replies, 1);
    ck_assert_int_eq(reply_int(&ta, "error"), BROKER_ERR_CREATE_FAILURE);
    ck_assert_str_eq(reply_string(&ta, "message"), FAKE_CREATE_MESSAGE);
    ck_assert_str_eq(reply_string(&tb, "message"), FAKE_CREATE_MESSAGE);
    dispatch_disconnect(a, T0 + 1);
    dispatch_disconnect(b, T0 + 1);
    dispatch_disconnect(c, T0 + 1);
}
END_TEST

// Each failure the core or the config source decides says why.
START_TEST(test_error_messages_of_the_core) {
    struct transport t = {0}, u = {0};
    struct dispatch_conn *c = connect_root(&t, 100);
    struct peer_cred cred = fake_cred(200, FAKE_USER_UID, FAKE_USER_GID);
    struct dispatch_conn *user = dispatch_connect(dispatcher, &cred, &u);
    char text[128];

    ck_assert_ptr_nonnull(user);
    u.last_fd = -1;
    backend.async = false;
    request(c, "{\"command\":\"release\",\"network_name\":\"net1\"}", T0);
    assert_message(&t, "this connection does not hold network 'net1'");
    request(c, "{\"command\":\"acquire\",\"network_name\":\"a b\"}", T0);
    ck_assert_int_eq(reply_int(&t, "error"), BROKER_ERR_INVALID_REQUEST);
    assert_message(&t, "A-Z a-z 0-9 _ . -");
    request(c, "{\"command\":\"acquire\",\"network_name\":\"bad\"}", T0);
    ck_assert_int_eq(reply_int(&t, "error"), BROKER_ERR_CREATE_FAILURE);
    assert_message(&t, "invalid configuration: bad.json");
    request(user, "{\"command\":\"acquire\",\"network_name\":\"restricted\"}",
            T0);
    ck_assert_int_eq(reply_int(&u, "error"), BROKER_ERR_NOT_ALLOWED);
    assert_message(&u, "may not use network 'restricted'");

    // Eight networks, then a ninth.
    for (int i = 0; i < PEER_MAX_NETWORKS; i++) {
        snprintf(text, sizeof(text),
                 "{\"command\":\"acquire\",\"network_name\":\"%s\"}",
                 fake_open_names[i]);
        request(c, text, T0);
        ck_assert_int_eq(reply_int(&t, "error"), -1);
    }
    request(c, "{\"command\":\"acquire\",\"network_name\":\"net9\"}", T0);
    ck_assert_int_eq(reply_int(&t, "error"), BROKER_ERR_INTERNAL);
    assert_message(&t, "already holds 8 networks");

    // Interfaces up to the connection's limit, then one more.
    for (int i = 0; i < PEER_MAX_INTERFACES; i++) {
        request(c, "{\"command\":\"open_interface\",\"network_name\":\"net1\"}",
                T0);
        ck_assert_int_ge(t.last_fd, 0);
    }
    request(c, "{\"command\":\"open_interface\",\"network_name\":\"net1\"}",
            T0);
    ck_assert_int_eq(reply_int(&t, "error"), BROKER_ERR_INTERNAL);
    assert_message(&t, "too many interfaces");
    // A TAP the backend cannot make.
    backend.fail_interface = true;
    request(user, "{\"command\":\"open_interface\",\"network_name\":\"net2\"}",
            T0);
    ck_assert_int_eq(reply_int(&u, "error"), BROKER_ERR_CREATE_FAILURE);
    ck_assert_str_eq(reply_string(&u, "message"), FAKE_OPEN_MESSAGE);
    dispatch_disconnect(c, T0 + 1);
    dispatch_disconnect(user, T0 + 1);
}
END_TEST

// The administrator's keys are in the shared status, which is built again
// when the configured networks or the interface counts change.
START_TEST(test_status_admin_keys_follow_changes) {
    struct transport t = {0};
    struct dispatch_conn *c = connect_root(&t, 100);
    const char *before;
    json_t *root, *status, *network;

    backend.async = false;
    request(c, "{\"command\":\"open_interface\",\"network_name\":\"net1\"}",
            T0);
    request(c, "{\"command\":\"status\"}", T0);
    root = json_loads(t.last, 0, NULL);
    ck_assert_ptr_nonnull(root);
    status = json_object_get(root, "status");
    network = json_array_get(json_object_get(status, "networks"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(network, "gateway")),
                     "192.168.65.1");
    ck_assert_int_eq(json_integer_value(json_object_get(network, "mtu")), 1500);
    ck_assert_int_eq(json_integer_value(json_object_get(network, "interfaces")),
                     1);
    ck_assert_uint_eq(json_array_size(json_object_get(status, "configured")),
                      2);
    ck_assert(json_is_string(json_object_get(status, "version")));
    json_decref(root);

    // Shared while nothing changes; a new configured network is a change.
    before = t.last_pointer;
    request(c, "{\"command\":\"status\"}", T0);
    ck_assert_ptr_eq(t.last_pointer, before);
    configs.list_net1 = true;
    configs.generation++;
    request(c, "{\"command\":\"status\"}", T0);
    ck_assert_ptr_nonnull(strstr(t.last, "\"configured\""));
    root = json_loads(t.last, 0, NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(
                          json_object_get(root, "status"), "configured")),
                      3);
    json_decref(root);

    // The VM let its interface go: the core notices at its user's next
    // open, and the status follows.
    backend.interface_alive[0] = false;
    request(c, "{\"command\":\"open_interface\",\"network_name\":\"net1\"}",
            T0);
    request(c, "{\"command\":\"status\"}", T0);
    ck_assert_ptr_nonnull(strstr(t.last, "\"interfaces\":1"));
    backend.interface_alive[1] = false;
    request(c, "{\"command\":\"open_interface\",\"network_name\":\"net1\"}",
            T0);
    request(c, "{\"command\":\"status\"}", T0);
    ck_assert_ptr_nonnull(strstr(t.last, "\"interfaces\":1"));
    dispatch_disconnect(c, T0 + 1);
}
END_TEST

START_TEST(test_release_invalid_and_open_interface) {
    struct transport t = {0};
    struct dispatch_conn *c = connect_root(&t, 100);

    request(c, "{\"command\":\"release\",\"network_name\":\"net1\"}", T0);
    ck_assert_int_eq(reply_int(&t, "error"), BROKER_ERR_NOT_FOUND);
    request(c, "not json", T0);
    ck_assert_int_eq(reply_int(&t, "error"), BROKER_ERR_INVALID_REQUEST);
    request(c, "{\"command\":\"open_interface\",\"network_name\":\"net1\"}",
            T0);
    ck_assert_uint_eq(t.replies, 2);
    ck_assert(fake_finish_create(&backend, BROKER_OK));
    ck_assert_uint_eq(t.replies, 3);
    ck_assert_ptr_nonnull(strstr(t.last, "\"interface\""));
    ck_assert_int_ge(t.last_fd, 0);
    request(c, "{\"command\":\"release\",\"network_name\":\"net1\"}", T0);
    ck_assert_str_eq(t.last, "{\"released\":\"net1\"}");
    dispatch_disconnect(c, T0 + 1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("dispatch");
    TCase *tc = tcase_create("dispatch");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_waiting_connection_does_not_hold_others);
    tcase_add_test(tc, test_failure_and_disconnect_while_waiting);
    tcase_add_test(tc, test_status_is_shared_until_a_change);
    tcase_add_test(tc, test_release_invalid_and_open_interface);
    tcase_add_test(tc, test_failure_message_reaches_every_waiter);
    tcase_add_test(tc, test_error_messages_of_the_core);
    tcase_add_test(tc, test_status_admin_keys_follow_changes);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
