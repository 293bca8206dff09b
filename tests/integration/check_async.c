// SPDX-License-Identifier: Apache-2.0
// The real broker never waits for a network: requests during a slow
// dnsmasq start, one creation for many acquirers, an acquire racing a
// removal, and 190 networks at once.
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define WAITERS 16
#define MANY_NETWORKS 190
#define PER_CONNECTION 8 // a peer holds at most 8 networks

static struct harness_broker *broker;
static char gate[160];

static void setup(void) { broker = harness_test_setup(); }

static void teardown(void) {
    // Never leave a wrapper waiting.
    if (gate[0] != '\0')
        close(open(gate, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    unsetenv("VMNET_BROKER_DNSMASQ");
    harness_broker_free(broker);
    broker = NULL;
}

// A dnsmasq that starts only once the test creates the gate file: the
// network stays "creating" for exactly as long as the test needs.
static void use_gated_dnsmasq(void) {
    char wrapper[160];
    FILE *f;

    snprintf(gate, sizeof(gate), "%s/go", broker->dir);
    snprintf(wrapper, sizeof(wrapper), "%s/gated-dnsmasq.sh", broker->dir);
    f = fopen(wrapper, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "#!/bin/sh\n"
            "while [ ! -e %s ]; do sleep 0.02; done\n"
            "exec /usr/sbin/dnsmasq \"$@\"\n",
            gate);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(wrapper, 0755), 0);
    ck_assert_int_eq(setenv("VMNET_BROKER_DNSMASQ", wrapper, 1), 0);
}

static bool send_text(int fd, const char *text) {
    return harness_raw_send(fd, text, strlen(text));
}

static const char *network_state(json_t *status, const char *name) {
    json_t *network = harness_status_network(status, name);
    return json_string_value(json_object_get(network, "state"));
}

static bool shared_listed(void *arg) {
    json_t *status = harness_status(broker);
    bool listed = harness_status_network(status, "shared") != NULL;
    (void)arg;
    json_decref(status);
    return listed;
}

START_TEST(test_requests_answered_while_dnsmasq_starts) {
    int fds[WAITERS];
    json_t *status;
    char uuid[64] = "";
    int leaver;

    use_gated_dnsmasq();
    harness_start(broker, "0.2");
    for (int i = 0; i < WAITERS; i++) {
        fds[i] = harness_raw_connect(broker->socket_path);
        ck_assert_int_ge(fds[i], 0);
        ck_assert(send_text(
            fds[i], "{\"command\":\"acquire\",\"network_name\":\"shared\"}"));
    }
    leaver = harness_raw_connect(broker->socket_path);
    ck_assert(send_text(
        leaver, "{\"command\":\"acquire\",\"network_name\":\"shared\"}"));
    ck_assert(harness_wait_for(shared_listed, NULL));

    // dnsmasq has not started: other clients are still answered, and see
    // one network being created for all of them.
    status = harness_status(broker);
    ck_assert_ptr_nonnull(status);
    ck_assert_str_eq(network_state(status, "shared"), "creating");
    ck_assert_int_eq(json_integer_value(json_object_get(status, "creations")),
                     1);
    json_decref(status);
    // An administrator sees it too: the CLI's state column says creating,
    // not running.
    {
        const char *argv[] = {VMNET_BROKER_CLIENT_BIN, "--socket",
                              broker->socket_path, "status", NULL};
        char *output = NULL;
        int rc = harness_run(broker, argv, &output);

        ck_assert_int_eq(rc, 0);
        ck_assert_ptr_nonnull(output);
        ck_assert_msg(strstr(output, "shared") != NULL &&
                          strstr(output, "creating") != NULL,
                      "no creating network in:\n%s", output);
        free(output);
    }
    // The host network (its own dnsmasq is gated too) is no reason to wait
    // for anything either: a release of what a peer does not hold answers.
    {
        int other = harness_raw_connect(broker->socket_path);
        json_t *reply = harness_raw_request(
            other, "{\"command\":\"release\",\"network_name\":\"shared\"}");
        ck_assert_int_eq(harness_reply_error(reply), 5);
        json_decref(reply);
        close(other);
    }
    // One waiter leaves before the network is ready.
    close(leaver);

    close(open(gate, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    for (int i = 0; i < WAITERS; i++) {
        json_t *reply = harness_raw_receive(fds[i]);
        const char *got;
        ck_assert_ptr_nonnull(reply);
        ck_assert_str_eq(harness_reply_network_name(reply), "shared");
        got = json_string_value(
            json_object_get(json_object_get(reply, "network"), "uuid"));
        ck_assert_ptr_nonnull(got);
        // Everyone got the same instance.
        if (i == 0)
            snprintf(uuid, sizeof(uuid), "%s", got);
        ck_assert_str_eq(got, uuid);
        json_decref(reply);
    }
    status = harness_status(broker);
    ck_assert_str_eq(network_state(status, "shared"), "ready");
    ck_assert_int_eq(json_integer_value(json_object_get(
                         harness_status_network(status, "shared"), "peers")),
                     WAITERS);
    ck_assert_int_eq(json_integer_value(json_object_get(status, "creations")),
                     1);
    json_decref(status);
    ck_assert_uint_eq(harness_broker_log_count(broker, "created network"), 1);
    ck_assert(harness_link_exists("vmb-shared"));
    for (int i = 0; i < WAITERS; i++)
        close(fds[i]);
    ck_assert(harness_wait_link_gone("vmb-shared"));
}
END_TEST

START_TEST(test_creation_failure_reaches_every_waiter) {
    char wrapper[160];
    int fds[4];
    FILE *f;

    // A dnsmasq that fails once the gate opens.
    snprintf(gate, sizeof(gate), "%s/go", broker->dir);
    snprintf(wrapper, sizeof(wrapper), "%s/failing-dnsmasq.sh", broker->dir);
    f = fopen(wrapper, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "#!/bin/sh\n"
            "while [ ! -e %s ]; do sleep 0.02; done\n"
            "echo 'dnsmasq: failed to do anything' >&2\n"
            "exit 1\n",
            gate);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(wrapper, 0755), 0);
    ck_assert_int_eq(setenv("VMNET_BROKER_DNSMASQ", wrapper, 1), 0);
    harness_start(broker, "0.2");
    for (int i = 0; i < 4; i++) {
        fds[i] = harness_raw_connect(broker->socket_path);
        ck_assert(send_text(
            fds[i], "{\"command\":\"acquire\",\"network_name\":\"host\"}"));
    }
    close(open(gate, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    for (int i = 0; i < 4; i++) {
        json_t *reply = harness_raw_receive(fds[i]);
        ck_assert_int_eq(harness_reply_error(reply), 6);
        json_decref(reply);
        close(fds[i]);
    }
    ck_assert(!harness_link_exists("vmb-host"));
    ck_assert(harness_broker_alive(broker));
    // dnsmasq's own word on it, at the level a failure deserves.
    ck_assert_uint_ge(
        harness_broker_log_count(
            broker, "error: network host: dnsmasq: dnsmasq: failed to do"),
        1);
}
END_TEST

// A dnsmasq (the real one, as its child) that, told to stop, stops only
// once the gate file exists: the network stays "removing" for as long as the
// test needs (up to the broker's 2 s SIGKILL, which the test allows for).
// Told to stop, it writes the real dnsmasq's pid to the file stopping.
// The broker's readiness check wants its own child's pid in the pid file,
// so the wrapper writes its pid there once dnsmasq has written its own.
static void use_slow_stopping_dnsmasq(char *stopping, size_t size) {
    char wrapper[160];
    FILE *f;

    snprintf(gate, sizeof(gate), "%s/go", broker->dir);
    snprintf(stopping, size, "%s/stopping", broker->dir);
    snprintf(wrapper, sizeof(wrapper), "%s/slow-stop-dnsmasq.sh", broker->dir);
    f = fopen(wrapper, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "#!/bin/sh\n"
            "conf=\"${2#--conf-file=}\"\n"
            "pidfile=$(sed -n 's/^pid-file=//p' \"$conf\")\n"
            "stop=0\n"
            "trap 'stop=1' TERM\n"
            // dnsmasq dies with the wrapper, should the broker SIGKILL it.
            "setpriv --pdeathsig KILL /usr/sbin/dnsmasq \"$@\" &\n"
            "child=$!\n"
            "while [ \"$(cat \"$pidfile\" 2>/dev/null)\" != \"$child\" ]; do\n"
            "  kill -0 $child 2>/dev/null || exit 1\n"
            "  sleep 0.01\n"
            "done\n"
            "echo $$ > \"$pidfile.new\" && mv \"$pidfile.new\" \"$pidfile\"\n"
            "while [ $stop = 0 ]; do\n"
            "  wait $child\n"
            "  kill -0 $child 2>/dev/null || exit 0\n"
            "done\n"
            "echo $child > %s.new && mv %s.new %s\n"
            "while [ ! -e %s ]; do sleep 0.02; done\n"
            "kill -TERM $child\n"
            "wait $child\n"
            "exit 0\n",
            stopping, stopping, stopping, gate);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(wrapper, 0755), 0);
    ck_assert_int_eq(setenv("VMNET_BROKER_DNSMASQ", wrapper, 1), 0);
}

static bool file_exists(void *arg) { return access(arg, F_OK) == 0; }

// How many networks called name a status lists.
static size_t status_count(const json_t *status, const char *name) {
    json_t *networks = json_object_get(status, "networks");
    size_t count = 0;
    for (size_t i = 0; i < json_array_size(networks); i++) {
        json_t *n = json_array_get(networks, i);
        if (strcmp(json_string_value(json_object_get(n, "name")), name) == 0)
            count++;
    }
    return count;
}

// Where needle first occurs in the log at or after from, or SIZE_MAX.
static size_t log_position(const char *log, const char *needle, size_t from) {
    const char *at = strstr(log + from, needle);
    return at == NULL ? SIZE_MAX : (size_t)(at - log);
}

START_TEST(test_acquire_waits_for_removal) {
    char stopping[160];
    char uuid[64];
    json_t *reply;
    json_t *status;
    const char *got;
    char *log;
    size_t removed, created;
    int fd;

    use_slow_stopping_dnsmasq(stopping, sizeof(stopping));
    harness_start(broker, "0.2");
    fd = harness_raw_connect(broker->socket_path);
    reply = harness_raw_acquire(fd, "shared");
    ck_assert_str_eq(harness_reply_network_name(reply), "shared");
    snprintf(uuid, sizeof(uuid), "%s",
             json_string_value(
                 json_object_get(json_object_get(reply, "network"), "uuid")));
    json_decref(reply);
    close(fd);
    // The idle delay passes and the removal starts: dnsmasq has its
    // SIGTERM and holds the removal at the gate.
    ck_assert(harness_wait_for(file_exists, stopping));

    fd = harness_raw_connect(broker->socket_path);
    ck_assert(
        send_text(fd, "{\"command\":\"acquire\",\"network_name\":\"shared\"}"));
    ck_assert(harness_broker_wait_log(
        broker, "network 'shared' is being removed; creating it again", 1));
    // One instance at most is listed: not the old one, which is being
    // removed, but the new one, "creating" while it waits, and its creation
    // has not started (unless the broker lost patience with the wrapper
    // and SIGKILLed it, which ends the removal all the same).
    status = harness_status(broker);
    ck_assert_ptr_nonnull(status);
    ck_assert_uint_le(status_count(status, "shared"), 1);
    if (json_integer_value(json_object_get(status, "creations")) != 1) {
        ck_assert(harness_broker_wait_log(broker, "killing it", 1));
    } else if (status_count(status, "shared") == 1) {
        json_t *listed = harness_status_network(status, "shared");
        ck_assert_str_eq(network_state(status, "shared"), "creating");
        ck_assert_str_ne(json_string_value(json_object_get(listed, "uuid")),
                         uuid);
    }
    json_decref(status);

    close(open(gate, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    reply = harness_raw_receive(fd);
    ck_assert_ptr_nonnull(reply);
    ck_assert_str_eq(harness_reply_network_name(reply), "shared");
    got = json_string_value(
        json_object_get(json_object_get(reply, "network"), "uuid"));
    ck_assert_ptr_nonnull(got);
    ck_assert(harness_uuid_valid(got));
    // A new instance.
    ck_assert_str_ne(got, uuid);
    json_decref(reply);

    status = harness_status(broker);
    ck_assert_uint_eq(status_count(status, "shared"), 1);
    ck_assert_str_eq(network_state(status, "shared"), "ready");
    ck_assert_int_eq(json_integer_value(json_object_get(status, "creations")),
                     2);
    json_decref(status);
    // The old instance was gone before the new one was started.
    ck_assert(harness_broker_wait_log(broker, "created network 'shared'", 2));
    log = harness_broker_log(broker);
    removed = log_position(log, "network 'shared' is removed", 0);
    created = log_position(log, "creating network 'shared'",
                           log_position(log, "created network 'shared'", 0));
    ck_assert_uint_ne(removed, SIZE_MAX);
    ck_assert_uint_ne(created, SIZE_MAX);
    ck_assert_uint_lt(removed, created);
    free(log);
    ck_assert(harness_link_exists("vmb-shared"));
    close(fd);
    ck_assert(harness_wait_link_gone("vmb-shared"));
}
END_TEST

START_TEST(test_many_networks_at_once) {
    int fds[(MANY_NETWORKS + PER_CONNECTION - 1) / PER_CONNECTION];
    size_t n_fds = sizeof(fds) / sizeof(fds[0]);
    json_t *status;
    char name[16];

    for (int i = 0; i < MANY_NETWORKS; i++) {
        snprintf(name, sizeof(name), "n%03d", i);
        ck_assert(
            harness_broker_write_config(broker, name, "{\"mode\": \"host\"}"));
    }
    harness_start(broker, "60");
    for (size_t c = 0; c < n_fds; c++) {
        fds[c] = harness_raw_connect(broker->socket_path);
        ck_assert_int_ge(fds[c], 0);
    }
    for (int i = 0; i < MANY_NETWORKS; i++) {
        json_t *reply;
        snprintf(name, sizeof(name), "n%03d", i);
        reply = harness_raw_acquire(fds[i / PER_CONNECTION], name);
        ck_assert_msg(harness_reply_network_name(reply) != NULL,
                      "network %d of %d failed (log: %s)", i + 1, MANY_NETWORKS,
                      broker->log_path);
        json_decref(reply);
    }
    status = harness_status(broker);
    ck_assert_uint_eq(json_array_size(json_object_get(status, "networks")),
                      MANY_NETWORKS);
    json_decref(status);
    ck_assert_uint_eq(harness_count_links("vmb-n"), MANY_NETWORKS);
    // Every dnsmasq still runs (none died for want of a resource).
    ck_assert_uint_eq(harness_broker_log_count(broker, "while starting"), 0);
    for (size_t c = 0; c < n_fds; c++)
        close(fds[c]);
}
END_TEST

START_TEST(test_subnet_pool) {
    static const char *const args[] = {"--subnet-pool", "10.77.0.0/16", NULL};
    int fd;
    json_t *reply;

    ck_assert(harness_broker_start(broker, "60", args));
    fd = harness_raw_connect(broker->socket_path);
    reply = harness_raw_acquire(fd, "shared");
    ck_assert_str_eq(harness_reply_network_name(reply), "shared");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(reply, "network"), "subnet")),
                     "10.77.0.0");
    json_decref(reply);
    reply = harness_raw_acquire(fd, "host");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(reply, "network"), "subnet")),
                     "10.77.1.0");
    json_decref(reply);
    close(fd);
}
END_TEST

// The pid the slow-stopping wrapper wrote to stopping, or 0.
static pid_t stopping_pid(const char *stopping) {
    FILE *f = fopen(stopping, "r");
    int pid = 0;

    if (f == NULL)
        return 0;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    return (pid_t)pid;
}

// A removed network's bridge goes at once, but its subnet is free for
// another network only once its dnsmasq has exited: the sockets of a
// dnsmasq stay bound to the old gateway address after the bridge is gone,
// and a new dnsmasq there fails (EADDRINUSE). A pool of one /24 makes the
// next creation want exactly that subnet; the wrapper holds the old
// dnsmasq's exit.
START_TEST(test_freed_subnet_waits_for_dnsmasq) {
    static const char *const args[] = {"--subnet-pool", "10.78.0.0/24", NULL};
    char stopping[160];
    json_t *reply;
    const char *message;
    bool dnsmasq_ran;
    pid_t dnsmasq;
    int fd;

    use_slow_stopping_dnsmasq(stopping, sizeof(stopping));
    ck_assert(harness_broker_start(broker, "0.2", args));
    fd = harness_raw_connect(broker->socket_path);
    reply = harness_raw_acquire(fd, "shared");
    ck_assert_str_eq(harness_reply_network_name(reply), "shared");
    json_decref(reply);
    close(fd);
    // The removal has started: dnsmasq has its SIGTERM and is held.
    ck_assert(harness_wait_for(file_exists, stopping));
    dnsmasq = stopping_pid(stopping);
    ck_assert_int_gt(dnsmasq, 0);

    // The bridge does not wait for dnsmasq's exit...
    ck_assert(harness_wait_link_gone("vmb-shared"));
    dnsmasq_ran = kill(dnsmasq, 0) == 0;

    // ...but its subnet is still the removed network's.
    fd = harness_raw_connect(broker->socket_path);
    reply = harness_raw_acquire(fd, "host");
    message = json_string_value(json_object_get(reply, "message"));
    // Unless the broker lost patience with the wrapper (SIGKILL after 2 s,
    // which ends the removal all the same).
    if (!dnsmasq_ran || message == NULL ||
        strstr(message, "no free subnet") == NULL)
        ck_assert_msg(harness_broker_wait_log(broker, "killing it", 1),
                      "acquire while the old dnsmasq runs (%s): %s",
                      dnsmasq_ran ? "running" : "gone",
                      message != NULL ? message : "a network");
    json_decref(reply);

    // Once it has exited, the subnet goes to the next network.
    close(open(gate, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    ck_assert(
        harness_broker_wait_log(broker, "network 'shared' is removed", 1));
    reply = harness_raw_acquire(fd, "host");
    ck_assert_str_eq(harness_reply_network_name(reply), "host");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(reply, "network"), "subnet")),
                     "10.78.0.0");
    json_decref(reply);
    close(fd);
    ck_assert_uint_eq(
        harness_broker_log_count(broker, "Address already in use"), 0);
}
END_TEST

static Suite *async_suite(void) {
    Suite *s = suite_create("async");
    TCase *tc = tcase_create("async");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_requests_answered_while_dnsmasq_starts);
    tcase_add_test(tc, test_creation_failure_reaches_every_waiter);
    tcase_add_test(tc, test_acquire_waits_for_removal);
    tcase_add_test(tc, test_subnet_pool);
    tcase_add_test(tc, test_freed_subnet_waits_for_dnsmasq);
    tcase_add_test(tc, test_many_networks_at_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(async_suite());
}
