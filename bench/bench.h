// SPDX-License-Identifier: Apache-2.0
// The benchmark's parts: timing, the echo baseline, the broker, the table.
#ifndef VMNET_BROKER_BENCH_H
#define VMNET_BROKER_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

// ---- Samples (samples.c) ---------------------------------------------------

// Durations of one kind of operation, in nanoseconds.
struct samples {
    uint64_t *ns;
    size_t n;
    size_t capacity;
};

struct summary {
    size_t n;
    double median_us;
    double p99_us;
    // Operations per second of measured time (n over the sum of samples).
    double per_second;
};

// One timed operation; returns false when it failed.
typedef bool (*bench_op)(void *ctx);

bool samples_init(struct samples *samples, size_t capacity);
void samples_free(struct samples *samples);
// Monotonic nanoseconds.
uint64_t bench_now_ns(void);
// Runs op n times untimed. Returns false at the first failure.
bool bench_warm_up(bench_op op, void *ctx, size_t n);
// Runs op n times, adding each duration to samples (at most its capacity).
// Returns false at the first failure.
bool samples_measure(struct samples *samples, bench_op op, void *ctx, size_t n);
// Median, 99th percentile and rate of samples; all zero when empty.
struct summary samples_summarize(const struct samples *samples);

// ---- Unix SOCK_SEQPACKET exchanges (exchange.c) -----------------------------

// One request sent, one reply of a known length expected: the same shape
// for the echo baseline and for the broker spoken to without the library.
struct exchange {
    const char *socket_path;
    int fd; // -1 when not connected
    const char *request;
    size_t request_len;
    size_t reply_len;
};

// A SOCK_SEQPACKET connection to path, or -1.
int exchange_connect(const char *path);
// Sends the request on the open connection and receives a reply of exactly
// reply_len bytes.
bool exchange_round_trip(void *exchange);
// Connects, makes one round trip and closes.
bool exchange_cycle(void *exchange);

// ---- The echo server (echo_server.c) ----------------------------------------

struct echo_server {
    pid_t pid; // 0 when not running
    char dir[64];
    char socket_path[96];
};

// Forks a server listening in a new temporary directory that answers every
// datagram with reply (len bytes), one event loop for every connection, as
// the broker's. Returns false on failure.
bool echo_server_start(struct echo_server *server, const char *reply,
                       size_t len);
// Kills the server and removes its directory. Accepts a server never
// started.
void echo_server_stop(struct echo_server *server);

// ---- The broker process (broker_process.c) ----------------------------------

struct broker_process {
    pid_t pid; // 0 when not running
    char dir[64];
    char socket_path[96];
    char config_dir[96];
    char log_path[96];
    unsigned configured; // networks written as net1..netN
    const char *idle;    // --idle-timeout; NULL: longer than the run
    const char *binary;  // the broker, for --cleanup once it is stopped
};

// Starts binary with its socket, config directory (holding `configured`
// shared networks net1..netN) and log in a new temporary directory.
// Returns true once its socket accepts connections.
bool broker_process_start(struct broker_process *broker, const char *binary,
                          unsigned configured);
// Asks the broker to exit (SIGTERM: it removes its networks when it has no
// peers), kills it if it does not, and removes the directory. Returns true
// if it exited 0 by itself. Accepts a broker never started.
bool broker_process_stop(struct broker_process *broker);
// Copies the end of the broker's log to stderr, to explain a failure.
void broker_process_show_log(const struct broker_process *broker);
// Waits (up to 20 s) until the broker reports exactly `expected` peers
// besides the connection asking.
bool broker_process_wait_peers(const struct broker_process *broker,
                               long expected);
// Peers holding network name in the broker's status; -1 on failure.
long broker_process_network_peers(const struct broker_process *broker,
                                  const char *name);

// ---- Process memory (proc_memory.c) -----------------------------------------

struct proc_memory {
    long rss_kib;           // VmRSS, /proc/PID/status
    long pss_kib;           // Pss, /proc/PID/smaps_rollup
    long private_dirty_kib; // Private_Dirty, /proc/PID/smaps_rollup
};

bool proc_memory_read(pid_t pid, struct proc_memory *memory);

// ---- Process CPU time (proc_cpu.c) ------------------------------------------

// Time the process's main thread has spent on a CPU, in nanoseconds.
bool proc_cpu_ns(pid_t pid, uint64_t *ns);

// ---- A bridge made directly over netlink (bare_bridge.c) --------------------

struct nl_sock;

// A NETLINK_ROUTE socket, or NULL.
struct nl_sock *bare_bridge_socket(void);
void bare_bridge_socket_free(struct nl_sock *sock);
// What the broker's bridge amounts to in the kernel: bridge `name`, address
// 10.200.index.1/24 on it, link up. Returns false on failure.
bool bare_bridge_create(struct nl_sock *sock, const char *name, unsigned index);
bool bare_bridge_delete(struct nl_sock *sock, const char *name);
// Makes link port_ifindex a port of bridge_ifindex (0: of no bridge) and
// brings it up, in one request.
bool bare_bridge_set_port(struct nl_sock *sock, int port_ifindex,
                          int bridge_ifindex);

// ---- A TAP device made in-process (bare_tap.c) ------------------------------

// What open_interface amounts to in the kernel: TAP device "btapINDEX"
// (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR) made a port of bridge_ifindex and
// brought up. Returns its descriptor (closing it removes the device), or -1.
int bare_tap_open(struct nl_sock *sock, unsigned index, int bridge_ifindex);

// ---- dnsmasq started by hand (bare_dnsmasq.c) -------------------------------

struct bare_dnsmasq {
    pid_t pid; // 0 when not running
    char dir[64];
};

// Starts dnsmasq in a new temporary directory on the bare bridge made by
// bare_bridge_create(bridge, index), with the broker's IPv4 options (DHCP
// over the rest of the /24, DNS on the gateway). Returns once it has bound
// its sockets (its pid file is written), as the broker waits for its own.
bool bare_dnsmasq_start(struct bare_dnsmasq *dnsmasq, const char *bridge,
                        unsigned index);
// Kills it and removes its directory. Accepts one never started.
void bare_dnsmasq_stop(struct bare_dnsmasq *dnsmasq);

// ---- Network namespaces (netns.c) -------------------------------------------

// A namespace lives as long as its holder, a child that does nothing else:
// no name under /run/netns, and a bench that dies takes its holders (and so
// its namespaces) with it. `ip ... netns PID` reaches it by the holder's pid.
struct netns {
    pid_t holder; // 0 when none
};

// Makes a namespace with lo up. Returns false on failure.
bool netns_new(struct netns *ns);
// Kills the holder: the namespace and its links go once nothing else runs
// in it. Accepts a namespace never made.
void netns_free(struct netns *ns);
// Starts argv (argv[0] looked up in PATH) in ns (NULL: the bench's own),
// its stdout and stderr on a pipe whose read end is stored in *output_fd.
// The process dies with the bench. Returns its pid, or -1.
pid_t netns_spawn(const struct netns *ns, const char *const *argv,
                  int *output_fd);
// Waits until deadline_ns (bench_now_ns()) for pid to exit, killing it
// then. Returns its exit code, or -1 if it was killed or did not exit.
int netns_wait(pid_t pid, uint64_t deadline_ns);
// Kills pid and reaps it. Accepts 0.
void netns_kill(pid_t pid);
// Reads fd until a line holding needle arrives, and copies that line from
// needle on (without the newline) into line. False at EOF or deadline_ns.
bool netns_read_line(int fd, const char *needle, uint64_t deadline_ns,
                     char *line, size_t size);
// Runs argv in ns for at most seconds, its output (stdout and stderr)
// copied into output when not NULL. Returns its exit code, or -1.
int netns_run(const struct netns *ns, const char *const *argv, double seconds,
              char *output, size_t size);
// Runs the command line built from format with sh in ns; true if it
// succeeded, else says on stderr what failed.
__attribute__((format(printf, 2, 3))) bool netns_shell(const struct netns *ns,
                                                       const char *format, ...);
// Waits until link in ns is in "state UP": before that its queue drops
// every packet sent.
bool netns_wait_link_up(const struct netns *ns, const char *link);
// Whether name is an executable in the PATH the bench gives its children.
bool netns_program_exists(const char *name);

// ---- A guest's DHCP client (dhcp_client.c) ----------------------------------

struct dhcp_client {
    char dir[64];
    char script[96];
};

// Writes the client's script into a new temporary directory.
bool dhcp_client_init(struct dhcp_client *client);
// Removes it. Accepts a client never made.
void dhcp_client_free(struct dhcp_client *client);
// Runs busybox udhcpc on link in guest until it holds a lease, which it
// configures (address and default route). Stores when the lease arrived
// (bench_now_ns(), before it is configured) in *leased_ns and its address
// in address. False if no lease came.
bool dhcp_client_lease(const struct dhcp_client *client,
                       const struct netns *guest, const char *link,
                       uint64_t *leased_ns, char address[16]);

// ---- The results (table.c)
// ----------------------------------------------------

// Adds a section heading.
void table_section(const char *title);
// Adds a row; value, baseline and verdict are printf formats' results.
void table_row(const char *metric, const char *value, const char *baseline,
               const char *verdict);
// Prints every row to stdout, aligned, and forgets them.
void table_print(void);

// ---- CPU placement (placement.c)
// ---------------------------------------------

// On a machine with few CPUs a round trip costs mostly context switches
// when client and server share a CPU, and mostly the wake-up of an idle CPU
// when they do not; the scheduler picks one or the other for a whole run.
// Measured both ways, baseline and broker are compared under the same one.
enum placement {
    // Wherever the scheduler puts them.
    PLACEMENT_SCHEDULED,
    // Client and server on the first CPU the bench may use.
    PLACEMENT_ONE_CPU,
    // Client on the first, server on the second.
    PLACEMENT_TWO_CPUS,
};
#define PLACEMENTS 3

// How many placements this machine allows, in enum order (the last needs
// two CPUs).
size_t placement_count(void);
// Restricts the bench (the client) and the n servers to placement, and
// writes its description into title. PLACEMENT_SCHEDULED lifts every
// restriction. Returns false if the affinity cannot be set.
bool placement_apply(enum placement placement, const pid_t *servers, size_t n,
                     char *title, size_t size);

// ---- The measurements (one file each) ---------------------------------------

struct bench {
    const char *broker_binary;
    struct broker_process broker;
    struct echo_server echo;
    // The broker's exact acquire request and reply, which the echo baseline
    // sends and answers so both move the same bytes.
    char request[128];
    size_t request_len;
    char reply[4096];
    size_t reply_len;
};

// Resident memory idle and with 1,000 peers holding `shared`.
bool bench_memory(struct bench *bench);
// Acquire round trips of a held network against bare echo round trips,
// with client and servers placed as described by placement.
bool bench_round_trip(struct bench *bench, const char *placement);
// Connect, acquire and close cycles against connect, echo and close.
bool bench_cycles(struct bench *bench, const char *placement);
// Creation of networks that do not exist yet against bare bridges.
bool bench_creation(struct bench *bench);
// Networks net1..net20 are bench_creation()'s; the next DHCP_CREATIONS are
// bench_network_creation()'s.
#define CREATIONS 20
#define DHCP_CREATIONS 5
// Creation of networks until a guest's DHCP client holds a lease, against
// a bare bridge with dnsmasq started by hand.
bool bench_network_creation(struct bench *bench);
// open_interface round trips against acquire and against a TAP device made
// in-process.
bool bench_open_interface(struct bench *bench);
// iperf3 between guests, and from a guest to the outside, through the
// broker's bridge against bare veth pairs.
bool bench_throughput(struct bench *bench);

// The event loop under load (issue 10): status round trips while other
// clients churn and while 2,000 idle and 8 non-reading connections are
// open, 64 simultaneous acquirers of one new network, teardown after the
// idle delay, and as many networks as the default pool holds.
bool bench_loop(struct bench *bench);

// Formats value / baseline as "1.23x" into buf.
const char *format_ratio(char *buf, size_t size, double value, double baseline);

#endif
