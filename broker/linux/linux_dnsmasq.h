// SPDX-License-Identifier: Apache-2.0
// Supervised dnsmasq: one per network (DHCPv4, DNS), and one per broker that
// sends every network's router advertisements.
#ifndef VMNET_BROKER_LINUX_LINUX_DNSMASQ_H
#define VMNET_BROKER_LINUX_LINUX_DNSMASQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "core/backend.h"
#include "core/network_config.h"

struct dnsmasq;

// status: 0 once dnsmasq has bound its sockets, else a negative errno (the
// process is gone then; dnsmasq_stop() frees what is left).
typedef void (*dnsmasq_ready_fn)(void *data, int status);
typedef void (*dnsmasq_stopped_fn)(void *data);

struct dnsmasq_options {
    // Where the child is watched (sd_event_add_child): SIGCHLD must be
    // blocked in every thread before dnsmasq_spawn() is called. Restarts
    // after a crash (at most one a second) are watched from this loop; they
    // spawn through offload below when it is set.
    sd_event *event;
    // An absolute path such as /run/vmnet-broker, created if missing. The
    // network's files (dnsmasq.conf, .leases, .pid, .log) live in
    // <runtime_dir>/<network name>/, a directory owned by this module.
    const char *runtime_dir;
    // NULL means "/usr/sbin/dnsmasq".
    const char *dnsmasq_path;
    // Optional: called (with health_ctx) when dnsmasq_failed() changes.
    void (*health_changed)(void *ctx);
    void *health_ctx;
    // Optional: where a restart's spawn runs, so that the loop never waits
    // for it (the backend's worker). offload(offload_ctx, run, done, arg)
    // calls run(arg) on any thread, then done(arg) on the loop's thread;
    // run always runs. done may be dropped (the worker drained at exit): a
    // dnsmasq_stop() or dnsmasq_leave() while a spawn is in flight must
    // come after that drop (it waits for run, then ends or leaves what run
    // started), never before done. NULL: restarts spawn on the loop.
    void (*offload)(void *ctx, void (*run)(void *arg), void (*done)(void *arg),
                    void *arg);
    void *offload_ctx;
    // Optional: closes fd on another thread. Closing the inotify instance
    // of the readiness watch waits for the kernel to reap its marks (an
    // SRCU grace period: 7-30 ms seen on a loaded 2-CPU machine), which
    // the loop must not. NULL: closed on the loop.
    void (*close_fd)(void *ctx, int fd);
    void *close_fd_ctx;
};

// Starts the network's dnsmasq on info->bridge: DNS on the addresses the
// bridge has when it starts, the gateways (when info->dns is set, which
// guests are told to use), and DHCPv4 over info's range with config's
// reservations (when info->dhcp). No router advertisement and no DHCPv6:
// those are the broker's one instance's (dnsmasq_radv_spawn()); info->ipv6
// needs a /64. In two halves, so that the one that takes time (files, the
// spawn) runs off the event loop:
//
// dnsmasq_spawn() writes the network's directory and files and starts the
// process; it touches nothing of the event loop's and may run on any
// thread (the backend's worker). Returns 0 and stores the handle in *out
// once the process runs, else a negative errno, logging why and leaving no
// process and no file behind (*out untouched). A directory left for this
// network by a previous broker is treated as stale: its dnsmasq is killed
// and its files removed first.
int dnsmasq_spawn(const struct dnsmasq_options *options,
                  const struct network_config *config,
                  const struct network_info *info, struct dnsmasq **out);

// dnsmasq_watch(), on the loop's thread, then watches the spawned process
// (its child watch and readiness) and never waits: ready(data, 0) follows
// from the event loop once dnsmasq has bound its sockets (it wrote its pid
// file), or ready(data, -errno) when it exits first or is not ready within
// 5 s (logged with dnsmasq's last output). Returns 0, or a negative errno
// (logged) after killing the process; ready is then never called and
// dnsmasq_stop() frees d. Either way d is freed with dnsmasq_stop() or
// dnsmasq_stop_async(); one not watched yet only with dnsmasq_stop().
int dnsmasq_watch(struct dnsmasq *d, dnsmasq_ready_fn ready, void *data);

// The directory (under the runtime directory) of the router advertisement
// instance: no network name starts with '_'.
#define DNSMASQ_RADV_NAME "_radv"

// As dnsmasq_spawn(), the broker's one dnsmasq for router advertisements
// (stateless: SLAAC in each bridge's /64, the bridge's MTU, a default route,
// and the bridge's address in its prefix as DNS server, by RDNSS and
// stateless DHCPv6) on every bridge whose name starts with bridge_prefix
// (linux_instance_bridge_prefix(): lowercase letters, digits and '-') and
// that has an IPv6 address besides its link-local one, as such bridges and
// addresses come and go. No DNS, no DHCPv4. Its files are in
// <runtime_dir>/DNSMASQ_RADV_NAME/. Watched, restarted, stopped and left
// like a network's, with the same calls.
int dnsmasq_radv_spawn(const struct dnsmasq_options *options,
                       const char *bridge_prefix, struct dnsmasq **out);

// Both halves on the loop's thread: dnsmasq_spawn() then dnsmasq_watch(),
// with their results; on failure nothing is left and ready is never called.
int dnsmasq_start(const struct dnsmasq_options *options,
                  const struct network_config *config,
                  const struct network_info *info, dnsmasq_ready_fn ready,
                  void *data, struct dnsmasq **out);

// Stops dnsmasq without waiting: SIGTERM, SIGKILL 2 s later; once it has
// ended, removes its files and its directory, frees d and calls
// stopped(data) (maybe before returning, when nothing runs). With
// options->offload the files are removed there, by a job queued before
// stopped() is called: a job queued on the same worker after it finds
// them gone.
void dnsmasq_stop_async(struct dnsmasq *d, dnsmasq_stopped_fn stopped,
                        void *data);

// Stops dnsmasq at once (SIGTERM, then SIGKILL after 2 s, waiting for it),
// removes its files and its directory, and frees d; no callback follows.
// For the broker's exit. Accepts NULL.
void dnsmasq_stop(struct dnsmasq *d);

// The pid of the running dnsmasq; 0 while it is being restarted or after
// supervision gave up.
pid_t dnsmasq_pid(const struct dnsmasq *d);

// The start time of that process (field 22 of /proc/PID/stat), read once
// per process; 0 when none runs or it cannot be read. Loop only.
unsigned long long dnsmasq_start_time(struct dnsmasq *d);

// True once dnsmasq failed 5 times in a row and is no longer restarted.
bool dnsmasq_failed(const struct dnsmasq *d);

// Starts dnsmasq again, now (its interface was made again): ends the
// running instance (SIGTERM; the next one starts as soon as it has gone, and
// its exit counts as no failure), or starts one when supervision gave up
// (the count of failures starts over). No-op while starting or stopping.
void dnsmasq_restart(struct dnsmasq *d);

// Kills every dnsmasq a previous broker left running for runtime_dir (the
// pid in <runtime_dir>/<network>/dnsmasq.pid, only if that process's
// command line names that directory's dnsmasq.conf), the router
// advertisement one included (only if it is also older than its pid file),
// and removes those directories. Returns how many processes were killed.
int dnsmasq_remove_stale(const char *runtime_dir);

// As dnsmasq_remove_stale(), but leaves the directories (and processes) of
// the networks keep(name, ctx) says to keep (adopted ones). keep may be NULL.
// The router advertisement instance is never kept: the next broker starts
// its own.
int dnsmasq_remove_stale_except(const char *runtime_dir,
                                bool (*keep)(const char *name, void *ctx),
                                void *ctx);

// Supervises the dnsmasq a previous broker left for network name (adoption):
// the process pid, if it still runs with <runtime_dir>/<name>/dnsmasq.conf
// and started at start (field 22 of /proc/PID/stat; 0: not checked), else
// the one its pid file names if it runs that config. It is not our child:
// a pidfd tells when it ends, and it is then restarted as a child of ours
// would be. When neither runs, a new one starts at once with the config
// file that is there. Stores the handle in *out and returns 0; -ENOENT when
// the network's directory or config file is missing (nothing to adopt), or
// another negative errno (logged). The files are the network's from now on
// (dnsmasq_stop() removes them).
int dnsmasq_adopt(const struct dnsmasq_options *options, const char *name,
                  pid_t pid, unsigned long long start, struct dnsmasq **out);

// Frees d and leaves its process and its files running for the next broker
// (the broker exits while a VM uses the network). Accepts NULL.
void dnsmasq_leave(struct dnsmasq *d);

// Called after each restart of the network's dnsmasq (its pid changed).
typedef void (*dnsmasq_restarted_fn)(void *data);
void dnsmasq_set_restarted(struct dnsmasq *d, dnsmasq_restarted_fn restarted,
                           void *data);

// Stores the start time of process pid (field 22 of /proc/PID/stat, clock
// ticks since boot) in *start: with the pid it names one process for good.
// Returns 0 or a negative errno.
int dnsmasq_process_start_time(pid_t pid, unsigned long long *start);

// The broker-made DHCP reservations in the network's hosts file (what
// dnsmasq_set_guest_hosts() last wrote, which outlives a broker): a malloc'd
// array in *out (caller frees; NULL when none) and its length in *n.
// Returns 0 or a negative errno.
int dnsmasq_read_guest_hosts(const struct dnsmasq *d,
                             struct dhcp_reservation **out, size_t *n);

// Replaces the network's broker-made DHCP reservations (one MAC, one
// address each; the guests announced in interface replies) and makes
// dnsmasq read them again (SIGHUP). Returns 0 or a negative errno (logged).
int dnsmasq_set_guest_hosts(const struct dnsmasq *d,
                            const struct dhcp_reservation *hosts, size_t n);

// One DHCPv4 lease as dnsmasq's lease file holds it.
struct dnsmasq_lease {
    uint8_t mac[6];
    uint32_t address;  // host byte order
    int64_t expiry;    // seconds since the epoch; 0: never
    char hostname[64]; // empty when the client sent none
};

// The network's current leases: a malloc'd array (caller frees) in *out and
// its length in *n. Returns 0 (no lease file yet: none) or a negative errno.
int dnsmasq_read_leases(const struct dnsmasq *d, struct dnsmasq_lease **out,
                        size_t *n);

#endif
