// SPDX-License-Identifier: Apache-2.0
// The broker instance's marks: which bridges, TAPs and nftables table are its.
#ifndef VMNET_BROKER_LINUX_LINUX_INSTANCE_H
#define VMNET_BROKER_LINUX_LINUX_INSTANCE_H

#include <stdbool.h>

// The runtime directory whose broker keeps the plain names.
#define LINUX_INSTANCE_DEFAULT_DIR "/run/vmnet-broker"
// Overrides the id derived from the runtime directory: "default" (the plain
// names) or 4 lowercase hex digits; unset or empty: derived.
#define LINUX_INSTANCE_ENV "VMNET_BROKER_INSTANCE"
// Hex digits of an instance id.
#define LINUX_INSTANCE_ID_LEN 4

// Every broker on one host marks what it makes with its instance, so that
// two brokers on two runtime directories in one network namespace never
// take each other's bridges, TAPs, table or rules for their own. The
// instance of LINUX_INSTANCE_DEFAULT_DIR (and every broker until this is
// called: the backend's own tests) has the empty id and the plain names:
// bridges "vmb-<network>", TAP alias "vmnet-broker-tap ...", table
// "vmnet-broker". Any other runtime directory's id is the low 16 bits of
// the FNV-1a hash of its canonical path (realpath(), so a link to the same
// directory is the same instance) as 4 hex digits, and its names carry it:
// bridges "vmb<id>-...", TAP alias "vmnet-broker-tap-<id> ...", table
// "vmnet-broker-<id>". env (NULL: no override) is LINUX_INSTANCE_ENV's
// value. Called once at start, before anything is made or removed. Returns
// 0, or -EINVAL for a malformed override (nothing changed).
int linux_instance_init(const char *runtime_dir, const char *env);

// The id: "" for the default instance, else 4 hex digits.
const char *linux_instance_id(void);

// The prefix of every bridge name of this instance: "vmb-" or "vmb<id>-".
const char *linux_instance_bridge_prefix(void);

// This instance's nftables table name (families inet and netdev).
const char *linux_instance_table(void);

// The first word of the alias of every TAP device of this instance.
const char *linux_instance_tap_mark(void);

// True when ifname has the bridge prefix of any instance, this one or
// another: "vmb-" or "vmb" + 4 lowercase hex digits + "-".
bool linux_instance_any_bridge(const char *ifname);

#endif
