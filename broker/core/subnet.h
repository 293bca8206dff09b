// SPDX-License-Identifier: Apache-2.0
// Choosing a free IPv4 subnet the way vmnet does, from what the host uses.
#ifndef VMNET_BROKER_CORE_SUBNET_H
#define VMNET_BROKER_CORE_SUBNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// An address and prefix length; address in host byte order.
struct ipv4_prefix {
    uint32_t address;
    unsigned len;
};

// First and last candidates: 192.168.64.0/24 .. 192.168.255.0/24.
#define SUBNET_FIRST 0xc0a84000u
#define SUBNET_LAST 0xc0a8ff00u

uint32_t ipv4_prefix_mask(unsigned len);
// Prefix length of a valid contiguous mask.
unsigned ipv4_mask_len(uint32_t mask);
bool ipv4_prefix_overlaps(struct ipv4_prefix a, struct ipv4_prefix b);

// Stores in *out the first /24 from SUBNET_FIRST on that overlaps none of
// used[] and returns true; false when every candidate is taken. Prefixes of
// length 0 (default routes) are ignored: they overlap everything.
bool subnet_choose(const struct ipv4_prefix *used, size_t n_used,
                   struct ipv4_prefix *out);

// As subnet_choose(), over the /24s from first to last (each a /24's
// network address).
bool subnet_choose_in(uint32_t first, uint32_t last,
                      const struct ipv4_prefix *used, size_t n_used,
                      struct ipv4_prefix *out);
// The first and last /24 of a pool (--subnet-pool); false unless its
// length is 8 to 24.
bool subnet_pool_range(struct ipv4_prefix pool, uint32_t *first,
                       uint32_t *last);
// Parses "A.B.C.D/LEN"; false if text is not one.
bool ipv4_prefix_parse(const char *text, struct ipv4_prefix *out);

// Formats address as dotted quad into buf (at least 16 bytes).
const char *ipv4_format(uint32_t address, char *buf);
// Parses a dotted quad; false if s is not one.
bool ipv4_parse(const char *s, uint32_t *address);

#endif
