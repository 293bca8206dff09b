// SPDX-License-Identifier: Apache-2.0
// The broker instance's marks: which bridges, TAPs and nftables table are its.
#include "linux_instance.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linux_bridge.h"
#include "linux_tap.h"

#define TABLE_BASE "vmnet-broker"

// Set once at start, read by every thread afterwards.
static char id[LINUX_INSTANCE_ID_LEN + 1];
static char bridge_prefix[sizeof(LINUX_BRIDGE_PREFIX) + LINUX_INSTANCE_ID_LEN] =
    LINUX_BRIDGE_PREFIX;
static char table[sizeof(TABLE_BASE) + 1 + LINUX_INSTANCE_ID_LEN] = TABLE_BASE;
static char tap_mark[sizeof(TAP_ALIAS_MARK) + 1 + LINUX_INSTANCE_ID_LEN] =
    TAP_ALIAS_MARK;

static bool is_id(const char *s) {
    return strlen(s) == LINUX_INSTANCE_ID_LEN &&
           strspn(s, "0123456789abcdef") == LINUX_INSTANCE_ID_LEN;
}

int linux_instance_init(const char *runtime_dir, const char *env) {
    char canonical[PATH_MAX];

    if (env != NULL && env[0] != '\0') {
        if (strcmp(env, "default") == 0)
            id[0] = '\0';
        else if (is_id(env))
            snprintf(id, sizeof(id), "%s", env);
        else
            return -EINVAL;
    } else {
        // A directory that cannot be resolved (unusable, or not made yet)
        // is named as given: the same text gives the same instance.
        if (realpath(runtime_dir, canonical) == NULL)
            snprintf(canonical, sizeof(canonical), "%s", runtime_dir);
        if (strcmp(canonical, LINUX_INSTANCE_DEFAULT_DIR) == 0)
            id[0] = '\0';
        else
            snprintf(id, sizeof(id), "%04x",
                     (unsigned)(linux_bridge_name_hash(canonical) & 0xffffu));
    }
    if (id[0] == '\0') {
        snprintf(bridge_prefix, sizeof(bridge_prefix), "%s",
                 LINUX_BRIDGE_PREFIX);
        snprintf(table, sizeof(table), "%s", TABLE_BASE);
        snprintf(tap_mark, sizeof(tap_mark), "%s", TAP_ALIAS_MARK);
    } else {
        // "vmb" + id + "-": never "vmb-...", so no plain name matches.
        snprintf(bridge_prefix, sizeof(bridge_prefix), "vmb%s-", id);
        snprintf(table, sizeof(table), "%s-%s", TABLE_BASE, id);
        snprintf(tap_mark, sizeof(tap_mark), "%s-%s", TAP_ALIAS_MARK, id);
    }
    return 0;
}

const char *linux_instance_id(void) { return id; }

const char *linux_instance_bridge_prefix(void) { return bridge_prefix; }

const char *linux_instance_table(void) { return table; }

const char *linux_instance_tap_mark(void) { return tap_mark; }

bool linux_instance_any_bridge(const char *ifname) {
    char digits[LINUX_INSTANCE_ID_LEN + 1];

    if (strncmp(ifname, LINUX_BRIDGE_PREFIX, strlen(LINUX_BRIDGE_PREFIX)) == 0)
        return true;
    if (strncmp(ifname, "vmb", 3) != 0 ||
        strlen(ifname) < 3 + LINUX_INSTANCE_ID_LEN + 1 ||
        ifname[3 + LINUX_INSTANCE_ID_LEN] != '-')
        return false;
    memcpy(digits, ifname + 3, LINUX_INSTANCE_ID_LEN);
    digits[LINUX_INSTANCE_ID_LEN] = '\0';
    return is_id(digits);
}
