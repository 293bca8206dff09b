// SPDX-License-Identifier: Apache-2.0
// End-to-end topology: guests and an outside as network namespaces.
#include "harness_topology.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define NETNS_DIR "/run/netns"
#define SEARCH_PATH                                                            \
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SCRIPT_NAME "udhcpc-script"
// What the script prints for a lease, and the test looks for.
#define LEASE_TAG "e2e-lease "
#define LISTENER_READY "ready\n"
#define GREETING "hello\n"
// udhcpc gives up by itself after -t 5 discovers, 3 s apart; this bounds
// it in case it does not.
#define DHCP_SECONDS 30.0
// One setup command ("ip ...") is quick; this only bounds a hung one.
#define COMMAND_SECONDS HARNESS_WAIT_SECONDS

// Prints what it got as "e2e-lease ADDRESS PREFIX_LEN ROUTER DNS" after
// configuring it, so that the test learns what the server offered.
static const char SCRIPT[] =
    "#!/bin/sh\n"
    "# busybox udhcpc's script for the test's guests.\n"
    "case \"$1\" in\n"
    "deconfig)\n"
    "    ip -4 addr flush dev \"$interface\"\n"
    "    ;;\n"
    "bound|renew)\n"
    "    ip -4 addr flush dev \"$interface\"\n"
    "    ip addr add \"$ip/$mask\" dev \"$interface\" || exit 1\n"
    "    ip route replace default via \"$router\" dev \"$interface\" || "
    "exit 1\n"
    "    echo \"" LEASE_TAG "$ip $mask $router $dns\"\n"
    "    ;;\n"
    "esac\n"
    "exit 0\n";

static void sleep_ms(long ms) {
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int remaining_ms(double deadline) {
    double left = deadline - harness_now();
    return left > 0 ? (int)(left * 1000) + 1 : 0;
}

// ---- Processes -------------------------------------------------------------

// A child dies with the test, whose failed assertions end it at once.
static void child_prepare(pid_t parent) {
    sigset_t none;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static bool enter_ns(const char *ns) {
    char path[PATH_MAX];
    bool entered;
    int fd;

    if (ns == NULL)
        return true;
    snprintf(path, sizeof(path), NETNS_DIR "/%s", ns);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    entered = setns(fd, CLONE_NEWNET) == 0;
    close(fd);
    return entered;
}

// Waits until deadline for pid to exit, then kills it. Returns its exit
// code, or -1 if it had to be killed or did not exit normally.
static int wait_child(pid_t pid, double deadline) {
    int status;

    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (r < 0 && errno != EINTR)
            return -1;
        if (harness_now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return -1;
        }
        sleep_ms(5);
    }
}

int topology_run(const char *ns, const char *const *argv, double seconds,
                 char **output) {
    double deadline = harness_now() + seconds;
    pid_t parent = getpid();
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    int pipe_fds[2];
    int result = -1;
    char buf[4096];
    pid_t pid;

    if (out == NULL)
        abort();
    if (pipe2(pipe_fds, O_CLOEXEC) != 0)
        goto out;
    pid = fork();
    if (pid == 0) {
        child_prepare(parent);
        dup2(pipe_fds[1], STDOUT_FILENO);
        if (!enter_ns(ns))
            _exit(127);
        // ip, bridge and nft live in sbin, which a user's PATH may lack.
        setenv("PATH", SEARCH_PATH, 1);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pipe_fds[1]);
    for (;;) {
        struct pollfd p = {.fd = pipe_fds[0], .events = POLLIN};
        if (pid < 0 || poll(&p, 1, remaining_ms(deadline)) <= 0)
            break;
        ssize_t n = read(pipe_fds[0], buf, sizeof(buf));
        if (n <= 0)
            break;
        fwrite(buf, 1, (size_t)n, out);
    }
    close(pipe_fds[0]);
    if (pid > 0)
        result = wait_child(pid, deadline);
out:
    fclose(out);
    if (output != NULL)
        *output = text;
    else
        free(text);
    return result;
}

// Runs a command line built from format with sh in the test's namespace;
// true if it succeeded.
__attribute__((format(printf, 1, 2))) static bool shell(const char *format,
                                                        ...) {
    char command[512];
    const char *argv[] = {"sh", "-c", command, NULL};
    va_list args;
    int n;

    va_start(args, format);
    n = vsnprintf(command, sizeof(command), format, args);
    va_end(args);
    if (n < 0 || (size_t)n >= sizeof(command))
        return false;
    if (topology_run(NULL, argv, COMMAND_SECONDS, NULL) == 0)
        return true;
    fprintf(stderr, "topology: failed: %s\n", command);
    return false;
}

// ---- Namespaces ------------------------------------------------------------

struct topology *topology_new(const char *dir) {
    struct topology *t = calloc(1, sizeof(*t));
    struct topology *made = NULL;
    char path[PATH_MAX];
    FILE *f;
    bool written;

    if (t == NULL || strlen(dir) >= sizeof(t->dir))
        goto out;
    snprintf(t->dir, sizeof(t->dir), "%s", dir);
    if (mkdir(NETNS_DIR, 0755) != 0 && errno != EEXIST)
        goto out;
    // The test's mount namespace is private (harness_enter_netns()): the
    // machine's own /run/netns never sees these namespaces.
    if (mount("tmpfs", NETNS_DIR, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=0755") != 0)
        goto out;
    snprintf(path, sizeof(path), "%s/" SCRIPT_NAME, t->dir);
    f = fopen(path, "w");
    if (f == NULL)
        goto out;
    written = fputs(SCRIPT, f) >= 0;
    if (fclose(f) != 0 || !written || chmod(path, 0755) != 0)
        goto out;
    made = t;
    t = NULL;
out:
    if (made == NULL)
        fprintf(stderr, "topology: cannot prepare %s and %s: %s\n", NETNS_DIR,
                dir, strerror(errno));
    topology_free(t);
    return made;
}

void topology_free(struct topology *t) {
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        shell("ip netns del %s", t->names[i]);
    free(t);
}

// Makes a namespace with lo up and records it for topology_free().
static const char *add_ns(struct topology *t) {
    char *name;

    if (t->n == TOPOLOGY_NS_MAX)
        return NULL;
    name = t->names[t->n];
    snprintf(name, TOPOLOGY_NS_NAME_MAX, "e2e-%d-%zu", (int)getpid(), t->n);
    if (!shell("ip netns add %s", name))
        return NULL;
    t->n++;
    if (!shell("ip -n %s link set lo up", name))
        return NULL;
    return name;
}

// The host end of the veth pair of the namespace made n-th; never the
// broker's "vmb-" prefix, which its isolation rules match.
static void host_link_name(size_t n, char out[16]) {
    snprintf(out, 16, "e2e%dv%zu", (int)getpid() % 10000000, n);
}

struct links_running {
    const char *ns;
    const char *host_link;
    bool bridged;
};

static bool output_has(const char *ns, const char *const *argv,
                       const char *needle) {
    char *output = NULL;
    bool found = topology_run(ns, argv, COMMAND_SECONDS, &output) == 0 &&
                 strstr(output, needle) != NULL;
    free(output);
    return found;
}

// Both ends carry traffic: operationally up, and a bridge port forwarding.
// Until then the first packets sent are lost, which would cost a DHCP
// client a retry seconds later.
static bool links_running(void *arg) {
    const struct links_running *w = arg;
    const char *host[] = {"ip",  "-o",         "link", "show",
                          "dev", w->host_link, NULL};
    const char *guest[] = {"ip",  "-o",          "link", "show",
                           "dev", TOPOLOGY_LINK, NULL};
    const char *port[] = {"bridge", "-o",         "link", "show",
                          "dev",    w->host_link, NULL};

    return output_has(NULL, host, " state UP ") &&
           output_has(w->ns, guest, " state UP ") &&
           (!w->bridged || output_has(NULL, port, " state forwarding "));
}

const char *topology_add_outside(struct topology *t) {
    size_t index = t->n;
    const char *ns = add_ns(t);
    char link[16];
    struct links_running w = {ns, link, false};

    host_link_name(index, link);
    if (ns == NULL ||
        !shell("ip link add %s type veth peer name " TOPOLOGY_LINK " netns %s",
               link, ns) ||
        !shell("ip addr add " TOPOLOGY_HOST_IPV4 "/24 dev %s && "
               "ip -6 addr add " TOPOLOGY_HOST_IPV6 "/64 dev %s nodad && "
               "ip link set %s up",
               link, link, link) ||
        !shell("ip -n %s addr add " TOPOLOGY_OUTSIDE_IPV4
               "/24 dev " TOPOLOGY_LINK " && "
               "ip -n %s -6 addr add " TOPOLOGY_OUTSIDE_IPV6
               "/64 dev " TOPOLOGY_LINK " nodad && "
               "ip -n %s link set " TOPOLOGY_LINK " up",
               ns, ns, ns) ||
        !harness_wait_for(links_running, &w))
        return NULL;
    // The outside routes back through the host, as if the host were its
    // router: only the broker's rules keep guests of host networks from
    // reaching it, and only NAT hides where guests' packets come from.
    if (!shell("ip -n %s route add default via " TOPOLOGY_HOST_IPV4 " && "
               "ip -n %s -6 route add default via " TOPOLOGY_HOST_IPV6,
               ns, ns) ||
        !shell("ip route add default via " TOPOLOGY_OUTSIDE_IPV4 " && "
               "ip -6 route add default via " TOPOLOGY_OUTSIDE_IPV6))
        return NULL;
    return ns;
}

const char *topology_add_guest(struct topology *t, const char *bridge,
                               const char *mac) {
    size_t index = t->n;
    const char *ns = add_ns(t);
    char link[16];
    struct links_running w = {ns, link, true};

    host_link_name(index, link);
    if (ns == NULL ||
        !shell("ip link add %s type veth peer name " TOPOLOGY_LINK
               " %s %s netns %s",
               link, mac != NULL ? "address" : "", mac != NULL ? mac : "",
               ns) ||
        !shell("ip link set %s master %s && ip link set %s up", link, bridge,
               link) ||
        !shell("ip -n %s link set " TOPOLOGY_LINK " up", ns) ||
        !harness_wait_for(links_running, &w))
        return NULL;
    return ns;
}

// ---- Addresses -------------------------------------------------------------

bool topology_dhcp(const struct topology *t, const char *ns,
                   const char *hostname, struct topology_lease *lease) {
    char script[PATH_MAX];
    char option[128];
    const char *argv[] = {"busybox", "udhcpc",      "-q", "-n", "-f",
                          "-i",      TOPOLOGY_LINK, "-t", "5",  "-s",
                          script,    NULL,          NULL, NULL};
    struct topology_lease got = {0};
    char *output = NULL;
    const char *line;
    bool found = false;
    int code;

    snprintf(script, sizeof(script), "%s/" SCRIPT_NAME, t->dir);
    if (hostname != NULL) {
        snprintf(option, sizeof(option), "hostname:%s", hostname);
        argv[11] = "-x";
        argv[12] = option;
    }
    code = topology_run(ns, argv, DHCP_SECONDS, &output);
    line = strstr(output, LEASE_TAG);
    if (code == 0 && line != NULL)
        found = sscanf(line + strlen(LEASE_TAG), "%15s %u %15s %15s",
                       got.address, &got.prefix_len, got.router, got.dns) == 4;
    if (!found)
        fprintf(stderr, "topology: no DHCP lease in %s (udhcpc: %d): %s\n", ns,
                code, output);
    else
        *lease = got;
    free(output);
    return found;
}

struct ipv6_wait {
    const char *ns;
    struct in6_addr prefix;
    char *address;
    size_t size;
};

// One line of `ip -o -6 addr show`: "2: eth0 inet6 ADDRESS/64 scope global
// dynamic mngtmpaddr \ valid_lft ...".
static bool usable_address_in_prefix(const char *line,
                                     const struct in6_addr *prefix,
                                     char *address, size_t size) {
    const char *start = strstr(line, " inet6 ");
    char text[INET6_ADDRSTRLEN];
    struct in6_addr parsed;
    size_t len;

    if (start == NULL || strstr(line, "tentative") != NULL ||
        strstr(line, "dadfailed") != NULL)
        return false;
    start += strlen(" inet6 ");
    len = strcspn(start, "/ ");
    if (len >= sizeof(text))
        return false;
    memcpy(text, start, len);
    text[len] = '\0';
    if (inet_pton(AF_INET6, text, &parsed) != 1 ||
        memcmp(&parsed, prefix, 8) != 0 || len >= size)
        return false;
    memcpy(address, text, len + 1);
    return true;
}

static bool ipv6_ready(void *arg) {
    struct ipv6_wait *w = arg;
    const char *argv[] = {"ip",  "-o",          "-6",    "addr",   "show",
                          "dev", TOPOLOGY_LINK, "scope", "global", NULL};
    char *output = NULL;
    bool found = false;

    if (topology_run(w->ns, argv, COMMAND_SECONDS, &output) == 0) {
        for (char *line = strtok(output, "\n"); line != NULL && !found;
             line = strtok(NULL, "\n"))
            found =
                usable_address_in_prefix(line, &w->prefix, w->address, w->size);
    }
    free(output);
    return found;
}

bool topology_wait_ipv6(const char *ns, const char *prefix, char *address,
                        size_t size) {
    struct ipv6_wait w = {.ns = ns, .address = address, .size = size};

    if (inet_pton(AF_INET6, prefix, &w.prefix) != 1)
        return false;
    return harness_wait_for(ipv6_ready, &w);
}

// ---- Traffic ---------------------------------------------------------------

bool topology_ping(const char *ns, const char *address, double seconds) {
    const char *argv[] = {"busybox", "ping", "-c",    "1",
                          "-W",      "1",    address, NULL};
    double deadline = harness_now() + seconds;

    // One echo per try: busybox ping sends a single request for -c 1, and
    // the first may be lost while neighbours are resolved.
    do {
        if (topology_run(ns, argv, COMMAND_SECONDS, NULL) == 0)
            return true;
    } while (harness_now() < deadline);
    return false;
}

static bool parse_address(const char *address, unsigned port,
                          struct sockaddr_storage *out, socklen_t *len) {
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;

    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, address, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof(*v4);
        return true;
    }
    if (inet_pton(AF_INET6, address, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*v6);
        return true;
    }
    return false;
}

// A client's address as text; IPv4 clients of the dual-stack socket come
// as v4-mapped addresses and are given as dotted quads.
static void format_peer(const struct sockaddr_in6 *peer, char *out,
                        size_t size) {
    if (IN6_IS_ADDR_V4MAPPED(&peer->sin6_addr))
        inet_ntop(AF_INET, &peer->sin6_addr.s6_addr[12], out, (socklen_t)size);
    else
        inet_ntop(AF_INET6, &peer->sin6_addr, out, (socklen_t)size);
}

static bool write_all(int fd, const char *text) {
    size_t len = strlen(text);
    return write(fd, text, len) == (ssize_t)len;
}

// The listener child: never returns.
static void serve(const char *ns, unsigned port, int report) {
    struct sockaddr_in6 address = {.sin6_family = AF_INET6,
                                   .sin6_port = htons((uint16_t)port),
                                   .sin6_addr = IN6ADDR_ANY_INIT};
    int off = 0;
    int on = 1;
    int fd;

    if (!enter_ns(ns))
        _exit(1);
    fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 ||
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0 ||
        listen(fd, 16) != 0 || !write_all(report, LISTENER_READY))
        _exit(1);
    for (;;) {
        struct sockaddr_in6 peer;
        socklen_t len = sizeof(peer);
        char line[INET6_ADDRSTRLEN + 1];
        int client = accept4(fd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);

        if (client < 0)
            continue;
        format_peer(&peer, line, sizeof(line) - 1);
        strcat(line, "\n");
        if (!write_all(client, GREETING) || !write_all(report, line))
            _exit(1);
        close(client);
    }
}

// Reads the listener's next report line into line (without the newline)
// by deadline.
static bool listener_line(struct topology_listener *l, double deadline,
                          char *line, size_t size) {
    for (;;) {
        char *end = memchr(l->buf, '\n', l->len);
        if (end != NULL) {
            size_t n = (size_t)(end - l->buf);
            bool fits = n < size;
            if (fits) {
                memcpy(line, l->buf, n);
                line[n] = '\0';
            }
            l->len -= n + 1;
            memmove(l->buf, end + 1, l->len);
            return fits;
        }
        struct pollfd p = {.fd = l->fd, .events = POLLIN};
        if (l->len == sizeof(l->buf) ||
            poll(&p, 1, remaining_ms(deadline)) <= 0)
            return false;
        ssize_t n = read(l->fd, l->buf + l->len, sizeof(l->buf) - l->len);
        if (n <= 0)
            return false;
        l->len += (size_t)n;
    }
}

bool topology_listen(const char *ns, unsigned port,
                     struct topology_listener *l) {
    pid_t parent = getpid();
    int pipe_fds[2];
    char line[16];

    memset(l, 0, sizeof(*l));
    l->fd = -1;
    if (pipe2(pipe_fds, O_CLOEXEC) != 0)
        return false;
    l->pid = fork();
    if (l->pid == 0) {
        close(pipe_fds[0]);
        child_prepare(parent);
        serve(ns, port, pipe_fds[1]);
    }
    close(pipe_fds[1]);
    l->fd = pipe_fds[0];
    if (l->pid < 0) {
        l->pid = 0;
        return false;
    }
    if (!listener_line(l, harness_now() + HARNESS_WAIT_SECONDS, line,
                       sizeof(line)) ||
        strcmp(line, "ready") != 0) {
        topology_listener_stop(l);
        return false;
    }
    return true;
}

bool topology_listener_peer(struct topology_listener *l, double seconds,
                            char *peer, size_t size) {
    return l->fd >= 0 && listener_line(l, harness_now() + seconds, peer, size);
}

void topology_listener_stop(struct topology_listener *l) {
    if (l->pid > 0)
        harness_kill_and_reap(l->pid, SIGKILL);
    if (l->fd >= 0)
        close(l->fd);
    l->pid = 0;
    l->fd = -1;
}

// The client child's work: 0 if the greeting arrived by deadline.
static int greeted(const char *ns, const char *address, unsigned port,
                   double deadline) {
    struct sockaddr_storage target;
    socklen_t len;
    char buf[sizeof(GREETING)];
    size_t got = 0;
    int error = 0;
    socklen_t error_len = sizeof(error);
    struct pollfd p;
    int fd;

    if (!enter_ns(ns) || !parse_address(address, port, &target, &len))
        return 2;
    fd =
        socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 2;
    if (connect(fd, (struct sockaddr *)&target, len) != 0 &&
        errno != EINPROGRESS)
        return 1;
    p = (struct pollfd){.fd = fd, .events = POLLOUT};
    if (poll(&p, 1, remaining_ms(deadline)) <= 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &error_len) != 0 ||
        error != 0)
        return 1;
    while (got < strlen(GREETING)) {
        p = (struct pollfd){.fd = fd, .events = POLLIN};
        if (poll(&p, 1, remaining_ms(deadline)) <= 0)
            return 1;
        ssize_t n = read(fd, buf + got, strlen(GREETING) - got);
        if (n <= 0)
            return 1;
        got += (size_t)n;
    }
    return memcmp(buf, GREETING, got) == 0 ? 0 : 1;
}

pid_t topology_connect_start(const char *ns, const char *address, unsigned port,
                             double seconds) {
    double deadline = harness_now() + seconds;
    pid_t parent = getpid();
    pid_t pid = fork();

    if (pid == 0) {
        child_prepare(parent);
        _exit(greeted(ns, address, port, deadline));
    }
    return pid;
}

bool topology_connect_wait(pid_t pid, double seconds) {
    // A second more than the child's own deadline: it gives up first.
    return pid > 0 && wait_child(pid, harness_now() + seconds + 1) == 0;
}

bool topology_connect(const char *ns, const char *address, unsigned port,
                      double seconds) {
    pid_t pid = topology_connect_start(ns, address, port, seconds);
    return topology_connect_wait(pid, seconds);
}
