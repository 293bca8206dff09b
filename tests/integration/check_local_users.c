// SPDX-License-Identifier: Apache-2.0
// Local users cannot harm each other or the broker: runtime directories
// others can write, planted symbolic links, config files not root's, and
// the per-user cap on connections.
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define IDLE "60"
#define VICTIM_TEXT "the victim's data\n"

static struct harness_broker *broker;

static void setup(void) { broker = harness_test_setup(); }

static void teardown(void) {
    harness_broker_free(broker);
    broker = NULL;
}

static void make_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

// Moves the broker's socket to fmt (one %s, for dir), within the harness's
// buffer.
static void set_socket_path(const char *fmt, const char *dir) {
    int n =
        snprintf(broker->socket_path, sizeof(broker->socket_path), fmt, dir);
    ck_assert(n > 0 && (size_t)n < sizeof(broker->socket_path));
}

// True if path is a regular file holding exactly VICTIM_TEXT.
static bool victim_intact(const char *path) {
    char buf[64] = "";
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strcmp(buf, VICTIM_TEXT) == 0;
}

// Makes <dir>/victim with the files a network directory of the runtime
// directory holds, each with VICTIM_TEXT: what a planted link would make
// the broker remove or overwrite.
static void make_victim(char *victim, size_t size) {
    static const char *const files[] = {"dnsmasq.conf", "dnsmasq.pid",
                                        "dnsmasq.log", "broker.sock"};
    char path[256];

    // Outside the runtime directory (the socket's, broker->dir), where
    // stale network directories are legitimately looked for.
    snprintf(victim, size, "%s/outside", broker->dir);
    ck_assert_int_eq(mkdir(victim, 0755), 0);
    snprintf(victim, size, "%s/outside/victim", broker->dir);
    ck_assert_int_eq(mkdir(victim, 0755), 0);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", victim, files[i]);
        make_file(path, VICTIM_TEXT);
    }
}

static void assert_victim_intact(const char *victim) {
    static const char *const files[] = {"dnsmasq.conf", "dnsmasq.pid",
                                        "dnsmasq.log", "broker.sock"};
    char path[256];

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", victim, files[i]);
        ck_assert_msg(victim_intact(path), "%s was changed or removed", path);
    }
}

static void write_file_config(const char *name, const char *text) {
    ck_assert(harness_broker_write_config(broker, name, text));
}

// ---- Hole 7: the runtime directory ----------------------------------------

// The attack reproduced: under a world-writable sticky directory (like
// /tmp) a user made the runtime directory first and planted
// `shared -> victim`. The broker must refuse to start there, and touch
// nothing.
START_TEST(test_runtime_dir_owned_by_user_refused) {
    char sticky[128], run[160], link[200], victim[128];
    char *log;

    make_victim(victim, sizeof(victim));
    snprintf(sticky, sizeof(sticky), "%s/tmp", broker->dir);
    ck_assert_int_eq(mkdir(sticky, 0755), 0);
    ck_assert_int_eq(chmod(sticky, 01777), 0);
    snprintf(run, sizeof(run), "%s/run", sticky);
    ck_assert_int_eq(mkdir(run, 0755), 0);
    ck_assert_int_eq(chown(run, HARNESS_NOBODY, HARNESS_NOBODY), 0);
    snprintf(link, sizeof(link), "%s/shared", run);
    ck_assert_int_eq(symlink(victim, link), 0);
    snprintf(link, sizeof(link), "%s/broker.sock", run);
    ck_assert_int_eq(symlink(victim, link), 0);

    // The socket there: refused.
    set_socket_path("%s/broker.sock", run);
    ck_assert(!harness_broker_start(broker, IDLE, NULL));
    ck_assert_int_ne(harness_broker_wait_exit(broker), -1);
    log = harness_broker_log(broker);
    ck_assert_msg(strstr(log, "refusing the socket's directory") != NULL &&
                      strstr(log, "is owned by uid 65534, not root") != NULL,
                  "%s", log);
    free(log);
    assert_victim_intact(victim);
    ck_assert(harness_link_exists("lo"));
    ck_assert_uint_eq(harness_count_links("vmb-"), 0);
}
END_TEST

// --runtime-dir there, with the socket in a safe place: refused too.
START_TEST(test_runtime_dir_option_refused) {
    char run[160], link[200], victim[128], sticky[128];
    const char *args[] = {"--runtime-dir", run, NULL};
    char *log;

    make_victim(victim, sizeof(victim));
    snprintf(sticky, sizeof(sticky), "%s/tmp", broker->dir);
    ck_assert_int_eq(mkdir(sticky, 0755), 0);
    ck_assert_int_eq(chmod(sticky, 01777), 0);
    snprintf(run, sizeof(run), "%s/run", sticky);
    ck_assert_int_eq(mkdir(run, 0755), 0);
    ck_assert_int_eq(chown(run, HARNESS_NOBODY, HARNESS_NOBODY), 0);
    snprintf(link, sizeof(link), "%s/shared", run);
    ck_assert_int_eq(symlink(victim, link), 0);

    ck_assert(!harness_broker_start(broker, IDLE, args));
    ck_assert_int_ne(harness_broker_wait_exit(broker), -1);
    log = harness_broker_log(broker);
    ck_assert_msg(strstr(log, "refusing the runtime directory") != NULL, "%s",
                  log);
    free(log);
    assert_victim_intact(victim);
}
END_TEST

// The socket directly in a world-writable sticky directory: anyone can
// plant names beside it.
START_TEST(test_world_writable_socket_dir_refused) {
    char sticky[128];
    char *log;

    snprintf(sticky, sizeof(sticky), "%s/tmp", broker->dir);
    ck_assert_int_eq(mkdir(sticky, 0755), 0);
    ck_assert_int_eq(chmod(sticky, 01777), 0);
    set_socket_path("%s/broker.sock", sticky);
    ck_assert(!harness_broker_start(broker, IDLE, NULL));
    ck_assert_int_ne(harness_broker_wait_exit(broker), -1);
    log = harness_broker_log(broker);
    ck_assert_msg(strstr(log, "is writable by every user") != NULL, "%s", log);
    free(log);
}
END_TEST

// A parent owned by another user (not sticky, not root's): its owner can
// rename the root-owned directory below and put a link in its place.
START_TEST(test_parent_owned_by_user_refused) {
    char home[128];
    char *log;

    snprintf(home, sizeof(home), "%s/home", broker->dir);
    ck_assert_int_eq(mkdir(home, 0755), 0);
    ck_assert_int_eq(chown(home, HARNESS_NOBODY, HARNESS_NOBODY), 0);
    set_socket_path("%s/run/broker.sock", home);
    ck_assert(!harness_broker_start(broker, IDLE, NULL));
    ck_assert_int_ne(harness_broker_wait_exit(broker), -1);
    log = harness_broker_log(broker);
    ck_assert_msg(strstr(log, "could replace") != NULL, "%s", log);
    free(log);
}
END_TEST

// A link where the socket goes (left there, or planted by root's mistake)
// is removed itself; its target is neither removed nor made a socket.
START_TEST(test_symlink_in_place_of_socket_not_followed) {
    char victim[128], target[200];
    struct stat st;

    make_victim(victim, sizeof(victim));
    snprintf(target, sizeof(target), "%s/broker.sock", victim);
    ck_assert_int_eq(symlink(target, broker->socket_path), 0);
    harness_start(broker, IDLE);
    ck_assert_int_eq(lstat(broker->socket_path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_int_eq(st.st_mode & 0777, 0666);
    assert_victim_intact(victim);
    ck_assert(harness_broker_log_count(broker, "is a symbolic link") > 0);
    // Stopped, the broker removes its own socket, nothing else.
    ck_assert(harness_broker_signal(broker, SIGTERM));
    ck_assert_int_ne(harness_broker_wait_exit(broker), -1);
    ck_assert_int_eq(lstat(broker->socket_path, &st), -1);
    assert_victim_intact(victim);
}
END_TEST

// `shared -> victim` in the runtime directory (there only root could put
// it, but it must still not be followed): the network's files go to a
// directory of its own, the victim's files survive creation and removal.
START_TEST(test_network_dir_symlink_not_followed) {
    char victim[128], link[256];
    vmnet_broker_connection_t *c;
    struct stat st;

    make_victim(victim, sizeof(victim));
    snprintf(link, sizeof(link), "%s/shared", broker->dir);
    ck_assert_int_eq(symlink(victim, link), 0);
    harness_start(broker, "0.2");
    c = harness_connect(broker);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(harness_acquire(c, "shared", NULL), VMNET_BROKER_SUCCESS);
    ck_assert_int_eq(lstat(link, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    assert_victim_intact(victim);
    ck_assert(harness_broker_log_count(
                  broker, "is a symbolic link: removing the link") > 0);
    vmnet_broker_connection_close(c);
    ck_assert(harness_wait_link_gone("vmb-shared"));
    assert_victim_intact(victim);
}
END_TEST

// A link in the socket's directory path is not followed, even to a
// directory root owns.
START_TEST(test_symlinked_socket_dir_refused) {
    char real[128], link[128];

    snprintf(real, sizeof(real), "%s/real", broker->dir);
    snprintf(link, sizeof(link), "%s/link", broker->dir);
    ck_assert_int_eq(mkdir(real, 0755), 0);
    ck_assert_int_eq(symlink(real, link), 0);
    set_socket_path("%s/broker.sock", link);
    ck_assert(!harness_broker_start(broker, IDLE, NULL));
    ck_assert_int_ne(harness_broker_wait_exit(broker), -1);
    ck_assert(harness_broker_log_count(
                  broker, "is a symbolic link: not following it") > 0);
}
END_TEST

// ---- Hole 8: config files -------------------------------------------------

#define SECRET "s3cr3t-token"

// Runs vmnet-broker --check-config on the broker's config directory (or
// on path when not NULL); returns its exit code and stores its output.
static int check_config(const char *path, char **output) {
    char command[512];
    const char *argv[] = {"/bin/sh", "-c", command, NULL};
    int status;

    snprintf(command, sizeof(command), "exec '%s' --check-config '%s' 2>&1",
             VMNET_BROKER_BIN, path != NULL ? path : broker->config_dir);
    status = harness_run(broker, argv, output);
    ck_assert(status != -1 && WIFEXITED(status));
    return WEXITSTATUS(status);
}

static int acquire(const char *name) {
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_return_t status;

    ck_assert_ptr_nonnull(c);
    status = harness_acquire(c, name, NULL);
    vmnet_broker_connection_close(c);
    return (int)status;
}

static void config_path(char *out, size_t size, const char *name) {
    int n = snprintf(out, size, "%s/%s.json", broker->config_dir, name);
    ck_assert(n > 0 && (size_t)n < size);
}

// A link, even to a valid file root owns, is not used; a link to a file
// that is not JSON (a secret) has none of its content quoted anywhere.
START_TEST(test_config_symlink_not_used) {
    char target[256], secret[256], path[256];
    char *output = NULL, *log;

    snprintf(target, sizeof(target), "%s/outside.json", broker->dir);
    make_file(target, "{\"mode\": \"host\"}");
    snprintf(secret, sizeof(secret), "%s/secret", broker->dir);
    make_file(secret, SECRET " and more\n");
    config_path(path, sizeof(path), "linked");
    ck_assert_int_eq(symlink(target, path), 0);
    config_path(path, sizeof(path), "leak");
    ck_assert_int_eq(symlink(secret, path), 0);
    write_file_config("good", "{\"mode\": \"host\"}");

    harness_start(broker, IDLE);
    ck_assert_int_eq(acquire("linked"), VMNET_BROKER_CREATE_FAILURE);
    ck_assert(!harness_link_exists("vmb-linked"));
    ck_assert_int_eq(acquire("leak"), VMNET_BROKER_CREATE_FAILURE);
    ck_assert_int_eq(acquire("good"), VMNET_BROKER_SUCCESS);
    log = harness_broker_log(broker);
    ck_assert_msg(strstr(log, "linked.json is a symbolic link: not used") !=
                      NULL,
                  "%s", log);
    ck_assert_msg(strstr(log, SECRET) == NULL, "%s", log);
    free(log);

    ck_assert_int_eq(check_config(NULL, &output), 1);
    ck_assert_msg(strstr(output, "linked.json: is a symbolic link: not used") !=
                      NULL,
                  "%s", output);
    ck_assert_msg(strstr(output, SECRET) == NULL, "%s", output);
    ck_assert_msg(strstr(output, "  good ") != NULL, "%s", output);
    ck_assert_msg(strstr(output, "  linked ") == NULL, "%s", output);
    free(output);
    // One file given by name: the same.
    config_path(path, sizeof(path), "leak");
    ck_assert_int_eq(check_config(path, &output), 1);
    ck_assert_msg(strstr(output, "is a symbolic link") != NULL &&
                      strstr(output, SECRET) == NULL,
                  "%s", output);
    free(output);
}
END_TEST

// A file another user owns, or one others can write, is not used.
START_TEST(test_config_not_root_owned_not_used) {
    char path[256];
    char *output = NULL;

    write_file_config("theirs", "{\"mode\": \"host\"}");
    config_path(path, sizeof(path), "theirs");
    ck_assert_int_eq(chown(path, HARNESS_NOBODY, HARNESS_NOBODY), 0);
    write_file_config("open", "{\"mode\": \"host\"}");
    config_path(path, sizeof(path), "open");
    ck_assert_int_eq(chmod(path, 0666), 0);

    harness_start(broker, IDLE);
    ck_assert_int_eq(acquire("theirs"), VMNET_BROKER_CREATE_FAILURE);
    ck_assert_int_eq(acquire("open"), VMNET_BROKER_CREATE_FAILURE);
    ck_assert(!harness_link_exists("vmb-theirs"));
    ck_assert(harness_broker_log_count(broker,
                                       "is owned by uid 65534, not root") > 0);
    ck_assert(harness_broker_log_count(
                  broker, "is writable by users other than root") > 0);
    ck_assert_int_eq(check_config(NULL, &output), 1);
    ck_assert_msg(strstr(output, "theirs.json: is owned by uid 65534") != NULL,
                  "%s", output);
    ck_assert_msg(strstr(output, "open.json: is writable by users") != NULL,
                  "%s", output);
    free(output);
}
END_TEST

// A config directory others can write: none of it is used, not even the
// built-ins (an override restricting "shared" could be removed by them).
START_TEST(test_config_dir_writable_by_others_not_used) {
    char *output = NULL;

    write_file_config("good", "{\"mode\": \"host\"}");
    ck_assert_int_eq(chmod(broker->config_dir, 0777), 0);
    harness_start(broker, IDLE);
    ck_assert_int_eq(acquire("good"), VMNET_BROKER_CREATE_FAILURE);
    ck_assert_int_eq(acquire("shared"), VMNET_BROKER_CREATE_FAILURE);
    ck_assert(!harness_link_exists("vmb-good"));
    // Logged once, not at every refused request.
    ck_assert_uint_eq(
        harness_broker_log_count(broker, "none of its networks is used"), 1);
    ck_assert_int_eq(check_config(NULL, &output), 1);
    ck_assert_msg(strstr(output, "is writable by users other than root") !=
                      NULL,
                  "%s", output);
    free(output);
    // Fixed: used again, without a restart.
    ck_assert_int_eq(chmod(broker->config_dir, 0755), 0);
    ck_assert_int_eq(acquire("good"), VMNET_BROKER_SUCCESS);
}
END_TEST

// True if the line of text starting with start holds needle.
static bool line_has(const char *text, const char *start, const char *needle) {
    const char *line = strstr(text, start);
    const char *end = line == NULL ? NULL : strchr(line, '\n');
    const char *found = line == NULL ? NULL : strstr(line, needle);

    return found != NULL && (end == NULL || found < end);
}

// An explicitly empty allow-list is root only, and --check-config says so.
START_TEST(test_check_config_empty_allow_list_root_only) {
    char *output = NULL;

    write_file_config("closed", "{\"mode\": \"host\", \"allowed_users\": []}");
    write_file_config("open", "{\"mode\": \"host\"}");
    ck_assert_int_eq(check_config(NULL, &output), 0);
    ck_assert_msg(strstr(output, "root only") != NULL, "%s", output);
    // On the closed network's line only.
    ck_assert_msg(line_has(output, "  closed ", "root only"), "%s", output);
    ck_assert_msg(!line_has(output, "  open ", "root only"), "%s", output);
    free(output);
}
END_TEST

// ---- Hole 9: connections per user -----------------------------------------

#define CAP 4

// A status request on fd answered: the connection works.
static bool answers(int fd) {
    json_t *reply = harness_raw_request(fd, "{\"command\": \"status\"}");
    bool ok = reply != NULL && json_object_get(reply, "error") == NULL;
    json_decref(reply);
    return ok;
}

// Run as nobody: holds CAP connections, sees the next refused, the held
// ones still answered, and a new one accepted once one is closed. Returns
// 0, or the number of the step that failed.
static int hold_cap(void *arg) {
    int fds[CAP];
    int extra;
    bool accepted = false;
    double deadline;

    (void)arg;
    for (int i = 0; i < CAP; i++) {
        fds[i] = harness_raw_connect(broker->socket_path);
        if (fds[i] < 0 || !answers(fds[i]))
            return 1;
    }
    // The kernel completes the connect; the broker closes it at accept.
    extra = harness_raw_connect(broker->socket_path);
    if (extra >= 0 && answers(extra))
        return 2;
    if (extra >= 0)
        close(extra);
    for (int i = 0; i < CAP; i++) {
        if (!answers(fds[i]))
            return 3;
    }
    close(fds[0]);
    // The broker sees the hang-up in its own time: retry until it has.
    deadline = harness_now() + HARNESS_WAIT_SECONDS;
    while (!accepted && harness_now() < deadline) {
        extra = harness_raw_connect(broker->socket_path);
        accepted = extra >= 0 && answers(extra);
        if (extra >= 0)
            close(extra);
        if (!accepted)
            usleep(10000);
    }
    if (!accepted)
        return 4;
    for (int i = 1; i < CAP; i++)
        close(fds[i]);
    return 0;
}

START_TEST(test_connection_cap_per_user) {
    const char *args[] = {"--max-connections-per-user", "4", NULL};
    int root_fds[3 * CAP];

    ck_assert(harness_broker_start(broker, IDLE, args));
    ck_assert_int_eq(harness_run_unprivileged(hold_cap, NULL), 0);
    ck_assert(harness_broker_log_count(broker, "uid 65534 (pid") > 0);
    ck_assert(harness_broker_log_count(broker, "--max-connections-per-user") >
              0);
    // Root is exempt.
    for (int i = 0; i < 3 * CAP; i++) {
        root_fds[i] = harness_raw_connect(broker->socket_path);
        ck_assert_int_ge(root_fds[i], 0);
        ck_assert(answers(root_fds[i]));
    }
    for (int i = 0; i < 3 * CAP; i++)
        close(root_fds[i]);
}
END_TEST

START_TEST(test_connection_cap_option_invalid) {
    const char *argv[] = {
        "/bin/sh", "-c",
        "exec '" VMNET_BROKER_BIN "' --max-connections-per-user -3 2>&1", NULL};
    char *output = NULL;
    int status = harness_run(broker, argv, &output);

    ck_assert(status != -1 && WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 2);
    ck_assert_msg(strstr(output, "invalid --max-connections-per-user") != NULL,
                  "%s", output);
    free(output);
}
END_TEST

static Suite *local_users_suite(void) {
    Suite *s = suite_create("local_users");
    TCase *tc = tcase_create("local_users");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_runtime_dir_owned_by_user_refused);
    tcase_add_test(tc, test_runtime_dir_option_refused);
    tcase_add_test(tc, test_world_writable_socket_dir_refused);
    tcase_add_test(tc, test_parent_owned_by_user_refused);
    tcase_add_test(tc, test_symlink_in_place_of_socket_not_followed);
    tcase_add_test(tc, test_symlinked_socket_dir_refused);
    tcase_add_test(tc, test_network_dir_symlink_not_followed);
    tcase_add_test(tc, test_config_symlink_not_used);
    tcase_add_test(tc, test_config_not_root_owned_not_used);
    tcase_add_test(tc, test_config_dir_writable_by_others_not_used);
    tcase_add_test(tc, test_check_config_empty_allow_list_root_only);
    tcase_add_test(tc, test_connection_cap_per_user);
    tcase_add_test(tc, test_connection_cap_option_invalid);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(local_users_suite());
}
