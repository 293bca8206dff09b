// SPDX-License-Identifier: Apache-2.0
// Network namespaces the bench makes, and programs run inside them.
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

// ip and busybox live in sbin, which a user's PATH may lack.
#define SEARCH_PATH                                                            \
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
// One setup command ("ip ...") is quick; this only bounds a hung one.
#define COMMAND_SECONDS 10.0
// A link reaches "state UP" when the kernel's link watcher gets to it,
// usually within milliseconds.
#define LINK_UP_SECONDS 10.0

static void sleep_ms(long ms) {
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int remaining_ms(uint64_t deadline_ns) {
    uint64_t now = bench_now_ns();
    return now < deadline_ns ? (int)((deadline_ns - now) / 1000000) + 1 : 0;
}

// Every process the bench starts dies with it, so that a bench killed
// half-way leaves no namespace and no server behind.
static void die_with_parent(pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
}

static bool set_loopback_up(void) {
    struct ifreq ifr = {0};
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    bool up = false;

    if (fd < 0)
        return false;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags |= IFF_UP;
        up = ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
    }
    close(fd);
    return up;
}

// The holder's whole life: make the namespace, say so, wait to be killed.
static void hold(pid_t parent, int ready_fd) {
    die_with_parent(parent);
    if (unshare(CLONE_NEWNET) < 0 || !set_loopback_up())
        _exit(1);
    if (write(ready_fd, "r", 1) != 1)
        _exit(1);
    for (;;)
        pause();
}

bool netns_new(struct netns *ns) {
    pid_t parent = getpid();
    int ready[2];
    char byte;
    pid_t pid;
    bool status = false;

    ns->holder = 0;
    if (pipe2(ready, O_CLOEXEC) < 0)
        return false;
    pid = fork();
    if (pid == 0)
        hold(parent, ready[1]);
    close(ready[1]);
    if (pid < 0)
        goto out;
    ns->holder = pid;
    // EOF, without the byte, when the holder failed.
    status = read(ready[0], &byte, 1) == 1;
out:
    close(ready[0]);
    if (!status)
        netns_free(ns);
    return status;
}

void netns_free(struct netns *ns) {
    if (ns == NULL || ns->holder <= 0)
        return;
    kill(ns->holder, SIGKILL);
    while (waitpid(ns->holder, NULL, 0) < 0 && errno == EINTR)
        ;
    ns->holder = 0;
}

// In the child: joins ns (NULL: stays in the bench's own).
static bool enter(const struct netns *ns) {
    char path[64];
    bool entered;
    int fd;

    if (ns == NULL)
        return true;
    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)ns->holder);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    entered = setns(fd, CLONE_NEWNET) == 0;
    close(fd);
    return entered;
}

pid_t netns_spawn(const struct netns *ns, const char *const *argv,
                  int *output_fd) {
    pid_t parent = getpid();
    int out[2];
    pid_t pid;

    if (pipe2(out, O_CLOEXEC) < 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        die_with_parent(parent);
        // The bench ignores SIGPIPE; an ignored signal stays ignored
        // across exec.
        signal(SIGPIPE, SIG_DFL);
        if (dup2(out[1], STDOUT_FILENO) < 0 || dup2(out[1], STDERR_FILENO) < 0)
            _exit(127);
        if (!enter(ns))
            _exit(127);
        setenv("PATH", SEARCH_PATH, 1);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    if (pid < 0) {
        close(out[0]);
        return -1;
    }
    *output_fd = out[0];
    return pid;
}

int netns_wait(pid_t pid, uint64_t deadline_ns) {
    int wait_status;

    for (;;) {
        pid_t r = waitpid(pid, &wait_status, WNOHANG);
        if (r == pid)
            return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1;
        if (r < 0 && errno != EINTR)
            return -1;
        if (bench_now_ns() > deadline_ns) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return -1;
        }
        sleep_ms(2);
    }
}

void netns_kill(pid_t pid) {
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

bool netns_read_line(int fd, const char *needle, uint64_t deadline_ns,
                     char *line, size_t size) {
    char buf[8192];
    size_t used = 0;

    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        const char *found;
        const char *end;
        ssize_t n;

        buf[used] = '\0';
        found = strstr(buf, needle);
        end = found != NULL ? strchr(found, '\n') : NULL;
        if (end != NULL) {
            snprintf(line, size, "%.*s", (int)(end - found), found);
            return true;
        }
        if (poll(&p, 1, remaining_ms(deadline_ns)) <= 0)
            return false;
        // Full: the older half goes, the needle is looked for in what is
        // left and what comes next.
        if (used == sizeof(buf) - 1) {
            memmove(buf, buf + used / 2, used - used / 2);
            used -= used / 2;
        }
        n = read(fd, buf + used, sizeof(buf) - 1 - used);
        if (n <= 0)
            return false;
        used += (size_t)n;
    }
}

int netns_run(const struct netns *ns, const char *const *argv, double seconds,
              char *output, size_t size) {
    uint64_t deadline = bench_now_ns() + (uint64_t)(seconds * 1e9);
    size_t used = 0;
    char discard[512];
    int fd;
    pid_t pid = netns_spawn(ns, argv, &fd);

    if (pid < 0)
        return -1;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char *into =
            output != NULL && used + 1 < size ? output + used : discard;
        size_t room = into == discard ? sizeof(discard) : size - 1 - used;
        ssize_t n;

        if (poll(&p, 1, remaining_ms(deadline)) <= 0)
            break;
        n = read(fd, into, room);
        if (n <= 0)
            break;
        if (into != discard)
            used += (size_t)n;
    }
    if (output != NULL && size > 0)
        output[used] = '\0';
    close(fd);
    return netns_wait(pid, deadline);
}

bool netns_shell(const struct netns *ns, const char *format, ...) {
    char command[512];
    char output[1024];
    const char *argv[] = {"sh", "-c", command, NULL};
    va_list args;
    int n;

    va_start(args, format);
    n = vsnprintf(command, sizeof(command), format, args);
    va_end(args);
    if (n < 0 || (size_t)n >= sizeof(command))
        return false;
    if (netns_run(ns, argv, COMMAND_SECONDS, output, sizeof(output)) == 0)
        return true;
    fprintf(stderr, "bench: failed: %s\n%s", command, output);
    return false;
}

bool netns_wait_link_up(const struct netns *ns, const char *link) {
    const char *argv[] = {"ip", "-o", "link", "show", "dev", link, NULL};
    uint64_t deadline = bench_now_ns() + (uint64_t)(LINK_UP_SECONDS * 1e9);
    char output[1024];

    // Until the link watcher has seen the carrier, the link's queue drops
    // every packet: the first DHCP discover would be lost.
    while (bench_now_ns() < deadline) {
        if (netns_run(ns, argv, COMMAND_SECONDS, output, sizeof(output)) == 0 &&
            strstr(output, " state UP ") != NULL)
            return true;
        sleep_ms(5);
    }
    fprintf(stderr, "bench: link %s is not up\n", link);
    return false;
}

bool netns_program_exists(const char *name) {
    char path[256];
    const char *dir = SEARCH_PATH;

    while (*dir != '\0') {
        size_t len = strcspn(dir, ":");
        snprintf(path, sizeof(path), "%.*s/%s", (int)len, dir, name);
        if (access(path, X_OK) == 0)
            return true;
        dir += len;
        if (*dir == ':')
            dir++;
    }
    return false;
}
