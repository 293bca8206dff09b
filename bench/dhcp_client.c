// SPDX-License-Identifier: Apache-2.0
// A guest's DHCP client: busybox udhcpc, timed until its lease.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

#define SCRIPT_NAME "udhcpc-script"
#define LEASE_TAG "bench-lease "
// udhcpc gives up by itself after 10 discovers a second apart; this bounds
// it in case it does not.
#define DHCP_SECONDS 15.0

// The lease is printed before anything is configured, so that the bench
// times the DHCP exchange and not the configuration. deconfig does
// nothing: udhcpc runs it before its first discover, so every command in
// it would delay the lease; the bench clears addresses itself.
static const char SCRIPT[] =
    "#!/bin/sh\n"
    "# busybox udhcpc's script for the bench's guests.\n"
    "case \"$1\" in\n"
    "bound|renew)\n"
    "    echo \"" LEASE_TAG "$ip\"\n"
    "    ip -4 addr flush dev \"$interface\"\n"
    "    ip addr add \"$ip/$mask\" dev \"$interface\" || exit 1\n"
    "    ip route replace default via \"$router\" dev \"$interface\" || "
    "exit 1\n"
    "    ;;\n"
    "esac\n"
    "exit 0\n";

bool dhcp_client_init(struct dhcp_client *client) {
    FILE *f;
    bool written;

    client->script[0] = '\0';
    strcpy(client->dir, "/tmp/vmnet-broker-bench-dhcp-XXXXXX");
    if (mkdtemp(client->dir) == NULL) {
        client->dir[0] = '\0';
        return false;
    }
    snprintf(client->script, sizeof(client->script), "%s/" SCRIPT_NAME,
             client->dir);
    f = fopen(client->script, "w");
    if (f == NULL)
        return false;
    written = fputs(SCRIPT, f) >= 0;
    return fclose(f) == 0 && written && chmod(client->script, 0755) == 0;
}

void dhcp_client_free(struct dhcp_client *client) {
    if (client == NULL || client->dir[0] == '\0')
        return;
    if (client->script[0] != '\0')
        unlink(client->script);
    rmdir(client->dir);
    client->dir[0] = '\0';
}

bool dhcp_client_lease(const struct dhcp_client *client,
                       const struct netns *guest, const char *link,
                       uint64_t *leased_ns, char address[16]) {
    const char *argv[] = {"busybox", "udhcpc", "-q",           "-n", "-f",
                          "-i",      link,     "-t",           "10", "-T",
                          "1",       "-s",     client->script, NULL};
    uint64_t deadline = bench_now_ns() + (uint64_t)(DHCP_SECONDS * 1e9);
    char line[128];
    uint64_t at;
    bool found;
    int code;
    int fd;
    pid_t pid = netns_spawn(guest, argv, &fd);

    if (pid < 0)
        return false;
    found = netns_read_line(fd, LEASE_TAG, deadline, line, sizeof(line));
    at = bench_now_ns();
    // Exits once the script has configured the lease; the pipe stays open
    // until then so that nothing the script says is cut off.
    code = netns_wait(pid, deadline);
    close(fd);
    if (!found || code != 0) {
        fprintf(stderr, "bench: no DHCP lease on %s (udhcpc: %d)\n", link,
                code);
        return false;
    }
    *leased_ns = at;
    snprintf(address, 16, "%.15s", line + strlen(LEASE_TAG));
    return true;
}
