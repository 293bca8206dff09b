// SPDX-License-Identifier: Apache-2.0
// Defaults, built-ins and validity rules for network configurations.
#include "network_config.h"

#include <string.h>

void network_config_init(struct network_config *config, const char *name,
                         enum network_mode mode) {
    memset(config, 0, sizeof(*config));
    strncpy(config->name, name, NETWORK_NAME_MAX);
    config->mode = mode;
    config->mask = 0xffffff00u;
    config->dhcp = true;
    config->ipv6 = true;
    config->ipv6_prefix_len = 64;
    config->anti_spoofing = true;
}

static bool name_char_valid(char c, bool first) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9'))
        return true;
    return !first && (c == '_' || c == '.' || c == '-');
}

bool network_name_valid(const char *name) {
    size_t len = 0;
    if (name == NULL)
        return false;
    for (; name[len] != '\0'; len++) {
        if (len >= NETWORK_NAME_MAX || !name_char_valid(name[len], len == 0))
            return false;
    }
    return len > 0;
}

bool network_config_builtin(const char *name, struct network_config *out) {
    if (strcmp(name, "shared") == 0) {
        network_config_init(out, name, NETWORK_MODE_SHARED);
        return true;
    }
    if (strcmp(name, "host") == 0) {
        network_config_init(out, name, NETWORK_MODE_HOST);
        return true;
    }
    return false;
}

bool ipv4_mask_valid(uint32_t mask) {
    uint32_t inverted = ~mask;
    // A contiguous mask inverted is 2^n - 1, so adding one clears it.
    if ((inverted & (inverted + 1)) != 0)
        return false;
    // /31 and /32 leave no room for a gateway and a guest.
    return mask != 0 && inverted >= 3;
}

const char *network_mode_name(enum network_mode mode) {
    switch (mode) {
    case NETWORK_MODE_SHARED:
        return "shared";
    case NETWORK_MODE_HOST:
        return "host";
    }
    return "unknown";
}

uint32_t network_gateway(uint32_t subnet, uint32_t mask) {
    uint32_t network = subnet & mask;
    uint32_t broadcast = network | ~mask;
    return subnet != network && subnet != broadcast ? subnet : network + 1;
}

uint32_t network_config_gateway(const struct network_config *config) {
    return network_gateway(config->subnet, config->mask);
}

void network_default_dhcp_range(uint32_t network, uint32_t mask,
                                uint32_t gateway, uint32_t *start,
                                uint32_t *end) {
    uint32_t broadcast = (network & mask) | ~mask;
    network &= mask;
    *start = gateway == network + 1 ? network + 2 : network + 1;
    *end = gateway == broadcast - 1 ? broadcast - 2 : broadcast - 1;
}
