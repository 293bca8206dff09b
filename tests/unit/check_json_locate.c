// SPDX-License-Identifier: Apache-2.0
// Unit tests: finding the line and column of values and keys in JSON text.
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "config/json_locate.h"

struct position {
    bool found;
    int line;
    int column;
};

static struct position value_at(const char *text, const struct json_step *path,
                                size_t n) {
    struct position p = {false, -1, -1};
    p.found =
        json_locate_value(text, strlen(text), path, n, &p.line, &p.column);
    return p;
}

static struct position key_at(const char *text, const struct json_step *path,
                              size_t n) {
    struct position p = {false, -1, -1};
    p.found = json_locate_key(text, strlen(text), path, n, &p.line, &p.column);
    return p;
}

#define ck_assert_position(p, l, c)                                            \
    do {                                                                       \
        struct position got_ = (p);                                            \
        ck_assert(got_.found);                                                 \
        ck_assert_int_eq(got_.line, (l));                                      \
        ck_assert_int_eq(got_.column, (c));                                    \
    } while (0)

START_TEST(test_top_level_after_blank_lines) {
    ck_assert_position(value_at("\n\n  {}", NULL, 0), 3, 3);
    ck_assert_position(value_at("[1]", NULL, 0), 1, 1);
}
END_TEST

START_TEST(test_members_on_one_line) {
    const char *text = "{\"a\": 1, \"b\": true}";
    struct json_step a[] = {JSON_KEY("a")};
    struct json_step b[] = {JSON_KEY("b")};

    ck_assert_position(value_at(text, a, 1), 1, 7);
    ck_assert_position(key_at(text, a, 1), 1, 2);
    ck_assert_position(value_at(text, b, 1), 1, 15);
    ck_assert_position(key_at(text, b, 1), 1, 10);
}
END_TEST

START_TEST(test_nested_arrays_and_objects) {
    const char *text = "{\n"
                       "  \"subnet\": \"192.168.42.1\",\n"
                       "  \"port_forwarding\": [\n"
                       "    {\"protocol\": \"tcp\", \"guest_port\": 22},\n"
                       "    {\"protocol\": \"udp\",\n"
                       "     \"guest_port\": 53}\n"
                       "  ],\n"
                       "  \"matrix\": [[1, 2], [3, [4, 5]]]\n"
                       "}\n";
    struct json_step second_port[] = {JSON_KEY("port_forwarding"),
                                      JSON_INDEX(1), JSON_KEY("guest_port")};
    struct json_step first_item[] = {JSON_KEY("port_forwarding"),
                                     JSON_INDEX(0)};
    struct json_step deep[] = {JSON_KEY("matrix"), JSON_INDEX(1), JSON_INDEX(1),
                               JSON_INDEX(1)};

    ck_assert_position(value_at(text, second_port, 3), 6, 20);
    ck_assert_position(key_at(text, second_port, 3), 6, 6);
    ck_assert_position(value_at(text, first_item, 2), 4, 5);
    ck_assert_position(value_at(text, deep, 4), 8, 30);
}
END_TEST

START_TEST(test_strings_with_escaped_quotes_and_brackets) {
    // Brackets and quotes inside strings must not end the skipped values.
    const char *text = "{\"a\\\"b\": \"x\\\"}]y\", \"list\": [\"]\", {\"k\": "
                       "\"}\"}], \"c\": null}";
    struct json_step quoted_key[] = {JSON_KEY("a\"b")};
    struct json_step c[] = {JSON_KEY("c")};

    ck_assert_position(key_at(text, quoted_key, 1), 1, 2);
    ck_assert_position(value_at(text, quoted_key, 1), 1, 10);
    ck_assert_position(key_at(text, c, 1), 1, 47);
    ck_assert_position(value_at(text, c, 1), 1, 52);
}
END_TEST

START_TEST(test_unicode_escapes_match_keys) {
    const char *text = "{\"caf\\u00e9\": 1, \"\\ud83d\\ude00\": 2, "
                       "\"tab\\tslash\\/\": 3}";
    struct json_step cafe[] = {JSON_KEY("caf\xc3\xa9")};
    struct json_step smiley[] = {JSON_KEY("\xf0\x9f\x98\x80")};
    struct json_step escapes[] = {JSON_KEY("tab\tslash/")};

    ck_assert_position(value_at(text, cafe, 1), 1, 15);
    ck_assert_position(key_at(text, smiley, 1), 1, 18);
    ck_assert_position(value_at(text, escapes, 1), 1, 53);
}
END_TEST

START_TEST(test_columns_count_characters_like_jansson) {
    // The same document, one broken after "x": jansson's error column for
    // the stray ']' is where the locator puts the valid value.
    const char *valid = "{\"\xc3\xa9t\xc3\xa9\": \"\xe2\x82\xac\", \"x\": 0}";
    const char *broken = "{\"\xc3\xa9t\xc3\xa9\": \"\xe2\x82\xac\", \"x\": ]}";
    struct json_step x[] = {JSON_KEY("x")};
    json_error_t error;
    json_t *root = json_loads(broken, 0, &error);

    ck_assert_ptr_null(root);
    ck_assert_position(value_at(valid, x, 1), error.line, error.column);
    ck_assert_int_eq(error.column, 19);
}
END_TEST

START_TEST(test_multi_line_with_crlf) {
    const char *text = "{\r\n\t\"a\": [\r\n\t\t1,\r\n\t\t\"two\"\r\n\t]\r\n}";
    struct json_step second[] = {JSON_KEY("a"), JSON_INDEX(1)};

    ck_assert_position(value_at(text, second, 2), 4, 3);
    ck_assert_position(key_at(text, second, 1), 2, 2);
}
END_TEST

START_TEST(test_keys_must_match_exactly) {
    const char *text = "{\"ab\": 1, \"a\": 2}";
    struct json_step a[] = {JSON_KEY("a")};
    struct json_step abc[] = {JSON_KEY("abc")};

    ck_assert_position(value_at(text, a, 1), 1, 16);
    ck_assert(!value_at(text, abc, 1).found);
}
END_TEST

START_TEST(test_missing_paths_are_not_found) {
    const char *text = "{\"a\": [1, 2], \"o\": {}, \"e\": []}";
    struct json_step index_out_of_range[] = {JSON_KEY("a"), JSON_INDEX(2)};
    struct json_step key_in_array[] = {JSON_KEY("a"), JSON_KEY("x")};
    struct json_step index_in_object[] = {JSON_INDEX(0)};
    struct json_step empty_object[] = {JSON_KEY("o"), JSON_KEY("x")};
    struct json_step empty_array[] = {JSON_KEY("e"), JSON_INDEX(0)};
    struct json_step ends_in_index[] = {JSON_KEY("a"), JSON_INDEX(0)};
    int line = -7, column = -7;

    ck_assert(!value_at(text, index_out_of_range, 2).found);
    ck_assert(!value_at(text, key_in_array, 2).found);
    ck_assert(!value_at(text, index_in_object, 1).found);
    ck_assert(!value_at(text, empty_object, 2).found);
    ck_assert(!value_at(text, empty_array, 2).found);
    ck_assert(!key_at(text, ends_in_index, 2).found);
    ck_assert(!key_at(text, NULL, 0).found);
    ck_assert(!json_locate_value(text, strlen(text), index_out_of_range, 2,
                                 &line, &column));
    ck_assert_int_eq(line, -7);
    ck_assert_int_eq(column, -7);
}
END_TEST

START_TEST(test_text_is_bounded_by_length) {
    // Only the first len bytes count, even if more follow in memory.
    const char *text = "{\"a\": 1}{\"b\": 2}";
    struct json_step a[] = {JSON_KEY("a")};
    struct json_step b[] = {JSON_KEY("b")};
    int line = 0, column = 0;

    ck_assert(!json_locate_value(text, 8, b, 1, &line, &column));
    ck_assert(!json_locate_value(text, 3, a, 1, &line, &column));
    ck_assert(json_locate_value(text, 8, a, 1, &line, &column));
    ck_assert_int_eq(column, 7);
}
END_TEST

static Suite *json_locate_suite(void) {
    Suite *s = suite_create("json_locate");
    TCase *tc = tcase_create("locate");

    tcase_add_test(tc, test_top_level_after_blank_lines);
    tcase_add_test(tc, test_members_on_one_line);
    tcase_add_test(tc, test_nested_arrays_and_objects);
    tcase_add_test(tc, test_strings_with_escaped_quotes_and_brackets);
    tcase_add_test(tc, test_unicode_escapes_match_keys);
    tcase_add_test(tc, test_columns_count_characters_like_jansson);
    tcase_add_test(tc, test_multi_line_with_crlf);
    tcase_add_test(tc, test_keys_must_match_exactly);
    tcase_add_test(tc, test_missing_paths_are_not_found);
    tcase_add_test(tc, test_text_is_bounded_by_length);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(json_locate_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
