// SPDX-License-Identifier: Apache-2.0
// The real broker, started from the build tree in a temporary directory.
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "vmnet-broker.h"

// Far longer than the broker needs to start, answer or exit: a slow
// machine makes the bench slower, never failed.
#define WAIT_SECONDS 20.0
// The idle delay: longer than the whole run, so no network is removed
// while it is measured.
#define IDLE_TIMEOUT "600"

static void sleep_ms(long ms) {
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static double seconds_since(uint64_t start_ns) {
    return (bench_now_ns() - start_ns) / 1e9;
}

static bool write_configs(const struct broker_process *broker) {
    for (unsigned i = 1; i <= broker->configured; i++) {
        char path[160];
        FILE *f;

        snprintf(path, sizeof(path), "%s/net%u.json", broker->config_dir, i);
        f = fopen(path, "w");
        if (f == NULL)
            return false;
        fputs("{\"mode\": \"shared\"}\n", f);
        if (fclose(f) != 0)
            return false;
    }
    return true;
}

static void exec_broker(const struct broker_process *broker, const char *binary,
                        pid_t parent) {
    int log_fd;

    // The broker dies with the bench (the namespace goes with them).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    log_fd = open(broker->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (log_fd < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
        dup2(log_fd, STDERR_FILENO) < 0)
        _exit(127);
    // The default instance's plain names ("vmb-net3"), which the bench
    // looks for, whatever its runtime directory.
    setenv("VMNET_BROKER_INSTANCE", "default", 1);
    execl(binary, binary, "--socket", broker->socket_path, "--config-dir",
          broker->config_dir, "--idle-timeout",
          broker->idle != NULL ? broker->idle : IDLE_TIMEOUT, (char *)NULL);
    _exit(127);
}

static bool wait_ready(struct broker_process *broker) {
    uint64_t start = bench_now_ns();

    while (seconds_since(start) < WAIT_SECONDS) {
        int fd = exchange_connect(broker->socket_path);
        if (fd >= 0) {
            close(fd);
            return true;
        }
        if (waitpid(broker->pid, NULL, WNOHANG) == broker->pid) {
            broker->pid = 0;
            return false;
        }
        sleep_ms(10);
    }
    return false;
}

bool broker_process_start(struct broker_process *broker, const char *binary,
                          unsigned configured) {
    pid_t parent = getpid();

    broker->pid = 0;
    broker->configured = configured;
    broker->binary = binary;
    strcpy(broker->dir, "/tmp/vmnet-broker-bench-XXXXXX");
    if (mkdtemp(broker->dir) == NULL) {
        broker->dir[0] = '\0';
        return false;
    }
    snprintf(broker->socket_path, sizeof(broker->socket_path), "%s/broker.sock",
             broker->dir);
    snprintf(broker->config_dir, sizeof(broker->config_dir), "%s/config",
             broker->dir);
    snprintf(broker->log_path, sizeof(broker->log_path), "%s/broker.log",
             broker->dir);
    if (mkdir(broker->config_dir, 0755) < 0 || !write_configs(broker))
        return false;
    broker->pid = fork();
    if (broker->pid < 0) {
        broker->pid = 0;
        return false;
    }
    if (broker->pid == 0)
        exec_broker(broker, binary, parent);
    return wait_ready(broker);
}

// Waits for the broker to exit; returns its wait status or -1.
static int wait_exit(pid_t pid) {
    uint64_t start = bench_now_ns();
    int wait_status;

    while (seconds_since(start) < WAIT_SECONDS) {
        pid_t r = waitpid(pid, &wait_status, WNOHANG);
        if (r == pid)
            return wait_status;
        if (r < 0 && errno != EINTR)
            return -1;
        sleep_ms(10);
    }
    return -1;
}

// Runs the broker's --cleanup on its runtime directory (the socket's).
static void cleanup(const struct broker_process *broker) {
    pid_t pid = fork();

    if (pid == 0) {
        int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null_fd >= 0) {
            dup2(null_fd, STDOUT_FILENO);
            dup2(null_fd, STDERR_FILENO);
        }
        setenv("VMNET_BROKER_INSTANCE", "default", 1);
        execl(broker->binary, broker->binary, "--socket", broker->socket_path,
              "--cleanup", (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
}

bool broker_process_stop(struct broker_process *broker) {
    bool clean = false;

    if (broker->pid > 0) {
        int wait_status = -1;
        if (kill(broker->pid, SIGTERM) == 0)
            wait_status = wait_exit(broker->pid);
        if (wait_status == -1) {
            kill(broker->pid, SIGKILL);
            waitpid(broker->pid, NULL, 0);
        }
        clean = wait_status != -1 && WIFEXITED(wait_status) &&
                WEXITSTATUS(wait_status) == 0;
        broker->pid = 0;
        // A network with ports when SIGTERM came is left running for the
        // next broker (issue 12): gone, its dnsmasq would keep its gateway
        // address's port for the rest of the run, where a later broker, with
        // the same default instance's names, removes its bridge and would
        // give the subnet out again. The bench has no next broker for it.
        cleanup(broker);
    }
    if (broker->dir[0] != '\0') {
        char path[160];

        for (unsigned i = 1; i <= broker->configured; i++) {
            snprintf(path, sizeof(path), "%s/net%u.json", broker->config_dir,
                     i);
            unlink(path);
        }
        rmdir(broker->config_dir);
        unlink(broker->socket_path);
        unlink(broker->log_path);
        // --cleanup keeps the lock file (a broker starting meanwhile may
        // hold it open); no broker starts here any more.
        snprintf(path, sizeof(path), "%s/vmnet-broker.lock", broker->dir);
        unlink(path);
        rmdir(broker->dir);
        broker->dir[0] = '\0';
    }
    return clean;
}

void broker_process_show_log(const struct broker_process *broker) {
    char line[1024];
    FILE *f = fopen(broker->log_path, "r");
    // Only the end: the log of 2,000 cycles is long, the cause is last.
    char tail[20][sizeof(line)];
    size_t n = 0;

    if (f == NULL) {
        fprintf(stderr, "bench: no broker log at %s\n", broker->log_path);
        return;
    }
    while (fgets(line, sizeof(line), f) != NULL)
        memcpy(tail[n++ % 20], line, sizeof(line));
    fclose(f);
    fprintf(stderr, "bench: end of the broker's log (%s):\n", broker->log_path);
    for (size_t i = n > 20 ? n - 20 : 0; i < n; i++)
        fputs(tail[i % 20], stderr);
}

// The broker's status object, asked over a connection of its own.
static json_t *status(const struct broker_process *broker) {
    vmnet_broker_connection_t *connection = NULL;
    char *text = NULL;
    json_t *root = NULL;

    if (vmnet_broker_connect(broker->socket_path, &connection) !=
        VMNET_BROKER_SUCCESS)
        goto out;
    if (vmnet_broker_connection_status(connection, &text) !=
        VMNET_BROKER_SUCCESS)
        goto out;
    root = json_loads(text, 0, NULL);
out:
    free(text);
    vmnet_broker_connection_close(connection);
    return root;
}

// Peers in the broker's status, counting the connection that asks; -1 on
// failure.
static long peers(const struct broker_process *broker) {
    json_t *root = status(broker);
    json_t *list = json_object_get(root, "peers");
    long n = json_is_array(list) ? (long)json_array_size(list) : -1;

    json_decref(root);
    return n;
}

bool broker_process_wait_peers(const struct broker_process *broker,
                               long expected) {
    uint64_t start = bench_now_ns();

    while (seconds_since(start) < WAIT_SECONDS) {
        // The connection asking is a peer too.
        if (peers(broker) == expected + 1)
            return true;
        sleep_ms(10);
    }
    return false;
}

long broker_process_network_peers(const struct broker_process *broker,
                                  const char *name) {
    json_t *root = status(broker);
    json_t *networks = json_object_get(root, "networks");
    json_t *network;
    size_t i;
    long n = -1;

    json_array_foreach(networks, i, network) {
        json_t *peers = json_object_get(network, "peers");
        if (json_is_string(json_object_get(network, "name")) &&
            strcmp(json_string_value(json_object_get(network, "name")), name) ==
                0 &&
            json_is_integer(peers))
            n = (long)json_integer_value(peers);
    }
    json_decref(root);
    return n;
}
