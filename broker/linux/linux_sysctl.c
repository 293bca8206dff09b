// SPDX-License-Identifier: Apache-2.0
// Kernel settings a router needs, changed without breaking the host's own IPv6.
#include "linux_sysctl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "linux_instance.h"

#define IPV4_FORWARD "/proc/sys/net/ipv4/ip_forward"
#define IPV4_CONF "/proc/sys/net/ipv4/conf"
#define IPV6_CONF "/proc/sys/net/ipv6/conf"

// Reads the integer in a /proc/sys file. Returns 0 or a negative errno.
static int sysctl_read(const char *path, int *value) {
    char text[32];
    char *end;
    ssize_t n;
    long parsed;
    int status = -EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        status = -errno;
        goto out;
    }
    n = read(fd, text, sizeof(text) - 1);
    if (n < 0) {
        status = -errno;
        goto out;
    }
    text[n] = '\0';
    errno = 0;
    parsed = strtol(text, &end, 10);
    if (errno != 0 || end == text || (*end != '\n' && *end != '\0'))
        goto out;
    *value = (int)parsed;
    status = 0;
out:
    if (fd >= 0)
        close(fd);
    return status;
}

static int sysctl_write(const char *path, int value) {
    char text[32];
    int length = snprintf(text, sizeof(text), "%d\n", value);
    int status = -EIO;
    int fd = open(path, O_WRONLY | O_CLOEXEC);

    if (fd < 0) {
        status = -errno;
        goto out;
    }
    // A short write leaves errno alone.
    errno = 0;
    if (write(fd, text, (size_t)length) != (ssize_t)length) {
        status = errno != 0 ? -errno : -EIO;
        goto out;
    }
    status = 0;
out:
    if (fd >= 0)
        close(fd);
    return status;
}

// Writes value to path unless it is there already, logging the change as
// name (the sysctl's dotted name). Writing the same value again is not
// harmless: forwarding=1 purges router-learned routes each time it is
// written, and ip_forward resets every interface's forwarding setting.
static int sysctl_ensure(const char *path, const char *name, int value) {
    int current;
    int status = sysctl_read(path, &current);

    if (status == 0 && current == value)
        return 0;
    if (status == 0)
        status = sysctl_write(path, value);
    if (status < 0) {
        log_error("sysctl: cannot set %s=%d: %s", name, value,
                  strerror(-status));
        return status;
    }
    log_info("sysctl: set %s=%d (was %d)", name, value, current);
    return 0;
}

// Reads net.ipv6.conf.<ifname>.<key>.
static int ipv6_conf_read(const char *ifname, const char *key, int *value) {
    char path[128];

    if ((size_t)snprintf(path, sizeof(path), "%s/%s/%s", IPV6_CONF, ifname,
                         key) >= sizeof(path))
        return -ENAMETOOLONG;
    return sysctl_read(path, value);
}

// An interface keeps accepting router advertisements once forwarding is on
// only with accept_ra=2. Interfaces already forwarding ignore them by the
// host's own choice, and the broker's bridges (every instance's) must ignore
// them so that guests cannot steer the host's routes: those are left alone.
static bool needs_accept_ra_2(const char *ifname) {
    int accept_ra;
    int forwarding;

    if (strcmp(ifname, "all") == 0 || strcmp(ifname, "default") == 0 ||
        strcmp(ifname, "lo") == 0 || ifname[0] == '.' ||
        linux_instance_any_bridge(ifname))
        return false;
    // An interface that vanished since the directory was read needs nothing.
    if (ipv6_conf_read(ifname, "accept_ra", &accept_ra) < 0 ||
        ipv6_conf_read(ifname, "forwarding", &forwarding) < 0)
        return false;
    return accept_ra == 1 && forwarding == 0;
}

static int keep_router_advertisements(void) {
    DIR *dir = opendir(IPV6_CONF);
    struct dirent *entry;
    int status = 0;

    if (dir == NULL) {
        status = -errno;
        log_error("sysctl: cannot read %s: %s", IPV6_CONF, strerror(errno));
        goto out;
    }
    while ((entry = readdir(dir)) != NULL && status == 0) {
        char path[PATH_MAX];
        char name[PATH_MAX];

        if (!needs_accept_ra_2(entry->d_name))
            continue;
        snprintf(path, sizeof(path), "%s/%s/accept_ra", IPV6_CONF,
                 entry->d_name);
        snprintf(name, sizeof(name), "net.ipv6.conf.%s.accept_ra",
                 entry->d_name);
        status = sysctl_ensure(path, name, 2);
    }
out:
    if (dir != NULL)
        closedir(dir);
    return status;
}

int sysctl_enable_forwarding(bool ipv6) {
    int status = sysctl_ensure(IPV4_FORWARD, "net.ipv4.ip_forward", 1);

    if (status < 0 || !ipv6)
        return status;
    // Order matters: turning forwarding on purges the default routes learned
    // from router advertisements at once, except on interfaces that have
    // accept_ra=2 by then.
    status = keep_router_advertisements();
    if (status < 0)
        return status;
    return sysctl_ensure(IPV6_CONF "/all/forwarding",
                         "net.ipv6.conf.all.forwarding", 1);
}

int sysctl_enable_route_localnet(const char *ifname) {
    char path[128];
    char name[128];

    // The name becomes a path: nothing that could climb out of the directory.
    if (ifname == NULL || ifname[0] == '\0' || ifname[0] == '.' ||
        strlen(ifname) >= IFNAMSIZ || strchr(ifname, '/') != NULL) {
        log_error("sysctl: invalid interface name for route_localnet");
        return -EINVAL;
    }
    snprintf(path, sizeof(path), "%s/%s/route_localnet", IPV4_CONF, ifname);
    snprintf(name, sizeof(name), "net.ipv4.conf.%s.route_localnet", ifname);
    return sysctl_ensure(path, name, 1);
}
