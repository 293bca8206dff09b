// SPDX-License-Identifier: Apache-2.0
// UUIDs from /dev/urandom, which every POSIX platform we target provides.
#include "uuid.h"

#include <stdint.h>
#include <stdio.h>

bool uuid_generate(char out[37]) {
    uint8_t b[16];
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = 0;

    if (f == NULL)
        return false;
    got = fread(b, 1, sizeof(b), f);
    fclose(f);
    if (got != sizeof(b))
        return false;
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); // version 4
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); // RFC 4122 variant
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
             b[11], b[12], b[13], b[14], b[15]);
    return true;
}
