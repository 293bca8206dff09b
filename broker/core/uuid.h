// SPDX-License-Identifier: Apache-2.0
// Random (version 4) UUIDs naming each instance of a network.
#ifndef VMNET_BROKER_CORE_UUID_H
#define VMNET_BROKER_CORE_UUID_H

#include <stdbool.h>

// Writes a lowercase RFC 4122 version 4 UUID and a NUL into out (37 bytes).
// Returns false (out untouched) if no randomness could be read.
bool uuid_generate(char out[37]);

#endif
