// SPDX-License-Identifier: Apache-2.0
// Who may use a network: allow-lists of users and groups.
#ifndef VMNET_BROKER_CORE_POLICY_H
#define VMNET_BROKER_CORE_POLICY_H

#include <stdbool.h>

#include "network_config.h"
#include "peer.h"

// Root is always allowed; a network without allow-lists is open; otherwise
// the peer's uid must be listed, or its primary or a supplementary group.
bool policy_allows(const struct network_config *config,
                   const struct peer_cred *cred);

#endif
