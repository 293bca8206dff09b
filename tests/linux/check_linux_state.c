// SPDX-License-Identifier: Apache-2.0
// networks.json: atomic writes, faithful reads, bad input never trusted.
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "linux/networks_state.h"

static char dir[64];
static int dir_fd = -1;

static void setup(void) {
    snprintf(dir, sizeof(dir), "/tmp/vmnet-state-test.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(dir_fd, 0);
}

static void teardown(void) {
    char command[128];

    close(dir_fd);
    snprintf(command, sizeof(command), "rm -rf %s", dir);
    ck_assert_int_eq(system(command), 0);
}

static struct networks_state_entry sample(const char *name, unsigned n) {
    struct networks_state_entry e;

    memset(&e, 0, sizeof(e));
    snprintf(e.name, sizeof(e.name), "%s", name);
    e.mode = n % 2 ? NETWORK_MODE_HOST : NETWORK_MODE_SHARED;
    e.persistent = n % 2;
    snprintf(e.info.uuid, sizeof(e.info.uuid), "00000000-0000-4000-8000-%012x",
             n);
    snprintf(e.info.bridge, sizeof(e.info.bridge), "vmb-%s", name);
    e.info.subnet = 0xc0a84000u + (n << 8);
    e.info.mask = 0xffffff00u;
    e.info.gateway = e.info.subnet + 1;
    e.info.mtu = 1400 + n;
    e.info.dhcp = true;
    e.info.dhcp_start = e.info.subnet + 2;
    e.info.dhcp_end = e.info.subnet + 254;
    e.info.dns = e.info.gateway;
    e.info.ipv6 = !(n % 2);
    if (e.info.ipv6) {
        e.info.ipv6_prefix[0] = 0xfd;
        e.info.ipv6_prefix[5] = (uint8_t)n;
        e.info.ipv6_prefix_len = 64;
    }
    e.dnsmasq_pid = 1000 + (pid_t)n;
    e.dnsmasq_start = 123456789ull + n;
    return e;
}

static void write_text(const char *text) {
    char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/" NETWORKS_STATE_FILE, dir);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(test_round_trip) {
    struct networks_state_entry written[2] = {sample("shared", 0),
                                              sample("lab", 1)};
    struct networks_state_entry *read = NULL;
    size_t n = 0;
    struct stat st;

    ck_assert_int_eq(networks_state_write(dir_fd, written, 2), 0);
    networks_state_read(dir_fd, &read, &n);
    ck_assert_uint_eq(n, 2);
    for (size_t i = 0; i < 2; i++) {
        ck_assert_str_eq(read[i].name, written[i].name);
        ck_assert_int_eq(read[i].mode, written[i].mode);
        ck_assert_int_eq(read[i].persistent, written[i].persistent);
        ck_assert_int_eq(read[i].dnsmasq_pid, written[i].dnsmasq_pid);
        ck_assert(read[i].dnsmasq_start == written[i].dnsmasq_start);
        ck_assert_mem_eq(&read[i].info, &written[i].info, sizeof(read[i].info));
    }
    free(read);
    // No temporary file is left beside it.
    ck_assert_int_ne(fstatat(dir_fd, NETWORKS_STATE_FILE ".new", &st, 0), 0);
    // Written again with nothing: nothing to adopt.
    ck_assert_int_eq(networks_state_write(dir_fd, NULL, 0), 0);
    networks_state_read(dir_fd, &read, &n);
    ck_assert_uint_eq(n, 0);
    free(read);
}
END_TEST

START_TEST(test_missing_and_corrupt_files_give_nothing) {
    static const char *const bad[] = {
        "",
        "{",
        "[]",
        "{\"version\": 2, \"networks\": []}",
        "{\"version\": 1, \"networks\": {}}",
        "{\"version\": 1, \"networks\": [1, \"x\", null]}",
        "\x01\x02\x03",
    };
    struct networks_state_entry *read = NULL;
    size_t n = 7;

    networks_state_read(dir_fd, &read, &n);
    ck_assert_uint_eq(n, 0);
    free(read);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_text(bad[i]);
        n = 7;
        networks_state_read(dir_fd, &read, &n);
        ck_assert_msg(n == 0, "'%s' gave %zu entries", bad[i], n);
        free(read);
        read = NULL;
    }
}
END_TEST

START_TEST(test_bad_entries_are_left_out) {
    struct networks_state_entry good[1] = {sample("good", 2)};
    struct networks_state_entry *read = NULL;
    char path[128], *text;
    size_t n = 0;
    long size;
    FILE *f;

    ck_assert_int_eq(networks_state_write(dir_fd, good, 1), 0);
    snprintf(path, sizeof(path), "%s/" NETWORKS_STATE_FILE, dir);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    rewind(f);
    text = calloc(1, (size_t)size + 1);
    ck_assert_uint_eq(fread(text, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    // The good entry, then copies spoiled one field at a time.
    {
        static const char *const spoil[][2] = {
            {"\"name\": \"good\"", "\"name\": \"bad name;\""},
            {"\"mode\": \"shared\"", "\"mode\": \"bridged\""},
            {"\"subnet\": \"192.168.66.0\"", "\"subnet\": \"300.1.1.0\""},
            {"\"mask\": \"255.255.255.0\"", "\"mask\": \"255.0.255.0\""},
            {"\"mtu\": 1402", "\"mtu\": 1"},
            {"\"bridge\": \"vmb-good\"",
             "\"bridge\": \"vmb-good-far-too-long\""},
            {"\"dnsmasq_pid\": 1002", "\"dnsmasq_pid\": -5"},
        };
        const char *open = strchr(text, '{');
        const char *start = strchr(open + 1, '{');
        const char *end = strrchr(text, '}');
        size_t entry_len;
        char *entry, *all;
        size_t used;

        // The entry's text: from its '{' to the '}' closing it (the
        // array's ']' and the root's '}' follow).
        end = strrchr(text, ']');
        while (end > start && *end != '}')
            end--;
        entry_len = (size_t)(end - start) + 1;
        all = calloc(1, (entry_len + 64) * 16 + 64);
        used = (size_t)sprintf(all, "{\"version\": 1, \"networks\": [%.*s",
                               (int)entry_len, start);
        for (size_t i = 0; i < sizeof(spoil) / sizeof(spoil[0]); i++) {
            char *at;

            entry = strndup(start, entry_len);
            at = strstr(entry, spoil[i][0]);
            ck_assert_msg(at != NULL, "no %s in %s", spoil[i][0], entry);
            used +=
                (size_t)sprintf(all + used, ", %.*s%s%s", (int)(at - entry),
                                entry, spoil[i][1], at + strlen(spoil[i][0]));
            free(entry);
        }
        sprintf(all + used, "]}");
        write_text(all);
        free(all);
    }
    networks_state_read(dir_fd, &read, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(read[0].name, "good");
    free(read);
    free(text);
}
END_TEST

START_TEST(test_symlinks_are_not_followed) {
    struct networks_state_entry e[1] = {sample("shared", 0)};
    struct networks_state_entry *read = NULL;
    char target[128], link_path[128];
    size_t n = 0;
    struct stat st;

    // A link in the file's place is never read through.
    snprintf(target, sizeof(target), "%s/elsewhere.json", dir);
    ck_assert_int_eq(networks_state_write(dir_fd, e, 1), 0);
    snprintf(link_path, sizeof(link_path), "%s/" NETWORKS_STATE_FILE, dir);
    ck_assert_int_eq(rename(link_path, target), 0);
    ck_assert_int_eq(symlink(target, link_path), 0);
    networks_state_read(dir_fd, &read, &n);
    ck_assert_uint_eq(n, 0);
    free(read);
    // Nor written through: the temporary name as a link makes the write
    // fail, and the link's target is untouched.
    ck_assert_int_eq(unlink(link_path), 0);
    snprintf(link_path, sizeof(link_path), "%s/" NETWORKS_STATE_FILE ".new",
             dir);
    ck_assert_int_eq(symlink(target, link_path), 0);
    ck_assert_int_ne(networks_state_write(dir_fd, NULL, 0), 0);
    ck_assert_int_eq(lstat(target, &st), 0);
    ck_assert_int_gt(st.st_size, 20);
}
END_TEST

// What one write costs on this machine's /tmp: said, not
// asserted (never fail on timing).
START_TEST(test_write_cost) {
    struct networks_state_entry e[8];
    struct timespec a, b;
    const int rounds = 50;

    for (unsigned i = 0; i < 8; i++) {
        char name[16];
        snprintf(name, sizeof(name), "net%u", i);
        e[i] = sample(name, i);
    }
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < rounds; i++)
        ck_assert_int_eq(networks_state_write(dir_fd, e, 8), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    fprintf(stderr, "networks.json with 8 networks: %.3f ms per write\n",
            ((double)(b.tv_sec - a.tv_sec) * 1e3 +
             (double)(b.tv_nsec - a.tv_nsec) / 1e6) /
                rounds);
}
END_TEST

int main(void) {
    Suite *s = suite_create("networks_state");
    TCase *tc = tcase_create("state");
    SRunner *runner;
    int failed;

    // Bad entries are logged as warnings: keep the output readable.
    log_set_level(LOG_LEVEL_ERROR);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_missing_and_corrupt_files_give_nothing);
    tcase_add_test(tc, test_bad_entries_are_left_out);
    tcase_add_test(tc, test_symlinks_are_not_followed);
    tcase_add_test(tc, test_write_cost);
    suite_add_tcase(s, tc);
    runner = srunner_create(s);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
