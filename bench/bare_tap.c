// SPDX-License-Identifier: Apache-2.0
// The open_interface baseline: a TAP device made in-process on a bridge.
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "bench.h"

int bare_tap_open(struct nl_sock *sock, unsigned index, int bridge_ifindex) {
    struct ifreq ifr = {0};
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    unsigned ifindex;
    int status = -1;

    if (fd < 0)
        goto out;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "btap%u", index);
    // The flags of the broker's devices, which QEMU's vhost needs.
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0)
        goto out;
    ifindex = if_nametoindex(ifr.ifr_name);
    if (ifindex == 0 ||
        !bare_bridge_set_port(sock, (int)ifindex, bridge_ifindex))
        goto out;
    status = fd;
    fd = -1;
out:
    // The device goes with its last descriptor.
    if (fd >= 0)
        close(fd);
    return status;
}
