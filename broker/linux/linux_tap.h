// SPDX-License-Identifier: Apache-2.0
// TAP devices on a network's bridge, handed to unprivileged VMs by descriptor.
#ifndef VMNET_BROKER_LINUX_LINUX_TAP_H
#define VMNET_BROKER_LINUX_LINUX_TAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Every TAP device the broker makes is named with this prefix.
#define LINUX_TAP_PREFIX "vmt-"

// The alias of every TAP device the broker makes: the mark, the owner's
// uid, the interface's index and the network's name, space-separated. The
// mark is the instance's (linux_instance_tap_mark()): this for the default
// instance, "vmnet-broker-tap-<id>" for another.
#define TAP_ALIAS_MARK "vmnet-broker-tap"
#define TAP_ALIAS_MAX 128
// The first byte of every TAP device's own address (never a guest's 02:76):
// an address without it was set by the descriptor's holder (tap_watch.h).
#define TAP_OWN_MAC_FIRST 0xfe

struct nl_sock;

struct tap_info {
    char name[16];  // the TAP interface name, "vmt-" + 8 hex digits
    uint8_t mac[6]; // the address the GUEST should use (not the TAP's own)
};

// Creates a TAP device (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, the form QEMU's
// "-netdev tap,fd=N,vhost=on" expects) owned by uid and gid, with the
// bridge's MTU, up and enslaved to bridge (an existing bridge ifname). The
// device is not persistent: it disappears when the last descriptor to it is
// closed. info->mac is a locally administered unicast address derived from
// network_name, uid and index under mac_key (GUEST_MAC_KEY_LEN bytes, the
// host's secret: core/guest_addr.h), so a VM keeps its address (and DHCP
// lease) from one run to the next and other users cannot predict it.
// Returns the descriptor (O_CLOEXEC; the caller owns it) and fills *info, or
// a negative errno, logged, with no device left behind and *info untouched.
int tap_open(const char *bridge, const char *network_name, uint32_t uid,
             uint32_t gid, unsigned index, const uint8_t *mac_key,
             struct tap_info *info);

// True when alias (NULL: none) is the mark of this broker instance's TAP
// devices followed by a space: another instance's mark never passes.
bool tap_alias_is_ours(const char *alias);

// Deletes every TAP device this broker instance made (marked by its alias) for
// network_name, or for any network when it is NULL: those a holder made
// persistent (TUNSETPERSIST) outlive their descriptor, and the others are
// useless once their bridge is gone. Returns how many were deleted, or a
// negative errno when the links cannot be listed (logged).
int tap_remove_marked(struct nl_sock *sock, const char *network_name);

// True when a link (its name, kind and alias; each may be NULL) is a TAP
// device the broker made: then *uid, *index and *network (a pointer into
// alias) say for whom and on which network.
bool tap_mark_parse(const char *ifname, const char *kind, const char *alias,
                    unsigned *uid, unsigned *index, const char **network);
// Makes every TAP device the broker made for network_name a port of the
// bridge bridge_ifindex again (up; isolated when isolate): for a bridge that
// was deleted behind the broker's back and made again. Returns how many were
// attached, or a negative errno when the links cannot be listed (logged).
int tap_reattach_marked(struct nl_sock *sock, const char *network_name,
                        int bridge_ifindex, bool isolate);

// Sends data as one SOCK_SEQPACKET datagram with fd attached by SCM_RIGHTS,
// without blocking. The caller keeps its own fd open and may close it as soon
// as this returns 0: the message in flight holds the device.
// Returns 0 or a negative errno (-EAGAIN when the socket is full, for the
// caller to queue and retry).
int tap_send_with_fd(int socket_fd, const void *data, size_t len, int fd);

#endif
