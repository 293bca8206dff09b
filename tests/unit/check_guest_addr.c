// SPDX-License-Identifier: Apache-2.0
// Guest MACs are keyed (SipHash-2-4) and SLAAC addresses follow EUI-64.
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/guest_addr.h"

static const uint8_t key_0_to_15[GUEST_MAC_KEY_LEN] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

// The reference vectors of the SipHash paper (key 00..0f, message 00..n-1).
START_TEST(test_siphash_reference_vectors) {
    uint8_t message[15];
    for (int i = 0; i < 15; i++)
        message[i] = (uint8_t)i;
    ck_assert_uint_eq(siphash24(key_0_to_15, message, 0),
                      0x726fdb47dd0e0e31ull);
    ck_assert_uint_eq(siphash24(key_0_to_15, message, 15),
                      0xa129ca6149be45e5ull);
}
END_TEST

START_TEST(test_mac_stable_and_keyed) {
    uint8_t other_key[GUEST_MAC_KEY_LEN] = {0};
    uint8_t a[6], b[6], c[6], d[6];

    guest_mac(key_0_to_15, "shared", 1000, 0, a);
    guest_mac(key_0_to_15, "shared", 1000, 0, b);
    ck_assert_mem_eq(a, b, 6);
    ck_assert_uint_eq(a[0], 0x02);
    ck_assert_uint_eq(a[1], 0x76);
    // Another slot, and the same slot under another host's key, differ:
    // knowing the network, the uid and the slot is not enough.
    guest_mac(key_0_to_15, "shared", 1000, 1, c);
    ck_assert_mem_ne(a, c, 6);
    guest_mac(other_key, "shared", 1000, 0, d);
    ck_assert_mem_ne(a, d, 6);
}
END_TEST

START_TEST(test_slaac_eui64) {
    const uint8_t prefix[16] = {0xfd, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde};
    const uint8_t mac[6] = {0x02, 0x76, 0xaa, 0xbb, 0xcc, 0xdd};
    const uint8_t expected[16] = {0xfd, 0x12, 0x34, 0x56, 0x78, 0x9a,
                                  0xbc, 0xde, 0x00, 0x76, 0xaa, 0xff,
                                  0xfe, 0xbb, 0xcc, 0xdd};
    uint8_t out[16];

    guest_slaac(prefix, mac, out);
    ck_assert_mem_eq(out, expected, 16);
}
END_TEST

int main(void) {
    Suite *s = suite_create("guest_addr");
    TCase *tc = tcase_create("guest_addr");
    SRunner *runner;
    int failed;

    tcase_add_test(tc, test_siphash_reference_vectors);
    tcase_add_test(tc, test_mac_stable_and_keyed);
    tcase_add_test(tc, test_slaac_eui64);
    suite_add_tcase(s, tc);
    runner = srunner_create(s);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
