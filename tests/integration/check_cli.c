// SPDX-License-Identifier: Apache-2.0
// The command-line programs: vmnet-broker-client and the daemon's options.
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define IDLE "60"
#define CLI VMNET_BROKER_CLIENT_BIN

static struct harness_broker *broker;

static void setup(void) { broker = harness_test_setup(); }

static void teardown(void) {
    harness_broker_free(broker);
    broker = NULL;
}

static bool exited_with(int wait_status, int code) {
    return wait_status != -1 && WIFEXITED(wait_status) &&
           WEXITSTATUS(wait_status) == code;
}

static bool shared_unused(void *arg) {
    (void)arg;
    return harness_network_peers(broker, "shared") == 0;
}

// Reads <broker dir>/<name> as JSON.
static json_t *load_json_file(const char *name) {
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", broker->dir, name);
    return json_load_file(path, 0, NULL);
}

START_TEST(test_acquire_json_holds_until_interrupted) {
    harness_start(broker, IDLE);
    const char *argv[] = {CLI, "acquire", "--json", "shared", "host", NULL};
    struct harness_reader *reader = malloc(sizeof(*reader));
    json_t *shared, *host, *status;
    int status_code;
    int fd = -1;
    pid_t pid = harness_spawn(broker, argv, &fd);

    ck_assert_ptr_nonnull(reader);
    ck_assert_int_gt(pid, 0);
    harness_reader_init(reader, fd);
    // One JSON object per network, in the order asked.
    shared = harness_reader_json(reader);
    host = harness_reader_json(reader);
    ck_assert_msg(shared != NULL && host != NULL, "no JSON output");
    ck_assert_str_eq(json_string_value(json_object_get(shared, "name")),
                     "shared");
    ck_assert_str_eq(json_string_value(json_object_get(shared, "bridge")),
                     "vmb-shared");
    ck_assert(
        harness_uuid_valid(json_string_value(json_object_get(shared, "uuid"))));
    ck_assert_str_eq(json_string_value(json_object_get(host, "name")), "host");
    ck_assert_str_eq(json_string_value(json_object_get(host, "bridge")),
                     "vmb-host");
    ck_assert(harness_link_exists("vmb-shared"));
    ck_assert(harness_link_exists("vmb-host"));

    // Held by the CLI's own connection while it waits.
    status = harness_status(broker);
    ck_assert(harness_status_pid_holds(status, pid, "shared"));
    ck_assert(harness_status_pid_holds(status, pid, "host"));
    json_decref(status);

    ck_assert_int_eq(kill(pid, SIGINT), 0);
    status_code = harness_wait_pid(pid);
    ck_assert_msg(exited_with(status_code, 0),
                  "acquire did not exit 0 on SIGINT (wait status %#x)",
                  status_code);
    ck_assert(harness_wait_for(shared_unused, NULL));
    ck_assert_int_eq(harness_network_peers(broker, "host"), 0);
    json_decref(shared);
    json_decref(host);
    close(fd);
    free(reader);
}
END_TEST

START_TEST(test_acquire_text_until_sigterm) {
    harness_start(broker, IDLE);
    const char *argv[] = {CLI, "acquire", "shared", NULL};
    struct harness_reader *reader = malloc(sizeof(*reader));
    int status_code;
    int fd = -1;
    pid_t pid = harness_spawn(broker, argv, &fd);

    ck_assert_ptr_nonnull(reader);
    ck_assert_int_gt(pid, 0);
    harness_reader_init(reader, fd);
    ck_assert_msg(harness_reader_wait_text(reader, "vmb-shared"),
                  "no bridge in the output: %s", reader->buf);
    ck_assert_int_eq(harness_network_peers(broker, "shared"), 1);
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    status_code = harness_wait_pid(pid);
    ck_assert_msg(exited_with(status_code, 0),
                  "acquire did not exit 0 on SIGTERM (wait status %#x)",
                  status_code);
    ck_assert(harness_wait_for(shared_unused, NULL));
    close(fd);
    free(reader);
}
END_TEST

START_TEST(test_status) {
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);
    const char *json_argv[] = {CLI, "status", "--json", NULL};
    const char *text_argv[] = {CLI, "status", NULL};
    char *output = NULL;
    char pid[32];
    json_t *status;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(harness_acquire(c, "shared", NULL), VMNET_BROKER_SUCCESS);

    ck_assert(exited_with(harness_run(broker, json_argv, &output), 0));
    status = json_loads(output, 0, NULL);
    ck_assert_msg(status != NULL, "status --json is not JSON: %s", output);
    ck_assert(json_is_array(json_object_get(status, "networks")));
    ck_assert(json_is_array(json_object_get(status, "peers")));
    ck_assert_int_eq(json_integer_value(json_object_get(
                         harness_status_network(status, "shared"), "peers")),
                     1);
    ck_assert(harness_status_pid_holds(status, getpid(), "shared"));
    json_decref(status);
    free(output);

    // Readable: the network, its bridge and the holder's pid appear.
    ck_assert(exited_with(harness_run(broker, text_argv, &output), 0));
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    ck_assert_msg(strstr(output, "vmb-shared") != NULL, "%s", output);
    ck_assert_msg(strstr(output, "192.168.64.0") != NULL, "%s", output);
    ck_assert_msg(strstr(output, pid) != NULL, "%s", output);
    free(output);
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_run_holds_network_for_the_command) {
    harness_start(broker, IDLE);
    char script[1024];
    const char *argv[] = {CLI,       "run", "--network", "shared", "--",
                          "/bin/sh", "-c",  script,      NULL};
    json_t *inside, *networks;
    pid_t pid;

    // The command sees the bridge and the broker's status while it runs;
    // its exit status is run's.
    snprintf(script, sizeof(script),
             "test -e /sys/class/net/vmb-shared || exit 10\n"
             "'%s' status --json > '%s/inside.json' || exit 11\n"
             "printf '%%s' \"$VMNET_BROKER_NETWORKS\" > '%s/networks.json'\n"
             "exit 3\n",
             CLI, broker->dir, broker->dir);
    pid = harness_spawn(broker, argv, NULL);
    ck_assert_int_gt(pid, 0);
    ck_assert(exited_with(harness_wait_pid(pid), 3));

    inside = load_json_file("inside.json");
    ck_assert_ptr_nonnull(inside);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         harness_status_network(inside, "shared"), "peers")),
                     1);
    // The command itself (run became it) was the holder.
    ck_assert(harness_status_pid_holds(inside, pid, "shared"));
    json_decref(inside);
    networks = load_json_file("networks.json");
    ck_assert(json_is_array(networks));
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(networks, 0), "bridge")),
                     "vmb-shared");
    json_decref(networks);

    // The reference went with the command; the network waits out its delay.
    ck_assert(harness_wait_for(shared_unused, NULL));
    ck_assert(harness_link_exists("vmb-shared"));
}
END_TEST

START_TEST(test_errors) {
    harness_start(broker, IDLE);
    char marker[256], script[512];
    const char *acquire_argv[] = {CLI, "acquire", "shared", "nosuch", NULL};
    const char *run_argv[] = {CLI,       "run", "--network", "nosuch", "--",
                              "/bin/sh", "-c",  script,      NULL};
    char *output = NULL;
    int status;

    // Nothing printed, nothing held, a failing exit status.
    status = harness_run(broker, acquire_argv, &output);
    ck_assert(status != -1 && WIFEXITED(status));
    ck_assert_int_ne(WEXITSTATUS(status), 0);
    ck_assert_str_eq(output, "");
    free(output);
    ck_assert(harness_wait_for(shared_unused, NULL));

    // run does not run the command without its networks.
    snprintf(marker, sizeof(marker), "%s/ran", broker->dir);
    snprintf(script, sizeof(script), "touch '%s'", marker);
    status = harness_run(broker, run_argv, NULL);
    ck_assert(status != -1 && WIFEXITED(status));
    ck_assert_int_ne(WEXITSTATUS(status), 0);
    ck_assert_int_ne(access(marker, F_OK), 0);
}
END_TEST

START_TEST(test_socket_option_and_environment) {
    harness_start(broker, IDLE);
    char command[512];
    const char *argv[] = {"/bin/sh", "-c", command, NULL};
    char *output = NULL;
    json_t *status;

    // --socket wins over the environment.
    snprintf(command, sizeof(command),
             "VMNET_BROKER_SOCKET=/nonexistent exec '%s' --socket '%s' "
             "status --json",
             CLI, broker->socket_path);
    ck_assert(exited_with(harness_run(broker, argv, &output), 0));
    status = json_loads(output, 0, NULL);
    ck_assert_ptr_nonnull(status);
    json_decref(status);
    free(output);

    // With neither pointing at a broker: a failing exit status.
    snprintf(command, sizeof(command),
             "VMNET_BROKER_SOCKET=/nonexistent exec '%s' status", CLI);
    int wait_status = harness_run(broker, argv, NULL);
    ck_assert(wait_status != -1 && WIFEXITED(wait_status));
    ck_assert_int_ne(WEXITSTATUS(wait_status), 0);
}
END_TEST

START_TEST(test_daemon_options) {
    const char *version[] = {VMNET_BROKER_BIN, "--version", NULL};
    const char *help[] = {VMNET_BROKER_BIN, "--help", NULL};
    const char *bad_idle[] = {VMNET_BROKER_BIN, "--idle-timeout",    "soon",
                              "--socket",       broker->socket_path, NULL};
    const char *unknown[] = {VMNET_BROKER_BIN, "--no-such-option", NULL};
    char *output = NULL;
    int status;

    ck_assert(exited_with(harness_run(broker, version, &output), 0));
    ck_assert_msg(strncmp(output, "vmnet-broker ", 13) == 0, "%s", output);
    free(output);
    ck_assert(exited_with(harness_run(broker, help, &output), 0));
    ck_assert_msg(strstr(output, "--idle-timeout") != NULL, "%s", output);
    ck_assert_msg(strstr(output, "--socket") != NULL, "%s", output);
    ck_assert_msg(strstr(output, "--config-dir") != NULL, "%s", output);
    free(output);

    status = harness_run(broker, bad_idle, NULL);
    ck_assert(status != -1 && WIFEXITED(status));
    ck_assert_int_ne(WEXITSTATUS(status), 0);
    ck_assert_int_ne(access(broker->socket_path, F_OK), 0);
    status = harness_run(broker, unknown, NULL);
    ck_assert(status != -1 && WIFEXITED(status));
    ck_assert_int_ne(WEXITSTATUS(status), 0);
}
END_TEST

static Suite *cli_suite(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_acquire_json_holds_until_interrupted);
    tcase_add_test(tc, test_acquire_text_until_sigterm);
    tcase_add_test(tc, test_status);
    tcase_add_test(tc, test_run_holds_network_for_the_command);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_socket_option_and_environment);
    tcase_add_test(tc, test_daemon_options);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(cli_suite());
}
