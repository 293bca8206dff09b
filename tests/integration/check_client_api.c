// SPDX-License-Identifier: Apache-2.0
// The client library's typed accessors, status object, timeouts, cancelling
// and fork safety, against the real broker.
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define IDLE "60"
// Short enough to keep the tests quick, long enough that a broker that is
// merely slow (valgrind, a loaded machine) is not mistaken for a stopped one
// in the tests that expect an answer.
#define TIMEOUT_MS 400u
// What "returns within the timeout" allows on top: a loaded machine's
// scheduling, never a broker's reply.
#define MARGIN_SECONDS 3.0

static struct harness_broker *broker;

static void setup(void) { broker = harness_test_setup(); }

static void teardown(void) {
    // A test that failed with the broker stopped must not leave it stopped:
    // harness_broker_free() asks it to exit.
    if (broker != NULL)
        harness_broker_signal(broker, SIGCONT);
    harness_broker_free(broker);
    broker = NULL;
}

START_TEST(test_version) {
    unsigned major, minor, patch;
    char rest;

    ck_assert_str_eq(vmnet_broker_version(), PROJECT_VERSION);
    ck_assert_int_eq(sscanf(vmnet_broker_version(), "%u.%u.%u%c", &major,
                            &minor, &patch, &rest),
                     3);
}
END_TEST

// Every accessor of a built-in network against the reply's own JSON and
// the namespace.
START_TEST(test_network_accessors_shared) {
    vmnet_broker_connection_t *connection;
    vmnet_broker_network_t *network = NULL;
    json_t *json;

    harness_start(broker, IDLE);
    connection = harness_connect(broker);
    ck_assert_ptr_nonnull(connection);
    ck_assert_int_eq(
        vmnet_broker_connection_acquire(connection, "shared", &network),
        VMNET_BROKER_SUCCESS);
    json = json_loads(vmnet_broker_network_json(network), 0, NULL);
    ck_assert_ptr_nonnull(json);

    ck_assert_uint_eq(vmnet_broker_network_prefix_length(network), 24);
    ck_assert_int_eq(json_integer_value(json_object_get(json, "prefix_length")),
                     24);
    // shared runs DHCP, DNS and IPv6 by default: each is sent and read.
    ck_assert_str_eq(vmnet_broker_network_dhcp_start(network),
                     json_string_value(json_object_get(json, "dhcp_start")));
    ck_assert_str_eq(vmnet_broker_network_dhcp_end(network),
                     json_string_value(json_object_get(json, "dhcp_end")));
    ck_assert_str_eq(vmnet_broker_network_dns(network),
                     vmnet_broker_network_gateway(network));
    ck_assert_str_eq(vmnet_broker_network_ipv6_prefix(network),
                     json_string_value(json_object_get(json, "ipv6_prefix")));
    ck_assert_msg(
        strncmp(vmnet_broker_network_ipv6_prefix(network), "fd", 2) == 0,
        "not a ULA prefix: %s", vmnet_broker_network_ipv6_prefix(network));
    ck_assert_uint_eq(vmnet_broker_network_ipv6_prefix_length(network), 64);
    // The built-in network has no description.
    ck_assert_ptr_null(vmnet_broker_network_description(network));
    ck_assert_ptr_null(json_object_get(json, "description"));

    json_decref(json);
    vmnet_broker_network_free(network);
    vmnet_broker_connection_close(connection);
}
END_TEST

// A configured network: description, static DHCP range and IPv6 prefix are
// the file's, and a network without DHCP and IPv6 reads as absent.
START_TEST(test_network_accessors_configured) {
    vmnet_broker_connection_t *connection;
    vmnet_broker_network_t *lab = NULL;
    vmnet_broker_network_t *bare = NULL;

    ck_assert(harness_broker_write_config(
        broker, "lab",
        "{\"mode\": \"host\", \"description\": \"The lab\","
        " \"subnet\": \"10.77.0.0\", \"mask\": \"255.255.255.0\","
        " \"dhcp_range\": {\"start\": \"10.77.0.100\","
        " \"end\": \"10.77.0.150\"},"
        " \"ipv6_prefix\": \"fd00:77::\"}\n"));
    ck_assert(harness_broker_write_config(
        broker, "bare",
        "{\"mode\": \"host\", \"subnet\": \"10.78.0.0\", \"mask\":"
        " \"255.255.0.0\", \"dhcp\": false, \"ipv6\": false}\n"));
    harness_start(broker, IDLE);
    connection = harness_connect(broker);
    ck_assert_ptr_nonnull(connection);

    ck_assert_int_eq(vmnet_broker_connection_acquire(connection, "lab", &lab),
                     VMNET_BROKER_SUCCESS);
    ck_assert_str_eq(vmnet_broker_network_description(lab), "The lab");
    ck_assert_str_eq(vmnet_broker_network_subnet(lab), "10.77.0.0");
    ck_assert_uint_eq(vmnet_broker_network_prefix_length(lab), 24);
    ck_assert_str_eq(vmnet_broker_network_dhcp_start(lab), "10.77.0.100");
    ck_assert_str_eq(vmnet_broker_network_dhcp_end(lab), "10.77.0.150");
    ck_assert_str_eq(vmnet_broker_network_ipv6_prefix(lab), "fd00:77::");
    ck_assert_uint_eq(vmnet_broker_network_ipv6_prefix_length(lab), 64);

    ck_assert_int_eq(vmnet_broker_connection_acquire(connection, "bare", &bare),
                     VMNET_BROKER_SUCCESS);
    ck_assert_uint_eq(vmnet_broker_network_prefix_length(bare), 16);
    ck_assert_ptr_null(vmnet_broker_network_description(bare));
    ck_assert_ptr_null(vmnet_broker_network_dhcp_start(bare));
    ck_assert_ptr_null(vmnet_broker_network_dhcp_end(bare));
    ck_assert_ptr_null(vmnet_broker_network_ipv6_prefix(bare));
    ck_assert_uint_eq(vmnet_broker_network_ipv6_prefix_length(bare), 0);

    vmnet_broker_network_free(lab);
    vmnet_broker_network_free(bare);
    vmnet_broker_connection_close(connection);
}
END_TEST

// ---- A reply missing keys ---------------------------------------------------
//
// The broker always sends every key; an older or newer one may not. A
// one-shot server in a thread answers the first request with a fixed reply,
// so the library's handling of a reply it did not expect is what is tested.

struct canned_server {
    int listener;
    const char *reply;
    pthread_t thread;
};

static void *serve_one(void *arg) {
    struct canned_server *server = arg;
    char request[4096];
    int fd = accept(server->listener, NULL, NULL);

    if (fd < 0)
        return NULL;
    if (recv(fd, request, sizeof(request), 0) > 0)
        send(fd, server->reply, strlen(server->reply), MSG_NOSIGNAL);
    // Held until the client hangs up, as the broker would.
    while (recv(fd, request, sizeof(request), 0) > 0)
        ;
    close(fd);
    return NULL;
}

static void canned_start(struct canned_server *server, const char *path,
                         const char *reply) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};

    server->reply = reply;
    snprintf(address.sun_path, sizeof(address.sun_path), "%s", path);
    unlink(path);
    server->listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(server->listener, 0);
    ck_assert_int_eq(
        bind(server->listener, (struct sockaddr *)&address, sizeof(address)),
        0);
    ck_assert_int_eq(listen(server->listener, 1), 0);
    ck_assert_int_eq(pthread_create(&server->thread, NULL, serve_one, server),
                     0);
}

static void canned_stop(struct canned_server *server, const char *path) {
    pthread_join(server->thread, NULL);
    close(server->listener);
    unlink(path);
}

START_TEST(test_network_accessors_missing_keys) {
    struct canned_server server;
    char path[128];
    vmnet_broker_connection_t *connection = NULL;
    vmnet_broker_network_t *network = NULL;

    snprintf(path, sizeof(path), "%s/canned.sock", broker->dir);
    canned_start(&server, path,
                 "{\"network\":{\"name\":\"old\",\"future_key\":[1,2]}}");
    ck_assert_int_eq(vmnet_broker_connect(path, &connection),
                     VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(
        vmnet_broker_connection_acquire(connection, "old", &network),
        VMNET_BROKER_SUCCESS);
    ck_assert_str_eq(vmnet_broker_network_name(network), "old");
    ck_assert_ptr_null(vmnet_broker_network_mode(network));
    ck_assert_ptr_null(vmnet_broker_network_uuid(network));
    ck_assert_ptr_null(vmnet_broker_network_bridge(network));
    ck_assert_ptr_null(vmnet_broker_network_subnet(network));
    ck_assert_ptr_null(vmnet_broker_network_mask(network));
    ck_assert_ptr_null(vmnet_broker_network_gateway(network));
    ck_assert_ptr_null(vmnet_broker_network_description(network));
    ck_assert_ptr_null(vmnet_broker_network_dhcp_start(network));
    ck_assert_ptr_null(vmnet_broker_network_dhcp_end(network));
    ck_assert_ptr_null(vmnet_broker_network_dns(network));
    ck_assert_ptr_null(vmnet_broker_network_ipv6_prefix(network));
    ck_assert_uint_eq(vmnet_broker_network_prefix_length(network), 0);
    ck_assert_uint_eq(vmnet_broker_network_ipv6_prefix_length(network), 0);
    ck_assert_uint_eq(vmnet_broker_network_mtu(network), 0);
    // A key the library does not know stays reachable.
    ck_assert_ptr_nonnull(
        strstr(vmnet_broker_network_json(network), "\"future_key\":[1,2]"));
    vmnet_broker_network_free(network);
    vmnet_broker_connection_close(connection);
    canned_stop(&server, path);

    // Every accessor takes NULL.
    ck_assert_ptr_null(vmnet_broker_network_dns(NULL));
    ck_assert_uint_eq(vmnet_broker_network_ipv6_prefix_length(NULL), 0);
    ck_assert_ptr_null(vmnet_broker_interface_network(NULL));
    ck_assert_ptr_null(vmnet_broker_interface_bridge(NULL));
}
END_TEST

START_TEST(test_status_missing_keys) {
    struct canned_server server;
    char path[128];
    vmnet_broker_connection_t *connection = NULL;
    vmnet_broker_status_t *status = NULL;

    snprintf(path, sizeof(path), "%s/canned.sock", broker->dir);
    // An old broker: no version, a network with nothing but its name, a
    // peer with mistyped fields.
    canned_start(&server, path,
                 "{\"status\":{\"networks\":[{\"name\":\"n\"},7],"
                 "\"peers\":[{\"pid\":\"x\",\"networks\":[3]}]}}");
    ck_assert_int_eq(vmnet_broker_connect(path, &connection),
                     VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(vmnet_broker_connection_get_status(connection, &status),
                     VMNET_BROKER_SUCCESS);
    ck_assert_ptr_null(vmnet_broker_status_broker_version(status));
    ck_assert_uint_eq(vmnet_broker_status_network_count(status), 2);
    ck_assert_str_eq(vmnet_broker_status_network_name(status, 0), "n");
    ck_assert_ptr_null(vmnet_broker_status_network_mode(status, 0));
    ck_assert_ptr_null(vmnet_broker_status_network_uuid(status, 0));
    ck_assert_uint_eq(vmnet_broker_status_network_peers(status, 0), 0);
    ck_assert(vmnet_broker_status_network_idle_remaining(status, 0) < 0);
    ck_assert(!vmnet_broker_status_network_persistent(status, 0));
    ck_assert(!vmnet_broker_status_network_degraded(status, 0));
    ck_assert_ptr_null(vmnet_broker_status_network_degraded_reason(status, 0));
    // Not an object: every field reads as absent.
    ck_assert_ptr_null(vmnet_broker_status_network_name(status, 1));
    ck_assert_uint_eq(vmnet_broker_status_peer_count(status), 1);
    ck_assert_int_eq(vmnet_broker_status_peer_pid(status, 0), -1);
    ck_assert_int_eq(vmnet_broker_status_peer_uid(status, 0), -1);
    ck_assert_uint_eq(vmnet_broker_status_peer_network_count(status, 0), 1);
    ck_assert_ptr_null(vmnet_broker_status_peer_network_name(status, 0, 0));
    vmnet_broker_status_free(status);
    vmnet_broker_connection_close(connection);
    canned_stop(&server, path);
}
END_TEST

// ---- The status object --------------------------------------------------

static ssize_t find_peer(const vmnet_broker_status_t *status, pid_t pid) {
    for (size_t i = 0; i < vmnet_broker_status_peer_count(status); i++)
        if (vmnet_broker_status_peer_pid(status, i) == pid)
            return (ssize_t)i;
    return -1;
}

// How many networks the peers of process pid hold, over all of them.
static size_t held_by_pid(const vmnet_broker_status_t *status, pid_t pid) {
    size_t held = 0;
    for (size_t i = 0; i < vmnet_broker_status_peer_count(status); i++)
        if (vmnet_broker_status_peer_pid(status, i) == pid)
            held += vmnet_broker_status_peer_network_count(status, i);
    return held;
}

static ssize_t find_network(const vmnet_broker_status_t *status,
                            const char *name) {
    for (size_t i = 0; i < vmnet_broker_status_network_count(status); i++)
        if (strcmp(vmnet_broker_status_network_name(status, i), name) == 0)
            return (ssize_t)i;
    return -1;
}

START_TEST(test_status_object) {
    const char *both[] = {"shared", "host"};
    vmnet_broker_connection_t *connection;
    vmnet_broker_network_t *network = NULL;
    vmnet_broker_status_t *status = NULL;
    char *json_text = NULL;
    json_t *decoded;
    pid_t holder;
    ssize_t shared, host, me, other;

    harness_start(broker, IDLE);
    holder = harness_spawn_holder(broker, both, 2);
    ck_assert_int_gt(holder, 0);
    connection = harness_connect(broker);
    ck_assert_ptr_nonnull(connection);
    ck_assert_int_eq(
        vmnet_broker_connection_acquire(connection, "shared", &network),
        VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(vmnet_broker_connection_get_status(connection, &status),
                     VMNET_BROKER_SUCCESS);

    ck_assert_str_eq(vmnet_broker_status_broker_version(status),
                     PROJECT_VERSION);
    ck_assert_uint_eq(vmnet_broker_status_network_count(status), 2);
    shared = find_network(status, "shared");
    host = find_network(status, "host");
    ck_assert_int_ge(shared, 0);
    ck_assert_int_ge(host, 0);
    ck_assert_str_eq(vmnet_broker_status_network_mode(status, shared),
                     "shared");
    ck_assert_str_eq(vmnet_broker_status_network_bridge(status, shared),
                     vmnet_broker_network_bridge(network));
    ck_assert_str_eq(vmnet_broker_status_network_subnet(status, shared),
                     vmnet_broker_network_subnet(network));
    ck_assert_str_eq(vmnet_broker_status_network_uuid(status, shared),
                     vmnet_broker_network_uuid(network));
    ck_assert_uint_eq(vmnet_broker_status_network_prefix_length(status, shared),
                      24);
    ck_assert_uint_eq(vmnet_broker_status_network_peers(status, shared), 2);
    ck_assert_uint_eq(vmnet_broker_status_network_peers(status, host), 1);
    ck_assert(vmnet_broker_status_network_idle_remaining(status, shared) < 0);
    ck_assert(!vmnet_broker_status_network_persistent(status, shared));
    ck_assert(!vmnet_broker_status_network_degraded(status, shared));
    ck_assert_ptr_null(
        vmnet_broker_status_network_degraded_reason(status, shared));

    ck_assert_uint_eq(vmnet_broker_status_peer_count(status), 2);
    me = find_peer(status, getpid());
    other = find_peer(status, holder);
    ck_assert_int_ge(me, 0);
    ck_assert_int_ge(other, 0);
    ck_assert_int_eq(vmnet_broker_status_peer_uid(status, me), getuid());
    ck_assert_int_eq(vmnet_broker_status_peer_gid(status, me), getgid());
    ck_assert_uint_eq(vmnet_broker_status_peer_network_count(status, me), 1);
    ck_assert_str_eq(vmnet_broker_status_peer_network_name(status, me, 0),
                     "shared");
    ck_assert_uint_eq(vmnet_broker_status_peer_network_count(status, other), 2);
    ck_assert_ptr_null(vmnet_broker_status_peer_network_name(status, other, 2));

    // Out of range, and NULL, read as absent.
    ck_assert_ptr_null(vmnet_broker_status_network_name(status, 2));
    ck_assert_uint_eq(vmnet_broker_status_network_peers(status, 99), 0);
    ck_assert_int_eq(vmnet_broker_status_peer_pid(status, 2), -1);
    ck_assert_uint_eq(vmnet_broker_status_peer_network_count(status, 2), 0);
    ck_assert_uint_eq(vmnet_broker_status_network_count(NULL), 0);
    ck_assert_ptr_null(vmnet_broker_status_json(NULL));

    // The JSON text is the same status the char ** call returns.
    decoded = json_loads(vmnet_broker_status_json(status), 0, NULL);
    ck_assert_ptr_nonnull(decoded);
    ck_assert_uint_eq(json_array_size(json_object_get(decoded, "peers")), 2);
    json_decref(decoded);
    ck_assert_int_eq(vmnet_broker_connection_status(connection, &json_text),
                     VMNET_BROKER_SUCCESS);
    ck_assert_ptr_nonnull(strstr(json_text, "\"version\":\"" PROJECT_VERSION));
    free(json_text);

    // An idle network counts down once its last peer is gone.
    ck_assert_int_eq(harness_kill_and_reap(holder, SIGKILL) >= 0, 1);
    vmnet_broker_status_free(status);
    status = NULL;
    for (double start = harness_now();
         harness_now() - start < HARNESS_WAIT_SECONDS;) {
        vmnet_broker_status_free(status);
        status = NULL;
        ck_assert_int_eq(
            vmnet_broker_connection_get_status(connection, &status),
            VMNET_BROKER_SUCCESS);
        host = find_network(status, "host");
        if (host >= 0 &&
            vmnet_broker_status_network_idle_remaining(status, host) >= 0)
            break;
        usleep(20000);
    }
    ck_assert_int_ge(host, 0);
    ck_assert(vmnet_broker_status_network_idle_remaining(status, host) > 0);
    ck_assert(vmnet_broker_status_network_idle_remaining(status, host) <= 60);
    ck_assert_uint_eq(vmnet_broker_status_peer_count(status), 1);

    vmnet_broker_status_free(status);
    vmnet_broker_network_free(network);
    vmnet_broker_connection_close(connection);
}
END_TEST

START_TEST(test_interface_accessors) {
    vmnet_broker_connection_t *connection;
    vmnet_broker_interface_t *iface = NULL;

    harness_start(broker, IDLE);
    connection = harness_connect(broker);
    ck_assert_ptr_nonnull(connection);
    ck_assert_int_eq(
        vmnet_broker_connection_open_interface(connection, "shared", &iface),
        VMNET_BROKER_SUCCESS);
    ck_assert_str_eq(vmnet_broker_interface_network(iface), "shared");
    ck_assert_str_eq(vmnet_broker_interface_bridge(iface), "vmb-shared");
    vmnet_broker_interface_free(iface);
    vmnet_broker_connection_close(connection);
}
END_TEST

// ---- Timeouts and cancelling ------------------------------------------------

START_TEST(test_timeout_stopped_broker) {
    vmnet_broker_connection_t *connection;
    vmnet_broker_connection_t *again = NULL;
    vmnet_broker_network_t *network = NULL;
    json_t *status;
    struct pollfd watched;
    double start, elapsed;

    harness_start(broker, IDLE);
    connection = harness_connect(broker);
    ck_assert_ptr_nonnull(connection);
    ck_assert_int_eq(vmnet_broker_connection_set_timeout(NULL, 1),
                     VMNET_BROKER_INVALID_REQUEST);
    ck_assert_int_eq(
        vmnet_broker_connection_set_timeout(connection, TIMEOUT_MS),
        VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(
        vmnet_broker_connection_acquire(connection, "shared", &network),
        VMNET_BROKER_SUCCESS);
    vmnet_broker_network_free(network);
    network = NULL;

    ck_assert(harness_broker_signal(broker, SIGSTOP));
    start = harness_now();
    ck_assert_int_eq(
        vmnet_broker_connection_acquire(connection, "host", &network),
        VMNET_BROKER_XPC_FAILURE);
    elapsed = harness_now() - start;
    ck_assert_ptr_null(network);
    ck_assert_msg(elapsed >= TIMEOUT_MS / 1000.0 - 0.01,
                  "returned after %.3f s, before the timeout", elapsed);
    ck_assert_msg(elapsed < TIMEOUT_MS / 1000.0 + MARGIN_SECONDS,
                  "returned after %.3f s", elapsed);
    // The connection is closed: its descriptor hangs up, and it stays failed
    // even for a request the broker could answer.
    watched = (struct pollfd){.fd = vmnet_broker_connection_fd(connection),
                              .events = POLLIN};
    ck_assert_int_eq(poll(&watched, 1, 0), 1);
    ck_assert(watched.revents & POLLHUP);
    ck_assert(harness_broker_signal(broker, SIGCONT));
    ck_assert_int_eq(vmnet_broker_connection_release(connection, "shared"),
                     VMNET_BROKER_XPC_FAILURE);

    // A new connection works once the broker runs again, and the late reply
    // never reached anyone: the old peer is gone with its reference.
    ck_assert_int_eq(vmnet_broker_connect(broker->socket_path, &again),
                     VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(vmnet_broker_connection_acquire(again, "host", &network),
                     VMNET_BROKER_SUCCESS);
    ck_assert_str_eq(vmnet_broker_network_name(network), "host");
    ck_assert(harness_broker_wait_log(broker, "disconnected", 1));
    status = harness_status(broker);
    ck_assert_ptr_nonnull(status);
    ck_assert_uint_eq(harness_status_count_pid(status, getpid()), 2);
    ck_assert(!harness_status_pid_holds(status, getpid(), "shared"));
    json_decref(status);

    vmnet_broker_network_free(network);
    vmnet_broker_connection_close(again);
    vmnet_broker_connection_close(connection);
}
END_TEST

struct blocked_call {
    vmnet_broker_connection_t *connection;
    vmnet_broker_return_t status;
    double returned_at;
};

static void *acquire_blocked(void *arg) {
    struct blocked_call *call = arg;
    vmnet_broker_network_t *network = NULL;

    call->status =
        vmnet_broker_connection_acquire(call->connection, "host", &network);
    call->returned_at = harness_now();
    vmnet_broker_network_free(network);
    return NULL;
}

START_TEST(test_shutdown_cancels_waiting_call) {
    struct blocked_call call = {.status = VMNET_BROKER_SUCCESS};
    pthread_t thread;
    double cancelled_at;

    harness_start(broker, IDLE);
    call.connection = harness_connect(broker);
    ck_assert_ptr_nonnull(call.connection);
    // Forever: only the shutdown can end the wait.
    ck_assert_int_eq(vmnet_broker_connection_set_timeout(call.connection, 0),
                     VMNET_BROKER_SUCCESS);
    ck_assert(harness_broker_signal(broker, SIGSTOP));
    ck_assert_int_eq(pthread_create(&thread, NULL, acquire_blocked, &call), 0);
    usleep(200000);
    cancelled_at = harness_now();
    vmnet_broker_connection_shutdown(call.connection);
    pthread_join(thread, NULL);
    ck_assert(harness_broker_signal(broker, SIGCONT));
    ck_assert_int_eq(call.status, VMNET_BROKER_XPC_FAILURE);
    ck_assert_msg(call.returned_at - cancelled_at < MARGIN_SECONDS,
                  "the call returned %.3f s after the shutdown",
                  call.returned_at - cancelled_at);
    ck_assert_int_eq(vmnet_broker_connection_release(call.connection, "host"),
                     VMNET_BROKER_XPC_FAILURE);
    vmnet_broker_connection_shutdown(NULL);
    vmnet_broker_connection_close(call.connection);
}
END_TEST

// The process-wide connection takes its timeout from the environment.
static int process_wide_times_out(void *arg) {
    vmnet_broker_return_t status = VMNET_BROKER_SUCCESS;
    vmnet_broker_network_t *network;
    double start = harness_now(), elapsed;

    (void)arg;
    network = vmnet_broker_acquire_network("shared", &status);
    elapsed = harness_now() - start;
    vmnet_broker_network_free(network);
    if (status != VMNET_BROKER_XPC_FAILURE)
        return 10 + (int)status;
    return elapsed < TIMEOUT_MS / 1000.0 + MARGIN_SECONDS ? 0 : 2;
}

START_TEST(test_process_wide_timeout_from_environment) {
    char value[16];

    harness_start(broker, IDLE);
    ck_assert_int_eq(setenv(VMNET_BROKER_SOCKET_ENV, broker->socket_path, 1),
                     0);
    snprintf(value, sizeof(value), "%u", TIMEOUT_MS);
    ck_assert_int_eq(setenv(VMNET_BROKER_TIMEOUT_MS, value, 1), 0);
    ck_assert(harness_broker_signal(broker, SIGSTOP));
    ck_assert_int_eq(harness_run_child(process_wide_times_out, NULL), 0);
    ck_assert(harness_broker_signal(broker, SIGCONT));
}
END_TEST

// ---- Fork ------------------------------------------------------------------

// In the child: acquire through the process-wide API, then check that the
// broker sees two peers, the parent's and this one, both holding shared.
static int child_acquires_own_peer(void *arg) {
    pid_t parent = *(const pid_t *)arg;
    vmnet_broker_return_t status = VMNET_BROKER_SUCCESS;
    vmnet_broker_network_t *network;
    vmnet_broker_connection_t *connection = NULL;
    vmnet_broker_status_t *state = NULL;
    int result = 1;
    ssize_t me, them;

    network = vmnet_broker_acquire_network("shared", &status);
    if (network == NULL)
        return 10 + (int)status;
    if (vmnet_broker_connect(NULL, &connection) != VMNET_BROKER_SUCCESS ||
        vmnet_broker_connection_get_status(connection, &state) !=
            VMNET_BROKER_SUCCESS)
        goto out;
    me = find_peer(state, getpid());
    them = find_peer(state, parent);
    result = 2;
    if (me < 0 || them < 0)
        goto out;
    // The child has two peers (the process-wide one holding shared, and
    // this one asking), the parent one.
    result = 3;
    if (held_by_pid(state, getpid()) != 1 || held_by_pid(state, parent) != 1)
        goto out;
    // Released on the child's own connection: the parent's stays.
    result = 4;
    if (vmnet_broker_release_network("shared") != VMNET_BROKER_SUCCESS)
        goto out;
    result = 0;
out:
    vmnet_broker_status_free(state);
    vmnet_broker_connection_close(connection);
    vmnet_broker_network_free(network);
    return result;
}

START_TEST(test_fork_child_gets_own_peer) {
    vmnet_broker_return_t status = VMNET_BROKER_SUCCESS;
    vmnet_broker_network_t *network;
    pid_t parent = getpid();
    json_t *state;

    harness_start(broker, IDLE);
    ck_assert_int_eq(setenv(VMNET_BROKER_SOCKET_ENV, broker->socket_path, 1),
                     0);
    network = vmnet_broker_acquire_network("shared", &status);
    ck_assert_int_eq(status, VMNET_BROKER_SUCCESS);
    vmnet_broker_network_free(network);

    ck_assert_int_eq(harness_run_child(child_acquires_own_peer, &parent), 0);

    // The parent's reference outlived the child and its release.
    state = harness_status(broker);
    ck_assert_ptr_nonnull(state);
    ck_assert(harness_status_pid_holds(state, parent, "shared"));
    json_decref(state);
    ck_assert_int_eq(vmnet_broker_release_network("shared"),
                     VMNET_BROKER_SUCCESS);
}
END_TEST

// A thread of the parent is inside a process-wide call (the broker is
// stopped) when the parent forks: the child must not inherit the held lock.
static void *process_wide_blocked(void *arg) {
    vmnet_broker_return_t *status = arg;
    vmnet_broker_network_free(vmnet_broker_acquire_network("host", status));
    return NULL;
}

static int child_calls_while_parent_waits(void *arg) {
    vmnet_broker_return_t status = VMNET_BROKER_SUCCESS;
    vmnet_broker_network_t *network;

    (void)arg;
    // The broker is still stopped: the child's own connection times out
    // (it would hang forever on an inherited, held lock).
    network = vmnet_broker_acquire_network("shared", &status);
    vmnet_broker_network_free(network);
    return status == VMNET_BROKER_XPC_FAILURE ? 0 : 10 + (int)status;
}

START_TEST(test_fork_while_parent_thread_waits) {
    vmnet_broker_return_t status = VMNET_BROKER_SUCCESS;
    vmnet_broker_network_t *network;
    pthread_t thread;
    char value[16];

    harness_start(broker, IDLE);
    ck_assert_int_eq(setenv(VMNET_BROKER_SOCKET_ENV, broker->socket_path, 1),
                     0);
    snprintf(value, sizeof(value), "%u", TIMEOUT_MS * 10);
    ck_assert_int_eq(setenv(VMNET_BROKER_TIMEOUT_MS, value, 1), 0);
    network = vmnet_broker_acquire_network("shared", &status);
    ck_assert_int_eq(status, VMNET_BROKER_SUCCESS);
    vmnet_broker_network_free(network);

    ck_assert(harness_broker_signal(broker, SIGSTOP));
    ck_assert_int_eq(
        pthread_create(&thread, NULL, process_wide_blocked, &status), 0);
    usleep(200000); // the thread now holds the lock, waiting for a reply
    snprintf(value, sizeof(value), "%u", TIMEOUT_MS);
    ck_assert_int_eq(setenv(VMNET_BROKER_TIMEOUT_MS, value, 1), 0);
    ck_assert_int_eq(harness_run_child(child_calls_while_parent_waits, NULL),
                     0);
    ck_assert(harness_broker_signal(broker, SIGCONT));
    pthread_join(thread, NULL);
    // The parent's waiting call was answered once the broker continued.
    ck_assert_int_eq(status, VMNET_BROKER_SUCCESS);
}
END_TEST

static Suite *client_api_suite(void) {
    Suite *s = suite_create("client_api");
    TCase *tc = tcase_create("client_api");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_version);
    tcase_add_test(tc, test_network_accessors_shared);
    tcase_add_test(tc, test_network_accessors_configured);
    tcase_add_test(tc, test_network_accessors_missing_keys);
    tcase_add_test(tc, test_status_missing_keys);
    tcase_add_test(tc, test_status_object);
    tcase_add_test(tc, test_interface_accessors);
    tcase_add_test(tc, test_timeout_stopped_broker);
    tcase_add_test(tc, test_shutdown_cancels_waiting_call);
    tcase_add_test(tc, test_process_wide_timeout_from_environment);
    tcase_add_test(tc, test_fork_child_gets_own_peer);
    tcase_add_test(tc, test_fork_while_parent_thread_waits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(client_api_suite());
}
