// SPDX-License-Identifier: Apache-2.0
// JSON (jansson) encoding of the protocol; the core never sees JSON.
#include "message.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/subnet.h"

static const struct {
    const char *name;
    enum request_command command;
    int needs_network;
} commands[] = {
    {"acquire", REQUEST_ACQUIRE, 1},
    {"release", REQUEST_RELEASE, 1},
    {"status", REQUEST_STATUS, 0},
    {"open_interface", REQUEST_OPEN_INTERFACE, 1},
    {"leases", REQUEST_LEASES, 1},
};

// Moves *p past prefix when the text from *p to end starts with it.
static bool skip(const char **p, const char *end, const char *prefix) {
    size_t n = strlen(prefix);
    if ((size_t)(end - *p) < n || memcmp(*p, prefix, n) != 0)
        return false;
    *p += n;
    return true;
}

// Reads a request written the way the client library writes it, without
// building a JSON tree:
//   {"command":"acquire","network_name":"shared"}   {"command":"status"}
// Valid names hold no quote or backslash, so such a text means to jansson
// exactly what it means here. Returns false for any other text, an invalid
// name included: jansson then decides, and says why.
static bool decode_compact(const char *data, size_t len, struct request *out) {
    const char *p = data, *end = data + len;
    struct request request;
    size_t i, name_len;

    memset(&request, 0, sizeof(request));
    if (!skip(&p, end, "{\"command\":\""))
        return false;
    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (skip(&p, end, commands[i].name))
            break;
    }
    if (i == sizeof(commands) / sizeof(commands[0]))
        return false;
    request.command = commands[i].command;
    if (commands[i].needs_network) {
        if (!skip(&p, end, "\",\"network_name\":\"") || end - p < 2 ||
            memcmp(end - 2, "\"}", 2) != 0)
            return false;
        name_len = (size_t)(end - 2 - p);
        if (name_len > NETWORK_NAME_MAX)
            return false;
        memcpy(request.network_name, p, name_len);
        // A NUL inside the name would end the string early.
        if (strlen(request.network_name) != name_len ||
            !network_name_valid(request.network_name))
            return false;
    } else if (!skip(&p, end, "\"}") || p != end) {
        return false;
    }
    *out = request;
    return true;
}

int message_decode_request(const char *data, size_t len, struct request *out,
                           const char **reason) {
    json_error_t error;
    json_t *root = NULL;
    const char *why = "not valid JSON";
    int status = BROKER_ERR_INVALID_REQUEST;
    struct request request;

    memset(&request, 0, sizeof(request));
    // First: nothing below may look at more than MESSAGE_REQUEST_MAX bytes.
    if (len > MESSAGE_REQUEST_MAX) {
        why = "request too long";
        goto out;
    }
    if (decode_compact(data, len, out))
        return BROKER_OK;
    // Two "command" keys are ambiguous, so refuse duplicates. Strings with
    // NUL are refused by jansson unless JSON_ALLOW_NUL is given.
    root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &error);
    if (root == NULL)
        goto out;
    if (!json_is_object(root)) {
        why = "not a JSON object";
        goto out;
    }
    json_t *command = json_object_get(root, "command");
    if (command == NULL) {
        why = "'command' missing";
        goto out;
    }
    if (!json_is_string(command)) {
        why = "'command' not a string";
        goto out;
    }
    size_t i;
    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(json_string_value(command), commands[i].name) == 0)
            break;
    }
    if (i == sizeof(commands) / sizeof(commands[0])) {
        why = "unknown command";
        goto out;
    }
    request.command = commands[i].command;
    if (commands[i].needs_network) {
        json_t *name = json_object_get(root, "network_name");
        if (name == NULL) {
            why = "'network_name' missing";
            goto out;
        }
        if (!json_is_string(name)) {
            why = "'network_name' not a string";
            goto out;
        }
        if (!network_name_valid(json_string_value(name))) {
            why = "invalid network name (1 to 64 of A-Z a-z 0-9 _ . -, "
                  "starting with a letter or digit)";
            goto out;
        }
        strcpy(request.network_name, json_string_value(name));
    }
    *out = request;
    status = BROKER_OK;
out:
    json_decref(root);
    if (status != BROKER_OK && reason != NULL)
        *reason = why;
    return status;
}

// Dumps root compactly and consumes the reference.
static char *dump(json_t *root, size_t *len) {
    char *text = NULL;
    if (root != NULL)
        // Six digits keep idle_remaining readable (0.797, not
        // 0.79700000000000004).
        text = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(root);
    if (text != NULL)
        *len = strlen(text);
    return text;
}

char *message_encode_error(int code, size_t *len) {
    char *text = NULL;
    int n = asprintf(&text, "{\"error\":%d}", code);
    if (n < 0)
        return NULL;
    *len = (size_t)n;
    return text;
}

char *message_encode_error_message(int code, const char *message, size_t *len) {
    if (message == NULL || message[0] == '\0')
        return message_encode_error(code, len);
    // jansson escapes whatever the reason quotes (names, file paths).
    return dump(json_pack("{s:i, s:s}", "error", code, "message", message),
                len);
}

static json_t *ipv4_json(uint32_t address) {
    char buf[16];
    return json_string(ipv4_format(address, buf));
}

static json_t *network_json(const struct network *n) {
    const struct network_config *config = network_get_config(n);
    const struct network_info *info = network_get_info(n);
    json_t *obj = json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:i, s:i}", "name", config->name,
        "mode", network_mode_name(config->mode), "uuid", info->uuid, "bridge",
        info->bridge, "subnet", ipv4_json(info->subnet), "mask",
        ipv4_json(info->mask), "gateway", ipv4_json(info->gateway), "mtu",
        (int)info->mtu, "prefix_length", (int)ipv4_mask_len(info->mask));
    if (obj == NULL)
        return NULL;
    if (config->description[0] != '\0')
        json_object_set_new(obj, "description",
                            json_string(config->description));
    if (info->dhcp) {
        json_object_set_new(obj, "dhcp_start", ipv4_json(info->dhcp_start));
        json_object_set_new(obj, "dhcp_end", ipv4_json(info->dhcp_end));
    }
    if (info->dns != 0)
        json_object_set_new(obj, "dns", ipv4_json(info->dns));
    if (info->ipv6) {
        char buf[INET6_ADDRSTRLEN];
        if (inet_ntop(AF_INET6, info->ipv6_prefix, buf, sizeof(buf)) != NULL) {
            json_object_set_new(obj, "ipv6_prefix", json_string(buf));
            json_object_set_new(obj, "ipv6_prefix_length",
                                json_integer(info->ipv6_prefix_len));
        }
    }
    return obj;
}

char *message_encode_network(const struct network *network, size_t *len) {
    return dump(json_pack("{s:o}", "network", network_json(network)), len);
}

char *message_encode_interface(const struct network *network,
                               const struct interface_info *info, size_t *len) {
    char mac[18], ipv4[INET_ADDRSTRLEN], ipv6[INET6_ADDRSTRLEN];
    const struct network_info *made = network_get_info(network);
    json_t *object;

    snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", info->mac[0],
             info->mac[1], info->mac[2], info->mac[3], info->mac[4],
             info->mac[5]);
    object = json_pack("{s:s, s:s, s:s, s:s, s:i}", "name", info->name, "mac",
                       mac, "network", network_get_name(network), "bridge",
                       made->bridge, "mtu", (int)made->mtu);
    // Absent when the network has no DHCP (or IPv6): clients must not guess.
    if (object != NULL && info->ipv4 != 0) {
        struct in_addr in = {.s_addr = htonl(info->ipv4)};
        inet_ntop(AF_INET, &in, ipv4, sizeof(ipv4));
        json_object_set_new(object, "ipv4", json_string(ipv4));
    }
    if (object != NULL && info->has_ipv6) {
        inet_ntop(AF_INET6, info->ipv6, ipv6, sizeof(ipv6));
        json_object_set_new(object, "ipv6", json_string(ipv6));
    }
    return dump(json_pack("{s:o}", "interface", object), len);
}

char *message_encode_leases(const struct lease_info *leases, size_t n,
                            size_t *len) {
    json_t *array = json_array();

    for (size_t i = 0; i < n && array != NULL; i++) {
        const struct lease_info *l = &leases[i];
        char mac[18], ipv4[INET_ADDRSTRLEN];
        struct in_addr in = {.s_addr = htonl(l->ipv4)};
        json_t *entry;

        snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", l->mac[0],
                 l->mac[1], l->mac[2], l->mac[3], l->mac[4], l->mac[5]);
        inet_ntop(AF_INET, &in, ipv4, sizeof(ipv4));
        entry = json_pack("{s:s, s:s, s:I}", "mac", mac, "ipv4", ipv4, "expiry",
                          (json_int_t)l->expiry);
        if (entry != NULL && l->hostname[0] != '\0')
            json_object_set_new(entry, "hostname", json_string(l->hostname));
        if (entry == NULL || json_array_append_new(array, entry) != 0) {
            json_decref(array);
            array = NULL;
        }
    }
    return dump(json_pack("{s:o}", "leases", array), len);
}

char *message_encode_released(const char *name, size_t *len) {
    return dump(json_pack("{s:s}", "released", name), len);
}

// What an administrator reads in `status` beside the keys above: whether
// the network is degraded, the gateway, IPv6 prefix, MTU and interface
// count (docs/protocol.md).
static void add_status_details(json_t *entry, const struct broker *broker,
                               const struct network *n) {
    const struct network_info *info = network_get_info(n);
    const char *degraded = broker_network_degraded(broker, n);
    char buf[INET6_ADDRSTRLEN];
    json_object_set_new(entry, "degraded", json_boolean(degraded != NULL));
    if (degraded != NULL)
        json_object_set_new(entry, "degraded_reason", json_string(degraded));
    json_object_set_new(entry, "gateway",
                        json_string(ipv4_format(info->gateway, buf)));
    json_object_set_new(entry, "mtu", json_integer(info->mtu));
    json_object_set_new(entry, "interfaces",
                        json_integer(broker_network_interfaces(broker, n)));
    if (info->ipv6 &&
        inet_ntop(AF_INET6, info->ipv6_prefix, buf, sizeof(buf)) != NULL) {
        json_object_set_new(entry, "ipv6_prefix", json_string(buf));
        json_object_set_new(entry, "ipv6_prefix_length",
                            json_integer(info->ipv6_prefix_len));
    }
}

// One configured network, running or not: its settings as configured.
static json_t *configured_json(const struct network_config *config) {
    char buf[INET6_ADDRSTRLEN];
    json_t *entry =
        json_pack("{s:s, s:s, s:b, s:b, s:b, s:b, s:i, s:i}", "name",
                  config->name, "mode", network_mode_name(config->mode),
                  "persistent", config->persistent, "dhcp", config->dhcp,
                  "ipv6", config->ipv6, "restricted", config->restricted,
                  "port_forwards", (int)config->n_port_forwards,
                  "dhcp_reservations", (int)config->n_reservations);
    if (entry == NULL)
        return NULL;
    if (config->description[0] != '\0')
        json_object_set_new(entry, "description",
                            json_string(config->description));
    if (config->has_subnet) {
        json_object_set_new(
            entry, "subnet",
            json_string(ipv4_format(config->subnet & config->mask, buf)));
        json_object_set_new(entry, "prefix_length",
                            json_integer(ipv4_mask_len(config->mask)));
    }
    if (config->mtu != 0)
        json_object_set_new(entry, "mtu", json_integer(config->mtu));
    if (config->has_ipv6_prefix &&
        inet_ntop(AF_INET6, config->ipv6_prefix, buf, sizeof(buf)) != NULL)
        json_object_set_new(entry, "ipv6_prefix", json_string(buf));
    return entry;
}

// Networks being removed are left out: their bridge is already gone, and a
// request for the name creates a new instance. Built once per change of
// broker_generation() (the dispatcher shares it): nothing here probes a
// device, and configuration files are read only through the config
// source's cache, once per change.
char *message_encode_configured(const struct broker *broker, size_t *len) {
    json_t *configured = json_array();
    struct network_config *configs = NULL;
    size_t n_configs = 0;

    // Without memory for the list the status still answers, listing none.
    if (configured != NULL &&
        broker_list_configs(broker, &configs, &n_configs) == BROKER_OK) {
        for (size_t i = 0; i < n_configs; i++)
            json_array_append_new(configured, configured_json(&configs[i]));
    }
    free(configs);
    return dump(configured, len);
}

char *message_encode_status(const struct broker *broker, uint64_t now,
                            size_t *len) {
    size_t configured_len = 0;
    char *configured = message_encode_configured(broker, &configured_len);
    char *text = message_encode_status_with(
        broker, now, configured != NULL ? configured : "[]",
        configured != NULL ? configured_len : 2, len);

    free(configured);
    return text;
}

char *message_encode_status_with(const struct broker *broker, uint64_t now,
                                 const char *configured, size_t configured_len,
                                 size_t *len) {
    static const char key[] = ",\"configured\":";
    size_t head_len = 0;
    char *head, *text;

    json_t *networks = json_array();
    json_t *peers = json_array();

    for (const struct network *n = broker_network_first(broker); n;
         n = broker_network_next(n)) {
        const struct network_config *config = network_get_config(n);
        const struct network_info *info = network_get_info(n);
        enum network_state state = network_get_state(n);
        uint64_t deadline = network_get_idle_deadline(n);
        char buf[16];
        json_t *idle = json_null();
        if (state == NETWORK_REMOVING)
            continue;
        if (deadline != NO_DEADLINE)
            idle = json_real(deadline > now ? (double)(deadline - now) / 1e6
                                            : 0.0);
        json_t *entry = json_pack(
            "{s:s, s:s, s:s, s:s, s:i, s:i, s:o, s:b, s:s, s:s}", "name",
            config->name, "mode", network_mode_name(config->mode), "bridge",
            info->bridge, "subnet", ipv4_format(info->subnet, buf),
            "prefix_length", (int)ipv4_mask_len(info->mask), "peers",
            (int)network_get_peers(n), "idle_remaining", idle, "persistent",
            config->persistent, "uuid", info->uuid, "state",
            state == NETWORK_READY ? "ready" : "creating");
        if (entry != NULL)
            add_status_details(entry, broker, n);
        json_array_append_new(networks, entry);
    }
    for (const struct peer *p = broker_peer_first(broker); p;
         p = broker_peer_next(p)) {
        const struct peer_cred *cred = peer_get_cred(p);
        json_t *held = json_array();
        for (size_t i = 0; i < peer_get_network_count(p); i++)
            json_array_append_new(
                held, json_string(network_get_name(peer_get_network(p, i))));
        json_array_append_new(
            peers, json_pack("{s:i, s:I, s:I, s:o}", "pid", (int)cred->pid,
                             "uid", (json_int_t)cred->uid, "gid",
                             (json_int_t)cred->gid, "networks", held));
    }
    // The configured array goes in as text, last: the head ends "}}".
    head = dump(json_pack("{s:{s:s, s:o, s:o, s:I}}", "status", "version",
                          VMNET_BROKER_VERSION, "networks", networks, "peers",
                          peers, "creations",
                          (json_int_t)broker_creations(broker)),
                &head_len);
    if (head == NULL || head_len < 2) {
        free(head);
        return NULL;
    }
    head_len -= 2;
    text = malloc(head_len + sizeof(key) - 1 + configured_len + 3);
    if (text != NULL) {
        memcpy(text, head, head_len);
        memcpy(text + head_len, key, sizeof(key) - 1);
        memcpy(text + head_len + sizeof(key) - 1, configured, configured_len);
        memcpy(text + head_len + sizeof(key) - 1 + configured_len, "}}", 3);
        *len = head_len + sizeof(key) - 1 + configured_len + 2;
    }
    free(head);
    return text;
}

// Enough for every network a broker commonly serves at once; beyond that
// the entry filled longest ago is encoded again when next needed.
#define MESSAGE_CACHE_ENTRIES 16

struct cached_reply {
    const struct network *network; // NULL while the entry is empty
    char uuid[NETWORK_UUID_LEN + 1];
    char *text;
    size_t len;
};

struct message_cache {
    struct cached_reply entries[MESSAGE_CACHE_ENTRIES];
    size_t next; // the entry filled next
};

struct message_cache *message_cache_new(void) {
    return calloc(1, sizeof(struct message_cache));
}

void message_cache_free(struct message_cache *cache) {
    if (cache == NULL)
        return;
    for (size_t i = 0; i < MESSAGE_CACHE_ENTRIES; i++)
        free(cache->entries[i].text);
    free(cache);
}

const char *message_cache_network(struct message_cache *cache,
                                  const struct network *network, size_t *len) {
    struct cached_reply *entry;
    size_t text_len;
    char *text;

    for (size_t i = 0; i < MESSAGE_CACHE_ENTRIES; i++) {
        entry = &cache->entries[i];
        if (entry->network == network &&
            strcmp(entry->uuid, network_get_info(network)->uuid) == 0) {
            *len = entry->len;
            return entry->text;
        }
    }
    text = message_encode_network(network, &text_len);
    if (text == NULL)
        return NULL;
    entry = &cache->entries[cache->next];
    cache->next = (cache->next + 1) % MESSAGE_CACHE_ENTRIES;
    free(entry->text);
    entry->network = network;
    memcpy(entry->uuid, network_get_info(network)->uuid, sizeof(entry->uuid));
    entry->text = text;
    entry->len = text_len;
    *len = text_len;
    return text;
}
