// SPDX-License-Identifier: Apache-2.0
// The Linux network backend: each network is a bridge made over netlink.
#include "linux_network.h"
#include "stable_addresses.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/network_config.h"
#include "core/peer.h"
#include "core/reason.h"
#include "core/status.h"
#include "core/subnet.h"
#include "core/uuid.h"
#include "linux_bridge.h"
#include "linux_dnsmasq.h"
#include "linux_firewall.h"
#include "linux_host_routes.h"
#include "linux_instance.h"
#include "linux_sysctl.h"
#include "linux_tap.h"
#include "linux_worker.h"
#include "networks_state.h"
#include "nl_errno.h"

#define FORWARD_CHECK_USEC (10 * 1000000ull)

static uint64_t monotonic_usec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

// Threads closing sent TAP descriptors (see struct linux_backend).
#define CLOSERS 8

// The MTU of a network when neither its config nor a default route says.
#define DEFAULT_MTU 1500

struct linux_backend {
    struct nl_sock *sock;
    // NULL until linux_backend_enable_services(): bridges only.
    struct firewall *firewall;
    struct dnsmasq_options dnsmasq;
    char *runtime_dir;
    char *dnsmasq_path;
    uint32_t pool_first;
    uint32_t pool_last;
    // NULL (jobs run inline) until services are enabled.
    struct linux_worker *worker;
    // Close sent TAP descriptors: threads of their own, so a wait for a
    // close never queues behind a creation. Several, taken in turn: a close
    // that is the device's last reference waits for its teardown (an RCU
    // grace period, tens of ms), and one thread made every later close wait
    // behind it, until the client's own closes came first and made each of
    // them last too; a client at its interface limit then waited for a
    // whole queue of teardowns (open_interface p99 0.3-0.5 s).
    struct linux_worker *closers[CLOSERS];
    // Writes the state file (write_state()), so the loop never waits for it.
    struct linux_worker *state_writer;
    unsigned next_closer;
    // CLOCK_MONOTONIC microseconds of the last look for a foreign forward
    // policy of drop (worker only).
    uint64_t forward_checked;
    // TAP descriptors handed out and not closed yet.
    struct sent_fd *sent;
    // Each name's last subnet and IPv6 prefix (worker only); NULL: none.
    struct stable_addresses *stable;
    // The per-host secret guest MACs are keyed with (state_dir.h); all
    // zeros until linux_backend_set_mac_key().
    uint8_t mac_key[GUEST_MAC_KEY_LEN];
    // Link removals, so a TAP's rules go with it, and bridge ports coming
    // and going.
    int link_fd;
    sd_event_source *link_source;
    // Where networks.json is written; -1: no state file.
    int runtime_dir_fd;
    // Ready and adopted networks (and, at exit, those left running): the
    // state file lists them and their bridges' ports are counted.
    struct linux_network *live;
    // Every port of a live network's bridge: (port, bridge) ifindexes.
    struct bridge_port *ports;
    size_t n_ports;
    size_t ports_size;
    // A dump of the links for counting ports again is on the worker; another
    // is wanted after it (loop only).
    bool resync_queued;
    bool resync_again;
    linux_ports_changed_fn ports_changed;
    void *ports_ctx;
    // The networks whose bridge is made, from built() (or adoption) until
    // their removal starts (loop only): what repairs look after.
    struct linux_network *watched;
    // The subnets of the networks built and not torn down (worker only):
    // the chooser never picks one, even while its bridge is gone.
    struct own_subnet *own;
    size_t n_own;
    // nftables events (NFNLGRP_NFTABLES): a foreign transaction that
    // deleted something of the broker's table has the table checked.
    int nft_fd;
    sd_event_source *nft_source;
    // Loop only: a deletion in the table was seen in the transaction whose
    // NEWGEN has not come yet; a check is queued; another is wanted after.
    bool nft_dirty;
    bool table_check_queued;
    bool table_check_again;
    // A foreign deletion was seen in the events read in this turn.
    bool nft_check;
    // Written by the check on the worker, read in its done: the table was
    // damaged and made again, or could not be.
    bool table_recreated;
    bool table_broken;
    // Told when a network's degraded() answer may have changed.
    void (*health_changed)(void *ctx);
    void *health_ctx;
    // The broker's one dnsmasq for router advertisements (loop only), made
    // with the first network that has IPv6 (radv_want()) and kept until the
    // exit: NULL until then, or after it failed to start. Its spawn runs on
    // the worker (radv_spawning), which leaves the handle in radv_spawned.
    struct dnsmasq *radv;
    struct dnsmasq *radv_spawned;
    bool radv_spawning;
};

struct bridge_port {
    int ifindex;
    int master;
};

// A TAP device of an adopted network, until the core has counted it.
struct adopted_tap {
    char name[IFNAMSIZ];
    uint32_t uid;
    unsigned index;
};

struct own_subnet {
    const struct linux_network *network;
    char bridge[IFNAMSIZ];
    struct ipv4_prefix prefix;
};

struct sent_fd {
    struct linux_backend *backend;
    int fd;
    char name[IFNAMSIZ];
    bool queued;                 // the loop asked a closer to close it
    struct linux_worker *closer; // the one it asked
    struct sent_fd *next;
};

void linux_backend_set_stable_addresses(struct linux_backend *backend,
                                        struct stable_addresses *stable) {
    stable_addresses_free(backend->stable);
    backend->stable = stable;
}

void linux_backend_set_mac_key(struct linux_backend *backend,
                               const uint8_t key[GUEST_MAC_KEY_LEN]) {
    memcpy(backend->mac_key, key, GUEST_MAC_KEY_LEN);
}

struct pool_change {
    struct linux_backend *backend;
    uint32_t first, last;
};

static void change_pool(void *data) {
    struct pool_change *change = data;

    change->backend->pool_first = change->first;
    change->backend->pool_last = change->last;
}

void linux_backend_set_subnet_pool(struct linux_backend *backend,
                                   uint32_t first, uint32_t last) {
    struct pool_change *change = malloc(sizeof(*change));

    if (change == NULL) {
        log_error("cannot change the subnet pool: out of memory");
        return;
    }
    *change = (struct pool_change){backend, first, last};
    // The worker reads the pool while it builds: it changes it too, between
    // two creations (at once without a worker yet).
    linux_worker_queue(backend->worker, change_pool, free, change);
}

_Static_assert(NETWORK_BRIDGE_MAX + 1 == IFNAMSIZ,
               "network_info.bridge holds exactly an interface name");

// The handle create() returns: enough to find the bridge again.
struct linux_network {
    struct linux_backend *backend;
    // A copy: the worker reads it while the core may mark the network
    // persistent.
    struct network_config config;
    // What build() made, and where the core wants it.
    struct network_info made;
    struct network_info *info;
    int status;
    // The bridge's: a repair on the worker makes the bridge again (a new
    // ifindex) while the loop matches ports' masters against it.
    atomic_int ifindex;
    char bridge[IFNAMSIZ];
    // Written by the worker's jobs, read on the loop once they are done.
    bool bridge_exists;
    bool has_rules;
    struct dnsmasq *dnsmasq;
    // Spawned by build() on the worker, watched from the loop by built().
    struct dnsmasq *spawned;
    // While a removal waits for it.
    struct dnsmasq *stopping;
    // Parts of a removal not ended yet: dnsmasq's exit and the devices' and
    // rules' removal run at once; the subnet is freed when both have.
    int removal_parts;
    // The core's completion of create (while dnsmasq starts) or destroy
    // (while it stops).
    backend_create_done_fn created;
    backend_destroy_done_fn destroyed;
    void *done_data;
    char name[NETWORK_NAME_MAX + 1];
    // Why the creation failed, for every request waiting on it. Written by
    // build() on the worker, read on the loop once it is done.
    struct reason why;
    // The DHCP reservations of the guests' MACs (loop only), kept for the
    // network's life so a VM started again gets its address back.
    struct dhcp_reservation *guests;
    size_t n_guests;
    // In backend->live (loop only).
    bool listed;
    struct linux_network *next_live;
    // Ports of the bridge (link events).
    unsigned ports;
    // Left running at the broker's exit for the next broker.
    bool left;
    // Adopted and not yet handed to the core; its TAPs meanwhile.
    bool adopted;
    struct adopted_tap *taps;
    size_t n_taps;
    // The bridge's address, to make it again the same (worker only).
    uint8_t mac[6];
    // On backend->watched (loop only).
    bool watched;
    struct linux_network *next_watched;
    // A repair of the bridge is queued; another is wanted once it is done.
    bool repair_queued;
    bool repair_again;
    // What the last repair did, and whether dnsmasq must start again on the
    // new bridge (written on the worker, read in the repair's done).
    char repaired[192];
    bool restart_dnsmasq;
    // Why the network works only in part (loop only): empty while whole.
    // The bridge's trouble comes from its last repair, the rules' from
    // their last restore.
    char bridge_trouble[192];
    char rules_trouble[192];
    char repair_trouble[192]; // the repair's, read in its done
    // The last restore of its rules: TAP chains restored, or -errno.
    int rules_restored;
};

static void write_state(struct linux_backend *backend);
static void teardown(void *data);

int linux_backend_new(struct linux_backend **out) {
    struct linux_backend *backend = calloc(1, sizeof(*backend));
    int status = -ENOMEM;
    int err;

    if (backend == NULL)
        goto out;
    backend->link_fd = -1;
    backend->runtime_dir_fd = -1;
    backend->nft_fd = -1;
    backend->pool_first = SUBNET_FIRST;
    backend->pool_last = SUBNET_LAST;
    backend->sock = nl_socket_alloc();
    if (backend->sock == NULL)
        goto out;
    err = nl_to_errno(nl_connect(backend->sock, NETLINK_ROUTE));
    if (err < 0) {
        status = err;
        goto out;
    }
    *out = backend;
    backend = NULL;
    status = 0;
out:
    linux_backend_free(backend);
    return status;
}

void linux_backend_free(struct linux_backend *backend) {
    if (backend == NULL)
        return;
    sd_event_source_disable_unref(backend->link_source);
    if (backend->link_fd >= 0)
        close(backend->link_fd);
    sd_event_source_disable_unref(backend->nft_source);
    if (backend->nft_fd >= 0)
        close(backend->nft_fd);
    // Its jobs use the netlink socket and the firewall freed below. NULL
    // after: what the stops below still queue (a starting instance's
    // inotify descriptor, a directory's removal) runs inline.
    linux_worker_free(backend->worker);
    backend->worker = NULL;
    for (int i = 0; i < CLOSERS; i++) {
        linux_worker_free(backend->closers[i]);
        backend->closers[i] = NULL;
    }
    while (backend->sent != NULL) {
        struct sent_fd *s = backend->sent;
        backend->sent = s->next;
        free(s);
    }
    // What is left running (networks with ports) is what the next broker
    // adopts: the state file says so, and their rules stay.
    write_state(backend);
    if (backend->live != NULL && backend->firewall != NULL)
        firewall_keep_table(backend->firewall);
    // Waits for every write queued, this last one included.
    linux_worker_free(backend->state_writer);
    backend->state_writer = NULL;
    // The worker is gone: a spawn it ran and whose done it dropped left its
    // handle in radv_spawned. Networks left running keep their
    // advertisements (the next broker replaces the instance); else it goes.
    if (backend->live != NULL) {
        dnsmasq_leave(backend->radv);
        dnsmasq_leave(backend->radv_spawned);
    } else {
        dnsmasq_stop(backend->radv);
        dnsmasq_stop(backend->radv_spawned);
    }
    while (backend->live != NULL) {
        struct linux_network *network = backend->live;
        backend->live = network->next_live;
        dnsmasq_leave(network->dnsmasq);
        free(network->guests);
        free(network->taps);
        free(network);
    }
    free(backend->ports);
    // Deletes the broker's whole table unless networks were left running.
    firewall_free(backend->firewall);
    // nl_socket_free() closes the socket if nl_connect() opened it.
    nl_socket_free(backend->sock);
    free(backend->runtime_dir);
    free(backend->dnsmasq_path);
    free(backend->own);
    stable_addresses_free(backend->stable);
    free(backend);
}

// ---- The state file and the live networks (issue 12) ----------------------

// A state file's entries, formatted and written on the state writer (the
// job owns them).
struct state_write {
    int dir_fd;
    struct networks_state_entry *entries;
    size_t n;
};

static void write_state_file(void *data) {
    struct state_write *job = data;
    char *text = networks_state_format(job->entries, job->n);

    if (text != NULL)
        networks_state_write_text(job->dir_fd, text);
    else
        log_error("cannot write the state file: out of memory");
    free(text);
    free(job->entries);
    free(job);
}

// Records the live networks in the state file: copied here, formatted and
// written on a thread of its own. A rename over the old file may wait for a
// disk (ext4 flushes the new file's data then: 30-60 ms measured under
// churn on a disk-backed runtime directory), and formatting every network
// cost the loop a millisecond per change at a full pool.
static void write_state(struct linux_backend *backend) {
    struct networks_state_entry *entries;
    struct state_write *job;
    size_t n = 0;

    if (backend->runtime_dir_fd < 0 || backend->firewall == NULL)
        return;
    for (struct linux_network *l = backend->live; l != NULL; l = l->next_live)
        n++;
    entries = calloc(n + 1, sizeof(*entries));
    if (entries == NULL) {
        log_error("cannot write the state file: out of memory");
        return;
    }
    n = 0;
    for (struct linux_network *l = backend->live; l != NULL; l = l->next_live) {
        struct networks_state_entry *e = &entries[n++];

        snprintf(e->name, sizeof(e->name), "%s", l->name);
        e->mode = l->config.mode;
        e->persistent = l->config.persistent;
        e->info = l->made;
        e->dnsmasq_pid = l->dnsmasq != NULL ? dnsmasq_pid(l->dnsmasq) : 0;
        // Cached per process: the file is written on every change, and a
        // read of /proc per network each time would grow with the networks.
        e->dnsmasq_start =
            e->dnsmasq_pid > 0 ? dnsmasq_start_time(l->dnsmasq) : 0;
        if (e->dnsmasq_start == 0)
            e->dnsmasq_pid = 0;
    }
    job = malloc(sizeof(*job));
    if (job == NULL) {
        log_error("cannot write the state file: out of memory");
        free(entries);
        return;
    }
    job->dir_fd = backend->runtime_dir_fd;
    job->entries = entries;
    job->n = n;
    // In order: the last one queued is what the file ends with.
    linux_worker_queue(backend->state_writer, write_state_file, NULL, job);
}

static void on_dnsmasq_restarted(void *data) {
    struct linux_network *network = data;
    write_state(network->backend);
}

// The kernel's "carrier on" link flag (linux/if.h; net/if.h lacks it).
#ifndef IFF_LOWER_UP
#define IFF_LOWER_UP 0x10000
#endif

// Whether a port keeps its network in use. A TAP device of the broker's
// only while a descriptor holds it (the kernel gives it carrier then): one
// its holder made persistent and let go is no running VM, and must not keep
// a network forever. Any other link (a veth a root client attached) always.
static bool port_counts(const char *name, unsigned flags) {
    return name == NULL ||
           strncmp(name, LINUX_TAP_PREFIX, strlen(LINUX_TAP_PREFIX)) != 0 ||
           (flags & IFF_LOWER_UP) != 0;
}

static struct linux_network *live_by_bridge(struct linux_backend *backend,
                                            int ifindex) {
    for (struct linux_network *l = backend->live; l != NULL; l = l->next_live) {
        if (l->ifindex == ifindex && ifindex > 0)
            return l;
    }
    return NULL;
}

static void tell_ports(struct linux_backend *backend,
                       struct linux_network *network) {
    if (backend->ports_changed != NULL && !network->adopted && !network->left)
        backend->ports_changed(backend->ports_ctx, network->name,
                               network->ports > 0);
}

// Port ifindex now has master (0: none, or the link is gone).
static void port_moved(struct linux_backend *backend, int ifindex, int master) {
    struct linux_network *network;
    size_t i = 0;

    while (i < backend->n_ports && backend->ports[i].ifindex != ifindex)
        i++;
    if (i < backend->n_ports) {
        if (backend->ports[i].master == master)
            return;
        network = live_by_bridge(backend, backend->ports[i].master);
        backend->ports[i] = backend->ports[--backend->n_ports];
        if (network != NULL && network->ports > 0 && --network->ports == 0)
            tell_ports(backend, network);
    }
    network = master > 0 ? live_by_bridge(backend, master) : NULL;
    if (network == NULL)
        return;
    if (backend->n_ports == backend->ports_size) {
        size_t size = backend->ports_size ? backend->ports_size * 2 : 16;
        struct bridge_port *grown =
            realloc(backend->ports, size * sizeof(*grown));
        // Without memory the port is not counted: the network may then be
        // removed while a VM uses it, as before ports were counted.
        if (grown == NULL) {
            log_error("out of memory: port %d of %s not counted", ifindex,
                      network->bridge);
            return;
        }
        backend->ports = grown;
        backend->ports_size = size;
    }
    backend->ports[backend->n_ports].ifindex = ifindex;
    backend->ports[backend->n_ports].master = master;
    backend->n_ports++;
    if (network->ports++ == 0)
        tell_ports(backend, network);
}

// Counts every live bridge's ports again from links, a dump of the
// kernel's, telling the changes (loop only).
static void count_ports(struct linux_backend *backend, struct nl_cache *links) {
    // Ports that went (or moved) while unseen.
    for (size_t i = 0; i < backend->n_ports;) {
        struct rtnl_link *link =
            rtnl_link_get(links, backend->ports[i].ifindex);
        int master = link != NULL && port_counts(rtnl_link_get_name(link),
                                                 rtnl_link_get_flags(link))
                         ? rtnl_link_get_master(link)
                         : 0;
        size_t before = backend->n_ports;

        rtnl_link_put(link);
        port_moved(backend, backend->ports[i].ifindex, master);
        // Entry i was replaced by the last one (or moved): look again.
        if (backend->n_ports == before && backend->ports[i].master == master)
            i++;
    }
    for (struct nl_object *obj = nl_cache_get_first(links); obj != NULL;
         obj = nl_cache_get_next(obj)) {
        struct rtnl_link *link = (struct rtnl_link *)obj;
        port_moved(
            backend, rtnl_link_get_ifindex(link),
            port_counts(rtnl_link_get_name(link), rtnl_link_get_flags(link))
                ? rtnl_link_get_master(link)
                : 0);
    }
}

// A dump of the links for count_ports(), made on the worker: the netlink
// socket is the worker's while it runs, and a dump must not wait on the loop.
struct ports_dump {
    struct linux_backend *backend;
    struct nl_cache *links;
    int err;
};

static void dump_links(void *data) {
    struct ports_dump *dump = data;

    dump->err = nl_to_errno(
        rtnl_link_alloc_cache(dump->backend->sock, AF_UNSPEC, &dump->links));
}

// Counts the ports from a dump and frees its links (loop only).
static void count_dumped_ports(struct ports_dump *dump) {
    if (dump->err < 0)
        log_error("cannot list links to count bridge ports: %s",
                  strerror(-dump->err));
    else
        count_ports(dump->backend, dump->links);
    nl_cache_free(dump->links);
    dump->links = NULL;
}

static void queue_resync_ports(struct linux_backend *backend);

static void links_dumped(void *data) {
    struct ports_dump *dump = data;
    struct linux_backend *backend = dump->backend;

    backend->resync_queued = false;
    count_dumped_ports(dump);
    free(dump);
    if (backend->resync_again) {
        backend->resync_again = false;
        queue_resync_ports(backend);
    }
}

// Counts the ports again once link events were lost (ENOBUFS): one dump at
// a time, and one more if events were lost again meanwhile.
static void queue_resync_ports(struct linux_backend *backend) {
    struct ports_dump *dump;

    if (backend->resync_queued) {
        backend->resync_again = true;
        return;
    }
    dump = calloc(1, sizeof(*dump));
    if (dump == NULL) {
        log_error("cannot count bridge ports again: out of memory");
        return;
    }
    dump->backend = backend;
    backend->resync_queued = true;
    linux_worker_queue(backend->worker, dump_links, links_dumped, dump);
}

static void list_network(struct linux_network *network) {
    struct linux_backend *backend = network->backend;

    if (network->listed)
        return;
    network->listed = true;
    network->next_live = backend->live;
    backend->live = network;
}

// Forgets network and its ports (none is told: the core removes it).
static void unlist_network(struct linux_network *network) {
    struct linux_backend *backend = network->backend;
    struct linux_network **p = &backend->live;

    if (!network->listed)
        return;
    while (*p != NULL && *p != network)
        p = &(*p)->next_live;
    if (*p == network)
        *p = network->next_live;
    network->listed = false;
    for (size_t i = 0; i < backend->n_ports;) {
        if (backend->ports[i].master == network->ifindex)
            backend->ports[i] = backend->ports[--backend->n_ports];
        else
            i++;
    }
    network->ports = 0;
}

void linux_backend_set_ports_watch(struct linux_backend *backend,
                                   linux_ports_changed_fn changed, void *ctx) {
    backend->ports_changed = changed;
    backend->ports_ctx = ctx;
}

struct tap_gone {
    struct linux_backend *backend;
    char name[IFNAMSIZ];
};

static void remove_tap_rules(void *data) {
    struct tap_gone *gone = data;

    // A device that left its bridge is reported too, and still needs them.
    if (if_nametoindex(gone->name) == 0)
        firewall_remove_interface(gone->backend->firewall, gone->name);
}

static void queue_tap_gone(struct linux_backend *backend, const char *name) {
    struct tap_gone *gone = calloc(1, sizeof(*gone));

    // Without memory the next TAP's creation sweeps the chain away.
    if (gone == NULL)
        return;
    gone->backend = backend;
    snprintf(gone->name, sizeof(gone->name), "%s", name);
    linux_worker_queue(backend->worker, remove_tap_rules, free, gone);
}

// A link went: when it is one of the broker's TAPs, its chain goes too (the
// kernel keeps a netdev chain whose device is gone).
static void link_removed(struct linux_backend *backend,
                         const struct nlmsghdr *hdr) {
    const struct ifinfomsg *ifi = NLMSG_DATA(hdr);
    int length = (int)hdr->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*ifi));

    // AF_BRIDGE: a port left its bridge (the network went), the device
    // itself is still there.
    if (ifi->ifi_family == AF_BRIDGE)
        return;

    for (const struct rtattr *rta = IFLA_RTA(ifi); RTA_OK(rta, length);
         rta = RTA_NEXT(rta, length)) {
        const char *name = RTA_DATA(rta);

        if (rta->rta_type != IFLA_IFNAME ||
            strnlen(name, RTA_PAYLOAD(rta)) >= IFNAMSIZ)
            continue;
        if (strncmp(name, LINUX_TAP_PREFIX, strlen(LINUX_TAP_PREFIX)) == 0)
            queue_tap_gone(backend, name);
    }
}

// A link was made, changed or removed: the bridge it is a port of, if any,
// may have changed.
static void link_master(struct linux_backend *backend,
                        const struct nlmsghdr *hdr) {
    const struct ifinfomsg *ifi = NLMSG_DATA(hdr);
    int length = (int)hdr->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*ifi));
    int master = 0;

    const char *name = NULL;

    // AF_BRIDGE messages are the bridge's view of a port; the link's own
    // (AF_UNSPEC) carry IFLA_MASTER.
    if (ifi->ifi_family == AF_BRIDGE)
        return;
    if (hdr->nlmsg_type == RTM_NEWLINK) {
        for (const struct rtattr *rta = IFLA_RTA(ifi); RTA_OK(rta, length);
             rta = RTA_NEXT(rta, length)) {
            if (rta->rta_type == IFLA_MASTER &&
                RTA_PAYLOAD(rta) >= sizeof(uint32_t))
                memcpy(&master, RTA_DATA(rta), sizeof(master));
            if (rta->rta_type == IFLA_IFNAME &&
                strnlen(RTA_DATA(rta), RTA_PAYLOAD(rta)) < IFNAMSIZ)
                name = RTA_DATA(rta);
        }
    }
    if (!port_counts(name, ifi->ifi_flags))
        master = 0;
    port_moved(backend, ifi->ifi_index, master);
}

static void queue_repair(struct linux_network *network);
static void watch_add(struct linux_network *network);
static void watch_remove(struct linux_network *network);
static bool own_add(struct linux_backend *backend,
                    const struct linux_network *network);

// The live network whose bridge is called name, or NULL.
static struct linux_network *find_watched(struct linux_backend *backend,
                                          const char *name, size_t length) {
    const char *prefix = linux_instance_bridge_prefix();

    // This instance's bridges only: "vmb-" or "vmb<id>-".
    if (length >= IFNAMSIZ || strncmp(name, prefix, strlen(prefix)) != 0)
        return NULL;
    for (struct linux_network *n = backend->watched; n != NULL;
         n = n->next_watched) {
        if (strncmp(n->bridge, name, length) == 0 && n->bridge[length] == '\0')
            return n;
    }
    return NULL;
}

// A network's bridge was deleted or set down, or lost an IPv4 address:
// its repair is queued (the worker looks at what is missing, so an event
// the broker caused itself costs a look and changes nothing).
static void bridge_event(struct linux_backend *backend,
                         const struct nlmsghdr *hdr) {
    const struct rtattr *rta;
    int length;
    int name_type;

    if (hdr->nlmsg_type == RTM_DELADDR &&
        hdr->nlmsg_len >= NLMSG_LENGTH(sizeof(struct ifaddrmsg))) {
        const struct ifaddrmsg *ifa = NLMSG_DATA(hdr);
        if (ifa->ifa_family != AF_INET)
            return;
        rta = IFA_RTA(ifa);
        length = (int)hdr->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*ifa));
        name_type = IFA_LABEL;
    } else if ((hdr->nlmsg_type == RTM_DELLINK ||
                hdr->nlmsg_type == RTM_NEWLINK) &&
               hdr->nlmsg_len >= NLMSG_LENGTH(sizeof(struct ifinfomsg))) {
        const struct ifinfomsg *ifi = NLMSG_DATA(hdr);
        // AF_BRIDGE: about a port; an up bridge needs nothing.
        if (ifi->ifi_family == AF_BRIDGE ||
            (hdr->nlmsg_type == RTM_NEWLINK && (ifi->ifi_flags & IFF_UP)))
            return;
        rta = IFLA_RTA(ifi);
        length = (int)hdr->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*ifi));
        name_type = IFLA_IFNAME;
    } else {
        return;
    }
    for (; RTA_OK(rta, length); rta = RTA_NEXT(rta, length)) {
        struct linux_network *network;

        if (rta->rta_type != name_type)
            continue;
        network = find_watched(backend, RTA_DATA(rta),
                               strnlen(RTA_DATA(rta), RTA_PAYLOAD(rta)));
        if (network != NULL)
            queue_repair(network);
        return;
    }
}

// Reads every message waiting on a netlink socket, passing each to
// handle; true when the kernel dropped some (ENOBUFS: the socket was full).
static bool read_netlink(struct linux_backend *backend, int fd,
                         void (*handle)(struct linux_backend *backend,
                                        const struct nlmsghdr *hdr)) {
    char buffer[16384] __attribute__((aligned(NLMSG_ALIGNTO)));
    bool lost = false;
    ssize_t n;

    while ((n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT)) != 0) {
        if (n < 0) {
            if (errno == ENOBUFS) {
                lost = true;
                continue;
            }
            break;
        }
        for (struct nlmsghdr *hdr = (struct nlmsghdr *)buffer;
             NLMSG_OK(hdr, (size_t)n); hdr = NLMSG_NEXT(hdr, n))
            handle(backend, hdr);
    }
    return lost;
}

static void link_message(struct linux_backend *backend,
                         const struct nlmsghdr *hdr) {
    // bridge_event() checks each message's length itself: it also takes
    // address removals.
    bridge_event(backend, hdr);
    if ((hdr->nlmsg_type != RTM_DELLINK && hdr->nlmsg_type != RTM_NEWLINK) ||
        hdr->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
        return;
    if (hdr->nlmsg_type == RTM_DELLINK)
        link_removed(backend, hdr);
    link_master(backend, hdr);
}

static int on_link_event(sd_event_source *source, int fd, uint32_t revents,
                         void *data) {
    struct linux_backend *backend = data;

    (void)source;
    (void)revents;
    // Events were lost: the next TAP's creation sweeps whatever chain they
    // would have removed, the ports are counted again and every bridge is
    // looked at.
    if (read_netlink(backend, fd, link_message)) {
        for (struct linux_network *network = backend->watched; network != NULL;
             network = network->next_watched)
            queue_repair(network);
        queue_resync_ports(backend);
    }
    return 0;
}

static int watch_links(struct linux_backend *backend, sd_event *event) {
    struct sockaddr_nl address = {
        .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR};
    int r;

    backend->link_fd = socket(
        AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    if (backend->link_fd < 0 ||
        bind(backend->link_fd, (struct sockaddr *)&address, sizeof(address)) <
            0) {
        r = -errno;
        log_error("cannot watch links: %s", strerror(-r));
        return r;
    }
    {
        // Many VMs starting at once are a burst of link events; a lost one
        // costs a dump of every link. FORCE: root may pass rmem_max.
        int size = 1 << 20;
        if (setsockopt(backend->link_fd, SOL_SOCKET, SO_RCVBUFFORCE, &size,
                       sizeof(size)) < 0)
            setsockopt(backend->link_fd, SOL_SOCKET, SO_RCVBUF, &size,
                       sizeof(size));
    }
    r = sd_event_add_io(event, &backend->link_source, backend->link_fd, EPOLLIN,
                        on_link_event, backend);
    if (r < 0)
        log_error("cannot watch links: %s", strerror(-r));
    return r;
}

// ---- Adoption (issue 12) --------------------------------------------------

// True when the kernel still has e's bridge as the broker made it: marked,
// named for e's network, with e's gateway address. Stores its ifindex.
static bool bridge_vouched(struct nl_cache *links, struct nl_cache *addrs,
                           const struct networks_state_entry *e, int *ifindex,
                           uint8_t mac[6]) {
    char expected[IFNAMSIZ];
    struct rtnl_link *link = NULL;
    bool ok = false;

    linux_bridge_name(e->name, expected);
    if (strcmp(expected, e->info.bridge) != 0)
        goto out;
    link = rtnl_link_get_by_name(links, e->info.bridge);
    if (link == NULL || !linux_bridge_is_marked(rtnl_link_get_name(link),
                                                rtnl_link_get_type(link),
                                                rtnl_link_get_ifalias(link)))
        goto out;
    *ifindex = rtnl_link_get_ifindex(link);
    // A repair makes the bridge again with the address it has now.
    {
        struct nl_addr *own = rtnl_link_get_addr(link);
        if (own == NULL || nl_addr_get_len(own) != 6)
            goto out;
        memcpy(mac, nl_addr_get_binary_addr(own), 6);
    }
    for (struct nl_object *obj = nl_cache_get_first(addrs); obj != NULL && !ok;
         obj = nl_cache_get_next(obj)) {
        struct rtnl_addr *addr = (struct rtnl_addr *)obj;
        struct nl_addr *local = rtnl_addr_get_local(addr);
        uint32_t be = htonl(e->info.gateway);

        ok = rtnl_addr_get_ifindex(addr) == *ifindex &&
             rtnl_addr_get_family(addr) == AF_INET && local != NULL &&
             nl_addr_get_len(local) == 4 &&
             memcmp(nl_addr_get_binary_addr(local), &be, 4) == 0 &&
             (unsigned)rtnl_addr_get_prefixlen(addr) ==
                 ipv4_mask_len(e->info.mask);
    }
out:
    rtnl_link_put(link);
    return ok;
}

// A network e records, adopted when the configuration and the kernel still
// vouch for it: listed, its dnsmasq supervised, its guests' reservations
// read back. NULL (logged) otherwise.
static struct linux_network *
adopt_one(struct linux_backend *backend,
          const struct linux_backend_services *services,
          const struct networks_state_entry *e, struct nl_cache *links,
          struct nl_cache *addrs) {
    struct linux_network *network = NULL;
    struct network_config config;
    uint8_t mac[6];
    int ifindex = 0;

    // A name recorded twice: the first entry is the one adopted.
    for (struct linux_network *l = backend->live; l != NULL; l = l->next_live) {
        if (strcmp(l->name, e->name) == 0 ||
            strcmp(l->bridge, e->info.bridge) == 0) {
            log_warning("network %s: recorded twice; adopted once", e->name);
            goto out;
        }
    }
    if (services->configs == NULL ||
        services->configs->lookup(services->configs_ctx, e->name, &config,
                                  NULL) != BROKER_OK) {
        log_warning("network %s: not adopted: no valid configuration now",
                    e->name);
        goto out;
    }
    if (config.mode != e->mode ||
        (config.has_subnet &&
         ((config.subnet & config.mask) != e->info.subnet ||
          config.mask != e->info.mask))) {
        log_warning("network %s: not adopted: its configuration changed "
                    "(mode or subnet)",
                    e->name);
        goto out;
    }
    if (!bridge_vouched(links, addrs, e, &ifindex, mac)) {
        log_warning("network %s: not adopted: bridge %s is gone, unmarked or "
                    "without its address",
                    e->name, e->info.bridge);
        goto out;
    }
    network = calloc(1, sizeof(*network));
    if (network == NULL)
        goto out;
    network->backend = backend;
    network->config = config;
    network->config.persistent = config.persistent || e->persistent;
    network->made = e->info;
    network->ifindex = ifindex;
    memcpy(network->mac, mac, sizeof(mac));
    network->bridge_exists = true;
    network->adopted = true;
    snprintf(network->name, sizeof(network->name), "%s", e->name);
    snprintf(network->bridge, sizeof(network->bridge), "%s", e->info.bridge);
    if (dnsmasq_adopt(&backend->dnsmasq, e->name, e->dnsmasq_pid,
                      e->dnsmasq_start, &network->dnsmasq) < 0) {
        log_warning("network %s: not adopted: its dnsmasq files are gone",
                    e->name);
        free(network);
        network = NULL;
        goto out;
    }
    dnsmasq_set_restarted(network->dnsmasq, on_dnsmasq_restarted, network);
    // The guests keep their addresses: dnsmasq's hosts file outlived us.
    if (dnsmasq_read_guest_hosts(network->dnsmasq, &network->guests,
                                 &network->n_guests) < 0)
        log_warning("network %s: cannot read its guests' reservations",
                    e->name);
    list_network(network);
    // Repaired like the networks it makes; its subnet stays its own. The
    // worker does not run yet, so its list is written here.
    watch_add(network);
    if (!own_add(backend, network))
        log_warning("network %s: out of memory: its subnet may be chosen "
                    "again while its bridge is gone",
                    e->name);
out:
    return network;
}

static bool is_adopted(const char *name, void *ctx) {
    struct linux_backend *backend = ctx;

    for (struct linux_network *l = backend->live; l != NULL; l = l->next_live) {
        if (strcmp(l->name, name) == 0)
            return true;
    }
    return false;
}

static bool keep_tap(struct linux_network *network, const char *ifname,
                     unsigned uid, unsigned index) {
    struct adopted_tap *grown =
        realloc(network->taps, (network->n_taps + 1) * sizeof(*grown));

    if (grown == NULL)
        return false;
    network->taps = grown;
    snprintf(grown[network->n_taps].name, IFNAMSIZ, "%s", ifname);
    grown[network->n_taps].uid = uid;
    grown[network->n_taps].index = index;
    network->n_taps++;
    return true;
}

// Removes the bridges and TAP devices a previous broker left that no
// adopted network owns; records the adopted networks' TAPs.
static void remove_unadopted_links(struct linux_backend *backend,
                                   struct nl_cache *links) {
    int bridges = 0, taps = 0;

    for (struct nl_object *obj = nl_cache_get_first(links); obj != NULL;
         obj = nl_cache_get_next(obj)) {
        struct rtnl_link *link = (struct rtnl_link *)obj;
        const char *name = rtnl_link_get_name(link);
        const char *alias = rtnl_link_get_ifalias(link);
        struct linux_network *owner;
        const char *network;
        unsigned uid, index;
        int err;

        if (linux_bridge_is_marked(name, rtnl_link_get_type(link), alias)) {
            if (live_by_bridge(backend, rtnl_link_get_ifindex(link)) != NULL)
                continue;
            err = nl_to_errno(rtnl_link_delete(backend->sock, link));
            if (err < 0) {
                log_error("cannot remove stale bridge %s of network %s: %s",
                          name, alias, strerror(-err));
            } else {
                log_info("removed stale bridge %s of network %s", name, alias);
                bridges++;
            }
            continue;
        }
        if (!tap_mark_parse(name, rtnl_link_get_type(link), alias, &uid, &index,
                            &network))
            continue;
        owner = live_by_bridge(backend, rtnl_link_get_master(link));
        // Only those a VM holds: a persistent one nobody holds would live
        // on uncounted.
        if (owner != NULL && strcmp(owner->name, network) == 0 &&
            port_counts(name, rtnl_link_get_flags(link)) &&
            keep_tap(owner, name, uid, index))
            continue;
        // The others are of networks that are gone, or held by nobody.
        err = nl_to_errno(rtnl_link_delete(backend->sock, link));
        if (err < 0)
            log_error("cannot remove stale TAP device %s: %s", name,
                      strerror(-err));
        else
            taps++;
    }
    if (bridges > 0 || taps > 0)
        log_info("removed %d bridge%s and %d TAP device%s left by a previous "
                 "broker that no adopted network owns or no VM holds",
                 bridges, bridges == 1 ? "" : "s", taps, taps == 1 ? "" : "s");
}

// The address reserved for mac among network's guests, or 0.
static uint32_t guest_reservation(const struct linux_network *network,
                                  const uint8_t mac[6]) {
    for (size_t i = 0; i < network->n_guests; i++) {
        if (memcmp(network->guests[i].mac, mac, 6) == 0)
            return network->guests[i].address;
    }
    return 0;
}

static void queue_table_check(struct linux_backend *backend);

// A network's degraded() answer may have changed.
static void backend_health_changed(void *ctx) {
    struct linux_backend *backend = ctx;

    if (backend->health_changed != NULL)
        backend->health_changed(backend->health_ctx);
}

// ---- Router advertisements: one dnsmasq for every bridge -----------------

static void on_radv_ready(void *data, int status) {
    struct linux_backend *backend = data;

    if (status == 0)
        return;
    log_error("router advertisements: dnsmasq did not start: %s; guests get "
              "no IPv6 address until the next network with IPv6 is made",
              strerror(-status));
    dnsmasq_stop(backend->radv);
    backend->radv = NULL;
    backend_health_changed(backend);
}

// On the worker: the files and the spawn.
static void radv_spawn(void *data) {
    struct linux_backend *backend = data;

    if (dnsmasq_radv_spawn(&backend->dnsmasq, linux_instance_bridge_prefix(),
                           &backend->radv_spawned) < 0)
        backend->radv_spawned = NULL;
}

static void radv_spawned(void *data) {
    struct linux_backend *backend = data;

    backend->radv_spawning = false;
    backend->radv = backend->radv_spawned;
    backend->radv_spawned = NULL;
    if (backend->radv != NULL &&
        dnsmasq_watch(backend->radv, on_radv_ready, backend) < 0) {
        dnsmasq_stop(backend->radv);
        backend->radv = NULL;
    }
}

// A network with IPv6 exists: its bridge's advertisements need the
// instance running. Not waited for: the instance advertises on a bridge as
// soon as it sees its address, and answers every solicitation after.
static void radv_want(struct linux_backend *backend) {
    if (backend->worker == NULL || backend->radv_spawning)
        return;
    if (backend->radv != NULL) {
        // Given up on after failing again and again: a new network is a
        // reason to try again.
        if (dnsmasq_failed(backend->radv))
            dnsmasq_restart(backend->radv);
        return;
    }
    backend->radv_spawning = true;
    linux_worker_queue(backend->worker, radv_spawn, radv_spawned, backend);
}

static bool radv_failed(const struct linux_backend *backend) {
    return backend->radv != NULL && dnsmasq_failed(backend->radv);
}

void linux_backend_set_health_changed(struct linux_backend *backend,
                                      void (*changed)(void *ctx), void *ctx) {
    backend->health_changed = changed;
    backend->health_ctx = ctx;
}

// True when pid (a thread id, as nftables reports it) is one of the
// broker's threads: its own changes to its table need no check. Without
// /proc the answer is no, which costs a check.
static bool own_thread(uint32_t pid) {
    char path[64];

    snprintf(path, sizeof(path), "/proc/self/task/%lu", (unsigned long)pid);
    return pid == (uint32_t)getpid() || access(path, F_OK) == 0;
}

// The first attribute of an nftables deletion (of a table, chain, rule,
// set or set element) is the table's name: true when it is the broker's.
static bool deletes_in_own_table(const struct nlmsghdr *hdr) {
    const struct nlattr *attr =
        (const struct nlattr *)((const char *)NLMSG_DATA(hdr) +
                                NLMSG_ALIGN(sizeof(struct nfgenmsg)));
    size_t header = NLMSG_LENGTH(NLMSG_ALIGN(sizeof(struct nfgenmsg)));
    char name[64];
    size_t length;

    if (hdr->nlmsg_len < header + NLA_HDRLEN || attr->nla_len < NLA_HDRLEN ||
        hdr->nlmsg_len - header < attr->nla_len ||
        (attr->nla_type & NLA_TYPE_MASK) != 1)
        return false;
    length = attr->nla_len - NLA_HDRLEN;
    if (length >= sizeof(name))
        return false;
    memcpy(name, (const char *)attr + NLA_HDRLEN, length);
    name[length] = '\0';
    return firewall_is_own_table(name);
}

// The pid of the process whose transaction a NEWGEN ends (0: unknown).
static uint32_t newgen_pid(const struct nlmsghdr *hdr) {
    size_t header = NLMSG_LENGTH(NLMSG_ALIGN(sizeof(struct nfgenmsg)));
    const char *at =
        (const char *)NLMSG_DATA(hdr) + NLMSG_ALIGN(sizeof(struct nfgenmsg));
    size_t left;

    if (hdr->nlmsg_len < header)
        return 0;
    left = hdr->nlmsg_len - header;
    while (left >= NLA_HDRLEN) {
        const struct nlattr *attr = (const struct nlattr *)at;
        uint32_t pid;

        if (attr->nla_len < NLA_HDRLEN || attr->nla_len > left)
            return 0;
        if ((attr->nla_type & NLA_TYPE_MASK) == NFTA_GEN_PROC_PID &&
            (size_t)attr->nla_len >= NLA_HDRLEN + sizeof(pid)) {
            memcpy(&pid, at + NLA_HDRLEN, sizeof(pid));
            return ntohl(pid);
        }
        if ((size_t)NLA_ALIGN(attr->nla_len) >= left)
            break;
        left -= (size_t)NLA_ALIGN(attr->nla_len);
        at += NLA_ALIGN(attr->nla_len);
    }
    return 0;
}

// The table, with every adopted network's rules and its TAPs' chains in the
// transaction that makes it. 0 or a negative errno (logged).
static int restore_firewall(struct linux_backend *backend) {
    struct firewall_restore *restore;
    struct interface_info **taps;
    size_t n = 0, i = 0;
    int status = -ENOMEM;

    for (struct linux_network *l = backend->live; l != NULL; l = l->next_live)
        n++;
    restore = calloc(n + 1, sizeof(*restore));
    taps = calloc(n + 1, sizeof(*taps));
    if (restore == NULL || taps == NULL)
        goto out;
    for (struct linux_network *l = backend->live; l != NULL;
         l = l->next_live, i++) {
        restore[i].config = &l->config;
        restore[i].info = &l->made;
        // Only anti-spoofing networks give their TAPs a chain.
        if (!l->config.anti_spoofing || l->n_taps == 0)
            continue;
        taps[i] = calloc(l->n_taps, sizeof(**taps));
        if (taps[i] == NULL)
            goto out;
        for (size_t t = 0; t < l->n_taps; t++) {
            struct interface_info *info = &taps[i][t];

            snprintf(info->name, sizeof(info->name), "%s", l->taps[t].name);
            guest_mac(backend->mac_key, l->name, l->taps[t].uid,
                      l->taps[t].index, info->mac);
            info->ipv4 = guest_reservation(l, info->mac);
            if (l->made.ipv6 && l->made.ipv6_prefix_len == 64) {
                guest_slaac(l->made.ipv6_prefix, info->mac, info->ipv6);
                info->has_ipv6 = true;
            }
        }
        restore[i].taps = taps[i];
        restore[i].n_taps = l->n_taps;
    }
    status = firewall_new_restoring(&backend->firewall, restore, n);
    if (status < 0)
        goto out;
    for (struct linux_network *l = backend->live; l != NULL; l = l->next_live)
        l->has_rules = true;
out:
    for (size_t j = 0; taps != NULL && j < n; j++)
        free(taps[j]);
    free(taps);
    free(restore);
    return status;
}

// Reads the state file and adopts what the kernel still vouches for; then
// removes what a previous broker left that no adopted network owns, and
// makes the table with the adopted networks' rules.
static int adopt_and_clean(struct linux_backend *backend,
                           const struct linux_backend_services *services) {
    struct networks_state_entry *entries = NULL;
    struct nl_cache *links = NULL, *addrs = NULL;
    size_t n = 0;
    int killed, err, status;

    if (backend->runtime_dir_fd >= 0)
        networks_state_read(backend->runtime_dir_fd, &entries, &n);
    err = nl_to_errno(rtnl_link_alloc_cache(backend->sock, AF_UNSPEC, &links));
    if (err == 0)
        err = nl_to_errno(rtnl_addr_alloc_cache(backend->sock, &addrs));
    if (err < 0) {
        log_error("cannot list links and addresses: %s; adopting no network",
                  strerror(-err));
        n = 0;
    }
    for (size_t i = 0; i < n; i++)
        adopt_one(backend, services, &entries[i], links, addrs);
    if (links != NULL)
        remove_unadopted_links(backend, links);
    killed =
        dnsmasq_remove_stale_except(backend->runtime_dir, is_adopted, backend);
    if (killed > 0)
        log_info("stopped %d dnsmasq left by a previous broker", killed);
    status = restore_firewall(backend);
    for (struct linux_network *l = backend->live; l != NULL; l = l->next_live)
        log_info("network %s: adopted bridge %s uuid %s with %zu TAP "
                 "device%s and %zu guest reservation%s",
                 l->name, l->bridge, l->made.uuid, l->n_taps,
                 l->n_taps == 1 ? "" : "s", l->n_guests,
                 l->n_guests == 1 ? "" : "s");
    nl_cache_free(links);
    nl_cache_free(addrs);
    free(entries);
    return status;
}

// nftables changed: when a transaction of another process deleted
// something of the broker's table (`nft flush ruleset`, as restarting
// nftables.service does), the table is checked on the worker, once per
// burst of transactions.
static void nft_message(struct linux_backend *backend,
                        const struct nlmsghdr *hdr) {
    if (NFNL_SUBSYS_ID(hdr->nlmsg_type) != NFNL_SUBSYS_NFTABLES)
        return;
    switch (NFNL_MSG_TYPE(hdr->nlmsg_type)) {
    case NFT_MSG_DELTABLE:
    case NFT_MSG_DELCHAIN:
    case NFT_MSG_DELRULE:
    case NFT_MSG_DELSET:
    case NFT_MSG_DELSETELEM:
        if (deletes_in_own_table(hdr))
            backend->nft_dirty = true;
        break;
    case NFT_MSG_NEWGEN:
        // The transaction's last message says whose it was.
        if (backend->nft_dirty && !own_thread(newgen_pid(hdr)))
            backend->nft_check = true;
        backend->nft_dirty = false;
        break;
    default:
        break;
    }
}

static int on_nft_event(sd_event_source *source, int fd, uint32_t revents,
                        void *data) {
    struct linux_backend *backend = data;

    (void)source;
    (void)revents;
    // Events lost: any of them may have been a deletion.
    if (read_netlink(backend, fd, nft_message))
        backend->nft_check = true;
    if (backend->nft_check) {
        backend->nft_check = false;
        queue_table_check(backend);
    }
    return 0;
}

// Subscribes to nftables' events. Not fatal: without it a flushed table
// is not noticed (logged).
static void watch_nftables(struct linux_backend *backend, sd_event *event) {
    struct sockaddr_nl address = {.nl_family = AF_NETLINK};
    int group = NFNLGRP_NFTABLES;
    // A flush of a big ruleset is one event per object.
    int size = 1 << 20;
    int r = 0;

    backend->nft_fd = socket(
        AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER);
    if (backend->nft_fd < 0 ||
        bind(backend->nft_fd, (struct sockaddr *)&address, sizeof(address)) <
            0 ||
        setsockopt(backend->nft_fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group,
                   sizeof(group)) < 0)
        r = -errno;
    if (r == 0) {
        setsockopt(backend->nft_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
        r = sd_event_add_io(event, &backend->nft_source, backend->nft_fd,
                            EPOLLIN, on_nft_event, backend);
    }
    if (r < 0)
        log_warning("cannot watch nftables (%s): a flushed table is not "
                    "restored until the broker restarts",
                    strerror(-r));
}

// dnsmasq's restarts spawn on the worker. Adopted networks are given this
// before the worker exists; their restarts come from the loop, once it does.
static void offload_to_worker(void *ctx, void (*run)(void *arg),
                              void (*done)(void *arg), void *arg) {
    struct linux_backend *backend = ctx;

    linux_worker_queue(backend->worker, run, done, arg);
}

static void close_job(void *arg) { close((int)(intptr_t)arg); }

// The readiness watch's inotify instance: its close waits for the kernel
// to reap its marks (an SRCU grace period), on a closer as TAPs' closes
// do. Before the closers exist, the job runs here.
static void close_on_closer(void *ctx, int fd) {
    struct linux_backend *backend = ctx;

    linux_worker_queue(backend->closers[backend->next_closer++ % CLOSERS],
                       close_job, NULL, (void *)(intptr_t)fd);
}

int linux_backend_enable_services(
    struct linux_backend *backend,
    const struct linux_backend_services *services) {
    int status = -ENOMEM;

    backend->runtime_dir = strdup(services->runtime_dir);
    if (backend->runtime_dir == NULL)
        goto out;
    if (services->dnsmasq_path != NULL) {
        backend->dnsmasq_path = strdup(services->dnsmasq_path);
        if (backend->dnsmasq_path == NULL)
            goto out;
    }
    backend->runtime_dir_fd = services->runtime_dir_fd;
    backend->dnsmasq.event = services->event;
    backend->dnsmasq.runtime_dir = backend->runtime_dir;
    backend->dnsmasq.dnsmasq_path = backend->dnsmasq_path;
    backend->dnsmasq.health_changed = backend_health_changed;
    backend->dnsmasq.health_ctx = backend;
    backend->dnsmasq.offload = offload_to_worker;
    backend->dnsmasq.offload_ctx = backend;
    backend->dnsmasq.close_fd = close_on_closer;
    backend->dnsmasq.close_fd_ctx = backend;
    status = adopt_and_clean(backend, services);
    if (status < 0)
        goto out;
    status = linux_worker_new(services->event, &backend->worker);
    if (status < 0)
        goto out;
    for (int i = 0; i < CLOSERS; i++) {
        status = linux_worker_new(services->event, &backend->closers[i]);
        if (status < 0)
            goto out;
    }
    status = linux_worker_new(services->event, &backend->state_writer);
    if (status < 0)
        goto out;
    status = watch_links(backend, services->event);
    if (status < 0)
        goto out;
    watch_nftables(backend, services->event);
    // Adopted networks with IPv6 are advertised on at once: the previous
    // broker's instance was replaced (adopt_and_clean()).
    for (struct linux_network *l = backend->live; l != NULL; l = l->next_live) {
        if (l->made.ipv6) {
            radv_want(backend);
            break;
        }
    }
    // After the watch: a port that comes or goes meanwhile is seen twice,
    // which counts once. Here, before the core hears of the adopted
    // networks, and on this thread: the worker has no job yet.
    {
        struct ports_dump dump = {.backend = backend};
        dump_links(&dump);
        count_dumped_ports(&dump);
    }
    // Only what was adopted: the next broker must not trust the rest.
    write_state(backend);
out:
    return status;
}

void linux_backend_hand_over(struct linux_backend *backend,
                             const struct linux_adopt_ops *ops, void *ctx) {
    struct linux_network *network = backend->live;

    while (network != NULL) {
        struct linux_network *next = network->next_live;

        if (!network->adopted) {
            network = next;
            continue;
        }
        network->adopted = false;
        if (ops->network(ctx, &network->config, &network->made, network,
                         network->ports > 0) != BROKER_OK) {
            log_warning("network %s: the core refused it: removing it",
                        network->name);
            unlist_network(network);
            watch_remove(network);
            dnsmasq_stop(network->dnsmasq);
            teardown(network);
            free(network->guests);
            free(network->taps);
            free(network);
            write_state(backend);
            network = next;
            continue;
        }
        for (size_t i = 0; i < network->n_taps; i++)
            ops->interface(ctx, network->taps[i].uid, network->name,
                           network->taps[i].index, network->taps[i].name);
        free(network->taps);
        network->taps = NULL;
        network->n_taps = 0;
        network = next;
    }
}

int linux_backend_remove_stale(struct linux_backend *backend) {
    struct nl_cache *links = NULL;
    int removed = 0;
    int err =
        nl_to_errno(rtnl_link_alloc_cache(backend->sock, AF_UNSPEC, &links));

    if (err < 0) {
        log_error("cannot list links to remove stale bridges: %s",
                  strerror(-err));
        return 0;
    }
    for (struct nl_object *obj = nl_cache_get_first(links); obj != NULL;
         obj = nl_cache_get_next(obj)) {
        struct rtnl_link *link = (struct rtnl_link *)obj;
        const char *name = rtnl_link_get_name(link);
        const char *alias = rtnl_link_get_ifalias(link);

        if (!linux_bridge_is_marked(name, rtnl_link_get_type(link), alias))
            continue;
        err = nl_to_errno(rtnl_link_delete(backend->sock, link));
        if (err < 0) {
            log_error("cannot remove stale bridge %s of network %s: %s", name,
                      alias, strerror(-err));
            continue;
        }
        log_info("removed stale bridge %s of network %s", name, alias);
        removed++;
    }
    nl_cache_free(links);
    // TAP devices of a previous broker: persistent ones would live on
    // uncounted, and the others lost their bridge above.
    err = tap_remove_marked(backend->sock, NULL);
    if (err > 0)
        log_info("removed %d TAP devices left by a previous broker", err);
    return removed;
}

// Fills info->subnet, mask and gateway from a static subnet, refusing one
// the host already uses.
static bool use_static_subnet(const struct network_config *config,
                              const struct host_networks *host,
                              struct network_info *info, struct reason *why) {
    uint32_t network = config->subnet & config->mask;
    struct ipv4_prefix wanted = {network, ipv4_mask_len(config->mask)};
    char address[16];
    char what[64];

    if (!ipv4_mask_valid(config->mask)) {
        log_error("network %s: invalid mask %s", config->name,
                  ipv4_format(config->mask, address));
        reason_set(why, "invalid mask %s", address);
        return false;
    }
    for (size_t i = 0; i < host->n; i++) {
        if (ipv4_prefix_overlaps(wanted, host->prefixes[i])) {
            log_error(
                "network %s: subnet %s/%u overlaps %s", config->name,
                ipv4_format(network, address), wanted.len,
                linux_host_networks_describe(host, i, what, sizeof(what)));
            reason_set(why, "subnet %s/%u overlaps %s", address, wanted.len,
                       what);
            return false;
        }
    }
    info->subnet = network;
    info->mask = config->mask;
    info->gateway = network_config_gateway(config);
    return true;
}

static bool overlaps_any(struct ipv4_prefix prefix,
                         const struct host_networks *host) {
    for (size_t i = 0; i < host->n; i++) {
        if (ipv4_prefix_overlaps(prefix, host->prefixes[i]))
            return true;
    }
    return false;
}

// A free /24 of the pool, leaving the subnets other names had last time to
// them while another one is free.
static bool choose_from_pool(const struct linux_backend *backend,
                             const struct network_config *config,
                             const struct host_networks *host,
                             struct ipv4_prefix *chosen) {
    struct ipv4_prefix *used = malloc(host->n * sizeof(*used) + 1);
    size_t n = host->n;
    bool found = false;

    if (used != NULL) {
        memcpy(used, host->prefixes, host->n * sizeof(*used));
        found =
            stable_addresses_others(backend->stable, config->name, &used, &n) &&
            subnet_choose_in(backend->pool_first, backend->pool_last, used, n,
                             chosen);
        free(used);
    }
    return found || subnet_choose_in(backend->pool_first, backend->pool_last,
                                     host->prefixes, host->n, chosen);
}

// The subnet this name had last time when it is still free (host holds the
// host's addresses and routes and the broker's own networks' subnets, so
// never one of those), else a free /24 of the pool.
static bool choose_free_subnet(const struct linux_backend *backend,
                               const struct network_config *config,
                               const struct host_networks *host,
                               struct network_info *info, struct reason *why) {
    struct ipv4_prefix chosen;
    char first[16], last[16];

    if (stable_addresses_subnet(backend->stable, config->name, &chosen) &&
        !overlaps_any(chosen, host)) {
        log_debug("network %s: the subnet it had last time is free",
                  config->name);
    } else if (!choose_from_pool(backend, config, host, &chosen)) {
        log_error("network %s: every /24 from %s to %s overlaps an address "
                  "or route on the host",
                  config->name, ipv4_format(backend->pool_first, first),
                  ipv4_format(backend->pool_last, last));
        reason_set(why,
                   "no free subnet: every /24 from %s to %s overlaps an "
                   "address or route on the host",
                   first, last);
        return false;
    }
    if (backend->stable != NULL)
        stable_addresses_remember(backend->stable, config->name, &chosen, NULL);
    info->subnet = chosen.address;
    info->mask = ipv4_prefix_mask(chosen.len);
    info->gateway = chosen.address + 1;
    return true;
}

// A unique local /64 (RFC 4193: fd00::/8, a 40-bit global ID, subnet 0).
// The global ID is a keyed hash of the name under the per-host secret (RFC
// 4193 section 3.2.2 allows any pseudo-random choice), so a name gets the
// same prefix on this host even when subnets.json is lost, and another host
// cannot predict it; random while there is no secret (bridge-only backend).
static bool make_ula(const struct linux_backend *backend, const char *name,
                     uint8_t prefix[16]) {
    static const uint8_t no_key[GUEST_MAC_KEY_LEN];
    char data[NETWORK_NAME_MAX + 8];
    uint64_t hash;
    int len;

    memset(prefix, 0, 16);
    prefix[0] = 0xfd;
    if (memcmp(backend->mac_key, no_key, sizeof(no_key)) == 0)
        return getrandom(prefix + 1, 5, 0) == 5;
    // Prefixed, so that no guest MAC input hashes alike.
    len = snprintf(data, sizeof(data), "ula:%s", name);
    hash = siphash24(backend->mac_key, data, (size_t)len);
    for (int i = 0; i < 5; i++)
        prefix[1 + i] = (uint8_t)(hash >> (8 * i));
    return true;
}

static void remove_rules(struct linux_backend *backend,
                         struct linux_network *network) {
    if (network->has_rules)
        firewall_remove_network(backend->firewall, network->bridge);
    network->has_rules = false;
}

// Everything beyond the bridge but dnsmasq: IPv6, checksums, forwarding,
// rules. Fills the rest of *info. On failure logs, undoes nothing (the
// caller's teardown does) and returns false. On the worker.
static bool add_services(struct linux_backend *backend,
                         const struct network_config *config,
                         struct linux_network *network,
                         struct network_info *info) {
    int err;

    info->dns = info->gateway;
    info->dhcp = config->dhcp;
    if (config->has_dhcp_range) {
        info->dhcp_start = config->dhcp_start;
        info->dhcp_end = config->dhcp_end;
    } else {
        network_default_dhcp_range(info->subnet, info->mask, info->gateway,
                                   &info->dhcp_start, &info->dhcp_end);
    }
    info->ipv6 = config->ipv6;
    if (info->ipv6) {
        uint8_t gateway6[16];
        if (config->has_ipv6_prefix) {
            memcpy(info->ipv6_prefix, config->ipv6_prefix, 16);
        } else if (stable_addresses_ipv6(backend->stable, config->name,
                                         info->ipv6_prefix)) {
            // The prefix this name had last time: guests keep addresses.
        } else if (!make_ula(backend, config->name, info->ipv6_prefix)) {
            log_error("network %s: cannot read random bytes", config->name);
            return false;
        } else if (backend->stable != NULL) {
            stable_addresses_remember(backend->stable, config->name, NULL,
                                      info->ipv6_prefix);
        }
        info->ipv6_prefix_len = 64;
        memcpy(gateway6, info->ipv6_prefix, 16);
        gateway6[15] = 1;
        err = linux_bridge_add_address6(backend->sock, network->ifindex,
                                        gateway6, 64);
        if (err < 0) {
            log_error("network %s: cannot add the IPv6 gateway to %s: %s",
                      config->name, network->bridge, strerror(-err));
            reason_set(&network->why, "cannot add the IPv6 gateway to %s: %s",
                       network->bridge, strerror(-err));
            return false;
        }
    }
    err = linux_bridge_disable_tx_checksum(network->bridge);
    if (err < 0)
        log_warning("network %s: cannot turn off tx checksum offload on %s "
                    "(%s): guests with vhost-net may miss DHCP replies",
                    config->name, network->bridge, strerror(-err));
    if (config->mode == NETWORK_MODE_SHARED) {
        if (sysctl_enable_forwarding(info->ipv6) < 0) {
            reason_set(&network->why,
                       "cannot turn on IP forwarding (see the broker's log)");
            return false;
        }
        if (config->n_port_forwards > 0 &&
            sysctl_enable_route_localnet(network->bridge) < 0) {
            reason_set(&network->why,
                       "cannot set route_localnet on %s for port forwards "
                       "(see the broker's log)",
                       network->bridge);
            return false;
        }
        // Listing every chain costs in proportion to the networks: look
        // again at most every FORWARD_CHECK_USEC, not at every creation.
        if (backend->forward_checked == 0 ||
            monotonic_usec() - backend->forward_checked >= FORWARD_CHECK_USEC) {
            backend->forward_checked = monotonic_usec();
            firewall_foreign_forward_drop(backend->firewall);
        }
    }
    if (firewall_add_network(backend->firewall, config, info) < 0) {
        reason_set(&network->why,
                   "cannot add the nftables rules (a host port forwarded "
                   "twice? see the broker's log)");
        return false;
    }
    network->has_rules = true;
    // What the rules do, for an administrator reading the log.
    for (size_t i = 0; i < config->n_port_forwards; i++) {
        const struct port_forward *forward = &config->port_forwards[i];
        char guest[16];
        log_info("network %s: forwarding host port %s/%u to %s:%u",
                 config->name, forward->udp ? "udp" : "tcp",
                 (unsigned)forward->host_port,
                 ipv4_format(forward->guest_address, guest),
                 (unsigned)forward->guest_port);
    }
    return true;
}

// Removes the bridge. Returns 0 or a negative errno (logged).
static int remove_bridge(struct linux_backend *backend,
                         struct linux_network *network) {
    int err;

    if (!network->bridge_exists)
        return 0;
    network->bridge_exists = false;
    err = linux_bridge_delete(backend->sock, network->ifindex, network->bridge);
    if (err == 0) {
        log_info("removed bridge %s", network->bridge);
        return 0;
    }
    if (err == -ENODEV) {
        log_warning("bridge %s was already removed", network->bridge);
        return 0;
    }
    log_error("cannot remove bridge %s: %s", network->bridge, strerror(-err));
    return err;
}

// Forgets network's subnet (worker only).
static void own_remove(struct linux_backend *backend,
                       const struct linux_network *network) {
    for (size_t i = 0; i < backend->n_own; i++) {
        if (backend->own[i].network == network) {
            backend->own[i] = backend->own[--backend->n_own];
            return;
        }
    }
}

// Remembers network's subnet (worker only). False without memory.
static bool own_add(struct linux_backend *backend,
                    const struct linux_network *network) {
    struct own_subnet *grown =
        realloc(backend->own, (backend->n_own + 1) * sizeof(*grown));

    if (grown == NULL)
        return false;
    backend->own = grown;
    grown[backend->n_own].network = network;
    memcpy(grown[backend->n_own].bridge, network->bridge, IFNAMSIZ);
    grown[backend->n_own].prefix = (struct ipv4_prefix){
        network->made.subnet, ipv4_mask_len(network->made.mask)};
    backend->n_own++;
    return true;
}

// Adds the subnets of the broker's own networks to what the host uses: a
// bridge deleted behind the broker's back (and about to be made again)
// takes its addresses with it. False without memory.
static bool add_own_subnets(const struct linux_backend *backend,
                            struct host_networks *host) {
    size_t n = host->n + backend->n_own + 1;
    struct ipv4_prefix *prefixes =
        realloc(host->prefixes, n * sizeof(*prefixes));
    struct host_prefix_origin *origins;

    if (prefixes == NULL)
        return false;
    host->prefixes = prefixes;
    origins = realloc(host->origins, n * sizeof(*origins));
    if (origins == NULL)
        return false;
    host->origins = origins;
    for (size_t i = 0; i < backend->n_own; i++) {
        host->prefixes[host->n] = backend->own[i].prefix;
        host->origins[host->n] = (struct host_prefix_origin){0};
        memcpy(host->origins[host->n].dev, backend->own[i].bridge, IFNAMSIZ);
        host->n++;
    }
    return true;
}

// On the worker: the bridge and its TAP devices.
static void remove_devices(void *data) {
    struct linux_network *network = data;

    // Its subnet may be chosen again once its bridge is gone.
    own_remove(network->backend, network);
    remove_bridge(network->backend, network);
    tap_remove_marked(network->backend->sock, network->config.name);
}

// On the worker: the rules, then the bridge.
static void teardown(void *data) {
    struct linux_network *network = data;

    remove_rules(network->backend, network);
    remove_devices(network);
}

// On the worker, as soon as a removal starts, while dnsmasq stops: the
// bridge first (nothing waits for dnsmasq's exit to delete it: with no
// bridge no frame needs the rules), then the rules and the TAP devices. The
// subnet stays the network's until dnsmasq has exited too (forget_subnet).
static void teardown_devices(void *data) {
    struct linux_network *network = data;

    remove_bridge(network->backend, network);
    remove_rules(network->backend, network);
    tap_remove_marked(network->backend->sock, network->config.name);
}

// On the worker, once the devices are gone and dnsmasq has exited: the
// subnet may be chosen again.
static void forget_subnet(void *data) {
    struct linux_network *network = data;

    own_remove(network->backend, network);
}

// On the worker: everything the kernel does for a new network but dnsmasq
// (netlink, sysctl, nftables: milliseconds the loop must not wait for).
static void build(void *data) {
    struct linux_network *network = data;
    struct linux_backend *backend = network->backend;
    const struct network_config *config = &network->config;
    struct network_info *made = &network->made;
    struct host_networks host = {0};
    uint8_t *mac = network->mac;
    char gateway[16];
    int ifindex = 0;
    int err;

    network->status = BROKER_ERR_INTERNAL;
    if (!uuid_generate(made->uuid) || !linux_bridge_random_mac(mac)) {
        log_error("network %s: cannot read random bytes", config->name);
        goto out;
    }
    network->status = BROKER_ERR_CREATE_FAILURE;
    err = linux_host_networks_read(backend->sock, &host);
    if (err < 0) {
        log_error("network %s: cannot read the host's addresses and routes: %s",
                  config->name, strerror(-err));
        reason_set(&network->why,
                   "cannot read the host's addresses and routes: %s",
                   strerror(-err));
        goto out;
    }
    if (!add_own_subnets(backend, &host)) {
        log_error("network %s: out of memory", config->name);
        reason_set(&network->why, "the broker is out of memory");
        goto out;
    }
    if (config->has_subnet
            ? !use_static_subnet(config, &host, made, &network->why)
            : !choose_free_subnet(backend, config, &host, made, &network->why))
        goto out;
    made->mtu = config->mtu != 0              ? config->mtu
                : host.default_route_mtu != 0 ? host.default_route_mtu
                                              : DEFAULT_MTU;
    err = linux_bridge_add(backend->sock, network->bridge, config->name, mac,
                           made->mtu, &ifindex);
    network->ifindex = ifindex;
    if (err == -EEXIST) {
        log_error("network %s: interface %s exists and is not ours",
                  config->name, network->bridge);
        reason_set(&network->why, "interface %s exists and is not the broker's",
                   network->bridge);
        goto out;
    }
    if (err < 0) {
        log_error("network %s: cannot create bridge %s (mtu %u): %s",
                  config->name, network->bridge, made->mtu, strerror(-err));
        reason_set(&network->why, "cannot create bridge %s (mtu %u): %s",
                   network->bridge, made->mtu, strerror(-err));
        goto out;
    }
    network->bridge_exists = true;
    err = linux_bridge_add_address(backend->sock, network->ifindex,
                                   made->gateway, ipv4_mask_len(made->mask));
    if (err < 0) {
        log_error("network %s: cannot add %s/%u to %s: %s", config->name,
                  ipv4_format(made->gateway, gateway),
                  ipv4_mask_len(made->mask), network->bridge, strerror(-err));
        reason_set(&network->why, "cannot add %s/%u to %s: %s", gateway,
                   ipv4_mask_len(made->mask), network->bridge, strerror(-err));
        goto out;
    }
    err = linux_bridge_set_up(backend->sock, network->ifindex);
    if (err < 0) {
        log_error("network %s: cannot set %s up: %s", config->name,
                  network->bridge, strerror(-err));
        reason_set(&network->why, "cannot set %s up: %s", network->bridge,
                   strerror(-err));
        goto out;
    }
    memcpy(made->bridge, network->bridge, sizeof(made->bridge));
    if (backend->firewall != NULL &&
        !add_services(backend, config, network, made))
        goto out;
    if (!own_add(backend, network)) {
        log_error("network %s: out of memory", config->name);
        reason_set(&network->why, "the broker is out of memory");
        goto out;
    }
    log_info("network %s: bridge %s, gateway %s/%u, mtu %u", config->name,
             made->bridge, ipv4_format(made->gateway, gateway),
             ipv4_mask_len(made->mask), made->mtu);
    // Its files and its fork/exec here too; the loop only watches it.
    if (backend->firewall != NULL &&
        dnsmasq_spawn(&backend->dnsmasq, config, made, &network->spawned) < 0) {
        reason_set(&network->why,
                   "cannot start dnsmasq (is the dnsmasq-base package "
                   "installed? see the broker's log)");
        goto out;
    }
    network->status = BROKER_OK;
out:
    if (network->status != BROKER_OK)
        teardown(network);
    linux_host_networks_clear(&host);
}

// ---- Repairs: what was changed behind the broker's back -------------------

static void watch_add(struct linux_network *network) {
    struct linux_backend *backend = network->backend;

    if (network->watched)
        return;
    network->watched = true;
    network->next_watched = backend->watched;
    backend->watched = network;
}

static void watch_remove(struct linux_network *network) {
    struct linux_network **p = &network->backend->watched;

    if (!network->watched)
        return;
    while (*p != NULL && *p != network)
        p = &(*p)->next_watched;
    if (*p == network)
        *p = network->next_watched;
    network->watched = false;
    network->next_watched = NULL;
}

// Appends what a repair did to network->repaired.
static void repaired(struct linux_network *network, const char *what) {
    size_t used = strlen(network->repaired);

    snprintf(network->repaired + used, sizeof(network->repaired) - used, "%s%s",
             used > 0 ? ", " : "", what);
}

// Adds the bridge's addresses where they are missing, and says so. The
// kernel answers EXIST for one that is there. Returns false on failure
// (network->repair_trouble says why).
static bool repair_addresses(struct linux_backend *backend,
                             struct linux_network *network) {
    const struct network_info *made = &network->made;
    char gateway[16];
    char what[64];
    int err =
        linux_bridge_add_address(backend->sock, network->ifindex, made->gateway,
                                 ipv4_mask_len(made->mask));

    ipv4_format(made->gateway, gateway);
    if (err == 0) {
        snprintf(what, sizeof(what), "added its address %s/%u", gateway,
                 ipv4_mask_len(made->mask));
        repaired(network, what);
        // dnsmasq answers on the address it had when it bound.
        network->restart_dnsmasq = true;
    } else if (err != -EEXIST) {
        snprintf(network->repair_trouble, sizeof(network->repair_trouble),
                 "cannot add %s/%u to bridge %s: %s", gateway,
                 ipv4_mask_len(made->mask), network->bridge, strerror(-err));
        return false;
    }
    if (made->ipv6 && backend->firewall != NULL) {
        uint8_t gateway6[16];

        memcpy(gateway6, made->ipv6_prefix, 16);
        gateway6[15] = 1;
        // Setting a link down drops its IPv6 addresses.
        err = linux_bridge_add_address6(backend->sock, network->ifindex,
                                        gateway6, 64);
        if (err == 0) {
            repaired(network, "added its IPv6 gateway");
            // dnsmasq binds its addresses once, at start (bind-interfaces).
            network->restart_dnsmasq = true;
        } else if (err != -EEXIST) {
            snprintf(network->repair_trouble, sizeof(network->repair_trouble),
                     "cannot add the IPv6 gateway to bridge %s: %s",
                     network->bridge, strerror(-err));
            return false;
        }
    }
    return true;
}

// Makes the deleted bridge again as build() made it: same name, alias, MAC,
// MTU, addresses and per-bridge settings, up, with the network's TAP
// devices (which lost their port with it) attached again. The rules match
// the bridge by name and need nothing.
static bool remake_bridge(struct linux_backend *backend,
                          struct linux_network *network) {
    const struct network_info *made = &network->made;
    char what[64];
    int ifindex = 0;
    int err = linux_bridge_add(backend->sock, network->bridge, network->name,
                               network->mac, made->mtu, &ifindex);
    int taps;

    network->ifindex = ifindex;

    if (err < 0) {
        snprintf(network->repair_trouble, sizeof(network->repair_trouble),
                 "bridge %s was deleted and cannot be made again: %s",
                 network->bridge, strerror(-err));
        return false;
    }
    snprintf(what, sizeof(what), "made bridge %s again (it was deleted)",
             network->bridge);
    repaired(network, what);
    network->restart_dnsmasq = true;
    if (!repair_addresses(backend, network))
        return false;
    err = linux_bridge_set_up(backend->sock, network->ifindex);
    if (err < 0) {
        snprintf(network->repair_trouble, sizeof(network->repair_trouble),
                 "cannot set bridge %s up: %s", network->bridge,
                 strerror(-err));
        return false;
    }
    if (backend->firewall != NULL) {
        // After up, which would drop an IPv6 address added before.
        if (!repair_addresses(backend, network))
            return false;
        linux_bridge_disable_tx_checksum(network->bridge);
        if (network->config.mode == NETWORK_MODE_SHARED &&
            network->config.n_port_forwards > 0)
            sysctl_enable_route_localnet(network->bridge);
    }
    taps = tap_reattach_marked(backend->sock, network->name, network->ifindex,
                               network->config.port_isolation);
    if (taps > 0) {
        snprintf(what, sizeof(what), "attached %d TAP device%s to it again",
                 taps, taps == 1 ? "" : "s");
        repaired(network, what);
    }
    return true;
}

// On the worker: looks at the network's bridge and repairs what is
// missing (the bridge itself, its being up, its addresses).
static void repair_bridge(void *data) {
    struct linux_network *network = data;
    struct linux_backend *backend = network->backend;
    struct rtnl_link *link = NULL;
    int err;

    network->repaired[0] = '\0';
    network->repair_trouble[0] = '\0';
    network->restart_dnsmasq = false;
    // Torn down meanwhile: nothing to look after.
    if (!network->bridge_exists)
        return;
    err = nl_to_errno(
        rtnl_link_get_kernel(backend->sock, 0, network->bridge, &link));
    if (err == -ENODEV || err == -ENOENT) {
        remake_bridge(backend, network);
        return;
    }
    if (err < 0) {
        snprintf(network->repair_trouble, sizeof(network->repair_trouble),
                 "cannot look at bridge %s: %s", network->bridge,
                 strerror(-err));
        return;
    }
    if (!linux_bridge_is_marked(network->bridge, rtnl_link_get_type(link),
                                rtnl_link_get_ifalias(link))) {
        snprintf(network->repair_trouble, sizeof(network->repair_trouble),
                 "bridge %s was replaced by an interface that is not the "
                 "broker's",
                 network->bridge);
        goto out;
    }
    network->ifindex = rtnl_link_get_ifindex(link);
    if (!(rtnl_link_get_flags(link) & IFF_UP)) {
        err = linux_bridge_set_up(backend->sock, network->ifindex);
        if (err < 0) {
            snprintf(network->repair_trouble, sizeof(network->repair_trouble),
                     "bridge %s was set down and cannot be set up: %s",
                     network->bridge, strerror(-err));
            goto out;
        }
        repaired(network, "set its bridge up again");
    }
    repair_addresses(backend, network);
out:
    rtnl_link_put(link);
}

// Sets one of network's troubles (size bytes; "" when whole), telling the
// core when that changes what degraded() says.
static void set_trouble(struct linux_network *network, char *trouble,
                        size_t size, const char *why) {
    if (strcmp(trouble, why) == 0)
        return;
    snprintf(trouble, size, "%s", why);
    backend_health_changed(network->backend);
}

// Back on the loop: logs the repair and starts dnsmasq again on a bridge
// made again (the old one lost its interface).
static void bridge_repaired(void *data) {
    struct linux_network *network = data;

    network->repair_queued = false;
    // Its removal has started: what the repair did goes with it.
    if (!network->watched)
        return;
    if (network->repaired[0] != '\0')
        log_warning("network %s: repaired: %s", network->name,
                    network->repaired);
    if (network->repair_trouble[0] != '\0')
        log_error("network %s: %s", network->name, network->repair_trouble);
    set_trouble(network, network->bridge_trouble,
                sizeof(network->bridge_trouble), network->repair_trouble);
    if (network->restart_dnsmasq && network->dnsmasq != NULL) {
        log_warning("network %s: restarting dnsmasq on the new bridge",
                    network->name);
        dnsmasq_restart(network->dnsmasq);
    }
    if (network->repair_again) {
        network->repair_again = false;
        queue_repair(network);
    }
}

static void queue_repair(struct linux_network *network) {
    if (network->repair_queued) {
        network->repair_again = true;
        return;
    }
    network->repair_queued = true;
    linux_worker_queue(network->backend->worker, repair_bridge, bridge_repaired,
                       network);
}

// (Re-)adds every rule of one live network: its own (unless the firewall
// has them) and the chains of its TAP devices that a flushed table took
// with it. On the worker. Returns how many TAP chains were restored, or a
// negative errno (logged).
int network_restore_rules(struct linux_backend *backend,
                          struct linux_network *network) {
    int err;

    // No rules to restore: the bridge-only backend, or torn down.
    if (backend->firewall == NULL || !network->has_rules)
        return 0;
    if (!firewall_has_network(backend->firewall, network->bridge)) {
        err = firewall_add_network(backend->firewall, &network->config,
                                   &network->made);
        if (err < 0)
            return err;
    }
    return firewall_restore_interfaces(backend->firewall, network->bridge);
}

static void restore_rules(void *data) {
    struct linux_network *network = data;

    network->rules_restored = network_restore_rules(network->backend, network);
}

static void rules_restored(void *data) {
    struct linux_network *network = data;
    char why[sizeof(network->rules_trouble)];

    if (!network->watched)
        return;
    if (network->rules_restored < 0) {
        snprintf(why, sizeof(why),
                 "its nftables rules were removed and cannot be restored: "
                 "%s (see the broker's log)",
                 strerror(-network->rules_restored));
        log_error("network %s: %s", network->name, why);
        set_trouble(network, network->rules_trouble,
                    sizeof(network->rules_trouble), why);
        return;
    }
    log_warning("network %s: repaired: restored its nftables rules and %d "
                "TAP chain%s",
                network->name, network->rules_restored,
                network->rules_restored == 1 ? "" : "s");
    set_trouble(network, network->rules_trouble, sizeof(network->rules_trouble),
                "");
}

// On the worker: the table is made again when it is not whole.
static void check_table(void *data) {
    struct linux_backend *backend = data;

    backend->table_recreated = false;
    backend->table_broken = false;
    if (backend->firewall == NULL || firewall_intact(backend->firewall))
        return;
    backend->table_recreated = firewall_recreate(backend->firewall) == 0;
    backend->table_broken = !backend->table_recreated;
}

static void table_checked(void *data) {
    struct linux_backend *backend = data;
    size_t n = 0;

    backend->table_check_queued = false;
    if (backend->table_recreated) {
        for (struct linux_network *network = backend->watched; network != NULL;
             network = network->next_watched)
            n++;
        log_warning("firewall: table %s was flushed or changed behind the "
                    "broker's back: made it again; restoring the rules of "
                    "%zu network%s",
                    linux_instance_table(), n, n == 1 ? "" : "s");
        // Queued while each is live: a removal's teardown comes after.
        for (struct linux_network *network = backend->watched; network != NULL;
             network = network->next_watched)
            linux_worker_queue(backend->worker, restore_rules, rules_restored,
                               network);
    }
    // Logged by the firewall; the next foreign change tries again.
    for (struct linux_network *network = backend->watched;
         backend->table_broken && network != NULL;
         network = network->next_watched)
        set_trouble(network, network->rules_trouble,
                    sizeof(network->rules_trouble),
                    "its nftables rules were removed and the table cannot be "
                    "made again (see the broker's log)");
    if (backend->table_check_again) {
        backend->table_check_again = false;
        queue_table_check(backend);
    }
}

static void queue_table_check(struct linux_backend *backend) {
    if (backend->table_check_queued) {
        backend->table_check_again = true;
        return;
    }
    backend->table_check_queued = true;
    linux_worker_queue(backend->worker, check_table, table_checked, backend);
}

static const char *linux_network_degraded(void *ctx, void *handle) {
    struct linux_network *network = handle;

    (void)ctx;
    if (network == NULL)
        return NULL;
    if (network->dnsmasq != NULL && dnsmasq_failed(network->dnsmasq))
        return "dnsmasq failed again and again and is no longer restarted: "
               "the network has no DHCP or DNS";
    if (network->made.ipv6 && radv_failed(network->backend))
        return "the router advertisements' dnsmasq failed again and again "
               "and is no longer restarted: guests get no IPv6 address";
    if (network->bridge_trouble[0] != '\0')
        return network->bridge_trouble;
    return network->rules_trouble[0] != '\0' ? network->rules_trouble : NULL;
}

// Ends the creation: the handle is freed on failure, as the core expects.
static void end_create(struct linux_network *network, int status) {
    backend_create_done_fn created = network->created;
    void *done_data = network->done_data;
    // A copy: the handle goes before the core hears of the failure.
    struct reason why = network->why;

    network->created = NULL;
    if (status != BROKER_OK) {
        free(network);
    } else {
        // Ready: its bridge's ports count, and the next broker adopts it.
        list_network(network);
        if (network->dnsmasq != NULL)
            dnsmasq_set_restarted(network->dnsmasq, on_dnsmasq_restarted,
                                  network);
        if (network->made.ipv6)
            radv_want(network->backend);
        write_state(network->backend);
    }
    created(done_data, status, status != BROKER_OK ? reason_get(&why) : NULL);
}

static void on_failed_teardown(void *data) {
    end_create(data, BROKER_ERR_CREATE_FAILURE);
}

// dnsmasq answered (or failed to): the creation ends.
static void on_dnsmasq_ready(void *data, int status) {
    struct linux_network *network = data;

    if (status == 0) {
        const struct network_info *info = &network->made;
        if (info->dhcp) {
            char start[16], end[16];
            log_info("network %s: DHCP from %s to %s, %zu reservation%s",
                     network->name, ipv4_format(info->dhcp_start, start),
                     ipv4_format(info->dhcp_end, end),
                     network->config.n_reservations,
                     network->config.n_reservations == 1 ? "" : "s");
        }
        end_create(network, BROKER_OK);
        return;
    }
    log_error("network %s: dnsmasq did not start: %s", network->name,
              strerror(-status));
    reason_set(&network->why,
               "cannot start dnsmasq: %s (is the dnsmasq-base package "
               "installed? see the broker's log)",
               strerror(-status));
    dnsmasq_stop(network->dnsmasq);
    network->dnsmasq = NULL;
    watch_remove(network);
    linux_worker_queue(network->backend->worker, teardown, on_failed_teardown,
                       network);
}

// Back on the loop after build(): dnsmasq, spawned by build(), is watched
// here.
static void built(void *data) {
    struct linux_network *network = data;
    struct linux_backend *backend = network->backend;

    if (network->status != BROKER_OK) {
        end_create(network, network->status);
        return;
    }
    *network->info = network->made;
    watch_add(network);
    // Without services (bridges only) there is nothing to wait for.
    if (backend->firewall == NULL) {
        end_create(network, BROKER_OK);
        return;
    }
    network->dnsmasq = network->spawned;
    network->spawned = NULL;
    if (dnsmasq_watch(network->dnsmasq, on_dnsmasq_ready, network) < 0) {
        watch_remove(network);
        reason_set(&network->why, "cannot watch dnsmasq (see the broker's "
                                  "log)");
        dnsmasq_stop(network->dnsmasq);
        network->dnsmasq = NULL;
        linux_worker_queue(backend->worker, teardown, on_failed_teardown,
                           network);
    }
}

static void linux_network_create(void *ctx, const struct network_config *config,
                                 struct network_info *info, void **handle,
                                 backend_create_done_fn done, void *data) {
    struct linux_backend *backend = ctx;
    struct linux_network *network = calloc(1, sizeof(*network));

    if (network == NULL) {
        log_error("network %s: out of memory", config->name);
        done(data, BROKER_ERR_INTERNAL, "the broker is out of memory");
        return;
    }
    network->backend = backend;
    network->config = *config;
    network->info = info;
    network->created = done;
    network->done_data = data;
    snprintf(network->name, sizeof(network->name), "%s", config->name);
    linux_bridge_name(config->name, network->bridge);
    *handle = network;
    linux_worker_queue(backend->worker, build, built, network);
}

static void on_torn_down(void *data) {
    struct linux_network *network = data;
    backend_destroy_done_fn destroyed = network->destroyed;
    void *done_data = network->done_data;

    free(network->guests);
    free(network);
    destroyed(done_data);
}

// The devices are gone and dnsmasq has ended: only now is the subnet free
// for another network. dnsmasq's sockets stay bound to the gateway address
// after the bridge is gone, and a new network given the subnet could not
// start its own dnsmasq there (EADDRINUSE) until it exits.
static void removal_part_done(struct linux_network *network) {
    if (--network->removal_parts > 0)
        return;
    linux_worker_queue(network->backend->worker, forget_subnet, on_torn_down,
                       network);
}

static void on_devices_removed(void *data) { removal_part_done(data); }

static void on_dnsmasq_stopped(void *data) {
    struct linux_network *network = data;

    network->stopping = NULL;
    removal_part_done(network);
}

// The worker removes the bridge and the rules while dnsmasq stops; the
// removal ends when both have.
static void linux_network_destroy(void *ctx, void *handle,
                                  backend_destroy_done_fn done, void *data) {
    struct linux_network *network = handle;
    struct dnsmasq *dnsmasq = network->dnsmasq;

    (void)ctx;
    // Half removed is nothing to adopt.
    unlist_network(network);
    write_state(network->backend);
    watch_remove(network);
    network->dnsmasq = NULL;
    network->destroyed = done;
    network->done_data = data;
    // Set before either part starts: either may end at once (and the last
    // may free the network).
    network->removal_parts = dnsmasq != NULL ? 2 : 1;
    if (dnsmasq != NULL)
        network->stopping = dnsmasq;
    linux_worker_queue(network->backend->worker, teardown_devices,
                       on_devices_removed, network);
    if (dnsmasq != NULL)
        dnsmasq_stop_async(dnsmasq, on_dnsmasq_stopped, network);
}

static void linux_network_abandon(void *ctx, void *handle) {
    struct linux_backend *backend = ctx;
    struct linux_network *network = handle;

    if (network == NULL)
        return;
    watch_remove(network);
    // Whatever the worker was doing for any network is done, and nothing it
    // would finish is called.
    linux_worker_drain(backend->worker);
    unlist_network(network);
    dnsmasq_stop(network->stopping);
    dnsmasq_stop(network->dnsmasq);
    dnsmasq_stop(network->spawned);
    teardown(network);
    free(network->guests);
    free(network->taps);
    free(network);
}

// Leaves a ready network running (its bridge has ports): it stays listed,
// so linux_backend_free() writes it to the state file for the next broker
// and keeps its rules.
static void linux_network_leave(void *ctx, void *handle) {
    struct linux_backend *backend = ctx;
    struct linux_network *network = handle;

    if (network == NULL)
        return;
    if (!network->listed) {
        linux_network_abandon(ctx, handle);
        return;
    }
    // A TAP being made for it finishes; nothing it would call is called.
    linux_worker_drain(backend->worker);
    network->left = true;
    // No repairs during the exit.
    watch_remove(network);
    log_info("network %s: left running on bridge %s for the next broker",
             network->name, network->bridge);
}

static void forget_sent(void *data);

// A TAP device being made on the worker: its netlink requests wait for
// the kernel's RTNL lock, which a bridge's removal may hold for long.
struct tap_job {
    struct linux_backend *backend;
    char bridge[IFNAMSIZ];
    char network[NETWORK_NAME_MAX + 1];
    uint32_t uid;
    uint32_t gid;
    unsigned index;
    bool anti_spoofing;
    bool port_isolation;
    struct network_info net;
    struct tap_info tap;
    struct interface_info info;
    int fd; // or a negative errno
    backend_interface_done_fn done;
    void *data;
};

// The guest's port filters (isolation, anti-spoofing), before the client
// has the descriptor and so before the guest can send. Returns 0 or a
// negative errno (logged).
static int filter_tap(struct tap_job *job) {
    struct linux_backend *backend = job->backend;
    int err;

    if (job->port_isolation) {
        err = linux_bridge_port_set_isolated(
            backend->sock, (int)if_nametoindex(job->info.name));
        if (err < 0) {
            log_error("cannot isolate %s on %s: %s", job->info.name,
                      job->bridge, strerror(-err));
            return err;
        }
    }
    if (job->anti_spoofing && backend->firewall != NULL)
        return firewall_add_interface(backend->firewall, &job->net, &job->info);
    return 0;
}

static void open_tap(void *data) {
    struct tap_job *job = data;
    int status;

    // Chains of TAPs whose removal the link monitor has not reported yet.
    if (job->backend->firewall != NULL)
        firewall_remove_gone_interfaces(job->backend->firewall);
    job->fd = tap_open(job->bridge, job->network, job->uid, job->gid,
                       job->index, job->backend->mac_key, &job->tap);
    if (job->fd < 0)
        return;
    _Static_assert(sizeof(job->info.name) == sizeof(job->tap.name),
                   "ifname sizes");
    memcpy(job->info.name, job->tap.name, sizeof(job->info.name));
    memcpy(job->info.mac, job->tap.mac, sizeof(job->info.mac));
    status = filter_tap(job);
    if (status < 0) {
        // Closing the only descriptor removes the device.
        close(job->fd);
        job->fd = status;
        if (job->backend->firewall != NULL)
            firewall_remove_interface(job->backend->firewall, job->info.name);
    }
}

static void tap_opened(void *data) {
    struct tap_job *job = data;
    struct linux_backend *backend = job->backend;
    struct interface_info info;
    struct sent_fd *sent;

    if (job->fd < 0) {
        struct reason why = {0};
        reason_set(&why, "cannot make a TAP device on %s: %s", job->bridge,
                   strerror(-job->fd));
        job->done(job->data, BROKER_ERR_CREATE_FAILURE, NULL, -1,
                  reason_get(&why));
        free(job);
        return;
    }
    info = job->info;
    // Remembered so linux_backend_close_sent() knows the device; without
    // memory it is closed on the loop instead.
    // An entry for the same number not queued for closing is stale (its
    // descriptor was closed elsewhere, as the core does for a peer that left
    // while its interface was being made).
    for (struct sent_fd *s = backend->sent; s != NULL; s = s->next) {
        if (s->fd == job->fd && !s->queued) {
            forget_sent(s);
            break;
        }
    }
    sent = calloc(1, sizeof(*sent));
    if (sent != NULL) {
        sent->backend = backend;
        sent->fd = job->fd;
        memcpy(sent->name, job->tap.name, sizeof(sent->name));
        sent->next = backend->sent;
        backend->sent = sent;
    }
    job->done(job->data, BROKER_OK, &info, job->fd, NULL);
    free(job);
}

// True if address is taken in network for a MAC other than mac: the
// gateway, a configured reservation, another guest's.
static bool address_taken(const struct linux_network *network, uint32_t address,
                          const uint8_t mac[6]) {
    const struct network_config *config = &network->config;

    if (address == network->made.gateway)
        return true;
    for (size_t i = 0; i < config->n_reservations; i++) {
        if (config->reservations[i].address == address)
            return true;
    }
    for (size_t i = 0; i < network->n_guests; i++) {
        if (network->guests[i].address == address &&
            memcmp(network->guests[i].mac, mac, 6) != 0)
            return true;
    }
    return false;
}

// The address reserved for mac on network, reserving one (in dnsmasq too)
// when it has none: stable like the MAC (a hash of it picks the first
// address tried in the DHCP range), never another's. 0 when the network
// has no DHCP or its range is full.
static uint32_t reserve_ipv4(struct linux_network *network,
                             const uint8_t mac[6]) {
    const struct network_info *made = &network->made;
    uint32_t size, first, address = 0;
    struct dhcp_reservation *grown;

    if (!made->dhcp || made->dhcp_end < made->dhcp_start ||
        network->dnsmasq == NULL)
        return 0;
    for (size_t i = 0; i < network->n_guests; i++) {
        if (memcmp(network->guests[i].mac, mac, 6) == 0)
            return network->guests[i].address;
    }
    size = made->dhcp_end - made->dhcp_start + 1;
    first = ((uint32_t)mac[2] << 24 | (uint32_t)mac[3] << 16 |
             (uint32_t)mac[4] << 8 | mac[5]) %
            size;
    for (uint32_t i = 0; i < size && address == 0; i++) {
        uint32_t candidate = made->dhcp_start + (first + i) % size;
        if (!address_taken(network, candidate, mac))
            address = candidate;
    }
    if (address == 0)
        return 0;
    grown = realloc(network->guests, (network->n_guests + 1) * sizeof(*grown));
    if (grown == NULL)
        return 0;
    network->guests = grown;
    memcpy(network->guests[network->n_guests].mac, mac, 6);
    network->guests[network->n_guests].address = address;
    network->n_guests++;
    // Written before the reply: the guest boots after it.
    if (dnsmasq_set_guest_hosts(network->dnsmasq, network->guests,
                                network->n_guests) < 0) {
        network->n_guests--;
        return 0;
    }
    return address;
}

static void
linux_network_open_interface(void *ctx, void *handle, const char *network_name,
                             const struct peer_cred *cred, unsigned index,
                             backend_interface_done_fn done, void *data) {
    struct linux_backend *backend = ctx;
    struct linux_network *network = handle;
    struct tap_job *job = calloc(1, sizeof(*job));
    uint8_t mac[6];

    if (job == NULL) {
        done(data, BROKER_ERR_INTERNAL, NULL, -1,
             "the broker is out of memory");
        return;
    }
    job->backend = backend;
    memcpy(job->bridge, network->bridge, sizeof(job->bridge));
    snprintf(job->network, sizeof(job->network), "%s", network_name);
    job->uid = cred->uid;
    job->gid = cred->gid;
    job->index = index;
    // tap_open() derives the same MAC on the worker; the addresses are
    // chosen here, on the loop, where the network's reservations live.
    guest_mac(backend->mac_key, network_name, cred->uid, index, mac);
    job->info.ipv4 = reserve_ipv4(network, mac);
    if (network->made.ipv6 && network->made.ipv6_prefix_len == 64) {
        guest_slaac(network->made.ipv6_prefix, mac, job->info.ipv6);
        job->info.has_ipv6 = true;
    }
    job->anti_spoofing = network->config.anti_spoofing;
    job->port_isolation = network->config.port_isolation;
    job->net = network->made;
    job->done = done;
    job->data = data;
    linux_worker_queue(backend->worker, open_tap, tap_opened, job);
}

// An interface whose close is still queued may be counted: only at a limit
// does that matter, and linux_settle_interfaces() then lets that open wait.
static bool linux_interface_exists(void *ctx, const char *name) {
    (void)ctx;
    return if_nametoindex(name) != 0;
}

struct settle {
    void (*done)(void *data);
    void *data;
    int left; // closers whose marker has not run yet
};

static void settle_run(void *data) { (void)data; }

static void settle_done(void *data) {
    struct settle *settle = data;

    if (--settle->left > 0)
        return;
    settle->done(settle->data);
    free(settle);
}

// Each closer runs its jobs in order: once a marker queued now on every
// closer has run, every close queued before has too (and its device is
// gone). The markers' ends come back on the loop, one at a time.
static void linux_settle_interfaces(void *ctx, void (*done)(void *data),
                                    void *data) {
    struct linux_backend *backend = ctx;
    struct settle *settle = malloc(sizeof(*settle));

    if (settle == NULL) {
        // Counted with the closes still pending: at worst a refusal.
        done(data);
        return;
    }
    settle->done = done;
    settle->data = data;
    settle->left = CLOSERS;
    for (int i = 0; i < CLOSERS; i++)
        linux_worker_queue(backend->closers[i], settle_run, settle_done,
                           settle);
}

static void close_sent(void *data) {
    struct sent_fd *s = data;
    close(s->fd);
}

static void forget_sent(void *data) {
    struct sent_fd *s = data;
    struct sent_fd **p = &s->backend->sent;

    while (*p != NULL && *p != s)
        p = &(*p)->next;
    if (*p == s)
        *p = s->next;
    free(s);
}

void linux_backend_close_sent(struct linux_backend *backend, int fd) {
    struct sent_fd *s = backend->sent;

    while (s != NULL && (s->fd != fd || s->queued))
        s = s->next;
    if (s == NULL) {
        close(fd);
        return;
    }
    s->queued = true;
    s->closer = backend->closers[backend->next_closer++ % CLOSERS];
    linux_worker_queue(s->closer, close_sent, forget_sent, s);
}

// Read on the loop: the lease file is small (one line per guest) and local.
static int linux_network_leases(void *ctx, void *handle,
                                struct lease_info **leases, size_t *n) {
    struct linux_network *network = handle;
    struct dnsmasq_lease *read = NULL;
    size_t count = 0;

    (void)ctx;
    *leases = NULL;
    *n = 0;
    if (network->dnsmasq == NULL)
        return BROKER_OK;
    if (dnsmasq_read_leases(network->dnsmasq, &read, &count) < 0)
        return BROKER_ERR_INTERNAL;
    _Static_assert(sizeof(read->hostname) == sizeof((*leases)->hostname),
                   "hostname sizes");
    if (count > 0) {
        *leases = calloc(count, sizeof(**leases));
        if (*leases == NULL) {
            free(read);
            return BROKER_ERR_INTERNAL;
        }
    }
    for (size_t i = 0; i < count; i++) {
        memcpy((*leases)[i].mac, read[i].mac, 6);
        (*leases)[i].ipv4 = read[i].address;
        (*leases)[i].expiry = read[i].expiry;
        memcpy((*leases)[i].hostname, read[i].hostname,
               sizeof(read[i].hostname));
    }
    *n = count;
    free(read);
    return BROKER_OK;
}

// On a closer, as a sent TAP's copy is (the descriptor is remembered).
static void linux_close_fd(void *ctx, int fd) {
    linux_backend_close_sent(ctx, fd);
}

const struct network_backend_ops linux_backend_ops = {
    .create = linux_network_create,
    .destroy = linux_network_destroy,
    .abandon = linux_network_abandon,
    .open_interface = linux_network_open_interface,
    .interface_exists = linux_interface_exists,
    .settle_interfaces = linux_settle_interfaces,
    .close_fd = linux_close_fd,
    .leases = linux_network_leases,
    .leave = linux_network_leave,
    .degraded = linux_network_degraded,
};
