// SPDX-License-Identifier: Apache-2.0
// The broker's one router advertisement dnsmasq, against the real broker.
#include <check.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "harness_topology.h"

#define IDLE "60"
// The router advertisement instance's directory under the runtime
// directory (DNSMASQ_RADV_NAME in broker/linux/linux_dnsmasq.h).
#define RADV_DIR "_radv"
// How long a guest of a network without IPv6 is given to take an address
// it must never get: several advertisement rounds of the instance, which
// answers a solicitation at once.
#define NO_ADDRESS_SECONDS 4
static const char V4ONLY_CONFIG[] = "{\"mode\": \"shared\", \"ipv6\": false}\n";

static struct harness_broker *broker;
static struct topology *topology;
// The test's connection to the broker, which holds what it acquires.
static int connection = -1;

static void setup(void) {
    broker = harness_test_setup();
    topology = topology_new(broker->dir);
    ck_assert_msg(topology != NULL, "cannot prepare for namespaces");
}

static void teardown(void) {
    if (connection >= 0) {
        close(connection);
        connection = -1;
        harness_broker_wait_no_peers(broker);
    }
    topology_free(topology);
    topology = NULL;
    harness_broker_free(broker);
    broker = NULL;
}

// ---- Local helpers ---------------------------------------------------------

static json_t *acquire(const char *name) {
    return harness_acquire_network(broker, &connection, name);
}

static const char *add_guest(const json_t *network) {
    const char *ns = topology_add_guest(
        topology, harness_network_field(network, "bridge"), NULL);
    ck_assert_msg(ns != NULL, "cannot attach a guest to %s",
                  harness_network_field(network, "bridge"));
    return ns;
}

static void wait_slaac(const char *ns, const json_t *network) {
    char address[64];
    const char *prefix = harness_network_field(network, "ipv6_prefix");

    ck_assert_msg(topology_wait_ipv6(ns, prefix, address, sizeof(address)),
                  "no SLAAC address from %s/64 in %s (broker log: %s)", prefix,
                  ns, broker->log_path);
}

// The text of a file of the router advertisement instance ("" if missing).
static char *radv_file(const char *file) {
    char path[512];
    char *text = calloc(1, 65536);
    FILE *f;
    size_t n;

    ck_assert_ptr_nonnull(text);
    snprintf(path, sizeof(path), "%s/" RADV_DIR "/%s", broker->dir, file);
    f = fopen(path, "r");
    if (f == NULL)
        return text;
    n = fread(text, 1, 65535, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

static pid_t radv_pid(void) {
    char *text = radv_file("dnsmasq.pid");
    pid_t pid = (pid_t)atoi(text);

    free(text);
    return pid;
}

// Live router advertisement dnsmasq processes of this broker.
static unsigned radv_count(void) {
    char command[512];

    // Orphaned onto the test (harness_enter_netns()): reaped here.
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    snprintf(command, sizeof(command),
             "exit $(pgrep -f -- '--conf-[f]ile=%s/" RADV_DIR
             "/dnsmasq.conf' | wc -l)",
             broker->dir);
    return (unsigned)harness_shell(command);
}

struct radv_wait {
    pid_t old;
};

// Exactly one instance runs, it is not the old one, and it has written its
// pid file (it is ready).
static bool one_new_radv(void *arg) {
    const struct radv_wait *w = arg;
    pid_t pid = radv_pid();

    return pid > 0 && pid != w->old && kill(pid, 0) == 0 && radv_count() == 1;
}

// Runs in ns: every global IPv6 address and every IPv6 default route.
static char *global_ipv6(const char *ns) {
    const char *argv[] = {"sh", "-c",
                          "ip -6 -o addr show dev " TOPOLOGY_LINK
                          " scope global; ip -6 route show default",
                          NULL};
    char *output = NULL;

    ck_assert_int_eq(topology_run(ns, argv, HARNESS_WAIT_SECONDS, &output), 0);
    return output;
}

// ---- Tests -----------------------------------------------------------------

// A network without IPv6 is never advertised on, while a network with
// IPv6 on the same broker (the same instance) is; and no network's own
// dnsmasq advertises, nor rescans the host's addresses at every change.
START_TEST(test_network_without_ipv6_gets_no_advertisement) {
    json_t *shared, *v4only;
    const char *with, *without;
    char command[256];
    char *text;

    ck_assert(harness_broker_write_config(broker, "v4only", V4ONLY_CONFIG));
    harness_start(broker, IDLE);
    v4only = acquire("v4only");
    ck_assert_ptr_null(json_object_get(v4only, "ipv6_prefix"));
    without = add_guest(v4only);
    shared = acquire("shared");
    with = add_guest(shared);
    wait_slaac(with, shared);
    // The guest without solicits again now, after the instance is running.
    snprintf(command, sizeof(command),
             "ip -n %s link set " TOPOLOGY_LINK " down && "
             "ip -n %s link set " TOPOLOGY_LINK " up",
             without, without);
    ck_assert_int_eq(harness_shell(command), 0);
    sleep(NO_ADDRESS_SECONDS);
    text = global_ipv6(without);
    ck_assert_msg(text[0] == '\0', "a guest of v4only took: %s", text);
    free(text);

    // The instance made a context for shared's bridge alone.
    text = radv_file("dnsmasq.log");
    ck_assert_msg(strstr(text, "constructed for vmb-shared") != NULL, "%s",
                  text);
    ck_assert_msg(strstr(text, "vmb-v4only") == NULL, "%s", text);
    free(text);
    text = radv_file("dnsmasq.conf");
    ck_assert_msg(strstr(text, "\ninterface=vmb-*\n") != NULL &&
                      strstr(text, "\nport=0\n") != NULL,
                  "%s", text);
    free(text);
    for (size_t i = 0; i < 2; i++) {
        char path[512];
        const char *name = i == 0 ? "shared" : "v4only";
        FILE *f;
        char line[256];

        snprintf(path, sizeof(path), "%s/%s/dnsmasq.conf", broker->dir, name);
        f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f) != NULL)
            ck_assert_msg(strncmp(line, "enable-ra", 9) != 0 &&
                              strncmp(line, "bind-dynamic", 12) != 0 &&
                              strstr(line, "ra-") == NULL,
                          "%s: %s", path, line);
        fclose(f);
    }
    ck_assert_uint_eq(radv_count(), 1);
    json_decref(shared);
    json_decref(v4only);
}
END_TEST

// The instance is supervised like a network's dnsmasq: killed, it is
// started again, and a guest that comes afterwards takes its address.
START_TEST(test_killed_instance_is_restarted) {
    struct radv_wait w;
    json_t *shared;
    char needle[128];

    harness_start(broker, IDLE);
    shared = acquire("shared");
    wait_slaac(add_guest(shared), shared);
    w.old = radv_pid();
    ck_assert_int_gt(w.old, 0);
    ck_assert_int_eq(kill(w.old, SIGKILL), 0);
    ck_assert_msg(harness_wait_for(one_new_radv, &w),
                  "the instance was not restarted (log: %s)", broker->log_path);
    snprintf(needle, sizeof(needle),
             "router advertisements: dnsmasq (pid %d) was killed by SIGKILL",
             (int)w.old);
    ck_assert(harness_broker_wait_log(broker, needle, 1));
    ck_assert(harness_broker_wait_log(
        broker, "router advertisements: dnsmasq restarted", 1));
    wait_slaac(add_guest(shared), shared);
    // Nothing of a network's was degraded by it.
    ck_assert_uint_eq(harness_broker_log_count(broker, "no longer restarted"),
                      0);
    json_decref(shared);
}
END_TEST

// A killed broker's instance is verified and replaced by the next one:
// exactly one runs afterwards, and the adopted network is advertised on.
START_TEST(test_one_instance_after_broker_sigkill) {
    struct radv_wait w;
    json_t *shared;

    harness_start(broker, IDLE);
    shared = acquire("shared");
    // A port: the network is adopted by the next broker.
    wait_slaac(add_guest(shared), shared);
    w.old = radv_pid();
    ck_assert_int_gt(w.old, 0);
    ck_assert(harness_broker_signal(broker, SIGKILL));
    ck_assert_int_ne(harness_broker_wait_exit(broker), -1);
    close(connection);
    connection = -1;
    // Left running by the killed broker.
    ck_assert_uint_eq(radv_count(), 1);

    ck_assert(harness_broker_start(broker, IDLE, NULL));
    ck_assert(harness_broker_wait_log(broker, "adopted network 'shared'", 1));
    ck_assert_msg(harness_wait_for(one_new_radv, &w),
                  "not exactly one new instance (log: %s)", broker->log_path);
    ck_assert(harness_broker_wait_log(
        broker, "router advertisements: killed stale dnsmasq", 1));
    wait_slaac(add_guest(shared), shared);
    ck_assert_uint_eq(radv_count(), 1);
    json_decref(shared);
}
END_TEST

// A SIGTERM with a network left running (a port) leaves the instance too;
// one without stops it.
START_TEST(test_exit_leaves_instance_only_with_networks) {
    struct radv_wait w = {0};
    json_t *shared;

    harness_start(broker, IDLE);
    shared = acquire("shared");
    ck_assert_ptr_nonnull(add_guest(shared));
    ck_assert(harness_wait_for(one_new_radv, &w));
    close(connection);
    connection = -1;
    ck_assert(harness_broker_wait_no_peers(broker));
    ck_assert(harness_broker_signal(broker, SIGTERM));
    ck_assert_int_eq(harness_broker_wait_exit(broker), 0);
    ck_assert(harness_link_exists("vmb-shared"));
    ck_assert_uint_eq(radv_count(), 1);

    // The next broker adopts shared and replaces the instance; with no
    // network left at its exit, the instance goes with it.
    w.old = radv_pid();
    // A short idle delay: once its guest has gone, shared is removed.
    ck_assert(harness_broker_start(broker, "0.5", NULL));
    ck_assert(harness_wait_for(one_new_radv, &w));
    topology_free(topology);
    topology = NULL;
    ck_assert(harness_wait_link_gone("vmb-shared"));
    ck_assert(harness_broker_signal(broker, SIGTERM));
    ck_assert_int_eq(harness_broker_wait_exit(broker), 0);
    ck_assert_uint_eq(radv_count(), 0);
    json_decref(shared);
}
END_TEST

// A broker stopped while its instance is still starting (a dnsmasq that
// takes its time before it runs) ends it and exits cleanly: the stop's
// last jobs ran after the broker's threads were gone (use after free).
START_TEST(test_exit_while_instance_starts) {
    char wrapper[PATH_MAX];
    json_t *shared;
    FILE *f;

    snprintf(wrapper, sizeof(wrapper), "%s/slow-radv-dnsmasq.sh", broker->dir);
    f = fopen(wrapper, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "#!/bin/sh\n"
               "case \"$*\" in *" RADV_DIR "/*) sleep 3 ;; esac\n"
               "exec /usr/sbin/dnsmasq \"$@\"\n");
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(wrapper, 0755), 0);
    ck_assert_int_eq(setenv("VMNET_BROKER_DNSMASQ", wrapper, 1), 0);
    harness_start(broker, IDLE);
    unsetenv("VMNET_BROKER_DNSMASQ");
    shared = acquire("shared");
    ck_assert_ptr_nonnull(shared);
    close(connection);
    connection = -1;
    ck_assert(harness_broker_wait_no_peers(broker));
    ck_assert(harness_broker_signal(broker, SIGTERM));
    ck_assert_int_eq(harness_broker_wait_exit(broker), 0);
    ck_assert_uint_eq(radv_count(), 0);
    json_decref(shared);
}
END_TEST

static Suite *radv_suite(void) {
    Suite *s = suite_create("router_advertisements");
    TCase *tc = tcase_create("router_advertisements");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_network_without_ipv6_gets_no_advertisement);
    tcase_add_test(tc, test_killed_instance_is_restarted);
    tcase_add_test(tc, test_one_instance_after_broker_sigkill);
    tcase_add_test(tc, test_exit_leaves_instance_only_with_networks);
    tcase_add_test(tc, test_exit_while_instance_starts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(radv_suite());
}
