// SPDX-License-Identifier: Apache-2.0
// End-to-end topology: guests and an outside as network namespaces.
#ifndef VMNET_BROKER_TESTS_HARNESS_TOPOLOGY_H
#define VMNET_BROKER_TESTS_HARNESS_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

// The test's own namespace (harness_enter_netns()) plays the host. The
// outside is joined to it by a veth pair addressed from TEST-NET-2 and the
// IPv6 documentation prefix, which exist only inside these namespaces.
#define TOPOLOGY_HOST_IPV4 "198.51.100.1"
#define TOPOLOGY_OUTSIDE_IPV4 "198.51.100.2"
#define TOPOLOGY_HOST_IPV6 "2001:db8::1"
#define TOPOLOGY_OUTSIDE_IPV6 "2001:db8::2"
// The name of the veth end inside every namespace the topology makes.
#define TOPOLOGY_LINK "eth0"

#define TOPOLOGY_NS_MAX 8
#define TOPOLOGY_NS_NAME_MAX 32

struct topology {
    // Where the DHCP client's script is written.
    char dir[96];
    size_t n;
    char names[TOPOLOGY_NS_MAX][TOPOLOGY_NS_NAME_MAX];
};

// Mounts a private tmpfs on /run/netns in the test's mount namespace, so
// that the namespaces made with `ip netns add` vanish with the test process
// even when a failed assertion ends it without cleaning up, and writes the
// DHCP client's script into dir. Returns NULL on failure.
struct topology *topology_new(const char *dir);

// Deletes every namespace the topology made (the veth pairs go with them).
// Accepts NULL.
void topology_free(struct topology *t);

// Makes the outside: a namespace with TOPOLOGY_OUTSIDE_IPV4/IPV6 whose
// default routes point back at the host, and makes it the host's default
// route for both families. Returns the namespace's name, or NULL.
const char *topology_add_outside(struct topology *t);

// Makes a guest: a namespace whose TOPOLOGY_LINK is a veth pair with the
// other end enslaved to bridge, with mac as its address when not NULL.
// Returns once both ends are up and running; the namespace's name, or NULL.
const char *topology_add_guest(struct topology *t, const char *bridge,
                               const char *mac);

// What a guest's DHCP client was given.
struct topology_lease {
    char address[16];
    unsigned prefix_len;
    char router[16];
    char dns[16];
};

// Runs busybox udhcpc in ns until it holds a lease (hostname sent when not
// NULL), which configures TOPOLOGY_LINK and the default route. False if no
// lease was obtained.
bool topology_dhcp(const struct topology *t, const char *ns,
                   const char *hostname, struct topology_lease *lease);

// Waits for ns's TOPOLOGY_LINK to hold a usable (no longer tentative)
// global IPv6 address inside prefix/64 and copies it to address. False
// if none comes within HARNESS_WAIT_SECONDS.
bool topology_wait_ipv6(const char *ns, const char *prefix, char *address,
                        size_t size);

// Runs argv (argv[0] looked up in PATH) in namespace ns (NULL: the test's
// own) for at most seconds; stores its stdout as a malloc'd string when
// output is not NULL. Returns its exit code, or -1 if it did not exit by
// itself in time (it is then killed) or could not run.
int topology_run(const char *ns, const char *const *argv, double seconds,
                 char **output);

// Below, a NULL ns is the test's own namespace: the host.

// True once a ping from ns to address is answered, trying for seconds.
bool topology_ping(const char *ns, const char *address, double seconds);

// A TCP server in a namespace, run by a child process, that greets every
// client and reports the client's address.
struct topology_listener {
    pid_t pid;
    int fd;
    size_t len;
    char buf[512];
};

// Starts a listener on port (IPv4 and IPv6) in ns. Returns once it
// listens; false on failure.
bool topology_listen(const char *ns, unsigned port,
                     struct topology_listener *l);

// Waits up to seconds for the listener's next client and copies its address
// (IPv4 dotted quad, or IPv6) into peer. False if none came.
bool topology_listener_peer(struct topology_listener *l, double seconds,
                            char *peer, size_t size);

// Stops the listener. Accepts one that never started.
void topology_listener_stop(struct topology_listener *l);

// True if a TCP connection from ns to address:port is made within seconds
// and the listener's greeting arrives on it.
bool topology_connect(const char *ns, const char *address, unsigned port,
                      double seconds);

// topology_connect() in two halves, so that probes expected to fail can
// wait out their time together: starts the attempt in a child process and
// returns its pid (-1 on failure) ...
pid_t topology_connect_start(const char *ns, const char *address, unsigned port,
                             double seconds);
// ... and waits for its result; seconds is what was passed to start.
bool topology_connect_wait(pid_t pid, double seconds);

#endif
