/* Options: setters and getters, text parsing, validation against declarations (conversions,
 * defaults, the messages), nearest-name suggestions and canonical JSON. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const bl_option decl[] = {
    {"hidden", BL_TYPE_INT_LIST, "256,128", "widths of the hidden layers"},
    {"activation", BL_TYPE_STRING, "relu", "activation function"},
    {"dropout", BL_TYPE_NUMBER, "0", "dropout probability"},
    {"epochs", BL_TYPE_INT, "10", "epochs"},
    {"bias", BL_TYPE_BOOL, "true", "use biases"},
    {"lrs", BL_TYPE_NUMBER_LIST, "", "learning rates"},
    {"name", BL_TYPE_STRING, "", "a name"},
    {NULL, 0, NULL, NULL},
};

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

/* Validates `cfg` against `decl` as "model mlp"; returns the result (caller frees). */
static bl_config *validated(bl_ctx *ctx, const bl_config *cfg)
{
    bl_config *out = NULL;
    BL_ASSERT_OK(ctx, bl_config_validate(ctx, cfg, decl, "model mlp", &out));
    return out;
}

static void test_type_names(void **state)
{
    assert_string_equal(bl_type_name(BL_TYPE_NUMBER), "number");
    assert_string_equal(bl_type_name(BL_TYPE_INT), "integer");
    assert_string_equal(bl_type_name(BL_TYPE_BOOL), "boolean");
    assert_string_equal(bl_type_name(BL_TYPE_STRING), "string");
    assert_string_equal(bl_type_name(BL_TYPE_INT_LIST), "integer list");
    assert_string_equal(bl_type_name(BL_TYPE_NUMBER_LIST), "number list");
    assert_string_equal(bl_type_name(BL_TYPE_TEXT), "text");
}

static void test_set_get_replace(void **state)
{
    bl_ctx *ctx = *state;
    bl_config *cfg;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &cfg));
    const int64_t h[] = {3, 2};
    const double l[] = {0.5, 0.25, 0.125};
    BL_ASSERT_OK(ctx, bl_config_set_number(ctx, cfg, "x", 0.5));
    BL_ASSERT_OK(ctx, bl_config_set_int(ctx, cfg, "n", 7));
    BL_ASSERT_OK(ctx, bl_config_set_bool(ctx, cfg, "b", true));
    BL_ASSERT_OK(ctx, bl_config_set_string(ctx, cfg, "s", "tanh"));
    BL_ASSERT_OK(ctx, bl_config_set_int_list(ctx, cfg, "h", h, 2));
    BL_ASSERT_OK(ctx, bl_config_set_number_list(ctx, cfg, "l", l, 3));
    BL_ASSERT_OK(ctx, bl_config_set_int_list(ctx, cfg, "empty", NULL, 0));
    assert_int_equal(bl_config_count(cfg), 7);
    assert_string_equal(bl_config_key(cfg, 3), "s");
    assert_int_equal(bl_config_type_at(cfg, 4), BL_TYPE_INT_LIST);
    assert_int_equal(bl_config_find(cfg, "l"), 5);
    assert_int_equal(bl_config_find(cfg, "nope"), -1);

    assert_true(bl_config_number(cfg, "x") == 0.5);
    assert_int_equal(bl_config_int(cfg, "n"), 7);
    assert_true(bl_config_bool(cfg, "b"));
    assert_string_equal(bl_config_string(cfg, "s"), "tanh");
    size_t n;
    const int64_t *hv = bl_config_int_list(cfg, "h", &n);
    assert_int_equal(n, 2);
    assert_int_equal(hv[1], 2);
    const double *lv = bl_config_number_list(cfg, "l", &n);
    assert_int_equal(n, 3);
    assert_true(lv[2] == 0.125);
    bl_config_int_list(cfg, "empty", &n);
    assert_int_equal(n, 0);

    /* Absent or of another type: zero values. */
    assert_int_equal(bl_config_int(cfg, "x"), 0);
    assert_null(bl_config_string(cfg, "n"));
    assert_null(bl_config_int_list(cfg, "l", &n));
    assert_int_equal(n, 0);
    assert_false(bl_config_bool(cfg, "missing"));

    /* Replacing keeps the position and may change the type. */
    BL_ASSERT_OK(ctx, bl_config_set_string(ctx, cfg, "n", "seven"));
    assert_int_equal(bl_config_count(cfg), 7);
    assert_int_equal(bl_config_find(cfg, "n"), 1);
    assert_string_equal(bl_config_string(cfg, "n"), "seven");

    BL_ASSERT_ERR(ctx, BL_EINVAL, "name", bl_config_set_int(ctx, cfg, "", 1));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "name", bl_config_set_int(ctx, cfg, NULL, 1));

    /* A clone is deep. */
    bl_config *copy;
    BL_ASSERT_OK(ctx, bl_config_clone(ctx, cfg, &copy));
    BL_ASSERT_OK(ctx, bl_config_set_string(ctx, cfg, "s", "relu"));
    assert_string_equal(bl_config_string(copy, "s"), "tanh");
    hv = bl_config_int_list(copy, "h", &n);
    assert_int_equal(n, 2);
    assert_int_equal(hv[0], 3);
    bl_config_free(cfg);
    bl_config_free(copy);
}

static void test_assignment(void **state)
{
    bl_ctx *ctx = *state;
    bl_config *cfg;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &cfg));
    BL_ASSERT_OK(ctx, bl_config_set_assignment(ctx, cfg, "hidden=64,32"));
    BL_ASSERT_OK(ctx, bl_config_set_assignment(ctx, cfg, " name = a=b"));
    assert_int_equal(bl_config_type_at(cfg, 0), BL_TYPE_TEXT);
    assert_int_equal(bl_config_find(cfg, "name"), 1);
    char buf[32];
    bl_config_format_value(cfg, 1, buf, sizeof buf);
    assert_string_equal(buf, " a=b");
    BL_ASSERT_ERR(ctx, BL_EOPTION, "name=value", bl_config_set_assignment(ctx, cfg, "hidden"));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "no name", bl_config_set_assignment(ctx, cfg, "=3"));

    bl_config *v = validated(ctx, cfg);
    size_t n;
    const int64_t *h = bl_config_int_list(v, "hidden", &n);
    assert_int_equal(n, 2);
    assert_int_equal(h[0], 64);
    assert_int_equal(h[1], 32);
    assert_string_equal(bl_config_string(v, "name"), " a=b"); /* strings are kept verbatim */
    bl_config_free(v);
    bl_config_free(cfg);
}

static void test_defaults_in_declaration_order(void **state)
{
    bl_ctx *ctx = *state;
    bl_config *cfg;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &cfg));
    BL_ASSERT_OK(ctx, bl_config_set_int(ctx, cfg, "epochs", 3));
    BL_ASSERT_OK(ctx, bl_config_set_string(ctx, cfg, "activation", "tanh"));
    bl_config *v = validated(ctx, cfg);
    assert_int_equal(bl_config_count(v), 7);
    for (size_t i = 0; i < 7; i++) {
        assert_string_equal(bl_config_key(v, i), decl[i].name);
        assert_int_equal(bl_config_type_at(v, i), decl[i].type);
    }
    size_t n;
    const int64_t *h = bl_config_int_list(v, "hidden", &n);
    assert_int_equal(n, 2);
    assert_int_equal(h[0], 256);
    assert_int_equal(h[1], 128);
    assert_string_equal(bl_config_string(v, "activation"), "tanh");
    assert_true(bl_config_number(v, "dropout") == 0.0);
    assert_int_equal(bl_config_int(v, "epochs"), 3);
    assert_true(bl_config_bool(v, "bias"));
    bl_config_number_list(v, "lrs", &n);
    assert_int_equal(n, 0);
    assert_string_equal(bl_config_string(v, "name"), "");
    bl_config_free(v);

    /* NULL input: all defaults. */
    BL_ASSERT_OK(ctx, bl_config_validate(ctx, NULL, decl, "model mlp", &v));
    assert_int_equal(bl_config_count(v), 7);
    bl_config_free(v);
    bl_config_free(cfg);
}

static void test_conversions(void **state)
{
    bl_ctx *ctx = *state;
    bl_config *cfg;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &cfg));
    BL_ASSERT_OK(ctx, bl_config_set_int(ctx, cfg, "dropout", 1));       /* int → number */
    BL_ASSERT_OK(ctx, bl_config_set_number(ctx, cfg, "epochs", 12.0));  /* integral → int */
    BL_ASSERT_OK(ctx, bl_config_set_int(ctx, cfg, "hidden", 64));       /* single → list */
    BL_ASSERT_OK(ctx, bl_config_set_number(ctx, cfg, "lrs", 0.1));      /* single → list */
    bl_config *v = validated(ctx, cfg);
    assert_int_equal(bl_config_type_at(v, 2), BL_TYPE_NUMBER);
    assert_true(bl_config_number(v, "dropout") == 1.0);
    assert_int_equal(bl_config_int(v, "epochs"), 12);
    size_t n;
    const int64_t *h = bl_config_int_list(v, "hidden", &n);
    assert_int_equal(n, 1);
    assert_int_equal(h[0], 64);
    const double *l = bl_config_number_list(v, "lrs", &n);
    assert_int_equal(n, 1);
    assert_true(l[0] == 0.1);
    bl_config_free(v);

    /* Lists convert element-wise: integral numbers to integers, integers to numbers. */
    const double hd[] = {32.0, 16.0};
    const int64_t li[] = {1, 2};
    BL_ASSERT_OK(ctx, bl_config_set_number_list(ctx, cfg, "hidden", hd, 2));
    BL_ASSERT_OK(ctx, bl_config_set_int_list(ctx, cfg, "lrs", li, 2));
    v = validated(ctx, cfg);
    h = bl_config_int_list(v, "hidden", &n);
    assert_int_equal(n, 2);
    assert_int_equal(h[1], 16);
    l = bl_config_number_list(v, "lrs", &n);
    assert_true(l[1] == 2.0);
    bl_config_free(v);
    bl_config_free(cfg);
}

/* Validates one text value for `option`; returns the validated config or NULL (error kept). */
static bl_config *from_text(bl_ctx *ctx, const char *option, const char *text, int expect)
{
    bl_config *cfg, *v = NULL;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &cfg));
    BL_ASSERT_OK(ctx, bl_config_set_text(ctx, cfg, option, text));
    int rc = bl_config_validate(ctx, cfg, decl, "model mlp", &v);
    bl_config_free(cfg);
    if (rc != expect)
        fail_msg("%s=\"%s\": got %d, expected %d (%s)", option, text, rc, expect,
                 bl_errmsg(ctx));
    return v;
}

static void expect_int_list(bl_ctx *ctx, const char *text, const int64_t *want, size_t n_want)
{
    bl_config *v = from_text(ctx, "hidden", text, BL_OK);
    size_t n;
    const int64_t *h = bl_config_int_list(v, "hidden", &n);
    if (n != n_want)
        fail_msg("\"%s\": %zu elements, expected %zu", text, n, n_want);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(h[i], want[i]);
    bl_config_free(v);
}

static void test_text_parsing(void **state)
{
    bl_ctx *ctx = *state;
    const int64_t two[] = {256, 128};
    expect_int_list(ctx, "256,128", two, 2);
    expect_int_list(ctx, " 256 , 128 ", two, 2);
    expect_int_list(ctx, "{256, 128}", two, 2);
    expect_int_list(ctx, "[256,128]", two, 2);
    expect_int_list(ctx, "{256, 128,}", two, 2);
    expect_int_list(ctx, "256", two, 1);
    expect_int_list(ctx, "", NULL, 0);
    expect_int_list(ctx, "{}", NULL, 0);
    expect_int_list(ctx, " [ ] ", NULL, 0);

    bl_config *v = from_text(ctx, "lrs", "0.5, 1e-3,2", BL_OK);
    size_t n;
    const double *l = bl_config_number_list(v, "lrs", &n);
    assert_int_equal(n, 3);
    assert_true(l[0] == 0.5 && l[1] == 1e-3 && l[2] == 2.0);
    bl_config_free(v);

    const char *yes[] = {"true", "yes", "1", "TRUE", " Yes "};
    const char *no[] = {"false", "no", "0", "False"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        v = from_text(ctx, "bias", yes[i], BL_OK);
        assert_true(bl_config_bool(v, "bias"));
        bl_config_free(v);
    }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        v = from_text(ctx, "bias", no[i], BL_OK);
        assert_false(bl_config_bool(v, "bias"));
        bl_config_free(v);
    }
    v = from_text(ctx, "epochs", "1e3", BL_OK);
    assert_int_equal(bl_config_int(v, "epochs"), 1000);
    bl_config_free(v);
    v = from_text(ctx, "epochs", "-7", BL_OK);
    assert_int_equal(bl_config_int(v, "epochs"), -7);
    bl_config_free(v);
    v = from_text(ctx, "dropout", " 0.25 ", BL_OK);
    assert_true(bl_config_number(v, "dropout") == 0.25);
    bl_config_free(v);
    v = from_text(ctx, "activation", "", BL_OK);
    assert_string_equal(bl_config_string(v, "activation"), "");
    bl_config_free(v);

    /* Text that does not parse: the option, its type and what was given are in the message. */
    from_text(ctx, "epochs", "ten", BL_EOPTION);
    assert_true(bl_test_contains(bl_errmsg(ctx), "model mlp: option 'epochs' (integer)"));
    assert_true(bl_test_contains(bl_errmsg(ctx), "\"ten\""));
    from_text(ctx, "epochs", "2.5", BL_EOPTION);
    from_text(ctx, "epochs", "99999999999999999999", BL_EOPTION);
    from_text(ctx, "bias", "maybe", BL_EOPTION);
    assert_true(bl_test_contains(bl_errmsg(ctx), "true/false"));
    from_text(ctx, "dropout", "", BL_EOPTION);
    from_text(ctx, "dropout", "nan", BL_EOPTION);
    from_text(ctx, "dropout", "0.5x", BL_EOPTION);
    from_text(ctx, "hidden", "256,,128", BL_EOPTION);
    from_text(ctx, "hidden", ",", BL_EOPTION);
    from_text(ctx, "hidden", "256,abc", BL_EOPTION);
    assert_true(bl_test_contains(bl_errmsg(ctx), "'abc' is not an integer"));
    from_text(ctx, "lrs", "{0.5", BL_EOPTION);
}

static void test_unknown_option_suggests(void **state)
{
    bl_ctx *ctx = *state;
    bl_config *cfg, *v = NULL;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &cfg));
    BL_ASSERT_OK(ctx, bl_config_set_int(ctx, cfg, "hiden", 3));
    BL_ASSERT_ERR(ctx, BL_EOPTION,
                  "model mlp: unknown option 'hiden'; did you mean 'hidden'? accepted: hidden, "
                  "activation, dropout, epochs, bias, lrs, name",
                  bl_config_validate(ctx, cfg, decl, "model mlp", &v));
    assert_null(v);
    bl_config_free(cfg);

    BL_ASSERT_OK(ctx, bl_config_new(ctx, &cfg));
    BL_ASSERT_OK(ctx, bl_config_set_int(ctx, cfg, "zzzzzzzz", 3));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "unknown option 'zzzzzzzz'; accepted: hidden",
                  bl_config_validate(ctx, cfg, decl, "model mlp", &v));
    assert_false(bl_test_contains(bl_errmsg(ctx), "did you mean"));
    static const bl_option none[] = {{NULL, 0, NULL, NULL}};
    BL_ASSERT_ERR(ctx, BL_EOPTION, "accepts no options",
                  bl_config_validate(ctx, cfg, none, "scheduler constant", &v));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "accepts no options",
                  bl_config_validate(ctx, cfg, NULL, "scheduler constant", &v));
    bl_config_free(cfg);
}

static void test_wrong_type(void **state)
{
    bl_ctx *ctx = *state;
    bl_config *cfg, *v = NULL;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &cfg));
    BL_ASSERT_OK(ctx, bl_config_set_bool(ctx, cfg, "hidden", true));
    BL_ASSERT_ERR(ctx, BL_EOPTION,
                  "model mlp: option 'hidden' must be an integer list (e.g. 256,128), got a "
                  "boolean (true)",
                  bl_config_validate(ctx, cfg, decl, "model mlp", &v));
    bl_config_free(cfg);

    BL_ASSERT_OK(ctx, bl_config_new(ctx, &cfg));
    BL_ASSERT_OK(ctx, bl_config_set_number(ctx, cfg, "epochs", 2.5));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "option 'epochs' must be an integer",
                  bl_config_validate(ctx, cfg, decl, "model mlp", &v));
    BL_ASSERT_OK(ctx, bl_config_set_string(ctx, cfg, "epochs", "10"));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "got a string (\"10\")",
                  bl_config_validate(ctx, cfg, decl, "model mlp", &v));
    BL_ASSERT_OK(ctx, bl_config_set_number(ctx, cfg, "epochs", 1e300));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "must be an integer",
                  bl_config_validate(ctx, cfg, decl, "model mlp", &v));
    BL_ASSERT_OK(ctx, bl_config_set_int(ctx, cfg, "epochs", 1));
    const double frac[] = {1.0, 2.5};
    BL_ASSERT_OK(ctx, bl_config_set_number_list(ctx, cfg, "hidden", frac, 2));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "got a number list (1,2.5)",
                  bl_config_validate(ctx, cfg, decl, "model mlp", &v));
    BL_ASSERT_OK(ctx, bl_config_set_int(ctx, cfg, "hidden", 1));
    BL_ASSERT_OK(ctx, bl_config_set_int(ctx, cfg, "activation", 1));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "option 'activation' must be a string",
                  bl_config_validate(ctx, cfg, decl, "model mlp", &v));
    BL_ASSERT_OK(ctx, bl_config_set_string(ctx, cfg, "activation", "relu"));
    BL_ASSERT_OK(ctx, bl_config_set_int(ctx, cfg, "bias", 1));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "option 'bias' must be a boolean",
                  bl_config_validate(ctx, cfg, decl, "model mlp", &v));
    assert_null(v);
    bl_config_free(cfg);
}

static void test_required_and_bad_default(void **state)
{
    bl_ctx *ctx = *state;
    static const bl_option req[] = {
        {"dir", BL_TYPE_STRING, NULL, "directory of the files"},
        {"validation", BL_TYPE_INT, "0", "held-out samples"},
        {NULL, 0, NULL, NULL},
    };
    bl_config *v = NULL;
    BL_ASSERT_ERR(ctx, BL_EOPTION,
                  "dataset idx: missing required option 'dir' (string: directory of the files)",
                  bl_config_validate(ctx, NULL, req, "dataset idx", &v));
    bl_config *cfg;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &cfg));
    BL_ASSERT_OK(ctx, bl_config_set_string(ctx, cfg, "dir", "/data"));
    BL_ASSERT_OK(ctx, bl_config_validate(ctx, cfg, req, "dataset idx", &v));
    assert_string_equal(bl_config_string(v, "dir"), "/data");
    assert_int_equal(bl_config_int(v, "validation"), 0);
    bl_config_free(v);

    static const bl_option bad[] = {
        {"width", BL_TYPE_INT, "wide", "a bad default"},
        {NULL, 0, NULL, NULL},
    };
    v = NULL;
    BL_ASSERT_ERR(ctx, BL_EOPTION, "declared default \"wide\" of option 'width'",
                  bl_config_validate(ctx, NULL, bad, "model x", &v));
    assert_null(v);
    bl_config_free(cfg);
}

static void test_nearest_name(void **state)
{
    const char *const names[] = {"hidden", "activation", "dropout", "lr", "momentum"};
    assert_string_equal(bl_nearest_name("hiden", names, 5), "hidden");
    assert_string_equal(bl_nearest_name("hidden", names, 5), "hidden");
    assert_string_equal(bl_nearest_name("activaton", names, 5), "activation");
    assert_string_equal(bl_nearest_name("dropuot", names, 5), "dropout");
    assert_string_equal(bl_nearest_name("momemtum", names, 5), "momentum");
    assert_string_equal(bl_nearest_name("lrr", names, 5), "lr");
    assert_null(bl_nearest_name("xy", names, 5));        /* as far as it is long */
    assert_null(bl_nearest_name("batchsize", names, 5)); /* more than 3 edits */
    assert_null(bl_nearest_name("hiden", names, 0));
    assert_null(bl_nearest_name(NULL, names, 5));
}

static void test_format_value(void **state)
{
    bl_ctx *ctx = *state;
    bl_config *cfg;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &cfg));
    const int64_t h[] = {256, 128};
    const double l[] = {0.1, 0.5};
    BL_ASSERT_OK(ctx, bl_config_set_number(ctx, cfg, "x", 0.1));
    BL_ASSERT_OK(ctx, bl_config_set_int(ctx, cfg, "n", -3));
    BL_ASSERT_OK(ctx, bl_config_set_bool(ctx, cfg, "b", false));
    BL_ASSERT_OK(ctx, bl_config_set_int_list(ctx, cfg, "h", h, 2));
    BL_ASSERT_OK(ctx, bl_config_set_number_list(ctx, cfg, "l", l, 2));
    BL_ASSERT_OK(ctx, bl_config_set_int_list(ctx, cfg, "e", NULL, 0));
    char buf[64];
    const char *want[] = {"0.1", "-3", "false", "256,128", "0.1,0.5", ""};
    for (size_t i = 0; i < 6; i++) {
        size_t need = bl_config_format_value(cfg, i, buf, sizeof buf);
        assert_string_equal(buf, want[i]);
        assert_int_equal(need, strlen(want[i]));
    }
    /* Truncated, still terminated, and the needed length is returned. */
    assert_int_equal(bl_config_format_value(cfg, 3, buf, 4), 7);
    assert_string_equal(buf, "256");
    assert_int_equal(bl_config_format_value(cfg, 3, NULL, 0), 7);
    bl_config_free(cfg);
}

static void test_json(void **state)
{
    bl_ctx *ctx = *state;
    bl_config *a, *b;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &a));
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &b));
    const int64_t h[] = {256, 128};
    const double l[] = {0.1, -2};
    /* Same content, different insertion order. */
    BL_ASSERT_OK(ctx, bl_config_set_string(ctx, a, "name", "a \"q\" \\ \n\t\x01 é"));
    BL_ASSERT_OK(ctx, bl_config_set_number(ctx, a, "lr", 0.1));
    BL_ASSERT_OK(ctx, bl_config_set_int_list(ctx, a, "hidden", h, 2));
    BL_ASSERT_OK(ctx, bl_config_set_bool(ctx, a, "bias", true));
    BL_ASSERT_OK(ctx, bl_config_set_int(ctx, a, "epochs", 10));
    BL_ASSERT_OK(ctx, bl_config_set_number_list(ctx, a, "lrs", l, 2));
    BL_ASSERT_OK(ctx, bl_config_set_int_list(ctx, a, "empty", NULL, 0));
    BL_ASSERT_OK(ctx, bl_config_set_number(ctx, a, "inf", INFINITY));

    BL_ASSERT_OK(ctx, bl_config_set_number(ctx, b, "inf", INFINITY));
    BL_ASSERT_OK(ctx, bl_config_set_int_list(ctx, b, "empty", NULL, 0));
    BL_ASSERT_OK(ctx, bl_config_set_number_list(ctx, b, "lrs", l, 2));
    BL_ASSERT_OK(ctx, bl_config_set_int(ctx, b, "epochs", 10));
    BL_ASSERT_OK(ctx, bl_config_set_bool(ctx, b, "bias", true));
    BL_ASSERT_OK(ctx, bl_config_set_int_list(ctx, b, "hidden", h, 2));
    BL_ASSERT_OK(ctx, bl_config_set_number(ctx, b, "lr", 0.1));
    BL_ASSERT_OK(ctx, bl_config_set_string(ctx, b, "name", "a \"q\" \\ \n\t\x01 é"));

    char *ja, *jb;
    BL_ASSERT_OK(ctx, bl_config_to_json(ctx, a, &ja));
    BL_ASSERT_OK(ctx, bl_config_to_json(ctx, b, &jb));
    assert_string_equal(ja, jb);
    assert_string_equal(ja, "{\"bias\":true,\"empty\":[],\"epochs\":10,\"hidden\":[256,128],"
                            "\"inf\":null,\"lr\":0.10000000000000001,"
                            "\"lrs\":[0.10000000000000001,-2],"
                            "\"name\":\"a \\\"q\\\" \\\\ \\n\\t\\u0001 é\"}");
    free(ja);
    free(jb);

    bl_config *empty;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &empty));
    BL_ASSERT_OK(ctx, bl_config_to_json(ctx, empty, &ja));
    assert_string_equal(ja, "{}");
    free(ja);
    bl_config_free(empty);
    bl_config_free(a);
    bl_config_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_set_get_replace),
        cmocka_unit_test(test_assignment),
        cmocka_unit_test(test_defaults_in_declaration_order),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_text_parsing),
        cmocka_unit_test(test_unknown_option_suggests),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_required_and_bad_default),
        cmocka_unit_test(test_nearest_name),
        cmocka_unit_test(test_format_value),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, ctx_setup, ctx_teardown);
}
