// SPDX-License-Identifier: Apache-2.0
// Integration test harness: a real broker in a private network namespace.
#ifndef VMNET_BROKER_TESTS_HARNESS_H
#define VMNET_BROKER_TESTS_HARNESS_H

#include <check.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "vmnet-broker.h"

// Every wait for something the broker does (start, reply, idle removal,
// exit) is bounded by this. It is far longer than any of them needs, so a
// slow machine makes a test slower, never failed.
#define HARNESS_WAIT_SECONDS 20.0

// The uid and gid unprivileged peers run as (nobody and nogroup on Debian).
#define HARNESS_NOBODY 65534

// ---- The test program ------------------------------------------------------

// Exits 77 (skipped) unless running as root, then moves the program into a
// new network namespace with lo up, so nothing it does reaches the host's
// interfaces, and makes it the reaper of its descendants' orphans. Exits 1
// if that fails. Called first in main(), and again in each test's setup so
// every test starts from an empty namespace.
void harness_enter_netns(void);

// Kills and reaps every child process still running: what a test, or a
// broker killed before it could clean up, left behind.
void harness_kill_orphans(void);

// Number of child processes of parent (0: this process) that are still
// running (zombies not counted).
size_t harness_living_children(pid_t parent);

// Runs suite with Check and returns main()'s exit status. The brokers of
// tests that failed (and so did not clean up) are ended, their logs printed
// and their directories removed.
int harness_run_suite(Suite *suite);

struct harness_broker;

// A test's checked setup: enters a fresh namespace and returns a broker
// that is prepared but not started. Fails the test when it cannot.
struct harness_broker *harness_test_setup(void);

// ---- The broker process ----------------------------------------------------

struct harness_broker {
    pid_t pid;       // 0 when not running
    int wait_status; // how it ended, once it has
    // Where the current run's lines start in the log: a test may start the
    // broker again on the same directory.
    size_t log_start;
    // A fixed-length mkdtemp() name under /tmp, so every path below fits.
    char dir[64];
    char socket_path[96];
    char config_dir[96];
    char log_path[96];
};

// Makes a temporary directory holding the socket, the config directory and
// the log. Returns NULL on failure.
struct harness_broker *harness_broker_new(void);

// Writes text to <config_dir>/<name>.json. Returns false on failure.
bool harness_broker_write_config(const struct harness_broker *broker,
                                 const char *name, const char *text);

// Starts the broker with --socket, --config-dir, --idle-timeout idle and
// extra_args (NULL-terminated, may be NULL), its stderr and stdout in the
// log. Returns true once the broker answers a status request; false if it
// does not within HARNESS_WAIT_SECONDS or the broker exits first.
bool harness_broker_start(struct harness_broker *broker, const char *idle,
                          const char *const *extra_args);

// harness_broker_start() without extra arguments, failing the test (with
// the log's path) when the broker does not start.
void harness_start(struct harness_broker *broker, const char *idle);

// True while the broker process has not exited.
bool harness_broker_alive(struct harness_broker *broker);

// Sends sig to the broker. Returns false if it is not running.
bool harness_broker_signal(const struct harness_broker *broker, int sig);

// Waits for the broker to exit and returns its wait status, or -1 if it is
// still running after HARNESS_WAIT_SECONDS.
int harness_broker_wait_exit(struct harness_broker *broker);

// Stops the broker if it is still running (SIGTERM, then SIGKILL if it
// does not exit within a few seconds), ends whatever it left behind
// (harness_kill_orphans()) and removes the temporary directory. Accepts
// NULL.
void harness_broker_free(struct harness_broker *broker);

// The whole log so far as a malloc'd string (caller frees); never NULL.
char *harness_broker_log(const struct harness_broker *broker);
// Number of times needle occurs in the log.
size_t harness_broker_log_count(const struct harness_broker *broker,
                                const char *needle);
// Waits until the log holds needle at least count times.
bool harness_broker_wait_log(const struct harness_broker *broker,
                             const char *needle, size_t count);
// Waits until every connection the running broker logged as connected is
// logged as disconnected: the broker has no peers.
bool harness_broker_wait_no_peers(const struct harness_broker *broker);

// ---- Raw protocol ----------------------------------------------------------

// A SOCK_SEQPACKET connection to path, or -1.
int harness_raw_connect(const char *path);
// Sends len bytes of data as one datagram. Returns false on failure.
bool harness_raw_send(int fd, const void *data, size_t len);
// Receives one datagram and parses it. Returns NULL on end of file, on
// timeout (HARNESS_WAIT_SECONDS) or when the reply is not a JSON object.
json_t *harness_raw_receive(int fd);
// Sends text as one datagram and receives the reply.
json_t *harness_raw_request(int fd, const char *text);
// The code of a reply that is exactly {"error": N}; -1 for anything else.
int harness_reply_error(const json_t *reply);
// The "name" of a reply that is exactly {"network": {...}}, else NULL.
const char *harness_reply_network_name(const json_t *reply);
// Sends an acquire of name on fd and returns the reply.
json_t *harness_raw_acquire(int fd, const char *name);
// Acquires name on *connection (connected to broker first when it is
// negative) and returns the reply's network object (the caller owns it);
// fails the test, naming the broker's log, when the reply has no network.
json_t *harness_acquire_network(const struct harness_broker *broker,
                                int *connection, const char *name);
// The string value of key in a network object; fails the test without one.
const char *harness_network_field(const json_t *network, const char *key);

// ---- Client library conveniences -------------------------------------------

// Connects to the broker; NULL on failure.
vmnet_broker_connection_t *harness_connect(const struct harness_broker *b);
// Acquires name on connection and returns the status code. When uuid is
// not NULL it receives the network's uuid (37 bytes) on success.
vmnet_broker_return_t harness_acquire(vmnet_broker_connection_t *connection,
                                      const char *name, char *uuid);
// The broker's status object, asked over a connection of its own; NULL on
// failure. The caller owns the reference.
json_t *harness_status(const struct harness_broker *broker);
// The status entry of network name (borrowed), or NULL.
json_t *harness_status_network(const json_t *status, const char *name);
// The number of peers of network name; -1 if the network does not exist.
long harness_network_peers(const struct harness_broker *broker,
                           const char *name);
// Number of status peers with this pid.
size_t harness_status_count_pid(const json_t *status, pid_t pid);
// True if a status peer with this pid holds network name.
bool harness_status_pid_holds(const json_t *status, pid_t pid,
                              const char *name);

// True if uuid is a lowercase RFC 4122 version 4 UUID.
bool harness_uuid_valid(const char *uuid);

// ---- The network namespace -------------------------------------------------

bool harness_link_exists(const char *name);
bool harness_link_is_up(const char *name);
bool harness_link_is_bridge(const char *name);
// Copies the link's alias into buf; false if it cannot be read.
bool harness_link_alias(const char *name, char *buf, size_t size);
// True if link name carries address/prefix_len (IPv4, dotted quad).
bool harness_link_has_ipv4(const char *name, const char *address,
                           unsigned prefix_len);
// Number of links whose name starts with prefix.
size_t harness_count_links(const char *prefix);
// Waits until link name no longer exists.
bool harness_wait_link_gone(const char *name);
// Runs command with sh -c; returns its exit code, or -1.
int harness_shell(const char *command);

// ---- Other processes -------------------------------------------------------

// Runs fn(arg) in a child process and returns its result, or -1 if the
// child died or did not finish within HARNESS_WAIT_SECONDS. fn must not use
// Check's assertions. What the child opens (the client library's
// process-wide connection, say) ends with it.
int harness_run_child(int (*fn)(void *arg), void *arg);
// harness_run_child() as uid and gid HARNESS_NOBODY with no supplementary
// groups; -1 also if the child could not drop privileges.
int harness_run_unprivileged(int (*fn)(void *arg), void *arg);

// Forks a child that connects, acquires every name in names (n of them)
// and then sleeps until killed. Returns its pid once it holds them all, or
// -1 (child reaped) if any acquire fails. The child dies with the caller.
pid_t harness_spawn_holder(const struct harness_broker *broker,
                           const char *const *names, size_t n);
// Sends sig to pid and reaps it. Returns its wait status, or -1.
int harness_kill_and_reap(pid_t pid, int sig);

// Spawns argv[0] (a path) with VMNET_BROKER_SOCKET set to the broker's
// socket, stdin from /dev/null, stderr to the caller's. When stdout_fd is
// not NULL, stdout goes to a pipe whose reading end is stored there.
// Returns the pid or -1.
pid_t harness_spawn(const struct harness_broker *broker,
                    const char *const *argv, int *stdout_fd);
// Waits for pid to exit; returns its wait status, or -1 if it is still
// running after HARNESS_WAIT_SECONDS (it is then killed).
int harness_wait_pid(pid_t pid);
// Runs argv to completion; returns its wait status (or -1) and, when output
// is not NULL, stores its stdout as a malloc'd string.
int harness_run(const struct harness_broker *broker, const char *const *argv,
                char **output);
// Reads a child's output: JSON values one after another, or text.
struct harness_reader {
    int fd;
    size_t len;
    char buf[65536];
};

void harness_reader_init(struct harness_reader *reader, int fd);
// The next JSON object from the output, waiting for all of it to arrive;
// NULL on end of file, timeout (HARNESS_WAIT_SECONDS) or invalid JSON.
json_t *harness_reader_json(struct harness_reader *reader);
// Waits until the output so far contains needle.
bool harness_reader_wait_text(struct harness_reader *reader,
                              const char *needle);

// ---- Waiting ---------------------------------------------------------------

// Polls cond(arg) until it is true (returns true) or HARNESS_WAIT_SECONDS
// pass (returns false).
bool harness_wait_for(bool (*cond)(void *arg), void *arg);
// Monotonic seconds.
double harness_now(void);

#endif
