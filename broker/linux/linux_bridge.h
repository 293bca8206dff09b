// SPDX-License-Identifier: Apache-2.0
// Bridge links over netlink: names, stale marks, create, address, up, delete.
#ifndef VMNET_BROKER_LINUX_LINUX_BRIDGE_H
#define VMNET_BROKER_LINUX_LINUX_BRIDGE_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

struct nl_sock;

// Every bridge the default broker instance makes is named with this prefix;
// another instance's prefix carries its id (linux_instance.h).
#define LINUX_BRIDGE_PREFIX "vmb-"

// The 32-bit FNV-1a hash of s, which shortens long names into bridge names.
uint32_t linux_bridge_name_hash(const char *s);

// Writes into out the bridge interface name of the network called network
// (a valid network name) in this broker instance: the instance's prefix P
// (linux_instance_bridge_prefix(): "vmb-", or "vmb<id>-") + the name when
// it fits in IFNAMSIZ - 1 (11 characters after "vmb-", 7 after "vmb<id>-"),
// otherwise P + its first characters (5, or 1) + "-" + the low 20 bits of
// linux_bridge_name_hash(network) as 5 lowercase hex digits.
void linux_bridge_name(const char *network, char out[IFNAMSIZ]);

// True when a link is one this broker instance made: a bridge with the
// instance's prefix whose alias is a valid network name that derives
// exactly that ifname. Another instance's bridges never pass.
// kind and alias may be NULL (the link has none).
bool linux_bridge_is_marked(const char *ifname, const char *kind,
                            const char *alias);

// Fills mac with a random locally administered unicast address. Returns false
// (mac untouched) when no randomness could be read.
bool linux_bridge_random_mac(uint8_t mac[6]);

// The functions below return 0 or a negative errno (libnl's codes are
// converted where libnl is called: nl_errno.h), for strerror().

// Creates a bridge, down, with the given name, alias, MAC address and MTU,
// and stores its ifindex in *ifindex. -EEXIST when ifname is taken. On
// failure no link is left behind.
int linux_bridge_add(struct nl_sock *sock, const char *ifname,
                     const char *alias, const uint8_t mac[6], unsigned mtu,
                     int *ifindex);

// Adds address/prefix_len (host byte order) with its broadcast address.
int linux_bridge_add_address(struct nl_sock *sock, int ifindex,
                             uint32_t address, unsigned prefix_len);

// Adds an IPv6 address (no duplicate address detection).
int linux_bridge_add_address6(struct nl_sock *sock, int ifindex,
                              const uint8_t address[16], unsigned prefix_len);
// Turns transmit checksum offload off, so that replies the host sends on
// the bridge (DHCP above all) leave with a complete UDP checksum: guests
// behind vhost-net with older DHCP clients drop replies left to offload.
int linux_bridge_disable_tx_checksum(const char *ifname);

// Sets the link up.
int linux_bridge_set_up(struct nl_sock *sock, int ifindex);

// Marks the bridge port ifindex isolated: it exchanges frames with the
// bridge itself (the gateway) and non-isolated ports only, never with another
// isolated port.
int linux_bridge_port_set_isolated(struct nl_sock *sock, int ifindex);

// Deletes the link at ifindex if it is still called ifname, so an index the
// kernel reused for someone else's interface is never touched.
// -ENODEV when there is no such link any more.
int linux_bridge_delete(struct nl_sock *sock, int ifindex, const char *ifname);

#endif
