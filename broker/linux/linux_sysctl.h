// SPDX-License-Identifier: Apache-2.0
// Kernel settings a router needs, changed without breaking the host's own IPv6.
#ifndef VMNET_BROKER_LINUX_LINUX_SYSCTL_H
#define VMNET_BROKER_LINUX_LINUX_SYSCTL_H

#include <stdbool.h>

// Enables IPv4 forwarding and, when ipv6 is true, IPv6 forwarding. Before
// turning IPv6 forwarding on, sets accept_ra=2 on every interface that would
// otherwise stop accepting router advertisements because of it (accept_ra=1
// with forwarding off), except loopback and the broker's own bridges. Logs
// each change. Returns 0 or a negative errno (logged).
int sysctl_enable_forwarding(bool ipv6);

// Sets route_localnet=1 on ifname, so that connections the host makes to a
// port forward on 127.0.0.1 can be sent on to a guest behind ifname. The
// firewall drops loopback addresses arriving from the broker's bridges, which
// this setting would otherwise let guests reach. Returns 0 or a negative
// errno (logged); -EINVAL when ifname is not an interface name.
int sysctl_enable_route_localnet(const char *ifname);

#endif
