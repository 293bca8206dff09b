// SPDX-License-Identifier: Apache-2.0
// Config files are parsed off the event loop: a parse held back (a slow
// user database) delays only the requests that need that file, never
// status, and a changed file is never answered with its old rules.
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static struct harness_broker *broker;
static char gate[160];

static void setup(void) {
    broker = harness_test_setup();
    snprintf(gate, sizeof(gate), "%s/parse-gate", broker->dir);
    ck_assert_int_eq(setenv("VMNET_BROKER_TEST_PARSE_GATE", gate, 1), 0);
}

static void teardown(void) {
    // Never leave a parse waiting.
    close(open(gate, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    unsetenv("VMNET_BROKER_TEST_PARSE_GATE");
    harness_broker_free(broker);
    broker = NULL;
}

static void open_gate(void) {
    int fd = open(gate, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

    ck_assert_int_ge(fd, 0);
    close(fd);
}

// True when a reply is waiting on fd (never blocks).
static bool reply_waiting(int fd) {
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);

    return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

static long reply_mtu(json_t *reply) {
    return (long)json_integer_value(
        json_object_get(json_object_get(reply, "network"), "mtu"));
}

// Rewrites lab.json as a new file renamed over the old one, as editors do.
static void rewrite_lab(const char *text) {
    char tmp[200], path[200];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s/lab.json.new", broker->config_dir);
    snprintf(path, sizeof(path), "%s/lab.json", broker->config_dir);
    f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(rename(tmp, path), 0);
}

START_TEST(test_status_answers_while_a_parse_is_held) {
    int acquirer, other;
    json_t *reply, *status;

    // Parsed at start, before serving (the gate holds the parser thread
    // only).
    ck_assert(harness_broker_write_config(broker, "lab",
                                          "{\"mode\": \"host\", \"mtu\": "
                                          "1400}\n"));
    harness_start(broker, "60");
    rewrite_lab("{\"mode\": \"host\", \"mtu\": 1300, \"allowed_groups\": "
                "[\"root\"]}\n");
    acquirer = harness_raw_connect(broker->socket_path);
    other = harness_raw_connect(broker->socket_path);
    ck_assert_int_ge(acquirer, 0);
    ck_assert_int_ge(other, 0);
    ck_assert(harness_raw_send(acquirer,
                               "{\"command\":\"acquire\","
                               "\"network_name\":\"lab\"}",
                               strlen("{\"command\":\"acquire\","
                                      "\"network_name\":\"lab\"}")));
    // The parse of the new lab.json is held: another client's status is
    // answered all the same, several times, and so is another network.
    for (int i = 0; i < 3; i++) {
        status = harness_raw_request(other, "{\"command\":\"status\"}");
        ck_assert_ptr_nonnull(status);
        json_decref(status);
    }
    reply = harness_raw_acquire(other, "shared");
    ck_assert_str_eq(harness_reply_network_name(reply), "shared");
    json_decref(reply);
    // The acquire of lab waits for its parse (the gate is still shut): it
    // is not answered from the old file.
    ck_assert(!reply_waiting(acquirer));
    open_gate();
    reply = harness_raw_receive(acquirer);
    ck_assert_ptr_nonnull(reply);
    ck_assert_str_eq(harness_reply_network_name(reply), "lab");
    ck_assert_int_eq(reply_mtu(reply), 1300);
    json_decref(reply);
    close(acquirer);
    close(other);
}
END_TEST

// SIGHUP parses every file again (user and group names too) on the
// parser thread; a lookup meanwhile waits for it, status does not.
START_TEST(test_sighup_parse_off_the_loop) {
    int fd;
    json_t *reply, *status;
    char *text;

    ck_assert(harness_broker_write_config(broker, "lab",
                                          "{\"mode\": \"host\", \"mtu\": "
                                          "1400}\n"));
    harness_start(broker, "60");
    ck_assert(harness_broker_signal(broker, SIGHUP));
    ck_assert(harness_broker_wait_log(broker, "SIGHUP: reloading", 1));
    fd = harness_raw_connect(broker->socket_path);
    ck_assert_int_ge(fd, 0);
    ck_assert(harness_raw_send(fd,
                               "{\"command\":\"leases\","
                               "\"network_name\":\"lab\"}",
                               strlen("{\"command\":\"leases\","
                                      "\"network_name\":\"lab\"}")));
    status = harness_status(broker);
    ck_assert_ptr_nonnull(status);
    // The configured network is still listed while it is parsed again.
    text = json_dumps(status, 0);
    ck_assert_ptr_nonnull(strstr(text, "\"lab\""));
    free(text);
    json_decref(status);
    // The leases of lab wait for its parse (the gate is still shut).
    ck_assert(!reply_waiting(fd));
    open_gate();
    reply = harness_raw_receive(fd);
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(harness_reply_error(reply), -1);
    json_decref(reply);
    close(fd);
}
END_TEST

static Suite *offloop_suite(void) {
    Suite *s = suite_create("config_offloop");
    TCase *tc = tcase_create("config_offloop");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_status_answers_while_a_parse_is_held);
    tcase_add_test(tc, test_sighup_parse_off_the_loop);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(offloop_suite());
}
