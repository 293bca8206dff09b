// SPDX-License-Identifier: Apache-2.0
// The DHCP baseline: dnsmasq started by hand on a bare bridge.
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define DNSMASQ "/usr/sbin/dnsmasq"
// dnsmasq is ready within milliseconds; this only bounds a hung one.
#define READY_SECONDS 5.0

static void sleep_us(long us) {
    struct timespec ts = {.tv_sec = us / 1000000,
                          .tv_nsec = (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

// dnsmasq writes its pid file once its sockets are bound: the moment the
// broker waits for too.
static bool pid_file_written(const char *path, pid_t pid) {
    FILE *f = fopen(path, "r");
    long read_pid = 0;

    if (f == NULL)
        return false;
    if (fscanf(f, "%ld", &read_pid) != 1)
        read_pid = 0;
    fclose(f);
    return read_pid == pid;
}

// What the broker's dnsmasq does for IPv4 (DHCP, and DNS on the gateway),
// given on the command line instead of in a file.
static void exec_dnsmasq(const struct bare_dnsmasq *d, const char *bridge,
                         unsigned index, pid_t parent) {
    char interface[64], listen[64], pid_file[128], lease_file[128], user[64],
        range[96], router[64], dns[64];
    char gateway[16];
    char log_path[96];
    int log_fd;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    snprintf(log_path, sizeof(log_path), "%s/dnsmasq.log", d->dir);
    log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (log_fd < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
        dup2(log_fd, STDERR_FILENO) < 0)
        _exit(127);
    // The bare bridge's address (bare_bridge_create()).
    snprintf(gateway, sizeof(gateway), "10.200.%u.1", index);
    snprintf(interface, sizeof(interface), "--interface=%s", bridge);
    snprintf(listen, sizeof(listen), "--listen-address=%s", gateway);
    snprintf(pid_file, sizeof(pid_file), "--pid-file=%s/dnsmasq.pid", d->dir);
    snprintf(lease_file, sizeof(lease_file), "--dhcp-leasefile=%s/leases",
             d->dir);
    snprintf(user, sizeof(user), "--user=%s",
             getpwnam("dnsmasq") != NULL ? "dnsmasq" : "root");
    snprintf(range, sizeof(range),
             "--dhcp-range=10.200.%u.2,10.200.%u.254,255.255.255.0,12h", index,
             index);
    snprintf(router, sizeof(router), "--dhcp-option=option:router,%s", gateway);
    snprintf(dns, sizeof(dns), "--dhcp-option=option:dns-server,%s", gateway);
    execl(DNSMASQ, DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null",
          interface, "--except-interface=lo", listen, "--bind-interfaces",
          pid_file, lease_file, "--log-facility=-", "--quiet-dhcp", user,
          "--domain-needed", "--dhcp-authoritative", "--no-ping", range, router,
          dns, (char *)NULL);
    _exit(127);
}

static void show_log(const struct bare_dnsmasq *d) {
    char path[96];
    char line[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/dnsmasq.log", d->dir);
    f = fopen(path, "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL)
        fputs(line, stderr);
    fclose(f);
}

bool bare_dnsmasq_start(struct bare_dnsmasq *d, const char *bridge,
                        unsigned index) {
    pid_t parent = getpid();
    uint64_t deadline = bench_now_ns() + (uint64_t)(READY_SECONDS * 1e9);
    char pid_file[96];

    d->pid = 0;
    strcpy(d->dir, "/tmp/vmnet-broker-bench-dnsmasq-XXXXXX");
    if (mkdtemp(d->dir) == NULL) {
        d->dir[0] = '\0';
        return false;
    }
    snprintf(pid_file, sizeof(pid_file), "%s/dnsmasq.pid", d->dir);
    d->pid = fork();
    if (d->pid < 0) {
        d->pid = 0;
        return false;
    }
    if (d->pid == 0)
        exec_dnsmasq(d, bridge, index, parent);
    while (bench_now_ns() < deadline) {
        if (pid_file_written(pid_file, d->pid))
            return true;
        if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
            d->pid = 0;
            break;
        }
        // Finer than the broker's 2 ms: the baseline is not to be slowed by
        // its own polling.
        sleep_us(200);
    }
    fprintf(stderr, "bench: dnsmasq did not start on %s; its log:\n", bridge);
    show_log(d);
    return false;
}

void bare_dnsmasq_stop(struct bare_dnsmasq *d) {
    char path[96];

    if (d == NULL)
        return;
    if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        while (waitpid(d->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        d->pid = 0;
    }
    if (d->dir[0] == '\0')
        return;
    snprintf(path, sizeof(path), "%s/dnsmasq.pid", d->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/leases", d->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/dnsmasq.log", d->dir);
    unlink(path);
    rmdir(d->dir);
    d->dir[0] = '\0';
}
