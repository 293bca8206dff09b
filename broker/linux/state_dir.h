// SPDX-License-Identifier: Apache-2.0
// The broker's state directory: the per-host secret guest MACs are keyed with.
#ifndef VMNET_BROKER_LINUX_STATE_DIR_H
#define VMNET_BROKER_LINUX_STATE_DIR_H

#include <stdint.h>

#include "core/guest_addr.h"

#define STATE_DIR_DEFAULT "/var/lib/vmnet-broker"
#define STATE_MAC_KEY_FILE "mac-key"

// Reads <dir>/mac-key into key, making dir (0700) and the file (0600, fresh
// random bytes) when missing. Refuses (negative errno, logged with the fix)
// a directory or file that is a symlink, not owned by the broker's user, or
// that others may write (the directory) or read (the file): the secret is
// what keeps other users from predicting guest MACs.
int state_dir_mac_key(const char *dir, uint8_t key[GUEST_MAC_KEY_LEN]);

#endif
