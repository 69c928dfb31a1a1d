/* Golden values of the configuration hash: the canonical JSON text and the 64-bit FNV-1a hash
 * (bl_json_hash, the results store's config_hash column) of a fixed set of configurations.
 * The expected values were computed by the hand-written parser that batchlab used before
 * jansson (commit 937d76d) and pasted here; they must never change, or runs stored by an
 * older batchlab no longer match their configuration (resume, `batchlab runs --config`). */
#include <stdlib.h>
#include <string.h>

#include "batchlab/json.h"
#include "testutil.h"

/* Configurations as they reach the store: written by bl_config_to_json, by the Lua bindings,
 * or by hand (any key order, spacing and number spelling). */
static const char *const inputs[] = {
    "{}",
    "{\"batch\":128,\"lr\":0.1}",
    "{ \"lr\": 0.10000000000000001,\n \"batch\": 128 }",
    "{\"model\":{\"name\":\"mlp\",\"options\":{\"hidden\":[256,128],\"act\":\"relu\","
    "\"dropout\":0.25}},"
    "\"dataset\":{\"name\":\"fashion_mnist\",\"options\":{\"path\":\"/data/fm\"}},"
    "\"optimizer\":{\"name\":\"sgd\",\"lr\":0.050000000000000003,\"momentum\":0.90000000000000002,"
    "\"nesterov\":false,\"weight_decay\":0.00050000000000000001},"
    "\"schedule\":{\"name\":\"smith\",\"options\":{\"factor\":5,\"milestones\":[60,120,160]}},"
    "\"epochs\":200,\"seed\":42,\"eval_batch\":null}",
    "{\"lr\":3e-4,\"eps\":1E-8,\"big\":1e+22,\"tiny\":-2.5e-7,\"sum\":0.30000000000000004,"
    "\"negzero\":-0.0,\"two\":2.0,\"third\":0.33333333333333331}",
    "{\"ints\":[9007199254740993,9223372036854775807,-9223372036854775808,0,-1]}",
    "{\"s\":\"tab\\there \\u00e9 \\ud83d\\ude00 \\/ \\u0001 \\\"q\\\" back\\\\slash \\u007f\"}",
    "{\"unicode\":\"\xc3\xa9t\xc3\xa9 \xe2\x82\xac\",\"Z\":1,\"a\":2,\"_\":3,\"aa\":{\"b\":[],"
    "\"a\":{}}}",
    "[1,[2,[3,[4,{\"x\":true,\"w\":false}]]]]",
    "{\"hidden\":[256,128],\"lr\":0.10000000000000001,\"act\":\"re\\\"lu\\n\",\"bias\":true}",
};

static const struct {
    const char *canonical, *hash;
} want[] = {
    {"{}",
     "08f44b07b5901a25"},
    {"{\"batch\":128,\"lr\":0.1}",
     "fae46992d9778501"},
    {"{\"batch\":128,\"lr\":0.1}",
     "fae46992d9778501"},
    {"{\"dataset\":{\"name\":\"fashion_mnist\",\"options\":{\"path\":\"/data/fm\"}},\"epochs\":200,"
     "\"eval_batch\":null,\"model\":{\"name\":\"mlp\","
     "\"options\":{\"act\":\"relu\",\"dropout\":0.25,"
     "\"hidden\":[256,128]}},\"optimizer\":{\"lr\":0.05,\"momentum\":0.9,\"name\":\"sgd\","
     "\"nesterov\":false,\"weight_decay\":0.0005},\"schedule\":{\"name\":\"smith\","
     "\"options\":{\"factor\":5,\"milestones\":[60,120,160]}},\"seed\":42}",
     "64060a810c25b625"},
    {"{\"big\":1e+22,\"eps\":1e-08,\"lr\":0.0003,\"negzero\":-0,\"sum\":0.30000000000000004,"
     "\"third\":0.3333333333333333,\"tiny\":-2.5e-07,\"two\":2}",
     "2f592aa018513cef"},
    {"{\"ints\":[9007199254740993,9223372036854775807,-9223372036854775808,0,-1]}",
     "9be6b5c4d4b0e83f"},
    {"{\"s\":\"tab\\there \xc3""\xa9"" \xf0""\x9f""\x98""\x80"
     " / \\u0001 \\\"q\\\" back\\\\slash \\u007f\"}",
     "7262f3cd9e28d65c"},
    {"{\"Z\":1,\"_\":3,\"a\":2,\"aa\":{\"a\":{},\"b\":[]},"
     "\"unicode\":\"\xc3""\xa9""t\xc3""\xa9"" \xe2""\x82""\xac""\"}",
     "ad4db3738e6f17a7"},
    {"[1,[2,[3,[4,{\"w\":false,\"x\":true}]]]]",
     "30e2ec1abf4a30e5"},
    {"{\"act\":\"re\\\"lu\\n\",\"bias\":true,\"hidden\":[256,128],\"lr\":0.1}",
     "2c3e76cee1c5df0b"},
};

static void test_golden_texts(void **state)
{
    (void)state;
    assert_int_equal(sizeof inputs / sizeof *inputs, sizeof want / sizeof *want);
    bl_ctx *ctx = bl_ctx_new();
    assert_non_null(ctx);
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        char *canon = NULL, hash[17];
        BL_ASSERT_OK(ctx, bl_json_canonical(ctx, inputs[i], &canon));
        BL_ASSERT_OK(ctx, bl_json_hash(ctx, inputs[i], hash));
        if (strcmp(canon, want[i].canonical) != 0 || strcmp(hash, want[i].hash) != 0)
            fail_msg("input %zu: canonical %s hash %s, want %s %s", i, canon, hash,
                     want[i].canonical, want[i].hash);
        free(canon);
    }
    bl_ctx_free(ctx);
}

/* A configuration built in C, through bl_config_to_json (negative zero included). */
static void test_golden_config(void **state)
{
    (void)state;
    bl_ctx *ctx = bl_ctx_new();
    assert_non_null(ctx);
    bl_config *cfg;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &cfg));
    const int64_t hidden[] = {256, 128};
    const double fracs[] = {0.5, 0.25, 1e-3, -0.0};
    BL_ASSERT_OK(ctx, bl_config_set_int_list(ctx, cfg, "hidden", hidden, 2));
    BL_ASSERT_OK(ctx, bl_config_set_number(ctx, cfg, "lr", 0.1));
    BL_ASSERT_OK(ctx, bl_config_set_number(ctx, cfg, "momentum", 0.9));
    BL_ASSERT_OK(ctx, bl_config_set_number(ctx, cfg, "weight_decay", 5e-4));
    BL_ASSERT_OK(ctx, bl_config_set_number(ctx, cfg, "zero", -0.0));
    BL_ASSERT_OK(ctx, bl_config_set_number(ctx, cfg, "third", 1.0 / 3.0));
    BL_ASSERT_OK(ctx, bl_config_set_number_list(ctx, cfg, "fracs", fracs, 4));
    BL_ASSERT_OK(ctx, bl_config_set_int(ctx, cfg, "epochs", 200));
    BL_ASSERT_OK(ctx, bl_config_set_string(ctx, cfg, "act", "re\"lu\n\xc3\xa9"));
    BL_ASSERT_OK(ctx, bl_config_set_bool(ctx, cfg, "bias", true));
    char *json = NULL, *canon = NULL, hash[17];
    BL_ASSERT_OK(ctx, bl_config_to_json(ctx, cfg, &json));
    BL_ASSERT_OK(ctx, bl_json_canonical(ctx, json, &canon));
    BL_ASSERT_OK(ctx, bl_json_hash(ctx, json, hash));
    assert_string_equal(canon, "{\"act\":\"re\\\"lu\\n\xc3""\xa9""\",\"bias\":true,\"epochs\":200,"
                               "\"fracs\":[0.5,0.25,0.001,-0],\"hidden\":[256,128],\"lr\":0.1,"
                               "\"momentum\":0.9,\"third\":0.3333333333333333,"
                               "\"weight_decay\":0.0005,\"zero\":-0}");
    assert_string_equal(hash, "d055672aa97bd24f");
    free(canon);
    free(json);
    bl_config_free(cfg);
    bl_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_texts),
        cmocka_unit_test(test_golden_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
