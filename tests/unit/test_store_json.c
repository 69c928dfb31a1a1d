/* Run configurations as JSON (batchlab/json.h), as the results store reads them: the
 * canonical form and its hash, flattening to columns, pretty-printing and parse errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/json.h"
#include "json/json_internal.h"
#include "testutil.h"

static int ctx_setup(void **state)
{
    *state = bl_ctx_new();
    return *state ? 0 : -1;
}

static int ctx_teardown(void **state)
{
    bl_ctx_free(*state);
    return 0;
}

static void assert_canonical(bl_ctx *ctx, const char *in, const char *want)
{
    char *out = NULL;
    BL_ASSERT_OK(ctx, bl_json_canonical(ctx, in, &out));
    assert_string_equal(out, want);
    free(out);
}

static void test_canonical(void **state)
{
    bl_ctx *ctx = *state;
    assert_canonical(ctx, " { \"b\" : 1 , \"a\" : [ 3 , 2 , {\"z\":null, \"y\":true} ] } ",
                     "{\"a\":[3,2,{\"y\":true,\"z\":null}],\"b\":1}");
    /* Integers exactly (64-bit); doubles in the fewest digits that read back the same. */
    assert_canonical(ctx, "[0.10000000000000001, 1e-3, -0.0, 1E+5, 9223372036854775807, 2.0, "
                          "-9223372036854775808, 0.30000000000000004, -2.5e-7, 1e-400]",
                     "[0.1,0.001,-0,1e+05,9223372036854775807,2,-9223372036854775808,"
                     "0.30000000000000004,-2.5e-07,0]");
    /* "-0" is the integer zero (jansson reads integers as int64); writers put "-0.0" for a
     * negative zero double (bl_config_to_json does), which stays "-0". */
    assert_canonical(ctx, "-0", "0");
    /* Strings: escapes decoded and written back as bl_config_to_json writes them. */
    assert_canonical(ctx, "\"tab\\there \\u00e9 \\ud83d\\ude00 \\/ \\u0001 \\\"q\\\"\"",
                     "\"tab\\there \xc3\xa9 \xf0\x9f\x98\x80 / \\u0001 \\\"q\\\"\"");
    assert_canonical(ctx, "{}", "{}");
    assert_canonical(ctx, "[]", "[]");
    assert_canonical(ctx, "false", "false");
    /* Nested keys sort too, byte order. */
    assert_canonical(ctx, "{\"opt\":{\"lr\":0.1,\"b\":2,\"B\":1},\"a\":{}}",
                     "{\"a\":{},\"opt\":{\"B\":1,\"b\":2,\"lr\":0.1}}");
}

static void test_config_json_is_canonical(void **state)
{
    bl_ctx *ctx = *state;
    bl_config *cfg;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &cfg));
    const int64_t h[] = {256, 128};
    BL_ASSERT_OK(ctx, bl_config_set_int_list(ctx, cfg, "hidden", h, 2));
    BL_ASSERT_OK(ctx, bl_config_set_number(ctx, cfg, "lr", 0.1));
    BL_ASSERT_OK(ctx, bl_config_set_string(ctx, cfg, "act", "re\"lu\n"));
    BL_ASSERT_OK(ctx, bl_config_set_bool(ctx, cfg, "bias", true));
    char *json = NULL, *canon = NULL;
    BL_ASSERT_OK(ctx, bl_config_to_json(ctx, cfg, &json));
    /* Already sorted and escaped alike: only the numbers get shorter. */
    BL_ASSERT_OK(ctx, bl_json_canonical(ctx, json, &canon));
    assert_string_equal(canon, "{\"act\":\"re\\\"lu\\n\",\"bias\":true,\"hidden\":[256,128],"
                               "\"lr\":0.1}");
    assert_canonical(ctx, canon, canon);
    free(canon);
    free(json);
    bl_config_free(cfg);
}

static void test_hash(void **state)
{
    bl_ctx *ctx = *state;
    char a[17], b[17], c[17];
    BL_ASSERT_OK(ctx, bl_json_hash(ctx, "{\"batch\":128,\"lr\":0.1}", a));
    BL_ASSERT_OK(ctx, bl_json_hash(ctx, "{ \"lr\": 0.1,\n \"batch\": 128 }", b));
    BL_ASSERT_OK(ctx, bl_json_hash(ctx, "{\"batch\":256,\"lr\":0.1}", c));
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_int_equal(strlen(a), 16);
    /* FNV-1a 64 reference values. */
    assert_true(bl__fnv1a64("", 0) == 0xcbf29ce484222325ull);
    assert_true(bl__fnv1a64("a", 1) == 0xaf63dc4c8601ec8cull);
    assert_true(bl__fnv1a64("foobar", 6) == 0x85944171f73967e8ull);
    char h[17];
    BL_ASSERT_OK(ctx, bl_json_hash(ctx, " {} ", h));
    char want[17];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)bl__fnv1a64("{}", 2));
    assert_string_equal(h, want);
}

typedef struct leaves {
    char text[1024];
} leaves;

static int add_leaf(void *user, const char *path, bl_json_kind kind, const char *value)
{
    leaves *l = user;
    size_t n = strlen(l->text);
    snprintf(l->text + n, sizeof l->text - n, "%s%s=%d:%s", n ? ";" : "", path, (int)kind,
             value);
    return 0;
}

static int stop_at_second(void *user, const char *path, bl_json_kind kind, const char *value)
{
    int *n = user;
    (void)path, (void)kind, (void)value;
    return ++*n == 2 ? 42 : 0;
}

static void test_flatten(void **state)
{
    bl_ctx *ctx = *state;
    leaves l = {""};
    BL_ASSERT_OK(ctx, bl_json_flatten(ctx,
                                      "{\"optimizer\":{\"name\":\"sgd\",\"lr\":0.05,"
                                      "\"nesterov\":false},\"batch\":128,\"hidden\":[256,128],"
                                      "\"tag\":null,\"empty\":{},\"s\":\"a\\nb\"}",
                                      add_leaf, &l));
    assert_string_equal(l.text, "batch=2:128;empty=5:{};hidden=4:[256,128];optimizer.lr=2:0.05;"
                                "optimizer.name=3:sgd;optimizer.nesterov=1:false;s=3:a\nb;"
                                "tag=0:null");
    leaves top = {""};
    BL_ASSERT_OK(ctx, bl_json_flatten(ctx, "3.5", add_leaf, &top));
    assert_string_equal(top.text, "=2:3.5");
    int n = 0;
    assert_int_equal(bl_json_flatten(ctx, "{\"a\":1,\"b\":2,\"c\":3}", stop_at_second, &n), 42);
    assert_int_equal(n, 2);
}

static void test_pretty(void **state)
{
    bl_ctx *ctx = *state;
    char *out = NULL;
    BL_ASSERT_OK(ctx, bl_json_pretty(ctx, "{\"b\":[1,2],\"a\":{\"x\":\"y\"},\"c\":[],\"d\":{}}",
                                     &out));
    assert_string_equal(out, "{\n"
                             "  \"a\": {\n"
                             "    \"x\": \"y\"\n"
                             "  },\n"
                             "  \"b\": [\n"
                             "    1,\n"
                             "    2\n"
                             "  ],\n"
                             "  \"c\": [],\n"
                             "  \"d\": {}\n"
                             "}");
    free(out);
}

static void test_errors(void **state)
{
    bl_ctx *ctx = *state;
    char *out = NULL;
    /* Where: line, column and byte offset of the byte the parser stopped at. */
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "line 1, column 9 (offset 8)",
                  bl_json_canonical(ctx, "{\"a\": 1,}", &out));
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "line 2, column 4 (offset 7)",
                  bl_json_canonical(ctx, "[1,\n 2 x]", &out));
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "unexpected end of text",
                  bl_json_canonical(ctx, "\"abc", &out));
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "text after", bl_json_canonical(ctx, "{} {}", &out));
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "duplicate object key near '\"a\"'",
                  bl_json_canonical(ctx, "{\"a\":1,\"b\":2,\"a\":3}", &out));
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "invalid token near '0'", bl_json_canonical(ctx, "[01]", &out));
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "invalid token near '1.'", bl_json_canonical(ctx, "1.", &out));
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "invalid token near 'nul'", bl_json_canonical(ctx, "nul", &out));
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "unexpected end", bl_json_canonical(ctx, "", &out));
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "unexpected newline",
                  bl_json_canonical(ctx, "\"a\nb\"", &out));
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "invalid Unicode '\\uD800'",
                  bl_json_canonical(ctx, "\"\\ud800x\"", &out));
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "invalid escape", bl_json_canonical(ctx, "\"\\q\"", &out));
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "string or '}' expected",
                  bl_json_canonical(ctx, "{a:1}", &out));
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "\\u0000 in a string is not supported",
                  bl_json_canonical(ctx, "\"a\\u0000b\"", &out));
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "not UTF-8", bl_json_canonical(ctx, "\"\xff\"", &out));
    /* Beyond what an int64 or a double holds: refused, not rounded. */
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "number out of range",
                  bl_json_canonical(ctx, "[12345678901234567890]", &out));
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "number out of range", bl_json_canonical(ctx, "1e400", &out));
    char deep[201];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    deep[200] = '\0';
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "deeper than 64", bl_json_canonical(ctx, deep, &out));
    /* The limit itself: a value 64 containers deep is read, 65 is refused. */
    memset(deep, '[', 64);
    deep[64] = '1';
    memset(deep + 65, ']', 64);
    deep[129] = '\0';
    BL_ASSERT_OK(ctx, bl_json_canonical(ctx, deep, &out));
    assert_string_equal(out, deep);
    free(out);
    out = NULL;
    memset(deep, '[', 65);
    deep[65] = '1';
    memset(deep + 66, ']', 65);
    deep[131] = '\0';
    BL_ASSERT_ERR(ctx, BL_EFORMAT, "deeper than 64", bl_json_canonical(ctx, deep, &out));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "NULL", bl_json_canonical(ctx, NULL, &out));
    assert_null(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_config_json_is_canonical),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_flatten),
        cmocka_unit_test(test_pretty),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, ctx_setup, ctx_teardown);
}
