/* Fuzz target: the conversion of option values as the Lua bindings hand them over (booleans,
 * integers up to math.maxinteger, doubles including inf and NaN, strings, integer and number
 * lists; l_config.c and l_train.c set them with the bl_config setters) and their validation:
 * against the run specification (bl_run_spec_validate then bl_run_spec_apply, what bl.train
 * and batchlab train do) and against a plugin declaration with an option of every type. A
 * validated run spec must hold finite budgets. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>

#include "batchlab/run_spec.h"
#include "fuzz_util.h"

static const bl_option decl[] = {
    {"n", BL_TYPE_NUMBER, "0.5", NULL},          {"i", BL_TYPE_INT, "3", NULL},
    {"b", BL_TYPE_BOOL, "false", NULL},          {"s", BL_TYPE_STRING, "x", NULL},
    {"il", BL_TYPE_INT_LIST, "1,2", NULL},       {"nl", BL_TYPE_NUMBER_LIST, "0.5", NULL},
    {NULL, 0, NULL, NULL}};

/* Reads k bytes (fewer at the end) into a value. */
static uint64_t take(const uint8_t **p, const uint8_t *end, int k)
{
    uint64_t v = 0;
    for (int j = 0; j < k && *p < end; j++, (*p)++)
        v = v << 8 | **p;
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n_set;
    const bl_run_setting *set = bl_run_spec_settings(&n_set);
    bl_ctx *ctx = bl_ctx_new();
    bl_config *spec_in = NULL, *plug_in = NULL;
    if (!ctx || bl_config_new(ctx, &spec_in) != BL_OK || bl_config_new(ctx, &plug_in))
        abort();
    const uint8_t *p = data, *end = data + size;
    while (p < end) {
        uint8_t op = *p++;
        bool to_spec = op & 1;
        size_t which = (size_t)take(&p, end, 1);
        const char *name = to_spec ? set[which % n_set].opt.name : decl[which % 6].name;
        bl_config *cfg = to_spec ? spec_in : plug_in;
        switch ((op >> 1) % 7) {
        case 0: bl_config_set_bool(ctx, cfg, name, take(&p, end, 1) & 1); break;
        case 1: bl_config_set_int(ctx, cfg, name, (int64_t)take(&p, end, 8)); break;
        case 2: {
            uint64_t bits = take(&p, end, 8);
            double d;
            memcpy(&d, &bits, sizeof d); /* any double: inf, NaN, subnormals */
            bl_config_set_number(ctx, cfg, name, d);
            break;
        }
        case 3: {
            size_t len = (size_t)take(&p, end, 1);
            if (len > (size_t)(end - p))
                len = (size_t)(end - p);
            char s[256];
            memcpy(s, p, len);
            s[len] = '\0';
            p += len;
            bl_config_set_string(ctx, cfg, name, s);
            break;
        }
        case 4: {
            size_t len = (size_t)take(&p, end, 1) % 8;
            int64_t v[8];
            for (size_t k = 0; k < len; k++)
                v[k] = (int64_t)take(&p, end, 8);
            bl_config_set_int_list(ctx, cfg, name, v, len);
            break;
        }
        case 5: {
            size_t len = (size_t)take(&p, end, 1) % 8;
            double v[8];
            for (size_t k = 0; k < len; k++) {
                uint64_t bits = take(&p, end, 8);
                memcpy(&v[k], &bits, sizeof v[k]);
            }
            bl_config_set_number_list(ctx, cfg, name, v, len);
            break;
        }
        default: {
            size_t len = (size_t)take(&p, end, 1);
            if (len > (size_t)(end - p))
                len = (size_t)(end - p);
            char s[300];
            snprintf(s, sizeof s, "%s=%.*s", name, (int)len, (const char *)p);
            p += len;
            bl_config_set_assignment(ctx, cfg, s); /* option text, as the CLI gives it */
        }
        }
    }
    bl_config *out = NULL;
    if (bl_run_spec_validate(ctx, spec_in, "fuzz", &out) == BL_OK) {
        bl_train_config tc = bl_train_defaults();
        if (bl_run_spec_apply(ctx, out, "fuzz", &tc) == BL_OK &&
            (!isfinite(tc.epochs) || !isfinite(tc.max_seconds) || tc.max_steps > 1000000000000LL))
            abort(); /* issue 15, Found 3: a validated spec holds finite budgets */
        char *json = NULL;
        bl_config_to_json(ctx, out, &json);
        free(json);
        bl_config_free(out);
        out = NULL;
    }
    if (bl_config_validate(ctx, plug_in, decl, "fuzz", &out) == BL_OK)
        bl_config_free(out);
    bl_config_free(spec_in);
    bl_config_free(plug_in);
    bl_ctx_free(ctx);
    return 0;
}
