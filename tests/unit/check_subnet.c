// SPDX-License-Identifier: Apache-2.0
// IPv4 parsing and formatting, prefix arithmetic and free-subnet choice.
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/subnet.h"

#define ADDR(a, b, c, d)                                                       \
    (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) |    \
     (uint32_t)(d))

static struct ipv4_prefix prefix(uint32_t address, unsigned len) {
    struct ipv4_prefix p = {address, len};
    return p;
}

static const struct {
    const char *text;
    uint32_t address;
} good_addresses[] = {
    {"0.0.0.0", 0},
    {"255.255.255.255", 0xffffffffu},
    {"192.168.64.1", ADDR(192, 168, 64, 1)},
    {"10.0.0.254", ADDR(10, 0, 0, 254)},
    {"1.2.3.4", ADDR(1, 2, 3, 4)},
};

START_TEST(test_parse_good) {
    uint32_t address = 0x12345678u;
    ck_assert_msg(ipv4_parse(good_addresses[_i].text, &address),
                  "'%s' rejected", good_addresses[_i].text);
    ck_assert_uint_eq(address, good_addresses[_i].address);
}
END_TEST

static const char *const bad_addresses[] = {
    "1.2.3",       "1.2.3.4.5", "256.1.1.1", "1.2.3.4 ", " 1.2.3.4",
    "a.b.c.d",     "",          "1..2.3",    "1.2.3.",   ".1.2.3",
    "1.2.3.4/24",  "-1.2.3.4",  "+1.2.3.4",  "1.2.3.-4", "1.2.3.256",
    "1234.1.1.1",  "1.2.3.4x",  "1.2.3.0x1", "1. 2.3.4", "1.2.3.4\n",
    "999.999.9.9", "0x1.2.3.4",
};

START_TEST(test_parse_bad) {
    uint32_t address = 0x12345678u;
    ck_assert_msg(!ipv4_parse(bad_addresses[_i], &address), "'%s' accepted",
                  bad_addresses[_i]);
    ck_assert_uint_eq(address, 0x12345678u);
}
END_TEST

START_TEST(test_format) {
    char buf[16];

    ck_assert_ptr_eq(ipv4_format(0, buf), buf);
    ck_assert_str_eq(buf, "0.0.0.0");
    ck_assert_str_eq(ipv4_format(0xffffffffu, buf), "255.255.255.255");
    ck_assert_str_eq(ipv4_format(ADDR(192, 168, 64, 1), buf), "192.168.64.1");
    ck_assert_str_eq(ipv4_format(ADDR(10, 1, 200, 3), buf), "10.1.200.3");
}
END_TEST

START_TEST(test_format_parse_round_trip) {
    char buf[16];
    uint32_t samples[] = {0, 1, 0x7f000001u, ADDR(172, 16, 5, 9), 0xfffffffeu};

    for (size_t i = 0; i < sizeof(samples) / sizeof(*samples); i++) {
        uint32_t back = 0;
        ck_assert(ipv4_parse(ipv4_format(samples[i], buf), &back));
        ck_assert_uint_eq(back, samples[i]);
    }
}
END_TEST

START_TEST(test_mask_len) {
    ck_assert_uint_eq(ipv4_mask_len(0), 0);
    ck_assert_uint_eq(ipv4_mask_len(0x80000000u), 1);
    ck_assert_uint_eq(ipv4_mask_len(0xffff0000u), 16);
    ck_assert_uint_eq(ipv4_mask_len(0xffffff00u), 24);
    ck_assert_uint_eq(ipv4_mask_len(0xfffffffcu), 30);
    ck_assert_uint_eq(ipv4_mask_len(0xffffffffu), 32);
}
END_TEST

START_TEST(test_prefix_mask_and_len_agree) {
    ck_assert_uint_eq(ipv4_prefix_mask(0), 0);
    ck_assert_uint_eq(ipv4_prefix_mask(32), 0xffffffffu);
    for (unsigned len = 0; len <= 32; len++)
        ck_assert_uint_eq(ipv4_mask_len(ipv4_prefix_mask(len)), len);
}
END_TEST

START_TEST(test_prefix_overlaps) {
    struct ipv4_prefix ten = prefix(ADDR(10, 0, 0, 0), 8);
    struct ipv4_prefix ten_one = prefix(ADDR(10, 1, 0, 0), 16);
    struct ipv4_prefix s64 = prefix(ADDR(192, 168, 64, 0), 24);
    struct ipv4_prefix s65 = prefix(ADDR(192, 168, 65, 0), 24);
    struct ipv4_prefix host = prefix(ADDR(192, 168, 64, 77), 32);
    struct ipv4_prefix any = prefix(0, 0);

    // Containment counts, whichever side is the larger.
    ck_assert(ipv4_prefix_overlaps(ten, ten_one));
    ck_assert(ipv4_prefix_overlaps(ten_one, ten));
    ck_assert(ipv4_prefix_overlaps(s64, s64));
    ck_assert(ipv4_prefix_overlaps(s64, host));
    ck_assert(ipv4_prefix_overlaps(host, s64));
    ck_assert(ipv4_prefix_overlaps(any, s64));
    // Neighbours and strangers do not.
    ck_assert(!ipv4_prefix_overlaps(s64, s65));
    ck_assert(!ipv4_prefix_overlaps(s65, host));
    ck_assert(!ipv4_prefix_overlaps(ten, s64));
    ck_assert(!ipv4_prefix_overlaps(ten_one, prefix(ADDR(10, 2, 0, 0), 16)));
}
END_TEST

static void assert_chosen(const struct ipv4_prefix *used, size_t n_used,
                          uint32_t expected) {
    struct ipv4_prefix out = {0x12345678u, 7};
    ck_assert(subnet_choose(used, n_used, &out));
    ck_assert_uint_eq(out.address, expected);
    ck_assert_uint_eq(out.len, 24);
}

START_TEST(test_choose_with_nothing_used) {
    assert_chosen(NULL, 0, ADDR(192, 168, 64, 0));
}
END_TEST

START_TEST(test_choose_skips_used_subnets) {
    // Listed out of order, and next to unrelated routes.
    struct ipv4_prefix used[] = {
        prefix(ADDR(192, 168, 65, 0), 24),
        prefix(ADDR(10, 0, 0, 0), 8),
        prefix(ADDR(192, 168, 64, 0), 24),
        prefix(ADDR(192, 168, 67, 0), 24),
    };
    assert_chosen(used, 4, ADDR(192, 168, 66, 0));
}
END_TEST

START_TEST(test_choose_skips_a_covering_prefix) {
    struct ipv4_prefix used[] = {prefix(ADDR(192, 168, 64, 0), 20)};
    assert_chosen(used, 1, ADDR(192, 168, 80, 0));
}
END_TEST

START_TEST(test_choose_ignores_default_routes) {
    struct ipv4_prefix used[] = {
        prefix(0, 0),
        prefix(ADDR(192, 168, 1, 1), 0),
    };
    assert_chosen(used, 2, ADDR(192, 168, 64, 0));
}
END_TEST

START_TEST(test_choose_skips_a_host_address) {
    struct ipv4_prefix used[] = {prefix(ADDR(192, 168, 64, 200), 32)};
    assert_chosen(used, 1, ADDR(192, 168, 65, 0));
}
END_TEST

START_TEST(test_choose_takes_the_last_candidate) {
    struct ipv4_prefix used[SUBNET_LAST / 256 - SUBNET_FIRST / 256];
    size_t n = 0;

    for (uint32_t a = SUBNET_FIRST; a < SUBNET_LAST; a += 0x100)
        used[n++] = prefix(a, 24);
    assert_chosen(used, n, SUBNET_LAST);
}
END_TEST

START_TEST(test_choose_exhausted) {
    struct ipv4_prefix all[SUBNET_LAST / 256 - SUBNET_FIRST / 256 + 1];
    struct ipv4_prefix whole = prefix(ADDR(192, 168, 0, 0), 16);
    struct ipv4_prefix out = {0x12345678u, 7};
    size_t n = 0;

    for (uint32_t a = SUBNET_FIRST; a <= SUBNET_LAST; a += 0x100)
        all[n++] = prefix(a, 24);
    ck_assert(!subnet_choose(all, n, &out));
    ck_assert(!subnet_choose(&whole, 1, &out));
    ck_assert_uint_eq(out.address, 0x12345678u);
    ck_assert_uint_eq(out.len, 7);
}
END_TEST

START_TEST(test_pool) {
    struct ipv4_prefix pool, used[2], out;
    uint32_t first, last;

    ck_assert(ipv4_prefix_parse("10.77.0.0/16", &pool));
    ck_assert(subnet_pool_range(pool, &first, &last));
    ck_assert_uint_eq(first, ADDR(10, 77, 0, 0));
    ck_assert_uint_eq(last, ADDR(10, 77, 255, 0));
    used[0] = prefix(ADDR(10, 77, 0, 0), 24);
    used[1] = prefix(ADDR(10, 77, 1, 7), 32);
    ck_assert(subnet_choose_in(first, last, used, 2, &out));
    ck_assert_uint_eq(out.address, ADDR(10, 77, 2, 0));
    ck_assert_uint_eq(out.len, 24);
    // A /24 pool is one network; the top of the address space cannot wrap.
    ck_assert(ipv4_prefix_parse("255.255.255.0/24", &pool));
    ck_assert(subnet_pool_range(pool, &first, &last));
    ck_assert_uint_eq(first, last);
    ck_assert(subnet_choose_in(first, last, NULL, 0, &out));
    used[0] = prefix(first, 24);
    ck_assert(!subnet_choose_in(first, last, used, 1, &out));
    // Bad pools.
    ck_assert(!ipv4_prefix_parse("10.0.0.0", &pool));
    ck_assert(!ipv4_prefix_parse("10.0.0.0/33", &pool));
    ck_assert(!ipv4_prefix_parse("10.0.0.0/8x", &pool));
    ck_assert(!ipv4_prefix_parse("10.0.0/8", &pool));
    ck_assert(ipv4_prefix_parse("10.0.0.0/25", &pool));
    ck_assert(!subnet_pool_range(pool, &first, &last));
    ck_assert(ipv4_prefix_parse("10.0.0.0/7", &pool));
    ck_assert(!subnet_pool_range(pool, &first, &last));
}
END_TEST

static Suite *subnet_suite(void) {
    Suite *s = suite_create("subnet");
    TCase *text = tcase_create("text");
    TCase *prefixes = tcase_create("prefixes");
    TCase *choose = tcase_create("choose");

    tcase_add_loop_test(text, test_parse_good, 0,
                        sizeof(good_addresses) / sizeof(*good_addresses));
    tcase_add_loop_test(text, test_parse_bad, 0,
                        sizeof(bad_addresses) / sizeof(*bad_addresses));
    tcase_add_test(text, test_format);
    tcase_add_test(text, test_format_parse_round_trip);
    tcase_add_test(text, test_pool);
    suite_add_tcase(s, text);

    tcase_add_test(prefixes, test_mask_len);
    tcase_add_test(prefixes, test_prefix_mask_and_len_agree);
    tcase_add_test(prefixes, test_prefix_overlaps);
    suite_add_tcase(s, prefixes);

    tcase_add_test(choose, test_choose_with_nothing_used);
    tcase_add_test(choose, test_choose_skips_used_subnets);
    tcase_add_test(choose, test_choose_skips_a_covering_prefix);
    tcase_add_test(choose, test_choose_ignores_default_routes);
    tcase_add_test(choose, test_choose_skips_a_host_address);
    tcase_add_test(choose, test_choose_takes_the_last_candidate);
    tcase_add_test(choose, test_choose_exhausted);
    suite_add_tcase(s, choose);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(subnet_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
