// SPDX-License-Identifier: Apache-2.0
// Allow-lists: which peers may use which network, by uid and by group.
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define IDLE "60"

static struct harness_broker *broker;

static void setup(void) { broker = harness_test_setup(); }

static void teardown(void) {
    harness_broker_free(broker);
    broker = NULL;
}

static void write_config(const char *name, const char *text) {
    ck_assert(harness_broker_write_config(broker, name, text));
}

// Acquires the network named by arg as an unprivileged peer.
static int acquire_one(void *arg) {
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_return_t status;

    if (c == NULL)
        return 100;
    status = harness_acquire(c, arg, NULL);
    vmnet_broker_connection_close(c);
    return (int)status;
}

static int acquire_as_nobody(const char *name) {
    return harness_run_unprivileged(acquire_one, (void *)name);
}

START_TEST(test_not_allowed_before_and_after_creation) {
    write_config("private",
                 "{\"mode\": \"host\", \"allowed_users\": [\"root\"]}");
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *root = harness_connect(broker);

    ck_assert_ptr_nonnull(root);
    // Refused, and not created on that peer's behalf either.
    ck_assert_int_eq(acquire_as_nobody("private"), VMNET_BROKER_NOT_ALLOWED);
    ck_assert(!harness_link_exists("vmb-private"));
    ck_assert_int_eq(harness_network_peers(broker, "private"), -1);
    ck_assert(harness_broker_log_count(broker, "uid 65534]") > 0);

    // Root is always allowed; once it exists, still refused to others.
    ck_assert_int_eq(harness_acquire(root, "private", NULL),
                     VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(acquire_as_nobody("private"), VMNET_BROKER_NOT_ALLOWED);
    ck_assert_int_eq(harness_network_peers(broker, "private"), 1);
    vmnet_broker_connection_close(root);
}
END_TEST

// An explicitly empty list is root only: it once opened the network to
// everyone, as if no list had been written.
START_TEST(test_empty_allow_list_is_root_only) {
    vmnet_broker_connection_t *root;

    write_config("nobody-users", "{\"mode\": \"host\", \"allowed_users\": []}");
    write_config("nobody-groups",
                 "{\"mode\": \"host\", \"allowed_groups\": []}");
    harness_start(broker, IDLE);
    ck_assert_int_eq(acquire_as_nobody("nobody-users"),
                     VMNET_BROKER_NOT_ALLOWED);
    ck_assert_int_eq(acquire_as_nobody("nobody-groups"),
                     VMNET_BROKER_NOT_ALLOWED);
    root = harness_connect(broker);
    ck_assert_ptr_nonnull(root);
    ck_assert_int_eq(harness_acquire(root, "nobody-users", NULL),
                     VMNET_BROKER_SUCCESS);
    vmnet_broker_connection_close(root);
}
END_TEST

START_TEST(test_open_networks_allow_everyone) {
    write_config("open", "{\"mode\": \"shared\"}");
    harness_start(broker, IDLE);

    ck_assert_int_eq(acquire_as_nobody("shared"), VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(acquire_as_nobody("host"), VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(acquire_as_nobody("open"), VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(acquire_as_nobody("nosuch"), VMNET_BROKER_NOT_FOUND);
}
END_TEST

START_TEST(test_allowed_users) {
    write_config("numeric-others",
                 "{\"mode\": \"host\", \"allowed_users\": [0, 1000]}");
    write_config("numeric-nobody",
                 "{\"mode\": \"host\", \"allowed_users\": [1000, 65534]}");
    write_config("named-nobody",
                 "{\"mode\": \"host\", \"allowed_users\": [\"nobody\"]}");
    write_config("named-root",
                 "{\"mode\": \"host\", \"allowed_users\": [\"root\", 0]}");
    harness_start(broker, IDLE);

    ck_assert_int_eq(acquire_as_nobody("numeric-others"),
                     VMNET_BROKER_NOT_ALLOWED);
    ck_assert_int_eq(acquire_as_nobody("named-root"), VMNET_BROKER_NOT_ALLOWED);
    ck_assert_int_eq(acquire_as_nobody("numeric-nobody"), VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(acquire_as_nobody("named-nobody"), VMNET_BROKER_SUCCESS);
}
END_TEST

START_TEST(test_allowed_groups) {
    write_config("named-group",
                 "{\"mode\": \"host\", \"allowed_groups\": [\"nogroup\"]}");
    write_config("numeric-group",
                 "{\"mode\": \"host\", \"allowed_groups\": [65534]}");
    write_config("root-group",
                 "{\"mode\": \"host\", \"allowed_groups\": [\"root\"]}");
    // Either list admits the peer.
    write_config("user-or-group",
                 "{\"mode\": \"host\", \"allowed_users\": [\"root\"], "
                 "\"allowed_groups\": [\"nogroup\"]}");
    harness_start(broker, IDLE);

    ck_assert_int_eq(acquire_as_nobody("named-group"), VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(acquire_as_nobody("numeric-group"), VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(acquire_as_nobody("user-or-group"), VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(acquire_as_nobody("root-group"), VMNET_BROKER_NOT_ALLOWED);
}
END_TEST

// As nobody on one connection: refused, then served; status shows this
// peer as itself. Returns 0, or the number of the step that went wrong.
static int refused_then_served(void *arg) {
    vmnet_broker_connection_t *c = harness_connect(broker);
    char *text = NULL;
    json_t *status = NULL;
    int step = 1;

    (void)arg;
    if (c == NULL)
        goto out;
    step = 2;
    if (harness_acquire(c, "private", NULL) != VMNET_BROKER_NOT_ALLOWED)
        goto out;
    step = 3;
    if (harness_acquire(c, "shared", NULL) != VMNET_BROKER_SUCCESS)
        goto out;
    step = 4;
    if (vmnet_broker_connection_status(c, &text) != VMNET_BROKER_SUCCESS)
        goto out;
    step = 5;
    status = json_loads(text, 0, NULL);
    if (!harness_status_pid_holds(status, getpid(), "shared") ||
        harness_status_count_pid(status, getpid()) != 1)
        goto out;
    step = 6;
    json_t *peers = json_object_get(status, "peers");
    size_t i;
    json_t *peer;
    json_array_foreach(peers, i, peer) {
        if (json_integer_value(json_object_get(peer, "pid")) == getpid() &&
            json_integer_value(json_object_get(peer, "uid")) != HARNESS_NOBODY)
            goto out;
    }
    step = 7;
    if (harness_acquire(c, "private", NULL) != VMNET_BROKER_NOT_ALLOWED)
        goto out;
    step = 0;
out:
    json_decref(status);
    free(text);
    vmnet_broker_connection_close(c);
    return step;
}

START_TEST(test_refusal_keeps_connection) {
    write_config("private",
                 "{\"mode\": \"host\", \"allowed_users\": [\"root\"]}");
    harness_start(broker, IDLE);

    ck_assert_int_eq(harness_run_unprivileged(refused_then_served, NULL), 0);
}
END_TEST

static Suite *policy_suite(void) {
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("policy");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_not_allowed_before_and_after_creation);
    tcase_add_test(tc, test_open_networks_allow_everyone);
    tcase_add_test(tc, test_empty_allow_list_is_root_only);
    tcase_add_test(tc, test_allowed_users);
    tcase_add_test(tc, test_allowed_groups);
    tcase_add_test(tc, test_refusal_keeps_connection);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(policy_suite());
}
