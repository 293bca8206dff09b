// SPDX-License-Identifier: Apache-2.0
// Unit tests: network configuration files and the configuration directory.
#include <check.h>
#include <dirent.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config_dir.h"
#include "config/config_file.h"
#include "core/status.h"

#define MAX_PROBLEMS 32

struct problems {
    int n;
    int line[MAX_PROBLEMS];
    int column[MAX_PROBLEMS];
    char path[MAX_PROBLEMS][PATH_MAX];
    char message[MAX_PROBLEMS][512];
};

static char dir[PATH_MAX];

static void make_dir(void) {
    snprintf(dir, sizeof(dir), "%s/check_config.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

// Removes dir and the files (and empty directories) the tests put in it.
static void remove_dir(void) {
    DIR *d = opendir(dir);
    struct dirent *entry;

    if (d == NULL)
        return;
    while ((entry = readdir(d)) != NULL) {
        char path[PATH_MAX * 2];
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, entry->d_name);
        if (unlink(path) != 0)
            rmdir(path);
    }
    closedir(d);
    rmdir(dir);
}

static void collect(void *ctx, const char *path, int line, int column,
                    const char *message) {
    struct problems *got = ctx;
    ck_assert_int_lt(got->n, MAX_PROBLEMS);
    got->line[got->n] = line;
    got->column[got->n] = column;
    snprintf(got->path[got->n], sizeof(got->path[0]), "%s", path);
    snprintf(got->message[got->n], sizeof(got->message[0]), "%s", message);
    got->n++;
}

static void file_path(const char *name, char *path, size_t size) {
    snprintf(path, size, "%s/%s", dir, name);
}

static void write_file(const char *name, const char *fmt, ...) {
    char path[PATH_MAX * 2];
    va_list ap;
    FILE *f;

    file_path(name, path, sizeof(path));
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    ck_assert_int_eq(fclose(f), 0);
}

// Applies text as a file of the network "net" (a built-in name when
// builtin is set) on top of defaults; returns the problem count.
static int apply_text(const char *text, bool builtin,
                      struct network_config *config, struct problems *got) {
    char path[PATH_MAX * 2];
    int count;

    if (builtin)
        ck_assert(network_config_builtin("shared", config));
    else
        network_config_init(config, "net", NETWORK_MODE_SHARED);
    write_file("net.json", "%s", text);
    file_path("net.json", path, sizeof(path));
    memset(got, 0, sizeof(*got));
    count = config_file_apply(path, builtin, config, collect, got);
    ck_assert_int_eq(count, got->n);
    for (int i = 0; i < got->n; i++)
        ck_assert_str_eq(got->path[i], path);
    return count;
}

static void ck_assert_problem(const struct problems *got, int i, int line,
                              int column, const char *message) {
    ck_assert_int_gt(got->n, i);
    ck_assert_str_eq(got->message[i], message);
    ck_assert_int_eq(got->line[i], line);
    ck_assert_int_eq(got->column[i], column);
}

// The file has exactly one problem, at line:column, saying message; and the
// configuration is left as it was.
static void expect_one(const char *text, bool builtin, int line, int column,
                       const char *message) {
    struct network_config config, before;
    struct problems got;

    ck_assert_int_eq(apply_text(text, builtin, &config, &got), 1);
    ck_assert_problem(&got, 0, line, column, message);
    if (builtin)
        network_config_builtin("shared", &before);
    else
        network_config_init(&before, "net", NETWORK_MODE_SHARED);
    ck_assert_mem_eq(&config, &before, sizeof(config));
}

static uint32_t ipv4(unsigned a, unsigned b, unsigned c, unsigned d) {
    return a << 24 | b << 16 | c << 8 | d;
}

START_TEST(test_every_key) {
    struct passwd *user = getpwuid(0);
    struct group *group = getgrgid(0);
    static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    static const uint8_t prefix[16] = {0xfd, 0x12, 0x34, 0x56,
                                       0x78, 0x9a, 0x00, 0x01};
    struct network_config config;
    struct problems got;
    char text[4096];

    ck_assert_ptr_nonnull(user);
    ck_assert_ptr_nonnull(group);
    snprintf(text, sizeof(text),
             "{\n"
             "  \"description\": \"Lab network\",\n"
             "  \"mode\": \"shared\",\n"
             "  \"subnet\": \"192.168.42.1\",\n"
             "  \"mask\": \"255.255.255.0\",\n"
             "  \"allowed_users\": [\"%s\", 1000],\n"
             "  \"allowed_groups\": [\"%s\", 2000],\n"
             "  \"mtu\": 9000,\n"
             "  \"dhcp\": false,\n"
             "  \"dhcp_range\": {\"start\": \"192.168.42.100\",\n"
             "                 \"end\": \"192.168.42.200\"},\n"
             "  \"ipv6\": false,\n"
             "  \"ipv6_prefix\": \"fd12:3456:789a:1::\",\n"
             "  \"ipv6_prefix_length\": 64,\n"
             "  \"dhcp_reservations\": [\n"
             "    {\"mac_address\": \"52:54:00:12:34:56\",\n"
             "     \"ip_address\": \"192.168.42.10\"}\n"
             "  ],\n"
             "  \"port_forwarding\": [\n"
             "    {\"protocol\": \"tcp\", \"host_port\": 2222,\n"
             "     \"guest_address\": \"192.168.42.10\", \"guest_port\": 22},\n"
             "    {\"protocol\": \"udp\", \"host_port\": 2222,\n"
             "     \"guest_address\": \"192.168.42.11\", \"guest_port\": 53}\n"
             "  ],\n"
             "  \"persistent\": true,\n"
             "  \"anti_spoofing\": false,\n"
             "  \"port_isolation\": true\n"
             "}\n",
             user->pw_name, group->gr_name);

    ck_assert_int_eq(apply_text(text, false, &config, &got), 0);
    ck_assert_str_eq(config.name, "net");
    ck_assert_str_eq(config.description, "Lab network");
    ck_assert_int_eq(config.mode, NETWORK_MODE_SHARED);
    ck_assert(config.has_subnet);
    ck_assert_uint_eq(config.subnet, ipv4(192, 168, 42, 1));
    ck_assert_uint_eq(config.mask, ipv4(255, 255, 255, 0));
    ck_assert_uint_eq(config.n_allowed_users, 2);
    ck_assert_uint_eq(config.allowed_users[0], 0);
    ck_assert_uint_eq(config.allowed_users[1], 1000);
    ck_assert_uint_eq(config.n_allowed_groups, 2);
    ck_assert_uint_eq(config.allowed_groups[0], 0);
    ck_assert_uint_eq(config.allowed_groups[1], 2000);
    ck_assert_uint_eq(config.mtu, 9000);
    ck_assert(!config.dhcp);
    ck_assert(config.has_dhcp_range);
    ck_assert_uint_eq(config.dhcp_start, ipv4(192, 168, 42, 100));
    ck_assert_uint_eq(config.dhcp_end, ipv4(192, 168, 42, 200));
    ck_assert(!config.ipv6);
    ck_assert(config.has_ipv6_prefix);
    ck_assert_mem_eq(config.ipv6_prefix, prefix, 16);
    ck_assert_uint_eq(config.ipv6_prefix_len, 64);
    ck_assert_uint_eq(config.n_reservations, 1);
    ck_assert_mem_eq(config.reservations[0].mac, mac, 6);
    ck_assert_uint_eq(config.reservations[0].address, ipv4(192, 168, 42, 10));
    ck_assert_uint_eq(config.n_port_forwards, 2);
    ck_assert(!config.port_forwards[0].udp);
    ck_assert_uint_eq(config.port_forwards[0].host_port, 2222);
    ck_assert_uint_eq(config.port_forwards[0].guest_address,
                      ipv4(192, 168, 42, 10));
    ck_assert_uint_eq(config.port_forwards[0].guest_port, 22);
    ck_assert(config.port_forwards[1].udp);
    ck_assert_uint_eq(config.port_forwards[1].guest_port, 53);
    ck_assert(config.persistent);
    ck_assert(!config.anti_spoofing);
    ck_assert(config.port_isolation);
}
END_TEST

START_TEST(test_minimal_file_keeps_defaults) {
    struct network_config config, defaults;
    struct problems got;

    ck_assert_int_eq(apply_text("{\"mode\": \"host\"}", false, &config, &got),
                     0);
    network_config_init(&defaults, "net", NETWORK_MODE_HOST);
    ck_assert_mem_eq(&config, &defaults, sizeof(config));
}
END_TEST

// An allow-list, even an empty one, restricts; no allow-list leaves the
// network open.
START_TEST(test_empty_allow_list_restricts) {
    struct network_config config;
    struct problems got;

    ck_assert_int_eq(apply_text("{\"mode\": \"host\", \"allowed_users\": []}",
                                false, &config, &got),
                     0);
    ck_assert(config.restricted);
    ck_assert_uint_eq(config.n_allowed_users, 0);
    ck_assert_int_eq(apply_text("{\"mode\": \"host\", \"allowed_groups\": []}",
                                false, &config, &got),
                     0);
    ck_assert(config.restricted);
    ck_assert_int_eq(apply_text("{\"mode\": \"host\"}", false, &config, &got),
                     0);
    ck_assert(!config.restricted);
}
END_TEST

START_TEST(test_subnet_without_mask_is_a_24) {
    struct network_config config;
    struct problems got;

    ck_assert_int_eq(apply_text("{\"mode\": \"host\", "
                                "\"subnet\": \"10.20.30.0\"}",
                                false, &config, &got),
                     0);
    ck_assert(config.has_subnet);
    ck_assert_uint_eq(config.subnet, ipv4(10, 20, 30, 0));
    ck_assert_uint_eq(config.mask, ipv4(255, 255, 255, 0));
}
END_TEST

START_TEST(test_builtin_override_without_mode) {
    struct network_config config;
    struct problems got;

    ck_assert_int_eq(apply_text("{\"subnet\": \"192.168.77.1\", "
                                "\"allowed_users\": [1000]}",
                                true, &config, &got),
                     0);
    ck_assert_str_eq(config.name, "shared");
    ck_assert_int_eq(config.mode, NETWORK_MODE_SHARED);
    ck_assert(config.has_subnet);
    ck_assert_uint_eq(config.subnet, ipv4(192, 168, 77, 1));
    ck_assert_uint_eq(config.n_allowed_users, 1);
}
END_TEST

START_TEST(test_mode_required_unless_builtin) {
    expect_one("{\n  \"mtu\": 1500\n}\n", false, 1, 1,
               "missing 'mode' (\"shared\" or \"host\")");
}
END_TEST

START_TEST(test_syntax_error) {
    expect_one("{\n  \"mode\": \"shared\",\n}\n", false, 3, 1,
               "string or '}' expected near '}'");
}
END_TEST

START_TEST(test_empty_file) {
    expect_one("", false, 1, 1, "unexpected token near end of file");
}
END_TEST

START_TEST(test_duplicate_key) {
    expect_one("{\n  \"mode\": \"shared\",\n  \"mode\": \"host\"\n}\n", false,
               3, 8, "duplicate object key near '\"mode\"'");
}
END_TEST

START_TEST(test_top_level_not_object) {
    expect_one("\n  [\"mode\", \"shared\"]\n", false, 2, 3,
               "the top level must be an object");
}
END_TEST

START_TEST(test_wrong_type) {
    expect_one("{\n  \"mode\": \"shared\",\n  \"mtu\": \"1500\"\n}\n", false, 3,
               10, "'mtu' must be an integer from 576 to 9216");
    expect_one("{\n  \"mode\": \"shared\",\n  \"dhcp\": \"yes\"\n}\n", false, 3,
               11, "'dhcp' must be true or false");
    expect_one("{\n  \"mode\": \"shared\",\n  \"description\": 7\n}\n", false,
               3, 18, "'description' must be a string");
    expect_one("{\"mode\": \"host\", \"allowed_users\": \"root\"}", false, 1,
               35, "'allowed_users' must be an array of user names and uids");
}
END_TEST

START_TEST(test_mtu_out_of_range) {
    expect_one("{\"mode\": \"host\", \"mtu\": 575}", false, 1, 25,
               "'mtu' must be an integer from 576 to 9216");
    expect_one("{\"mode\": \"host\", \"mtu\": 9217}", false, 1, 25,
               "'mtu' must be an integer from 576 to 9216");
}
END_TEST

START_TEST(test_unknown_mode) {
    expect_one("{\n  \"mode\": \"bridged\"\n}\n", false, 2, 11,
               "'mode' must be \"shared\" or \"host\"");
}
END_TEST

START_TEST(test_bad_address) {
    expect_one(
        "{\n  \"mode\": \"shared\",\n  \"subnet\": \"192.168.300.1\"\n}\n",
        false, 3, 13, "'subnet': not an IPv4 address: \"192.168.300.1\"");
}
END_TEST

START_TEST(test_unusable_subnet) {
    expect_one("{\"mode\": \"host\", \"subnet\": \"127.0.0.1\"}", false, 1, 28,
               "'subnet': 127.0.0.1 cannot be a network's subnet");
    expect_one("{\"mode\": \"host\", \"subnet\": \"10.0.0.255\"}", false, 1, 28,
               "'subnet': 10.0.0.255 is a broadcast address");
}
END_TEST

START_TEST(test_bad_mask) {
    expect_one("{\n  \"mode\": \"shared\",\n  \"subnet\": \"10.1.0.1\",\n"
               "  \"mask\": \"255.0.255.0\"\n}\n",
               false, 4, 11,
               "'mask': not a netmask from /1 to /30: \"255.0.255.0\"");
    expect_one("{\"mode\": \"host\", \"subnet\": \"10.1.0.1\", "
               "\"mask\": \"255.255.255.254\"}",
               false, 1, 48,
               "'mask': not a netmask from /1 to /30: \"255.255.255.254\"");
}
END_TEST

START_TEST(test_mask_without_subnet) {
    expect_one("{\"mode\": \"host\", \"mask\": \"255.255.0.0\"}", false, 1, 26,
               "'mask' needs 'subnet'");
}
END_TEST

START_TEST(test_unknown_key) {
    expect_one(
        "{\n  \"mode\": \"shared\",\n  \"allowed_user\": [\"root\"]\n}\n",
        false, 3, 3, "unknown key 'allowed_user'");
    expect_one("{\"mode\": \"host\", \"a'\\n\": 1}", false, 1, 18,
               "unknown key 'a\\'\\u000a'");
}
END_TEST

START_TEST(test_unknown_user_and_group) {
    struct network_config config;
    struct problems got;

    ck_assert_int_eq(
        apply_text(
            "{\n  \"mode\": \"shared\",\n"
            "  \"allowed_users\": [0, \"vmnet-broker-no-such-user\"],\n"
            "  \"allowed_groups\": [\"vmnet-broker-no-such-group\", -1]\n"
            "}\n",
            false, &config, &got),
        3);
    ck_assert_problem(&got, 0, 3, 24,
                      "'allowed_users'[1]: no such user "
                      "\"vmnet-broker-no-such-user\"");
    ck_assert_problem(&got, 1, 4, 22,
                      "'allowed_groups'[0]: no such group "
                      "\"vmnet-broker-no-such-group\"");
    ck_assert_problem(&got, 2, 4, 52,
                      "'allowed_groups'[1]: -1 is not a valid gid");
}
END_TEST

START_TEST(test_description_too_long) {
    char text[1024];
    char description[NETWORK_DESCRIPTION_MAX + 2];

    memset(description, 'x', NETWORK_DESCRIPTION_MAX + 1);
    description[NETWORK_DESCRIPTION_MAX + 1] = '\0';
    snprintf(text, sizeof(text),
             "{\"mode\": \"host\", \"description\": \"%s\"}", description);
    expect_one(text, false, 1, 33, "'description': longer than 256 bytes");
}
END_TEST

START_TEST(test_dhcp_range) {
    expect_one(
        "{\"mode\": \"host\",\n"
        " \"dhcp_range\": {\"start\": \"10.0.0.5\", \"end\": \"10.0.0.9\"}"
        "\n}",
        false, 2, 16, "'dhcp_range' needs a static 'subnet'");
    expect_one(
        "{\"mode\": \"host\", \"subnet\": \"10.0.0.1\",\n"
        " \"dhcp_range\": {\"start\": \"10.0.0.9\", \"end\": \"10.0.0.5\"}"
        "\n}",
        false, 2, 16, "'dhcp_range': 'start' 10.0.0.9 is after 'end' 10.0.0.5");
    expect_one(
        "{\"mode\": \"host\", \"subnet\": \"10.0.0.1\",\n"
        " \"dhcp_range\": {\"start\": \"10.0.0.1\", \"end\": \"10.0.0.5\"}"
        "\n}",
        false, 2, 26,
        "'dhcp_range'.'start': 10.0.0.1 is the gateway of 10.0.0.0/24");
    expect_one("{\"mode\": \"host\", \"subnet\": \"10.0.0.1\",\n"
               " \"dhcp_range\": {\"start\": \"10.0.0.2\"}\n}",
               false, 2, 16, "'dhcp_range': missing 'end'");
}
END_TEST

START_TEST(test_ipv6_prefix) {
    expect_one("{\"mode\": \"host\", \"ipv6_prefix\": \"2001:db8::\"}", false,
               1, 33,
               "'ipv6_prefix': \"2001:db8::\" is not a unique local "
               "(fd00::/8) prefix");
    expect_one("{\"mode\": \"host\", \"ipv6_prefix\": \"fd00::/64\"}", false, 1,
               33, "'ipv6_prefix': not an IPv6 address: \"fd00::/64\"");
    expect_one("{\"mode\": \"host\", \"ipv6_prefix\": \"fd00::1\"}", false, 1,
               33, "'ipv6_prefix': \"fd00::1\" has bits set past /64");
    expect_one("{\"mode\": \"host\", \"ipv6_prefix\": \"fd00::\", "
               "\"ipv6_prefix_length\": 48}",
               false, 1, 65, "'ipv6_prefix_length' must be 64");
    expect_one("{\"mode\": \"host\", \"ipv6_prefix_length\": 64}", false, 1, 40,
               "'ipv6_prefix_length' needs 'ipv6_prefix'");
}
END_TEST

START_TEST(test_reservation_outside_subnet) {
    expect_one("{\n  \"mode\": \"shared\",\n  \"subnet\": \"192.168.50.0\",\n"
               "  \"dhcp_reservations\": [\n"
               "    {\"mac_address\": \"52:54:00:00:00:01\", "
               "\"ip_address\": \"192.168.51.10\"}\n  ]\n}\n",
               false, 5, 56,
               "'dhcp_reservations'[0].'ip_address': 192.168.51.10 is "
               "outside 192.168.50.0/24");
}
END_TEST

START_TEST(test_reservation_needs_subnet) {
    expect_one("{\"mode\": \"host\", \"dhcp_reservations\": [\n"
               "  {\"mac_address\": \"52:54:00:00:00:01\", "
               "\"ip_address\": \"192.168.51.10\"}]}",
               false, 1, 39, "'dhcp_reservations' needs a static 'subnet'");
}
END_TEST

START_TEST(test_reservation_duplicates_and_bad_mac) {
    struct network_config config;
    struct problems got;

    ck_assert_int_eq(
        apply_text("{\"mode\": \"host\", \"subnet\": \"10.0.0.1\",\n"
                   "\"dhcp_reservations\": [\n"
                   "{\"mac_address\": \"52:54:00:00:00:01\", "
                   "\"ip_address\": \"10.0.0.10\"},\n"
                   "{\"mac_address\": \"52:54:00:00:00:01\", "
                   "\"ip_address\": \"10.0.0.11\"},\n"
                   "{\"mac_address\": \"52:54:00:00:00:02\", "
                   "\"ip_address\": \"10.0.0.10\"},\n"
                   "{\"mac_address\": \"52:54:00:00:00\", "
                   "\"ip_address\": \"10.0.0.12\"},\n"
                   "{\"mac_address\": \"01:00:5e:00:00:01\", "
                   "\"ip_address\": \"10.0.0.13\", \"name\": \"x\"}\n"
                   "]}",
                   false, &config, &got),
        5);
    ck_assert_problem(&got, 0, 4, 17,
                      "'dhcp_reservations'[1].'mac_address': reserved twice");
    ck_assert_problem(
        &got, 1, 5, 52,
        "'dhcp_reservations'[2].'ip_address': 10.0.0.10 reserved twice");
    ck_assert_problem(&got, 2, 6, 17,
                      "'dhcp_reservations'[3].'mac_address': not a MAC "
                      "address: \"52:54:00:00:00\"");
    ck_assert_problem(&got, 3, 7, 17,
                      "'dhcp_reservations'[4].'mac_address': "
                      "\"01:00:5e:00:00:01\" is a multicast address");
    ck_assert_problem(&got, 4, 7, 65,
                      "'dhcp_reservations'[4]: unknown key 'name'");
}
END_TEST

START_TEST(test_port_forward_on_host_network) {
    expect_one("{\n  \"mode\": \"host\",\n  \"subnet\": \"192.168.50.0\",\n"
               "  \"port_forwarding\": [\n"
               "    {\"protocol\": \"tcp\", \"host_port\": 8080, "
               "\"guest_address\": \"192.168.50.10\", \"guest_port\": 80}\n"
               "  ]\n}\n",
               false, 4, 22,
               "'port_forwarding': only a \"shared\" network forwards ports");
}
END_TEST

START_TEST(test_port_forward_problems) {
    struct network_config config;
    struct problems got;

    ck_assert_int_eq(
        apply_text("{\"mode\": \"shared\", \"subnet\": \"10.0.0.0\",\n"
                   "\"port_forwarding\": [\n"
                   "{\"protocol\": \"tcp\", \"host_port\": 80, "
                   "\"guest_address\": \"10.0.0.5\", \"guest_port\": 80},\n"
                   "{\"protocol\": \"tcp\", \"host_port\": 80, "
                   "\"guest_address\": \"10.0.0.6\", \"guest_port\": 80},\n"
                   "{\"protocol\": \"udp\", \"host_port\": 80, "
                   "\"guest_address\": \"10.0.0.1\", \"guest_port\": 0},\n"
                   "{\"protocol\": \"sctp\", \"host_port\": 70000}\n"
                   "]}",
                   false, &config, &got),
        7);
    ck_assert_problem(&got, 0, 4, 34,
                      "'port_forwarding'[1].'host_port': tcp port 80 "
                      "forwarded twice");
    ck_assert_problem(&got, 1, 5, 55,
                      "'port_forwarding'[2].'guest_address': 10.0.0.1 is the "
                      "gateway of 10.0.0.0/24");
    ck_assert_problem(
        &got, 2, 5, 81,
        "'port_forwarding'[2].'guest_port' must be an integer from 1 to 65535");
    ck_assert_problem(&got, 3, 6, 1,
                      "'port_forwarding'[3]: missing 'guest_address'");
    ck_assert_problem(&got, 4, 6, 1,
                      "'port_forwarding'[3]: missing 'guest_port'");
    ck_assert_problem(&got, 5, 6, 14,
                      "'port_forwarding'[3].'protocol' must be \"tcp\" or "
                      "\"udp\"");
    ck_assert_problem(&got, 6, 6, 35,
                      "'port_forwarding'[3].'host_port' must be an integer "
                      "from 1 to 65535");
}
END_TEST

START_TEST(test_every_problem_reported_in_file_order) {
    struct network_config config;
    struct problems got;

    ck_assert_int_eq(apply_text("{\n"
                                "  \"mtu\": 10,\n"
                                "  \"subnet\": \"10.0.0.256\",\n"
                                "  \"mode\": \"nat\",\n"
                                "  \"persistent\": 1,\n"
                                "  \"colour\": \"blue\"\n"
                                "}\n",
                                false, &config, &got),
                     5);
    ck_assert_problem(&got, 0, 2, 10,
                      "'mtu' must be an integer from 576 to 9216");
    ck_assert_problem(&got, 1, 3, 13,
                      "'subnet': not an IPv4 address: \"10.0.0.256\"");
    ck_assert_problem(&got, 2, 4, 11, "'mode' must be \"shared\" or \"host\"");
    ck_assert_problem(&got, 3, 5, 17, "'persistent' must be true or false");
    ck_assert_problem(&got, 4, 6, 3, "unknown key 'colour'");
}
END_TEST

START_TEST(test_unreadable_file) {
    struct network_config config, before;
    struct problems got = {0};
    char path[PATH_MAX * 2];

    network_config_init(&config, "net", NETWORK_MODE_SHARED);
    before = config;
    file_path("absent.json", path, sizeof(path));
    ck_assert_int_eq(config_file_apply(path, false, &config, collect, &got), 1);
    ck_assert_problem(&got, 0, 1, 1, "cannot read: No such file or directory");
    file_path("directory.json", path, sizeof(path));
    ck_assert_int_eq(mkdir(path, 0700), 0);
    memset(&got, 0, sizeof(got));
    ck_assert_int_eq(config_file_apply(path, false, &config, NULL, NULL), 1);
    ck_assert_int_eq(config_file_apply(path, false, &config, collect, &got), 1);
    ck_assert_problem(&got, 0, 1, 1, "cannot read: is a directory");
    ck_assert_mem_eq(&config, &before, sizeof(config));
}
END_TEST

START_TEST(test_lookup) {
    struct config_dir *configs = config_dir_new(dir);
    struct network_config config;

    ck_assert_ptr_nonnull(configs);
    write_file("lab.json", "{\"mode\": \"host\", \"mtu\": 1400}");
    write_file("broken.json", "{\"mode\": \"host\", \"mtu\": true}");
    write_file("shared.json", "{\"mtu\": 1280}");

    memset(&config, 0, sizeof(config));
    ck_assert_int_eq(config_dir_ops.lookup(configs, "lab", &config, NULL),
                     BROKER_OK);
    ck_assert_str_eq(config.name, "lab");
    ck_assert_int_eq(config.mode, NETWORK_MODE_HOST);
    ck_assert_uint_eq(config.mtu, 1400);

    ck_assert_int_eq(config_dir_ops.lookup(configs, "shared", &config, NULL),
                     BROKER_OK);
    ck_assert_str_eq(config.name, "shared");
    ck_assert_int_eq(config.mode, NETWORK_MODE_SHARED);
    ck_assert_uint_eq(config.mtu, 1280);

    ck_assert_int_eq(config_dir_ops.lookup(configs, "host", &config, NULL),
                     BROKER_OK);
    ck_assert_str_eq(config.name, "host");
    ck_assert_int_eq(config.mode, NETWORK_MODE_HOST);
    ck_assert_uint_eq(config.mtu, 0);

    // Failures leave *out alone.
    ck_assert_int_eq(config_dir_ops.lookup(configs, "missing", &config, NULL),
                     BROKER_ERR_NOT_FOUND);
    ck_assert_int_eq(config_dir_ops.lookup(configs, "broken", &config, NULL),
                     BROKER_ERR_CREATE_FAILURE);
    ck_assert_int_eq(config_dir_ops.lookup(configs, "../lab", &config, NULL),
                     BROKER_ERR_NOT_FOUND);
    ck_assert_str_eq(config.name, "host");

    // Each lookup reads the file again.
    write_file("lab.json", "{\"mode\": \"shared\"}");
    ck_assert_int_eq(config_dir_ops.lookup(configs, "lab", &config, NULL),
                     BROKER_OK);
    ck_assert_int_eq(config.mode, NETWORK_MODE_SHARED);
    ck_assert_uint_eq(config.mtu, 0);
    config_dir_free(configs);
    config_dir_free(NULL);
}
END_TEST

START_TEST(test_lookup_without_directory) {
    char missing[PATH_MAX * 2];
    struct config_dir *configs;
    struct network_config config;

    snprintf(missing, sizeof(missing), "%s/nothing-here", dir);
    configs = config_dir_new(missing);
    ck_assert_ptr_nonnull(configs);
    ck_assert_int_eq(config_dir_ops.lookup(configs, "shared", &config, NULL),
                     BROKER_OK);
    ck_assert_int_eq(config.mode, NETWORK_MODE_SHARED);
    ck_assert_int_eq(config_dir_ops.lookup(configs, "lab", &config, NULL),
                     BROKER_ERR_NOT_FOUND);
    config_dir_free(configs);
}
END_TEST

// Runs config_dir_check on path; returns its count and stores its output.
static int check_output(const char *path, char **output) {
    size_t size;
    FILE *out = open_memstream(output, &size);
    int problems;

    ck_assert_ptr_nonnull(out);
    problems = config_dir_check(path, out);
    ck_assert_int_eq(fclose(out), 0);
    return problems;
}

START_TEST(test_check_counts_every_problem) {
    char expected[PATH_MAX * 5];
    char *output = NULL;

    write_file("good.json", "{\"mode\": \"host\"}");
    write_file("bad.json", "{\n  \"mode\": \"bridged\",\n  \"mtu\": 1\n}\n");
    write_file("-dash.json", "{\"mode\": \"host\"}");
    write_file("host.json", "{\"subnet\": \"10.9.0.1\"}");
    write_file("notes.txt", "not a network");
    write_file("syntax.json", "{\"mode\": \"host\",}");

    ck_assert_int_eq(check_output(dir, &output), 4);
    snprintf(expected, sizeof(expected),
             "%s/-dash.json:1:1: \"-dash\" is not a valid network name (1 to "
             "64 of A-Z a-z 0-9 _ . -, starting with a letter or digit)\n"
             "%s/bad.json:2:11: 'mode' must be \"shared\" or \"host\"\n"
             "%s/bad.json:3:10: 'mtu' must be an integer from 576 to 9216\n"
             "%s/syntax.json:1:17: string or '}' expected near '}'\n",
             dir, dir, dir, dir);
    ck_assert_str_eq(output, expected);
    free(output);
}
END_TEST

START_TEST(test_check_clean_and_missing_directory) {
    char missing[PATH_MAX * 2];
    char expected[PATH_MAX * 3];
    char *output = NULL;

    ck_assert_int_eq(check_output(dir, &output), 0);
    ck_assert_str_eq(output, "");
    free(output);

    snprintf(missing, sizeof(missing), "%s/nothing-here", dir);
    ck_assert_int_eq(check_output(missing, &output), 0);
    snprintf(expected, sizeof(expected),
             "%s: no such directory: only the built-in networks\n", missing);
    ck_assert_str_eq(output, expected);
    free(output);
}
END_TEST

START_TEST(test_persistent_names) {
    char missing[PATH_MAX * 2];
    char **names = NULL;
    size_t n = 99;

    write_file("zeta.json", "{\"mode\": \"host\", \"persistent\": true}");
    write_file("alpha.json", "{\"mode\": \"shared\", \"persistent\": true}");
    write_file("brief.json", "{\"mode\": \"host\", \"persistent\": false}");
    write_file("plain.json", "{\"mode\": \"host\"}");
    write_file("invalid.json", "{\"persistent\": true}");
    write_file("-bad-name.json", "{\"mode\": \"host\", \"persistent\": true}");
    write_file("shared.json", "{\"persistent\": true}");

    ck_assert_int_eq(config_dir_persistent_names(dir, &names, &n), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(names[0], "alpha");
    ck_assert_str_eq(names[1], "shared");
    ck_assert_str_eq(names[2], "zeta");
    config_dir_free_names(names, n);

    snprintf(missing, sizeof(missing), "%s/nothing-here", dir);
    n = 99;
    ck_assert_int_eq(config_dir_persistent_names(missing, &names, &n), 0);
    ck_assert_uint_eq(n, 0);
    config_dir_free_names(names, n);
    config_dir_free_names(NULL, 0);
}
END_TEST

START_TEST(test_persistent_names_error_leaves_outputs) {
    char *sentinel[1];
    char **names = sentinel;
    size_t n = 99;

    write_file("file", "x");
    snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/file");
    ck_assert_int_lt(config_dir_persistent_names(dir, &names, &n), 0);
    ck_assert_ptr_eq(names, sentinel);
    ck_assert_uint_eq(n, 99);
    // Leave dir naming the directory again for the teardown.
    dir[strlen(dir) - strlen("/file")] = '\0';
}
END_TEST

static Suite *config_suite(void) {
    Suite *s = suite_create("config");
    TCase *file = tcase_create("file");
    TCase *directory = tcase_create("directory");

    tcase_add_checked_fixture(file, make_dir, remove_dir);
    tcase_add_test(file, test_every_key);
    tcase_add_test(file, test_minimal_file_keeps_defaults);
    tcase_add_test(file, test_empty_allow_list_restricts);
    tcase_add_test(file, test_subnet_without_mask_is_a_24);
    tcase_add_test(file, test_builtin_override_without_mode);
    tcase_add_test(file, test_mode_required_unless_builtin);
    tcase_add_test(file, test_syntax_error);
    tcase_add_test(file, test_empty_file);
    tcase_add_test(file, test_duplicate_key);
    tcase_add_test(file, test_top_level_not_object);
    tcase_add_test(file, test_wrong_type);
    tcase_add_test(file, test_mtu_out_of_range);
    tcase_add_test(file, test_unknown_mode);
    tcase_add_test(file, test_bad_address);
    tcase_add_test(file, test_unusable_subnet);
    tcase_add_test(file, test_bad_mask);
    tcase_add_test(file, test_mask_without_subnet);
    tcase_add_test(file, test_unknown_key);
    tcase_add_test(file, test_unknown_user_and_group);
    tcase_add_test(file, test_description_too_long);
    tcase_add_test(file, test_dhcp_range);
    tcase_add_test(file, test_ipv6_prefix);
    tcase_add_test(file, test_reservation_outside_subnet);
    tcase_add_test(file, test_reservation_needs_subnet);
    tcase_add_test(file, test_reservation_duplicates_and_bad_mac);
    tcase_add_test(file, test_port_forward_on_host_network);
    tcase_add_test(file, test_port_forward_problems);
    tcase_add_test(file, test_every_problem_reported_in_file_order);
    tcase_add_test(file, test_unreadable_file);
    suite_add_tcase(s, file);

    tcase_add_checked_fixture(directory, make_dir, remove_dir);
    tcase_add_test(directory, test_lookup);
    tcase_add_test(directory, test_lookup_without_directory);
    tcase_add_test(directory, test_check_counts_every_problem);
    tcase_add_test(directory, test_check_clean_and_missing_directory);
    tcase_add_test(directory, test_persistent_names);
    tcase_add_test(directory, test_persistent_names_error_leaves_outputs);
    suite_add_tcase(s, directory);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(config_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
