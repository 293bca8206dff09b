// SPDX-License-Identifier: Apache-2.0
// What a network is meant to be: a built-in or a parsed configuration file.
#ifndef VMNET_BROKER_CORE_NETWORK_CONFIG_H
#define VMNET_BROKER_CORE_NETWORK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Network names: 1 to NETWORK_NAME_MAX characters from [A-Za-z0-9_.-],
// starting with a letter or digit. The name becomes a file name
// (<name>.json) and an interface alias, so nothing else is accepted.
#define NETWORK_NAME_MAX 64
#define NETWORK_DESCRIPTION_MAX 256
// Allow-list entries per network and per kind (users, groups).
#define NETWORK_POLICY_MAX 64
#define NETWORK_RESERVATIONS_MAX 64
#define NETWORK_PORT_FORWARDS_MAX 64

enum network_mode {
    NETWORK_MODE_SHARED = 0,
    NETWORK_MODE_HOST = 1,
};

struct dhcp_reservation {
    uint8_t mac[6];
    uint32_t address; // host byte order
};

struct port_forward {
    bool udp; // tcp when false
    uint16_t host_port;
    uint32_t guest_address; // host byte order
    uint16_t guest_port;
};

// All IPv4 addresses are in host byte order. Defaults are applied by
// network_config_init(); a config file overrides only what it names.
struct network_config {
    char name[NETWORK_NAME_MAX + 1];
    char description[NETWORK_DESCRIPTION_MAX + 1];
    enum network_mode mode;

    // Static subnet. "subnet" may be the network address or the gateway
    // address (vmnet accepts both forms); see network_config_gateway().
    bool has_subnet;
    uint32_t subnet;
    uint32_t mask;

    // 0 means "follow the host's default-route interface".
    unsigned mtu;

    bool dhcp;
    bool has_dhcp_range;
    uint32_t dhcp_start;
    uint32_t dhcp_end;

    bool ipv6;
    bool has_ipv6_prefix;
    uint8_t ipv6_prefix[16];
    unsigned ipv6_prefix_len;

    bool persistent;

    // Guests cannot impersonate each other (per-TAP source filtering, no
    // guest DHCP server or router advertisement). On unless a file says
    // "anti_spoofing": false.
    bool anti_spoofing;
    // Guests reach the gateway and beyond but not each other.
    bool port_isolation;

    size_t n_reservations;
    struct dhcp_reservation reservations[NETWORK_RESERVATIONS_MAX];
    size_t n_port_forwards;
    struct port_forward port_forwards[NETWORK_PORT_FORWARDS_MAX];

    // Policy. A network whose configuration names no allow-list is open to
    // every peer; once either list is given (even empty: "allowed_users":
    // []), only the ids listed in either, and root, may use it.
    bool restricted;
    size_t n_allowed_users;
    uint32_t allowed_users[NETWORK_POLICY_MAX];
    size_t n_allowed_groups;
    uint32_t allowed_groups[NETWORK_POLICY_MAX];
};

// Fills *config with the defaults for a network called name in mode.
void network_config_init(struct network_config *config, const char *name,
                         enum network_mode mode);

// True if name is a valid network name (see NETWORK_NAME_MAX).
bool network_name_valid(const char *name);

// Built-in networks: "shared" and "host". Returns false for other names.
bool network_config_builtin(const char *name, struct network_config *out);

// True when the mask is a contiguous IPv4 netmask between /1 and /30.
bool ipv4_mask_valid(uint32_t mask);

const char *network_mode_name(enum network_mode mode);

// The one rule for a network's gateway, shared by the config parser and
// every backend: "subnet" may name the network address or the gateway
// (vmnet accepts both); the network, broadcast or an unset address means
// the first host.
uint32_t network_gateway(uint32_t subnet, uint32_t mask);
// The gateway of config's static subnet (has_subnet must be set).
uint32_t network_config_gateway(const struct network_config *config);
// The default DHCP range of a subnet: every host but the gateway, from the
// first address after it (when it is the first host) to the last before it
// (when it is the last), else the whole host range.
void network_default_dhcp_range(uint32_t network, uint32_t mask,
                                uint32_t gateway, uint32_t *start,
                                uint32_t *end);

#endif
