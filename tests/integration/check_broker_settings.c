// SPDX-License-Identifier: Apache-2.0
// The broker-wide settings file against the real broker: its pool is used,
// options override it, SIGHUP re-reads it, a broken one stops the start.
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static struct harness_broker *broker;
static char settings[160];

static void setup(void) {
    broker = harness_test_setup();
    snprintf(settings, sizeof(settings), "%s/vmnet-broker.json", broker->dir);
}

static void teardown(void) {
    harness_broker_free(broker);
    broker = NULL;
}

static void write_settings(const char *text) {
    char tmp[200];
    FILE *f;

    // Replaced whole, as an editor or a package would.
    snprintf(tmp, sizeof(tmp), "%s.new", settings);
    f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(tmp, 0644), 0);
    ck_assert_int_eq(rename(tmp, settings), 0);
}

// The subnet of name's acquire reply, on a new connection of its own.
static void acquired_subnet(const char *name, char out[16]) {
    int fd = harness_raw_connect(broker->socket_path);
    json_t *reply;

    ck_assert_int_ge(fd, 0);
    reply = harness_raw_acquire(fd, name);
    ck_assert_ptr_nonnull(reply);
    ck_assert_msg(harness_reply_network_name(reply) != NULL,
                  "acquire %s failed", name);
    snprintf(out, 16, "%s",
             json_string_value(
                 json_object_get(json_object_get(reply, "network"), "subnet")));
    json_decref(reply);
    close(fd);
}

START_TEST(test_pool_from_the_file) {
    const char *const args[] = {"--config", settings, NULL};
    char subnet[16];

    write_settings("{\"subnet_pool\": \"10.78.0.0/16\"}\n");
    ck_assert(harness_broker_start(broker, "60", args));
    acquired_subnet("shared", subnet);
    ck_assert_str_eq(subnet, "10.78.0.0");
}
END_TEST

START_TEST(test_option_overrides_the_file) {
    const char *const args[] = {"--config", settings, "--subnet-pool",
                                "10.79.0.0/16", NULL};
    char subnet[16];

    write_settings("{\"subnet_pool\": \"10.78.0.0/16\"}\n");
    ck_assert(harness_broker_start(broker, "60", args));
    acquired_subnet("shared", subnet);
    ck_assert_str_eq(subnet, "10.79.0.0");
}
END_TEST

START_TEST(test_sighup_rereads_the_pool) {
    const char *const args[] = {"--config", settings, NULL};
    char subnet[16];

    write_settings("{\"subnet_pool\": \"10.78.0.0/16\"}\n");
    ck_assert(harness_broker_start(broker, "60", args));
    acquired_subnet("shared", subnet);
    ck_assert_str_eq(subnet, "10.78.0.0");
    // A broken file on SIGHUP keeps what the broker has.
    write_settings("{\"subnet_pool\": \"10.80.0.0/33\"}\n");
    ck_assert(harness_broker_signal(broker, SIGHUP));
    ck_assert(harness_broker_wait_log(broker, "keeps its settings", 1));
    acquired_subnet("host", subnet);
    ck_assert_str_eq(subnet, "10.78.1.0");
    // A good one applies to the networks created after it.
    write_settings("{\"subnet_pool\": \"10.80.0.0/16\",\n"
                   " \"max_connections_per_user\": 7}\n");
    ck_assert(harness_broker_signal(broker, SIGHUP));
    ck_assert(harness_broker_wait_log(broker, "new networks take", 1));
    ck_assert(harness_broker_wait_log(broker, "apply when the broker next", 1));
    ck_assert(
        harness_broker_write_config(broker, "third", "{\"mode\": \"host\"}\n"));
    acquired_subnet("third", subnet);
    ck_assert_str_eq(subnet, "10.80.0.0");
}
END_TEST

START_TEST(test_broken_file_stops_the_start) {
    const char *const args[] = {"--config", settings, NULL};
    char *log;

    write_settings("{\n  \"idle_timeout\": \"soon\"\n}\n");
    ck_assert(!harness_broker_start(broker, "60", args));
    ck_assert(!harness_broker_alive(broker));
    log = harness_broker_log(broker);
    ck_assert_msg(strstr(log, "vmnet-broker.json:2:19: 'idle_timeout'") != NULL,
                  "log: %s", log);
    free(log);
}
END_TEST

START_TEST(test_check_config_checks_it) {
    const char *const argv[] = {
        VMNET_BROKER_BIN, "--check-config",   "--config", settings,
        "--config-dir",   broker->config_dir, NULL};
    char *output = NULL;
    int status;

    write_settings("{\"max_connections_per_user\": 1.5, \"colour\": 1}\n");
    status = harness_run(broker, argv, &output);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 1);
    ck_assert_msg(strstr(output, "vmnet-broker.json:1:30: "
                                 "'max_connections_per_user'") != NULL,
                  "output: %s", output);
    ck_assert_msg(strstr(output, "vmnet-broker.json:1:35: 'colour': unknown") !=
                      NULL,
                  "output: %s", output);
    free(output);
    output = NULL;
    write_settings("{\"max_connections_per_user\": 3}\n");
    status = harness_run(broker, argv, &output);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    ck_assert_ptr_nonnull(strstr(output, "settings OK"));
    free(output);
}
END_TEST

static Suite *settings_suite(void) {
    Suite *s = suite_create("settings_file");
    TCase *tc = tcase_create("settings_file");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pool_from_the_file);
    tcase_add_test(tc, test_option_overrides_the_file);
    tcase_add_test(tc, test_sighup_rereads_the_pool);
    tcase_add_test(tc, test_broken_file_stops_the_start);
    tcase_add_test(tc, test_check_config_checks_it);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(settings_suite());
}
