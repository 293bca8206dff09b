// SPDX-License-Identifier: Apache-2.0
// Allow-list checks, decided from the credentials the transport captured.
#include "policy.h"

static bool listed(const uint32_t *ids, size_t n, uint32_t id) {
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == id)
            return true;
    }
    return false;
}

bool policy_allows(const struct network_config *config,
                   const struct peer_cred *cred) {
    if (cred->uid == 0)
        return true;
    // Not the lists' lengths: an empty list written by an administrator
    // means "nobody but root", never "everybody".
    if (!config->restricted)
        return true;
    if (listed(config->allowed_users, config->n_allowed_users, cred->uid))
        return true;
    if (listed(config->allowed_groups, config->n_allowed_groups, cred->gid))
        return true;
    for (size_t i = 0; i < cred->n_groups; i++) {
        if (listed(config->allowed_groups, config->n_allowed_groups,
                   cred->groups[i]))
            return true;
    }
    return false;
}
