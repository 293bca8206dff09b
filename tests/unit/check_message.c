// SPDX-License-Identifier: Apache-2.0
// The wire format: every request decoded or refused, every reply's shape.
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
// The samples below are networks built by hand, without a broker.
#include "core/registry_private.h"
#include "fake_backend.h"
#include "protocol/message.h"

// A literal with its exact length, so cases may hold NUL bytes.
#define TEXT(s)                                                                \
    { s, sizeof(s) - 1 }

#define NAME_64                                                                \
    "a123456789012345678901234567890123456789012345678901234567890123"
#define NAME_65 NAME_64 "4"

struct text {
    const char *data;
    size_t len;
};

static void fill_sentinel(struct request *request) {
    memset(request, 0x5a, sizeof(*request));
}

static void assert_sentinel(const struct request *request) {
    struct request sentinel;
    fill_sentinel(&sentinel);
    ck_assert_msg(memcmp(request, &sentinel, sizeof(sentinel)) == 0,
                  "out was written on failure");
}

static const struct {
    struct text text;
    enum request_command command;
    const char *network_name;
} good_requests[] = {
    {TEXT("{\"command\":\"acquire\",\"network_name\":\"shared\"}"),
     REQUEST_ACQUIRE, "shared"},
    {TEXT("{\"command\":\"release\",\"network_name\":\"host\"}"),
     REQUEST_RELEASE, "host"},
    {TEXT("{\"command\":\"status\"}"), REQUEST_STATUS, ""},
    {TEXT("{\"command\":\"open_interface\",\"network_name\":\"net1\"}"),
     REQUEST_OPEN_INTERFACE, "net1"},
    // Key order and whitespace do not matter.
    {TEXT(" \n{ \"network_name\" : \"shared\",\n\t\"command\" : \"acquire\" "
          "}\n"),
     REQUEST_ACQUIRE, "shared"},
    // Unknown keys are ignored, whatever their type.
    {TEXT("{\"command\":\"acquire\",\"network_name\":\"shared\",\"x\":1,"
          "\"options\":{\"a\":[1,2]},\"extra\":null}"),
     REQUEST_ACQUIRE, "shared"},
    // A network name is extra for status, and not returned.
    {TEXT("{\"command\":\"status\",\"network_name\":\"shared\"}"),
     REQUEST_STATUS, ""},
    {TEXT("{\"command\":\"acquire\",\"network_name\":\"" NAME_64 "\"}"),
     REQUEST_ACQUIRE, NAME_64},
    {TEXT("{\"command\":\"acquire\",\"network_name\":\"Az09_.-z\"}"),
     REQUEST_ACQUIRE, "Az09_.-z"},
    {TEXT("{\"command\":\"acquire\",\"network_name\":\"9lives\"}"),
     REQUEST_ACQUIRE, "9lives"},
    // JSON escapes are decoded before the name is checked.
    {TEXT("{\"command\":\"acquire\",\"network_name\":\"\\u0073hared\"}"),
     REQUEST_ACQUIRE, "shared"},
};

START_TEST(test_decode_good) {
    struct request out;
    const char *reason = NULL;

    fill_sentinel(&out);
    ck_assert_int_eq(message_decode_request(good_requests[_i].text.data,
                                            good_requests[_i].text.len, &out,
                                            &reason),
                     BROKER_OK);
    ck_assert_int_eq(out.command, good_requests[_i].command);
    ck_assert_str_eq(out.network_name, good_requests[_i].network_name);
}
END_TEST

static const struct text bad_requests[] = {
    // Not JSON, or not a JSON object.
    TEXT("hello"),
    TEXT(""),
    TEXT("{"),
    TEXT("{\"command\":\"status\""),
    TEXT("[\"acquire\",\"shared\"]"),
    TEXT("[]"),
    TEXT("\"acquire\""),
    TEXT("42"),
    TEXT("null"),
    TEXT("true"),
    // command missing or not a string.
    TEXT("{}"),
    TEXT("{\"network_name\":\"shared\"}"),
    TEXT("{\"command\":1,\"network_name\":\"shared\"}"),
    TEXT("{\"command\":null,\"network_name\":\"shared\"}"),
    TEXT("{\"command\":true,\"network_name\":\"shared\"}"),
    TEXT("{\"command\":{},\"network_name\":\"shared\"}"),
    TEXT("{\"command\":[\"acquire\"],\"network_name\":\"shared\"}"),
    // Unknown commands: no case folding, no prefixes.
    TEXT("{\"command\":\"destroy\",\"network_name\":\"shared\"}"),
    TEXT("{\"command\":\"ACQUIRE\",\"network_name\":\"shared\"}"),
    TEXT("{\"command\":\"acquir\",\"network_name\":\"shared\"}"),
    TEXT("{\"command\":\"acquire \",\"network_name\":\"shared\"}"),
    TEXT("{\"command\":\"\"}"),
    TEXT("{\"command\":\"status\\u0000\"}"),
    // network_name missing or not a string where it is needed.
    TEXT("{\"command\":\"acquire\"}"),
    TEXT("{\"command\":\"release\"}"),
    TEXT("{\"command\":\"open_interface\"}"),
    TEXT("{\"command\":\"acquire\",\"network\":\"shared\"}"),
    TEXT("{\"command\":\"acquire\",\"network_name\":7}"),
    TEXT("{\"command\":\"acquire\",\"network_name\":null}"),
    TEXT("{\"command\":\"acquire\",\"network_name\":{\"name\":\"shared\"}}"),
    TEXT("{\"command\":\"acquire\",\"network_name\":[\"shared\"]}"),
    TEXT("{\"command\":\"release\",\"network_name\":false}"),
    // Invalid names.
    TEXT("{\"command\":\"acquire\",\"network_name\":\"\"}"),
    TEXT("{\"command\":\"acquire\",\"network_name\":\"" NAME_65 "\"}"),
    TEXT("{\"command\":\"acquire\",\"network_name\":\"../x\"}"),
    TEXT("{\"command\":\"acquire\",\"network_name\":\"a/b\"}"),
    TEXT("{\"command\":\"acquire\",\"network_name\":\"a b\"}"),
    TEXT("{\"command\":\"acquire\",\"network_name\":\"-lead\"}"),
    TEXT("{\"command\":\"acquire\",\"network_name\":\".hidden\"}"),
    TEXT("{\"command\":\"acquire\",\"network_name\":\"_x\"}"),
    TEXT("{\"command\":\"release\",\"network_name\":\"a\\u0000b\"}"),
    TEXT("{\"command\":\"acquire\",\"network_name\":\"shared\\n\"}"),
    TEXT("{\"command\":\"acquire\",\"network_name\":\"caf\\u00e9\"}"),
    // Raw bytes JSON forbids: a NUL, a control character, bad UTF-8.
    TEXT("{\"command\":\"acquire\",\"network_name\":\"sh\0red\"}"),
    TEXT("{\"command\":\"acquire\",\"network_name\":\"sh\tred\"}"),
    TEXT("{\"command\":\"acquire\",\"network_name\":\"sh\xffred\"}"),
    // Duplicate keys are ambiguous.
    TEXT("{\"command\":\"acquire\",\"command\":\"status\","
         "\"network_name\":\"shared\"}"),
    TEXT("{\"command\":\"status\",\"command\":\"status\"}"),
    TEXT("{\"command\":\"acquire\",\"network_name\":\"shared\","
         "\"network_name\":\"host\"}"),
    // Anything after the object, including a C string terminator.
    TEXT("{\"command\":\"status\"}x"),
    TEXT("{\"command\":\"status\"}{}"),
    TEXT("{\"command\":\"status\"}{\"command\":\"status\"}"),
    TEXT("{\"command\":\"status\"}\0"),
};

START_TEST(test_decode_bad) {
    struct request out;
    const char *reason = NULL;

    fill_sentinel(&out);
    ck_assert_int_eq(message_decode_request(bad_requests[_i].data,
                                            bad_requests[_i].len, &out,
                                            &reason),
                     BROKER_ERR_INVALID_REQUEST);
    assert_sentinel(&out);
    ck_assert_ptr_nonnull(reason);
    ck_assert_str_ne(reason, "");
}
END_TEST

START_TEST(test_decode_bad_without_reason) {
    struct request out;

    fill_sentinel(&out);
    ck_assert_int_eq(message_decode_request(bad_requests[_i].data,
                                            bad_requests[_i].len, &out, NULL),
                     BROKER_ERR_INVALID_REQUEST);
    assert_sentinel(&out);
}
END_TEST

START_TEST(test_decode_uses_only_len_bytes) {
    // A datagram is not NUL-terminated: bytes past len must not count.
    const char data[] = "{\"command\":\"status\"}garbage";
    struct request out;

    ck_assert_int_eq(message_decode_request(data, 20, &out, NULL), BROKER_OK);
    ck_assert_int_eq(out.command, REQUEST_STATUS);
    fill_sentinel(&out);
    ck_assert_int_eq(message_decode_request(data, 19, &out, NULL),
                     BROKER_ERR_INVALID_REQUEST);
    assert_sentinel(&out);
}
END_TEST

// Valid JSON of exactly len bytes: an acquire padded by an unknown key.
static char *padded_request(size_t len) {
    static const char head[] =
        "{\"command\":\"acquire\",\"network_name\":\"shared\",\"pad\":\"";
    static const char tail[] = "\"}";
    size_t fixed = sizeof(head) - 1 + sizeof(tail) - 1;
    char *data = malloc(len + 1);

    ck_assert_ptr_nonnull(data);
    ck_assert_uint_ge(len, fixed);
    memcpy(data, head, sizeof(head) - 1);
    memset(data + sizeof(head) - 1, 'x', len - fixed);
    memcpy(data + len - (sizeof(tail) - 1), tail, sizeof(tail));
    ck_assert_uint_eq(strlen(data), len);
    return data;
}

START_TEST(test_decode_longest_request) {
    char *data = padded_request(MESSAGE_REQUEST_MAX);
    struct request out;

    ck_assert_int_eq(
        message_decode_request(data, MESSAGE_REQUEST_MAX, &out, NULL),
        BROKER_OK);
    ck_assert_int_eq(out.command, REQUEST_ACQUIRE);
    ck_assert_str_eq(out.network_name, "shared");
    free(data);
}
END_TEST

START_TEST(test_decode_over_long_request) {
    char *data = padded_request(MESSAGE_REQUEST_MAX + 1);
    struct request out;
    const char *reason = NULL;

    fill_sentinel(&out);
    ck_assert_int_eq(
        message_decode_request(data, MESSAGE_REQUEST_MAX + 1, &out, &reason),
        BROKER_ERR_INVALID_REQUEST);
    assert_sentinel(&out);
    ck_assert_ptr_nonnull(reason);
    free(data);
}
END_TEST

START_TEST(test_encode_error) {
    static const int codes[] = {
        BROKER_ERR_NOT_ALLOWED, BROKER_ERR_INVALID_REQUEST,
        BROKER_ERR_NOT_FOUND,   BROKER_ERR_CREATE_FAILURE,
        BROKER_ERR_INTERNAL,
    };
    static const char *const texts[] = {
        "{\"error\":3}", "{\"error\":4}", "{\"error\":5}",
        "{\"error\":6}", "{\"error\":7}",
    };

    for (size_t i = 0; i < sizeof(codes) / sizeof(*codes); i++) {
        size_t len = 0;
        char *text = message_encode_error(codes[i], &len);
        ck_assert_ptr_nonnull(text);
        ck_assert_str_eq(text, texts[i]);
        ck_assert_uint_eq(len, strlen(text));
        free(text);
    }
}
END_TEST

// The reason travels as "message", escaped as JSON; none: the bare error.
START_TEST(test_encode_error_message) {
    size_t len = 0;
    char *text = message_encode_error_message(
        6, "subnet \"x\" overlaps\n\x1b[31m", &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, "{\"error\":6,\"message\":\"subnet \\\"x\\\" "
                           "overlaps\\n\\u001B[31m\"}");
    ck_assert_uint_eq(len, strlen(text));
    free(text);
    text = message_encode_error_message(5, NULL, &len);
    ck_assert_str_eq(text, "{\"error\":5}");
    free(text);
    text = message_encode_error_message(5, "", &len);
    ck_assert_str_eq(text, "{\"error\":5}");
    free(text);
}
END_TEST

// Parses an encoder's output, checking the length it reported. The length
// goes by address because the encoder call that stores it is itself an
// argument, and C leaves the order of argument evaluation unspecified.
static json_t *parse_reply(char *text, const size_t *reported) {
    size_t len = *reported;
    json_error_t error;
    json_t *root = NULL;

    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(len, strlen(text));
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &error);
    ck_assert_msg(root != NULL, "reply is not JSON: %s (%s)", error.text, text);
    ck_assert(json_is_object(root));
    free(text);
    return root;
}

static void assert_string_member(const json_t *object, const char *key,
                                 const char *expected) {
    json_t *value = json_object_get(object, key);
    ck_assert_msg(json_is_string(value), "'%s' missing or not a string", key);
    ck_assert_str_eq(json_string_value(value), expected);
}

static void assert_integer_member(const json_t *object, const char *key,
                                  json_int_t expected) {
    json_t *value = json_object_get(object, key);
    ck_assert_msg(json_is_integer(value), "'%s' missing or not an integer",
                  key);
    ck_assert_int_eq(json_integer_value(value), expected);
}

static void sample_network(struct network *network, const char *name,
                           enum network_mode mode) {
    memset(network, 0, sizeof(*network));
    network_config_init(&network->config, name, mode);
    strcpy(network->info.uuid, "0b6e3c8e-7d0e-4a55-9a57-2f8cb0f5c1de");
    snprintf(network->info.bridge, sizeof(network->info.bridge), "vmb-%s",
             name);
    network->info.subnet = 0xc0a84000u;
    network->info.mask = 0xffffff00u;
    network->info.gateway = 0xc0a84001u;
    network->info.mtu = 1500;
    network->idle_deadline = NO_DEADLINE;
}

START_TEST(test_encode_network) {
    struct network network;
    size_t len = 0;
    json_t *root = NULL;
    json_t *object = NULL;

    sample_network(&network, "shared", NETWORK_MODE_SHARED);
    root = parse_reply(message_encode_network(&network, &len), &len);

    ck_assert_uint_eq(json_object_size(root), 1);
    ck_assert_ptr_null(json_object_get(root, "error"));
    object = json_object_get(root, "network");
    ck_assert(json_is_object(object));
    ck_assert_ptr_null(json_object_get(object, "error"));
    assert_string_member(object, "name", "shared");
    assert_string_member(object, "mode", "shared");
    assert_string_member(object, "uuid",
                         "0b6e3c8e-7d0e-4a55-9a57-2f8cb0f5c1de");
    assert_string_member(object, "bridge", "vmb-shared");
    assert_string_member(object, "subnet", "192.168.64.0");
    assert_string_member(object, "mask", "255.255.255.0");
    assert_string_member(object, "gateway", "192.168.64.1");
    assert_integer_member(object, "mtu", 1500);
    assert_integer_member(object, "prefix_length", 24);
    // Only present when the configuration has one.
    ck_assert_ptr_null(json_object_get(object, "description"));
    json_decref(root);
}
END_TEST

START_TEST(test_encode_network_host_with_description) {
    struct network network;
    size_t len = 0;
    json_t *root = NULL;
    json_t *object = NULL;

    sample_network(&network, "lab", NETWORK_MODE_HOST);
    strcpy(network.config.description, "Lab \"isolated\" network");
    network.info.subnet = 0x0a2a0000u;
    network.info.mask = 0xffff0000u;
    network.info.gateway = 0x0a2a0001u;
    network.info.mtu = 9000;
    root = parse_reply(message_encode_network(&network, &len), &len);

    object = json_object_get(root, "network");
    ck_assert(json_is_object(object));
    assert_string_member(object, "name", "lab");
    assert_string_member(object, "mode", "host");
    assert_string_member(object, "subnet", "10.42.0.0");
    assert_string_member(object, "mask", "255.255.0.0");
    assert_string_member(object, "gateway", "10.42.0.1");
    assert_integer_member(object, "mtu", 9000);
    assert_integer_member(object, "prefix_length", 16);
    assert_string_member(object, "description", "Lab \"isolated\" network");
    json_decref(root);
}
END_TEST

START_TEST(test_encode_released) {
    size_t len = 0;
    char *text = message_encode_released("shared", &len);

    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, "{\"released\":\"shared\"}");
    ck_assert_uint_eq(len, strlen(text));
    free(text);
}
END_TEST

static struct fake_backend backend;
static struct fake_configs configs;
static struct broker *broker;

static void broker_setup(void) {
    memset(&backend, 0, sizeof(backend));
    memset(&configs, 0, sizeof(configs));
    broker = fake_broker_new(&backend, &configs);
    ck_assert_ptr_nonnull(broker);
}

static void broker_teardown(void) {
    broker_free(broker);
    broker = NULL;
}

static struct peer *connect_peer(int32_t pid, uint32_t uid, uint32_t gid) {
    struct peer_cred cred = fake_cred(pid, uid, gid);
    struct peer *peer = broker_peer_connect(broker, &cred, NULL);
    ck_assert_ptr_nonnull(peer);
    return peer;
}

static const struct network *acquire(struct peer *peer, const char *name) {
    const struct network *network = NULL;
    ck_assert_int_eq(broker_acquire(broker, peer, name, 0, &network),
                     BROKER_OK);
    return network;
}

static json_t *status_of(uint64_t now) {
    size_t len = 0;
    json_t *root = parse_reply(message_encode_status(broker, now, &len), &len);
    json_t *status = json_object_get(root, "status");

    ck_assert_uint_eq(json_object_size(root), 1);
    ck_assert(json_is_object(status));
    ck_assert(json_is_array(json_object_get(status, "networks")));
    ck_assert(json_is_array(json_object_get(status, "peers")));
    json_incref(status);
    json_decref(root);
    return status;
}

static json_t *find_by(json_t *array, const char *key, json_t *value) {
    size_t i;
    json_t *item;

    json_array_foreach(array, i, item) {
        if (json_equal(json_object_get(item, key), value))
            return item;
    }
    ck_abort_msg("no entry with that '%s'", key);
    return NULL;
}

static json_t *network_entry(json_t *status, const char *name) {
    json_t *key = json_string(name);
    json_t *entry = find_by(json_object_get(status, "networks"), "name", key);
    json_decref(key);
    return entry;
}

static json_t *peer_entry(json_t *status, json_int_t pid) {
    json_t *key = json_integer(pid);
    json_t *entry = find_by(json_object_get(status, "peers"), "pid", key);
    json_decref(key);
    return entry;
}

static void assert_held(json_t *peer, const char *const *names, size_t n) {
    json_t *held = json_object_get(peer, "networks");

    ck_assert(json_is_array(held));
    ck_assert_uint_eq(json_array_size(held), n);
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        size_t j;
        json_t *item;
        json_array_foreach(held, j, item) {
            found = found || (json_is_string(item) &&
                              strcmp(json_string_value(item), names[i]) == 0);
        }
        ck_assert_msg(found, "peer does not list '%s'", names[i]);
    }
}

START_TEST(test_encode_status_empty) {
    json_t *status = status_of(0);

    ck_assert_uint_eq(json_array_size(json_object_get(status, "networks")), 0);
    ck_assert_uint_eq(json_array_size(json_object_get(status, "peers")), 0);
    json_decref(status);
}
END_TEST

START_TEST(test_encode_status_lists_networks_and_peers) {
    struct peer *a = connect_peer(100, 0, 0);
    struct peer *b = connect_peer(200, FAKE_USER_UID, FAKE_USER_GID);
    const struct network *shared = acquire(a, "shared");
    const struct network *host = acquire(a, "host");
    const char *const a_holds[] = {"shared"};
    const char *const b_holds[] = {"shared", "net1"};
    json_t *status = NULL;
    json_t *entry = NULL;
    json_t *idle = NULL;

    acquire(b, "shared");
    acquire(b, "net1");
    ck_assert_int_eq(broker_release(broker, a, "host", 1000000), BROKER_OK);
    status = status_of(21000000);

    ck_assert_uint_eq(json_array_size(json_object_get(status, "networks")), 3);
    entry = network_entry(status, "shared");
    assert_string_member(entry, "mode", "shared");
    assert_string_member(entry, "bridge", shared->info.bridge);
    assert_string_member(entry, "uuid", shared->info.uuid);
    assert_string_member(entry, "subnet", "192.168.65.0");
    assert_integer_member(entry, "prefix_length", 24);
    assert_integer_member(entry, "peers", 2);
    ck_assert(json_is_null(json_object_get(entry, "idle_remaining")));
    ck_assert(json_is_false(json_object_get(entry, "persistent")));

    entry = network_entry(status, "host");
    assert_string_member(entry, "mode", "host");
    assert_string_member(entry, "uuid", host->info.uuid);
    assert_integer_member(entry, "peers", 0);
    // Released at 1 s with a 120 s delay, asked at 21 s.
    idle = json_object_get(entry, "idle_remaining");
    ck_assert(json_is_number(idle));
    ck_assert_double_eq_tol(json_number_value(idle), 100.0, 1e-6);

    ck_assert_uint_eq(json_array_size(json_object_get(status, "peers")), 2);
    entry = peer_entry(status, 100);
    assert_integer_member(entry, "uid", 0);
    assert_integer_member(entry, "gid", 0);
    assert_held(entry, a_holds, 1);
    entry = peer_entry(status, 200);
    assert_integer_member(entry, "uid", FAKE_USER_UID);
    assert_integer_member(entry, "gid", FAKE_USER_GID);
    assert_held(entry, b_holds, 2);
    json_decref(status);
}
END_TEST

START_TEST(test_encode_status_idle_past_deadline_is_zero) {
    struct peer *a = connect_peer(100, 0, 0);
    json_t *status = NULL;
    json_t *idle = NULL;

    acquire(a, "shared");
    broker_peer_disconnect(broker, a, 0);
    // Not yet expired by the event loop: still listed, nothing remaining.
    status = status_of(FAKE_IDLE_USEC + 5);
    idle = json_object_get(network_entry(status, "shared"), "idle_remaining");
    ck_assert(json_is_number(idle));
    ck_assert_double_eq(json_number_value(idle), 0.0);
    ck_assert_uint_eq(json_array_size(json_object_get(status, "peers")), 0);
    json_decref(status);
}
END_TEST

START_TEST(test_encode_status_persistent) {
    json_t *status = NULL;
    json_t *entry = NULL;

    ck_assert_int_eq(broker_create_persistent(broker, "net2"), BROKER_OK);
    status = status_of(5 * FAKE_IDLE_USEC);
    entry = network_entry(status, "net2");
    assert_integer_member(entry, "peers", 0);
    ck_assert(json_is_null(json_object_get(entry, "idle_remaining")));
    ck_assert(json_is_true(json_object_get(entry, "persistent")));
    json_decref(status);
}
END_TEST

// The cached reply is the encoder's, byte for byte, and kept: asking again
// encodes nothing new.
START_TEST(test_cache_returns_the_encoded_reply) {
    struct message_cache *cache = message_cache_new();
    struct network network;
    size_t len = 0, cached_len = 0, again_len = 0;
    char *encoded = NULL;
    const char *cached = NULL;

    ck_assert_ptr_nonnull(cache);
    sample_network(&network, "shared", NETWORK_MODE_SHARED);
    encoded = message_encode_network(&network, &len);
    ck_assert_ptr_nonnull(encoded);
    cached = message_cache_network(cache, &network, &cached_len);
    ck_assert_ptr_nonnull(cached);
    ck_assert_uint_eq(cached_len, len);
    ck_assert_mem_eq(cached, encoded, len);
    ck_assert_ptr_eq(message_cache_network(cache, &network, &again_len),
                     cached);
    ck_assert_uint_eq(again_len, len);
    free(encoded);
    message_cache_free(cache);
}
END_TEST

// A new network at the same address is a new instance (a new uuid): it is
// never answered with the old one's reply.
START_TEST(test_cache_new_instance_at_same_address) {
    struct message_cache *cache = message_cache_new();
    struct network network;
    size_t len = 0;
    const char *cached = NULL;
    json_t *root = NULL;

    ck_assert_ptr_nonnull(cache);
    sample_network(&network, "shared", NETWORK_MODE_SHARED);
    ck_assert_ptr_nonnull(message_cache_network(cache, &network, &len));
    sample_network(&network, "lab", NETWORK_MODE_HOST);
    strcpy(network.info.uuid, "11111111-2222-4333-8444-555555555555");
    cached = message_cache_network(cache, &network, &len);
    ck_assert_ptr_nonnull(cached);
    root = parse_reply(strndup(cached, len), &len);
    assert_string_member(json_object_get(root, "network"), "name", "lab");
    assert_string_member(json_object_get(root, "network"), "uuid",
                         "11111111-2222-4333-8444-555555555555");
    json_decref(root);
    message_cache_free(cache);
}
END_TEST

// More networks than the cache holds: each still gets its own reply.
START_TEST(test_cache_more_networks_than_entries) {
    struct message_cache *cache = message_cache_new();
    struct network networks[40];
    size_t len = 0;

    ck_assert_ptr_nonnull(cache);
    for (size_t i = 0; i < 40; i++) {
        char name[16];
        snprintf(name, sizeof(name), "net%zu", i);
        sample_network(&networks[i], name, NETWORK_MODE_HOST);
        networks[i].info.uuid[0] = (char)('a' + i % 6);
    }
    for (size_t round = 0; round < 2; round++) {
        for (size_t i = 0; i < 40; i++) {
            char name[16];
            const char *cached =
                message_cache_network(cache, &networks[i], &len);
            json_t *root = NULL;
            ck_assert_ptr_nonnull(cached);
            snprintf(name, sizeof(name), "net%zu", i);
            root = parse_reply(strndup(cached, len), &len);
            assert_string_member(json_object_get(root, "network"), "name",
                                 name);
            json_decref(root);
        }
    }
    message_cache_free(cache);
}
END_TEST

START_TEST(test_cache_free_accepts_null) { message_cache_free(NULL); }
END_TEST

static Suite *message_suite(void) {
    Suite *s = suite_create("message");
    TCase *decode = tcase_create("decode");
    TCase *encode = tcase_create("encode");
    TCase *status = tcase_create("status");

    tcase_add_loop_test(decode, test_decode_good, 0,
                        sizeof(good_requests) / sizeof(*good_requests));
    tcase_add_loop_test(decode, test_decode_bad, 0,
                        sizeof(bad_requests) / sizeof(*bad_requests));
    tcase_add_loop_test(decode, test_decode_bad_without_reason, 0,
                        sizeof(bad_requests) / sizeof(*bad_requests));
    tcase_add_test(decode, test_decode_uses_only_len_bytes);
    tcase_add_test(decode, test_decode_longest_request);
    tcase_add_test(decode, test_decode_over_long_request);
    suite_add_tcase(s, decode);

    tcase_add_test(encode, test_encode_error);
    tcase_add_test(encode, test_encode_error_message);
    tcase_add_test(encode, test_encode_network);
    tcase_add_test(encode, test_encode_network_host_with_description);
    tcase_add_test(encode, test_encode_released);
    tcase_add_test(encode, test_cache_returns_the_encoded_reply);
    tcase_add_test(encode, test_cache_new_instance_at_same_address);
    tcase_add_test(encode, test_cache_more_networks_than_entries);
    tcase_add_test(encode, test_cache_free_accepts_null);
    suite_add_tcase(s, encode);

    tcase_add_checked_fixture(status, broker_setup, broker_teardown);
    tcase_add_test(status, test_encode_status_empty);
    tcase_add_test(status, test_encode_status_lists_networks_and_peers);
    tcase_add_test(status, test_encode_status_idle_past_deadline_is_zero);
    tcase_add_test(status, test_encode_status_persistent);
    suite_add_tcase(s, status);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(message_suite());
    int failed;

    // The core logs every acquire and release; only errors help here.
    log_set_level(LOG_LEVEL_ERROR);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
