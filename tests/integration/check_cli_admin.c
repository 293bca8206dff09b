// SPDX-License-Identifier: Apache-2.0
// What an administrator and a newcomer read: error messages, status, networks,
// info, release, --check-config.
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define IDLE "60"
#define CLI VMNET_BROKER_CLIENT_BIN
#define BROKER VMNET_BROKER_BIN

static struct harness_broker *broker;

static void setup(void) { broker = harness_test_setup(); }

static void teardown(void) {
    harness_broker_free(broker);
    broker = NULL;
}

// Runs a shell command line (stderr joined to stdout); returns its exit
// code and stores the output.
static int shell(char **output, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static int shell(char **output, const char *format, ...) {
    char command[2048];
    const char *argv[] = {"/bin/sh", "-c", command, NULL};
    va_list ap;
    int status;

    va_start(ap, format);
    vsnprintf(command, sizeof(command), format, ap);
    va_end(ap);
    status = harness_run(broker, argv, output);
    ck_assert_msg(status != -1 && WIFEXITED(status), "'%s' did not exit",
                  command);
    return WEXITSTATUS(status);
}

#define assert_contains(text, part)                                            \
    ck_assert_msg(strstr((text), (part)) != NULL, "no \"%s\" in:\n%s", (part), \
                  (text))
#define assert_lacks(text, part)                                               \
    ck_assert_msg(strstr((text), (part)) == NULL, "\"%s\" in:\n%s", (part),    \
                  (text))

START_TEST(test_error_messages_say_why) {
    char *output = NULL;
    vmnet_broker_connection_t *c;

    ck_assert(harness_broker_write_config(broker, "broken",
                                          "{\"mode\": \"bridged\"}"));
    harness_start(broker, IDLE);

    // The naming rule for an invalid name.
    ck_assert_int_eq(shell(&output,
                           "exec '%s' --socket '%s' acquire 'a b' 2>&1", CLI,
                           broker->socket_path),
                     1);
    assert_contains(output, "invalid network name");
    assert_contains(output, "A-Z a-z 0-9 _ . -");
    free(output);
    // An unknown network, and an invalid configuration with its place.
    ck_assert_int_eq(shell(&output,
                           "exec '%s' --socket '%s' acquire nosuch 2>&1", CLI,
                           broker->socket_path),
                     1);
    assert_contains(output, "no network named 'nosuch' is configured");
    free(output);
    ck_assert_int_eq(shell(&output,
                           "exec '%s' --socket '%s' acquire broken 2>&1", CLI,
                           broker->socket_path),
                     1);
    assert_contains(output, "broken.json:1:");
    assert_contains(output, "'mode' must be");
    free(output);

    // A creation the backend refuses on its worker thread: the reason
    // travels back with that creation to the request that waited for it.
    ck_assert(harness_broker_write_config(
        broker, "clash", "{\"mode\": \"host\", \"subnet\": \"192.168.64.1\"}"));
    c = harness_connect(broker);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(harness_acquire(c, "shared", NULL), VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(shell(&output,
                           "exec '%s' --socket '%s' acquire clash 2>&1", CLI,
                           broker->socket_path),
                     1);
    assert_contains(output, "subnet 192.168.64.0/24 overlaps");
    free(output);
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_library_last_message) {
    char name[16];
    vmnet_broker_connection_t *c;
    vmnet_broker_network_t *network = NULL;
    char *message;

    // Six more networks, so that one connection can hold eight.
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        ck_assert(harness_broker_write_config(broker, name,
                                              "{\"mode\": \"host\", "
                                              "\"dhcp\": false, "
                                              "\"ipv6\": false}"));
    }
    harness_start(broker, IDLE);
    c = harness_connect(broker);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_null(vmnet_broker_connection_last_message(c));
    ck_assert_int_eq(vmnet_broker_connection_release(c, "shared"),
                     VMNET_BROKER_NOT_FOUND);
    message = vmnet_broker_connection_last_message(c);
    ck_assert_ptr_nonnull(message);
    assert_contains(message, "does not hold network 'shared'");
    free(message);

    ck_assert_int_eq(harness_acquire(c, "shared", NULL), VMNET_BROKER_SUCCESS);
    // A success clears the message.
    ck_assert_ptr_null(vmnet_broker_connection_last_message(c));
    ck_assert_int_eq(harness_acquire(c, "host", NULL), VMNET_BROKER_SUCCESS);
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        ck_assert_int_eq(harness_acquire(c, name, NULL), VMNET_BROKER_SUCCESS);
    }
    ck_assert(
        harness_broker_write_config(broker, "ninth", "{\"mode\": \"host\"}"));
    ck_assert_int_eq(vmnet_broker_connection_acquire(c, "ninth", &network),
                     VMNET_BROKER_INTERNAL_ERROR);
    ck_assert_ptr_null(network);
    message = vmnet_broker_connection_last_message(c);
    ck_assert_ptr_nonnull(message);
    assert_contains(message, "already holds 8 networks");
    free(message);
    ck_assert_ptr_null(vmnet_broker_connection_last_message(NULL));
    vmnet_broker_connection_close(c);
}
END_TEST

// In a child: the process-wide connection's message after a failure.
static int default_connection_message(void *arg) {
    const char *socket_path = arg;
    vmnet_broker_return_t status;
    char *message;
    int result = 1;

    setenv(VMNET_BROKER_SOCKET_ENV, socket_path, 1);
    if (vmnet_broker_acquire_network("nosuch", &status) != NULL ||
        status != VMNET_BROKER_NOT_FOUND)
        return 2;
    message = vmnet_broker_last_message();
    if (message != NULL && strstr(message, "'nosuch'") != NULL)
        result = 0;
    free(message);
    return result;
}

START_TEST(test_default_connection_last_message) {
    harness_start(broker, IDLE);
    ck_assert_int_eq(
        harness_run_child(default_connection_message, broker->socket_path), 0);
}
END_TEST

START_TEST(test_connection_failures_name_the_cause) {
    char path[256];
    char *output = NULL;
    int fd;
    struct sockaddr_un address = {.sun_family = AF_UNIX};

    // No broker at all.
    ck_assert_int_eq(shell(&output,
                           "exec '%s' --socket '%s/none.sock' status 2>&1", CLI,
                           broker->dir),
                     1);
    assert_contains(output, "no such socket");
    assert_contains(output, "systemctl start vmnet-broker.socket");
    free(output);

    // A plain file.
    snprintf(path, sizeof(path), "%s/file", broker->dir);
    fd = open(path, O_CREAT | O_WRONLY, 0644);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(
        shell(&output, "exec '%s' --socket '%s' status 2>&1", CLI, path), 1);
    assert_contains(output, "not a broker");
    free(output);

    // A stream socket: someone else's program.
    snprintf(path, sizeof(path), "%s/stream.sock", broker->dir);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    strcpy(address.sun_path, path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&address, sizeof(address)), 0);
    ck_assert_int_eq(listen(fd, 1), 0);
    ck_assert_int_eq(
        shell(&output, "exec '%s' --socket '%s' status 2>&1", CLI, path), 1);
    assert_contains(output, "not a broker");
    free(output);
    close(fd);

    // A socket nobody listens on: a broker that stopped.
    snprintf(path, sizeof(path), "%s/old.sock", broker->dir);
    fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    strcpy(address.sun_path, path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&address, sizeof(address)), 0);
    close(fd);
    ck_assert_int_eq(
        shell(&output, "exec '%s' --socket '%s' status 2>&1", CLI, path), 1);
    assert_contains(output, "nobody is listening");
    free(output);

    // A user who may not reach the socket.
    harness_start(broker, IDLE);
    ck_assert_int_eq(chmod(broker->socket_path, 0600), 0);
    ck_assert_int_eq(chmod(broker->dir, 0755), 0);
    ck_assert_int_eq(shell(&output,
                           "exec setpriv --reuid=65534 --regid=65534 "
                           "--clear-groups '%s' --socket '%s' status 2>&1",
                           CLI, broker->socket_path),
                     1);
    assert_contains(output, "permission denied");
    free(output);
}
END_TEST

START_TEST(test_status_for_an_administrator) {
    char *output = NULL;
    char pid[32];
    vmnet_broker_connection_t *c;

    ck_assert(harness_broker_write_config(
        broker, "lab", "{\"mode\": \"host\", \"subnet\": \"10.77.0.1\"}"));
    harness_start(broker, IDLE);
    c = harness_connect(broker);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(harness_acquire(c, "shared", NULL), VMNET_BROKER_SUCCESS);

    ck_assert_int_eq(shell(&output, "exec '%s' --socket '%s' status", CLI,
                           broker->socket_path),
                     0);
    assert_contains(output, "vmnet-broker 0.1.0");
    assert_contains(output, "REMOVAL IN");
    assert_contains(output, "GATEWAY");
    assert_contains(output, "192.168.64.1 ");
    assert_contains(output, "::/64");
    assert_contains(output, "INTERFACES");
    // lab is configured, not running.
    assert_contains(output, "not running");
    assert_contains(output, "10.77.0.0/24");
    // The holder (this test) with its user name; not the CLI itself.
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    assert_contains(output, pid);
    assert_contains(output, "root (0)");
    free(output);
    // The CLI's own connection is left out: only this test's peer remains.
    ck_assert_int_eq(shell(&output,
                           "'%s' --socket '%s' status | grep -c '^[0-9]'", CLI,
                           broker->socket_path),
                     0);
    ck_assert_str_eq(output, "1\n");
    free(output);

    // --json stays JSON, with the new keys.
    ck_assert_int_eq(shell(&output, "exec '%s' --socket '%s' status --json",
                           CLI, broker->socket_path),
                     0);
    json_t *status = json_loads(output, 0, NULL);
    ck_assert_msg(status != NULL, "not JSON: %s", output);
    json_t *shared = harness_status_network(status, "shared");
    ck_assert_str_eq(json_string_value(json_object_get(shared, "gateway")),
                     "192.168.64.1");
    ck_assert_int_eq(json_integer_value(json_object_get(shared, "interfaces")),
                     0);
    ck_assert(json_is_string(json_object_get(shared, "ipv6_prefix")));
    ck_assert(json_is_array(json_object_get(status, "configured")));
    json_decref(status);
    free(output);

    // Output that cannot be written is a failure.
    ck_assert_int_ne(shell(&output, "exec '%s' --socket '%s' status >/dev/full",
                           CLI, broker->socket_path),
                     0);
    free(output);
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_networks_and_info) {
    char *output = NULL;
    vmnet_broker_connection_t *c;

    ck_assert(harness_broker_write_config(
        broker, "lab",
        "{\"mode\": \"host\", \"subnet\": \"10.77.0.1\", \"persistent\": "
        "false, \"description\": \"Lab\\u001b[31m\", \"allowed_users\": "
        "[0]}"));
    harness_start(broker, IDLE);
    c = harness_connect(broker);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(harness_acquire(c, "host", NULL), VMNET_BROKER_SUCCESS);

    ck_assert_int_eq(shell(&output, "exec '%s' --socket '%s' networks", CLI,
                           broker->socket_path),
                     0);
    assert_contains(output, "lab ");
    assert_contains(output, "allow-list");
    // The description's escape character is printed escaped.
    assert_contains(output, "Lab\\x1b[31m");
    assert_lacks(output, "\033");
    free(output);
    ck_assert_int_eq(shell(&output, "exec '%s' --socket '%s' networks --names",
                           CLI, broker->socket_path),
                     0);
    ck_assert_str_eq(output, "host\nlab\nshared\n");
    free(output);

    ck_assert_int_eq(shell(&output, "exec '%s' --socket '%s' info host", CLI,
                           broker->socket_path),
                     0);
    assert_contains(output, "State:           running");
    assert_contains(output, "Bridge:          vmb-host");
    assert_contains(output, "Gateway:");
    free(output);
    ck_assert_int_eq(shell(&output, "exec '%s' --socket '%s' info lab", CLI,
                           broker->socket_path),
                     0);
    assert_contains(output, "State:           not running");
    assert_contains(output, "Subnet:          10.77.0.0/24");
    free(output);
    ck_assert_int_eq(shell(&output, "exec '%s' --socket '%s' info --json lab",
                           CLI, broker->socket_path),
                     0);
    json_t *info = json_loads(output, 0, NULL);
    ck_assert_msg(info != NULL, "not JSON: %s", output);
    ck_assert(json_is_null(json_object_get(info, "running")));
    ck_assert(json_is_object(json_object_get(info, "configured")));
    json_decref(info);
    free(output);
    ck_assert_int_eq(shell(&output, "exec '%s' --socket '%s' info nosuch 2>&1",
                           CLI, broker->socket_path),
                     1);
    assert_contains(output, "no network named 'nosuch'");
    free(output);
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_release_over_the_inherited_connection) {
    char *output = NULL;

    harness_start(broker, IDLE);
    // Inside run: release host, keep shared; the status taken inside shows
    // it.
    ck_assert_int_eq(
        shell(&output,
              "exec '%s' --socket '%s' run --network shared --network host "
              "-- sh -c \"'%s' release host && '%s' release host 2>&1; "
              "'%s' --socket '%s' status --json\"",
              CLI, broker->socket_path, CLI, CLI, CLI, broker->socket_path),
        0);
    assert_contains(output, "released host\n");
    assert_contains(output, "does not hold network 'host'");
    char *brace = strchr(output, '{');
    ck_assert_ptr_nonnull(brace);
    json_t *status = json_loads(brace, JSON_DISABLE_EOF_CHECK, NULL);
    ck_assert_ptr_nonnull(status);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         harness_status_network(status, "host"), "peers")),
                     0);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         harness_status_network(status, "shared"), "peers")),
                     1);
    json_decref(status);
    free(output);

    // Outside run there is no connection to release from.
    ck_assert_int_eq(
        shell(&output, "VMNET_BROKER_FD= exec '%s' release shared 2>&1", CLI),
        1);
    assert_contains(output, "inside 'vmnet-broker-client run'");
    free(output);
}
END_TEST

START_TEST(test_check_config_across_files) {
    char *output = NULL;

    ck_assert(harness_broker_write_config(
        broker, "a",
        "{\"mode\": \"shared\", \"subnet\": \"10.1.0.1\", \"port_forwarding\": "
        "[{\"protocol\": \"tcp\", \"host_port\": 2222, \"guest_address\": "
        "\"10.1.0.10\", \"guest_port\": 22}]}"));
    ck_assert(harness_broker_write_config(
        broker, "b",
        "{\"mode\": \"shared\", \"subnet\": \"10.1.0.0\", \"mask\": "
        "\"255.255.0.0\", \"port_forwarding\": [{\"protocol\": \"tcp\", "
        "\"host_port\": 2222, \"guest_address\": \"10.1.0.10\", "
        "\"guest_port\": 22}]}"));
    ck_assert(harness_broker_write_config(broker, "bad\033name",
                                          "{\"mode\": \"host\"}"));
    ck_assert_int_eq(shell(&output,
                           "exec '%s' --check-config --config-dir '%s'", BROKER,
                           broker->config_dir),
                     1);
    assert_contains(output, "static subnets overlap");
    assert_contains(output, "both forward host port tcp/2222");
    assert_contains(output, "\"bad\\x1bname\" is not a valid network name");
    assert_lacks(output, "\033");
    // The networks found, with mode and subnet.
    assert_contains(output, "10.1.0.0/16");
    assert_contains(output, "subnet chosen at start");
    assert_contains(output, ": 3 problems");
    free(output);

    // One file alone is checked alone.
    ck_assert_int_eq(shell(&output, "exec '%s' --check-config '%s/a.json'",
                           BROKER, broker->config_dir),
                     0);
    assert_contains(output, "a.json: configuration OK");
    free(output);
}
END_TEST

START_TEST(test_broker_needs_privileges) {
    char *output = NULL;

    ck_assert_int_eq(chmod(broker->dir, 0777), 0);
    ck_assert_int_eq(shell(&output,
                           "exec setpriv --reuid=65534 --regid=65534 "
                           "--clear-groups '%s' --socket '%s/x.sock' 2>&1",
                           BROKER, broker->dir),
                     1);
    // One line, naming both ways out.
    assert_contains(output, "needs root or CAP_NET_ADMIN");
    ck_assert_ptr_eq(strchr(output, '\n'), output + strlen(output) - 1);
    free(output);
}
END_TEST

static Suite *cli_admin_suite(void) {
    Suite *s = suite_create("cli_admin");
    TCase *tc = tcase_create("cli_admin");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_error_messages_say_why);
    tcase_add_test(tc, test_library_last_message);
    tcase_add_test(tc, test_default_connection_last_message);
    tcase_add_test(tc, test_connection_failures_name_the_cause);
    tcase_add_test(tc, test_status_for_an_administrator);
    tcase_add_test(tc, test_networks_and_info);
    tcase_add_test(tc, test_release_over_the_inherited_connection);
    tcase_add_test(tc, test_check_config_across_files);
    tcase_add_test(tc, test_broker_needs_privileges);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(cli_admin_suite());
}
