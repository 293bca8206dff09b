// SPDX-License-Identifier: Apache-2.0
// subnets.json: what is remembered is read back, and an unchanged record
// is not written again (each rewrite costs in proportion to the names).
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/subnet.h"
#include "linux/stable_addresses.h"

static char dir[] = "/tmp/check-stable-XXXXXX";

static void setup(void) { ck_assert_ptr_nonnull(mkdtemp(dir)); }

static void teardown(void) {
    char path[128];

    snprintf(path, sizeof(path), "%s/subnets.json", dir);
    unlink(path);
    rmdir(dir);
    strcpy(dir, "/tmp/check-stable-XXXXXX");
}

static struct stable_addresses *load(void) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    ck_assert_int_ge(fd, 0);
    return stable_addresses_load(fd, dir);
}

// The file's inode: a rewrite renames a new file over it.
static ino_t file_inode(void) {
    char path[128];
    struct stat st;

    snprintf(path, sizeof(path), "%s/subnets.json", dir);
    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_ino;
}

START_TEST(test_remembered_addresses_read_back) {
    struct stable_addresses *s = load();
    struct ipv4_prefix subnet = {.address = 0xc0a84100, .len = 24}, got;
    uint8_t ipv6[16] = {0xfd, 1, 2, 3, 4, 5, 6, 7}, got6[16];
    char name[16];

    // Enough names that the file is many times a single write's worth of
    // tokens: it must still come back whole.
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "net%d", i);
        subnet.address = 0x0a000000u + ((uint32_t)i << 8);
        ck_assert(stable_addresses_remember(s, name, &subnet, ipv6));
    }
    stable_addresses_free(s);
    s = load();
    ck_assert(stable_addresses_subnet(s, "net199", &got));
    ck_assert_uint_eq(got.address, 0x0a00c700u);
    ck_assert_uint_eq(got.len, 24);
    ck_assert(stable_addresses_ipv6(s, "net0", got6));
    ck_assert_mem_eq(got6, ipv6, 16);
    stable_addresses_free(s);
}
END_TEST

START_TEST(test_unchanged_record_is_not_rewritten) {
    struct stable_addresses *s = load();
    struct ipv4_prefix subnet = {.address = 0xc0a84100, .len = 24}, got;
    uint8_t ipv6[16] = {0xfd, 9};
    ino_t before;

    ck_assert(stable_addresses_remember(s, "shared", &subnet, NULL));
    ck_assert(stable_addresses_remember(s, "shared", NULL, ipv6));
    before = file_inode();
    // The same again, whole or in part: nothing to write.
    ck_assert(stable_addresses_remember(s, "shared", &subnet, ipv6));
    ck_assert(stable_addresses_remember(s, "shared", &subnet, NULL));
    ck_assert(stable_addresses_remember(s, "shared", NULL, ipv6));
    ck_assert_uint_eq(file_inode(), before);
    // A change is written.
    subnet.address = 0xc0a84200;
    ck_assert(stable_addresses_remember(s, "shared", &subnet, NULL));
    ck_assert_uint_ne(file_inode(), before);
    stable_addresses_free(s);
    s = load();
    ck_assert(stable_addresses_subnet(s, "shared", &got));
    ck_assert_uint_eq(got.address, 0xc0a84200);
    stable_addresses_free(s);
}
END_TEST

int main(void) {
    Suite *suite = suite_create("stable_addresses");
    TCase *tc = tcase_create("stable_addresses");
    SRunner *runner;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_remembered_addresses_read_back);
    tcase_add_test(tc, test_unchanged_record_is_not_rewritten);
    suite_add_tcase(suite, tc);
    runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
