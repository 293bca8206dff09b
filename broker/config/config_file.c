// SPDX-License-Identifier: Apache-2.0
// Reads one network's JSON file and checks every key, reporting all problems.
#include "config_file.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/subnet.h"
#include "json_locate.h"

// A config file is a few hundred bytes; the cap only keeps a wrong path (a
// device, a huge log) from being read whole.
#define CONFIG_FILE_MAX (1024 * 1024)
#define MESSAGE_MAX 512
// User text quoted in a message is cut here so a problem stays one line.
#define QUOTE_MAX 64
// The deepest value a file has: "port_forwarding"[i]"guest_port".
#define WHERE_MAX 3
// getpwnam_r buffers grow up to this before a lookup gives up.
#define NSS_BUFFER_MAX (1024 * 1024)

#if defined(__GNUC__)
#define CONFIG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CONFIG_PRINTF(a, b)
#endif

struct problem {
    int line;
    int column;
    // Discovery order breaks ties, keeping the sort stable.
    size_t order;
    char message[MESSAGE_MAX];
};

struct parser {
    const char *text;
    size_t len;
    bool builtin;
    struct problem *problems;
    size_t n_problems;
    size_t capacity;
    // Problems found, including any that could not be stored.
    int count;
};

// A value in the file, by the keys and indexes leading to it.
struct where {
    struct json_step steps[WHERE_MAX];
    size_t n;
    // Point at the last step's key instead of its value.
    bool key;
};

enum subnet_state { SUBNET_NONE, SUBNET_VALID, SUBNET_INVALID };

// The configuration being built, and what later keys need to know.
struct draft {
    struct network_config config;
    enum subnet_state subnet;
    // False after a bad "mode": checks that depend on it are skipped rather
    // than piling up problems that only follow from the first.
    bool mode_known;
};

struct quoted {
    // Room for QUOTE_MAX characters escaped as \u00XX, quotes and "...".
    char text[QUOTE_MAX * 6 + 16];
};

static struct where top(void) {
    struct where at = {.n = 0};
    return at;
}

static struct where member(struct where parent, const char *key) {
    parent.steps[parent.n++] = JSON_KEY(key);
    return parent;
}

static struct where element(struct where parent, size_t index) {
    parent.steps[parent.n++] = JSON_INDEX(index);
    return parent;
}

// User text for a message: escaped, between delim characters, and cut
// short (at a character boundary) with "..." after it when too long.
static struct quoted escape_text(const char *s, char delim) {
    struct quoted q;
    size_t used = 0;
    size_t taken = 0;

    q.text[used++] = delim;
    for (; s[taken] != '\0'; taken++) {
        unsigned char ch = (unsigned char)s[taken];
        if (taken >= QUOTE_MAX && (ch & 0xc0) != 0x80)
            break;
        if (ch == (unsigned char)delim || ch == '\\') {
            q.text[used++] = '\\';
            q.text[used++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            used += (size_t)snprintf(q.text + used, sizeof(q.text) - used,
                                     "\\u%04x", ch);
        } else {
            q.text[used++] = (char)ch;
        }
    }
    q.text[used++] = delim;
    if (s[taken] != '\0') {
        memcpy(q.text + used, "...", 3);
        used += 3;
    }
    q.text[used] = '\0';
    return q;
}

static struct quoted quote(const char *s) { return escape_text(s, '"'); }

static void format_label(const struct where *at, size_t n, char *buf,
                         size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < size; i++) {
        int wrote = at->steps[i].key != NULL
                        ? snprintf(buf + used, size - used, "%s'%s'",
                                   i > 0 ? "." : "", at->steps[i].key)
                        : snprintf(buf + used, size - used, "[%zu]",
                                   at->steps[i].index);
        if (wrote < 0)
            return;
        used += (size_t)wrote;
    }
}

static void add_problem(struct parser *p, int line, int column,
                        const char *message) {
    struct problem *problem;

    p->count++;
    if (p->n_problems == p->capacity) {
        size_t capacity = p->capacity ? p->capacity * 2 : 8;
        struct problem *bigger =
            realloc(p->problems, capacity * sizeof(*bigger));
        // Still counted, so the file is rejected; only the text is lost.
        if (bigger == NULL)
            return;
        p->problems = bigger;
        p->capacity = capacity;
    }
    problem = &p->problems[p->n_problems];
    problem->line = line;
    problem->column = column;
    problem->order = p->n_problems;
    snprintf(problem->message, sizeof(problem->message), "%s", message);
    p->n_problems++;
}

// Records a problem at a value (or key) of the file. The message is the
// value's label ("'port_forwarding'[1].'guest_port'") followed by fmt, so
// fmt starts with " must be ..." or ": ...".
static void problem_at(struct parser *p, struct where at, const char *fmt, ...)
    CONFIG_PRINTF(3, 4);

static void problem_at(struct parser *p, struct where at, const char *fmt,
                       ...) {
    char label[128];
    char text[MESSAGE_MAX];
    char message[MESSAGE_MAX + sizeof(label)];
    int line = 1;
    int column = 1;
    va_list ap;

    // Every path here came from the parsed document, so it is found.
    if (at.key)
        json_locate_key(p->text, p->len, at.steps, at.n, &line, &column);
    else
        json_locate_value(p->text, p->len, at.steps, at.n, &line, &column);
    format_label(&at, at.key ? at.n - 1 : at.n, label, sizeof(label));
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    snprintf(message, sizeof(message), "%s%s", label, text);
    add_problem(p, line, column, message);
}

static bool key_known(const char *key, const char *const *known,
                      size_t n_known) {
    for (size_t i = 0; i < n_known; i++) {
        if (strcmp(key, known[i]) == 0)
            return true;
    }
    return false;
}

// A misspelt key must not be ignored: "allowed_user" would open a network.
static void check_keys(struct parser *p, struct where at, json_t *object,
                       const char *const *known, size_t n_known) {
    const char *key;
    json_t *value;

    json_object_foreach(object, key, value) {
        struct where key_at = member(at, key);
        if (key_known(key, known, n_known))
            continue;
        key_at.key = true;
        problem_at(p, key_at, "%sunknown key %s", at.n > 0 ? ": " : "",
                   escape_text(key, '\'').text);
    }
}

static bool get_string(struct parser *p, struct where at, json_t *value,
                       const char **out) {
    if (!json_is_string(value)) {
        problem_at(p, at, " must be a string");
        return false;
    }
    *out = json_string_value(value);
    return true;
}

static bool get_integer(struct parser *p, struct where at, json_t *value,
                        long long min, long long max, long long *out) {
    if (!json_is_integer(value) || json_integer_value(value) < min ||
        json_integer_value(value) > max) {
        problem_at(p, at, " must be an integer from %lld to %lld", min, max);
        return false;
    }
    *out = json_integer_value(value);
    return true;
}

static bool get_ipv4(struct parser *p, struct where at, json_t *value,
                     uint32_t *out) {
    const char *s;
    if (!get_string(p, at, value, &s))
        return false;
    if (!ipv4_parse(s, out)) {
        problem_at(p, at, ": not an IPv4 address: %s", quote(s).text);
        return false;
    }
    return true;
}

// Fetches a member an object must have, reporting its absence at the object.
static json_t *get_required(struct parser *p, struct where at, json_t *object,
                            const char *key) {
    json_t *value = json_object_get(object, key);
    if (value == NULL)
        problem_at(p, at, ": missing '%s'", key);
    return value;
}

static void apply_bool(struct parser *p, json_t *root, const char *key,
                       bool *out) {
    json_t *value = json_object_get(root, key);
    if (value == NULL)
        return;
    if (!json_is_boolean(value)) {
        problem_at(p, member(top(), key), " must be true or false");
        return;
    }
    *out = json_is_true(value);
}

static void apply_description(struct parser *p, json_t *root, struct draft *d) {
    struct where at = member(top(), "description");
    json_t *value = json_object_get(root, "description");
    const char *s;

    if (value == NULL || !get_string(p, at, value, &s))
        return;
    if (strlen(s) > NETWORK_DESCRIPTION_MAX) {
        problem_at(p, at, ": longer than %d bytes", NETWORK_DESCRIPTION_MAX);
        return;
    }
    strcpy(d->config.description, s);
}

static void apply_mode(struct parser *p, json_t *root, struct draft *d) {
    json_t *value = json_object_get(root, "mode");
    const char *s = json_string_value(value);

    d->mode_known = false;
    if (value == NULL) {
        if (!p->builtin) {
            problem_at(p, top(), "missing 'mode' (\"shared\" or \"host\")");
            return;
        }
        d->mode_known = true;
        return;
    }
    if (s != NULL && strcmp(s, "shared") == 0) {
        d->config.mode = NETWORK_MODE_SHARED;
    } else if (s != NULL && strcmp(s, "host") == 0) {
        d->config.mode = NETWORK_MODE_HOST;
    } else {
        problem_at(p, member(top(), "mode"), " must be \"shared\" or \"host\"");
        return;
    }
    d->mode_known = true;
}

static bool subnet_usable(uint32_t address) {
    uint8_t first = (uint8_t)(address >> 24);
    // "This network", loopback, multicast and reserved cannot be a LAN.
    return first != 0 && first != 127 && first < 224;
}

static void apply_subnet(struct parser *p, json_t *root, struct draft *d) {
    struct where subnet_at = member(top(), "subnet");
    struct where mask_at = member(top(), "mask");
    json_t *subnet = json_object_get(root, "subnet");
    json_t *mask_value = json_object_get(root, "mask");
    uint32_t mask = 0xffffff00u;
    uint32_t address = 0;
    bool valid = true;
    const char *s;
    char buf[16];

    if (mask_value != NULL) {
        if (subnet == NULL)
            problem_at(p, mask_at, " needs 'subnet'");
        if (!get_string(p, mask_at, mask_value, &s)) {
            valid = false;
        } else if (!ipv4_parse(s, &mask) || !ipv4_mask_valid(mask)) {
            problem_at(p, mask_at, ": not a netmask from /1 to /30: %s",
                       quote(s).text);
            valid = false;
        }
    }
    if (subnet == NULL)
        return;
    if (!get_ipv4(p, subnet_at, subnet, &address)) {
        valid = false;
    } else if (!subnet_usable(address)) {
        problem_at(p, subnet_at, ": %s cannot be a network's subnet",
                   ipv4_format(address, buf));
        valid = false;
    } else if (valid && (address | mask) == 0xffffffffu) {
        problem_at(p, subnet_at, ": %s is a broadcast address",
                   ipv4_format(address, buf));
        valid = false;
    }
    d->subnet = valid ? SUBNET_VALID : SUBNET_INVALID;
    if (!valid)
        return;
    d->config.has_subnet = true;
    d->config.subnet = address;
    d->config.mask = mask;
}

// "subnet" names either the network or the gateway address (as in vmnet).
static uint32_t subnet_gateway(const struct network_config *c) {
    return network_config_gateway(c);
}

// Why address cannot be handed to a guest on the static subnet, or NULL.
static const char *guest_address_problem(const struct network_config *c,
                                         uint32_t address) {
    uint32_t network = c->subnet & c->mask;
    if ((address & c->mask) != network)
        return "is outside";
    if (address == network)
        return "is the network address of";
    if (address == (network | ~c->mask))
        return "is the broadcast address of";
    if (address == subnet_gateway(c))
        return "is the gateway of";
    return NULL;
}

// Reports an address a guest cannot have; true when it is fine (or when
// there is no valid subnet to check it against, reported elsewhere).
static bool check_guest_address(struct parser *p, struct where at,
                                const struct draft *d, uint32_t address) {
    const char *why;
    char buf[16];
    char subnet[16];

    if (d->subnet != SUBNET_VALID)
        return true;
    why = guest_address_problem(&d->config, address);
    if (why == NULL)
        return true;
    problem_at(p, at, ": %s %s %s/%u", ipv4_format(address, buf), why,
               ipv4_format(d->config.subnet & d->config.mask, subnet),
               ipv4_mask_len(d->config.mask));
    return false;
}

// Features that carve addresses out of the subnet need to know it.
static void require_subnet(struct parser *p, struct where at,
                           const struct draft *d) {
    if (d->subnet == SUBNET_NONE)
        problem_at(p, at, " needs a static 'subnet'");
}

static void apply_mtu(struct parser *p, json_t *root, struct draft *d) {
    json_t *value = json_object_get(root, "mtu");
    long long mtu;
    if (value != NULL &&
        get_integer(p, member(top(), "mtu"), value, 576, 9216, &mtu))
        d->config.mtu = (unsigned)mtu;
}

static void apply_dhcp_range(struct parser *p, json_t *root, struct draft *d) {
    static const char *const known[] = {"start", "end"};
    struct where at = member(top(), "dhcp_range");
    json_t *value = json_object_get(root, "dhcp_range");
    json_t *start_value, *end_value;
    uint32_t start, end;
    bool valid = true;
    char a[16], b[16];

    if (value == NULL)
        return;
    if (!json_is_object(value)) {
        problem_at(p, at, " must be an object with 'start' and 'end'");
        return;
    }
    check_keys(p, at, value, known, 2);
    require_subnet(p, at, d);
    start_value = get_required(p, at, value, "start");
    end_value = get_required(p, at, value, "end");
    if (start_value == NULL ||
        !get_ipv4(p, member(at, "start"), start_value, &start) ||
        !check_guest_address(p, member(at, "start"), d, start))
        valid = false;
    if (end_value == NULL || !get_ipv4(p, member(at, "end"), end_value, &end) ||
        !check_guest_address(p, member(at, "end"), d, end))
        valid = false;
    if (!valid)
        return;
    if (start > end) {
        problem_at(p, at, ": 'start' %s is after 'end' %s",
                   ipv4_format(start, a), ipv4_format(end, b));
        return;
    }
    d->config.has_dhcp_range = true;
    d->config.dhcp_start = start;
    d->config.dhcp_end = end;
}

static void apply_ipv6_prefix(struct parser *p, json_t *root, struct draft *d) {
    struct where prefix_at = member(top(), "ipv6_prefix");
    struct where length_at = member(top(), "ipv6_prefix_length");
    json_t *prefix = json_object_get(root, "ipv6_prefix");
    json_t *length = json_object_get(root, "ipv6_prefix_length");
    uint8_t bytes[16];
    const char *s;

    if (length != NULL) {
        if (prefix == NULL)
            problem_at(p, length_at, " needs 'ipv6_prefix'");
        // SLAAC, which guests configure themselves with, needs a /64.
        if (!json_is_integer(length) || json_integer_value(length) != 64)
            problem_at(p, length_at, " must be 64");
    }
    if (prefix == NULL || !get_string(p, prefix_at, prefix, &s))
        return;
    if (inet_pton(AF_INET6, s, bytes) != 1) {
        problem_at(p, prefix_at, ": not an IPv6 address: %s", quote(s).text);
        return;
    }
    if (bytes[0] != 0xfd) {
        problem_at(p, prefix_at, ": %s is not a unique local (fd00::/8) prefix",
                   quote(s).text);
        return;
    }
    for (int i = 8; i < 16; i++) {
        if (bytes[i] != 0) {
            problem_at(p, prefix_at, ": %s has bits set past /64",
                       quote(s).text);
            return;
        }
    }
    d->config.has_ipv6_prefix = true;
    memcpy(d->config.ipv6_prefix, bytes, sizeof(bytes));
    d->config.ipv6_prefix_len = 64;
}

// Checks that key holds an array of at most max entries; returns its size
// or -1 after reporting why not.
static int array_size(struct parser *p, struct where at, json_t *value,
                      size_t max, const char *of) {
    if (!json_is_array(value)) {
        problem_at(p, at, " must be an array of %s", of);
        return -1;
    }
    if (json_array_size(value) > max) {
        problem_at(p, at, ": more than %zu entries", max);
        return -1;
    }
    return (int)json_array_size(value);
}

static int hex_digit(char ch) {
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

// Six two-digit hex bytes separated by colons, and nothing else.
static bool mac_parse(const char *s, uint8_t out[6]) {
    uint8_t mac[6];
    for (int i = 0; i < 6; i++) {
        int high = hex_digit(s[0]);
        int low = high < 0 ? -1 : hex_digit(s[1]);
        if (low < 0)
            return false;
        mac[i] = (uint8_t)(high << 4 | low);
        s += 2;
        if (*s != (i < 5 ? ':' : '\0'))
            return false;
        if (i < 5)
            s++;
    }
    memcpy(out, mac, sizeof(mac));
    return true;
}

// Parses one reservation; true (and *out filled) when it is usable.
static bool parse_reservation(struct parser *p, struct where at, json_t *value,
                              const struct draft *d,
                              struct dhcp_reservation *out) {
    static const char *const known[] = {"mac_address", "ip_address"};
    struct where mac_at = member(at, "mac_address");
    struct where ip_at = member(at, "ip_address");
    json_t *mac_value, *ip_value;
    struct dhcp_reservation r;
    bool valid = true;
    const char *s;

    if (!json_is_object(value)) {
        problem_at(p, at,
                   " must be an object with 'mac_address' and 'ip_address'");
        return false;
    }
    check_keys(p, at, value, known, 2);
    mac_value = get_required(p, at, value, "mac_address");
    ip_value = get_required(p, at, value, "ip_address");
    if (mac_value == NULL || !get_string(p, mac_at, mac_value, &s)) {
        valid = false;
    } else if (!mac_parse(s, r.mac)) {
        problem_at(p, mac_at, ": not a MAC address: %s", quote(s).text);
        valid = false;
    } else if (r.mac[0] & 1) {
        problem_at(p, mac_at, ": %s is a multicast address", quote(s).text);
        valid = false;
    }
    if (ip_value == NULL || !get_ipv4(p, ip_at, ip_value, &r.address) ||
        !check_guest_address(p, ip_at, d, r.address))
        valid = false;
    if (valid)
        *out = r;
    return valid;
}

static void apply_reservations(struct parser *p, json_t *root,
                               struct draft *d) {
    struct where at = member(top(), "dhcp_reservations");
    json_t *value = json_object_get(root, "dhcp_reservations");
    struct network_config *c = &d->config;
    int n;

    if (value == NULL)
        return;
    n = array_size(p, at, value, NETWORK_RESERVATIONS_MAX, "objects");
    if (n > 0)
        require_subnet(p, at, d);
    c->n_reservations = 0;
    for (int i = 0; i < n; i++) {
        struct where item_at = element(at, (size_t)i);
        struct dhcp_reservation r;
        bool unique = true;
        char buf[16];

        if (!parse_reservation(p, item_at, json_array_get(value, (size_t)i), d,
                               &r))
            continue;
        for (size_t j = 0; j < c->n_reservations; j++) {
            if (memcmp(c->reservations[j].mac, r.mac, sizeof(r.mac)) == 0) {
                problem_at(p, member(item_at, "mac_address"),
                           ": reserved twice");
                unique = false;
            }
            if (c->reservations[j].address == r.address) {
                problem_at(p, member(item_at, "ip_address"),
                           ": %s reserved twice", ipv4_format(r.address, buf));
                unique = false;
            }
        }
        if (unique)
            c->reservations[c->n_reservations++] = r;
    }
}

static bool parse_port(struct parser *p, struct where at, json_t *object,
                       const char *key, uint16_t *out) {
    json_t *value = get_required(p, at, object, key);
    long long port;
    if (value == NULL ||
        !get_integer(p, member(at, key), value, 1, 65535, &port))
        return false;
    *out = (uint16_t)port;
    return true;
}

// Parses one forward; true (and *out filled) when it is usable.
static bool parse_port_forward(struct parser *p, struct where at, json_t *value,
                               const struct draft *d,
                               struct port_forward *out) {
    static const char *const known[] = {"protocol", "host_port",
                                        "guest_address", "guest_port"};
    struct where address_at = member(at, "guest_address");
    json_t *protocol, *address;
    struct port_forward f;
    bool valid = true;
    const char *s;

    if (!json_is_object(value)) {
        problem_at(p, at,
                   " must be an object with 'protocol', 'host_port', "
                   "'guest_address' and 'guest_port'");
        return false;
    }
    check_keys(p, at, value, known, 4);
    protocol = get_required(p, at, value, "protocol");
    s = json_string_value(protocol);
    if (s != NULL && (strcmp(s, "tcp") == 0 || strcmp(s, "udp") == 0)) {
        f.udp = strcmp(s, "udp") == 0;
    } else {
        if (protocol != NULL)
            problem_at(p, member(at, "protocol"),
                       " must be \"tcp\" or \"udp\"");
        valid = false;
    }
    if (!parse_port(p, at, value, "host_port", &f.host_port))
        valid = false;
    address = get_required(p, at, value, "guest_address");
    if (address == NULL ||
        !get_ipv4(p, address_at, address, &f.guest_address) ||
        !check_guest_address(p, address_at, d, f.guest_address))
        valid = false;
    if (!parse_port(p, at, value, "guest_port", &f.guest_port))
        valid = false;
    if (valid)
        *out = f;
    return valid;
}

static void apply_port_forwards(struct parser *p, json_t *root,
                                struct draft *d) {
    struct where at = member(top(), "port_forwarding");
    json_t *value = json_object_get(root, "port_forwarding");
    struct network_config *c = &d->config;
    int n;

    if (value == NULL)
        return;
    n = array_size(p, at, value, NETWORK_PORT_FORWARDS_MAX, "objects");
    if (n > 0) {
        // A host-only network has no route out, so nothing to forward from.
        if (d->mode_known && c->mode != NETWORK_MODE_SHARED)
            problem_at(p, at, ": only a \"shared\" network forwards ports");
        require_subnet(p, at, d);
    }
    c->n_port_forwards = 0;
    for (int i = 0; i < n; i++) {
        struct where item_at = element(at, (size_t)i);
        struct port_forward f;
        bool unique = true;

        if (!parse_port_forward(p, item_at, json_array_get(value, (size_t)i), d,
                                &f))
            continue;
        for (size_t j = 0; j < c->n_port_forwards && unique; j++) {
            if (c->port_forwards[j].udp == f.udp &&
                c->port_forwards[j].host_port == f.host_port) {
                problem_at(p, member(item_at, "host_port"),
                           ": %s port %u forwarded twice",
                           f.udp ? "udp" : "tcp", f.host_port);
                unique = false;
            }
        }
        if (unique)
            c->port_forwards[c->n_port_forwards++] = f;
    }
}

// One lookup with a caller-sized buffer: 0 (and *id), ENOENT, or an errno
// (ERANGE when buf is too small).
static int lookup_name(const char *name, bool group, char *buf, size_t size,
                       uint32_t *id) {
    int status;
    if (group) {
        struct group entry, *found = NULL;
        status = getgrnam_r(name, &entry, buf, size, &found);
        if (status == 0 && found != NULL)
            *id = (uint32_t)found->gr_gid;
        else if (status == 0)
            status = ENOENT;
    } else {
        struct passwd entry, *found = NULL;
        status = getpwnam_r(name, &entry, buf, size, &found);
        if (status == 0 && found != NULL)
            *id = (uint32_t)found->pw_uid;
        else if (status == 0)
            status = ENOENT;
    }
    // POSIX lets "not found" come back as ESRCH too.
    return status == ESRCH ? ENOENT : status;
}

// Resolves a user or group name, growing the buffer as NSS asks.
static int resolve_name(const char *name, bool group, uint32_t *id) {
    size_t size = 1024;
    char *buf = NULL;
    int status = ENOMEM;

    for (;;) {
        char *bigger = realloc(buf, size);
        if (bigger == NULL) {
            status = ENOMEM;
            goto out;
        }
        buf = bigger;
        status = lookup_name(name, group, buf, size, id);
        if (status != ERANGE || size >= NSS_BUFFER_MAX)
            goto out;
        size *= 2;
    }
out:
    free(buf);
    return status;
}

static void apply_ids(struct parser *p, json_t *root, const char *key,
                      bool group, uint32_t *ids, size_t *n_ids) {
    const char *what = group ? "group" : "user";
    char id_name = group ? 'g' : 'u';
    struct where at = member(top(), key);
    json_t *value = json_object_get(root, key);
    int n;

    if (value == NULL)
        return;
    n = array_size(p, at, value, NETWORK_POLICY_MAX,
                   group ? "group names and gids" : "user names and uids");
    *n_ids = 0;
    for (int i = 0; i < n; i++) {
        struct where item_at = element(at, (size_t)i);
        json_t *item = json_array_get(value, (size_t)i);
        const char *name = json_string_value(item);
        uint32_t id = 0;

        if (json_is_integer(item)) {
            long long number = (long long)json_integer_value(item);
            // (uid_t)-1 is "no id" to chown() and friends, never a user.
            if (number < 0 || number >= (long long)UINT32_MAX) {
                problem_at(p, item_at, ": %lld is not a valid %cid", number,
                           id_name);
                continue;
            }
            id = (uint32_t)number;
        } else if (name != NULL) {
            int status = resolve_name(name, group, &id);
            if (status == ENOENT) {
                problem_at(p, item_at, ": no such %s %s", what,
                           quote(name).text);
                continue;
            }
            if (status != 0) {
                problem_at(p, item_at, ": cannot look up %s %s: %s", what,
                           quote(name).text, strerror(status));
                continue;
            }
        } else {
            problem_at(p, item_at, " must be a %s name or a %cid", what,
                       id_name);
            continue;
        }
        ids[(*n_ids)++] = id;
    }
}

static void apply_root(struct parser *p, json_t *root, struct draft *d) {
    static const char *const known[] = {
        "description",
        "mode",
        "subnet",
        "mask",
        "allowed_users",
        "allowed_groups",
        "mtu",
        "dhcp",
        "dhcp_range",
        "ipv6",
        "ipv6_prefix",
        "ipv6_prefix_length",
        "dhcp_reservations",
        "port_forwarding",
        "persistent",
        "anti_spoofing",
        "port_isolation",
    };
    struct network_config *c = &d->config;

    if (!json_is_object(root)) {
        problem_at(p, top(), "the top level must be an object");
        return;
    }
    check_keys(p, top(), root, known, sizeof(known) / sizeof(known[0]));
    // Mode and subnet first: later keys are checked against them.
    apply_mode(p, root, d);
    apply_subnet(p, root, d);
    apply_description(p, root, d);
    apply_mtu(p, root, d);
    apply_bool(p, root, "dhcp", &c->dhcp);
    apply_dhcp_range(p, root, d);
    apply_bool(p, root, "ipv6", &c->ipv6);
    apply_ipv6_prefix(p, root, d);
    apply_reservations(p, root, d);
    apply_port_forwards(p, root, d);
    apply_bool(p, root, "persistent", &c->persistent);
    apply_bool(p, root, "anti_spoofing", &c->anti_spoofing);
    apply_bool(p, root, "port_isolation", &c->port_isolation);
    // Either key, even with an empty list, restricts the network.
    c->restricted = json_object_get(root, "allowed_users") != NULL ||
                    json_object_get(root, "allowed_groups") != NULL;
    apply_ids(p, root, "allowed_users", false, c->allowed_users,
              &c->n_allowed_users);
    apply_ids(p, root, "allowed_groups", true, c->allowed_groups,
              &c->n_allowed_groups);
}

// Reads the whole file into a malloc'd buffer. Returns NULL on success,
// otherwise why it could not.
static const char *read_file(const char *path, char **text, size_t *len) {
    const char *failure = "out of memory";
    char *buf = NULL;
    size_t used = 0;
    size_t capacity = 0;
    struct stat st;
    // Non-blocking, so that a FIFO left in the directory cannot hang us.
    // O_NOFOLLOW: a link planted after the caller lstat()ed the name is
    // refused, never followed.
    int fd =
        open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);

    if (fd < 0 || fstat(fd, &st) < 0) {
        failure = strerror(errno);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        failure = S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file";
        goto out;
    }
    for (;;) {
        ssize_t n;
        if (used == capacity) {
            size_t bigger_capacity = capacity ? capacity * 2 : 4096;
            char *bigger = realloc(buf, bigger_capacity);
            if (bigger == NULL) {
                failure = "out of memory";
                goto out;
            }
            buf = bigger;
            capacity = bigger_capacity;
        }
        n = read(fd, buf + used, capacity - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            failure = strerror(errno);
            goto out;
        }
        if (n == 0)
            break;
        used += (size_t)n;
        if (used > CONFIG_FILE_MAX) {
            failure = "larger than 1 MiB";
            goto out;
        }
    }
    *text = buf;
    *len = used;
    buf = NULL;
    failure = NULL;
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return failure;
}

static int compare_problems(const void *a, const void *b) {
    const struct problem *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->column != y->column)
        return x->column < y->column ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

// Problems are found key by key in dependency order; the reader wants them
// in file order.
static void report_problems(struct parser *p, const char *path,
                            config_problem_fn report, void *report_ctx) {
    if (report == NULL)
        return;
    if (p->n_problems > 0)
        qsort(p->problems, p->n_problems, sizeof(*p->problems),
              compare_problems);
    for (size_t i = 0; i < p->n_problems; i++)
        report(report_ctx, path, p->problems[i].line, p->problems[i].column,
               p->problems[i].message);
    if ((size_t)p->count > p->n_problems) {
        char message[64];
        snprintf(message, sizeof(message),
                 "out of memory: %zu more problems not shown",
                 (size_t)p->count - p->n_problems);
        report(report_ctx, path, 1, 1, message);
    }
}

int config_file_apply(const char *path, bool builtin,
                      struct network_config *config, config_problem_fn report,
                      void *report_ctx) {
    struct parser p = {.builtin = builtin};
    struct draft d = {.config = *config, .subnet = SUBNET_NONE};
    json_t *root = NULL;
    char *text = NULL;
    size_t len = 0;
    json_error_t error;
    const char *failure;

    failure = read_file(path, &text, &len);
    if (failure != NULL) {
        char message[MESSAGE_MAX];
        snprintf(message, sizeof(message), "cannot read: %s", failure);
        add_problem(&p, 1, 1, message);
        goto out;
    }
    p.text = text;
    p.len = len;
    // Duplicate keys are rejected: which one wins would be a guess.
    root =
        json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &error);
    if (root == NULL) {
        // jansson says column 0 at the end of an empty line.
        add_problem(&p, error.line > 0 ? error.line : 1,
                    error.column > 0 ? error.column : 1, error.text);
        goto out;
    }
    apply_root(&p, root, &d);
    if (p.count == 0)
        *config = d.config;
out:
    report_problems(&p, path, report, report_ctx);
    json_decref(root);
    free(text);
    free(p.problems);
    return p.count;
}
