// SPDX-License-Identifier: Apache-2.0
// vmnet-broker daemon: options, the event loop, signals and lifetime.
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "../config/config_dir.h"
#include "../config/settings_file.h"
#include "../core/broker.h"
#include "../core/log.h"
#include "../core/peer.h"
#include "../core/subnet.h"
#include "linux_dnsmasq.h"
#include "linux_firewall.h"
#include "linux_instance.h"
#include "linux_network.h"
#include "networks_state.h"
#include "runtime_dir.h"
#include "stable_addresses.h"
#include "state_dir.h"
#include "tap_watch.h"
#include "unix_server.h"

#define DEFAULT_SOCKET "/run/vmnet-broker/vmnet-broker.sock"
#define DEFAULT_CONFIG_DIR "/etc/vmnet-broker.d"
#define DEFAULT_IDLE_SECONDS 120.0
// Enough for any honest user's VMs and tools; a user holding thousands of
// idle connections would cost the broker and the kernel hundreds of MiB.
#define DEFAULT_MAX_CONNECTIONS_PER_USER 256
// Where the Linux backend runs dnsmasq from (linux_dnsmasq.c's default).
#define DNSMASQ_PATH "/usr/sbin/dnsmasq"
// linux/capability.h's number; the kernel ABI, never renumbered.
#define CAP_NET_ADMIN_BIT 12

struct options {
    const char *socket_path;
    // Where dnsmasq's files go; NULL: the socket's directory.
    const char *runtime_dir;
    const char *config_dir;
    // The broker-wide settings file (--config); missing: defaults.
    const char *config_file;
    // Given on the command line, which overrides the settings file.
    bool idle_given;
    bool subnet_pool_given;
    bool max_connections_given;
    // What outlives the broker and a reboot: the guest MAC key
    // (state_dir.h) and each name's last subnet (stable_addresses.h).
    const char *state_dir;
    uint64_t idle_usec;
    // /24s for networks without a static subnet; len 0: the default.
    struct ipv4_prefix subnet_pool;
    // Connections one non-root uid may hold; 0: no cap.
    unsigned max_connections_per_user;
    bool verbose;
    bool check_config;
    // --cleanup: remove what a broker left, then exit.
    bool cleanup;
    // --check-config's file or directory; NULL: config_dir.
    const char *check_path;
};

struct daemon {
    struct options options;
    sd_event *event;
    struct broker *broker;
    struct unix_server *server;
    struct linux_backend *backend;
    // Undoes a TAP holder's change of its device's address.
    struct tap_watch *tap_watch;
    struct config_dir *configs;
    // Tells the config source when a file changes, so that the status's
    // configured networks are neither stale nor re-read per request.
    sd_event_source *config_watch;
    // The config parser thread's wake-ups: a parse is done.
    int parsed_fd;
    sd_event_source *parsed_source;
    sd_event_source *expire_timer;
    sd_event_source *exit_timer;
    // Started by socket activation: exit once idle, systemd restarts us.
    bool activated;
    // The socket's and the runtime directory's descriptors (one may be
    // the other's copy), checked to be root's: nothing there is reached
    // through a name another user could change.
    int socket_dir_fd;
    int runtime_dir_fd;
    // The instance lock in the runtime directory, held for our lifetime.
    int lock_fd;
    // SIGTERM or SIGINT came while peers held networks: exit once the
    // last of them has gone.
    bool stop_requested;
};

static void usage(FILE *out) {
    fprintf(
        out,
        "Usage: vmnet-broker [OPTION]...\n"
        "Share named, reference-counted VM networks between programs.\n"
        "\n"
        "  -s, --socket PATH          listen on PATH (default %s)\n"
        "  -c, --config-dir DIR       network configs (default %s)\n"
        "      --config FILE          broker-wide settings: subnet_pool,\n"
        "                             idle_timeout, max_connections_per_user\n"
        "                             (default %s; options override it)\n"
        "  -r, --runtime-dir DIR      per-network files such as dnsmasq's\n"
        "                             (default: the socket's directory)\n"
        "      --state-dir DIR        what outlives the broker: the guest\n"
        "                             MAC key, each network's last subnet\n"
        "                             and IPv6 prefix (default %s)\n"
        "  -i, --idle-timeout SECONDS remove unused networks after "
        "SECONDS\n"
        "                             (default %.0f; decimals allowed)\n"
        "      --subnet-pool CIDR     take free /24s from CIDR (/8 to /24;\n"
        "                             default 192.168.64.0-192.168.255.0)\n"
        "      --max-connections-per-user N\n"
        "                             connections one user (not root) may\n"
        "                             hold; more are refused (default %d;\n"
        "                             0: no cap)\n"
        "      --check-config [PATH]  validate the settings file and the\n"
        "                             config directory (or PATH: a\n"
        "                             directory or one network file),\n"
        "                             list its networks and exit\n"
        "      --cleanup              remove every bridge, nftables table,\n"
        "                             dnsmasq and runtime file a broker left\n"
        "                             (refused while a broker runs) and exit\n"
        "  -v, --verbose              log debug messages\n"
        "  -h, --help                 show this help and exit\n"
        "  -V, --version              show the version and exit\n",
        DEFAULT_SOCKET, DEFAULT_CONFIG_DIR, SETTINGS_FILE_DEFAULT,
        STATE_DIR_DEFAULT, DEFAULT_IDLE_SECONDS,
        DEFAULT_MAX_CONNECTIONS_PER_USER);
}

// Returns 0 to run, 1 to exit successfully, -1 on a usage error.
static int parse_options(int argc, char **argv, struct options *options) {
    enum {
        OPT_CHECK_CONFIG = 256,
        OPT_SUBNET_POOL,
        OPT_MAX_CONNECTIONS,
        OPT_CLEANUP,
        OPT_STATE_DIR,
        OPT_CONFIG
    };
    static const struct option long_options[] = {
        {"socket", required_argument, NULL, 's'},
        {"config-dir", required_argument, NULL, 'c'},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"runtime-dir", required_argument, NULL, 'r'},
        {"idle-timeout", required_argument, NULL, 'i'},
        {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
        {"cleanup", no_argument, NULL, OPT_CLEANUP},
        {"state-dir", required_argument, NULL, OPT_STATE_DIR},
        {"subnet-pool", required_argument, NULL, OPT_SUBNET_POOL},
        {"max-connections-per-user", required_argument, NULL,
         OPT_MAX_CONNECTIONS},
        {"state-dir", required_argument, NULL, OPT_STATE_DIR},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;

    options->socket_path = DEFAULT_SOCKET;
    options->config_dir = DEFAULT_CONFIG_DIR;
    options->config_file = SETTINGS_FILE_DEFAULT;
    options->state_dir = STATE_DIR_DEFAULT;
    options->idle_usec = (uint64_t)(DEFAULT_IDLE_SECONDS * 1e6);
    options->max_connections_per_user = DEFAULT_MAX_CONNECTIONS_PER_USER;
    while ((c = getopt_long(argc, argv, "s:c:r:i:vhV", long_options, NULL)) !=
           -1) {
        switch (c) {
        case 's':
            options->socket_path = optarg;
            break;
        case 'c':
            options->config_dir = optarg;
            break;
        case OPT_CONFIG:
            options->config_file = optarg;
            break;
        case 'r':
            options->runtime_dir = optarg;
            break;
        case 'i': {
            char *end = NULL;
            double seconds = strtod(optarg, &end);
            // A year is plenty; beyond it the microsecond count overflows.
            if (end == optarg || *end != '\0' || !isfinite(seconds) ||
                seconds < 0 || seconds > 365.0 * 24 * 3600) {
                fprintf(stderr,
                        "vmnet-broker: invalid --idle-timeout '%s': expected "
                        "seconds, 0 to 31536000\n",
                        optarg);
                return -1;
            }
            options->idle_usec = (uint64_t)(seconds * 1e6);
            options->idle_given = true;
            break;
        }
        case OPT_CHECK_CONFIG:
            options->check_config = true;
            break;
        case OPT_CLEANUP:
            options->cleanup = true;
            break;
        case OPT_STATE_DIR:
            options->state_dir = optarg;
            break;
        case OPT_SUBNET_POOL: {
            uint32_t first, last;
            if (!ipv4_prefix_parse(optarg, &options->subnet_pool) ||
                !subnet_pool_range(options->subnet_pool, &first, &last)) {
                fprintf(stderr,
                        "vmnet-broker: invalid --subnet-pool '%s': expected "
                        "A.B.C.D/LEN with LEN from 8 to 24\n",
                        optarg);
                return -1;
            }
            options->subnet_pool_given = true;
            break;
        }
        case OPT_MAX_CONNECTIONS: {
            char *end = NULL;
            unsigned long n;
            errno = 0;
            n = strtoul(optarg, &end, 10);
            if (end == optarg || *end != '\0' || errno != 0 ||
                optarg[0] == '-' || n > 1000000) {
                fprintf(stderr,
                        "vmnet-broker: invalid --max-connections-per-user "
                        "'%s': expected 0 (no cap) to 1000000\n",
                        optarg);
                return -1;
            }
            options->max_connections_per_user = (unsigned)n;
            options->max_connections_given = true;
            break;
        }
        case 'v':
            options->verbose = true;
            break;
        case 'h':
            usage(stdout);
            return 1;
        case 'V':
            printf("vmnet-broker %s\n", VMNET_BROKER_VERSION);
            return 1;
        default:
            usage(stderr);
            return -1;
        }
    }
    // --check-config takes the file or directory to check, if any.
    if (options->check_config && optind + 1 == argc)
        options->check_path = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "vmnet-broker: unexpected argument '%s'\n",
                argv[optind]);
        return -1;
    }
    return 0;
}

static uint64_t now_usec(struct daemon *d) {
    uint64_t now = 0;
    sd_event_now(d->event, CLOCK_MONOTONIC, &now);
    return now;
}

static uint64_t broker_now(void *ctx) { return now_usec(ctx); }

static void close_sent_fd(void *ctx, int fd) {
    linux_backend_close_sent(ctx, fd);
}

static void arm(sd_event_source *timer, uint64_t when) {
    if (when == NO_DEADLINE) {
        sd_event_source_set_enabled(timer, SD_EVENT_OFF);
        return;
    }
    sd_event_source_set_time(timer, when);
    sd_event_source_set_enabled(timer, SD_EVENT_ONESHOT);
}

// The expiry timer is only ever moved earlier. A later deadline, or none,
// leaves it where it is: it then fires early, finds nothing due and is
// armed again for the real deadline. Every release of a network's last
// peer sets a new deadline, so moving the timer each time would cost a
// timerfd_settime() per connect + acquire + close; this costs one early
// wake-up per idle delay at most.
static void arm_expire(sd_event_source *timer, uint64_t when) {
    int enabled = SD_EVENT_OFF;
    uint64_t armed = 0;

    if (sd_event_source_get_enabled(timer, &enabled) >= 0 &&
        enabled != SD_EVENT_OFF &&
        sd_event_source_get_time(timer, &armed) >= 0 && armed <= when)
        return;
    arm(timer, when);
}

// Peers holding at least one network (an idle connection holds nothing
// and must not block a stop); their labels, as many as fit, in who.
static unsigned holding_peers(const struct daemon *d, char *who, size_t size) {
    unsigned n = 0;
    size_t len = 0;

    if (size > 0)
        who[0] = '\0';
    for (const struct peer *p = broker_peer_first(d->broker); p != NULL;
         p = broker_peer_next(p)) {
        if (peer_get_network_count(p) == 0)
            continue;
        n++;
        if (len < size) {
            int w = snprintf(who + len, size - len, "%s%s", len ? ", " : "",
                             peer_get_label(p));
            len += w > 0 ? (size_t)w : 0;
        }
    }
    return n;
}

// Keeps the timers in step with the broker after every change.
static void state_changed(void *userdata) {
    struct daemon *d = userdata;

    if (d->stop_requested && holding_peers(d, NULL, 0) == 0) {
        log_info("the last peer holding a network has gone: removing "
                 "networks and exiting as asked");
        d->stop_requested = false;
        sd_event_exit(d->event, 0);
        return;
    }
    arm_expire(d->expire_timer, broker_next_deadline(d->broker));
    if (d->activated) {
        bool idle = broker_peer_count(d->broker) == 0 &&
                    broker_network_count(d->broker) == 0;
        uint64_t when = NO_DEADLINE;
        if (idle) {
            // Keep a pending exit deadline; only start a new one.
            int enabled = SD_EVENT_OFF;
            sd_event_source_get_enabled(d->exit_timer, &enabled);
            if (enabled != SD_EVENT_OFF)
                return;
            when = now_usec(d) + d->options.idle_usec;
        }
        arm(d->exit_timer, when);
    }
}

// sd_event_loop() with three additions. The timers follow the broker after
// every event: a backend completion (dnsmasq ready or gone) changes it as
// much as a request does (a post source did this, at the cost of a second
// turn of the loop, epoll_wait() included, for every event). The loop's log
// lines are held and written together (log_hold_lines()): before a reply
// (dispatch.c), or once the oldest is LOG_HOLD_USEC old, and the loop never
// sleeps longer than that with lines held.
static int run_loop(struct daemon *d) {
    sd_event *e = d->event;
    int r = 0, code = 0;

    log_hold_lines(true);
    while (sd_event_get_state(e) != SD_EVENT_FINISHED) {
        uint64_t since = log_held_since(), timeout = UINT64_MAX;

        if (since != 0) {
            struct timespec ts;
            uint64_t now;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
            if (now >= since + LOG_HOLD_USEC)
                log_release();
            else
                timeout = since + LOG_HOLD_USEC - now;
        }
        r = sd_event_prepare(e);
        if (r == 0) {
            r = sd_event_wait(e, timeout);
            if (r == 0) {
                log_release(); // quiet for LOG_HOLD_USEC
                continue;
            }
        }
        if (r > 0)
            r = sd_event_dispatch(e);
        if (r < 0)
            goto out;
        if (sd_event_get_state(e) != SD_EVENT_FINISHED)
            state_changed(d);
    }
    r = sd_event_get_exit_code(e, &code) < 0 ? 0 : code;
out:
    log_hold_lines(false);
    return r;
}

static int on_expire(sd_event_source *s, uint64_t usec, void *userdata) {
    struct daemon *d = userdata;

    (void)s;
    broker_expire(d->broker, usec);
    state_changed(d);
    return 0;
}

static int on_exit_timer(sd_event_source *s, uint64_t usec, void *userdata) {
    struct daemon *d = userdata;

    (void)s;
    (void)usec;
    log_info("idle with no peers and no networks: exiting (socket "
             "activation will start the broker again)");
    return sd_event_exit(d->event, 0);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si,
                     void *userdata) {
    struct daemon *d = userdata;
    char who[512];
    unsigned holders = holding_peers(d, who, sizeof(who));
    const char *name = sigabbrev_np((int)si->ssi_signo);

    (void)s;
    if (holders > 0) {
        // A VM must not lose its network because someone stopped us: the
        // stop is remembered and done once the last holder has gone.
        d->stop_requested = true;
        log_warning("SIG%s: waiting for %u %s holding networks to leave "
                    "before exiting: %s",
                    name, holders, holders == 1 ? "peer" : "peers", who);
        return 0;
    }
    log_info("SIG%s with no peer holding a network: removing networks and "
             "exiting",
             name);
    return sd_event_exit(d->event, 0);
}

static void watch_config_dir(struct daemon *d);

// On the config parser thread: wake the loop.
static void on_config_parsed_thread(void *ctx) {
    struct daemon *d = ctx;
    uint64_t one = 1;

    if (write(d->parsed_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_error("config parser: eventfd: %s", strerror(errno));
}

// On the loop: what the parser published shows, and the requests that
// waited for it are asked again.
static int on_config_parsed(sd_event_source *s, int fd, uint32_t revents,
                            void *userdata) {
    struct daemon *d = userdata;
    uint64_t count;

    (void)s;
    (void)revents;
    if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        log_error("config parser: eventfd: %s", strerror(errno));
    config_dir_parsed(d->configs);
    broker_configs_ready(d->broker);
    state_changed(d);
    return 0;
}

// Config files are parsed (and names resolved) on a thread from now on.
// Without it (no eventfd, no thread) they are parsed on the loop.
static void start_config_parser(struct daemon *d) {
    int r;

    d->parsed_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (d->parsed_fd < 0) {
        log_error("config parser: eventfd: %s; config files are parsed on "
                  "the event loop",
                  strerror(errno));
        return;
    }
    r = sd_event_add_io(d->event, &d->parsed_source, d->parsed_fd, EPOLLIN,
                        on_config_parsed, d);
    if (r >= 0)
        r = config_dir_start_parser(d->configs, on_config_parsed_thread, d);
    if (r < 0) {
        d->parsed_source = sd_event_source_disable_unref(d->parsed_source);
        close(d->parsed_fd);
        d->parsed_fd = -1;
    }
}

static void log_settings_problem(void *ctx, const char *path, int line,
                                 int column, const char *message) {
    (void)ctx;
    log_error("%s:%d:%d: %s", path, line, column, message);
}

// Takes what the settings file sets and the command line does not.
static void apply_settings(struct options *options,
                           const struct broker_settings *settings) {
    if (settings->has_idle_timeout && !options->idle_given)
        options->idle_usec = settings->idle_usec;
    if (settings->has_subnet_pool && !options->subnet_pool_given)
        options->subnet_pool = settings->subnet_pool;
    if (settings->has_max_connections_per_user &&
        !options->max_connections_given)
        options->max_connections_per_user = settings->max_connections_per_user;
}

// SIGHUP: the settings file again. The pool applies to networks created
// from now on; the idle timeout and the connection cap are read at start
// only (said in the log when they changed).
static void reload_settings(struct daemon *d) {
    struct broker_settings settings;
    struct options now = d->options;
    uint32_t first, last;

    if (settings_file_load(d->options.config_file, &settings,
                           log_settings_problem, NULL) > 0) {
        log_warning("%s has problems: the broker keeps its settings",
                    d->options.config_file);
        return;
    }
    // A pool taken out of the file is the default again.
    if (!d->options.subnet_pool_given)
        now.subnet_pool = (struct ipv4_prefix){0};
    apply_settings(&now, &settings);
    if (now.idle_usec != d->options.idle_usec ||
        now.max_connections_per_user != d->options.max_connections_per_user)
        log_warning("%s: idle_timeout and max_connections_per_user apply "
                    "when the broker next starts",
                    d->options.config_file);
    if (!d->options.subnet_pool_given &&
        (now.subnet_pool.address != d->options.subnet_pool.address ||
         now.subnet_pool.len != d->options.subnet_pool.len)) {
        d->options.subnet_pool = now.subnet_pool;
        if (now.subnet_pool.len == 0)
            linux_backend_set_subnet_pool(d->backend, SUBNET_FIRST,
                                          SUBNET_LAST);
        else if (subnet_pool_range(now.subnet_pool, &first, &last))
            linux_backend_set_subnet_pool(d->backend, first, last);
        log_info("%s: new networks take their subnets from %s",
                 d->options.config_file,
                 now.subnet_pool.len == 0 ? "the default pool"
                                          : "the new subnet_pool");
    }
}

// SIGHUP: the configuration is read again for networks created from now
// on; live networks keep the configuration they were created with.
static int on_hangup(sd_event_source *s, const struct signalfd_siginfo *si,
                     void *userdata) {
    struct daemon *d = userdata;

    (void)s;
    (void)si;
    log_info("SIGHUP: reloading %s (live networks keep running)",
             d->options.config_dir);
    // With the parser thread, its problems are logged from there.
    if (!config_dir_reload(d->configs))
        config_dir_log_problems(d->options.config_dir);
    if (d->config_watch == NULL)
        watch_config_dir(d);
    reload_settings(d);
    return 0;
}

static int on_config_change(sd_event_source *s,
                            const struct inotify_event *event, void *userdata) {
    struct daemon *d = userdata;

    config_dir_changed(d->configs);
    if (event->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
        // The directory itself went: the config source watches its stat()
        // from now on (a new directory of that name is seen that way).
        config_dir_set_watched(d->configs, false);
        d->config_watch = sd_event_source_disable_unref(s);
    }
    return 0;
}

// Without a watch (no directory yet, no inotify left) the config source
// compares the directory's stat() instead: it still works, but misses an
// edit in place until that network is next looked up.
static void watch_config_dir(struct daemon *d) {
    int r = sd_event_add_inotify(
        d->event, &d->config_watch, d->options.config_dir,
        IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE |
            IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR,
        on_config_change, d);
    if (r < 0) {
        log_debug("not watching %s (%s): its changes are seen by stat()",
                  d->options.config_dir, strerror(-r));
        return;
    }
    config_dir_set_watched(d->configs, true);
}

static int listen_fd_from_systemd(void) {
    int n = sd_listen_fds(1);
    if (n <= 0)
        return -1;
    if (n > 1)
        log_warning("systemd passed %d sockets; using the first", n);
    if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_SEQPACKET, 1, NULL, 0) <=
        0) {
        log_error("the socket systemd passed is not a listening "
                  "SOCK_SEQPACKET Unix socket");
        return -2;
    }
    return SD_LISTEN_FDS_START;
}

// 1,000 peers need 1,000 descriptors; the default soft limit is 1,024.
static void raise_fd_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 &&
        limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

static void create_persistent_networks(struct daemon *d) {
    char **names = NULL;
    size_t n = 0;

    int r = config_dir_persistent_names(d->options.config_dir, &names, &n);

    if (r < 0) {
        log_error("cannot list persistent networks in %s: %s",
                  d->options.config_dir, strerror(-r));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (broker_create_persistent(d->broker, names[i]) == BROKER_OK)
            log_info("persistent network '%s' is up", names[i]);
    }
    config_dir_free_names(names, n);
}

// A network's health changed (linux_backend_set_health_changed()): the
// shared status is built again.
static void on_backend_changed(void *ctx) {
    struct daemon *d = ctx;
    if (d->broker != NULL)
        broker_backend_changed(d->broker);
}

static void on_tap_tampered(void *ctx, const char *ifname, const char *what) {
    struct daemon *d = ctx;
    if (d->broker != NULL)
        broker_interface_report(d->broker, ifname, what);
}

#define LOCK_FILE "vmnet-broker.lock"

// One broker per runtime directory: the lock file is opened relative to
// the directory's descriptor (never through a link) and flock()ed for as
// long as we live, so the kernel releases it however we end. Returns 0,
// or -EEXIST (logged with the holder's pid) when another broker holds it.
static int take_instance_lock(struct daemon *d, int dir_fd, const char *dir) {
    char text[32];
    ssize_t n;
    int fd =
        openat(dir_fd, LOCK_FILE,
               O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
    int r = 0;

    if (fd < 0) {
        r = -errno;
        log_error("cannot open the lock file %s/%s: %s", dir, LOCK_FILE,
                  strerror(errno));
        goto out;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        r = errno == EWOULDBLOCK ? -EEXIST : -errno;
        n = pread(fd, text, sizeof(text) - 1, 0);
        text[n > 0 ? n : 0] = '\0';
        text[strcspn(text, "\n")] = '\0';
        if (r == -EEXIST)
            log_error("another broker (pid %s) already runs on the runtime "
                      "directory %s: exiting without changing anything",
                      text[0] != '\0' ? text : "unknown", dir);
        else
            log_error("cannot lock %s/%s: %s", dir, LOCK_FILE, strerror(-r));
        close(fd);
        goto out;
    }
    // For the message above, seen by the next broker that tries.
    n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t)n, 0) != n)
        log_warning("cannot write our pid into %s/%s", dir, LOCK_FILE);
    d->lock_fd = fd;
out:
    return r;
}

// True when a broker answers on path: a broker with another runtime
// directory may listen on our socket, and binding over it would steal it.
static bool socket_has_listener(const char *path) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd;
    bool live;

    if (strlen(path) >= sizeof(addr.sun_path))
        return false;
    memcpy(addr.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    live = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 ||
           errno == EAGAIN;
    close(fd);
    return live;
}

// Opens the socket's and the runtime directory (checked: see
// runtime_dir_open()), takes the instance lock and makes sure no broker
// listens on the socket. Nothing is changed before this succeeds.
// socket_dir and runtime_dir (PATH_MAX each) receive the directories.
// Returns 0 or a negative errno (logged; -EEXIST: another broker runs).
static int claim_instance(struct daemon *d, char *socket_dir,
                          char *runtime_dir) {
    char why[PATH_MAX + 256];
    int r;

    // Beside the socket: /run/vmnet-broker by default, and a private
    // directory for a broker started on a private socket (tests).
    {
        const char *slash = strrchr(d->options.socket_path, '/');
        size_t len =
            slash == NULL ? 0 : (size_t)(slash - d->options.socket_path);
        snprintf(socket_dir, PATH_MAX, "%.*s", (int)len,
                 d->options.socket_path);
        if (len == 0)
            snprintf(socket_dir, PATH_MAX, "%s", slash == NULL ? "." : "/");
    }
    snprintf(runtime_dir, PATH_MAX, "%s",
             d->options.runtime_dir != NULL ? d->options.runtime_dir
                                            : socket_dir);

    // Before anything is made or removed there (stale dnsmasq files are,
    // next): a directory another user can write lets them plant links.
    if (!d->activated) {
        r = runtime_dir_open(socket_dir, true, why, sizeof(why));
        if (r < 0) {
            log_error("refusing the socket's directory: %s", why);
            goto out;
        }
        d->socket_dir_fd = r;
    }
    r = runtime_dir_open(runtime_dir, true, why, sizeof(why));
    if (r == -EPERM || r == -ELOOP) {
        log_error("refusing the runtime directory: %s", why);
        goto out;
    }
    // Merely unusable (a file in its place): networks that need dnsmasq
    // fail to be created, each with its reason; the others still work.
    if (r < 0)
        log_error("runtime directory unusable: %s", why);
    d->runtime_dir_fd = r < 0 ? -1 : r;

    // Before crash recovery removes anything: bridges, the table and
    // dnsmasq processes of a live broker are not stale.
    if (d->runtime_dir_fd >= 0)
        r = take_instance_lock(d, d->runtime_dir_fd, runtime_dir);
    else if (d->socket_dir_fd >= 0)
        r = take_instance_lock(d, d->socket_dir_fd, socket_dir);
    else
        r = 0;
    if (r < 0)
        goto out;
    if (!d->activated && socket_has_listener(d->options.socket_path)) {
        log_error("another broker already listens on %s: exiting without "
                  "changing anything",
                  d->options.socket_path);
        r = -EEXIST;
        goto out;
    }
    // Before anything is looked for or made: which bridges, TAPs and table
    // are this instance's (another runtime directory's broker has its own).
    r = linux_instance_init(runtime_dir, getenv(LINUX_INSTANCE_ENV));
    if (r < 0) {
        log_error("%s must be \"default\" or %d lowercase hex digits",
                  LINUX_INSTANCE_ENV, LINUX_INSTANCE_ID_LEN);
        goto out;
    }
    log_info("instance %s: bridges %s*, nftables table %s",
             linux_instance_id()[0] != '\0' ? linux_instance_id() : "default",
             linux_instance_bridge_prefix(), linux_instance_table());
out:
    return r;
}

// Closes what claim_instance() opened. The lock file is left in place:
// removing it would race with a broker starting now.
static void release_instance(struct daemon *d) {
    if (d->socket_dir_fd >= 0)
        close(d->socket_dir_fd);
    if (d->runtime_dir_fd >= 0)
        close(d->runtime_dir_fd);
    if (d->lock_fd >= 0)
        close(d->lock_fd);
}

// --cleanup: removes everything a broker left (its marked bridges, its
// nftables table, its dnsmasq processes and their files, its state file and
// socket), for an administrator who wants the host clean. Refuses, and
// changes nothing, while a broker runs. Returns the exit status.
static int cleanup(struct daemon *d) {
    struct linux_backend *backend = NULL;
    struct firewall *fw = NULL;
    char runtime_dir[PATH_MAX];
    char socket_dir[PATH_MAX];
    const char *name = strrchr(d->options.socket_path, '/');
    struct stat st;
    int bridges, killed, r;

    r = claim_instance(d, socket_dir, runtime_dir);
    if (r < 0)
        goto out;
    r = linux_backend_new(&backend);
    if (r < 0) {
        log_error("cannot open netlink: %s", strerror(-r));
        goto out;
    }
    bridges = linux_backend_remove_stale(backend);
    killed = dnsmasq_remove_stale(runtime_dir);
    // firewall_new() replaces the table, whether there or not, and
    // firewall_free() deletes it.
    r = firewall_new(&fw);
    if (r < 0)
        goto out;
    firewall_free(fw);
    name = name == NULL ? d->options.socket_path : name + 1;
    // A socket only (never what a link points at): a killed broker's.
    if (d->socket_dir_fd >= 0 &&
        fstatat(d->socket_dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISSOCK(st.st_mode))
        unlinkat(d->socket_dir_fd, name, 0);
    // The lock file stays: a broker starting now may have it open already,
    // and would lock a file no later broker sees if it were unlinked.
    // Nothing is left to adopt.
    if (d->runtime_dir_fd >= 0)
        unlinkat(d->runtime_dir_fd, NETWORKS_STATE_FILE, 0);
    log_info("cleanup: removed %d bridge%s, %d dnsmasq, the nftables table "
             "and the runtime files in %s",
             bridges, bridges == 1 ? "" : "s", killed, runtime_dir);
out:
    linux_backend_free(backend);
    release_instance(d);
    log_flush();
    return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

// Without a usable state directory the broker still works; networks then
// get a new subnet and IPv6 prefix each time they are created.
static void open_state_dir(struct daemon *d) {
    char why[PATH_MAX + 256];
    struct stable_addresses *stable;
    int fd = runtime_dir_open(d->options.state_dir, true, why, sizeof(why));

    if (fd < 0) {
        log_error("state directory not used (addresses will not be stable "
                  "across re-creation): %s",
                  why);
        return;
    }
    stable = stable_addresses_load(fd, d->options.state_dir);
    if (stable == NULL) {
        close(fd);
        return;
    }
    linux_backend_set_stable_addresses(d->backend, stable);
}

// A network's bridge got its first port or lost its last.
static void ports_changed(void *ctx, const char *network, bool has_ports) {
    struct daemon *d = ctx;
    broker_network_ports_changed(d->broker, network, has_ports, now_usec(d));
}

static int adopt_network(void *ctx, const struct network_config *config,
                         const struct network_info *info, void *handle,
                         bool has_ports) {
    struct daemon *d = ctx;
    return broker_adopt(d->broker, config, info, handle, has_ports,
                        now_usec(d));
}

static void adopt_interface(void *ctx, uint32_t uid, const char *network,
                            unsigned index, const char *ifname) {
    struct daemon *d = ctx;
    broker_adopt_interface(d->broker, uid, network, index, ifname);
}

static const struct linux_adopt_ops adopt_ops = {
    .network = adopt_network,
    .interface = adopt_interface,
};

static int run(struct daemon *d) {
    struct broker_options broker_options = {0};
    struct unix_server_options server_options = {0};
    struct linux_backend_services services = {0};
    char runtime_dir[PATH_MAX];
    char socket_dir[PATH_MAX];
    sigset_t mask;
    int listen_fd, r;

    listen_fd = listen_fd_from_systemd();
    if (listen_fd == -2) {
        r = -EINVAL;
        goto out;
    }
    d->activated = listen_fd >= 0;
    r = claim_instance(d, socket_dir, runtime_dir);
    if (r < 0)
        goto out;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    // dnsmasq children are watched with sd_event_add_child.
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    r = sd_event_default(&d->event);
    if (r < 0)
        goto out;
    r = sd_event_add_signal(d->event, NULL, SIGTERM, on_signal, d);
    if (r < 0)
        goto out;
    r = sd_event_add_signal(d->event, NULL, SIGINT, on_signal, d);
    if (r < 0)
        goto out;
    r = sd_event_add_signal(d->event, NULL, SIGHUP, on_hangup, d);
    if (r < 0)
        goto out;
    // 1 us accuracy: sd-event's default (250 ms) would keep an idle
    // network up to a quarter second past its delay, and even 1 ms lets it
    // fire up to 1 ms late (a fifth of the 5 ms teardown goal). One timer,
    // armed once per deadline: nothing to coalesce.
    r = sd_event_add_time(d->event, &d->expire_timer, CLOCK_MONOTONIC,
                          UINT64_MAX, 1, on_expire, d);
    if (r < 0)
        goto out;
    r = sd_event_add_time(d->event, &d->exit_timer, CLOCK_MONOTONIC, UINT64_MAX,
                          0, on_exit_timer, d);
    if (r < 0)
        goto out;
    sd_event_source_set_enabled(d->expire_timer, SD_EVENT_OFF);
    sd_event_source_set_enabled(d->exit_timer, SD_EVENT_OFF);

    r = linux_backend_new(&d->backend);
    if (r < 0) {
        log_error("cannot open netlink: %s", strerror(-r));
        goto out;
    }
    // What a previous broker left is adopted or removed when the services
    // are enabled below, once the configuration can be read.
    {
        uint8_t key[GUEST_MAC_KEY_LEN];
        r = state_dir_mac_key(d->options.state_dir, key);
        if (r < 0)
            goto out;
        linux_backend_set_mac_key(d->backend, key);
    }
    open_state_dir(d);
    if (d->options.subnet_pool.len != 0) {
        uint32_t first, last;
        subnet_pool_range(d->options.subnet_pool, &first, &last);
        linux_backend_set_subnet_pool(d->backend, first, last);
    }
    r = -ENOMEM;
    d->configs = config_dir_new(d->options.config_dir);
    if (d->configs == NULL)
        goto out;
    linux_backend_set_health_changed(d->backend, on_backend_changed, d);
    services.event = d->event;
    services.runtime_dir = runtime_dir;
    services.runtime_dir_fd = d->runtime_dir_fd;
    services.configs = &config_dir_ops;
    services.configs_ctx = d->configs;
    // For tests: a wrapper that delays or breaks dnsmasq.
    services.dnsmasq_path = getenv("VMNET_BROKER_DNSMASQ");
    r = linux_backend_enable_services(d->backend, &services);
    if (r < 0) {
        // Most often: no nf_tables in the kernel, or no nftables library.
        log_error("cannot set up the nftables table: does the kernel have "
                  "nf_tables ('modprobe nf_tables'; Debian packages nftables "
                  "and libnftables1)?");
        goto out;
    }
    r = tap_watch_new(d->event, on_tap_tampered, d, &d->tap_watch);
    if (r < 0)
        goto out;
    r = -ENOMEM;
    watch_config_dir(d);
    broker_options.backend = &linux_backend_ops;
    broker_options.backend_ctx = d->backend;
    broker_options.configs = &config_dir_ops;
    broker_options.configs_ctx = d->configs;
    broker_options.idle_usec = d->options.idle_usec;
    broker_options.now = broker_now;
    broker_options.now_ctx = d;
    d->broker = broker_new(&broker_options);
    if (d->broker == NULL)
        goto out;
    linux_backend_set_ports_watch(d->backend, ports_changed, d);
    linux_backend_hand_over(d->backend, &adopt_ops, d);

    server_options.event = d->event;
    server_options.broker = d->broker;
    server_options.listen_fd = listen_fd;
    server_options.path = d->options.socket_path;
    server_options.dir_fd = d->socket_dir_fd;
    server_options.max_connections_per_user =
        d->options.max_connections_per_user;
    server_options.changed = state_changed;
    server_options.changed_ctx = d;
    server_options.close_fd = close_sent_fd;
    server_options.close_fd_ctx = d->backend;
    r = unix_server_new(&server_options, &d->server);
    if (r < 0)
        goto out;

    create_persistent_networks(d);
    start_config_parser(d);
    log_info("listening on %s (config %s, idle timeout %.3gs)",
             d->activated ? "the socket from systemd" : d->options.socket_path,
             d->options.config_dir, (double)d->options.idle_usec / 1e6);
    state_changed(d);
    sd_notify(0, "READY=1\nSTATUS=Serving networks");

    r = run_loop(d);
    sd_notify(0, "STOPPING=1");
out:
    // -EEXIST: another broker runs, already said.
    if (r < 0 && r != -EEXIST)
        log_error("fatal: %s", strerror(-r));
    tap_watch_free(d->tap_watch);
    // Peers first (dropping references), then every network.
    unix_server_free(d->server);
    broker_free(d->broker);
    sd_event_source_disable_unref(d->config_watch);
    // Joins the parser thread, the last writer of parsed_fd.
    config_dir_free(d->configs);
    sd_event_source_disable_unref(d->parsed_source);
    if (d->parsed_fd >= 0)
        close(d->parsed_fd);
    linux_backend_free(d->backend);
    sd_event_source_disable_unref(d->expire_timer);
    sd_event_source_disable_unref(d->exit_timer);
    sd_event_unref(d->event);
    release_instance(d);
    log_flush();
    return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

// True when the process may administer the network: root, or
// CAP_NET_ADMIN in its effective set (a systemd unit or setcap may grant
// it alone). Read from /proc so that no libcap is needed.
static bool has_net_admin(void) {
    FILE *status;
    char line[256];
    unsigned long long effective = 0;
    bool found = false;

    if (geteuid() == 0)
        return true;
    status = fopen("/proc/self/status", "re");
    if (status == NULL)
        return false;
    while (!found && fgets(line, sizeof(line), status) != NULL)
        found = sscanf(line, "CapEff: %llx", &effective) == 1;
    fclose(status);
    return found && (effective >> CAP_NET_ADMIN_BIT) & 1;
}

// What the broker cannot work without, checked before anything is made so
// that each missing piece is named in one line with its fix.
static bool startup_checks(void) {
    const char *dnsmasq = getenv("VMNET_BROKER_DNSMASQ");
    bool ok = true;

    if (!has_net_admin()) {
        log_error("needs root or CAP_NET_ADMIN to make bridges, nftables "
                  "rules and TAP devices (running as uid %lu): start it as "
                  "root, or with 'systemctl start vmnet-broker.socket'",
                  (unsigned long)geteuid());
        ok = false;
    }
    // The tests' wrapper (VMNET_BROKER_DNSMASQ) stands in for dnsmasq.
    if (dnsmasq == NULL || dnsmasq[0] == '\0')
        dnsmasq = DNSMASQ_PATH;
    if (access(dnsmasq, X_OK) != 0) {
        log_error("%s: %s: networks need dnsmasq for DHCP and DNS: install "
                  "the Debian package dnsmasq-base",
                  dnsmasq, strerror(errno));
        ok = false;
    }
    return ok;
}

// --check-config: every problem in each file, then across files, then the
// networks found. Returns the exit status.
static void print_settings_problem(void *ctx, const char *path, int line,
                                   int column, const char *message) {
    (void)ctx;
    printf("%s:%d:%d: %s\n", path, line, column, message);
}

static int check_config(const char *path, const char *settings_path) {
    struct network_config *configs = NULL;
    struct broker_settings settings;
    size_t n = 0;
    struct stat st;
    int problems;
    int settings_problems = settings_file_load(settings_path, &settings,
                                               print_settings_problem, NULL);
    bool one_file = stat(path, &st) == 0 && !S_ISDIR(st.st_mode);

    if (settings_problems > 0)
        printf("%s: %d problem%s\n", settings_path, settings_problems,
               settings_problems == 1 ? "" : "s");
    else if (access(settings_path, F_OK) == 0)
        printf("%s: settings OK\n", settings_path);
    if (one_file) {
        problems = config_dir_check_file(path, stdout);
    } else {
        problems = config_dir_check(path, stdout);
        if (config_dir_list_configs(path, &configs, &n) != BROKER_OK) {
            printf("%s: out of memory\n", path);
            problems++;
        }
        problems += config_check_across(configs, n, stdout);
        if (n > 0) {
            printf("%s: %zu network%s with a valid configuration:\n", path, n,
                   n == 1 ? "" : "s");
            config_print_networks(configs, n, stdout);
        }
    }
    free(configs);
    if (problems > 0) {
        printf("%s: %d problem%s\n", path, problems, problems == 1 ? "" : "s");
        return EXIT_FAILURE;
    }
    printf("%s: configuration OK\n", path);
    return settings_problems > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

int main(int argc, char **argv) {
    struct daemon daemon = {.socket_dir_fd = -1,
                            .runtime_dir_fd = -1,
                            .lock_fd = -1,
                            .parsed_fd = -1};
    int r = parse_options(argc, argv, &daemon.options);

    if (r != 0)
        return r > 0 ? EXIT_SUCCESS : 2;
    if (daemon.options.check_config)
        return check_config(daemon.options.check_path != NULL
                                ? daemon.options.check_path
                                : daemon.options.config_dir,
                            daemon.options.config_file);
    log_set_level(daemon.options.verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
    if (!startup_checks()) {
        // Lines to a pipe go through the log's thread: let them out.
        log_flush();
        return EXIT_FAILURE;
    }
    if (daemon.options.cleanup)
        return cleanup(&daemon);
    {
        // Before anything is set up: a broken settings file is the
        // administrator's to fix, not to guess around.
        struct broker_settings settings;
        if (settings_file_load(daemon.options.config_file, &settings,
                               log_settings_problem, NULL) > 0) {
            log_error("%s has problems; not starting (vmnet-broker "
                      "--check-config lists them)",
                      daemon.options.config_file);
            log_flush();
            return EXIT_FAILURE;
        }
        apply_settings(&daemon.options, &settings);
    }
    return run(&daemon);
}
