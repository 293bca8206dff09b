// SPDX-License-Identifier: Apache-2.0
// Who may use a network: root, open networks, and user and group lists.
#include <check.h>
#include <stdlib.h>

#include "core/policy.h"

#define LISTED_UID 2001u
#define LISTED_GID 3001u
#define OTHER_UID 1000u
#define OTHER_GID 1000u

static struct network_config open_network(void) {
    struct network_config config;
    network_config_init(&config, "lab", NETWORK_MODE_HOST);
    return config;
}

static struct network_config users_only(void) {
    struct network_config config = open_network();
    config.restricted = true;
    config.allowed_users[config.n_allowed_users++] = 1500;
    config.allowed_users[config.n_allowed_users++] = LISTED_UID;
    return config;
}

static struct network_config groups_only(void) {
    struct network_config config = open_network();
    config.restricted = true;
    config.allowed_groups[config.n_allowed_groups++] = 1600;
    config.allowed_groups[config.n_allowed_groups++] = LISTED_GID;
    return config;
}

static struct peer_cred cred_of(uint32_t uid, uint32_t gid) {
    struct peer_cred cred = {.pid = 42, .uid = uid, .gid = gid};
    return cred;
}

START_TEST(test_open_network_allows_everyone) {
    struct network_config config = open_network();
    struct peer_cred nobody = cred_of(65534, 65534);
    struct peer_cred user = cred_of(OTHER_UID, OTHER_GID);

    ck_assert(policy_allows(&config, &nobody));
    ck_assert(policy_allows(&config, &user));
}
END_TEST

// "allowed_users": [] is root only, not everyone (a hole once).
START_TEST(test_empty_list_is_root_only) {
    struct network_config config = open_network();
    struct peer_cred nobody = cred_of(65534, 65534);
    struct peer_cred root = cred_of(0, 0);

    config.restricted = true;
    ck_assert(!policy_allows(&config, &nobody));
    ck_assert(policy_allows(&config, &root));
}
END_TEST

START_TEST(test_root_is_always_allowed) {
    struct network_config users = users_only();
    struct network_config groups = groups_only();
    struct peer_cred root = cred_of(0, 0);
    // Root by uid, whatever its group.
    struct peer_cred root_other_group = cred_of(0, OTHER_GID);

    ck_assert(policy_allows(&users, &root));
    ck_assert(policy_allows(&groups, &root));
    ck_assert(policy_allows(&users, &root_other_group));
}
END_TEST

START_TEST(test_root_group_is_not_root) {
    struct network_config users = users_only();
    struct peer_cred group_zero = cred_of(OTHER_UID, 0);

    ck_assert(!policy_allows(&users, &group_zero));
}
END_TEST

START_TEST(test_listed_user_allowed) {
    struct network_config config = users_only();
    struct peer_cred listed = cred_of(LISTED_UID, OTHER_GID);
    struct peer_cred first = cred_of(1500, OTHER_GID);

    ck_assert(policy_allows(&config, &listed));
    ck_assert(policy_allows(&config, &first));
}
END_TEST

START_TEST(test_unlisted_user_refused) {
    struct network_config config = users_only();
    struct peer_cred other = cred_of(OTHER_UID, OTHER_GID);

    ck_assert(!policy_allows(&config, &other));
}
END_TEST

START_TEST(test_primary_group_allowed) {
    struct network_config config = groups_only();
    struct peer_cred member = cred_of(OTHER_UID, LISTED_GID);

    ck_assert(policy_allows(&config, &member));
}
END_TEST

START_TEST(test_supplementary_group_allowed) {
    struct network_config config = groups_only();
    struct peer_cred member = cred_of(OTHER_UID, OTHER_GID);

    member.groups[member.n_groups++] = 27;
    member.groups[member.n_groups++] = 100;
    member.groups[member.n_groups++] = LISTED_GID;
    ck_assert(policy_allows(&config, &member));
}
END_TEST

START_TEST(test_unlisted_groups_refused) {
    struct network_config config = groups_only();
    struct peer_cred other = cred_of(OTHER_UID, OTHER_GID);

    other.groups[other.n_groups++] = 27;
    other.groups[other.n_groups++] = 100;
    ck_assert(!policy_allows(&config, &other));
}
END_TEST

START_TEST(test_groups_beyond_n_groups_ignored) {
    struct network_config config = groups_only();
    struct peer_cred other = cred_of(OTHER_UID, OTHER_GID);

    // Only the first n_groups entries are the peer's.
    other.groups[0] = 27;
    other.groups[1] = LISTED_GID;
    other.n_groups = 1;
    ck_assert(!policy_allows(&config, &other));
}
END_TEST

START_TEST(test_users_and_groups_are_not_mixed_up) {
    struct network_config users = users_only();
    struct network_config groups = groups_only();
    // A gid that happens to equal a listed uid, and the other way round.
    struct peer_cred gid_as_uid = cred_of(OTHER_UID, LISTED_UID);
    struct peer_cred uid_as_gid = cred_of(LISTED_GID, OTHER_GID);

    gid_as_uid.groups[gid_as_uid.n_groups++] = LISTED_UID;
    ck_assert(!policy_allows(&users, &gid_as_uid));
    ck_assert(!policy_allows(&groups, &uid_as_gid));
}
END_TEST

START_TEST(test_either_list_suffices) {
    struct network_config config = users_only();
    struct peer_cred by_user = cred_of(LISTED_UID, OTHER_GID);
    struct peer_cred by_group = cred_of(OTHER_UID, LISTED_GID);
    struct peer_cred neither = cred_of(OTHER_UID, OTHER_GID);

    config.allowed_groups[config.n_allowed_groups++] = LISTED_GID;
    ck_assert(policy_allows(&config, &by_user));
    ck_assert(policy_allows(&config, &by_group));
    ck_assert(!policy_allows(&config, &neither));
}
END_TEST

START_TEST(test_full_lists) {
    struct network_config config = open_network();
    struct peer_cred last = cred_of(5000 + NETWORK_POLICY_MAX - 1, OTHER_GID);
    struct peer_cred past = cred_of(5000 + NETWORK_POLICY_MAX, OTHER_GID);

    config.restricted = true;
    for (uint32_t i = 0; i < NETWORK_POLICY_MAX; i++)
        config.allowed_users[config.n_allowed_users++] = 5000 + i;
    ck_assert(policy_allows(&config, &last));
    ck_assert(!policy_allows(&config, &past));
}
END_TEST

static Suite *policy_suite(void) {
    Suite *s = suite_create("policy");
    TCase *rules = tcase_create("rules");

    tcase_add_test(rules, test_open_network_allows_everyone);
    tcase_add_test(rules, test_root_is_always_allowed);
    tcase_add_test(rules, test_empty_list_is_root_only);
    tcase_add_test(rules, test_root_group_is_not_root);
    tcase_add_test(rules, test_listed_user_allowed);
    tcase_add_test(rules, test_unlisted_user_refused);
    tcase_add_test(rules, test_primary_group_allowed);
    tcase_add_test(rules, test_supplementary_group_allowed);
    tcase_add_test(rules, test_unlisted_groups_refused);
    tcase_add_test(rules, test_groups_beyond_n_groups_ignored);
    tcase_add_test(rules, test_users_and_groups_are_not_mixed_up);
    tcase_add_test(rules, test_either_list_suffices);
    tcase_add_test(rules, test_full_lists);
    suite_add_tcase(s, rules);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(policy_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
