// SPDX-License-Identifier: Apache-2.0
// A guest's MAC (keyed, so other users cannot predict it) and its addresses.
#ifndef VMNET_BROKER_CORE_GUEST_ADDR_H
#define VMNET_BROKER_CORE_GUEST_ADDR_H

#include <stddef.h>
#include <stdint.h>

#define GUEST_MAC_KEY_LEN 16

// SipHash-2-4 of data under key (the reference algorithm, little-endian).
uint64_t siphash24(const uint8_t key[GUEST_MAC_KEY_LEN], const void *data,
                   size_t len);

// The guest MAC of slot index of uid on network_name: 02:76 (locally
// administered unicast, 'v' for vmnet) then 32 bits of a keyed hash. Stable
// for the same key, network, uid and index; without the key (a per-host
// secret) another user cannot tell which MAC a victim's VM will use.
void guest_mac(const uint8_t key[GUEST_MAC_KEY_LEN], const char *network_name,
               uint32_t uid, unsigned index, uint8_t mac[6]);

// The address SLAAC gives mac in prefix (a /64): the modified EUI-64
// interface identifier (RFC 4291 appendix A), what a guest uses unless it
// is configured for stable-privacy or temporary addresses.
void guest_slaac(const uint8_t prefix[16], const uint8_t mac[6],
                 uint8_t out[16]);

#endif
