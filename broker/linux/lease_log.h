// SPDX-License-Identifier: Apache-2.0
// At --verbose: each network's DHCP leases logged as guests take and drop them.
#ifndef VMNET_BROKER_LINUX_LEASE_LOG_H
#define VMNET_BROKER_LINUX_LEASE_LOG_H

#include <systemd/sd-event.h>

struct dnsmasq;
struct lease_log;

// Starts logging the leases of d's network, named network, at debug level:
// each lease taken, renewed with another address or name, and dropped, as
// dnsmasq rewrites its lease file (an inotify watch on directory, shared by
// every network: one instance however many networks there are). Does
// nothing, and stores NULL, unless debug messages are logged. On success
// stores a new lease log in *out (free with lease_log_free() before d goes).
// Returns 0 or a negative errno (logged); logging leases is a convenience,
// so callers go on without it.
int lease_log_start(sd_event *event, const struct dnsmasq *d,
                    const char *network, const char *directory,
                    const char *lease_file, struct lease_log **out);

// Stops watching and frees log. Accepts NULL.
void lease_log_free(struct lease_log *log);

#endif
