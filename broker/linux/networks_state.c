// SPDX-License-Identifier: Apache-2.0
// <runtime-dir>/networks.json: what the next broker needs to adopt networks.
#include "networks_state.h"

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
#include "core/subnet.h"

#define TMP_FILE NETWORKS_STATE_FILE ".new"
#define STATE_VERSION 1
// More than any broker makes; a bigger file is not ours.
#define MAX_BYTES (4 * 1024 * 1024)

// network_mode_name()'s inverse.
static bool mode_parse(const char *name, enum network_mode *mode) {
    if (strcmp(name, network_mode_name(NETWORK_MODE_SHARED)) == 0)
        *mode = NETWORK_MODE_SHARED;
    else if (strcmp(name, network_mode_name(NETWORK_MODE_HOST)) == 0)
        *mode = NETWORK_MODE_HOST;
    else
        return false;
    return true;
}

static json_t *entry_json(const struct networks_state_entry *e) {
    const struct network_info *i = &e->info;
    char subnet[16], mask[16], gateway[16], start[16], end[16], dns[16];
    char prefix[INET6_ADDRSTRLEN] = "";

    if (i->ipv6)
        inet_ntop(AF_INET6, i->ipv6_prefix, prefix, sizeof(prefix));
    return json_pack(
        "{s:s, s:s, s:b, s:s, s:s, s:s, s:s, s:s, s:i, s:b, s:s, s:s, s:s,"
        " s:b, s:s, s:i, s:I, s:I}",
        "name", e->name, "mode", network_mode_name(e->mode), "persistent",
        e->persistent, "uuid", i->uuid, "bridge", i->bridge, "subnet",
        ipv4_format(i->subnet, subnet), "mask", ipv4_format(i->mask, mask),
        "gateway", ipv4_format(i->gateway, gateway), "mtu", (int)i->mtu, "dhcp",
        i->dhcp, "dhcp_start", ipv4_format(i->dhcp_start, start), "dhcp_end",
        ipv4_format(i->dhcp_end, end), "dns", ipv4_format(i->dns, dns), "ipv6",
        i->ipv6, "ipv6_prefix", prefix, "ipv6_prefix_len",
        (int)i->ipv6_prefix_len, "dnsmasq_pid", (json_int_t)e->dnsmasq_pid,
        "dnsmasq_start", (json_int_t)e->dnsmasq_start);
}

char *networks_state_format(const struct networks_state_entry *entries,
                            size_t n) {
    json_t *list = json_array();
    json_t *root = NULL;
    char *text = NULL;

    if (list == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(list, entry_json(&entries[i])) < 0)
            goto out;
    }
    root = json_pack("{s:i, s:O}", "version", STATE_VERSION, "networks", list);
    if (root == NULL)
        goto out;
    text = json_dumps(root, JSON_INDENT(2));
out:
    json_decref(root);
    json_decref(list);
    return text;
}

int networks_state_write_text(int dir_fd, const char *text) {
    size_t len = strlen(text), done = 0;
    int status;
    int fd =
        openat(dir_fd, TMP_FILE,
               O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);

    if (fd < 0) {
        status = -errno;
        goto out;
    }
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            status = -errno;
            goto out;
        }
        done += (size_t)w;
    }
    // No fsync: the rename alone leaves a crashed (even SIGKILLed) broker's
    // successor the old file or this one, since both live in the page
    // cache; only a power loss could tear it, and that takes every bridge
    // the file describes with it (and /run is tmpfs).
    status = close(fd) < 0 ? -errno : 0;
    fd = -1;
    if (status < 0)
        goto out;
    if (renameat(dir_fd, TMP_FILE, dir_fd, NETWORKS_STATE_FILE) < 0) {
        status = -errno;
        goto out;
    }
    status = 0;
out:
    if (fd >= 0)
        close(fd);
    if (status < 0) {
        log_error("cannot write the state file %s: %s", NETWORKS_STATE_FILE,
                  strerror(-status));
        unlinkat(dir_fd, TMP_FILE, 0);
    }
    return status;
}

int networks_state_write(int dir_fd, const struct networks_state_entry *entries,
                         size_t n) {
    char *text = networks_state_format(entries, n);
    int status;

    if (text == NULL) {
        log_error("cannot write the state file %s: out of memory",
                  NETWORKS_STATE_FILE);
        return -ENOMEM;
    }
    status = networks_state_write_text(dir_fd, text);
    free(text);
    return status;
}

static bool get_ipv4(json_t *o, const char *key, uint32_t *out) {
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL && ipv4_parse(s, out);
}

static bool get_string(json_t *o, const char *key, char *out, size_t size) {
    const char *s = json_string_value(json_object_get(o, key));
    if (s == NULL || strlen(s) >= size)
        return false;
    memcpy(out, s, strlen(s) + 1);
    return true;
}

static bool get_bool(json_t *o, const char *key, bool *out) {
    json_t *v = json_object_get(o, key);
    if (!json_is_boolean(v))
        return false;
    *out = json_is_true(v);
    return true;
}

static bool get_int(json_t *o, const char *key, long long min, long long max,
                    long long *out) {
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < min ||
        json_integer_value(v) > max)
        return false;
    *out = json_integer_value(v);
    return true;
}

// Fills e from o; false (e partly filled) when a field is missing or bad.
static bool parse_entry(json_t *o, struct networks_state_entry *e) {
    struct network_info *i = &e->info;
    char mode[16], prefix[INET6_ADDRSTRLEN];
    long long mtu, len, pid, start;

    memset(e, 0, sizeof(*e));
    if (!get_string(o, "name", e->name, sizeof(e->name)) ||
        !network_name_valid(e->name) ||
        !get_string(o, "mode", mode, sizeof(mode)) ||
        !mode_parse(mode, &e->mode) ||
        !get_bool(o, "persistent", &e->persistent) ||
        !get_string(o, "uuid", i->uuid, sizeof(i->uuid)) ||
        strlen(i->uuid) != NETWORK_UUID_LEN ||
        !get_string(o, "bridge", i->bridge, sizeof(i->bridge)) ||
        !get_ipv4(o, "subnet", &i->subnet) || !get_ipv4(o, "mask", &i->mask) ||
        !ipv4_mask_valid(i->mask) || !get_ipv4(o, "gateway", &i->gateway) ||
        !get_int(o, "mtu", 68, 65535, &mtu) || !get_bool(o, "dhcp", &i->dhcp) ||
        !get_ipv4(o, "dhcp_start", &i->dhcp_start) ||
        !get_ipv4(o, "dhcp_end", &i->dhcp_end) ||
        !get_ipv4(o, "dns", &i->dns) || !get_bool(o, "ipv6", &i->ipv6) ||
        !get_string(o, "ipv6_prefix", prefix, sizeof(prefix)) ||
        !get_int(o, "ipv6_prefix_len", 0, 128, &len) ||
        !get_int(o, "dnsmasq_pid", 0, 0x7fffffff, &pid) ||
        !get_int(o, "dnsmasq_start", 0, INT64_MAX, &start))
        return false;
    if (i->ipv6 && inet_pton(AF_INET6, prefix, i->ipv6_prefix) != 1)
        return false;
    i->mtu = (unsigned)mtu;
    i->ipv6_prefix_len = (unsigned)len;
    e->dnsmasq_pid = (pid_t)pid;
    e->dnsmasq_start = (unsigned long long)start;
    return true;
}

void networks_state_read(int dir_fd, struct networks_state_entry **entries,
                         size_t *n) {
    json_t *root = NULL, *list, *item;
    json_error_t error;
    struct networks_state_entry *out = NULL;
    size_t count = 0, index;
    int fd;

    *entries = NULL;
    *n = 0;
    // O_NONBLOCK: a FIFO in its place must not hang the start.
    fd = openat(dir_fd, NETWORKS_STATE_FILE,
                O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno != ENOENT)
            log_warning("cannot read the state file %s: %s; adopting no "
                        "network",
                        NETWORKS_STATE_FILE, strerror(errno));
        goto out;
    }
    {
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
            st.st_size > MAX_BYTES) {
            log_warning("state file %s is not a regular file of at most %d "
                        "bytes; adopting no network",
                        NETWORKS_STATE_FILE, MAX_BYTES);
            close(fd);
            goto out;
        }
    }
    root = json_loadfd(fd, JSON_REJECT_DUPLICATES, &error);
    close(fd);
    if (root == NULL) {
        log_warning("state file %s is not valid JSON (line %d: %s); adopting "
                    "no network",
                    NETWORKS_STATE_FILE, error.line, error.text);
        goto out;
    }
    list = json_object_get(root, "networks");
    if (json_integer_value(json_object_get(root, "version")) != STATE_VERSION ||
        !json_is_array(list)) {
        log_warning("state file %s has an unknown form; adopting no network",
                    NETWORKS_STATE_FILE);
        goto out;
    }
    out = calloc(json_array_size(list) + 1, sizeof(*out));
    if (out == NULL)
        goto out;
    json_array_foreach(list, index, item) {
        if (!parse_entry(item, &out[count])) {
            log_warning("state file %s: entry %zu is invalid; not adopting it",
                        NETWORKS_STATE_FILE, index);
            continue;
        }
        count++;
    }
    *entries = out;
    *n = count;
    out = NULL;
out:
    free(out);
    json_decref(root);
}
