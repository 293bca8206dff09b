// SPDX-License-Identifier: Apache-2.0
// Configuration files, --check-config, and subnets the host already uses.
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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

static vmnet_broker_return_t acquire(vmnet_broker_connection_t *c,
                                     const char *name) {
    return harness_acquire(c, name, NULL);
}

// A stand-in for a host interface: a veth pair with carrier, the first end
// carrying address (CIDR) when it is not NULL.
static void add_host_interface(const char *address) {
    char command[256];

    ck_assert_int_eq(harness_shell("ip link add up0 type veth peer name up1 "
                                   "&& ip link set up0 up && ip link set "
                                   "up1 up"),
                     0);
    if (address != NULL) {
        snprintf(command, sizeof(command), "ip addr add %s dev up0", address);
        ck_assert_int_eq(harness_shell(command), 0);
    }
}

static void add_route(const char *route) {
    char command[256];
    snprintf(command, sizeof(command), "ip route add %s dev up0", route);
    ck_assert_int_eq(harness_shell(command), 0);
}

// "<name>.json:<line>:<column>:" as jansson places the syntax error in
// text (the broker reports jansson's position).
static void syntax_error_location(const char *name, const char *text, char *buf,
                                  size_t size) {
    json_error_t error;
    json_t *root = json_loads(text, JSON_DECODE_ANY, &error);

    ck_assert_ptr_null(root);
    snprintf(buf, size, "%s.json:%d:%d:", name, error.line, error.column);
}

// True if text has "<name>.json:<line>:<digits>:".
static bool has_location(const char *text, const char *name, int line) {
    char prefix[128];
    size_t len;

    len = (size_t)snprintf(prefix, sizeof(prefix), "%s.json:%d:", name, line);
    for (const char *p = text; (p = strstr(p, prefix)) != NULL; p++) {
        const char *q = p + len;
        if (p != text && p[-1] != '/' && p[-1] != ' ' && p[-1] != '\n')
            continue;
        if (*q < '1' || *q > '9')
            continue;
        while (*q >= '0' && *q <= '9')
            q++;
        if (*q == ':')
            return true;
    }
    return false;
}

static const char broken_text[] =
    "{\n  \"mode\": \"host\",\n  \"subnet\": \n}\n";

// Each has its problem on line 3.
static const struct {
    const char *name;
    const char *text;
} bad_files[] = {
    {"badmode", "{\n  \"description\": \"x\",\n  \"mode\": \"bridged\"\n}\n"},
    {"modetype", "{\n  \"description\": \"x\",\n  \"mode\": 5\n}\n"},
    {"badaddr", "{\n  \"mode\": \"host\",\n  \"subnet\": \"192.168.300.1\",\n"
                "  \"mask\": \"255.255.255.0\"\n}\n"},
    {"badmask", "{\n  \"mode\": \"host\",\n  \"mask\": \"255.0.255.0\",\n"
                "  \"subnet\": \"192.168.42.1\"\n}\n"},
    {"userstype",
     "{\n  \"mode\": \"host\",\n  \"allowed_users\": \"root\"\n}\n"},
    {"desctype", "{\n  \"mode\": \"host\",\n  \"description\": 42\n}\n"},
};

#define N_BAD_FILES (sizeof(bad_files) / sizeof(bad_files[0]))

START_TEST(test_invalid_json_breaks_only_its_network) {
    char location[128];

    write_config("good", "{\"mode\": \"host\", \"subnet\": \"192.168.42.1\", "
                         "\"mask\": \"255.255.255.0\"}");
    write_config("broken", broken_text);
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(acquire(c, "broken"), VMNET_BROKER_CREATE_FAILURE);
    ck_assert_uint_eq(harness_count_links("vmb-"), 0);
    ck_assert_int_eq(acquire(c, "shared"), VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(acquire(c, "good"), VMNET_BROKER_SUCCESS);
    ck_assert(harness_link_has_ipv4("vmb-good", "192.168.42.1", 24));
    ck_assert_int_eq(acquire(c, "broken"), VMNET_BROKER_CREATE_FAILURE);
    ck_assert(harness_broker_alive(broker));

    syntax_error_location("broken", broken_text, location, sizeof(location));
    ck_assert_msg(harness_broker_log_count(broker, location) > 0,
                  "the log does not point at %s", location);
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_invalid_settings_break_only_their_network) {
    char *log;

    for (size_t i = 0; i < N_BAD_FILES; i++)
        write_config(bad_files[i].name, bad_files[i].text);
    write_config("good", "{\"mode\": \"shared\"}");
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);

    ck_assert_ptr_nonnull(c);
    for (size_t i = 0; i < N_BAD_FILES; i++) {
        ck_assert_msg(acquire(c, bad_files[i].name) ==
                          VMNET_BROKER_CREATE_FAILURE,
                      "%s.json was accepted", bad_files[i].name);
    }
    ck_assert_uint_eq(harness_count_links("vmb-"), 0);
    ck_assert_int_eq(acquire(c, "good"), VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(acquire(c, "shared"), VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(acquire(c, "host"), VMNET_BROKER_SUCCESS);

    log = harness_broker_log(broker);
    for (size_t i = 0; i < N_BAD_FILES; i++) {
        ck_assert_msg(has_location(log, bad_files[i].name, 3),
                      "the log does not point at %s.json line 3",
                      bad_files[i].name);
    }
    free(log);
    vmnet_broker_connection_close(c);
}
END_TEST

// Runs vmnet-broker --check-config on the broker's config directory and
// returns its exit code; *output gets stdout and stderr together.
static int check_config(char **output) {
    char command[512];
    const char *argv[] = {"/bin/sh", "-c", command, NULL};
    int status;

    snprintf(command, sizeof(command),
             "exec '%s' --check-config --config-dir '%s' 2>&1",
             VMNET_BROKER_BIN, broker->config_dir);
    status = harness_run(broker, argv, output);
    ck_assert(status != -1 && WIFEXITED(status));
    return WEXITSTATUS(status);
}

START_TEST(test_check_config_good) {
    char *output = NULL;

    ck_assert_int_eq(check_config(&output), 0);
    free(output);
    write_config("lab", "{\n  \"description\": \"Lab\",\n  \"mode\": \"host\","
                        "\n  \"subnet\": \"192.168.42.1\",\n  \"mask\": "
                        "\"255.255.255.0\",\n  \"allowed_users\": [\"root\", "
                        "1000],\n  \"allowed_groups\": [\"nogroup\", 0]\n}\n");
    write_config("open", "{\"mode\": \"shared\"}");
    write_config("shared", "{\"subnet\": \"192.168.99.1\", "
                           "\"mask\": \"255.255.255.0\"}");
    ck_assert_int_eq(check_config(&output), 0);
    free(output);
}
END_TEST

START_TEST(test_check_config_bad) {
    char location[128];
    char *output = NULL;

    write_config("good", "{\"mode\": \"host\"}");
    write_config("broken", broken_text);
    for (size_t i = 0; i < N_BAD_FILES; i++)
        write_config(bad_files[i].name, bad_files[i].text);
    ck_assert_int_ne(check_config(&output), 0);

    // Every problem is printed, each with its place.
    syntax_error_location("broken", broken_text, location, sizeof(location));
    ck_assert_msg(strstr(output, location) != NULL, "no %s in:\n%s", location,
                  output);
    for (size_t i = 0; i < N_BAD_FILES; i++) {
        ck_assert_msg(has_location(output, bad_files[i].name, 3),
                      "no %s.json:3:COLUMN: in:\n%s", bad_files[i].name,
                      output);
    }
    ck_assert_msg(strstr(output, "good.json:") == NULL,
                  "good.json reported:\n%s", output);
    free(output);
}
END_TEST

START_TEST(test_missing_config_dir) {
    ck_assert_int_eq(rmdir(broker->config_dir), 0);
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(acquire(c, "shared"), VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(acquire(c, "host"), VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(acquire(c, "lab"), VMNET_BROKER_NOT_FOUND);
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_builtin_overrides) {
    write_config("shared", "{\"description\": \"NAT\", \"subnet\": "
                           "\"192.168.99.1\", \"mask\": \"255.255.255.0\"}");
    write_config("host", "{\"subnet\": \"10.11.12.1\", "
                         "\"mask\": \"255.255.255.0\"}");
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_network_t *shared = NULL, *host = NULL;
    json_t *json;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(vmnet_broker_connection_acquire(c, "shared", &shared),
                     VMNET_BROKER_SUCCESS);
    ck_assert_str_eq(vmnet_broker_network_mode(shared), "shared");
    ck_assert_str_eq(vmnet_broker_network_subnet(shared), "192.168.99.0");
    ck_assert_str_eq(vmnet_broker_network_gateway(shared), "192.168.99.1");
    json = json_loads(vmnet_broker_network_json(shared), 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(json, "description")),
                     "NAT");
    json_decref(json);
    ck_assert(harness_link_has_ipv4("vmb-shared", "192.168.99.1", 24));

    // A file overrides only what it names: host stays host-only.
    ck_assert_int_eq(vmnet_broker_connection_acquire(c, "host", &host),
                     VMNET_BROKER_SUCCESS);
    ck_assert_str_eq(vmnet_broker_network_mode(host), "host");
    ck_assert_str_eq(vmnet_broker_network_subnet(host), "10.11.12.0");
    ck_assert(harness_link_has_ipv4("vmb-host", "10.11.12.1", 24));
    vmnet_broker_network_free(shared);
    vmnet_broker_network_free(host);
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_static_subnet_overlapping_address) {
    add_host_interface("192.168.42.2/24");
    write_config("lab", "{\"mode\": \"host\", \"subnet\": \"192.168.42.1\", "
                        "\"mask\": \"255.255.255.0\"}");
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(acquire(c, "lab"), VMNET_BROKER_CREATE_FAILURE);
    // Nothing half-made: no bridge, no registered network.
    ck_assert_uint_eq(harness_count_links("vmb-"), 0);
    ck_assert_int_eq(harness_network_peers(broker, "lab"), -1);
    ck_assert(harness_link_has_ipv4("up0", "192.168.42.2", 24));
    ck_assert_int_eq(acquire(c, "shared"), VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(acquire(c, "lab"), VMNET_BROKER_CREATE_FAILURE);
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_static_subnet_overlapping_route) {
    add_host_interface("10.99.0.1/24");
    add_route("192.168.50.0/24");
    write_config("routed", "{\"mode\": \"host\", \"subnet\": \"192.168.50.1\", "
                           "\"mask\": \"255.255.255.0\"}");
    // Wider than the route, so it contains it.
    write_config("wide", "{\"mode\": \"host\", \"subnet\": \"192.168.0.1\", "
                         "\"mask\": \"255.255.0.0\"}");
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(acquire(c, "routed"), VMNET_BROKER_CREATE_FAILURE);
    ck_assert_int_eq(acquire(c, "wide"), VMNET_BROKER_CREATE_FAILURE);
    ck_assert_uint_eq(harness_count_links("vmb-"), 0);
    ck_assert_int_eq(acquire(c, "host"), VMNET_BROKER_SUCCESS);
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_static_subnets_overlapping_each_other) {
    write_config("a", "{\"mode\": \"host\", \"subnet\": \"192.168.42.1\", "
                      "\"mask\": \"255.255.255.0\"}");
    write_config("b", "{\"mode\": \"shared\", \"subnet\": \"192.168.42.1\", "
                      "\"mask\": \"255.255.255.128\"}");
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(acquire(c, "a"), VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(acquire(c, "b"), VMNET_BROKER_CREATE_FAILURE);
    ck_assert(!harness_link_exists("vmb-b"));
    ck_assert_uint_eq(harness_count_links("vmb-"), 1);
    ck_assert_int_eq(harness_network_peers(broker, "a"), 1);
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_automatic_subnet_skips_used_ones) {
    add_host_interface("192.168.64.5/24");
    add_route("192.168.65.0/24");
    // A default route overlaps everything and is not a reason to skip.
    add_route("default");
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_network_t *shared = NULL, *host = NULL;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(vmnet_broker_connection_acquire(c, "shared", &shared),
                     VMNET_BROKER_SUCCESS);
    ck_assert_str_eq(vmnet_broker_network_subnet(shared), "192.168.66.0");
    ck_assert_str_eq(vmnet_broker_network_gateway(shared), "192.168.66.1");
    ck_assert(harness_link_has_ipv4("vmb-shared", "192.168.66.1", 24));
    ck_assert_int_eq(vmnet_broker_connection_acquire(c, "host", &host),
                     VMNET_BROKER_SUCCESS);
    ck_assert_str_eq(vmnet_broker_network_subnet(host), "192.168.67.0");
    vmnet_broker_network_free(shared);
    vmnet_broker_network_free(host);
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_no_free_subnet) {
    add_host_interface(NULL);
    add_route("192.168.0.0/16");
    write_config("lab", "{\"mode\": \"host\", \"subnet\": \"10.1.2.1\", "
                        "\"mask\": \"255.255.255.0\"}");
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(acquire(c, "shared"), VMNET_BROKER_CREATE_FAILURE);
    ck_assert_uint_eq(harness_count_links("vmb-"), 0);
    ck_assert_int_eq(acquire(c, "lab"), VMNET_BROKER_SUCCESS);
    vmnet_broker_connection_close(c);
}
END_TEST

static Suite *configured_networks_suite(void) {
    Suite *s = suite_create("configured_networks");
    TCase *files = tcase_create("files");
    TCase *subnets = tcase_create("subnets");

    tcase_add_checked_fixture(files, setup, teardown);
    tcase_set_timeout(files, 120);
    tcase_add_test(files, test_invalid_json_breaks_only_its_network);
    tcase_add_test(files, test_invalid_settings_break_only_their_network);
    tcase_add_test(files, test_check_config_good);
    tcase_add_test(files, test_check_config_bad);
    tcase_add_test(files, test_missing_config_dir);
    tcase_add_test(files, test_builtin_overrides);
    suite_add_tcase(s, files);

    tcase_add_checked_fixture(subnets, setup, teardown);
    tcase_set_timeout(subnets, 120);
    tcase_add_test(subnets, test_static_subnet_overlapping_address);
    tcase_add_test(subnets, test_static_subnet_overlapping_route);
    tcase_add_test(subnets, test_static_subnets_overlapping_each_other);
    tcase_add_test(subnets, test_automatic_subnet_skips_used_ones);
    tcase_add_test(subnets, test_no_free_subnet);
    suite_add_tcase(s, subnets);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(configured_networks_suite());
}
