// SPDX-License-Identifier: Apache-2.0
// The broker's wire error codes and the client library's status values are
// the same numbers by design: this ties them so neither can drift.
#include <check.h>
#include <stdlib.h>

#include "core/status.h"
#include "vmnet-broker.h"

// Checked at compile time too: a drift fails the build before any test.
_Static_assert((int)BROKER_OK == (int)VMNET_BROKER_SUCCESS, "success");
_Static_assert((int)BROKER_ERR_NOT_ALLOWED == (int)VMNET_BROKER_NOT_ALLOWED,
               "not allowed");
_Static_assert((int)BROKER_ERR_INVALID_REQUEST ==
                   (int)VMNET_BROKER_INVALID_REQUEST,
               "invalid request");
_Static_assert((int)BROKER_ERR_NOT_FOUND == (int)VMNET_BROKER_NOT_FOUND,
               "not found");
_Static_assert((int)BROKER_ERR_CREATE_FAILURE ==
                   (int)VMNET_BROKER_CREATE_FAILURE,
               "create failure");
_Static_assert((int)BROKER_ERR_INTERNAL == (int)VMNET_BROKER_INTERNAL_ERROR,
               "internal");

START_TEST(test_same_numbers) {
    // The values the original protocol fixed, on both sides.
    ck_assert_int_eq(VMNET_BROKER_SUCCESS, 0);
    ck_assert_int_eq(VMNET_BROKER_XPC_FAILURE, 1);
    ck_assert_int_eq(VMNET_BROKER_CONNECTION_FAILURE, 1);
    ck_assert_int_eq(VMNET_BROKER_INVALID_REPLY, 2);
    ck_assert_int_eq(BROKER_ERR_NOT_ALLOWED, 3);
    ck_assert_int_eq(BROKER_ERR_INVALID_REQUEST, 4);
    ck_assert_int_eq(BROKER_ERR_NOT_FOUND, 5);
    ck_assert_int_eq(BROKER_ERR_CREATE_FAILURE, 6);
    ck_assert_int_eq(BROKER_ERR_INTERNAL, 7);
    ck_assert_int_eq(VMNET_BROKER_INTERNAL_ERROR, 7);
}
END_TEST

START_TEST(test_names_agree) {
    // The broker's short names and the library's descriptions speak of the
    // same thing for every wire code.
    ck_assert_str_eq(broker_status_name(VMNET_BROKER_NOT_ALLOWED),
                     "NOT_ALLOWED");
    ck_assert_str_eq(broker_status_name(VMNET_BROKER_INVALID_REQUEST),
                     "INVALID_REQUEST");
    ck_assert_str_eq(broker_status_name(VMNET_BROKER_NOT_FOUND), "NOT_FOUND");
    ck_assert_str_eq(broker_status_name(VMNET_BROKER_CREATE_FAILURE),
                     "CREATE_FAILURE");
}
END_TEST

int main(void) {
    Suite *s = suite_create("status_codes");
    TCase *tc = tcase_create("status_codes");
    SRunner *runner;
    int failed;

    tcase_add_test(tc, test_same_numbers);
    tcase_add_test(tc, test_names_agree);
    suite_add_tcase(s, tc);
    runner = srunner_create(s);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
