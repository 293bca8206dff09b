// SPDX-License-Identifier: Apache-2.0
// The supervised dnsmasq, run for real against guests in network namespaces.
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "core/backend.h"
#include "core/network_config.h"
#include "core/subnet.h"
#include "linux/linux_dnsmasq.h"

#define BRIDGE "vmbtest0"
#define GATEWAY "192.168.77.1"
#define DHCP_FIRST "192.168.77.100"
#define DHCP_LAST "192.168.77.200"
#define PREFIX6 "fd77:7:7:7::"
// An interface that is not the bridge, whose addresses dnsmasq must leave
// alone.
#define OTHER "other0"
#define OTHER_ADDRESS "10.99.0.1"
#define NETWORK "lab"
// The test's side and the guest's side of the veth joining them.
#define HOST_PORT "vh0"
#define GUEST_IF "vg0"
#define GUEST_NAME "vmbguest"
#define RESERVED_MAC "52:54:00:aa:bb:cc"
#define RESERVED_ADDRESS "192.168.77.50"
// The same network name as a stale directory's, under another runtime
// directory.
#define IMPOSTOR_CONF "--conf-file=/elsewhere/other/dnsmasq.conf"

// Short enough that every path built from them fits in PATH_MAX.
static char work_dir[64];
static char runtime_dir[128];
static char network_dir[192];
static char guest_ns[64];
static sd_event *event;

// Runs a shell command (fixtures only: the module itself never runs ip).
static void run(const char *fmt, ...) {
    char command[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(command, sizeof(command), fmt, ap);
    va_end(ap);
    ck_assert_msg(system(command) == 0, "command failed: %s", command);
}

// Runs a shell command, stores its output (stdout and stderr) in out and
// returns its exit status.
static int capture(char *out, size_t size, const char *fmt, ...) {
    char command[1024];
    size_t used = 0;
    size_t n;
    va_list ap;
    FILE *p;
    int status;

    va_start(ap, fmt);
    vsnprintf(command, sizeof(command), fmt, ap);
    va_end(ap);
    strncat(command, " 2>&1", sizeof(command) - strlen(command) - 1);
    p = popen(command, "r");
    ck_assert_ptr_nonnull(p);
    while (used < size - 1 &&
           (n = fread(out + used, 1, size - 1 - used, p)) > 0)
        used += n;
    out[used] = '\0';
    status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void write_file(const char *path, mode_t mode, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    ck_assert_int_eq(close(fd), 0);
}

static void read_file(const char *path, char *out, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    ck_assert_msg(fd >= 0, "cannot open %s", path);
    n = read(fd, out, size - 1);
    ck_assert_int_ge(n, 0);
    out[n] = '\0';
    close(fd);
}

static bool path_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

static uint32_t ip(const char *text) {
    uint32_t address = 0;
    ck_assert_msg(ipv4_parse(text, &address), "bad address %s", text);
    return address;
}

static uint64_t now_usec(void) {
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static struct network_config test_config(void) {
    struct network_config config;

    network_config_init(&config, NETWORK, NETWORK_MODE_HOST);
    return config;
}

static struct network_info test_info(void) {
    struct network_info info;

    memset(&info, 0, sizeof(info));
    snprintf(info.bridge, sizeof(info.bridge), "%s", BRIDGE);
    info.subnet = ip("192.168.77.0");
    info.mask = ip("255.255.255.0");
    info.gateway = ip(GATEWAY);
    info.mtu = 1500;
    info.dhcp = true;
    info.dhcp_start = ip(DHCP_FIRST);
    info.dhcp_end = ip(DHCP_LAST);
    info.dns = info.gateway;
    return info;
}

static struct network_info test_info_ipv6(void) {
    struct network_info info = test_info();

    info.ipv6 = true;
    ck_assert_int_eq(inet_pton(AF_INET6, PREFIX6, info.ipv6_prefix), 1);
    info.ipv6_prefix_len = 64;
    return info;
}

static void on_ready(void *data, int status) { *(int *)data = status; }

// A restart's spawn (or a stopped instance's file removal) handed to
// dnsmasq_options.offload, as the backend's worker takes it: held until the
// test runs it (release_held()), so the test decides what happens meanwhile.
static struct {
    bool offloaded; // start_with() sets offload
    void (*run)(void *arg);
    void (*done)(void *arg);
    void *arg;
    pthread_t loop;     // the thread that runs the loop
    bool ran_elsewhere; // run() ran on another thread
} held;

static void hold_job(void *ctx, void (*job)(void *arg), void (*done)(void *arg),
                     void *arg) {
    (void)ctx;
    // One restart's spawn in flight at a time.
    ck_assert_ptr_null(held.run);
    held.run = job;
    held.done = done;
    held.arg = arg;
}

static void *run_held(void *data) {
    (void)data;
    held.ran_elsewhere = !pthread_equal(pthread_self(), held.loop);
    held.run(held.arg);
    return NULL;
}

// Starts dnsmasq and runs the loop until it is ready or has failed (the
// handle is then stopped, as the backend does).
static int start_with(const char *dnsmasq_path,
                      const struct network_config *config,
                      const struct network_info *info, struct dnsmasq **out) {
    struct dnsmasq_options options = {
        .event = event,
        .runtime_dir = runtime_dir,
        .dnsmasq_path = dnsmasq_path,
        .offload = held.offloaded ? hold_job : NULL,
    };
    struct dnsmasq *d = NULL;
    int ready = 1;
    int r = dnsmasq_start(&options, config, info, on_ready, &ready, &d);

    if (r < 0)
        return r;
    // Bounded by dnsmasq's own 5 s readiness timeout.
    while (ready == 1)
        ck_assert_int_ge(sd_event_run(event, 100000), 0);
    if (ready < 0) {
        dnsmasq_stop(d);
        return ready;
    }
    *out = d;
    return 0;
}

static struct dnsmasq *start(const struct network_config *config,
                             const struct network_info *info) {
    struct dnsmasq *d = NULL;

    ck_assert_int_eq(start_with(NULL, config, info, &d), 0);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_gt(dnsmasq_pid(d), 0);
    return d;
}

// Runs a real DHCP client in the guest; returns the address it leased and
// configured on the guest's interface, or "" when it got none.
static void guest_lease(char address[16]) {
    char out[4096];
    char path[PATH_MAX];
    char log[4096] = "";
    const char *marker;

    // Up to 10 discovers a second apart: enough for a dnsmasq being
    // restarted, bounded so that a broken one fails the test.
    capture(out, sizeof(out),
            "ip netns exec %s busybox udhcpc -q -n -f -i " GUEST_IF
            " -t 10 -T 1 -x hostname:" GUEST_NAME " -s %s/udhcpc.sh",
            guest_ns, work_dir);
    address[0] = '\0';
    marker = strstr(out, "LEASED ");
    if (marker != NULL)
        sscanf(marker, "LEASED %15[0-9.]", address);
    if (address[0] == '\0') {
        snprintf(path, sizeof(path), "%s/dnsmasq.log", network_dir);
        if (path_exists(path))
            read_file(path, log, sizeof(log));
    }
    ck_assert_msg(address[0] != '\0', "no lease: %s\ndnsmasq.log: %s", out,
                  log);
}

static bool is_bridge_address(int family, const void *address) {
    struct ifaddrs *addrs = NULL;
    bool found = false;

    ck_assert_int_eq(getifaddrs(&addrs), 0);
    for (struct ifaddrs *a = addrs; a != NULL && !found; a = a->ifa_next) {
        if (a->ifa_addr == NULL || a->ifa_addr->sa_family != family ||
            strcmp(a->ifa_name, BRIDGE) != 0)
            continue;
        if (family == AF_INET)
            found = memcmp(&((struct sockaddr_in *)a->ifa_addr)->sin_addr,
                           address, sizeof(struct in_addr)) == 0;
        else
            found = memcmp(&((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr,
                           address, sizeof(struct in6_addr)) == 0;
    }
    freeifaddrs(addrs);
    return found;
}

// Checks every port 53 socket of a /proc/net table is on a bridge address
// and returns how many sit on the gateway. listen_state is the TCP LISTEN
// state, or 0 for UDP, where every socket counts.
static int check_port_53(const char *table, int family, unsigned listen_state) {
    char path[64];
    char line[512];
    int on_gateway = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/net/%s", table);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f)); // the header
    while (fgets(line, sizeof(line), f) != NULL) {
        char local[64];
        char text[INET6_ADDRSTRLEN];
        unsigned port;
        unsigned state;
        uint32_t words[4];
        struct in_addr v4;

        ck_assert_int_eq(
            sscanf(line, " %*u: %63[0-9A-F]:%x %*s %x", local, &port, &state),
            3);
        if (port != 53 || (listen_state != 0 && state != listen_state))
            continue;
        // The kernel prints each 32-bit word of the address in host order.
        for (size_t i = 0; i < (family == AF_INET ? 1 : 4); i++)
            ck_assert_int_eq(sscanf(local + 8 * i, "%8x", &words[i]), 1);
        inet_ntop(family, words, text, sizeof(text));
        ck_assert_msg(is_bridge_address(family, words),
                      "dnsmasq listens on %s port 53 (%s)", text, table);
        memcpy(&v4, words, sizeof(v4));
        if (family == AF_INET && v4.s_addr == htonl(ip(GATEWAY)))
            on_gateway++;
    }
    fclose(f);
    return on_gateway;
}

static int count_lines(const char *path) {
    char text[4096];
    int n = 0;

    if (!path_exists(path))
        return 0;
    read_file(path, text, sizeof(text));
    for (const char *p = text; *p != '\0'; p++)
        n += *p == '\n';
    return n;
}

static bool cmdline_contains(pid_t pid, const char *arg) {
    char path[64];
    char text[4096];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n < 0)
        return false;
    text[n] = '\0';
    for (ssize_t i = 0; i < n; i += (ssize_t)strlen(text + i) + 1) {
        if (strcmp(text + i, arg) == 0)
            return true;
    }
    return false;
}

// True when a process with this pid exists and has not ended.
static bool process_alive(pid_t pid) {
    char path[64];
    char stat[512];
    char *close_paren;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (!path_exists(path))
        return false;
    read_file(path, stat, sizeof(stat));
    close_paren = strrchr(stat, ')');
    return close_paren != NULL && close_paren[2] != 'Z';
}

static void setup(void) {
    sigset_t mask;

    // sd_event_add_child() needs SIGCHLD blocked, as the daemon does.
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    ck_assert_int_eq(sigprocmask(SIG_BLOCK, &mask, NULL), 0);
    ck_assert_int_ge(sd_event_new(&event), 0);
    // An earlier failed test may have left its guest link behind.
    run("ip link del " HOST_PORT " 2>/dev/null || true");
    run("ip link add " HOST_PORT " type veth peer name " GUEST_IF " netns %s",
        guest_ns);
    run("ip link set " HOST_PORT " master " BRIDGE " up");
    run("ip -n %s link set " GUEST_IF " up", guest_ns);
}

static void teardown(void) {
    run("ip link del " HOST_PORT);
    event = sd_event_unref(event);
}

START_TEST(test_lease_and_dns) {
    struct network_config config = test_config();
    struct network_info info = test_info();
    struct dnsmasq *d = start(&config, &info);
    char path[PATH_MAX];
    char address[16];
    char text[4096];
    struct stat st;
    int status;

    ck_assert_int_eq(stat(network_dir, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 07777, 0755);

    guest_lease(address);
    ck_assert_uint_ge(ip(address), ip(DHCP_FIRST));
    ck_assert_uint_le(ip(address), ip(DHCP_LAST));
    snprintf(path, sizeof(path), "%s/dnsmasq.leases", network_dir);
    read_file(path, text, sizeof(text));
    ck_assert_msg(strstr(text, address) != NULL, "leases: %s", text);

    // dnsmasq knows the guest by the host name its DHCP request carried.
    status = capture(
        text, sizeof(text),
        "ip netns exec %s busybox nslookup " GUEST_NAME " " GATEWAY, guest_ns);
    ck_assert_msg(status == 0 && strstr(text, address) != NULL,
                  "nslookup (status %d): %s", status, text);
    dnsmasq_stop(d);
}
END_TEST

START_TEST(test_binds_only_the_bridge) {
    struct network_config config = test_config();
    struct network_info info = test_info_ipv6();
    struct dnsmasq *d = start(&config, &info);

    ck_assert_int_eq(check_port_53("udp", AF_INET, 0), 1);
    ck_assert_int_eq(check_port_53("tcp", AF_INET, 0x0A), 1);
    check_port_53("udp6", AF_INET6, 0);
    check_port_53("tcp6", AF_INET6, 0x0A);
    dnsmasq_stop(d);
}
END_TEST

START_TEST(test_reservation) {
    struct network_config config = test_config();
    struct network_info info = test_info();
    struct dhcp_reservation *reservation = &config.reservations[0];
    struct dnsmasq *d;
    char address[16];

    ck_assert_int_eq(sscanf(RESERVED_MAC, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx",
                            &reservation->mac[0], &reservation->mac[1],
                            &reservation->mac[2], &reservation->mac[3],
                            &reservation->mac[4], &reservation->mac[5]),
                     6);
    reservation->address = ip(RESERVED_ADDRESS);
    config.n_reservations = 1;
    d = start(&config, &info);
    run("ip -n %s link set " GUEST_IF " address " RESERVED_MAC, guest_ns);
    guest_lease(address);
    ck_assert_str_eq(address, RESERVED_ADDRESS);
    dnsmasq_stop(d);
}
END_TEST

// Spawns and watches the router advertisement instance for the test's
// bridge prefix and runs the loop until it is ready.
static struct dnsmasq *start_radv(void) {
    struct dnsmasq_options options = {
        .event = event,
        .runtime_dir = runtime_dir,
    };
    struct dnsmasq *d = NULL;
    int ready = 1;

    ck_assert_int_eq(dnsmasq_radv_spawn(&options, "vmbtest", &d), 0);
    ck_assert_int_eq(dnsmasq_watch(d, on_ready, &ready), 0);
    while (ready == 1)
        ck_assert_int_ge(sd_event_run(event, 100000), 0);
    ck_assert_int_eq(ready, 0);
    return d;
}

// The network's own dnsmasq advertises nothing: the router advertisement
// instance does, and the guest takes a SLAAC address, a default route and
// the gateway's IPv6 address as DNS server from it.
START_TEST(test_ipv6_slaac) {
    struct network_config config = test_config();
    struct network_info info = test_info_ipv6();
    struct dnsmasq *d;
    struct dnsmasq *radv;
    char text[4096] = "";
    char path[PATH_MAX];
    uint64_t deadline;

    run("ip netns exec %s sysctl -qw net.ipv6.conf." GUEST_IF ".accept_ra=1 "
        "net.ipv6.conf." GUEST_IF ".autoconf=1",
        guest_ns);
    d = start(&config, &info);
    // Neither advertisements nor a rescan of the host's addresses at every
    // change: the network's dnsmasq binds once.
    snprintf(path, sizeof(path), "%s/dnsmasq.conf", network_dir);
    read_file(path, text, sizeof(text));
    ck_assert_msg(strstr(text, "enable-ra") == NULL &&
                      strstr(text, "bind-dynamic") == NULL &&
                      strstr(text, "dhcp-range=fd") == NULL &&
                      strstr(text, "\nbind-interfaces\n") != NULL,
                  "%s", text);
    radv = start_radv();
    // Coming up again makes the guest solicit a router advertisement now.
    run("ip -n %s link set " GUEST_IF " down", guest_ns);
    run("ip -n %s link set " GUEST_IF " up", guest_ns);
    deadline = now_usec() + 30 * 1000000ull;
    while (now_usec() < deadline) {
        capture(text, sizeof(text),
                "ip -n %s -6 -o addr show dev " GUEST_IF " scope global",
                guest_ns);
        // Not while tentative: the guest cannot send from it before its
        // duplicate address detection ends (about a second).
        if (strstr(text, "inet6 fd77:7:7:7:") != NULL &&
            strstr(text, "tentative") == NULL)
            break;
        usleep(100000);
    }
    ck_assert_msg(strstr(text, "inet6 fd77:7:7:7:") != NULL &&
                      strstr(text, "tentative") == NULL,
                  "no usable address from " PREFIX6 "/64: %s", text);
    // The DNS server it was told answers there.
    ck_assert_int_eq(
        capture(text, sizeof(text),
                "ip netns exec %s busybox nslookup localhost " PREFIX6 "1",
                guest_ns),
        0);
    dnsmasq_stop(radv);
    snprintf(path, sizeof(path), "%s/" DNSMASQ_RADV_NAME, runtime_dir);
    ck_assert(!path_exists(path));
    dnsmasq_stop(d);
}
END_TEST

START_TEST(test_restart_after_kill) {
    struct network_config config = test_config();
    struct network_info info = test_info();
    struct dnsmasq *d = start(&config, &info);
    pid_t first = dnsmasq_pid(d);
    uint64_t deadline = now_usec() + 15 * 1000000ull;
    char address[16];

    ck_assert_int_eq(kill(first, SIGKILL), 0);
    while ((dnsmasq_pid(d) == 0 || dnsmasq_pid(d) == first) &&
           now_usec() < deadline)
        ck_assert_int_ge(sd_event_run(event, 100000), 0);
    ck_assert_int_ne(dnsmasq_pid(d), 0);
    ck_assert_int_ne(dnsmasq_pid(d), first);
    ck_assert(!dnsmasq_failed(d));
    ck_assert(process_alive(dnsmasq_pid(d)));
    // The new instance serves, too.
    guest_lease(address);
    ck_assert_uint_ge(ip(address), ip(DHCP_FIRST));
    ck_assert_uint_le(ip(address), ip(DHCP_LAST));
    dnsmasq_stop(d);
    ck_assert(!path_exists(network_dir));
}
END_TEST

// Runs the loop until a restart's spawn is held (15 s at most).
static void wait_held(void) {
    uint64_t deadline = now_usec() + 15 * 1000000ull;

    while (held.run == NULL && now_usec() < deadline)
        ck_assert_int_ge(sd_event_run(event, 100000), 0);
    ck_assert_msg(held.run != NULL, "no restart was handed off the loop");
}

// Runs the held spawn on a thread of its own, then its done on the loop's.
static void release_held(void) {
    void (*done)(void *arg) = held.done;
    void *arg = held.arg;
    pthread_t thread;

    ck_assert_ptr_nonnull(held.run);
    ck_assert_int_eq(pthread_create(&thread, NULL, run_held, NULL), 0);
    ck_assert_int_eq(pthread_join(thread, NULL), 0);
    ck_assert(held.ran_elsewhere);
    held.run = NULL;
    held.done = NULL;
    if (done != NULL)
        done(arg);
}

// Runs the loop until the instance is another than before (15 s at most).
static void wait_new_pid(struct dnsmasq *d, pid_t before) {
    uint64_t deadline = now_usec() + 15 * 1000000ull;

    while ((dnsmasq_pid(d) == 0 || dnsmasq_pid(d) == before) &&
           now_usec() < deadline) {
        ck_assert_int_ge(sd_event_run(event, 100000), 0);
        if (held.run != NULL)
            release_held();
    }
    ck_assert_int_ne(dnsmasq_pid(d), 0);
    ck_assert_int_ne(dnsmasq_pid(d), before);
}

// No process runs the network's config any more.
static bool none_runs(void) {
    char out[256];

    return capture(out, sizeof(out), "pgrep -f -- '--conf-[f]ile=%s/'",
                   network_dir) == 1;
}

START_TEST(test_restart_spawns_off_the_loop) {
    struct network_config config = test_config();
    struct network_info info = test_info();
    struct dnsmasq *d;
    char address[16];
    pid_t first;

    held.offloaded = true;
    held.loop = pthread_self();
    d = start(&config, &info);
    first = dnsmasq_pid(d);
    ck_assert_int_eq(kill(first, SIGKILL), 0);
    wait_held();
    // Until the spawn is done, nothing runs and the loop goes on.
    ck_assert_int_eq(dnsmasq_pid(d), 0);
    ck_assert_int_eq(sd_event_run(event, 10000) >= 0, 1);
    release_held();
    ck_assert_int_ne(dnsmasq_pid(d), 0);
    ck_assert_int_ne(dnsmasq_pid(d), first);
    ck_assert(process_alive(dnsmasq_pid(d)));
    ck_assert(!dnsmasq_failed(d));
    guest_lease(address);
    ck_assert_uint_ge(ip(address), ip(DHCP_FIRST));
    dnsmasq_stop(d);
    ck_assert(!path_exists(network_dir));
    ck_assert(none_runs());
}
END_TEST

// dnsmasq_restart() while a restart's spawn is in flight (a repair made the
// bridge again meanwhile): what that spawn started is restarted once more.
START_TEST(test_restart_during_offloaded_spawn) {
    struct network_config config = test_config();
    struct network_info info = test_info();
    struct dnsmasq *d;
    char address[16];
    pid_t first, second;

    held.offloaded = true;
    held.loop = pthread_self();
    d = start(&config, &info);
    first = dnsmasq_pid(d);
    ck_assert_int_eq(kill(first, SIGKILL), 0);
    wait_held();
    dnsmasq_restart(d);
    release_held();
    second = dnsmasq_pid(d);
    ck_assert_int_ne(second, 0);
    ck_assert_int_ne(second, first);
    wait_new_pid(d, second);
    ck_assert(!dnsmasq_failed(d));
    ck_assert(!process_alive(second));
    guest_lease(address);
    ck_assert_str_ne(address, "");
    dnsmasq_stop(d);
    ck_assert(none_runs());
}
END_TEST

static void on_stopped(void *data) { *(bool *)data = true; }

// dnsmasq_stop_async() while a restart's spawn is in flight: the stop ends
// what the spawn started, and then tells.
START_TEST(test_stop_async_during_offloaded_spawn) {
    struct network_config config = test_config();
    struct network_info info = test_info();
    uint64_t deadline = now_usec() + 10 * 1000000ull;
    bool stopped = false;
    struct dnsmasq *d;

    held.offloaded = true;
    held.loop = pthread_self();
    d = start(&config, &info);
    ck_assert_int_eq(kill(dnsmasq_pid(d), SIGKILL), 0);
    wait_held();
    dnsmasq_stop_async(d, on_stopped, &stopped);
    ck_assert(!stopped);
    release_held();
    while (!stopped && now_usec() < deadline)
        ck_assert_int_ge(sd_event_run(event, 100000), 0);
    ck_assert(stopped);
    // The files go off the loop, where restarts spawn: held too.
    release_held();
    ck_assert(!path_exists(network_dir));
    ck_assert(none_runs());
}
END_TEST

static void *run_held_later(void *data) {
    (void)data;
    usleep(200 * 1000);
    return run_held(NULL);
}

// dnsmasq_stop() (the broker's exit, its worker's done calls dropped) while
// a restart's spawn runs on another thread: it waits for the spawn and
// ends its process too.
START_TEST(test_stop_during_offloaded_spawn) {
    struct network_config config = test_config();
    struct network_info info = test_info();
    struct dnsmasq *d;
    pthread_t thread;

    held.offloaded = true;
    held.loop = pthread_self();
    d = start(&config, &info);
    ck_assert_int_eq(kill(dnsmasq_pid(d), SIGKILL), 0);
    wait_held();
    ck_assert_int_eq(pthread_create(&thread, NULL, run_held_later, NULL), 0);
    dnsmasq_stop(d);
    ck_assert_int_eq(pthread_join(thread, NULL), 0);
    ck_assert(held.ran_elsewhere);
    ck_assert(!path_exists(network_dir));
    ck_assert(none_runs());
}
END_TEST

// A dnsmasq that dies soon after each start is given up on after five
// spawns, restarts at least a second apart; the accounting holds with the
// restarts spawned off the loop too.
static void gives_up_after_five_failures(bool offloaded) {
    struct network_config config = test_config();
    struct network_info info = test_info();
    struct dnsmasq *d = NULL;
    char fake[PATH_MAX];
    char spawns[PATH_MAX];
    uint64_t started = now_usec();
    uint64_t deadline = started + 60 * 1000000ull;

    if (offloaded) {
        held.offloaded = true;
        held.loop = pthread_self();
    }
    snprintf(fake, sizeof(fake), "%s/dies-soon.sh", work_dir);
    snprintf(spawns, sizeof(spawns), "%s/spawns", work_dir);
    unlink(spawns);
    ck_assert_int_eq(start_with(fake, &config, &info, &d), 0);
    while (!dnsmasq_failed(d) && now_usec() < deadline) {
        ck_assert_int_ge(sd_event_run(event, 100000), 0);
        if (held.run != NULL)
            release_held();
    }
    ck_assert(dnsmasq_failed(d));
    ck_assert_int_eq(dnsmasq_pid(d), 0);
    ck_assert_int_eq(count_lines(spawns), 5);
    // Four restarts, at least a second apart.
    ck_assert_uint_ge(now_usec() - started, 4 * 1000000ull);
    dnsmasq_stop(d);
    ck_assert(!path_exists(network_dir));
}

START_TEST(test_gives_up_off_the_loop) { gives_up_after_five_failures(true); }
END_TEST

START_TEST(test_gives_up_after_five_failures) {
    gives_up_after_five_failures(false);
}
END_TEST

START_TEST(test_start_failure_logs_and_leaves_nothing) {
    struct network_config config = test_config();
    struct network_info info = test_info();
    static char sentinel;
    struct dnsmasq *d = (struct dnsmasq *)(void *)&sentinel;
    char fake[PATH_MAX];
    char log_path[PATH_MAX];
    char log[8192];
    int saved_stderr = dup(STDERR_FILENO);
    int log_fd;
    int r;

    snprintf(fake, sizeof(fake), "%s/fails.sh", work_dir);
    snprintf(log_path, sizeof(log_path), "%s/broker.log", work_dir);
    log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ck_assert_int_ge(log_fd, 0);
    ck_assert_int_ge(saved_stderr, 0);
    dup2(log_fd, STDERR_FILENO);
    r = start_with(fake, &config, &info, &d);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    close(log_fd);

    ck_assert_int_lt(r, 0);
    ck_assert_ptr_eq(d, (void *)&sentinel);
    read_file(log_path, log, sizeof(log));
    ck_assert_msg(strstr(log, "exited with status 7") != NULL, "log: %s", log);
    ck_assert_msg(strstr(log, "bad option at line 1") != NULL, "log: %s", log);
    ck_assert(!path_exists(network_dir));
    // Reaped: no child of ours is left.
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
}
END_TEST

// A start that fails is tried again at once, on the loop's thread or off
// it, and serves; only the last of START_ATTEMPTS failures fails it.
static void start_tried_twice(bool offloaded) {
    struct network_config config = test_config();
    struct network_info info = test_info();
    struct dnsmasq *d = NULL;
    char fake[PATH_MAX];
    char path[PATH_MAX];
    char address[16];
    int r;

    snprintf(fake, sizeof(fake), "%s/fails-once.sh", work_dir);
    snprintf(path, sizeof(path), "%s/failed-once", work_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/tries", work_dir);
    unlink(path);
    held.offloaded = offloaded;
    if (offloaded) {
        struct dnsmasq_options options = {
            .event = event,
            .runtime_dir = runtime_dir,
            .dnsmasq_path = fake,
            .offload = hold_job,
        };
        int ready = 1;

        ck_assert_int_eq(
            dnsmasq_start(&options, &config, &info, on_ready, &ready, &d), 0);
        wait_held();
        release_held();
        while (ready == 1)
            ck_assert_int_ge(sd_event_run(event, 100000), 0);
        r = ready;
    } else {
        r = start_with(fake, &config, &info, &d);
    }
    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(count_lines(path), 2);
    ck_assert_int_gt(dnsmasq_pid(d), 0);
    guest_lease(address);
    ck_assert_uint_ge(ip(address), ip(DHCP_FIRST));
    ck_assert_uint_le(ip(address), ip(DHCP_LAST));
    dnsmasq_stop(d);
    ck_assert(!path_exists(network_dir));
}

START_TEST(test_start_tried_again) { start_tried_twice(false); }
END_TEST

START_TEST(test_start_tried_again_off_the_loop) { start_tried_twice(true); }
END_TEST

START_TEST(test_start_failure_port_taken) {
    struct network_config config = test_config();
    struct network_info info = test_info();
    struct sockaddr_in address = {
        .sin_family = AF_INET,
        .sin_port = htons(53),
        .sin_addr.s_addr = htonl(ip(GATEWAY)),
    };
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct dnsmasq *d = NULL;

    // Someone else's DNS server on the gateway address.
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&address, sizeof(address)), 0);
    ck_assert_int_lt(start_with(NULL, &config, &info, &d), 0);
    ck_assert_ptr_null(d);
    ck_assert(!path_exists(network_dir));
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
    close(fd);
}
END_TEST

START_TEST(test_stop_leaves_nothing) {
    struct network_config config = test_config();
    struct network_info info = test_info_ipv6();
    struct dnsmasq *d = start(&config, &info);
    pid_t pid = dnsmasq_pid(d);

    ck_assert(process_alive(pid));
    ck_assert(path_exists(network_dir));
    dnsmasq_stop(d);
    ck_assert(!process_alive(pid));
    ck_assert(!path_exists(network_dir));
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
    dnsmasq_stop(NULL);
}
END_TEST

// The backend's split: files and fork/exec on another thread (its worker),
// only the watch on the loop's; ready still comes from the loop.
struct spawn_job {
    struct dnsmasq_options options;
    struct network_config config;
    struct network_info info;
    struct dnsmasq *d;
    int r;
};

static void *spawn_thread(void *data) {
    struct spawn_job *job = data;

    job->r = dnsmasq_spawn(&job->options, &job->config, &job->info, &job->d);
    return NULL;
}

START_TEST(test_spawn_off_the_loop_then_watch) {
    struct spawn_job job = {
        .options = {.event = event, .runtime_dir = runtime_dir},
        .config = test_config(),
        .info = test_info(),
    };
    pthread_t thread;
    int ready = 1;
    char address[16];

    ck_assert_int_eq(pthread_create(&thread, NULL, spawn_thread, &job), 0);
    ck_assert_int_eq(pthread_join(thread, NULL), 0);
    ck_assert_int_eq(job.r, 0);
    ck_assert_ptr_nonnull(job.d);
    ck_assert(process_alive(dnsmasq_pid(job.d)));
    // However late the watch comes (here after the pid file may be
    // written), readiness is reported, from the loop, never inside it.
    ck_assert_int_eq(dnsmasq_watch(job.d, on_ready, &ready), 0);
    ck_assert_int_eq(ready, 1);
    while (ready == 1)
        ck_assert_int_ge(sd_event_run(event, 100000), 0);
    ck_assert_int_eq(ready, 0);
    guest_lease(address);
    ck_assert_str_ne(address, "");
    dnsmasq_stop(job.d);
    ck_assert(!path_exists(network_dir));
}
END_TEST

// A process spawned and never watched (the broker's exit between the
// worker's spawn and the loop's watch) is still stopped and reaped.
START_TEST(test_spawned_unwatched_stops) {
    struct dnsmasq_options options = {.event = event,
                                      .runtime_dir = runtime_dir};
    struct network_config config = test_config();
    struct network_info info = test_info();
    struct dnsmasq *d = NULL;
    pid_t pid;

    ck_assert_int_eq(dnsmasq_spawn(&options, &config, &info, &d), 0);
    pid = dnsmasq_pid(d);
    ck_assert(process_alive(pid));
    dnsmasq_stop(d);
    ck_assert(!process_alive(pid));
    ck_assert(!path_exists(network_dir));
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
}
END_TEST

START_TEST(test_remove_stale_kills_forgotten) {
    struct network_config config = test_config();
    struct network_info info = test_info();
    pid_t broker;
    pid_t pid = 0;
    int fds[2];
    int status;

    // The orphaned dnsmasq becomes our child, so its end can be observed.
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    broker = fork();
    ck_assert_int_ge(broker, 0);
    if (broker == 0) {
        // A broker that starts dnsmasq and then dies by SIGKILL.
        struct dnsmasq *d = NULL;

        event = sd_event_unref(event);
        if (sd_event_new(&event) >= 0 &&
            start_with(NULL, &config, &info, &d) == 0) {
            pid = dnsmasq_pid(d);
            (void)!write(fds[1], &pid, sizeof(pid));
        }
        raise(SIGKILL);
    }
    close(fds[1]);
    ck_assert_int_eq(read(fds[0], &pid, sizeof(pid)), sizeof(pid));
    close(fds[0]);
    ck_assert_int_eq(waitpid(broker, &status, 0), broker);
    ck_assert(WIFSIGNALED(status));
    ck_assert(process_alive(pid));

    ck_assert_int_eq(dnsmasq_remove_stale(runtime_dir), 1);
    // Already ended, not merely signalled.
    ck_assert_int_eq(waitpid(pid, &status, WNOHANG), pid);
    ck_assert(WIFSIGNALED(status));
    ck_assert(!path_exists(network_dir));
    ck_assert_int_eq(dnsmasq_remove_stale(runtime_dir), 0);
}
END_TEST

START_TEST(test_remove_stale_spares_others) {
    char other_dir[256];
    char unrelated_dir[256];
    char path[PATH_MAX];
    char pid_text[32];
    int fds[2];
    pid_t impostor;
    uint64_t deadline;
    int status;

    // A live process whose pid sits in a stale pid file but which runs with
    // another directory's config: pid reuse, or someone else's dnsmasq.
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    impostor = fork();
    ck_assert_int_ge(impostor, 0);
    if (impostor == 0) {
        dup2(fds[0], STDIN_FILENO);
        execl("/bin/sh", "sh", "-c", "read line", IMPOSTOR_CONF, (char *)NULL);
        _exit(127);
    }
    close(fds[0]);
    // Until it has run sh, it is a copy of this test.
    deadline = now_usec() + 10 * 1000000ull;
    while (!cmdline_contains(impostor, IMPOSTOR_CONF) && now_usec() < deadline)
        usleep(10000);
    ck_assert(cmdline_contains(impostor, IMPOSTOR_CONF));
    ck_assert_int_eq(mkdir(runtime_dir, 0755) < 0 && errno != EEXIST, 0);
    snprintf(other_dir, sizeof(other_dir), "%s/other", runtime_dir);
    ck_assert_int_eq(mkdir(other_dir, 0755), 0);
    snprintf(path, sizeof(path), "%s/dnsmasq.conf", other_dir);
    write_file(path, 0644, "port=0\n");
    snprintf(path, sizeof(path), "%s/dnsmasq.pid", other_dir);
    snprintf(pid_text, sizeof(pid_text), "%d\n", (int)impostor);
    write_file(path, 0644, pid_text);
    // A directory without our files and the broker's socket stay.
    snprintf(unrelated_dir, sizeof(unrelated_dir), "%s/unrelated", runtime_dir);
    ck_assert_int_eq(mkdir(unrelated_dir, 0755), 0);
    snprintf(path, sizeof(path), "%s/keep", unrelated_dir);
    write_file(path, 0644, "");
    snprintf(path, sizeof(path), "%s/vmnet-broker.sock", runtime_dir);
    write_file(path, 0644, "");

    ck_assert_int_eq(dnsmasq_remove_stale(runtime_dir), 0);
    ck_assert(process_alive(impostor));
    ck_assert_int_eq(waitpid(impostor, &status, WNOHANG), 0);
    ck_assert(!path_exists(other_dir));
    ck_assert(path_exists(path));
    snprintf(path, sizeof(path), "%s/keep", unrelated_dir);
    ck_assert(path_exists(path));

    close(fds[1]);
    ck_assert_int_eq(waitpid(impostor, &status, 0), impostor);
    unlink(path);
    rmdir(unrelated_dir);
    snprintf(path, sizeof(path), "%s/vmnet-broker.sock", runtime_dir);
    unlink(path);
}
END_TEST

static Suite *linux_dnsmasq_suite(void) {
    Suite *suite = suite_create("linux_dnsmasq");
    TCase *dnsmasq = tcase_create("dnsmasq");

    tcase_add_checked_fixture(dnsmasq, setup, teardown);
    tcase_set_timeout(dnsmasq, 120);
    tcase_add_test(dnsmasq, test_lease_and_dns);
    tcase_add_test(dnsmasq, test_binds_only_the_bridge);
    tcase_add_test(dnsmasq, test_reservation);
    tcase_add_test(dnsmasq, test_ipv6_slaac);
    tcase_add_test(dnsmasq, test_restart_after_kill);
    tcase_add_test(dnsmasq, test_gives_up_after_five_failures);
    tcase_add_test(dnsmasq, test_restart_spawns_off_the_loop);
    tcase_add_test(dnsmasq, test_restart_during_offloaded_spawn);
    tcase_add_test(dnsmasq, test_stop_async_during_offloaded_spawn);
    tcase_add_test(dnsmasq, test_stop_during_offloaded_spawn);
    tcase_add_test(dnsmasq, test_gives_up_off_the_loop);
    tcase_add_test(dnsmasq, test_start_failure_logs_and_leaves_nothing);
    tcase_add_test(dnsmasq, test_start_tried_again);
    tcase_add_test(dnsmasq, test_start_tried_again_off_the_loop);
    tcase_add_test(dnsmasq, test_start_failure_port_taken);
    tcase_add_test(dnsmasq, test_stop_leaves_nothing);
    tcase_add_test(dnsmasq, test_spawn_off_the_loop_then_watch);
    tcase_add_test(dnsmasq, test_spawned_unwatched_stops);
    tcase_add_test(dnsmasq, test_remove_stale_kills_forgotten);
    tcase_add_test(dnsmasq, test_remove_stale_spares_others);
    suite_add_tcase(suite, dnsmasq);
    return suite;
}

// Scripts the tests run: the guest's DHCP client hook and two dnsmasq
// impostors that fail in known ways.
static int write_scripts(void) {
    static const char udhcpc[] =
        "#!/bin/sh\n"
        "case \"$1\" in\n"
        "bound|renew)\n"
        "    ip addr flush dev \"$interface\"\n"
        "    ip addr add \"$ip/$mask\" dev \"$interface\"\n"
        "    echo \"LEASED $ip\"\n"
        "    ;;\n"
        "esac\n";
    static const char fails[] = "#!/bin/sh\n"
                                "echo 'fake dnsmasq: bad option at line 1' "
                                ">&2\n"
                                "exit 7\n";
    char dies_soon[1024];
    char fails_once[1024];
    char path[PATH_MAX];
    const struct {
        const char *name;
        const char *text;
    } scripts[] = {
        {"udhcpc.sh", udhcpc},
        {"fails.sh", fails},
        {"dies-soon.sh", dies_soon},
        {"fails-once.sh", fails_once},
    };

    // Starts like dnsmasq (writes its pid file), then dies.
    snprintf(dies_soon, sizeof(dies_soon),
             "#!/bin/sh\n"
             "echo spawned >> %s/spawns\n"
             "conf=\"${2#--conf-file=}\"\n"
             "echo $$ > \"${conf%%/dnsmasq.conf}/dnsmasq.pid\"\n"
             "sleep 0.3\n"
             "exit 3\n",
             work_dir);
    // Fails its first start the way dnsmasq does when an interface goes
    // away while it lists them, then is the real dnsmasq.
    snprintf(fails_once, sizeof(fails_once),
             "#!/bin/sh\n"
             "echo tried >> %s/tries\n"
             "if [ ! -e %s/failed-once ]; then\n"
             "    : > %s/failed-once\n"
             "    echo 'dnsmasq: failed to find list of interfaces: No such "
             "device' >&2\n"
             "    exit 5\n"
             "fi\n"
             "exec /usr/sbin/dnsmasq \"$@\"\n",
             work_dir, work_dir, work_dir);
    for (size_t i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++) {
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", work_dir, scripts[i].name);
        f = fopen(path, "we");
        if (f == NULL || fputs(scripts[i].text, f) < 0 || fclose(f) != 0 ||
            chmod(path, 0755) != 0)
            return -1;
    }
    return 0;
}

static int setup_namespaces(void) {
    const char *commands[] = {
        "ip link set lo up",
        "ip link add " BRIDGE " type bridge",
        "ip addr add " GATEWAY "/24 dev " BRIDGE,
        "ip addr add " PREFIX6 "1/64 dev " BRIDGE " nodad",
        "ip link set " BRIDGE " up",
        "ip link add " OTHER " type veth peer name other1",
        "ip addr add " OTHER_ADDRESS "/24 dev " OTHER,
        "ip link set " OTHER " up",
        "ip link set other1 up",
    };
    char command[256];

    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (system(commands[i]) != 0) {
            fprintf(stderr, "check_linux_dnsmasq: failed: %s\n", commands[i]);
            return -1;
        }
    }
    snprintf(command, sizeof(command), "ip netns add %s", guest_ns);
    if (system(command) != 0) {
        fprintf(stderr, "check_linux_dnsmasq: failed: %s\n", command);
        return -1;
    }
    return 0;
}

int main(void) {
    char command[PATH_MAX + 64];
    SRunner *runner;
    int failed = 1;

    if (geteuid() != 0) {
        fprintf(stderr, "check_linux_dnsmasq: needs root for network "
                        "namespaces; skipped\n");
        return 77;
    }
    // A missing tool is a broken test machine, not a reason to skip.
    if (access("/usr/sbin/dnsmasq", X_OK) != 0 ||
        system("busybox udhcpc --help >/dev/null 2>&1 && "
               "busybox nslookup --help >/dev/null 2>&1") != 0) {
        fprintf(stderr, "check_linux_dnsmasq: needs /usr/sbin/dnsmasq "
                        "(dnsmasq-base) and busybox with udhcpc and "
                        "nslookup\n");
        return 1;
    }
    // Everything below, Check's forked children included, lives in a private
    // namespace, so no test can touch the host's own interfaces. The guest
    // namespace is separate and named, so DHCP crosses a real veth.
    if (unshare(CLONE_NEWNET) != 0) {
        fprintf(stderr, "check_linux_dnsmasq: unshare(CLONE_NEWNET): %s\n",
                strerror(errno));
        return errno == EPERM ? 77 : 1;
    }
    snprintf(work_dir, sizeof(work_dir), "/tmp/check_linux_dnsmasq.XXXXXX");
    if (mkdtemp(work_dir) == NULL || chmod(work_dir, 0755) != 0) {
        fprintf(stderr, "check_linux_dnsmasq: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    snprintf(runtime_dir, sizeof(runtime_dir), "%s/run", work_dir);
    snprintf(network_dir, sizeof(network_dir), "%s/" NETWORK, runtime_dir);
    snprintf(guest_ns, sizeof(guest_ns), "vmbdns-guest-%d", (int)getpid());

    if (write_scripts() == 0 && setup_namespaces() == 0) {
        runner = srunner_create(linux_dnsmasq_suite());
        srunner_run_all(runner, CK_NORMAL);
        failed = srunner_ntests_failed(runner);
        srunner_free(runner);
    }

    // Whatever a failed test left running or on disk.
    dnsmasq_remove_stale(runtime_dir);
    snprintf(command, sizeof(command), "ip netns del %s 2>/dev/null", guest_ns);
    if (system(command) != 0)
        failed++;
    snprintf(command, sizeof(command), "rm -rf %s", work_dir);
    if (system(command) != 0)
        failed++;
    return failed == 0 ? 0 : 1;
}
