// SPDX-License-Identifier: Apache-2.0
// The broker-wide settings file (/etc/vmnet-broker.json): pool and limits.
#ifndef VMNET_BROKER_CONFIG_SETTINGS_FILE_H
#define VMNET_BROKER_CONFIG_SETTINGS_FILE_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/subnet.h"
#include "config_file.h"

// Where the broker looks without --config.
#define SETTINGS_FILE_DEFAULT "/etc/vmnet-broker.json"

// What the file sets; a key it leaves out keeps its has_ flag false, and
// the command line's option or the built-in default applies.
struct broker_settings {
    bool has_subnet_pool;
    struct ipv4_prefix subnet_pool; // a length of 8 to 24
    bool has_idle_timeout;
    uint64_t idle_usec; // 0 to one year
    bool has_max_connections_per_user;
    unsigned max_connections_per_user; // 0 (no cap) to 1000000
};

// Reads the settings file at path: a JSON object with the keys
// "subnet_pool" ("A.B.C.D/LEN", LEN 8 to 24), "idle_timeout" (seconds, a
// number from 0 to 31536000) and "max_connections_per_user" (an integer
// from 0, no cap, to 1000000). A missing file is no problem (nothing is
// set). The file must be a regular file (a link is not followed), owned by
// root and writable by root only, like network files, in a directory that
// is root's and writable by root only (or sticky). Reports every problem
// as FILE:LINE:COLUMN through report (may be NULL), in file order, and
// returns how many there were; *out is only written when there were none.
int settings_file_load(const char *path, struct broker_settings *out,
                       config_problem_fn report, void *report_ctx);

#endif
