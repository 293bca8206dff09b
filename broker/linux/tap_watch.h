// SPDX-License-Identifier: Apache-2.0
// Watches the broker's TAP devices for holders that change their address.
#ifndef VMNET_BROKER_LINUX_TAP_WATCH_H
#define VMNET_BROKER_LINUX_TAP_WATCH_H

#include <systemd/sd-event.h>

struct tap_watch;

// Told which device was tampered with and what was done about it.
typedef void (*tap_watch_report_fn)(void *ctx, const char *ifname,
                                    const char *what);

// Listens to netlink link events on event's loop. The holder of a TAP
// descriptor may set the device's own address (SIOCSIFHWADDR needs no
// privilege on a TAP descriptor); set to another guest's MAC, the bridge
// would make it a local entry and that guest would be cut off. Every such
// change to a device the broker made (name and alias, linux_tap.h) is
// undone at once (a fresh TAP_OWN_MAC_FIRST address; the device is deleted
// if that fails) and reported. Returns 0 or a negative errno (logged).
int tap_watch_new(sd_event *event, tap_watch_report_fn report, void *ctx,
                  struct tap_watch **out);
void tap_watch_free(struct tap_watch *watch); // accepts NULL

#endif
