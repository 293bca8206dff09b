// SPDX-License-Identifier: Apache-2.0
// Reference counting, idle removal and policy (the original broker's rules)
// over a backend whose creations and removals complete later.
#include "broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "peer_private.h"
#include "policy.h"
#include "reason.h"
#include "registry_private.h"

// A request waiting for its network's creation to end.
struct broker_waiter {
    struct peer *peer;
    bool open_interface;
    // The request reserved the peer's slot: give it back if the request
    // fails after the network is ready (open_interface).
    bool release_on_failure;
    broker_done_fn done;
    void *data;
    struct broker_waiter *next;
};

// A request waiting for the config source to parse a changed file
// (lookup() said BROKER_PENDING): asked again, as it came, once it has.
struct config_waiter {
    struct peer *peer;
    // broker_configs_ready() calls those up to its own batch only.
    uint64_t batch;
    // An acquire or open_interface (done set), or another request's retry.
    char name[NETWORK_NAME_MAX + 1];
    bool open_interface;
    broker_done_fn done;
    broker_retry_fn retry;
    void *data;
    struct config_waiter *next;
};

// An interface the backend is opening. Its slot in the peer's interfaces
// is taken (with an empty name) so counts and indexes see it meanwhile.
struct pending_open {
    struct broker *broker;
    struct peer *peer; // NULL once the peer has gone
    struct network *network;
    unsigned index;
    bool release;
    broker_done_fn done;
    void *data;
    struct pending_open *next;
};

// An interface whose connection has gone while its device lives on (a VM
// keeps the descriptor, or its holder made it persistent): it still counts
// against its user and keeps its index, so its MAC is never handed out
// twice, until the device is gone.
struct orphan_interface {
    uint32_t uid;
    struct peer_interface iface;
};

struct broker {
    struct broker_options options;
    struct pending_open *opens;
    struct orphan_interface *orphans;
    size_t n_orphans;
    size_t orphans_size;
    struct registry registry;
    struct peer *peers;
    unsigned n_peers;
    uint64_t last_now;
    unsigned long creations;
    uint64_t generation;
    // In arrival order.
    struct config_waiter *config_waiters;
    uint64_t config_batch;
};

static uint64_t broker_now(struct broker *broker) {
    if (broker->options.now != NULL)
        return broker->options.now(broker->options.now_ctx);
    return broker->last_now;
}

static void seen(struct broker *broker, uint64_t now) {
    if (now > broker->last_now)
        broker->last_now = now;
    broker->generation++;
}

struct broker *broker_new(const struct broker_options *options) {
    struct broker *broker = calloc(1, sizeof(*broker));
    if (broker == NULL)
        return NULL;
    broker->options = *options;
    return broker;
}

static void free_waiters(struct broker_waiter *w) {
    while (w != NULL) {
        struct broker_waiter *next = w->next;
        free(w);
        w = next;
    }
}

void broker_free(struct broker *broker) {
    if (broker == NULL)
        return;
    for (struct peer *p = broker->peers; p != NULL; p = p->next) {
        p->n_networks = 0;
        p->n_interfaces = 0;
    }
    while (broker->registry.head != NULL) {
        struct network *n = broker->registry.head;
        registry_remove(&broker->registry, n);
        // The data plane outlives the control plane: a VM's network stays
        // for the next broker to adopt.
        if (n->state == NETWORK_READY && n->has_ports &&
            broker->options.backend->leave != NULL) {
            log_info("leaving network '%s' (bridge %s) running: its bridge "
                     "has ports; the next broker adopts it",
                     n->config.name, n->info.bridge);
            broker->options.backend->leave(broker->options.backend_ctx,
                                           n->backend_handle);
        } else {
            log_info("removing network '%s' (bridge %s): broker is stopping",
                     n->config.name, n->info.bridge);
            broker->options.backend->abandon(broker->options.backend_ctx,
                                             n->backend_handle);
        }
        free_waiters(n->waiters);
        free(n);
    }
    while (broker->config_waiters != NULL) {
        struct config_waiter *w = broker->config_waiters;
        broker->config_waiters = w->next;
        free(w);
    }
    // The backend's abandon() above drops the completions of pending opens.
    while (broker->opens != NULL) {
        struct pending_open *o = broker->opens;
        broker->opens = o->next;
        free(o);
    }
    while (broker->peers != NULL) {
        struct peer *p = broker->peers;
        broker->peers = p->next;
        free(p->interfaces);
        free(p);
    }
    free(broker->orphans);
    free(broker);
}

struct peer *broker_peer_connect(struct broker *broker,
                                 const struct peer_cred *cred,
                                 void *transport) {
    struct peer *peer = calloc(1, sizeof(*peer));
    if (peer == NULL)
        return NULL;
    peer->cred = *cred;
    peer->transport = transport;
    snprintf(peer->label, sizeof(peer->label), "[peer %ld uid %lu]",
             (long)cred->pid, (unsigned long)cred->uid);
    peer->next = broker->peers;
    if (broker->peers != NULL)
        broker->peers->prev = peer;
    broker->peers = peer;
    broker->n_peers++;
    broker->generation++;
    peer_log(LOG_LEVEL_INFO, peer, "connected (gid %lu, %u %s)",
             (unsigned long)cred->gid, broker->n_peers,
             broker->n_peers == 1 ? "peer" : "peers");
    return peer;
}

// Starts the idle delay of a network nobody uses any more.
static void start_idle(struct broker *broker, struct network *network,
                       uint64_t now) {
    if (network->peers != 0 || network->has_ports ||
        network->config.persistent || network->state != NETWORK_READY)
        return;
    network->idle_deadline = now + broker->options.idle_usec;
    // Guard against wrap-around with absurd idle delays.
    if (network->idle_deadline < now)
        network->idle_deadline = NO_DEADLINE - 1;
}

// Drops one reference; starts the idle delay when it was the last.
static void unref_network(struct broker *broker, struct peer *peer,
                          struct network *network, uint64_t now) {
    network->peers--;
    peer_log(LOG_LEVEL_INFO, peer, "released '%s' (%u %s)",
             network->config.name, network->peers,
             network->peers == 1 ? "peer" : "peers");
    start_idle(broker, network, now);
}

// Removes the config waiters of peer (NULL: any) whose data is data (NULL:
// any).
static void drop_config_waiters(struct broker *broker, const struct peer *peer,
                                const void *data) {
    struct config_waiter **p = &broker->config_waiters;
    while (*p != NULL) {
        struct config_waiter *w = *p;
        if ((peer == NULL || w->peer == peer) &&
            (data == NULL || w->data == data)) {
            *p = w->next;
            free(w);
        } else {
            p = &w->next;
        }
    }
}

static int add_config_waiter(struct broker *broker, struct peer *peer,
                             const struct config_waiter *request) {
    struct config_waiter *w = malloc(sizeof(*w)), **tail;

    if (w == NULL)
        return BROKER_ERR_INTERNAL;
    *w = *request;
    w->peer = peer;
    w->batch = broker->config_batch;
    w->next = NULL;
    for (tail = &broker->config_waiters; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = w;
    return BROKER_OK;
}

int broker_wait_configs(struct broker *broker, struct peer *peer,
                        broker_retry_fn retry, void *data) {
    struct config_waiter w = {.retry = retry, .data = data};
    return add_config_waiter(broker, peer, &w);
}

// Removes peer's waiters from network.
static void drop_waiters(struct network *network, const struct peer *peer) {
    struct broker_waiter **p = &network->waiters;
    while (*p != NULL) {
        struct broker_waiter *w = *p;
        if (w->peer == peer) {
            *p = w->next;
            free(w);
        } else {
            p = &w->next;
        }
    }
}

// Moves the peer's handed-out interfaces to the broker's orphans: closing a
// connection must not free places (and MACs) whose devices still exist.
// Those being opened are closed when they arrive (on_interface_opened).
static void keep_orphans(struct broker *broker, struct peer *peer) {
    for (size_t i = 0; i < peer->n_interfaces; i++) {
        const struct peer_interface *iface = &peer->interfaces[i];

        if (iface->name[0] == '\0')
            continue;
        if (broker->n_orphans == broker->orphans_size) {
            size_t size = broker->orphans_size ? broker->orphans_size * 2 : 16;
            struct orphan_interface *grown =
                realloc(broker->orphans, size * sizeof(*grown));
            if (grown == NULL) {
                // Forgotten: counted again once the device is seen gone.
                peer_log(LOG_LEVEL_ERROR, peer,
                         "out of memory: interface %s no longer counted",
                         iface->name);
                continue;
            }
            broker->orphans = grown;
            broker->orphans_size = size;
        }
        broker->orphans[broker->n_orphans].uid = peer->cred.uid;
        broker->orphans[broker->n_orphans].iface = *iface;
        broker->n_orphans++;
    }
    peer->n_interfaces = 0;
}

void broker_peer_disconnect(struct broker *broker, struct peer *peer,
                            uint64_t now) {
    seen(broker, now);
    for (struct network *n = broker->registry.head; n != NULL; n = n->next)
        drop_waiters(n, peer);
    drop_config_waiters(broker, peer, NULL);
    // An interface still being opened for it is closed when it arrives.
    for (struct pending_open *o = broker->opens; o != NULL; o = o->next) {
        if (o->peer == peer)
            o->peer = NULL;
    }
    while (peer->n_networks > 0) {
        struct network *n = peer->networks[--peer->n_networks];
        unref_network(broker, peer, n, now);
    }
    if (peer->prev != NULL)
        peer->prev->next = peer->next;
    else
        broker->peers = peer->next;
    if (peer->next != NULL)
        peer->next->prev = peer->prev;
    broker->n_peers--;
    keep_orphans(broker, peer);
    peer_log(LOG_LEVEL_INFO, peer, "disconnected (%u %s)", broker->n_peers,
             broker->n_peers == 1 ? "peer" : "peers");
    free(peer->interfaces);
    free(peer);
}

static void finish(broker_done_fn done, void *data, int status,
                   const struct network *network, const char *message) {
    struct broker_result result = {.status = status, .fd = -1};
    if (status == BROKER_OK)
        result.network = network;
    else
        result.message = message;
    done(data, &result);
}

static void remove_slot(struct peer *peer, struct network *network) {
    int index = peer_find_network(peer, network);
    if (index < 0)
        return;
    // Keep the array dense; order does not matter.
    peer->networks[index] = peer->networks[--peer->n_networks];
    network->peers--;
}

static void open_interface_on(struct broker *broker, struct peer *peer,
                              struct network *network, bool release,
                              bool settled, broker_done_fn done, void *data);

// The request's network is ready: answer it.
static void complete(struct broker *broker, struct peer *peer,
                     struct network *network, bool open_interface, bool release,
                     broker_done_fn done, void *data) {
    if (open_interface)
        open_interface_on(broker, peer, network, release, false, done, data);
    else
        finish(done, data, BROKER_OK, network, NULL);
}

static void on_created(void *data, int status, const char *message);

static void start_create(struct broker *broker, struct network *network) {
    network->started = true;
    broker->creations++;
    log_info("creating network '%s' mode %s", network->config.name,
             network_mode_name(network->config.mode));
    // The backend may call on_created() before returning; nothing may use
    // network after this call.
    broker->options.backend->create(
        broker->options.backend_ctx, &network->config, &network->info,
        &network->backend_handle, on_created, network);
}

// Finds the broker that owns network: completions carry only the network.
// A broker is one per process, so the network remembers it.
struct network_owner {
    struct network network;
    struct broker *broker;
};

static struct broker *owner(struct network *network) {
    return ((struct network_owner *)network)->broker;
}

static struct network *new_network(struct broker *broker,
                                   const struct network_config *config) {
    struct network_owner *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->broker = broker;
    o->network.config = *config;
    o->network.state = NETWORK_CREATING;
    o->network.idle_deadline = NO_DEADLINE;
    registry_add(&broker->registry, &o->network);
    return &o->network;
}

// Starts a new network's creation unless an earlier instance still being
// removed owns the name's bridge and files: then it starts when that
// removal ends (on_removed). Nothing may use network after this call.
static void start_when_free(struct broker *broker, struct network *network) {
    if (registry_find_removing(&broker->registry, network->config.name) ==
        NULL) {
        start_create(broker, network);
        return;
    }
    log_info("network '%s' is being removed; creating it again once that "
             "ends",
             network->config.name);
}

static void on_created(void *data, int status, const char *message) {
    struct network *network = data;
    struct broker *broker = owner(network);
    struct broker_waiter *waiters = network->waiters;

    network->waiters = NULL;
    broker->generation++;
    if (status == BROKER_OK) {
        network->state = NETWORK_READY;
        log_info("created network '%s' mode %s bridge %s uuid %s",
                 network->config.name, network_mode_name(network->config.mode),
                 network->info.bridge, network->info.uuid);
        // Every waiter may have gone: then the idle rule applies from now.
        start_idle(broker, network, broker_now(broker));
        while (waiters != NULL) {
            struct broker_waiter *w = waiters;
            waiters = w->next;
            complete(broker, w->peer, network, w->open_interface,
                     w->release_on_failure, w->done, w->data);
            free(w);
        }
        return;
    }
    log_error("cannot create network '%s': %s", network->config.name,
              broker_status_name(status));
    // Every peer that reserved a slot loses it, waiting or not.
    for (struct peer *p = broker->peers; p != NULL; p = p->next)
        remove_slot(p, network);
    registry_remove(&broker->registry, network);
    free(network);
    while (waiters != NULL) {
        struct broker_waiter *w = waiters;
        waiters = w->next;
        peer_log(LOG_LEVEL_WARNING, w->peer, "%s failed: %s",
                 w->open_interface ? "open_interface" : "acquire",
                 broker_status_name(status));
        // The creation's reason is every waiter's: they all asked for it.
        finish(w->done, w->data, status, NULL, message);
        free(w);
    }
}

static int add_waiter(struct network *network, struct peer *peer,
                      bool open_interface, bool release, broker_done_fn done,
                      void *data) {
    struct broker_waiter *w = calloc(1, sizeof(*w)), **tail;
    if (w == NULL)
        return BROKER_ERR_INTERNAL;
    w->peer = peer;
    w->open_interface = open_interface;
    w->release_on_failure = release;
    w->done = done;
    w->data = data;
    for (tail = &network->waiters; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = w;
    return BROKER_OK;
}

static void reserve(struct peer *peer, struct network *network) {
    peer->networks[peer->n_networks++] = network;
    network->peers++;
    network->idle_deadline = NO_DEADLINE;
    peer_log(LOG_LEVEL_INFO, peer, "acquired '%s' (%u %s)",
             network->config.name, network->peers,
             network->peers == 1 ? "peer" : "peers");
}

static void not_allowed(struct reason *why, const struct peer *peer,
                        const char *name) {
    reason_set(why,
               "user %lu may not use network '%s' (not in its "
               "allowed_users or allowed_groups)",
               (unsigned long)peer->cred.uid, name);
}

static void request(struct broker *broker, struct peer *peer, const char *name,
                    uint64_t now, bool open_interface, broker_done_fn done,
                    void *data) {
    struct network *network = registry_find(&broker->registry, name);
    struct network_config config;
    bool held = network != NULL && peer_find_network(peer, network) >= 0;
    int status = BROKER_ERR_INVALID_REQUEST;
    // This request's own reason: others may fail meanwhile for theirs.
    struct reason why = {0};

    seen(broker, now);
    // A platform without interfaces for unprivileged VMs says so.
    if (open_interface && broker->options.backend->open_interface == NULL) {
        reason_set(&why, "this platform cannot make interfaces for VMs");
        goto out;
    }
    if (network != NULL) {
        // Policy is checked against the network's own configuration for as
        // long as it lives.
        status = BROKER_ERR_NOT_ALLOWED;
        if (!policy_allows(&network->config, &peer->cred)) {
            not_allowed(&why, peer, name);
            goto out;
        }
    }
    if (!held && peer->n_networks >= PEER_MAX_NETWORKS) {
        // The original answers INTERNAL_ERROR here; kept for compatibility.
        peer_log(LOG_LEVEL_WARNING, peer,
                 "cannot acquire '%s': peer already holds %d networks", name,
                 PEER_MAX_NETWORKS);
        reason_set(&why,
                   "this connection already holds %d networks, the most "
                   "one connection may hold: release one first",
                   PEER_MAX_NETWORKS);
        status = BROKER_ERR_INTERNAL;
        goto out;
    }
    if (network == NULL) {
        // Check policy before creating: a peer that may not use a network
        // must not be able to make the broker build it either.
        status = broker->options.configs->lookup(broker->options.configs_ctx,
                                                 name, &config, &why);
        if (status == BROKER_PENDING) {
            // Its file changed and is being parsed: never answered from
            // the old one, asked again once parsed.
            struct config_waiter w = {
                .open_interface = open_interface, .done = done, .data = data};
            snprintf(w.name, sizeof(w.name), "%s", name);
            status = add_config_waiter(broker, peer, &w);
            if (status == BROKER_OK)
                return;
            reason_set(&why, "the broker is out of memory");
            goto out;
        }
        if (status != BROKER_OK)
            goto out;
        status = BROKER_ERR_NOT_ALLOWED;
        if (!policy_allows(&config, &peer->cred)) {
            not_allowed(&why, peer, name);
            goto out;
        }
        status = BROKER_ERR_INTERNAL;
        network = new_network(broker, &config);
        if (network == NULL)
            goto out;
        // Queued before anything can complete, so a backend that finishes
        // at once still answers this request.
        if (add_waiter(network, peer, open_interface, true, done, data) !=
            BROKER_OK) {
            registry_remove(&broker->registry, network);
            free(network);
            goto out;
        }
        reserve(peer, network);
        start_when_free(broker, network);
        return;
    }
    if (!held)
        reserve(peer, network);
    if (network->state == NETWORK_CREATING) {
        status = add_waiter(network, peer, open_interface, !held, done, data);
        if (status != BROKER_OK) {
            if (!held)
                remove_slot(peer, network);
            goto out;
        }
        return;
    }
    complete(broker, peer, network, open_interface, !held, done, data);
    return;
out:
    peer_log(LOG_LEVEL_WARNING, peer, "%s '%s' failed: %s",
             open_interface ? "open_interface" : "acquire", name,
             broker_status_name(status));
    finish(done, data, status, NULL, reason_get(&why));
}

void broker_acquire_async(struct broker *broker, struct peer *peer,
                          const char *name, uint64_t now, broker_done_fn done,
                          void *data) {
    request(broker, peer, name, now, false, done, data);
}

void broker_open_interface_async(struct broker *broker, struct peer *peer,
                                 const char *name, uint64_t now,
                                 broker_done_fn done, void *data) {
    request(broker, peer, name, now, true, done, data);
}

// What a synchronous wrapper learns from its callback.
struct capture {
    bool done;
    struct broker_result result;
};

static void capture_done(void *data, const struct broker_result *result) {
    struct capture *c = data;
    c->done = true;
    c->result = *result;
}

// Forgets a capture's request that is still waiting (its stack frame ends).
static void drop_capture(struct broker *broker, struct capture *c) {
    drop_config_waiters(broker, NULL, c);
    for (struct network *n = broker->registry.head; n != NULL; n = n->next) {
        struct broker_waiter **p = &n->waiters;
        while (*p != NULL) {
            struct broker_waiter *w = *p;
            if (w->data == c) {
                *p = w->next;
                free(w);
            } else {
                p = &w->next;
            }
        }
    }
}

int broker_acquire(struct broker *broker, struct peer *peer, const char *name,
                   uint64_t now, const struct network **out) {
    struct capture c = {0};

    broker_acquire_async(broker, peer, name, now, capture_done, &c);
    if (!c.done) {
        drop_capture(broker, &c);
        return BROKER_PENDING;
    }
    if (c.result.status == BROKER_OK)
        *out = c.result.network;
    return c.result.status;
}

int broker_open_interface(struct broker *broker, struct peer *peer,
                          const char *name, uint64_t now,
                          const struct network **network,
                          struct interface_info *info, int *fd) {
    struct capture c = {0};

    broker_open_interface_async(broker, peer, name, now, capture_done, &c);
    if (!c.done) {
        drop_capture(broker, &c);
        return BROKER_PENDING;
    }
    if (c.result.status == BROKER_OK) {
        *network = c.result.network;
        *info = c.result.interface;
        *fd = c.result.fd;
    }
    return c.result.status;
}

int broker_release(struct broker *broker, struct peer *peer, const char *name,
                   uint64_t now) {
    return broker_release_why(broker, peer, name, now, NULL);
}

int broker_release_why(struct broker *broker, struct peer *peer,
                       const char *name, uint64_t now, struct reason *why) {
    struct network *network = registry_find(&broker->registry, name);
    int index = network ? peer_find_network(peer, network) : -1;

    seen(broker, now);
    if (index < 0) {
        peer_log(LOG_LEVEL_WARNING, peer,
                 "release '%s' failed: not held by this peer", name);
        reason_set(why, "this connection does not hold network '%s'", name);
        return BROKER_ERR_NOT_FOUND;
    }
    // Keep the array dense; order does not matter.
    peer->networks[index] = peer->networks[--peer->n_networks];
    unref_network(broker, peer, network, now);
    return BROKER_OK;
}

// Forgets interfaces whose device is gone (the VM closed its descriptor).
static void prune_interfaces(struct broker *broker, struct peer *peer) {
    size_t kept = 0;

    for (size_t i = 0; i < peer->n_interfaces; i++) {
        struct peer_interface *iface = &peer->interfaces[i];
        // An empty name: being opened.
        if (iface->name[0] == '\0' ||
            broker->options.backend->interface_exists(
                broker->options.backend_ctx, iface->name))
            peer->interfaces[kept++] = *iface;
        else
            peer_log(LOG_LEVEL_INFO, peer, "interface %s on '%s' is gone",
                     iface->name, iface->network);
    }
    // The status shows interface counts: a forgotten one is a change.
    if (kept != peer->n_interfaces)
        broker->generation++;
    peer->n_interfaces = kept;
}

// Forgets uid's orphans whose device is gone.
static void prune_orphans(struct broker *broker, uint32_t uid) {
    size_t kept = 0;

    for (size_t i = 0; i < broker->n_orphans; i++) {
        struct orphan_interface *o = &broker->orphans[i];
        if (o->uid != uid || broker->options.backend->interface_exists(
                                 broker->options.backend_ctx, o->iface.name))
            broker->orphans[kept++] = *o;
        else
            log_info("interface %s of uid %lu on '%s' is gone", o->iface.name,
                     (unsigned long)uid, o->iface.network);
    }
    if (kept != broker->n_orphans)
        broker->generation++;
    broker->n_orphans = kept;
}

// Prunes every peer of uid and counts their live interfaces, and the
// devices of uid's closed connections that still exist. One user may run
// many VMs over many connections; the limits and the guest MACs are the
// user's, not one connection's, for as long as the devices exist.
static unsigned uid_interfaces(struct broker *broker, uint32_t uid) {
    unsigned count = 0;
    for (struct peer *p = broker->peers; p != NULL; p = p->next) {
        if (p->cred.uid != uid)
            continue;
        prune_interfaces(broker, p);
        count += (unsigned)p->n_interfaces;
    }
    prune_orphans(broker, uid);
    for (size_t i = 0; i < broker->n_orphans; i++)
        count += broker->orphans[i].uid == uid;
    return count;
}

// The smallest index no live interface of uid on network uses, so two VMs
// of one user never share a guest MAC, and a VM started again gets its
// MAC (and its DHCP lease) back.
static unsigned free_index(const struct broker *broker, uint32_t uid,
                           const char *network) {
    for (unsigned index = 0;; index++) {
        bool used = false;
        for (const struct peer *p = broker->peers; p != NULL && !used;
             p = p->next) {
            for (size_t i = 0;
                 p->cred.uid == uid && i < p->n_interfaces && !used; i++)
                used = strcmp(p->interfaces[i].network, network) == 0 &&
                       p->interfaces[i].index == index;
        }
        for (size_t i = 0; i < broker->n_orphans && !used; i++)
            used = broker->orphans[i].uid == uid &&
                   strcmp(broker->orphans[i].iface.network, network) == 0 &&
                   broker->orphans[i].iface.index == index;
        if (!used)
            return index;
    }
}

// A failed open_interface leaves the peer as it found it.
static void fail_open(struct broker *broker, struct peer *peer,
                      struct network *n, bool release, int status,
                      const char *message, broker_done_fn done, void *data) {
    struct broker_result result = {
        .status = status, .fd = -1, .message = message};

    peer_log(LOG_LEVEL_WARNING, peer, "open_interface '%s' failed: %s",
             n->config.name, broker_status_name(status));
    if (release && peer_find_network(peer, n) >= 0) {
        remove_slot(peer, n);
        peer_log(LOG_LEVEL_INFO, peer, "released '%s' (%u %s)", n->config.name,
                 n->peers, n->peers == 1 ? "peer" : "peers");
        start_idle(broker, n, broker_now(broker));
    }
    done(data, &result);
}

// Unlinks open from the broker's list.
static void unlink_open(struct broker *broker, struct pending_open *open) {
    struct pending_open **p;

    for (p = &broker->opens; *p != open; p = &(*p)->next)
        ;
    *p = open->next;
}

// A descriptor nobody takes, closed where the backend can wait for it.
static void drop_fd(struct broker *broker, int fd) {
    if (fd < 0)
        return;
    if (broker->options.backend->close_fd != NULL)
        broker->options.backend->close_fd(broker->options.backend_ctx, fd);
    else
        close(fd);
}

static void on_interface_opened(void *data, int status,
                                const struct interface_info *info, int fd,
                                const char *message) {
    struct pending_open *open = data;
    struct broker *broker = open->broker;
    struct peer *peer = open->peer;
    struct broker_result result = {.status = status, .fd = fd};
    size_t slot = 0;

    unlink_open(broker, open);
    broker->generation++;
    if (peer == NULL) {
        // The peer left while it was being made: nobody will use it.
        drop_fd(broker, fd);
        free(open);
        return;
    }
    while (slot < peer->n_interfaces &&
           !(peer->interfaces[slot].name[0] == '\0' &&
             peer->interfaces[slot].index == open->index &&
             strcmp(peer->interfaces[slot].network,
                    open->network->config.name) == 0))
        slot++;
    if (status != BROKER_OK || slot == peer->n_interfaces) {
        if (slot < peer->n_interfaces)
            peer->interfaces[slot] = peer->interfaces[--peer->n_interfaces];
        drop_fd(broker, fd);
        fail_open(broker, peer, open->network, open->release,
                  status != BROKER_OK ? status : BROKER_ERR_INTERNAL, message,
                  open->done, open->data);
        free(open);
        return;
    }
    memcpy(peer->interfaces[slot].name, info->name, sizeof(info->name));
    peer_log(LOG_LEVEL_INFO, peer,
             "opened interface %s on '%s' (interfaces %zu)", info->name,
             open->network->config.name, peer->n_interfaces);
    result.network = open->network;
    result.interface = *info;
    open->done(open->data, &result);
    free(open);
}

// The backend has settled its closing interfaces: the open goes on, with
// exact counts, unless its peer has gone meanwhile (then its references
// went with it).
static void on_interfaces_settled(void *data) {
    struct pending_open *open = data;

    unlink_open(open->broker, open);
    if (open->peer != NULL)
        open_interface_on(open->broker, open->peer, open->network,
                          open->release, true, open->done, open->data);
    free(open);
}

// A pending open of an interface on n for peer, listed (so a disconnect
// finds it), or NULL without memory.
static struct pending_open *new_open(struct broker *broker, struct peer *peer,
                                     struct network *n, bool release,
                                     broker_done_fn done, void *data) {
    struct pending_open *open = calloc(1, sizeof(*open));

    if (open == NULL)
        return NULL;
    open->broker = broker;
    open->peer = peer;
    open->network = n;
    open->release = release;
    open->done = done;
    open->data = data;
    open->next = broker->opens;
    broker->opens = open;
    return open;
}

// At a limit, an interface just closed may still count until the backend
// has closed its own copy: settled (false the first time) says whether the
// backend was asked to finish those closes, which the open then waits for
// without blocking anyone else.
static void open_interface_on(struct broker *broker, struct peer *peer,
                              struct network *n, bool release, bool settled,
                              broker_done_fn done, void *data) {
    const char *name = n->config.name;
    struct broker_result result = {.status = BROKER_ERR_INTERNAL, .fd = -1};
    unsigned index, user_count = uid_interfaces(broker, peer->cred.uid);
    struct pending_open *open;
    struct reason why = {0};

    if ((peer->n_interfaces >= PEER_MAX_INTERFACES ||
         user_count >= USER_MAX_INTERFACES) &&
        broker->options.backend->settle_interfaces != NULL && !settled) {
        open = new_open(broker, peer, n, release, done, data);
        if (open == NULL)
            goto out;
        // May call back before returning; nothing may follow.
        broker->options.backend->settle_interfaces(broker->options.backend_ctx,
                                                   on_interfaces_settled, open);
        return;
    }
    if (peer->n_interfaces >= PEER_MAX_INTERFACES ||
        user_count >= USER_MAX_INTERFACES) {
        peer_log(LOG_LEVEL_WARNING, peer,
                 "cannot open an interface on '%s': %zu open on this "
                 "connection (at most %d), %u for this user (at most %d)",
                 name, peer->n_interfaces, PEER_MAX_INTERFACES, user_count,
                 USER_MAX_INTERFACES);
        reason_set(&why,
                   "too many interfaces: %zu open on this connection (at "
                   "most %d), %u for this user (at most %d)",
                   peer->n_interfaces, PEER_MAX_INTERFACES, user_count,
                   USER_MAX_INTERFACES);
        goto out;
    }
    if (peer->interfaces == NULL) {
        peer->interfaces =
            calloc(PEER_MAX_INTERFACES, sizeof(*peer->interfaces));
        if (peer->interfaces == NULL)
            goto out;
    }
    index = free_index(broker, peer->cred.uid, name);
    open = new_open(broker, peer, n, release, done, data);
    if (open == NULL)
        goto out;
    open->index = index;
    strcpy(peer->interfaces[peer->n_interfaces].network, name);
    peer->interfaces[peer->n_interfaces].index = index;
    peer->interfaces[peer->n_interfaces].name[0] = '\0';
    peer->n_interfaces++;
    // The backend may complete before returning; nothing may follow.
    broker->options.backend->open_interface(
        broker->options.backend_ctx, n->backend_handle, name, &peer->cred,
        index, on_interface_opened, open);
    return;
out:
    fail_open(broker, peer, n, release, result.status, reason_get(&why), done,
              data);
}

int broker_leases(struct broker *broker, struct peer *peer, const char *name,
                  struct lease_info **leases, size_t *n, struct reason *why) {
    struct network *network = registry_find(&broker->registry, name);
    struct network_config config;
    int status;

    *leases = NULL;
    *n = 0;
    if (network == NULL) {
        // Not running: known and allowed means no lease, not an error.
        status = broker->options.configs->lookup(broker->options.configs_ctx,
                                                 name, &config, why);
        if (status == BROKER_OK && !policy_allows(&config, &peer->cred)) {
            not_allowed(why, peer, name);
            status = BROKER_ERR_NOT_ALLOWED;
        }
        return status;
    }
    // Leases name other users' guests: only peers allowed on the network.
    if (!policy_allows(&network->config, &peer->cred)) {
        not_allowed(why, peer, name);
        return BROKER_ERR_NOT_ALLOWED;
    }
    if (network->state != NETWORK_READY ||
        broker->options.backend->leases == NULL)
        return BROKER_OK;
    status = broker->options.backend->leases(
        broker->options.backend_ctx, network->backend_handle, leases, n);
    if (status != BROKER_OK)
        reason_set(why, "cannot read the DHCP leases of network '%s'", name);
    return status;
}

void broker_interface_report(struct broker *broker, const char *ifname,
                             const char *what) {
    for (struct peer *p = broker->peers; p != NULL; p = p->next) {
        for (size_t i = 0; i < p->n_interfaces; i++) {
            if (strcmp(p->interfaces[i].name, ifname) == 0) {
                peer_log(LOG_LEVEL_WARNING, p, "interface %s on '%s': %s",
                         ifname, p->interfaces[i].network, what);
                return;
            }
        }
    }
    for (size_t i = 0; i < broker->n_orphans; i++) {
        if (strcmp(broker->orphans[i].iface.name, ifname) == 0) {
            log_warning("interface %s of uid %lu on '%s' (its connection has "
                        "closed): %s",
                        ifname, (unsigned long)broker->orphans[i].uid,
                        broker->orphans[i].iface.network, what);
            return;
        }
    }
    log_warning("interface %s: %s", ifname, what);
}

int broker_create_persistent(struct broker *broker, const char *name) {
    struct network *network = registry_find(&broker->registry, name);
    struct network_config config;
    int status = BROKER_OK;

    if (network == NULL) {
        status = broker->options.configs->lookup(broker->options.configs_ctx,
                                                 name, &config, NULL);
        // Called before serving, when nothing is parsed off the loop yet;
        // a file changed meanwhile makes this start fail, logged.
        if (status == BROKER_PENDING)
            status = BROKER_ERR_CREATE_FAILURE;
        if (status != BROKER_OK)
            goto out;
        // Persistent before the creation can complete: never idle.
        config.persistent = true;
        status = BROKER_ERR_INTERNAL;
        network = new_network(broker, &config);
        if (network == NULL)
            goto out;
        start_when_free(broker, network);
        // A backend that fails at once has removed it again.
        status = registry_find(&broker->registry, name) != NULL
                     ? BROKER_OK
                     : BROKER_ERR_CREATE_FAILURE;
        goto out;
    }
    network->config.persistent = true;
    network->idle_deadline = NO_DEADLINE;
out:
    if (status != BROKER_OK)
        log_error("cannot create persistent network '%s': %s", name,
                  broker_status_name(status));
    return status;
}

int broker_adopt(struct broker *broker, const struct network_config *config,
                 const struct network_info *info, void *handle, bool has_ports,
                 uint64_t now) {
    struct network *network;

    seen(broker, now);
    if (registry_find(&broker->registry, config->name) != NULL ||
        registry_find_removing(&broker->registry, config->name) != NULL) {
        log_error("cannot adopt network '%s': it exists already", config->name);
        return BROKER_ERR_INVALID_REQUEST;
    }
    network = new_network(broker, config);
    if (network == NULL)
        return BROKER_ERR_INTERNAL;
    network->started = true;
    network->state = NETWORK_READY;
    network->info = *info;
    network->backend_handle = handle;
    network->has_ports = has_ports;
    log_info("adopted network '%s' mode %s bridge %s uuid %s (%s)",
             config->name, network_mode_name(config->mode), info->bridge,
             info->uuid, has_ports ? "its bridge has ports" : "no ports");
    start_idle(broker, network, now);
    return BROKER_OK;
}

void broker_adopt_interface(struct broker *broker, uint32_t uid,
                            const char *network, unsigned index,
                            const char *ifname) {
    struct orphan_interface *o;

    if (broker->n_orphans == broker->orphans_size) {
        size_t size = broker->orphans_size ? broker->orphans_size * 2 : 16;
        struct orphan_interface *grown =
            realloc(broker->orphans, size * sizeof(*grown));
        if (grown == NULL) {
            log_error("out of memory: adopted interface %s not counted",
                      ifname);
            return;
        }
        broker->orphans = grown;
        broker->orphans_size = size;
    }
    o = &broker->orphans[broker->n_orphans++];
    memset(o, 0, sizeof(*o));
    o->uid = uid;
    o->iface.index = index;
    snprintf(o->iface.network, sizeof(o->iface.network), "%s", network);
    snprintf(o->iface.name, sizeof(o->iface.name), "%s", ifname);
    broker->generation++;
}

void broker_network_ports_changed(struct broker *broker, const char *name,
                                  bool has_ports, uint64_t now) {
    struct network *network = registry_find(&broker->registry, name);

    seen(broker, now);
    if (network == NULL || network->has_ports == has_ports)
        return;
    network->has_ports = has_ports;
    log_info("network '%s': %s", name,
             has_ports ? "its bridge has ports: in use"
                       : "its bridge's last port has gone");
    if (has_ports)
        network->idle_deadline = NO_DEADLINE;
    else
        start_idle(broker, network, now);
}

uint64_t broker_next_deadline(const struct broker *broker) {
    return registry_next_deadline(&broker->registry);
}

static void on_removed(void *data) {
    struct network *network = data;
    struct broker *broker = owner(network);
    struct network *next;

    broker->generation++;
    log_info("network '%s' is removed", network->config.name);
    registry_remove(&broker->registry, network);
    next = registry_find(&broker->registry, network->config.name);
    free(network);
    // Requests that arrived during the removal wait on a new instance.
    if (next != NULL && !next->started)
        start_create(broker, next);
}

void broker_expire(struct broker *broker, uint64_t now) {
    struct network *n = broker->registry.head;

    seen(broker, now);
    while (n != NULL) {
        struct network *next = n->next;
        if (n->state == NETWORK_READY && n->peers == 0 && !n->has_ports &&
            n->idle_deadline <= now) {
            log_info("removing network '%s' (bridge %s): idle delay passed",
                     n->config.name, n->info.bridge);
            n->state = NETWORK_REMOVING;
            n->idle_deadline = NO_DEADLINE;
            broker->options.backend->destroy(broker->options.backend_ctx,
                                             n->backend_handle, on_removed, n);
            // A backend that completes at once may have freed any network
            // here (n, then a waiting re-creation that failed): start over;
            // networks being removed are skipped.
            next = broker->registry.head;
        }
        n = next;
    }
}

unsigned broker_peer_count(const struct broker *broker) {
    return broker->n_peers;
}

unsigned broker_network_count(const struct broker *broker) {
    return broker->registry.count;
}

const struct network *broker_network_first(const struct broker *broker) {
    return broker->registry.head;
}

const struct network *broker_network_next(const struct network *network) {
    return network->next;
}

const struct peer *broker_peer_first(const struct broker *broker) {
    return broker->peers;
}

const struct peer *broker_peer_next(const struct peer *peer) {
    return peer->next;
}

unsigned long broker_creations(const struct broker *broker) {
    return broker->creations;
}

int broker_list_configs(const struct broker *broker,
                        struct network_config **configs, size_t *n) {
    if (broker->options.configs->list == NULL) {
        *configs = NULL;
        *n = 0;
        return BROKER_OK;
    }
    return broker->options.configs->list(broker->options.configs_ctx, configs,
                                         n);
}

unsigned broker_network_interfaces(const struct broker *broker,
                                   const struct network *network) {
    unsigned count = 0;
    for (const struct peer *p = broker->peers; p != NULL; p = p->next) {
        for (size_t i = 0; i < p->n_interfaces; i++) {
            const struct peer_interface *iface = &p->interfaces[i];
            // An empty name: still being opened, not handed out yet.
            count += iface->name[0] != '\0' &&
                     strcmp(iface->network, network->config.name) == 0;
        }
    }
    for (size_t i = 0; i < broker->n_orphans; i++)
        count +=
            strcmp(broker->orphans[i].iface.network, network->config.name) == 0;
    return count;
}

const char *broker_network_degraded(const struct broker *broker,
                                    const struct network *network) {
    if (broker->options.backend->degraded == NULL ||
        network->state != NETWORK_READY)
        return NULL;
    return broker->options.backend->degraded(broker->options.backend_ctx,
                                             network->backend_handle);
}

void broker_backend_changed(struct broker *broker) { broker->generation++; }

bool broker_config_generation(const struct broker *broker, uint64_t *out) {
    if (broker->options.configs->generation == NULL)
        return false;
    *out = broker->options.configs->generation(broker->options.configs_ctx);
    return true;
}

uint64_t broker_generation(const struct broker *broker) {
    uint64_t configs = 0;
    // Both only grow, so their sum changes whenever either does.
    if (broker->options.configs->generation != NULL)
        configs =
            broker->options.configs->generation(broker->options.configs_ctx);
    return broker->generation + configs;
}

void broker_configs_ready(struct broker *broker) {
    // Those that wait again (another file still being parsed) wait for the
    // next call.
    uint64_t cutoff = broker->config_batch++;

    while (broker->config_waiters != NULL &&
           broker->config_waiters->batch <= cutoff) {
        struct config_waiter *w = broker->config_waiters;

        broker->config_waiters = w->next;
        if (w->done != NULL)
            request(broker, w->peer, w->name, broker_now(broker),
                    w->open_interface, w->done, w->data);
        else
            w->retry(w->data);
        free(w);
    }
}
