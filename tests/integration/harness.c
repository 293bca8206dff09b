// SPDX-License-Identifier: Apache-2.0
// Integration test harness: a real broker in a private network namespace.
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// The broker's log lines about peers coming and going (broker/core/broker.c).
#define LOG_CONNECTED "] connected ("
#define LOG_DISCONNECTED "] disconnected ("

// How long a broker gets to stop on SIGTERM before it is killed.
#define STOP_GRACE_SECONDS 5

// Replies (status with many peers included) fit comfortably.
#define RECEIVE_MAX 65536

double harness_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static bool wait_until(bool (*cond)(void *arg), void *arg, double seconds) {
    double deadline = harness_now() + seconds;
    for (;;) {
        if (cond(arg))
            return true;
        if (harness_now() > deadline)
            return false;
        sleep_ms(10);
    }
}

bool harness_wait_for(bool (*cond)(void *arg), void *arg) {
    return wait_until(cond, arg, HARNESS_WAIT_SECONDS);
}

// Milliseconds left until deadline, for poll(); never negative.
static int remaining_ms(double deadline) {
    double left = deadline - harness_now();
    return left > 0 ? (int)(left * 1000) + 1 : 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

// ---- The test program ------------------------------------------------------

// Where every broker of this program keeps its socket, config and log, so
// that what failed tests (which end without cleaning up) leave behind can be
// shown and removed at the end. Empty outside harness_run_suite().
static char run_dir[32];

static bool set_loopback_up(void) {
    struct ifreq ifr;
    bool ok = false;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        goto out;
    memset(&ifr, 0, sizeof(ifr));
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0)
        goto out;
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0)
        goto out;
    ok = true;
out:
    if (fd >= 0)
        close(fd);
    return ok;
}

void harness_enter_netns(void) {
    if (geteuid() != 0) {
        fprintf(stderr, "integration tests need root (they create network "
                        "namespaces and bridges): skipped\n");
        exit(77);
    }
    // A mount namespace too, so that /sys can be mounted again and
    // /sys/class/net shows this namespace's links rather than the host's.
    if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) {
        fprintf(stderr, "cannot make a network namespace: %s\n",
                strerror(errno));
        exit(1);
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        umount2("/sys", MNT_DETACH) != 0 ||
        mount("sysfs", "/sys", "sysfs", 0, NULL) != 0) {
        fprintf(stderr, "cannot mount /sys for the namespace: %s\n",
                strerror(errno));
        exit(1);
    }
    if (!set_loopback_up()) {
        fprintf(stderr, "cannot bring lo up: %s\n", strerror(errno));
        exit(1);
    }
    // Helpers a killed broker leaves behind (dnsmasq) become our children,
    // so harness_kill_orphans() can end them.
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        fprintf(stderr, "cannot become a subreaper: %s\n", strerror(errno));
        exit(1);
    }
}

// Appends the pids listed in path (space-separated) to pids[*n..max).
static void read_pids(const char *path, pid_t *pids, size_t *n, size_t max) {
    FILE *f = fopen(path, "r");
    long pid;

    if (f == NULL)
        return;
    while (*n < max && fscanf(f, "%ld", &pid) == 1)
        pids[(*n)++] = (pid_t)pid;
    fclose(f);
}

// The state letter of process pid ('Z' for a zombie), or 0 if it is gone.
static char process_state(pid_t pid) {
    char path[64], buf[512];
    char *close_paren;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    // "pid (comm) S ...": comm may itself hold spaces and parentheses.
    close_paren = strrchr(buf, ')');
    return close_paren != NULL && close_paren[1] == ' ' ? close_paren[2] : 0;
}

size_t harness_living_children(pid_t parent) {
    char path[64];
    pid_t pids[256];
    size_t n = 0, living = 0;
    DIR *tasks;
    struct dirent *task;

    if (parent == 0)
        parent = getpid();
    snprintf(path, sizeof(path), "/proc/%d/task", (int)parent);
    tasks = opendir(path);
    if (tasks == NULL)
        return 0;
    while ((task = readdir(tasks)) != NULL) {
        char children[600];
        if (task->d_name[0] == '.')
            continue;
        snprintf(children, sizeof(children), "/proc/%d/task/%s/children",
                 (int)parent, task->d_name);
        read_pids(children, pids, &n, sizeof(pids) / sizeof(pids[0]));
    }
    closedir(tasks);
    for (size_t i = 0; i < n; i++) {
        char state = process_state(pids[i]);
        if (state != 0 && state != 'Z')
            living++;
    }
    return living;
}

void harness_kill_orphans(void) {
    // Killing a child can orphan its own children onto us: repeat until
    // none is left (bounded, in case something keeps forking).
    for (int round = 0; round < 16; round++) {
        char path[64];
        pid_t pids[256];
        size_t n = 0;

        // Children of the main thread; tests join their threads first.
        snprintf(path, sizeof(path), "/proc/self/task/%d/children",
                 (int)getpid());
        read_pids(path, pids, &n, sizeof(pids) / sizeof(pids[0]));
        if (n == 0)
            return;
        for (size_t i = 0; i < n; i++) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
        }
    }
}

static void print_file(const char *path, FILE *out) {
    char buf[4096];
    size_t n;
    FILE *in = fopen(path, "r");

    if (in == NULL)
        return;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        fwrite(buf, 1, n, out);
    fclose(in);
}

// A broker directory still there belongs to a test that failed: its log is
// what explains the failure.
static void print_leftover_logs(void) {
    DIR *dir = opendir(run_dir);
    struct dirent *entry;

    while (dir != NULL && (entry = readdir(dir)) != NULL) {
        char path[PATH_MAX];
        if (strncmp(entry->d_name, "broker.", 7) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s/broker.log", run_dir,
                 entry->d_name);
        fprintf(stderr, "---- %s ----\n", path);
        print_file(path, stderr);
    }
    if (dir != NULL)
        closedir(dir);
}

int harness_run_suite(Suite *suite) {
    SRunner *runner;
    int failed;

    // Every broker a test starts (here or by a command) has the plain names
    // the tests expect ("vmb-shared", table vmnet-broker), as the default
    // runtime directory's broker has them, though its runtime directory is
    // the test's own; a test that sets the variable (empty: derived from the
    // runtime directory) gets what it asked for.
    setenv("VMNET_BROKER_INSTANCE", "default", 0);
    strcpy(run_dir, "/tmp/vmnet-broker-test.XXXXXX");
    // Unprivileged peers must reach the sockets inside.
    if (mkdtemp(run_dir) == NULL || chmod(run_dir, 0755) != 0) {
        fprintf(stderr, "cannot make a temporary directory: %s\n",
                strerror(errno));
        return EXIT_FAILURE;
    }
    runner = srunner_create(suite);
    srunner_run_all(runner, CK_VERBOSE);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    // What failed tests left running, then what they left on disk.
    harness_kill_orphans();
    print_leftover_logs();
    nftw(run_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

struct harness_broker *harness_test_setup(void) {
    struct harness_broker *broker;

    harness_enter_netns();
    broker = harness_broker_new();
    ck_assert_msg(broker != NULL, "cannot make a temporary directory");
    return broker;
}

// ---- The broker process ----------------------------------------------------

struct harness_broker *harness_broker_new(void) {
    struct harness_broker *b = calloc(1, sizeof(*b));

    if (b == NULL)
        return NULL;
    if (run_dir[0] != '\0')
        snprintf(b->dir, sizeof(b->dir), "%s/broker.XXXXXX", run_dir);
    else
        strcpy(b->dir, "/tmp/vmnet-broker-test.XXXXXX");
    if (mkdtemp(b->dir) == NULL) {
        free(b);
        return NULL;
    }
    snprintf(b->socket_path, sizeof(b->socket_path), "%s/broker.sock", b->dir);
    snprintf(b->config_dir, sizeof(b->config_dir), "%s/config.d", b->dir);
    snprintf(b->log_path, sizeof(b->log_path), "%s/broker.log", b->dir);
    // Unprivileged peers must reach the socket inside.
    if (chmod(b->dir, 0755) != 0 || mkdir(b->config_dir, 0755) != 0) {
        harness_broker_free(b);
        return NULL;
    }
    return b;
}

bool harness_broker_write_config(const struct harness_broker *broker,
                                 const char *name, const char *text) {
    char path[PATH_MAX + 80];
    FILE *f;
    bool ok;

    snprintf(path, sizeof(path), "%s/%s.json", broker->config_dir, name);
    f = fopen(path, "w");
    if (f == NULL)
        return false;
    ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

// The child side of a spawn: dies with the test (a failed assertion ends
// the test process without any cleanup), with default signal handling.
static void child_prepare(pid_t parent) {
    sigset_t none;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        close(null);
    }
}

// A whole round trip, not just a connection: once it is answered the
// broker has logged this peer, so waiting for "no peers" in the log cannot
// mistake a probe not yet accepted for one gone.
static bool broker_answers(const char *path) {
    int fd = harness_raw_connect(path);
    json_t *reply;
    bool answered;

    if (fd < 0)
        return false;
    reply = harness_raw_request(fd, "{\"command\": \"status\"}");
    answered = json_object_get(reply, "status") != NULL;
    json_decref(reply);
    close(fd);
    return answered;
}

bool harness_broker_start(struct harness_broker *broker, const char *idle,
                          const char *const *extra_args) {
    const char *argv[32] = {VMNET_BROKER_BIN,
                            "--socket",
                            broker->socket_path,
                            "--config-dir",
                            broker->config_dir,
                            "--idle-timeout",
                            idle,
                            "--state-dir",
                            NULL};
    // Each test's own guest MAC key, never the host's.
    char state_dir[112];
    size_t argc = 9;
    pid_t parent = getpid();
    double deadline;
    int log_fd;

    snprintf(state_dir, sizeof(state_dir), "%s/state", broker->dir);
    argv[8] = state_dir;
    for (; extra_args != NULL && *extra_args != NULL; extra_args++) {
        if (argc + 1 >= sizeof(argv) / sizeof(argv[0]))
            return false;
        argv[argc++] = *extra_args;
    }
    argv[argc] = NULL;
    log_fd =
        open(broker->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0)
        return false;
    broker->log_start = (size_t)lseek(log_fd, 0, SEEK_END);
    // A failed test exits without cleaning up; harness_run_suite() prints
    // the logs left behind under this name.
    fprintf(stderr, "broker log: %s\n", broker->log_path);
    broker->pid = fork();
    if (broker->pid == 0) {
        child_prepare(parent);
        dup2(log_fd, STDOUT_FILENO);
        dup2(log_fd, STDERR_FILENO);
        // Started directly, not by systemd, whatever runs the tests.
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_PID");
        unsetenv("NOTIFY_SOCKET");
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(log_fd);
    if (broker->pid < 0) {
        broker->pid = 0;
        return false;
    }
    deadline = harness_now() + HARNESS_WAIT_SECONDS;
    while (harness_now() < deadline) {
        if (!harness_broker_alive(broker))
            return false;
        if (broker_answers(broker->socket_path))
            return true;
        sleep_ms(10);
    }
    return false;
}

void harness_start(struct harness_broker *broker, const char *idle) {
    ck_assert_msg(harness_broker_start(broker, idle, NULL),
                  "the broker did not start (log: %s)", broker->log_path);
}

bool harness_broker_alive(struct harness_broker *broker) {
    int status;

    if (broker->pid == 0)
        return false;
    if (waitpid(broker->pid, &status, WNOHANG) == 0)
        return true;
    broker->wait_status = status;
    broker->pid = 0;
    return false;
}

bool harness_broker_signal(const struct harness_broker *broker, int sig) {
    return broker->pid != 0 && kill(broker->pid, sig) == 0;
}

int harness_broker_wait_exit(struct harness_broker *broker) {
    double deadline = harness_now() + HARNESS_WAIT_SECONDS;

    while (harness_broker_alive(broker)) {
        if (harness_now() > deadline)
            return -1;
        sleep_ms(10);
    }
    return broker->wait_status;
}

char *harness_broker_log(const struct harness_broker *broker) {
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    FILE *in = fopen(broker->log_path, "r");
    char buf[4096];
    size_t n;

    if (out == NULL)
        abort();
    while (in != NULL && (n = fread(buf, 1, sizeof(buf), in)) > 0)
        fwrite(buf, 1, n, out);
    if (in != NULL)
        fclose(in);
    fclose(out);
    return text;
}

static size_t count_occurrences(const char *text, const char *needle) {
    size_t count = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL;
         p += strlen(needle))
        count++;
    return count;
}

size_t harness_broker_log_count(const struct harness_broker *broker,
                                const char *needle) {
    char *text = harness_broker_log(broker);
    size_t count = count_occurrences(text, needle);
    free(text);
    return count;
}

struct log_wait {
    const struct harness_broker *broker;
    const char *needle;
    size_t count;
};

static bool log_has(void *arg) {
    struct log_wait *w = arg;
    return harness_broker_log_count(w->broker, w->needle) >= w->count;
}

bool harness_broker_wait_log(const struct harness_broker *broker,
                             const char *needle, size_t count) {
    struct log_wait w = {broker, needle, count};
    return harness_wait_for(log_has, &w);
}

static bool log_no_peers(void *arg) {
    const struct harness_broker *broker = arg;
    char *text = harness_broker_log(broker);
    // Only this run: a killed broker never logged its peers leaving.
    const char *run = text + broker->log_start;
    bool none = count_occurrences(run, LOG_CONNECTED) ==
                count_occurrences(run, LOG_DISCONNECTED);
    free(text);
    return none;
}

bool harness_broker_wait_no_peers(const struct harness_broker *broker) {
    return harness_wait_for(log_no_peers, (void *)broker);
}

static bool broker_exited(void *arg) { return !harness_broker_alive(arg); }

// Stops the broker as its owner would, so that it removes what it made,
// helper processes included. It ignores SIGTERM while peers are connected,
// so first let it see the test's connections close; SIGKILL only for a
// broker that still does not stop.
static void stop_broker(struct harness_broker *broker) {
    if (!harness_broker_alive(broker))
        return;
    wait_until(log_no_peers, broker, STOP_GRACE_SECONDS);
    kill(broker->pid, SIGTERM);
    if (!wait_until(broker_exited, broker, STOP_GRACE_SECONDS)) {
        kill(broker->pid, SIGKILL);
        waitpid(broker->pid, NULL, 0);
        broker->pid = 0;
    }
}

void harness_broker_free(struct harness_broker *broker) {
    if (broker == NULL)
        return;
    stop_broker(broker);
    harness_kill_orphans();
    nftw(broker->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(broker);
}

// ---- Raw protocol ----------------------------------------------------------

int harness_raw_connect(const char *path) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof(addr.sun_path))
        return -1;
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool harness_raw_send(int fd, const void *data, size_t len) {
    ssize_t n;
    do {
        n = send(fd, data, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n >= 0 && (size_t)n == len;
}

json_t *harness_raw_receive(int fd) {
    double deadline = harness_now() + HARNESS_WAIT_SECONDS;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char *buf = NULL;
    json_t *reply = NULL;
    ssize_t n;
    int r;

    do {
        r = poll(&p, 1, remaining_ms(deadline));
    } while (r < 0 && errno == EINTR);
    if (r <= 0)
        goto out;
    buf = malloc(RECEIVE_MAX);
    if (buf == NULL)
        goto out;
    n = recv(fd, buf, RECEIVE_MAX, MSG_DONTWAIT | MSG_TRUNC);
    if (n <= 0 || n > RECEIVE_MAX)
        goto out;
    reply = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    if (reply != NULL && !json_is_object(reply)) {
        json_decref(reply);
        reply = NULL;
    }
out:
    free(buf);
    return reply;
}

json_t *harness_raw_request(int fd, const char *text) {
    if (!harness_raw_send(fd, text, strlen(text)))
        return NULL;
    return harness_raw_receive(fd);
}

json_t *harness_raw_acquire(int fd, const char *name) {
    char *text = NULL;
    json_t *request =
        json_pack("{s:s, s:s}", "command", "acquire", "network_name", name);
    json_t *reply = NULL;

    if (request != NULL)
        text = json_dumps(request, JSON_COMPACT);
    if (text != NULL)
        reply = harness_raw_request(fd, text);
    free(text);
    json_decref(request);
    return reply;
}

int harness_reply_error(const json_t *reply) {
    json_t *error = json_object_get(reply, "error");
    json_t *message = json_object_get(reply, "message");
    // "error", and beside it at most a non-empty "message" string.
    size_t keys = message != NULL ? 2 : 1;
    if (json_object_size(reply) != keys || !json_is_integer(error) ||
        (message != NULL &&
         (!json_is_string(message) || json_string_length(message) == 0)))
        return -1;
    return (int)json_integer_value(error);
}

const char *harness_reply_network_name(const json_t *reply) {
    json_t *network = json_object_get(reply, "network");
    if (json_object_size(reply) != 1 || !json_is_object(network))
        return NULL;
    return json_string_value(json_object_get(network, "name"));
}

// ---- Client library conveniences -------------------------------------------

vmnet_broker_connection_t *harness_connect(const struct harness_broker *b) {
    vmnet_broker_connection_t *connection = NULL;
    if (vmnet_broker_connect(b->socket_path, &connection) !=
        VMNET_BROKER_SUCCESS)
        return NULL;
    return connection;
}

vmnet_broker_return_t harness_acquire(vmnet_broker_connection_t *connection,
                                      const char *name, char *uuid) {
    vmnet_broker_network_t *network = NULL;
    vmnet_broker_return_t status =
        vmnet_broker_connection_acquire(connection, name, &network);

    if (status == VMNET_BROKER_SUCCESS && uuid != NULL) {
        const char *value = vmnet_broker_network_uuid(network);
        snprintf(uuid, 37, "%s", value != NULL ? value : "");
    }
    vmnet_broker_network_free(network);
    return status;
}

json_t *harness_status(const struct harness_broker *broker) {
    vmnet_broker_connection_t *connection = harness_connect(broker);
    char *text = NULL;
    json_t *status = NULL;

    if (connection == NULL)
        return NULL;
    if (vmnet_broker_connection_status(connection, &text) ==
        VMNET_BROKER_SUCCESS)
        status = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    free(text);
    vmnet_broker_connection_close(connection);
    if (status != NULL && !json_is_object(status)) {
        json_decref(status);
        status = NULL;
    }
    return status;
}

json_t *harness_status_network(const json_t *status, const char *name) {
    json_t *networks = json_object_get(status, "networks");
    size_t i;
    json_t *network;

    json_array_foreach(networks, i, network) {
        const char *n = json_string_value(json_object_get(network, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return network;
    }
    return NULL;
}

long harness_network_peers(const struct harness_broker *broker,
                           const char *name) {
    json_t *status = harness_status(broker);
    json_t *peers =
        json_object_get(harness_status_network(status, name), "peers");
    long count = json_is_integer(peers) ? (long)json_integer_value(peers) : -1;
    json_decref(status);
    return count;
}

size_t harness_status_count_pid(const json_t *status, pid_t pid) {
    json_t *peers = json_object_get(status, "peers");
    size_t i, count = 0;
    json_t *peer;

    json_array_foreach(peers, i, peer) {
        if (json_integer_value(json_object_get(peer, "pid")) == pid)
            count++;
    }
    return count;
}

bool harness_status_pid_holds(const json_t *status, pid_t pid,
                              const char *name) {
    json_t *peers = json_object_get(status, "peers");
    size_t i, j;
    json_t *peer, *held;

    json_array_foreach(peers, i, peer) {
        if (json_integer_value(json_object_get(peer, "pid")) != pid)
            continue;
        json_array_foreach(json_object_get(peer, "networks"), j, held) {
            const char *n = json_string_value(held);
            if (n != NULL && strcmp(n, name) == 0)
                return true;
        }
    }
    return false;
}

bool harness_uuid_valid(const char *uuid) {
    static const char pattern[] = "xxxxxxxx-xxxx-4xxx-vxxx-xxxxxxxxxxxx";

    if (uuid == NULL || strlen(uuid) != sizeof(pattern) - 1)
        return false;
    for (size_t i = 0; pattern[i] != '\0'; i++) {
        char c = uuid[i];
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        switch (pattern[i]) {
        case 'x':
            if (!hex)
                return false;
            break;
        case 'v': // the RFC 4122 variant: 10xx
            if (c != '8' && c != '9' && c != 'a' && c != 'b')
                return false;
            break;
        default:
            if (c != pattern[i])
                return false;
        }
    }
    return true;
}

// ---- The network namespace -------------------------------------------------

bool harness_link_exists(const char *name) { return if_nametoindex(name) != 0; }

bool harness_link_is_up(const char *name) {
    struct ifreq ifr;
    bool up = false;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || strlen(name) >= sizeof(ifr.ifr_name))
        goto out;
    memset(&ifr, 0, sizeof(ifr));
    strcpy(ifr.ifr_name, name);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0)
        goto out;
    up = (ifr.ifr_flags & IFF_UP) != 0;
out:
    if (fd >= 0)
        close(fd);
    return up;
}

bool harness_link_is_bridge(const char *name) {
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "/sys/class/net/%s/bridge", name);
    return access(path, F_OK) == 0;
}

bool harness_link_alias(const char *name, char *buf, size_t size) {
    char path[PATH_MAX];
    FILE *f;
    bool ok;

    snprintf(path, sizeof(path), "/sys/class/net/%s/ifalias", name);
    f = fopen(path, "r");
    if (f == NULL)
        return false;
    ok = fgets(buf, (int)size, f) != NULL;
    fclose(f);
    if (!ok)
        buf[0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return true;
}

bool harness_link_has_ipv4(const char *name, const char *address,
                           unsigned prefix_len) {
    struct ifaddrs *addrs = NULL, *a;
    struct in_addr want;
    bool found = false;

    if (inet_pton(AF_INET, address, &want) != 1 || getifaddrs(&addrs) != 0)
        return false;
    for (a = addrs; a != NULL && !found; a = a->ifa_next) {
        if (a->ifa_addr == NULL || a->ifa_addr->sa_family != AF_INET ||
            a->ifa_netmask == NULL || strcmp(a->ifa_name, name) != 0)
            continue;
        struct in_addr have = ((struct sockaddr_in *)a->ifa_addr)->sin_addr;
        struct in_addr mask = ((struct sockaddr_in *)a->ifa_netmask)->sin_addr;
        found = have.s_addr == want.s_addr &&
                (unsigned)__builtin_popcount(mask.s_addr) == prefix_len;
    }
    freeifaddrs(addrs);
    return found;
}

size_t harness_count_links(const char *prefix) {
    struct if_nameindex *links = if_nameindex();
    size_t count = 0;

    for (struct if_nameindex *l = links; l != NULL && l->if_index != 0; l++) {
        if (strncmp(l->if_name, prefix, strlen(prefix)) == 0)
            count++;
    }
    if_freenameindex(links);
    return count;
}

static bool link_gone(void *arg) { return !harness_link_exists(arg); }

bool harness_wait_link_gone(const char *name) {
    return harness_wait_for(link_gone, (void *)name);
}

int harness_shell(const char *command) {
    int status = system(command);
    if (status == -1 || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

// ---- Other processes -------------------------------------------------------

// Reads exactly len bytes from fd within HARNESS_WAIT_SECONDS.
static bool read_exactly(int fd, void *data, size_t len) {
    double deadline = harness_now() + HARNESS_WAIT_SECONDS;
    size_t got = 0;

    while (got < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, remaining_ms(deadline)) <= 0)
            return false;
        ssize_t n = read(fd, (char *)data + got, len - got);
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return true;
}

int harness_kill_and_reap(pid_t pid, int sig) {
    int status;

    if (pid <= 0 || kill(pid, sig) != 0)
        return -1;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return status;
}

static bool drop_privileges(void) {
    return setgroups(0, NULL) == 0 &&
           setresgid(HARNESS_NOBODY, HARNESS_NOBODY, HARNESS_NOBODY) == 0 &&
           setresuid(HARNESS_NOBODY, HARNESS_NOBODY, HARNESS_NOBODY) == 0;
}

static int run_child(int (*fn)(void *arg), void *arg, bool unprivileged) {
    pid_t parent = getpid();
    int result = -1;
    int pipe_fds[2];
    pid_t pid;

    if (pipe2(pipe_fds, O_CLOEXEC) != 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        close(pipe_fds[0]);
        if (unprivileged && !drop_privileges())
            _exit(1);
        // After the change of credentials, which clears the parent-death
        // signal.
        child_prepare(parent);
        int r = fn(arg);
        if (write(pipe_fds[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
            _exit(1);
        _exit(0);
    }
    close(pipe_fds[1]);
    if (pid > 0 && !read_exactly(pipe_fds[0], &result, sizeof(result))) {
        result = -1;
        kill(pid, SIGKILL);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
    close(pipe_fds[0]);
    return result;
}

int harness_run_child(int (*fn)(void *arg), void *arg) {
    return run_child(fn, arg, false);
}

int harness_run_unprivileged(int (*fn)(void *arg), void *arg) {
    return run_child(fn, arg, true);
}

pid_t harness_spawn_holder(const struct harness_broker *broker,
                           const char *const *names, size_t n) {
    pid_t parent = getpid();
    char ready;
    int pipe_fds[2];
    pid_t pid;

    if (pipe2(pipe_fds, O_CLOEXEC) != 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        close(pipe_fds[0]);
        child_prepare(parent);
        vmnet_broker_connection_t *connection = harness_connect(broker);
        if (connection == NULL)
            _exit(1);
        for (size_t i = 0; i < n; i++) {
            if (harness_acquire(connection, names[i], NULL) !=
                VMNET_BROKER_SUCCESS)
                _exit(1);
        }
        if (write(pipe_fds[1], "r", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(pipe_fds[1]);
    if (pid > 0 && !read_exactly(pipe_fds[0], &ready, 1)) {
        harness_kill_and_reap(pid, SIGKILL);
        pid = -1;
    }
    close(pipe_fds[0]);
    return pid;
}

pid_t harness_spawn(const struct harness_broker *broker,
                    const char *const *argv, int *stdout_fd) {
    pid_t parent = getpid();
    int pipe_fds[2] = {-1, -1};
    pid_t pid;

    if (stdout_fd != NULL && pipe2(pipe_fds, O_CLOEXEC) != 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        child_prepare(parent);
        if (pipe_fds[1] >= 0)
            dup2(pipe_fds[1], STDOUT_FILENO);
        setenv(VMNET_BROKER_SOCKET_ENV, broker->socket_path, 1);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    if (pipe_fds[1] >= 0)
        close(pipe_fds[1]);
    if (pid < 0) {
        if (pipe_fds[0] >= 0)
            close(pipe_fds[0]);
        return -1;
    }
    if (stdout_fd != NULL)
        *stdout_fd = pipe_fds[0];
    return pid;
}

int harness_wait_pid(pid_t pid) {
    double deadline = harness_now() + HARNESS_WAIT_SECONDS;
    int status;

    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0)
            return -1;
        if (harness_now() > deadline) {
            harness_kill_and_reap(pid, SIGKILL);
            return -1;
        }
        sleep_ms(10);
    }
}

int harness_run(const struct harness_broker *broker, const char *const *argv,
                char **output) {
    double deadline = harness_now() + HARNESS_WAIT_SECONDS;
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    char buf[4096];
    int fd = -1;
    pid_t pid;

    if (out == NULL)
        abort();
    pid = harness_spawn(broker, argv, &fd);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (pid < 0 || poll(&p, 1, remaining_ms(deadline)) <= 0)
            break;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        fwrite(buf, 1, (size_t)n, out);
    }
    fclose(out);
    if (fd >= 0)
        close(fd);
    if (output != NULL)
        *output = text;
    else
        free(text);
    return pid < 0 ? -1 : harness_wait_pid(pid);
}

void harness_reader_init(struct harness_reader *reader, int fd) {
    reader->fd = fd;
    reader->len = 0;
    reader->buf[0] = '\0';
}

// Appends what the child writes next. False on end of file, on timeout or
// when the buffer is full.
static bool reader_fill(struct harness_reader *reader, double deadline) {
    struct pollfd p = {.fd = reader->fd, .events = POLLIN};
    size_t room = sizeof(reader->buf) - 1 - reader->len;
    ssize_t n;

    if (room == 0 || poll(&p, 1, remaining_ms(deadline)) <= 0)
        return false;
    n = read(reader->fd, reader->buf + reader->len, room);
    if (n <= 0)
        return false;
    reader->len += (size_t)n;
    reader->buf[reader->len] = '\0';
    return true;
}

json_t *harness_reader_json(struct harness_reader *reader) {
    double deadline = harness_now() + HARNESS_WAIT_SECONDS;
    json_error_t error;
    json_t *value;

    for (;;) {
        // The writer keeps running (the CLI holds networks until it is
        // interrupted), so a value is complete when it parses, not at end
        // of file; what follows it is kept for the next call.
        value = json_loadb(reader->buf, reader->len, JSON_DISABLE_EOF_CHECK,
                           &error);
        if (value != NULL)
            break;
        if (json_error_code(&error) != json_error_premature_end_of_input ||
            !reader_fill(reader, deadline))
            return NULL;
    }
    reader->len -= (size_t)error.position;
    memmove(reader->buf, reader->buf + error.position, reader->len + 1);
    if (!json_is_object(value)) {
        json_decref(value);
        return NULL;
    }
    return value;
}

bool harness_reader_wait_text(struct harness_reader *reader,
                              const char *needle) {
    double deadline = harness_now() + HARNESS_WAIT_SECONDS;

    while (strstr(reader->buf, needle) == NULL) {
        if (!reader_fill(reader, deadline))
            return false;
    }
    return true;
}

json_t *harness_acquire_network(const struct harness_broker *broker,
                                int *connection, const char *name) {
    json_t *reply;
    json_t *network;

    if (*connection < 0)
        *connection = harness_raw_connect(broker->socket_path);
    ck_assert_int_ge(*connection, 0);
    reply = harness_raw_acquire(*connection, name);
    ck_assert_msg(harness_reply_network_name(reply) != NULL,
                  "cannot acquire %s (log: %s)", name, broker->log_path);
    network = json_incref(json_object_get(reply, "network"));
    json_decref(reply);
    return network;
}

const char *harness_network_field(const json_t *network, const char *key) {
    const char *value = json_string_value(json_object_get(network, key));

    ck_assert_msg(value != NULL, "the network has no \"%s\"", key);
    return value;
}
