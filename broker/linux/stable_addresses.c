// SPDX-License-Identifier: Apache-2.0
// Each network name's last subnet and IPv6 prefix, kept in the state dir.
#include "stable_addresses.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/network_config.h"

#define FILE_NAME "subnets.json"
#define TEMP_NAME "subnets.json.new"
// Far more names than a host ever uses; a larger file is not read whole.
#define MAX_ENTRIES 4096
#define MAX_FILE_SIZE (1024 * 1024)

struct entry {
    char name[NETWORK_NAME_MAX + 1];
    bool has_subnet;
    struct ipv4_prefix subnet;
    bool has_ipv6;
    uint8_t ipv6[16];
};

struct stable_addresses {
    int dir_fd;
    char *dir;
    struct entry *entries;
    size_t n;
};

static struct entry *find(const struct stable_addresses *s, const char *name) {
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->entries[i].name, name) == 0)
            return &s->entries[i];
    }
    return NULL;
}

static struct entry *add(struct stable_addresses *s, const char *name) {
    struct entry *grown;

    if (s->n >= MAX_ENTRIES || !network_name_valid(name))
        return NULL;
    grown = realloc(s->entries, (s->n + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    s->entries = grown;
    memset(&grown[s->n], 0, sizeof(grown[s->n]));
    snprintf(grown[s->n].name, sizeof(grown[s->n].name), "%s", name);
    return &grown[s->n++];
}

// Fills e from {"subnet": "A.B.C.D/LEN", "ipv6_prefix": "fdXX:...::"};
// what is missing or malformed is left out.
static void parse_entry(struct entry *e, json_t *value) {
    const char *subnet = json_string_value(json_object_get(value, "subnet"));
    const char *ipv6 = json_string_value(json_object_get(value, "ipv6_prefix"));

    if (subnet != NULL && ipv4_prefix_parse(subnet, &e->subnet) &&
        e->subnet.len >= 8 && e->subnet.len <= 30) {
        e->subnet.address &= ipv4_prefix_mask(e->subnet.len);
        e->has_subnet = true;
    }
    // Unique local addresses only (fc00::/7): nothing else is made here.
    if (ipv6 != NULL && inet_pton(AF_INET6, ipv6, e->ipv6) == 1 &&
        (e->ipv6[0] & 0xfe) == 0xfc)
        e->has_ipv6 = true;
}

static void load(struct stable_addresses *s) {
    json_error_t error;
    json_t *root = NULL;
    json_t *networks;
    const char *name;
    json_t *value;
    struct stat st;
    int fd = openat(s->dir_fd, FILE_NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0) {
        if (errno != ENOENT)
            log_warning("cannot read %s/%s: %s: subnets are chosen afresh",
                        s->dir, FILE_NAME, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        st.st_size > MAX_FILE_SIZE) {
        log_warning("%s/%s is not a regular file of at most %d bytes: "
                    "ignored",
                    s->dir, FILE_NAME, MAX_FILE_SIZE);
        goto out;
    }
    root = json_loadfd(fd, 0, &error);
    networks = json_object_get(root, "networks");
    if (!json_is_object(networks)) {
        log_warning("%s/%s: %s: ignored, rewritten at the next change", s->dir,
                    FILE_NAME,
                    root == NULL ? error.text : "no \"networks\" object");
        goto out;
    }
    json_object_foreach(networks, name, value) {
        struct entry *e = add(s, name);
        if (e != NULL)
            parse_entry(e, value);
    }
out:
    json_decref(root);
    if (fd >= 0)
        close(fd);
}

struct stable_addresses *stable_addresses_load(int dir_fd, const char *dir) {
    struct stable_addresses *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->dir_fd = dir_fd;
    s->dir = strdup(dir);
    if (s->dir == NULL) {
        free(s);
        return NULL;
    }
    load(s);
    return s;
}

void stable_addresses_free(struct stable_addresses *s) {
    if (s == NULL)
        return;
    close(s->dir_fd);
    free(s->entries);
    free(s->dir);
    free(s);
}

bool stable_addresses_subnet(const struct stable_addresses *s, const char *name,
                             struct ipv4_prefix *out) {
    const struct entry *e = s != NULL ? find(s, name) : NULL;

    if (e == NULL || !e->has_subnet)
        return false;
    *out = e->subnet;
    return true;
}

bool stable_addresses_others(const struct stable_addresses *s, const char *name,
                             struct ipv4_prefix **used, size_t *n) {
    struct ipv4_prefix *grown;

    if (s == NULL || s->n == 0)
        return true;
    grown = realloc(*used, (*n + s->n) * sizeof(*grown));
    if (grown == NULL)
        return false;
    *used = grown;
    for (size_t i = 0; i < s->n; i++) {
        if (s->entries[i].has_subnet && strcmp(s->entries[i].name, name) != 0)
            grown[(*n)++] = s->entries[i].subnet;
    }
    return true;
}

bool stable_addresses_ipv6(const struct stable_addresses *s, const char *name,
                           uint8_t out[16]) {
    const struct entry *e = s != NULL ? find(s, name) : NULL;

    if (e == NULL || !e->has_ipv6)
        return false;
    memcpy(out, e->ipv6, 16);
    return true;
}

static json_t *to_json(const struct stable_addresses *s) {
    json_t *networks = json_object();
    json_t *root = json_pack("{s:i, s:o}", "version", 1, "networks", networks);

    for (size_t i = 0; root != NULL && i < s->n; i++) {
        const struct entry *e = &s->entries[i];
        json_t *value = json_object();
        char text[INET6_ADDRSTRLEN + 8];
        char address[16];

        if (e->has_subnet) {
            snprintf(text, sizeof(text), "%s/%u",
                     ipv4_format(e->subnet.address, address), e->subnet.len);
            json_object_set_new(value, "subnet", json_string(text));
        }
        if (e->has_ipv6 && inet_ntop(AF_INET6, e->ipv6, text, sizeof(text)))
            json_object_set_new(value, "ipv6_prefix", json_string(text));
        json_object_set_new(networks, e->name, value);
    }
    return root;
}

static bool write_all(int fd, const char *text, size_t length) {
    while (length > 0) {
        ssize_t n = write(fd, text, length);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        text += n;
        length -= (size_t)n;
    }
    return true;
}

// Written beside the file and renamed over it, relative to the state
// directory's descriptor: a crash leaves the old file or the new one.
// The text is made in memory and written at once: json_dumpfd() makes a
// write() per token, thousands per save with a hundred networks, on the
// worker that creates networks.
static bool save(const struct stable_addresses *s) {
    json_t *root = to_json(s);
    char *text = NULL;
    size_t length;
    bool ok = false;
    int fd = -1;

    if (root == NULL)
        goto out;
    text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (text == NULL)
        goto out;
    length = strlen(text);
    text[length] = '\n'; // over the terminating NUL: written, not read
    // A leftover of a crash, or a link planted there: never followed.
    unlinkat(s->dir_fd, TEMP_NAME, 0);
    fd = openat(s->dir_fd, TEMP_NAME,
                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 || !write_all(fd, text, length + 1) || fsync(fd) < 0)
        goto out;
    ok = renameat(s->dir_fd, TEMP_NAME, s->dir_fd, FILE_NAME) == 0;
out:
    if (!ok) {
        log_warning("cannot write %s/%s: %s: this network's addresses may "
                    "change when it is next created",
                    s->dir, FILE_NAME, strerror(errno));
        unlinkat(s->dir_fd, TEMP_NAME, 0);
    }
    if (fd >= 0)
        close(fd);
    free(text);
    json_decref(root);
    return ok;
}

bool stable_addresses_remember(struct stable_addresses *s, const char *name,
                               const struct ipv4_prefix *subnet,
                               const uint8_t ipv6[16]) {
    struct entry *e = find(s, name);

    // The same addresses as last time (a network made again): nothing to
    // write, and a rewrite per creation costs in proportion to the names.
    if (e != NULL &&
        (subnet == NULL ||
         (e->has_subnet && e->subnet.address == subnet->address &&
          e->subnet.len == subnet->len)) &&
        (ipv6 == NULL || (e->has_ipv6 && memcmp(e->ipv6, ipv6, 16) == 0)))
        return true;
    if (e == NULL)
        e = add(s, name);
    if (e == NULL)
        return false;
    if (subnet != NULL) {
        e->has_subnet = true;
        e->subnet = *subnet;
    }
    if (ipv6 != NULL) {
        e->has_ipv6 = true;
        memcpy(e->ipv6, ipv6, 16);
    }
    return save(s);
}
