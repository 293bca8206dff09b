// SPDX-License-Identifier: Apache-2.0
// Pure subnet arithmetic, kept apart from how a platform lists its routes.
#include "subnet.h"

#include <stdio.h>

uint32_t ipv4_prefix_mask(unsigned len) {
    return len == 0 ? 0 : (len >= 32 ? 0xffffffffu : ~(0xffffffffu >> len));
}

unsigned ipv4_mask_len(uint32_t mask) {
    unsigned len = 0;
    while (len < 32 && (mask & (0x80000000u >> len)))
        len++;
    return len;
}

bool ipv4_prefix_overlaps(struct ipv4_prefix a, struct ipv4_prefix b) {
    // Two prefixes overlap iff they agree on the shorter one's bits.
    unsigned len = a.len < b.len ? a.len : b.len;
    uint32_t mask = ipv4_prefix_mask(len);
    return (a.address & mask) == (b.address & mask);
}

bool subnet_choose(const struct ipv4_prefix *used, size_t n_used,
                   struct ipv4_prefix *out) {
    return subnet_choose_in(SUBNET_FIRST, SUBNET_LAST, used, n_used, out);
}

bool subnet_pool_range(struct ipv4_prefix pool, uint32_t *first,
                       uint32_t *last) {
    uint32_t mask = ipv4_prefix_mask(pool.len);
    if (pool.len < 8 || pool.len > 24)
        return false;
    *first = pool.address & mask;
    *last = (*first | ~mask) & 0xffffff00u;
    return true;
}

bool ipv4_prefix_parse(const char *text, struct ipv4_prefix *out) {
    char address[16];
    unsigned len;
    char tail;
    uint32_t parsed;

    if (sscanf(text, "%15[0-9.]/%2u%c", address, &len, &tail) != 2 ||
        len > 32 || !ipv4_parse(address, &parsed))
        return false;
    out->address = parsed;
    out->len = len;
    return true;
}

bool subnet_choose_in(uint32_t first, uint32_t last,
                      const struct ipv4_prefix *used, size_t n_used,
                      struct ipv4_prefix *out) {
    // 64-bit so that a range ending at 255.255.255.0 cannot wrap.
    for (uint64_t candidate = first; candidate <= last; candidate += 0x100) {
        struct ipv4_prefix c = {(uint32_t)candidate, 24};
        bool taken = false;
        for (size_t i = 0; i < n_used && !taken; i++)
            taken = used[i].len > 0 && ipv4_prefix_overlaps(c, used[i]);
        if (!taken) {
            *out = c;
            return true;
        }
    }
    return false;
}

const char *ipv4_format(uint32_t a, char *buf) {
    snprintf(buf, 16, "%u.%u.%u.%u", (a >> 24) & 0xff, (a >> 16) & 0xff,
             (a >> 8) & 0xff, a & 0xff);
    return buf;
}

bool ipv4_parse(const char *s, uint32_t *address) {
    unsigned part[4];
    char tail;
    // Strict: four decimal parts, nothing after; leading zeros allowed.
    if (sscanf(s, "%3u.%3u.%3u.%3u%c", &part[0], &part[1], &part[2], &part[3],
               &tail) != 4)
        return false;
    for (int i = 0; i < 4; i++) {
        if (part[i] > 255)
            return false;
    }
    for (const char *p = s; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || *p == '.'))
            return false;
    }
    *address = (part[0] << 24) | (part[1] << 16) | (part[2] << 8) | part[3];
    return true;
}
