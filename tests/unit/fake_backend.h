// SPDX-License-Identifier: Apache-2.0
// Test doubles for the core's seams: a recording backend and a config table.
#ifndef VMNET_BROKER_TESTS_FAKE_BACKEND_H
#define VMNET_BROKER_TESTS_FAKE_BACKEND_H

// Header-only because every check_*.c is linked alone; functions are
// static inline so a test that uses only some of them builds without
// unused-function warnings.

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/backend.h"
#include "core/broker.h"
#include "core/network_config.h"
#include "core/reason.h"
#include "core/status.h"

// Why the fake's failed creations and interfaces failed, as a real
// backend tells the core (core/reason.h).
#define FAKE_CREATE_MESSAGE "fake: the creation failed"
#define FAKE_OPEN_MESSAGE "fake: no TAP device"
#define FAKE_IDLE_USEC (120u * 1000000u)
#define FAKE_ROOT_UID 0u
#define FAKE_USER_UID 1000u
#define FAKE_USER_GID 1000u
// Allowed on "restricted" (see fake_config_lookup).
#define FAKE_ALLOWED_UID 2001u
#define FAKE_ALLOWED_GID 3001u
#define FAKE_ALLOWED_SUPPLEMENTARY_GID 3002u

// What the broker asked the backend to do.
struct fake_backend {
    unsigned creates;
    unsigned destroys;
    // Handles created and not yet destroyed: proves destroy gets the
    // handle create made, exactly once.
    unsigned live;
    // When set, create() fails like a kernel error would.
    bool fail_create;
    char last_created[NETWORK_NAME_MAX + 1];
    char last_destroyed[NETWORK_NAME_MAX + 1];
    // Interfaces: how many were opened, which still "exist" (a VM holds
    // them), the index the core asked for last, and a failure switch.
    unsigned interfaces_opened;
    bool interface_alive[256];
    unsigned last_index;
    bool fail_interface;
    // Descriptors the core handed back to close_fd (nobody took them).
    unsigned fds_dropped;
    // Asynchronous mode: creations and removals wait until the test
    // finishes them with fake_finish_create() / fake_finish_destroy().
    bool async;
    unsigned n_pending_creates;
    struct fake_pending_create {
        struct fake_handle *handle;
        struct network_info *info;
        backend_create_done_fn done;
        void *data;
    } pending_creates[64];
    unsigned n_pending_destroys;
    struct fake_pending_destroy {
        struct fake_handle *handle;
        backend_destroy_done_fn done;
        void *data;
    } pending_destroys[64];
    unsigned abandons;
    // Networks left running at the broker's exit (leave()).
    unsigned leaves;
    // Interfaces whose device goes only once settle_interfaces() runs (the
    // backend's own copy is still being closed).
    bool interface_closing[256];
    unsigned settles;
    // Settles wait for fake_finish_settle() (the closes take time).
    bool async_settle;
    void (*settle_done)(void *data);
    void *settle_data;
    // Asynchronous interfaces: opens wait for fake_finish_open().
    bool async_interfaces;
    bool open_pending;
    backend_interface_done_fn open_done;
    void *open_data;
    unsigned open_index;
};

// The handle the fake backend gives out, freed by destroy().
struct fake_handle {
    char name[NETWORK_NAME_MAX + 1];
    unsigned serial;
};

// Fills the instance's description, as a finished creation does.
static inline void fake_fill_info(const struct fake_handle *h,
                                  struct network_info *info) {
    // Every instance gets a distinct uuid, so tests can tell a reused
    // network from a re-created one.
    memset(info, 0, sizeof(*info));
    snprintf(info->uuid, sizeof(info->uuid), "00000000-0000-4000-8000-%012x",
             h->serial);
    snprintf(info->bridge, sizeof(info->bridge), "vmb-fake%u", h->serial);
    info->subnet = 0xc0a84000u + (h->serial << 8);
    info->mask = 0xffffff00u;
    info->gateway = info->subnet + 1;
    info->mtu = 1500;
}

static inline void fake_create(void *ctx, const struct network_config *config,
                               struct network_info *info, void **handle,
                               backend_create_done_fn done, void *data) {
    struct fake_backend *backend = ctx;
    struct fake_handle *h = NULL;

    if (backend->fail_create && !backend->async) {
        done(data, BROKER_ERR_CREATE_FAILURE, FAKE_CREATE_MESSAGE);
        return;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        done(data, BROKER_ERR_INTERNAL, NULL);
        return;
    }
    backend->creates++;
    backend->live++;
    h->serial = backend->creates;
    snprintf(h->name, sizeof(h->name), "%s", config->name);
    snprintf(backend->last_created, sizeof(backend->last_created), "%s",
             config->name);
    *handle = h;
    if (backend->async && backend->n_pending_creates < 64) {
        struct fake_pending_create *p =
            &backend->pending_creates[backend->n_pending_creates++];
        p->handle = h;
        p->info = info;
        p->done = done;
        p->data = data;
        return;
    }
    fake_fill_info(h, info);
    done(data, BROKER_OK, NULL);
}

static inline void fake_free_handle(struct fake_backend *backend,
                                    struct fake_handle *h) {
    backend->destroys++;
    backend->live--;
    snprintf(backend->last_destroyed, sizeof(backend->last_destroyed), "%s",
             h->name);
    free(h);
}

// Ends the oldest pending creation with status (the handle is freed on
// failure, as a real backend does). Returns false when none is pending.
static inline bool fake_finish_create(struct fake_backend *backend,
                                      int status) {
    struct fake_pending_create p;

    if (backend->n_pending_creates == 0)
        return false;
    p = backend->pending_creates[0];
    backend->n_pending_creates--;
    memmove(backend->pending_creates, backend->pending_creates + 1,
            backend->n_pending_creates * sizeof(p));
    if (status == BROKER_OK)
        fake_fill_info(p.handle, p.info);
    else
        fake_free_handle(backend, p.handle);
    p.done(p.data, status, status == BROKER_OK ? NULL : FAKE_CREATE_MESSAGE);
    return true;
}

static inline void fake_destroy(void *ctx, void *handle,
                                backend_destroy_done_fn done, void *data) {
    struct fake_backend *backend = ctx;
    struct fake_handle *h = handle;

    if (backend->async && backend->n_pending_destroys < 64) {
        struct fake_pending_destroy *p =
            &backend->pending_destroys[backend->n_pending_destroys++];
        p->handle = h;
        p->done = done;
        p->data = data;
        return;
    }
    fake_free_handle(backend, h);
    done(data);
}

// Ends the oldest pending removal. Returns false when none is pending.
static inline bool fake_finish_destroy(struct fake_backend *backend) {
    struct fake_pending_destroy p;

    if (backend->n_pending_destroys == 0)
        return false;
    p = backend->pending_destroys[0];
    backend->n_pending_destroys--;
    memmove(backend->pending_destroys, backend->pending_destroys + 1,
            backend->n_pending_destroys * sizeof(p));
    fake_free_handle(backend, p.handle);
    p.done(p.data);
    return true;
}

// Drops a handle whatever it is doing, with no completion.
static inline void fake_abandon(void *ctx, void *handle) {
    struct fake_backend *backend = ctx;
    struct fake_handle *h = handle;
    unsigned kept = 0;

    if (h == NULL)
        return;
    backend->abandons++;
    for (unsigned i = 0; i < backend->n_pending_creates; i++) {
        if (backend->pending_creates[i].handle != h)
            backend->pending_creates[kept++] = backend->pending_creates[i];
    }
    backend->n_pending_creates = kept;
    kept = 0;
    for (unsigned i = 0; i < backend->n_pending_destroys; i++) {
        if (backend->pending_destroys[i].handle != h)
            backend->pending_destroys[kept++] = backend->pending_destroys[i];
    }
    backend->n_pending_destroys = kept;
    fake_free_handle(backend, h);
}

// Leaves a network running for the next broker: only the handle goes.
static inline void fake_leave(void *ctx, void *handle) {
    struct fake_backend *backend = ctx;

    backend->leaves++;
    fake_free_handle(backend, handle);
}

// A handle for a network "found running" (adoption), counted as made.
static inline struct fake_handle *
fake_adopted_handle(struct fake_backend *backend, const char *name,
                    struct network_info *info) {
    struct fake_handle *h = calloc(1, sizeof(*h));

    if (h == NULL)
        return NULL;
    backend->creates++;
    backend->live++;
    h->serial = backend->creates;
    snprintf(h->name, sizeof(h->name), "%s", name);
    fake_fill_info(h, info);
    return h;
}

// Interfaces are named "fif<N>"; the descriptor is /dev/null's. Completes
// before returning.
static inline void
fake_open_interface(void *ctx, void *handle, const char *network_name,
                    const struct peer_cred *cred, unsigned index,
                    backend_interface_done_fn done, void *data) {
    struct fake_backend *backend = ctx;
    unsigned n = backend->interfaces_opened;
    struct interface_info info;
    int fd;

    (void)handle;
    (void)network_name;
    (void)cred;
    backend->last_index = index;
    if (backend->async_interfaces && !backend->open_pending) {
        backend->open_pending = true;
        backend->open_done = done;
        backend->open_data = data;
        backend->open_index = index;
        return;
    }
    if (backend->fail_interface || n >= 256) {
        done(data, BROKER_ERR_CREATE_FAILURE, NULL, -1, FAKE_OPEN_MESSAGE);
        return;
    }
    fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        done(data, BROKER_ERR_INTERNAL, NULL, -1, NULL);
        return;
    }
    memset(&info, 0, sizeof(info));
    snprintf(info.name, sizeof(info.name), "fif%u", n);
    info.mac[0] = 0x02;
    info.mac[5] = (uint8_t)index;
    backend->interface_alive[n] = true;
    backend->interfaces_opened++;
    done(data, BROKER_OK, &info, fd, NULL);
}

// Ends the pending open (as fake_open_interface() would have).
static inline void fake_finish_open(struct fake_backend *backend) {
    backend->open_pending = false;
    backend->async_interfaces = false;
    fake_open_interface(backend, NULL, NULL, NULL, backend->open_index,
                        backend->open_done, backend->open_data);
}

static inline bool fake_interface_exists(void *ctx, const char *name) {
    struct fake_backend *backend = ctx;
    unsigned n;
    return sscanf(name, "fif%u", &n) == 1 && n < 256 &&
           backend->interface_alive[n];
}

// Ends the closes a settle waits for and tells the core.
static inline bool fake_finish_settle(struct fake_backend *backend) {
    void (*done)(void *) = backend->settle_done;

    if (done == NULL)
        return false;
    backend->settle_done = NULL;
    for (unsigned i = 0; i < 256; i++) {
        if (backend->interface_closing[i])
            backend->interface_alive[i] = false;
        backend->interface_closing[i] = false;
    }
    done(backend->settle_data);
    return true;
}

static inline void fake_settle_interfaces(void *ctx, void (*done)(void *),
                                          void *data) {
    struct fake_backend *backend = ctx;

    backend->settles++;
    backend->settle_done = done;
    backend->settle_data = data;
    if (!backend->async_settle)
        fake_finish_settle(backend);
}

static inline void fake_close_fd(void *ctx, int fd) {
    struct fake_backend *backend = ctx;

    backend->fds_dropped++;
    close(fd);
}

static const struct network_backend_ops fake_backend_ops = {
    .create = fake_create,
    .destroy = fake_destroy,
    .abandon = fake_abandon,
    .open_interface = fake_open_interface,
    .interface_exists = fake_interface_exists,
    .settle_interfaces = fake_settle_interfaces,
    .close_fd = fake_close_fd,
    .leave = fake_leave,
};

// Networks the fake configuration knows besides the built-ins:
// "net1".."net9" are open, "bad" is a broken file, and "restricted" allows
// only FAKE_ALLOWED_UID and the groups FAKE_ALLOWED_GID and
// FAKE_ALLOWED_SUPPLEMENTARY_GID.
static const char *const fake_open_names[] = {
    "net1", "net2", "net3", "net4", "net5", "net6", "net7", "net8", "net9",
};

struct fake_configs {
    unsigned lookups;
    // What list() shows beside the built-ins, and its generation (a test
    // changes both, as the config directory's watch would).
    bool list_net1;
    uint64_t generation;
    // The files of the "net*" names are being parsed: their lookups answer
    // BROKER_PENDING until a test clears it (and calls
    // broker_configs_ready()), as the config directory's parser thread
    // would; restricted is its allow-list once parsed.
    bool pending;
    bool net1_restricted;
};

static inline int fake_config_lookup(void *ctx, const char *name,
                                     struct network_config *out,
                                     struct reason *why) {
    struct fake_configs *configs = ctx;
    struct network_config config;

    configs->lookups++;
    if (network_config_builtin(name, &config)) {
        *out = config;
        return BROKER_OK;
    }
    if (strcmp(name, "bad") == 0) {
        reason_set(why, "invalid configuration: bad.json:1:1: fake");
        return BROKER_ERR_CREATE_FAILURE;
    }
    if (configs->pending && strncmp(name, "net", 3) == 0)
        return BROKER_PENDING;
    if (strcmp(name, "restricted") == 0 ||
        (configs->net1_restricted && strcmp(name, "net1") == 0)) {
        network_config_init(&config, name, NETWORK_MODE_HOST);
        config.restricted = true;
        config.allowed_users[config.n_allowed_users++] = FAKE_ALLOWED_UID;
        config.allowed_groups[config.n_allowed_groups++] = FAKE_ALLOWED_GID;
        config.allowed_groups[config.n_allowed_groups++] =
            FAKE_ALLOWED_SUPPLEMENTARY_GID;
        *out = config;
        return BROKER_OK;
    }
    for (size_t i = 0; i < sizeof(fake_open_names) / sizeof(*fake_open_names);
         i++) {
        if (strcmp(name, fake_open_names[i]) == 0) {
            network_config_init(&config, name, NETWORK_MODE_SHARED);
            *out = config;
            return BROKER_OK;
        }
    }
    reason_set(why, "no network named '%s' is configured", name);
    return BROKER_ERR_NOT_FOUND;
}

static inline int fake_config_list(void *ctx, struct network_config **out,
                                   size_t *n) {
    struct fake_configs *configs = ctx;
    struct network_config *list = calloc(3, sizeof(*list));
    size_t count = 0;

    if (list == NULL)
        return BROKER_ERR_INTERNAL;
    network_config_builtin("host", &list[count++]);
    if (configs->list_net1)
        network_config_init(&list[count++], "net1", NETWORK_MODE_SHARED);
    network_config_builtin("shared", &list[count++]);
    *out = list;
    *n = count;
    return BROKER_OK;
}

static inline uint64_t fake_config_generation(void *ctx) {
    return ((struct fake_configs *)ctx)->generation;
}

static const struct config_source_ops fake_config_ops = {
    .lookup = fake_config_lookup,
    .list = fake_config_list,
    .generation = fake_config_generation,
};

// A broker wired to the fakes, which the caller owns and must outlive it.
static inline struct broker *fake_broker_new(struct fake_backend *backend,
                                             struct fake_configs *configs) {
    struct broker_options options = {
        .backend = &fake_backend_ops,
        .backend_ctx = backend,
        .configs = &fake_config_ops,
        .configs_ctx = configs,
        .idle_usec = FAKE_IDLE_USEC,
    };
    return broker_new(&options);
}

static inline struct peer_cred fake_cred(int32_t pid, uint32_t uid,
                                         uint32_t gid) {
    struct peer_cred cred = {.pid = pid, .uid = uid, .gid = gid};
    return cred;
}

#endif
