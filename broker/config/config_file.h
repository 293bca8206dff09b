// SPDX-License-Identifier: Apache-2.0
// One network's JSON configuration file: parsing and validation.
#ifndef VMNET_BROKER_CONFIG_CONFIG_FILE_H
#define VMNET_BROKER_CONFIG_CONFIG_FILE_H

#include <stdbool.h>

#include "../core/network_config.h"

// Receives one problem: line and column are 1-based (columns in characters),
// message is short and names the key it is about.
typedef void (*config_problem_fn)(void *ctx, const char *path, int line,
                                  int column, const char *message);

// Applies the file at path on top of *config, which the caller filled with
// defaults (network_config_init() or network_config_builtin()). builtin tells
// whether the name is a built-in: then "mode" is optional, otherwise it is
// required. Reports every problem through report (may be NULL), in the order
// they appear in the file, and returns how many there were. *config is only
// modified when the return is 0. See docs/configuration.md for the keys.
int config_file_apply(const char *path, bool builtin,
                      struct network_config *config, config_problem_fn report,
                      void *report_ctx);

#endif
