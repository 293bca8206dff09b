// SPDX-License-Identifier: Apache-2.0
// A guest's MAC (keyed, so other users cannot predict it) and its addresses.
#include "guest_addr.h"

#include <stdio.h>
#include <string.h>

// Locally administered unicast, then 'v' for vmnet: clear of QEMU's and
// libvirt's 52:54:00 and of Docker's 02:42, so a guest's address says who
// gave it out.
static const uint8_t guest_mac_prefix[2] = {0x02, 0x76};

static uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

static uint64_t load_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#define SIPROUND                                                               \
    do {                                                                       \
        v0 += v1;                                                              \
        v1 = rotl(v1, 13);                                                     \
        v1 ^= v0;                                                              \
        v0 = rotl(v0, 32);                                                     \
        v2 += v3;                                                              \
        v3 = rotl(v3, 16);                                                     \
        v3 ^= v2;                                                              \
        v0 += v3;                                                              \
        v3 = rotl(v3, 21);                                                     \
        v3 ^= v0;                                                              \
        v2 += v1;                                                              \
        v1 = rotl(v1, 17);                                                     \
        v1 ^= v2;                                                              \
        v2 = rotl(v2, 32);                                                     \
    } while (0)

uint64_t siphash24(const uint8_t key[GUEST_MAC_KEY_LEN], const void *data,
                   size_t len) {
    const uint8_t *in = data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
    uint64_t last = (uint64_t)len << 56;
    size_t full = len - len % 8;

    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = load_le64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t i = full; i < len; i++)
        last |= (uint64_t)in[i] << (8 * (i - full));
    v3 ^= last;
    SIPROUND;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

void guest_mac(const uint8_t key[GUEST_MAC_KEY_LEN], const char *network_name,
               uint32_t uid, unsigned index, uint8_t mac[6]) {
    // Room for a name of NETWORK_NAME_MAX and two numbers. The name cannot
    // hold '/', so the fields cannot run into each other.
    char input[128];
    int len = snprintf(input, sizeof(input), "%s/%u/%u", network_name,
                       (unsigned)uid, index);
    size_t used = len < 0                        ? 0
                  : (size_t)len >= sizeof(input) ? sizeof(input) - 1
                                                 : (size_t)len;
    uint64_t hash = siphash24(key, input, used);

    mac[0] = guest_mac_prefix[0];
    mac[1] = guest_mac_prefix[1];
    mac[2] = (uint8_t)(hash >> 24);
    mac[3] = (uint8_t)(hash >> 16);
    mac[4] = (uint8_t)(hash >> 8);
    mac[5] = (uint8_t)hash;
}

void guest_slaac(const uint8_t prefix[16], const uint8_t mac[6],
                 uint8_t out[16]) {
    memcpy(out, prefix, 8);
    // The universal/local bit flipped, ff:fe in the middle.
    out[8] = mac[0] ^ 0x02;
    out[9] = mac[1];
    out[10] = mac[2];
    out[11] = 0xff;
    out[12] = 0xfe;
    out[13] = mac[3];
    out[14] = mac[4];
    out[15] = mac[5];
}
