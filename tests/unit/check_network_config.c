// SPDX-License-Identifier: Apache-2.0
// Network names, built-in networks, configuration defaults and netmasks.
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/network_config.h"

#define NAME_64                                                                \
    "a123456789012345678901234567890123456789012345678901234567890123"

static const char *const valid_names[] = {
    "a",      "Z",      "0",      "shared", "host",      "net1",
    "9lives", "my-net", "my_net", "my.net", "a-b_c.d-e", "A1.b2_C3",
    "trail-", "trail.", "trail_", "a..b",   NAME_64,
};

START_TEST(test_valid_names) {
    ck_assert_msg(network_name_valid(valid_names[_i]), "'%s' refused",
                  valid_names[_i]);
}
END_TEST

static const char *const invalid_names[] = {
    "",     NAME_64 "4", "-lead",       "_lead", ".lead", "..",
    "../x", "a/b",       "/etc",        "a b",   " a",    "a ",
    "a\tb", "a\n",       "caf\xc3\xa9", "a:b",   "a@b",   "a*",
    "a\\b", "$x",        "a%b",         "\xff",
};

START_TEST(test_invalid_names) {
    ck_assert_msg(!network_name_valid(invalid_names[_i]), "'%s' accepted",
                  invalid_names[_i]);
}
END_TEST

START_TEST(test_null_name_invalid) { ck_assert(!network_name_valid(NULL)); }
END_TEST

START_TEST(test_name_length_limit) {
    char name[NETWORK_NAME_MAX + 2];

    memset(name, 'n', sizeof(name) - 1);
    name[NETWORK_NAME_MAX] = '\0';
    ck_assert(network_name_valid(name));
    name[NETWORK_NAME_MAX] = 'n';
    name[NETWORK_NAME_MAX + 1] = '\0';
    ck_assert(!network_name_valid(name));
}
END_TEST

static void assert_defaults(const struct network_config *config,
                            const char *name, enum network_mode mode) {
    ck_assert_str_eq(config->name, name);
    ck_assert_int_eq(config->mode, mode);
    ck_assert_str_eq(config->description, "");
    // No static subnet: one is chosen when the network is created.
    ck_assert(!config->has_subnet);
    ck_assert_uint_eq(config->mask, 0xffffff00u);
    ck_assert_uint_eq(config->mtu, 0);
    ck_assert(config->dhcp);
    ck_assert(!config->has_dhcp_range);
    ck_assert(config->ipv6);
    ck_assert(!config->has_ipv6_prefix);
    ck_assert_uint_eq(config->ipv6_prefix_len, 64);
    ck_assert(!config->persistent);
    ck_assert_uint_eq(config->n_reservations, 0);
    ck_assert_uint_eq(config->n_port_forwards, 0);
    ck_assert_uint_eq(config->n_allowed_users, 0);
    ck_assert_uint_eq(config->n_allowed_groups, 0);
}

START_TEST(test_init_defaults) {
    struct network_config config;

    // Garbage first: init must not rely on a zeroed struct.
    memset(&config, 0xa5, sizeof(config));
    network_config_init(&config, "lab", NETWORK_MODE_HOST);
    assert_defaults(&config, "lab", NETWORK_MODE_HOST);
}
END_TEST

START_TEST(test_init_longest_name) {
    struct network_config config;

    memset(&config, 0xa5, sizeof(config));
    network_config_init(&config, NAME_64, NETWORK_MODE_SHARED);
    ck_assert_str_eq(config.name, NAME_64);
}
END_TEST

START_TEST(test_builtin_shared) {
    struct network_config config;

    memset(&config, 0xa5, sizeof(config));
    ck_assert(network_config_builtin("shared", &config));
    assert_defaults(&config, "shared", NETWORK_MODE_SHARED);
}
END_TEST

START_TEST(test_builtin_host) {
    struct network_config config;

    memset(&config, 0xa5, sizeof(config));
    ck_assert(network_config_builtin("host", &config));
    assert_defaults(&config, "host", NETWORK_MODE_HOST);
}
END_TEST

static const char *const not_builtin[] = {
    "other", "Shared", "HOST", "shared ", "share", "hostx", "", "net1",
};

START_TEST(test_not_builtin) {
    struct network_config config;
    struct network_config untouched;

    memset(&config, 0xa5, sizeof(config));
    memset(&untouched, 0xa5, sizeof(untouched));
    ck_assert_msg(!network_config_builtin(not_builtin[_i], &config),
                  "'%s' is not a built-in", not_builtin[_i]);
    ck_assert_msg(memcmp(&config, &untouched, sizeof(config)) == 0,
                  "out written for '%s'", not_builtin[_i]);
}
END_TEST

START_TEST(test_mode_names) {
    ck_assert_str_eq(network_mode_name(NETWORK_MODE_SHARED), "shared");
    ck_assert_str_eq(network_mode_name(NETWORK_MODE_HOST), "host");
}
END_TEST

static uint32_t mask_of(unsigned len) {
    return len == 0 ? 0 : ~0u << (32 - len);
}

START_TEST(test_mask_valid_lengths) {
    for (unsigned len = 1; len <= 30; len++)
        ck_assert_msg(ipv4_mask_valid(mask_of(len)), "/%u refused", len);
}
END_TEST

START_TEST(test_mask_invalid_lengths) {
    // /0 is no subnet; /31 and /32 leave no room for gateway and guest.
    ck_assert(!ipv4_mask_valid(mask_of(0)));
    ck_assert(!ipv4_mask_valid(mask_of(31)));
    ck_assert(!ipv4_mask_valid(mask_of(32)));
}
END_TEST

static const uint32_t non_contiguous_masks[] = {
    0xff00ff00u, // 255.0.255.0
    0xffff00ffu, // 255.255.0.255
    0xfffffe01u, // a stray low bit
    0x7fffff00u, // high bit clear
    0x00ffffffu, // inverted /8
    0xfffeff00u, // one hole
    0x000000ffu, 0x00000001u, 0x80000001u, 0xaaaaaaaau,
};

START_TEST(test_mask_non_contiguous) {
    ck_assert_msg(!ipv4_mask_valid(non_contiguous_masks[_i]), "0x%08x accepted",
                  (unsigned)non_contiguous_masks[_i]);
}
END_TEST

START_TEST(test_gateway_and_dhcp_range) {
    uint32_t net = 0xc0a80a00u, mask = 0xffffff00u, start, end;

    // "subnet" as the network, a host, or the broadcast address.
    ck_assert_uint_eq(network_gateway(net, mask), net + 1);
    ck_assert_uint_eq(network_gateway(net + 7, mask), net + 7);
    ck_assert_uint_eq(network_gateway(net + 255, mask), net + 1);
    network_default_dhcp_range(net, mask, net + 1, &start, &end);
    ck_assert_uint_eq(start, net + 2);
    ck_assert_uint_eq(end, net + 254);
    network_default_dhcp_range(net, mask, net + 254, &start, &end);
    ck_assert_uint_eq(start, net + 1);
    ck_assert_uint_eq(end, net + 253);
    network_default_dhcp_range(net, mask, net + 7, &start, &end);
    ck_assert_uint_eq(start, net + 1);
    ck_assert_uint_eq(end, net + 254);
}
END_TEST

static Suite *network_config_suite(void) {
    Suite *s = suite_create("network_config");
    TCase *names = tcase_create("names");
    TCase *configs = tcase_create("configs");
    TCase *masks = tcase_create("masks");

    tcase_add_loop_test(names, test_valid_names, 0,
                        sizeof(valid_names) / sizeof(*valid_names));
    tcase_add_loop_test(names, test_invalid_names, 0,
                        sizeof(invalid_names) / sizeof(*invalid_names));
    tcase_add_test(names, test_null_name_invalid);
    tcase_add_test(names, test_name_length_limit);
    suite_add_tcase(s, names);

    tcase_add_test(configs, test_init_defaults);
    tcase_add_test(configs, test_init_longest_name);
    tcase_add_test(configs, test_builtin_shared);
    tcase_add_test(configs, test_builtin_host);
    tcase_add_loop_test(configs, test_not_builtin, 0,
                        sizeof(not_builtin) / sizeof(*not_builtin));
    tcase_add_test(configs, test_mode_names);
    tcase_add_test(configs, test_gateway_and_dhcp_range);
    suite_add_tcase(s, configs);

    tcase_add_test(masks, test_mask_valid_lengths);
    tcase_add_test(masks, test_mask_invalid_lengths);
    tcase_add_loop_test(masks, test_mask_non_contiguous, 0,
                        sizeof(non_contiguous_masks) /
                            sizeof(*non_contiguous_masks));
    suite_add_tcase(s, masks);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(network_config_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
