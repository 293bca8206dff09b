// SPDX-License-Identifier: Apache-2.0
// Supervised dnsmasq: one per network (DHCPv4, DNS), one per broker for
// every network's router advertisements; config, start, readiness, restart,
// stop.
#include "linux_dnsmasq.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/subnet.h"
#include "lease_log.h"

#define DEFAULT_DNSMASQ_PATH "/usr/sbin/dnsmasq"

#define CONF_FILE "dnsmasq.conf"
#define PID_FILE "dnsmasq.pid"
#define LEASE_FILE "dnsmasq.leases"
#define LOG_FILE "dnsmasq.log"
// The broker's guests' DHCP reservations (dnsmasq_set_guest_hosts()).
#define GUEST_HOSTS_FILE "guests.hosts"
#define GUEST_HOSTS_TMP "guests.hosts.new"
// Room for "/" and the longest of the names above, so that every path built
// from a network's directory fits in PATH_MAX.
#define DIR_MAX (PATH_MAX - sizeof("/" GUEST_HOSTS_TMP))
#define CONF_ARG "--conf-file="
#define CONF_ARG_MAX (sizeof(CONF_ARG) + PATH_MAX)

// Everything this module puts in a network's directory.
static const char *const owned_files[] = {CONF_FILE,        PID_FILE,
                                          LEASE_FILE,       LOG_FILE,
                                          GUEST_HOSTS_FILE, GUEST_HOSTS_TMP};

#define USEC_PER_MSEC 1000ull
#define USEC_PER_SEC 1000000ull
#define READY_TIMEOUT_USEC (5 * USEC_PER_SEC)
#define STOP_TIMEOUT_MSEC 2000
#define STALE_KILL_TIMEOUT_MSEC 5000
#define RESTART_INTERVAL_USEC USEC_PER_SEC
#define MAX_FAILURES 5
// Tries of a start before it fails. dnsmasq lists the host's interfaces as
// it starts and exits ("failed to find list of interfaces: No such device")
// when one goes away meanwhile, which a busy host's TAPs and bridges do.
#define START_ATTEMPTS 3
// An instance that served this long was healthy: its death starts a new
// count of failures in a row.
#define STABLE_USEC (30 * USEC_PER_SEC)
#define LOG_TAIL_LINES 5
#define LOG_TAIL_BYTES 2048

struct dnsmasq {
    sd_event *event; // referenced, NULL until dnsmasq_watch()
    sd_event *loop;  // options->event, not referenced
    char *dnsmasq_path;
    char name[NETWORK_NAME_MAX + 1];
    // What the log calls it: "network NAME" or "router advertisements".
    char label[NETWORK_NAME_MAX + sizeof("network ")];
    // The broker's router advertisement instance: its bridges' name prefix
    // (interface=PREFIX*); empty for a network's own dnsmasq.
    char radv_prefix[16];
    char dir[DIR_MAX]; // empty until this module created it
    pid_t pid;         // 0 while no instance runs
    int pidfd;         // -1 while no instance runs
    sd_event_source *child;
    sd_event_source *restart_timer;
    uint64_t spawned_usec;   // CLOCK_MONOTONIC of the last attempt
    unsigned failures;       // in a row
    unsigned start_attempts; // of the start under way
    bool start_interrupted;  // the broker ended the starting instance
    bool ready_expired;      // the readiness deadline passed mid-retry
    off_t log_shown;         // bytes of dnsmasq.log log_tail() has shown
    bool failed;
    // Told when failed changes (dnsmasq_options), or NULL.
    void (*health_changed)(void *ctx);
    void *health_ctx;
    // dnsmasq_restart() ended the instance: its exit is no failure.
    bool restarting;
    // The start time (clock ticks after boot) of the process start_pid,
    // read once per process for the state file (loop only).
    pid_t start_pid;
    unsigned long long start_time;
    // Starting: the first instance has not written its pid file yet.
    dnsmasq_ready_fn ready;
    void *ready_data;
    int watch_descriptor; // on d->dir in the shared inotify, or -1
    sd_event_source *ready_timer;
    sd_event_source *ready_now;
    // Stopping asynchronously: SIGTERM sent, SIGKILL when this fires.
    dnsmasq_stopped_fn stopped;
    void *stopped_data;
    sd_event_source *kill_timer;
    struct dnsmasq *next_starting;
    // At --verbose, the leases as they come and go; else NULL.
    struct lease_log *leases;
    // Told of each restart (the pid changed); NULL: nobody asked.
    dnsmasq_restarted_fn restarted;
    void *restarted_data;
    // Where a restart's spawn runs (dnsmasq_options), or NULL: the loop.
    void (*offload)(void *ctx, void (*run)(void *arg), void (*done)(void *arg),
                    void *arg);
    void *offload_ctx;
    // Where the readiness watch's instance is closed (dnsmasq_options).
    void (*close_fd)(void *ctx, int fd);
    void *close_fd_ctx;
    // A restart's spawn is queued off the loop: until its done, the loop
    // reads no respawn_* field and the spawner writes nothing else, and
    // respawn_ran last.
    bool respawning;
    // dnsmasq_restart() came meanwhile: the new instance may have started
    // before the bridge was made again, so it is restarted once more.
    bool respawn_again;
    int respawn_status;
    pid_t respawn_pid;
    int respawn_pidfd;
    atomic_bool respawn_ran;
};

// One inotify instance for every dnsmasq being started: the pid file, which
// dnsmasq writes once its sockets are bound, says it is ready. (The kernel
// allows 128 instances per user by default; one per network would cap the
// number of networks.)
static struct {
    int fd;
    sd_event_source *source;
    struct dnsmasq *starting;
} ready_watch = {.fd = -1};

static uint64_t now_usec(void) {
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

// dnsmasq gives quotes, backslashes, '#' and blanks a meaning in its config
// file, where this path is written; plain path characters need no quoting.
static bool runtime_dir_valid(const char *dir) {
    if (dir == NULL || dir[0] != '/')
        return false;
    for (const char *p = dir; *p != '\0'; p++) {
        if (!isalnum((unsigned char)*p) && strchr("/._+-@:", *p) == NULL)
            return false;
    }
    return true;
}

// Writes <runtime_dir>/<name> into out. Trailing slashes are dropped so
// that start and remove_stale spell the --conf-file argument identically.
static int network_dir(const char *runtime_dir, const char *name,
                       char out[DIR_MAX]) {
    size_t len = strlen(runtime_dir);
    int n;

    while (len > 1 && runtime_dir[len - 1] == '/')
        len--;
    n = snprintf(out, DIR_MAX, "%.*s/%s", (int)len, runtime_dir, name);
    return n < 0 || (size_t)n >= DIR_MAX ? -ENAMETOOLONG : 0;
}

static void file_path(char out[PATH_MAX], const char dir[DIR_MAX],
                      const char *file) {
    snprintf(out, PATH_MAX, "%s/%s", dir, file);
}

// The argument that names dir's config file: dnsmasq's only option, and how
// a stale dnsmasq is recognised.
static void conf_arg(char out[CONF_ARG_MAX], const char dir[DIR_MAX]) {
    char path[PATH_MAX];

    file_path(path, dir, CONF_FILE);
    snprintf(out, CONF_ARG_MAX, CONF_ARG "%s", path);
}

// The pid a pid file holds, or 0 when it is missing, partial or garbled.
static pid_t read_pid_file(const char *path) {
    char text[32];
    char *end;
    ssize_t n;
    long value;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return 0;
    n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    errno = 0;
    value = strtol(text, &end, 10);
    if (errno != 0 || end == text || (*end != '\n' && *end != '\0') ||
        value <= 0 || value > INT_MAX)
        return 0;
    return (pid_t)value;
}

// Waits up to timeout_ms for the process behind pidfd to end; true if it
// did.
static bool wait_exit(int pidfd, int timeout_ms) {
    uint64_t deadline = now_usec() + (uint64_t)timeout_ms * USEC_PER_MSEC;

    for (;;) {
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        uint64_t now = now_usec();
        int left =
            now >= deadline
                ? 0
                : (int)((deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC);
        int r = poll(&p, 1, left);

        if (r > 0)
            return true;
        if (r == 0 || errno != EINTR)
            return false;
    }
}

static void describe_exit(const siginfo_t *si, char *out, size_t size) {
    const char *signal_name;

    switch (si->si_code) {
    case CLD_EXITED:
        snprintf(out, size, "exited with status %d", si->si_status);
        return;
    case CLD_KILLED:
    case CLD_DUMPED:
        signal_name = sigabbrev_np(si->si_status);
        if (signal_name != NULL)
            snprintf(out, size, "was killed by SIG%s", signal_name);
        else
            snprintf(out, size, "was killed by signal %d", si->si_status);
        return;
    default:
        snprintf(out, size, "ended (code %d, status %d)", si->si_code,
                 si->si_status);
    }
}

// The level a line of dnsmasq's own output deserves: its start-up chatter
// ("started", "compile time options", "reading", "DHCP, IP range") is
// information, its warnings warnings, and only what says something failed
// is logged at the failure's level.
static enum log_level dnsmasq_line_level(const char *line,
                                         enum log_level failure) {
    static const char *const failed[] = {
        "failed",  "FAILED",  "cannot", "error",          "bad ",
        "illegal", "unknown", "junk",   "Address already"};

    for (size_t i = 0; i < sizeof(failed) / sizeof(failed[0]); i++) {
        if (strstr(line, failed[i]) != NULL)
            return failure;
    }
    if (strstr(line, "warning") != NULL)
        return LOG_LEVEL_WARNING;
    return LOG_LEVEL_INFO;
}

// Logs the last lines dnsmasq wrote, which say why it failed: only those
// written since the last time, so that each failure of a start tried again,
// or of a restart, shows its own reason once.
static void log_tail(struct dnsmasq *d, enum log_level level) {
    bool mid_line;
    char path[PATH_MAX];
    char text[LOG_TAIL_BYTES + 1];
    char *lines[LOG_TAIL_LINES];
    size_t n_lines = 0;
    struct stat st;
    off_t from;
    ssize_t n;
    char *p;
    int fd;

    file_path(path, d->dir, LOG_FILE);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return;
    }
    from = st.st_size > LOG_TAIL_BYTES ? st.st_size - LOG_TAIL_BYTES : 0;
    // Where the last tail ended is a line's start. A file shorter than what
    // was shown was made again: all of it is new.
    mid_line = from > 0;
    if (d->log_shown >= from && d->log_shown <= st.st_size) {
        from = d->log_shown;
        mid_line = false;
    }
    n = pread(fd, text, LOG_TAIL_BYTES, from);
    close(fd);
    if (n <= 0)
        return;
    d->log_shown = from + n;
    text[n] = '\0';
    p = text;
    // Reading from the middle of the file starts in the middle of a line.
    if (mid_line) {
        p = strchr(p, '\n');
        if (p == NULL)
            return;
        p++;
    }
    // Keep the starts of the last LOG_TAIL_LINES non-empty lines.
    while (*p != '\0') {
        char *end = strchr(p, '\n');

        if (end != NULL)
            *end = '\0';
        if (*p != '\0') {
            if (n_lines == LOG_TAIL_LINES) {
                memmove(lines, lines + 1, sizeof(lines[0]) * (n_lines - 1));
                n_lines--;
            }
            lines[n_lines++] = p;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    for (size_t i = 0; i < n_lines; i++)
        log_write(dnsmasq_line_level(lines[i], level), NULL, "%s: dnsmasq: %s",
                  d->label, lines[i]);
}

// dnsmasq keeps root's rights only for what it needs (binding port 67, raw
// sockets) and otherwise runs as its own user, where the system has one.
// Looked up once (at start-up, from dnsmasq_remove_stale()): a user
// database on the network must not hold every creation.
static const char *dnsmasq_user(void) {
    static const char *user;
    if (user == NULL)
        user = getpwnam("dnsmasq") != NULL ? "dnsmasq" : "root";
    return user;
}

static void format_mac(const uint8_t mac[6], char out[18]) {
    snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
             mac[3], mac[4], mac[5]);
}

#define RESOLV_CONF "/etc/resolv.conf"
// As many as the C library's resolver uses (MAXNS).
#define MAX_UPSTREAM_SERVERS 3

// Copies the host's nameservers from RESOLV_CONF as server= lines. Only
// address characters pass: the file must not be able to add options.
static void write_upstream_servers(FILE *f) {
    FILE *resolv = fopen(RESOLV_CONF, "re");
    char line[256];
    int written = 0;

    if (resolv == NULL)
        return;
    while (written < MAX_UPSTREAM_SERVERS &&
           fgets(line, sizeof(line), resolv) != NULL) {
        char address[64];
        bool plain = true;

        if (sscanf(line, " nameserver %63s", address) != 1)
            continue;
        for (const char *p = address; *p != '\0' && plain; p++)
            plain = isalnum((unsigned char)*p) || strchr(".:%-_", *p) != NULL;
        if (!plain)
            continue;
        fprintf(f, "server=%s\n", address);
        written++;
    }
    fclose(resolv);
}

// The lines every instance has: its files in its own directory (the lease
// file too: stateless DHCPv6 keeps none, but dnsmasq opens it anyway, and it
// belongs here, not in /var/lib/misc), its log on stderr (dnsmasq.log; the
// quiet-* lines keep routine DHCP and RA chatter from growing it for as long
// as the network lives) and the user it runs as.
static void write_own_files(FILE *f, const struct dnsmasq *d) {
    char path[PATH_MAX];

    file_path(path, d->dir, PID_FILE);
    fprintf(f, "pid-file=%s\n", path);
    file_path(path, d->dir, LEASE_FILE);
    fprintf(f, "dhcp-leasefile=%s\n", path);
    fprintf(f, "log-facility=-\n");
    fprintf(f, "user=%s\n", dnsmasq_user());
}

static void write_config_lines(FILE *f, const struct dnsmasq *d,
                               const struct network_config *config,
                               const struct network_info *info) {
    char path[PATH_MAX];
    char gateway[16];
    char address[16];
    char end[16];
    char mask[16];
    char mac[18];

    ipv4_format(info->gateway, gateway);
    fprintf(f,
            "# vmnet-broker: dnsmasq of network %s, rewritten at every "
            "start.\n",
            d->name);
    // Only the bridge: port 53 on every address would clash with
    // systemd-resolved and other resolvers, and guests never use loopback.
    fprintf(f, "interface=%s\n", info->bridge);
    fprintf(f, "except-interface=lo\n");
    fprintf(f, "listen-address=%s\n", gateway);
    // Binds the bridge's addresses once, at start: the gateways, which the
    // broker adds before it starts dnsmasq (the IPv6 one without duplicate
    // address detection), and every repair that makes them again restarts
    // dnsmasq. Not bind-dynamic: with it (or router advertisements, or
    // DHCPv6) every dnsmasq lists every address of the host at every
    // address change on the host, so each creation cost O(networks) in each
    // of them. Router advertisements are the broker's one instance's
    // (write_radv_config_lines()).
    fprintf(f, "bind-interfaces\n");
    write_own_files(f, d);
    fprintf(f, "quiet-dhcp\n");
    // Upstream servers are the host's (/etc/resolv.conf), so guests resolve
    // what the host resolves. They are copied in as server= lines with
    // no-resolv: a dnsmasq that watches resolv.conf takes an inotify
    // instance, and the kernel's default of 128 per user would cap the
    // number of networks near 120. Single-label names (other guests) are
    // answered here or not at all: upstream can only leak or refuse them.
    fprintf(f, "no-resolv\n");
    write_upstream_servers(f);
    if (info->dns == 0)
        fprintf(f, "port=0\n");
    else
        fprintf(f, "domain-needed\n");

    if (info->dhcp) {
        fprintf(f, "dhcp-authoritative\n");
        // dnsmasq pings an address before offering it, which holds every
        // VM's first lease for about 3 s. Guests with static addresses
        // belong outside the DHCP range (docs/configuration.md).
        fprintf(f, "no-ping\n");
        fprintf(f, "dhcp-range=%s,%s,%s,12h\n",
                ipv4_format(info->dhcp_start, address),
                ipv4_format(info->dhcp_end, end),
                ipv4_format(info->mask, mask));
        fprintf(f, "dhcp-option=option:router,%s\n", gateway);
        if (info->dns != 0)
            fprintf(f, "dhcp-option=option:dns-server,%s\n",
                    ipv4_format(info->dns, address));
        if (info->mtu != 0)
            fprintf(f, "dhcp-option=option:mtu,%u\n", info->mtu);
        for (size_t i = 0; i < config->n_reservations; i++) {
            format_mac(config->reservations[i].mac, mac);
            fprintf(f, "dhcp-host=%s,%s\n", mac,
                    ipv4_format(config->reservations[i].address, address));
        }
        // The broker's guests, announced in each interface reply: re-read
        // on SIGHUP, so adding one restarts nothing.
        file_path(path, d->dir, GUEST_HOSTS_FILE);
        fprintf(f, "dhcp-hostsfile=%s\n", path);
    }
}

// The broker's one dnsmasq for router advertisements on all its bridges.
// It makes a context for each bridge of the prefix that has an address in a
// /64 other than link-local (constructor:), when that address appears, so a
// network without IPv6 (no such address) is never advertised on; it lists
// the host's addresses once per change (bind-dynamic), not once per
// network.
static void write_radv_config_lines(FILE *f, const struct dnsmasq *d) {
    fprintf(f,
            "# vmnet-broker: router advertisements on every %s* bridge, "
            "rewritten at every start.\n",
            d->radv_prefix);
    // The prefix ends in '-' (linux_instance.h): "vmb-*" matches no
    // "vmb<id>-" bridge of another instance, nor the reverse.
    fprintf(f, "interface=%s*\n", d->radv_prefix);
    fprintf(f, "except-interface=lo\n");
    fprintf(f, "bind-dynamic\n");
    // DNS is each network's own dnsmasq's, on its gateways.
    fprintf(f, "port=0\n");
    write_own_files(f, d);
    fprintf(f, "quiet-dhcp6\nquiet-ra\n");
    // Stateless: guests take an address from the bridge's /64 by SLAAC and
    // may ask DHCPv6 for the DNS server only.
    fprintf(f, "enable-ra\n");
    fprintf(f, "dhcp-range=::,constructor:%s*,ra-stateless,64\n",
            d->radv_prefix);
    // The DNS server (RDNSS and DHCPv6) is the bridge's own address in its
    // prefix, global ([::]) or ULA ([fd00::]), whichever it has: the gateway
    // the network's dnsmasq answers on. Every network has DNS (info->dns is
    // its gateway).
    fprintf(f, "dhcp-option=option6:dns-server,[::],[fd00::]\n");
}

// config and info are NULL for the router advertisement instance.
static int write_config(const struct dnsmasq *d,
                        const struct network_config *config,
                        const struct network_info *info) {
    char path[PATH_MAX];
    FILE *f;
    int status;

    if (info != NULL && info->ipv6) {
        // SLAAC, the point of these advertisements, works on /64s only.
        if (info->ipv6_prefix_len != 64) {
            log_error("%s: IPv6 prefix length %u: router "
                      "advertisements need a /64",
                      d->label, info->ipv6_prefix_len);
            return -EINVAL;
        }
    }
    file_path(path, d->dir, CONF_FILE);
    f = fopen(path, "wxe");
    if (f == NULL) {
        status = -errno;
        log_error("%s: cannot create %s: %s", d->label, path, strerror(errno));
        return status;
    }
    if (info != NULL)
        write_config_lines(f, d, config, info);
    else
        write_radv_config_lines(f, d);
    status = ferror(f) ? -EIO : 0;
    // dnsmasq reads the hosts file at start: it must exist, empty.
    if (status == 0 && info != NULL && info->dhcp)
        status = dnsmasq_set_guest_hosts(d, NULL, 0);
    if (fclose(f) != 0 && status == 0)
        status = -errno;
    if (status < 0)
        log_error("%s: cannot write %s: %s", d->label, path, strerror(-status));
    return status;
}

// Runs dnsmasq with only our config file and its output in dnsmasq.log.
// On success *pid_out and *pidfd_out name the new process. Reads only what
// never changes in d: it runs on the worker for restarts.
static int spawn_process(const struct dnsmasq *d, pid_t *pid_out,
                         int *pidfd_out) {
    char conf[CONF_ARG_MAX];
    char log_path[PATH_MAX];
    char pid_path[PATH_MAX];
    char foreground[] = "--keep-in-foreground";
    char *argv[] = {d->dnsmasq_path, foreground, conf, NULL};
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    sigset_t none;
    sigset_t all;
    pid_t pid;
    int pidfd;
    int r;

    conf_arg(conf, d->dir);
    file_path(log_path, d->dir, LOG_FILE);
    file_path(pid_path, d->dir, PID_FILE);
    // A pid file left by a dead instance must not pass for readiness.
    unlink(pid_path);

    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                     O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_path,
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
    posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
    // The broker blocks the signals it handles with signalfd, and may ignore
    // some; dnsmasq must see SIGTERM. Its own process group keeps a
    // terminal's ^C for the broker, which then stops dnsmasq in order.
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setpgroup(&attr, 0);
    r = posix_spawn(&pid, d->dnsmasq_path, &actions, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    if (r != 0) {
        log_error("%s: cannot run %s: %s", d->label, d->dnsmasq_path,
                  strerror(r));
        return -r;
    }
    // Our unreaped child: its pid cannot be reused under the pidfd.
    pidfd = pidfd_open(pid, 0);
    if (pidfd < 0) {
        r = -errno;
        log_error("%s: pidfd_open(%d): %s", d->label, (int)pid,
                  strerror(errno));
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        return r;
    }
    *pid_out = pid;
    *pidfd_out = pidfd;
    return 0;
}

// spawn_process() on the loop's thread (dnsmasq_spawn(), or restarts with
// no offload): d->pid and d->pidfd name the new process.
static int spawn(struct dnsmasq *d) {
    d->spawned_usec = now_usec();
    return spawn_process(d, &d->pid, &d->pidfd);
}

// Forgets the instance that ended; the caller reaped it (or sd-event will).
static void forget_instance(struct dnsmasq *d) {
    close(d->pidfd);
    d->pidfd = -1;
    d->pid = 0;
}

static void stop_ready_watch(struct dnsmasq *d) {
    struct dnsmasq **p = &ready_watch.starting;

    d->ready_timer = sd_event_source_disable_unref(d->ready_timer);
    d->ready_now = sd_event_source_disable_unref(d->ready_now);
    if (d->watch_descriptor >= 0 && ready_watch.fd >= 0)
        inotify_rm_watch(ready_watch.fd, d->watch_descriptor);
    d->watch_descriptor = -1;
    while (*p != NULL && *p != d)
        p = &(*p)->next_starting;
    if (*p == d)
        *p = d->next_starting;
    d->next_starting = NULL;
    // The last start over: give the instance back to the kernel, off the
    // loop (see dnsmasq_options.close_fd).
    if (ready_watch.starting == NULL && ready_watch.fd >= 0) {
        ready_watch.source = sd_event_source_disable_unref(ready_watch.source);
        if (d->close_fd != NULL)
            d->close_fd(d->close_fd_ctx, ready_watch.fd);
        else
            close(ready_watch.fd);
        ready_watch.fd = -1;
    }
}

static int watch(struct dnsmasq *d);
static void terminate(struct dnsmasq *d);

// Ends the start with status (0: ready). The callback may free d.
static void finish_start(struct dnsmasq *d, int status) {
    dnsmasq_ready_fn ready = d->ready;

    stop_ready_watch(d);
    d->ready = NULL;
    if (status == 0) {
        log_info("%s: dnsmasq (pid %d) is ready", d->label, (int)d->pid);
        lease_log_start(d->event, d, d->name, d->dir, LEASE_FILE, &d->leases);
    }
    ready(d->ready_data, status);
}

// True once the running instance wrote its pid file.
static bool pid_file_ready(const struct dnsmasq *d) {
    char path[PATH_MAX];

    file_path(path, d->dir, PID_FILE);
    return d->pid != 0 && read_pid_file(path) == d->pid;
}

static int on_ready_watch(sd_event_source *s, int fd, uint32_t revents,
                          void *userdata) {
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;

    (void)s;
    (void)revents;
    (void)userdata;
    // Which directory changed matters little: every pending start checks
    // its own pid file, a handful of reads.
    do
        n = read(fd, buf, sizeof(buf));
    while (n > 0 || (n < 0 && errno == EINTR));
    // A callback may start or stop other instances: scan again after each.
    for (struct dnsmasq *d = ready_watch.starting; d != NULL;) {
        if (pid_file_ready(d)) {
            finish_start(d, 0);
            d = ready_watch.starting;
        } else {
            d = d->next_starting;
        }
    }
    return 0;
}

static int on_ready_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
    struct dnsmasq *d = userdata;

    (void)usec;
    if (d->respawning) {
        // A retry's spawn is still on the worker, and d must outlive it
        // (respawn_done()): ask again once it is back.
        if (sd_event_source_set_time_relative(s, 100 * USEC_PER_MSEC) >= 0 &&
            sd_event_source_set_enabled(s, SD_EVENT_ONESHOT) >= 0)
            return 0;
        // Cannot wait: leave the failure to the spawn's return.
        d->ready_expired = true;
        return 0;
    }
    log_error("%s: dnsmasq (pid %d) not ready after %llu s", d->label,
              (int)d->pid,
              (unsigned long long)(READY_TIMEOUT_USEC / USEC_PER_SEC));
    log_tail(d, LOG_LEVEL_ERROR);
    // SIGKILL first, so terminate() does not wait for it.
    if (d->pidfd >= 0)
        pidfd_send_signal(d->pidfd, SIGKILL, NULL, 0);
    terminate(d);
    finish_start(d, -ETIMEDOUT);
    return 0;
}

// Watches d's directory for its pid file before dnsmasq runs, so the file
// cannot appear unseen.
static int start_ready_watch(struct dnsmasq *d) {
    int r;

    if (ready_watch.fd < 0) {
        ready_watch.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (ready_watch.fd < 0) {
            r = -errno;
            log_error("%s: inotify: %s", d->label, strerror(errno));
            return r;
        }
        r = sd_event_add_io(d->event, &ready_watch.source, ready_watch.fd,
                            EPOLLIN, on_ready_watch, NULL);
        if (r < 0) {
            close(ready_watch.fd);
            ready_watch.fd = -1;
            log_error("%s: cannot watch inotify: %s", d->label, strerror(-r));
            return r;
        }
    }
    d->next_starting = ready_watch.starting;
    ready_watch.starting = d;
    d->watch_descriptor =
        inotify_add_watch(ready_watch.fd, d->dir, IN_CLOSE_WRITE | IN_MOVED_TO);
    if (d->watch_descriptor < 0) {
        r = -errno;
        log_error("%s: cannot watch %s: %s", d->label, d->dir, strerror(errno));
        stop_ready_watch(d);
        return r;
    }
    r = sd_event_add_time_relative(d->event, &d->ready_timer, CLOCK_MONOTONIC,
                                   READY_TIMEOUT_USEC, USEC_PER_MSEC,
                                   on_ready_timeout, d);
    if (r < 0) {
        log_error("%s: cannot arm a timer: %s", d->label, strerror(-r));
        stop_ready_watch(d);
    }
    return r;
}

// Ends the running instance, if any, and reaps it.
static void terminate(struct dnsmasq *d) {
    d->child = sd_event_source_disable_unref(d->child);
    if (d->pid == 0)
        return;
    pidfd_send_signal(d->pidfd, SIGTERM, NULL, 0);
    if (!wait_exit(d->pidfd, STOP_TIMEOUT_MSEC)) {
        log_warning("%s: dnsmasq (pid %d) still runs %d ms after "
                    "SIGTERM; killing it",
                    d->label, (int)d->pid, STOP_TIMEOUT_MSEC);
        pidfd_send_signal(d->pidfd, SIGKILL, NULL, 0);
    }
    while (waitpid(d->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    forget_instance(d);
}

static int on_child_exit(sd_event_source *s, const siginfo_t *si,
                         void *userdata);

static int watch(struct dnsmasq *d) {
    int r = sd_event_add_child(d->event, &d->child, d->pid, WEXITED,
                               on_child_exit, d);

    if (r < 0)
        log_error("%s: cannot watch dnsmasq (pid %d): %s", d->label,
                  (int)d->pid, strerror(-r));
    return r;
}

static void record_failure(struct dnsmasq *d);

// Gives up on d: the network is degraded (status) until it is restarted.
static void give_up(struct dnsmasq *d) {
    d->failed = true;
    if (d->health_changed != NULL)
        d->health_changed(d->health_ctx);
}

// A restart's spawn has run (status, and d->pid when 0): watch the new
// instance, or count the failure.
static void finish_restart(struct dnsmasq *d, int status) {
    if (status < 0) {
        record_failure(d);
        return;
    }
    if (watch(d) < 0) {
        // SIGKILL first, so terminate() does not wait for it.
        pidfd_send_signal(d->pidfd, SIGKILL, NULL, 0);
        terminate(d);
        record_failure(d);
        return;
    }
    log_info("%s: dnsmasq restarted (pid %d)", d->label, (int)d->pid);
    if (d->restarted != NULL)
        d->restarted(d->restarted_data);
    if (d->respawn_again) {
        d->respawn_again = false;
        if (pidfd_send_signal(d->pidfd, SIGTERM, NULL, 0) == 0)
            d->restarting = true;
    }
}

// Off the loop: the restart's spawn, its outcome in respawn_*.
static void respawn_run(void *arg) {
    struct dnsmasq *d = arg;

    d->respawn_status = spawn_process(d, &d->respawn_pid, &d->respawn_pidfd);
    atomic_store_explicit(&d->respawn_ran, true, memory_order_release);
}

// Takes the spawn's outcome into d, on the loop's thread. Its done may have
// been dropped (the worker drained at exit); its run never is, and is
// short (files and posix_spawn), so an exit path that frees d waits for it.
static int respawn_settle(struct dnsmasq *d) {
    while (!atomic_load_explicit(&d->respawn_ran, memory_order_acquire))
        usleep(1000);
    d->respawning = false;
    if (d->respawn_status == 0) {
        d->pid = d->respawn_pid;
        d->pidfd = d->respawn_pidfd;
    }
    return d->respawn_status;
}

static void begin_stop(struct dnsmasq *d);

// A start's new try has been spawned (status, and d->pid when 0): watch it;
// the readiness watch still runs, its deadline the first try's.
static void finish_start_again(struct dnsmasq *d, int status) {
    if (status == 0 && (d->ready_expired || watch(d) < 0)) {
        // SIGKILL first, so terminate() does not wait for it.
        pidfd_send_signal(d->pidfd, SIGKILL, NULL, 0);
        terminate(d);
        status = d->ready_expired ? -ETIMEDOUT : -EIO;
    }
    if (status < 0) {
        finish_start(d, status);
        return;
    }
    // Its pid file may have come while d->pid was not known yet, and the
    // readiness watch let that event go (dnsmasq_watch() checks the same).
    if (pid_file_ready(d))
        finish_start(d, 0);
}

// Back on the loop once the restart's spawn has run.
static void respawn_done(void *arg) {
    struct dnsmasq *d = arg;
    int status;

    status = respawn_settle(d);
    if (d->stopped != NULL) {
        // dnsmasq_stop_async() came meanwhile: the new instance is ended.
        if (status == 0 && watch(d) < 0) {
            pidfd_send_signal(d->pidfd, SIGKILL, NULL, 0);
            terminate(d);
        }
        begin_stop(d);
        return;
    }
    if (d->ready != NULL) {
        finish_start_again(d, status);
        return;
    }
    finish_restart(d, status);
}

static int on_restart(sd_event_source *s, uint64_t usec, void *userdata) {
    struct dnsmasq *d = userdata;

    (void)s;
    (void)usec;
    if (d->respawning)
        return 0;
    // The source of the instance that ended; sd-event has reaped it.
    d->child = sd_event_source_disable_unref(d->child);
    if (d->offload == NULL) {
        finish_restart(d, spawn(d));
        return 0;
    }
    // posix_spawn() and the files take milliseconds: off the loop.
    d->spawned_usec = now_usec();
    d->respawning = true;
    d->respawn_again = false;
    atomic_store_explicit(&d->respawn_ran, false, memory_order_relaxed);
    d->offload(d->offload_ctx, respawn_run, respawn_done, d);
    return 0;
}

// Restarts at most once per RESTART_INTERVAL_USEC, so a dnsmasq that dies
// at once cannot make the broker spin.
static void schedule_restart(struct dnsmasq *d) {
    uint64_t when = d->spawned_usec + RESTART_INTERVAL_USEC;
    int r;

    if (d->restart_timer == NULL) {
        r = sd_event_add_time(d->event, &d->restart_timer, CLOCK_MONOTONIC,
                              when, USEC_PER_MSEC, on_restart, d);
    } else {
        r = sd_event_source_set_time(d->restart_timer, when);
        if (r >= 0)
            r = sd_event_source_set_enabled(d->restart_timer, SD_EVENT_ONESHOT);
    }
    if (r < 0) {
        log_error("%s: cannot schedule a dnsmasq restart: %s; "
                  "the network has no DHCP or DNS until it is recreated",
                  d->label, strerror(-r));
        give_up(d);
    }
}

static void record_failure(struct dnsmasq *d) {
    if (++d->failures >= MAX_FAILURES) {
        log_error("%s: dnsmasq failed %u times in a row; not "
                  "restarting it: the network has no DHCP or DNS until it "
                  "is recreated",
                  d->label, d->failures);
        give_up(d);
        return;
    }
    schedule_restart(d);
}

static void finish_stop(struct dnsmasq *d);

// dnsmasq ended because dnsmasq_restart() asked it to (its bridge was made
// again): it starts again at once, and that is no failure.
static void restart_requested(struct dnsmasq *d) {
    d->restarting = false;
    forget_instance(d);
    d->spawned_usec = 0;
    schedule_restart(d);
}

// Spawns a start's next try at once, off the loop as a restart's spawn.
static void start_again(struct dnsmasq *d) {
    if (d->offload == NULL) {
        finish_start_again(d, spawn(d));
        return;
    }
    d->spawned_usec = now_usec();
    d->respawning = true;
    d->respawn_again = false;
    atomic_store_explicit(&d->respawn_ran, false, memory_order_relaxed);
    d->offload(d->offload_ctx, respawn_run, respawn_done, d);
}

static int on_child_exit(sd_event_source *s, const siginfo_t *si,
                         void *userdata) {
    struct dnsmasq *d = userdata;
    char what[64];

    (void)s;
    describe_exit(si, what, sizeof(what));
    if (d->stopped != NULL) {
        // Asked to stop: sd-event reaps it after this callback returns.
        log_debug("%s: dnsmasq (pid %d) %s", d->label, (int)d->pid, what);
        forget_instance(d);
        finish_stop(d);
        return 0;
    }
    if (d->ready != NULL) {
        // Ended for a repair (dnsmasq_restart()): no failure of its own.
        bool again =
            d->start_interrupted || ++d->start_attempts < START_ATTEMPTS;
        enum log_level level = again ? LOG_LEVEL_WARNING : LOG_LEVEL_ERROR;

        if (d->start_interrupted)
            level = LOG_LEVEL_INFO;
        d->start_interrupted = false;
        log_write(level, NULL, "%s: dnsmasq (pid %d) %s while starting%s",
                  d->label, (int)d->pid, what, again ? "; trying again" : "");
        log_tail(d, level);
        forget_instance(d);
        d->child = sd_event_source_disable_unref(d->child);
        if (again)
            start_again(d);
        else
            finish_start(d, -EIO);
        return 0;
    }
    if (d->restarting) {
        log_debug("%s: dnsmasq (pid %d) %s to be restarted", d->label,
                  (int)d->pid, what);
        restart_requested(d);
        return 0;
    }
    log_warning("%s: dnsmasq (pid %d) %s", d->label, (int)d->pid, what);
    log_tail(d, LOG_LEVEL_WARNING);
    // sd-event reaps the child after this callback returns.
    forget_instance(d);
    if (now_usec() - d->spawned_usec >= STABLE_USEC)
        d->failures = 0;
    record_failure(d);
    return 0;
}

// Removes the files this module puts in dir, then dir itself, following
// no link: a link in dir's place is removed itself (its target stays), and
// the files are unlinked relative to dir's descriptor.
static void remove_network_dir(const char dir[DIR_MAX]) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    struct stat st;

    if (fd < 0) {
        if (lstat(dir, &st) == 0 && S_ISLNK(st.st_mode)) {
            log_warning("%s is a symbolic link: removing the link, not "
                        "following it",
                        dir);
            if (unlink(dir) < 0)
                log_warning("cannot remove %s: %s", dir, strerror(errno));
        } else if (err != ENOENT) {
            log_warning("cannot open %s: %s", dir, strerror(err));
        }
        return;
    }
    for (size_t i = 0; i < sizeof(owned_files) / sizeof(owned_files[0]); i++) {
        if (unlinkat(fd, owned_files[i], 0) < 0 && errno != ENOENT)
            log_warning("cannot remove %s/%s: %s", dir, owned_files[i],
                        strerror(errno));
    }
    close(fd);
    if (rmdir(dir) < 0 && errno != ENOENT)
        log_warning("cannot remove %s: %s", dir, strerror(errno));
}

// True when /proc/<pid>/cmdline holds the argument arg.
static bool cmdline_has(pid_t pid, const char *arg) {
    char path[64];
    char text[2 * PATH_MAX];
    size_t used = 0;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    while (used < sizeof(text) - 1 &&
           (n = read(fd, text + used, sizeof(text) - 1 - used)) > 0)
        used += (size_t)n;
    close(fd);
    text[used] = '\0';
    for (size_t i = 0; i < used; i += strlen(text + i) + 1) {
        if (strcmp(text + i, arg) == 0)
            return true;
    }
    return false;
}

static bool started_before(pid_t pid, const char *path);

// Kills the dnsmasq a previous broker left in dir, if it still runs and
// really is that one, and removes dir. Returns 1 if it killed one. label
// names it in the log. check_start: the process must also be older than its
// pid file (the router advertisement instance, which nothing else vouches
// for; a network's is named by the state file or its directory alone, and a
// clock stepped forward since must not leave it holding the gateway's port).
static int remove_stale_dir(const char dir[DIR_MAX], const char *label,
                            bool check_start) {
    char path[PATH_MAX];
    char conf[CONF_ARG_MAX];
    pid_t pid;
    int pidfd;
    int killed = 0;

    file_path(path, dir, PID_FILE);
    pid = read_pid_file(path);
    conf_arg(conf, dir);
    // Checking the command line after pidfd_open() pins the process: a pid
    // reused in between cannot receive the signal. The command line alone
    // anyone can forge, with a pid reused since dnsmasq wrote the file.
    pidfd = pid > 0 ? pidfd_open(pid, 0) : -1;
    if (pidfd >= 0 && cmdline_has(pid, conf) &&
        (!check_start || started_before(pid, path)) &&
        pidfd_send_signal(pidfd, SIGKILL, NULL, 0) == 0) {
        if (!wait_exit(pidfd, STALE_KILL_TIMEOUT_MSEC))
            log_warning("%s: stale dnsmasq (pid %d) outlived "
                        "SIGKILL for %d ms",
                        label, (int)pid, STALE_KILL_TIMEOUT_MSEC);
        log_info("%s: killed stale dnsmasq (pid %d)", label, (int)pid);
        killed = 1;
    }
    if (pidfd >= 0)
        close(pidfd);
    remove_network_dir(dir);
    return killed;
}

// Sets d's names: a network's (radv_prefix NULL) or the router
// advertisement instance's.
static void set_names(struct dnsmasq *d, const char *name,
                      const char *radv_prefix) {
    snprintf(d->name, sizeof(d->name), "%s", name);
    if (radv_prefix != NULL) {
        snprintf(d->radv_prefix, sizeof(d->radv_prefix), "%s", radv_prefix);
        snprintf(d->label, sizeof(d->label), "router advertisements");
    } else {
        snprintf(d->label, sizeof(d->label), "network %s", name);
    }
}

// A new handle (NULL without memory) named name, radv_prefix NULL for a
// network's, taking what options gives it: what spawning and adopting
// share. Nothing of the loop's is referenced: sd_event_ref() is the loop
// thread's to call.
static struct dnsmasq *handle_new(const struct dnsmasq_options *options,
                                  const char *name, const char *radv_prefix) {
    struct dnsmasq *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return NULL;
    d->pidfd = -1;
    d->watch_descriptor = -1;
    set_names(d, name, radv_prefix);
    d->loop = options->event;
    d->health_changed = options->health_changed;
    d->health_ctx = options->health_ctx;
    d->offload = options->offload;
    d->offload_ctx = options->offload_ctx;
    d->close_fd = options->close_fd;
    d->close_fd_ctx = options->close_fd_ctx;
    d->dnsmasq_path =
        strdup(options->dnsmasq_path != NULL ? options->dnsmasq_path
                                             : DEFAULT_DNSMASQ_PATH);
    if (d->dnsmasq_path == NULL) {
        free(d);
        return NULL;
    }
    return d;
}

// dnsmasq_spawn() and dnsmasq_radv_spawn(): name is the directory's,
// radv_prefix NULL for a network (config and info then set), else the
// bridges' prefix (config and info NULL).
static int spawn_instance(const struct dnsmasq_options *options,
                          const char *name, const char *radv_prefix,
                          const struct network_config *config,
                          const struct network_info *info,
                          struct dnsmasq **out) {
    struct dnsmasq *d = NULL;
    char dir[DIR_MAX];
    int status = -ENOMEM;
    int made;

    d = handle_new(options, name, radv_prefix);
    if (d == NULL)
        goto out;
    status = -EINVAL;
    if (options->event == NULL || !runtime_dir_valid(options->runtime_dir)) {
        log_error("%s: dnsmasq needs an event loop and an absolute "
                  "runtime directory of plain path characters",
                  d->label);
        goto out;
    }
    status = network_dir(options->runtime_dir, name, dir);
    if (status < 0) {
        log_error("%s: runtime directory %s is too long", d->label,
                  options->runtime_dir);
        goto out;
    }

    if (mkdir(options->runtime_dir, 0755) < 0 && errno != EEXIST) {
        status = -errno;
        log_error("%s: cannot create %s: %s", d->label, options->runtime_dir,
                  strerror(errno));
        goto out;
    }
    made = mkdir(dir, 0755);
    if (made < 0 && errno == EEXIST) {
        log_warning("%s: removing %s, left by a previous broker", d->label,
                    dir);
        remove_stale_dir(dir, d->label, radv_prefix != NULL);
        made = mkdir(dir, 0755);
    }
    if (made < 0) {
        status = -errno;
        log_error("%s: cannot create %s: %s", d->label, dir, strerror(errno));
        goto out;
    }
    snprintf(d->dir, sizeof(d->dir), "%s", dir);
    // mkdir() obeys the umask. Readable by all for diagnostics, writable by
    // root only: dnsmasq, once it drops to its own user, cannot plant files
    // or symlinks where the broker writes.
    if (chmod(d->dir, 0755) < 0) {
        status = -errno;
        log_error("%s: cannot chmod %s: %s", d->label, d->dir, strerror(errno));
        goto out;
    }

    status = write_config(d, config, info);
    if (status < 0)
        goto out;
    status = spawn(d);
    if (status < 0)
        goto out;
    if (info != NULL)
        log_info("%s: dnsmasq (pid %d) starts on %s", d->label, (int)d->pid,
                 info->bridge);
    else
        log_info("%s: dnsmasq (pid %d) starts on %s*", d->label, (int)d->pid,
                 d->radv_prefix);
    *out = d;
    d = NULL;
    status = 0;
out:
    // Nothing of the loop's is set up yet: release() touches none of it.
    dnsmasq_stop(d);
    return status;
}

int dnsmasq_spawn(const struct dnsmasq_options *options,
                  const struct network_config *config,
                  const struct network_info *info, struct dnsmasq **out) {
    return spawn_instance(options, config->name, NULL, config, info, out);
}

int dnsmasq_radv_spawn(const struct dnsmasq_options *options,
                       const char *bridge_prefix, struct dnsmasq **out) {
    // dnsmasq gives '*' and ',' a meaning where the prefix is written.
    if (bridge_prefix == NULL || bridge_prefix[0] == '\0' ||
        strlen(bridge_prefix) >= sizeof(((struct dnsmasq *)0)->radv_prefix) ||
        strspn(bridge_prefix, "abcdefghijklmnopqrstuvwxyz0123456789-") !=
            strlen(bridge_prefix)) {
        log_error("router advertisements: bad bridge prefix");
        return -EINVAL;
    }
    return spawn_instance(options, DNSMASQ_RADV_NAME, bridge_prefix, NULL, NULL,
                          out);
}

// dnsmasq wrote its pid file before the watch on its directory existed.
static int on_ready_now(sd_event_source *s, void *userdata) {
    struct dnsmasq *d = userdata;

    (void)s;
    d->ready_now = sd_event_source_disable_unref(d->ready_now);
    if (d->ready != NULL && pid_file_ready(d))
        finish_start(d, 0);
    return 0;
}

int dnsmasq_watch(struct dnsmasq *d, dnsmasq_ready_fn ready, void *data) {
    int status;

    d->event = sd_event_ref(d->loop);
    d->ready = ready;
    d->ready_data = data;
    status = start_ready_watch(d);
    if (status < 0)
        goto out;
    status = watch(d);
    if (status < 0)
        goto out;
    // The pid file may have come before the watch: look once, from the
    // loop, so ready() never runs inside this call.
    if (pid_file_ready(d)) {
        status = sd_event_add_defer(d->event, &d->ready_now, on_ready_now, d);
        if (status < 0)
            log_error("%s: cannot queue readiness: %s", d->label,
                      strerror(-status));
    }
out:
    if (status < 0) {
        d->ready = NULL;
        stop_ready_watch(d);
        // SIGKILL first, so terminate() does not wait for it.
        if (d->pidfd >= 0)
            pidfd_send_signal(d->pidfd, SIGKILL, NULL, 0);
        terminate(d);
    }
    return status;
}

int dnsmasq_start(const struct dnsmasq_options *options,
                  const struct network_config *config,
                  const struct network_info *info, dnsmasq_ready_fn ready,
                  void *data, struct dnsmasq **out) {
    struct dnsmasq *d = NULL;
    int status = dnsmasq_spawn(options, config, info, &d);

    if (status < 0)
        return status;
    status = dnsmasq_watch(d, ready, data);
    if (status < 0) {
        dnsmasq_stop(d);
        return status;
    }
    *out = d;
    return 0;
}

// What releasing d and leaving d have in common: a restart's spawn in
// flight is settled (its instance then ends, or is left, with d's), and the
// lease log and timers go.
static void drop_supervision(struct dnsmasq *d) {
    if (d->respawning)
        respawn_settle(d);
    lease_log_free(d->leases);
    d->restart_timer = sd_event_source_disable_unref(d->restart_timer);
    d->kill_timer = sd_event_source_disable_unref(d->kill_timer);
}

static void free_handle(struct dnsmasq *d) {
    sd_event_unref(d->event);
    free(d->dnsmasq_path);
    free(d);
}

static void remove_dir_job(void *arg) {
    remove_network_dir(arg);
    free(arg);
}

// Removes d's directory where d's restarts spawn (the worker), so the loop
// never waits for the file system (a disk mounted with discard trims each
// removed file synchronously: 10-30 ms seen). The worker runs jobs in
// order: a new network of the same name, built there later, finds the
// directory gone. Without offload, or memory, here.
static void remove_dir_offloaded(struct dnsmasq *d) {
    char *dir = d->offload != NULL ? malloc(DIR_MAX) : NULL;

    if (dir == NULL) {
        remove_network_dir(d->dir);
        return;
    }
    memcpy(dir, d->dir, DIR_MAX);
    d->offload(d->offload_ctx, remove_dir_job, NULL, dir);
}

// offloaded: the directory is removed off the loop (an instance that has
// ended, while the backend runs); else here.
static void release(struct dnsmasq *d, bool offloaded) {
    drop_supervision(d);
    // A handle dnsmasq_spawn() made and no loop watched yet has nothing of
    // the loop's (it may be released on the worker).
    if (d->event != NULL)
        stop_ready_watch(d);
    terminate(d);
    if (d->dir[0] != '\0' && offloaded)
        remove_dir_offloaded(d);
    else if (d->dir[0] != '\0')
        remove_network_dir(d->dir);
    free_handle(d);
}

void dnsmasq_stop(struct dnsmasq *d) {
    if (d == NULL)
        return;
    d->stopped = NULL;
    release(d, false);
}

// The instance has ended: remove the files and tell the caller.
static void finish_stop(struct dnsmasq *d) {
    dnsmasq_stopped_fn stopped = d->stopped;
    void *data = d->stopped_data;

    d->stopped = NULL;
    release(d, true);
    stopped(data);
}

static int on_kill_timer(sd_event_source *s, uint64_t usec, void *userdata) {
    struct dnsmasq *d = userdata;

    (void)s;
    (void)usec;
    log_warning("%s: dnsmasq (pid %d) still runs %d ms after "
                "SIGTERM; killing it",
                d->label, (int)d->pid, STOP_TIMEOUT_MSEC);
    if (d->pidfd >= 0)
        pidfd_send_signal(d->pidfd, SIGKILL, NULL, 0);
    return 0;
}

void dnsmasq_stop_async(struct dnsmasq *d, dnsmasq_stopped_fn stopped,
                        void *data) {
    d->stopped = stopped;
    d->stopped_data = data;
    d->restart_timer = sd_event_source_disable_unref(d->restart_timer);
    stop_ready_watch(d);
    d->ready = NULL;
    // A restart's spawn is in flight: its done goes on with the stop.
    if (d->respawning)
        return;
    begin_stop(d);
}

// SIGTERM to the running instance, SIGKILL if it outlives the timer; its
// exit (or nothing running) finishes the stop.
static void begin_stop(struct dnsmasq *d) {
    // Nothing runs (restarts gave up, or it is between two), or nothing
    // watches it: end now.
    if (d->pid == 0 || d->child == NULL ||
        pidfd_send_signal(d->pidfd, SIGTERM, NULL, 0) < 0 ||
        sd_event_add_time_relative(d->event, &d->kill_timer, CLOCK_MONOTONIC,
                                   STOP_TIMEOUT_MSEC * USEC_PER_MSEC,
                                   USEC_PER_MSEC, on_kill_timer, d) < 0) {
        finish_stop(d);
        return;
    }
}

pid_t dnsmasq_pid(const struct dnsmasq *d) { return d->pid; }

unsigned long long dnsmasq_start_time(struct dnsmasq *d) {
    if (d->pid != d->start_pid) {
        d->start_pid = d->pid;
        if (d->pid <= 0 ||
            dnsmasq_process_start_time(d->pid, &d->start_time) < 0)
            d->start_time = 0;
    }
    return d->start_time;
}

bool dnsmasq_failed(const struct dnsmasq *d) { return d->failed; }

void dnsmasq_restart(struct dnsmasq *d) {
    bool was_failed;

    if (d == NULL || d->stopped != NULL)
        return;
    if (d->ready != NULL) {
        // Starting: it may have bound what the repair replaced (a network's
        // dnsmasq binds once, bind-interfaces). Ended, it is tried again,
        // which binds the new bridge; a try being spawned is left be.
        if (!d->respawning && d->pid != 0 && d->child != NULL &&
            pidfd_send_signal(d->pidfd, SIGTERM, NULL, 0) == 0)
            d->start_interrupted = true;
        return;
    }
    was_failed = d->failed;
    d->failures = 0;
    d->failed = false;
    if (d->respawning) {
        // A spawn is in flight: what it starts is restarted once more.
        d->respawn_again = true;
    } else if (d->pid != 0 && d->child != NULL) {
        if (!d->restarting &&
            pidfd_send_signal(d->pidfd, SIGTERM, NULL, 0) == 0)
            d->restarting = true;
    } else {
        // Given up on, or between two restarts: start it now.
        d->spawned_usec = 0;
        schedule_restart(d);
    }
    if (was_failed && d->health_changed != NULL)
        d->health_changed(d->health_ctx);
}

int dnsmasq_remove_stale(const char *runtime_dir) {
    return dnsmasq_remove_stale_except(runtime_dir, NULL, NULL);
}

int dnsmasq_remove_stale_except(const char *runtime_dir,
                                bool (*keep)(const char *name, void *ctx),
                                void *ctx) {
    char dir[DIR_MAX];
    char path[PATH_MAX];
    char label[NETWORK_NAME_MAX + sizeof("network ")];
    struct dirent *entry;
    struct stat st;
    int killed = 0;
    DIR *runtime;

    dnsmasq_user();
    if (!runtime_dir_valid(runtime_dir)) {
        log_warning("not looking for stale dnsmasq files in %s: not an "
                    "absolute path of plain path characters",
                    runtime_dir);
        return 0;
    }
    runtime = opendir(runtime_dir);
    if (runtime == NULL) {
        if (errno != ENOENT)
            log_warning("cannot list %s for stale dnsmasq files: %s",
                        runtime_dir, strerror(errno));
        return 0;
    }
    while ((entry = readdir(runtime)) != NULL) {
        // Only network directories holding our files: the runtime
        // directory also holds the broker's socket and maybe more.
        if (!network_name_valid(entry->d_name) ||
            fstatat(dirfd(runtime), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) <
                0 ||
            !S_ISDIR(st.st_mode) ||
            network_dir(runtime_dir, entry->d_name, dir) < 0)
            continue;
        // An adopted network's dnsmasq and files carry on.
        if (keep != NULL && keep(entry->d_name, ctx))
            continue;
        file_path(path, dir, CONF_FILE);
        if (access(path, F_OK) < 0) {
            file_path(path, dir, PID_FILE);
            if (access(path, F_OK) < 0)
                continue;
        }
        snprintf(label, sizeof(label), "network %.*s", NETWORK_NAME_MAX,
                 entry->d_name);
        killed += remove_stale_dir(dir, label, false);
        log_info("network %s: removed stale dnsmasq files in %s", entry->d_name,
                 dir);
    }
    closedir(runtime);
    // The router advertisement instance is replaced, never adopted: a new
    // one starts with the first network that has IPv6 (an advertisement
    // missed meanwhile costs guests nothing: they keep their addresses).
    if (network_dir(runtime_dir, DNSMASQ_RADV_NAME, dir) == 0 &&
        lstat(dir, &st) == 0) {
        killed += remove_stale_dir(dir, "router advertisements", true);
        log_info("router advertisements: removed stale dnsmasq files in %s",
                 dir);
    }
    return killed;
}

int dnsmasq_set_guest_hosts(const struct dnsmasq *d,
                            const struct dhcp_reservation *hosts, size_t n) {
    char path[PATH_MAX], tmp[PATH_MAX], mac[18], address[16];
    FILE *f;
    int status = 0;

    file_path(path, d->dir, GUEST_HOSTS_FILE);
    file_path(tmp, d->dir, GUEST_HOSTS_TMP);
    // Whole or not at all: dnsmasq may read it at any moment.
    f = fopen(tmp, "we");
    if (f == NULL) {
        status = -errno;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        format_mac(hosts[i].mac, mac);
        fprintf(f, "%s,%s\n", mac, ipv4_format(hosts[i].address, address));
    }
    status = ferror(f) ? -EIO : 0;
    if (fclose(f) != 0 && status == 0)
        status = -errno;
    if (status == 0 && rename(tmp, path) != 0)
        status = -errno;
    // SIGHUP makes dnsmasq read dhcp-hostsfile again; one being restarted
    // reads it when it starts.
    if (status == 0 && d->pid > 0)
        kill(d->pid, SIGHUP);
out:
    if (status < 0)
        log_error("%s: cannot write %s: %s", d->label, path, strerror(-status));
    return status;
}

int dnsmasq_read_leases(const struct dnsmasq *d, struct dnsmasq_lease **out,
                        size_t *n) {
    char path[PATH_MAX], line[512];
    struct dnsmasq_lease *leases = NULL;
    size_t count = 0, size = 0;
    FILE *f;
    int status = 0;

    file_path(path, d->dir, LEASE_FILE);
    f = fopen(path, "re");
    if (f == NULL) {
        // No lease yet: dnsmasq makes the file with the first one.
        status = errno == ENOENT ? 0 : -errno;
        goto out;
    }
    // "EXPIRY MAC IPV4 HOSTNAME CLIENT-ID" per line; IPv6 lines (after
    // "duid") are not DHCPv4 leases and the network's DHCPv6 is stateless.
    while (fgets(line, sizeof(line), f) != NULL) {
        struct dnsmasq_lease lease = {0};
        unsigned long long expiry;
        unsigned b[6];
        char mac[32], address[64], hostname[sizeof(lease.hostname)];
        struct in_addr in;

        if (sscanf(line, "%llu %31s %63s %63s", &expiry, mac, address,
                   hostname) != 4 ||
            sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3],
                   &b[4], &b[5]) != 6 ||
            inet_pton(AF_INET, address, &in) != 1)
            continue;
        for (int i = 0; i < 6; i++)
            lease.mac[i] = (uint8_t)b[i];
        lease.address = ntohl(in.s_addr);
        lease.expiry = (int64_t)expiry;
        // dnsmasq writes "*" for a lease without a name.
        if (strcmp(hostname, "*") != 0)
            snprintf(lease.hostname, sizeof(lease.hostname), "%s", hostname);
        if (count == size) {
            struct dnsmasq_lease *grown;
            size = size ? size * 2 : 16;
            grown = realloc(leases, size * sizeof(*grown));
            if (grown == NULL) {
                status = -ENOMEM;
                goto out;
            }
            leases = grown;
        }
        leases[count++] = lease;
    }
out:
    if (f != NULL)
        fclose(f);
    if (status < 0) {
        free(leases);
        log_error("%s: cannot read %s: %s", d->label, path, strerror(-status));
        return status;
    }
    *out = leases;
    *n = count;
    return 0;
}

void dnsmasq_set_restarted(struct dnsmasq *d, dnsmasq_restarted_fn restarted,
                           void *data) {
    d->restarted = restarted;
    d->restarted_data = data;
}

int dnsmasq_process_start_time(pid_t pid, unsigned long long *start) {
    char path[64];
    char text[1024];
    const char *p;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0)
        return -EIO;
    text[n] = '\0';
    // Field 2, the command name in parentheses, may hold spaces and ')':
    // the fields after it start after its last ')'. That is field 3; the
    // start time is field 22.
    p = strrchr(text, ')');
    if (p == NULL)
        return -EIO;
    p++;
    for (int field = 3; field <= 22; field++) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return -EIO;
        if (field == 22)
            return sscanf(p, "%llu", start) == 1 ? 0 : -EIO;
        p += strcspn(p, " ");
    }
    return -EIO;
}

static void leave_instance(struct dnsmasq *d);

static int on_adopted_exit(sd_event_source *s, int fd, uint32_t revents,
                           void *userdata) {
    struct dnsmasq *d = userdata;

    (void)s;
    (void)fd;
    (void)revents;
    // Not our child: nothing to reap, and no exit status to tell.
    d->child = sd_event_source_disable_unref(d->child);
    if (d->stopped != NULL) {
        forget_instance(d);
        finish_stop(d);
        return 0;
    }
    if (d->restarting) {
        // An adopted one becomes our own child.
        log_info("%s: adopted dnsmasq (pid %d) ended to be restarted", d->label,
                 (int)d->pid);
        restart_requested(d);
        return 0;
    }
    log_warning("%s: adopted dnsmasq (pid %d) exited", d->label, (int)d->pid);
    log_tail(d, LOG_LEVEL_WARNING);
    forget_instance(d);
    record_failure(d);
    return 0;
}

// True when pid started no later than the file at path was last written
// (to the second): dnsmasq writes its pid file once it runs, so a process
// that took the pid after that dnsmasq had ended started later.
static bool started_before(pid_t pid, const char *path) {
    unsigned long long start, boot = 0;
    long tick = sysconf(_SC_CLK_TCK);
    char line[256];
    struct stat st;
    FILE *f;

    if (tick <= 0 || stat(path, &st) < 0 ||
        dnsmasq_process_start_time(pid, &start) < 0)
        return false;
    f = fopen("/proc/stat", "re");
    if (f == NULL)
        return false;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "btime %llu", &boot) == 1)
            break;
    }
    fclose(f);
    return boot != 0 && boot + start / (unsigned long long)tick <=
                            (unsigned long long)st.st_mtime + 1;
}

// pid is the network's dnsmasq when it runs our config file and, if start
// is not 0, started when it did (a pid reused since cannot pass). Returns
// a pidfd for it, or -1.
static int pin_instance(const struct dnsmasq *d, pid_t pid,
                        unsigned long long start) {
    char conf[CONF_ARG_MAX];
    unsigned long long now_start = 0;
    int pidfd = pid > 0 ? pidfd_open(pid, 0) : -1;

    if (pidfd < 0)
        return -1;
    conf_arg(conf, d->dir);
    // Checked after pidfd_open(): the pidfd pins the process they describe.
    if (!cmdline_has(pid, conf) ||
        (start != 0 && (dnsmasq_process_start_time(pid, &now_start) < 0 ||
                        now_start != start))) {
        close(pidfd);
        return -1;
    }
    return pidfd;
}

int dnsmasq_adopt(const struct dnsmasq_options *options, const char *name,
                  pid_t pid, unsigned long long start, struct dnsmasq **out) {
    struct dnsmasq *d = NULL;
    char path[PATH_MAX];
    struct stat st;
    int status = -EINVAL;
    int r;

    if (options->event == NULL || !runtime_dir_valid(options->runtime_dir) ||
        !network_name_valid(name))
        goto out;
    status = -ENOMEM;
    d = handle_new(options, name, NULL);
    if (d == NULL)
        goto out;
    // Adopted on the loop's thread: the loop is its own from the start.
    d->event = sd_event_ref(options->event);
    status = network_dir(options->runtime_dir, name, d->dir);
    if (status < 0)
        goto out;
    // Its config, written by the broker that made it, is what a restart
    // runs with: without it the network cannot be vouched for.
    file_path(path, d->dir, CONF_FILE);
    if (lstat(d->dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
        lstat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
        status = -ENOENT;
        d->dir[0] = '\0'; // not ours to remove on the way out
        goto out;
    }
    d->pidfd = pin_instance(d, pid, start);
    if (d->pidfd < 0) {
        // Restarted by a broker that died before it said so.
        file_path(path, d->dir, PID_FILE);
        pid = read_pid_file(path);
        d->pidfd = pin_instance(d, pid, 0);
        // The command line alone anyone can forge, with a pid reused since.
        if (d->pidfd >= 0 && !started_before(pid, path)) {
            close(d->pidfd);
            d->pidfd = -1;
        }
    }
    if (d->pidfd >= 0) {
        d->pid = pid;
        d->spawned_usec = now_usec();
        r = sd_event_add_io(d->event, &d->child, d->pidfd, EPOLLIN,
                            on_adopted_exit, d);
        if (r < 0) {
            status = r;
            log_error("network %s: cannot watch dnsmasq (pid %d): %s", name,
                      (int)pid, strerror(-r));
            leave_instance(d);
            d = NULL;
            goto out;
        }
        log_info("network %s: adopted dnsmasq (pid %d)", name, (int)pid);
        lease_log_start(d->event, d, d->name, d->dir, LEASE_FILE, &d->leases);
    } else {
        log_warning("network %s: its dnsmasq is gone; starting a new one",
                    name);
        // spawned_usec 0: the restart is due at once.
        schedule_restart(d);
    }
    *out = d;
    d = NULL;
    status = 0;
out:
    if (d != NULL)
        leave_instance(d);
    return status;
}

// Frees d and leaves its process and files as they are.
static void leave_instance(struct dnsmasq *d) {
    drop_supervision(d);
    d->child = sd_event_source_disable_unref(d->child);
    stop_ready_watch(d);
    if (d->pidfd >= 0)
        close(d->pidfd);
    free_handle(d);
}

void dnsmasq_leave(struct dnsmasq *d) {
    if (d == NULL)
        return;
    leave_instance(d);
}

int dnsmasq_read_guest_hosts(const struct dnsmasq *d,
                             struct dhcp_reservation **out, size_t *n) {
    char path[PATH_MAX], line[128];
    struct dhcp_reservation *hosts = NULL, *grown;
    size_t count = 0;
    FILE *f;

    *out = NULL;
    *n = 0;
    file_path(path, d->dir, GUEST_HOSTS_FILE);
    f = fopen(path, "re");
    if (f == NULL)
        return errno == ENOENT ? 0 : -errno;
    // "MAC,IPV4" per line, as dnsmasq_set_guest_hosts() writes them.
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned b[6];
        char address[32];
        struct in_addr in;

        if (sscanf(line, "%2x:%2x:%2x:%2x:%2x:%2x,%31s", &b[0], &b[1], &b[2],
                   &b[3], &b[4], &b[5], address) != 7 ||
            inet_pton(AF_INET, address, &in) != 1)
            continue;
        grown = realloc(hosts, (count + 1) * sizeof(*grown));
        if (grown == NULL) {
            free(hosts);
            fclose(f);
            return -ENOMEM;
        }
        hosts = grown;
        for (int i = 0; i < 6; i++)
            hosts[count].mac[i] = (uint8_t)b[i];
        hosts[count].address = ntohl(in.s_addr);
        count++;
    }
    fclose(f);
    *out = hosts;
    *n = count;
    return 0;
}
