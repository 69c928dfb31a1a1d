/* The run specification (batchlab/run_spec.h) and the run orchestrator (batchlab/run.h):
 * validation, defaults that agree with the engine, train.h and docs/lua-api.md, and bl_run
 * driving its outputs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/run.h"
#include "batchlab/run_spec.h"
#include "batchlab/store.h"
#include "testutil.h"

static bl_config *validated(bl_ctx *ctx, const char *assignments)
{
    bl_config *in = bl_test_config(ctx, assignments), *out = NULL;
    BL_ASSERT_OK(ctx, bl_run_spec_validate(ctx, in, "test", &out));
    bl_config_free(in);
    return out;
}

static int validate_fails(bl_ctx *ctx, const char *assignment)
{
    bl_config *in = NULL, *out = NULL;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &in));
    BL_ASSERT_OK(ctx, bl_config_set_assignment(ctx, in, assignment));
    int rc = bl_run_spec_validate(ctx, in, "test", &out);
    bl_config_free(in);
    bl_config_free(out);
    return rc;
}

static void test_validation(void **state)
{
    (void)state;
    bl_ctx *ctx = bl_ctx_new();
    /* issue 14: a budget given as 0 or less is refused as such, not as "no budget" */
    BL_ASSERT_ERR(ctx, BL_EOPTION, "'epochs' must be > 0, got -1", validate_fails(ctx, "epochs=-1"));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "'epochs' must be > 0, got 0", validate_fails(ctx, "epochs=0"));
    /* issue 14: an accuracy target is a fraction; 90 is taken for a percentage */
    BL_ASSERT_ERR(ctx, BL_EOPTION, "did you mean 0.90?", validate_fails(ctx, "target=90"));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "did you mean 0.95?",
                  validate_fails(ctx, "target=val_accuracy>=95"));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "fraction in [0, 1], got -0.5",
                  validate_fails(ctx, "target=train_accuracy>=-0.5"));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "'batch' must be ≥ 1", validate_fails(ctx, "batch=0"));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "'threads' must be ≤ 4096", validate_fails(ctx, "threads=5000"));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "did you mean 'epochs'", validate_fails(ctx, "epoch=1"));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "did you mean 'linear'",
                  validate_fails(ctx, "lr_scaling=lineer"));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "integer", validate_fails(ctx, "batch=2.5"));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "eval_every", validate_fails(ctx, "eval_every=stepz=3"));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "eval_every", validate_fails(ctx, "eval_every=auto=0"));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "eval_every", validate_fails(ctx, "eval_every=autos"));
    {   /* the adaptive cadence: "auto" is N = 8, "auto=N" any N > 0 */
        bl_train_config a = bl_train_defaults();
        BL_ASSERT_OK(ctx, bl_run_spec_parse_eval_every(ctx, "auto", &a));
        assert_int_equal(a.eval_unit, BL_EVAL_AUTO);
        assert_true(a.eval_every == 8);
        BL_ASSERT_OK(ctx, bl_run_spec_parse_eval_every(ctx, "auto=4", &a));
        assert_int_equal(a.eval_unit, BL_EVAL_AUTO);
        assert_true(a.eval_every == 4);
    }
    BL_ASSERT_ERR(ctx, BL_EOPTION, "val_accuracy", validate_fails(ctx, "target=val_acc>=0.5"));

    bl_config *spec = validated(ctx, "epochs=2 eval_every=steps=50 target=val_loss<=0.3 "
                                     "lr_scaling=sqrt prefetch=off batch=64 "
                                     "data_placement=resident");
    bl_train_config c = bl_train_defaults();
    BL_ASSERT_OK(ctx, bl_run_spec_apply(ctx, spec, "test", &c));
    assert_true(c.epochs == 2);
    assert_int_equal(c.batch, 64);
    assert_int_equal(c.eval_unit, BL_EVAL_STEPS);
    assert_true(c.eval_every == 50);
    assert_true(c.has_target);
    assert_int_equal(c.target_metric, BL_METRIC_VAL_LOSS);
    assert_false(c.target_higher_better);
    assert_true(c.target_value == 0.3);
    assert_int_equal(c.lr_scaling, BL_LR_SCALE_SQRT);
    assert_int_equal(c.prefetch, BL_PREFETCH_OFF);
    assert_int_equal(c.data_placement, BL_DATA_RESIDENT);
    bl_config_free(spec);

    /* the number shorthand: val_accuracy at least */
    c = bl_train_defaults();
    BL_ASSERT_OK(ctx, bl_run_spec_parse_target(ctx, "0.9", &c));
    assert_true(c.has_target && c.target_higher_better && c.target_value == 0.9);
    assert_int_equal(c.target_metric, BL_METRIC_VAL_ACCURACY);
    bl_ctx_free(ctx);
}

/* The engine's defaults are the spec's defaults. */
/* Validates one setting given as a number (or an integer) the way bl.train gives it. */
static int validate_value(bl_ctx *ctx, const char *name, double v, bool integer, int64_t i)
{
    bl_config *in = NULL, *out = NULL;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &in));
    if (integer)
        BL_ASSERT_OK(ctx, bl_config_set_int(ctx, in, name, i));
    else
        BL_ASSERT_OK(ctx, bl_config_set_number(ctx, in, name, v));
    int rc = bl_run_spec_validate(ctx, in, "test", &out);
    bl_config_free(in);
    bl_config_free(out);
    return rc;
}

/* issue 15, Found 3: budgets are finite, from numbers (Lua) and from text (CLI) alike. */
static void test_finite_budgets(void **state)
{
    (void)state;
    bl_ctx *ctx = bl_ctx_new();
    BL_ASSERT_ERR(ctx, BL_EOPTION, "test: 'epochs' must be a finite number in [0, 1e+06], got inf",
                  validate_value(ctx, "epochs", INFINITY, false, 0));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "'max_seconds' must be a finite number in [0, 3.1536e+07], got inf",
                  validate_value(ctx, "max_seconds", INFINITY, false, 0));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "'max_seconds' must be a finite number in [0, 3.1536e+07], got nan",
                  validate_value(ctx, "max_seconds", NAN, false, 0));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "'epochs' must be a finite number",
                  validate_value(ctx, "epochs", NAN, false, 0));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "'gns_ema' must be a finite number in [0, 1], got nan",
                  validate_value(ctx, "gns_ema", NAN, false, 0));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "'max_steps' must be ≤ 1e+12, got 9223372036854775807",
                  validate_value(ctx, "max_steps", 0, true, INT64_MAX));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "'epochs' must be ≤ 1e+06",
                  validate_value(ctx, "epochs", 2e6, false, 0));
    BL_ASSERT_OK(ctx, validate_value(ctx, "epochs", 1e6, false, 0));
    BL_ASSERT_OK(ctx, validate_value(ctx, "max_steps", 0, true, 1000000000000LL));
    BL_ASSERT_OK(ctx, validate_value(ctx, "max_seconds", 31536000.0, false, 0));
    /* the same settings as text (the CLI) are refused as well */
    assert_int_equal(validate_fails(ctx, "epochs=inf"), BL_EOPTION);
    assert_int_equal(validate_fails(ctx, "max_seconds=nan"), BL_EOPTION);
    BL_ASSERT_ERR(ctx, BL_EOPTION, "'max_steps' must be ≤ 1e+12",
                  validate_fails(ctx, "max_steps=9223372036854775807"));
    /* a target's value given as a number */
    BL_ASSERT_ERR(ctx, BL_EOPTION, "target: val_loss must be a finite number",
                  bl_run_spec_check_target(ctx, BL_METRIC_VAL_LOSS, -NAN));
    BL_ASSERT_ERR(ctx, BL_EOPTION, "target: val_loss must be a finite number, got -inf",
                  bl_run_spec_check_target(ctx, BL_METRIC_VAL_LOSS, -INFINITY));
    BL_ASSERT_OK(ctx, bl_run_spec_check_target(ctx, BL_METRIC_VAL_LOSS, 0.5));
    bl_ctx_free(ctx);
}

static void test_defaults_agree_with_engine(void **state)
{
    (void)state;
    bl_ctx *ctx = bl_ctx_new();
    bl_config *spec = validated(ctx, "");
    bl_train_config from_spec = bl_train_defaults(), engine = bl_train_defaults();
    memset(&from_spec.seed, 0xff, sizeof from_spec.seed);
    from_spec.eval_batch = -7;
    BL_ASSERT_OK(ctx, bl_run_spec_apply(ctx, spec, "test", &from_spec));
    assert_true(from_spec.seed == engine.seed);
    assert_true(from_spec.epochs == engine.epochs);
    assert_int_equal(from_spec.max_steps, engine.max_steps);
    assert_true(from_spec.max_seconds == engine.max_seconds);
    assert_int_equal(from_spec.eval_batch, engine.eval_batch);
    assert_int_equal(from_spec.train_eval_samples, engine.train_eval_samples);
    assert_int_equal(from_spec.train_accuracy_from, engine.train_accuracy_from);
    assert_int_equal(from_spec.gns_chunks, engine.gns_chunks);
    assert_true(from_spec.gns_ema == engine.gns_ema);
    assert_int_equal(from_spec.eval_unit, engine.eval_unit);
    assert_true(from_spec.eval_every == engine.eval_every);
    assert_int_equal(from_spec.lr_scaling, engine.lr_scaling);
    assert_int_equal(from_spec.lr_schedule, engine.lr_schedule);
    assert_int_equal(from_spec.prefetch, engine.prefetch);
    assert_int_equal(from_spec.micro_batch, engine.micro_batch);
    assert_int_equal(from_spec.drop_last, engine.drop_last);
    assert_int_equal(from_spec.has_target, engine.has_target);
    assert_true(from_spec.diverge_loss_factor == engine.diverge_loss_factor);
    assert_int_equal(from_spec.diverge_chance_evals, engine.diverge_chance_evals);
    assert_true(from_spec.diverge_chance_margin == engine.diverge_chance_margin);
    bl_config_free(spec);
    bl_ctx_free(ctx);
}

static char *read_text(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", BATCHLAB_SOURCE_DIR, rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = calloc((size_t)n + 1, 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return text;
}

/* The word after "default " on the line of field `name` in train.h, or NULL. */
static const char *documented_default(const char *header, const char *name, char *buf,
                                      size_t cap)
{
    char field[80];
    snprintf(field, sizeof field, " %s;", name);
    const char *at = strstr(header, field);
    if (!at)
        return NULL;
    const char *eol = strchr(at, '\n');
    const char *d = strstr(at, "default ");
    if (!d || (eol && d > eol))
        return NULL;
    d += strlen("default ");
    size_t n = strcspn(d, ";:) \n");
    snprintf(buf, cap, "%.*s", (int)(n < cap ? n : cap - 1), d);
    return buf;
}

/* train.h documents the defaults the code uses (it once said eval_batch defaults to 1000). */
static void test_train_h_documents_spec_defaults(void **state)
{
    (void)state;
    char *header = read_text("core/include/batchlab/train.h");
    size_t n;
    const bl_run_setting *set = bl_run_spec_settings(&n);
    int checked = 0;
    for (size_t i = 0; i < n; i++) {
        char buf[64];
        const char *doc = documented_default(header, set[i].opt.name, buf, sizeof buf);
        if (!doc)
            continue;
        if (strcmp(doc, set[i].opt.default_value) != 0)
            fail_msg("train.h documents %s's default as %s; the spec (and the code) use %s",
                     set[i].opt.name, doc, set[i].opt.default_value);
        checked++;
    }
    assert_true(checked >= 5); /* eval_every, eval_batch, train_eval_samples, gns_chunks, gns_ema */
    free(header);
}

/* docs/lua-api.md's bl.train table lists exactly the spec's keys, each with its default. */
static void test_lua_api_doc_lists_the_spec(void **state)
{
    (void)state;
    char *doc = read_text("docs/lua-api.md");
    char *start = strstr(doc, "## `bl.train{...}`");
    assert_non_null(start);
    char *end = strstr(start + 3, "\n## ");
    if (end)
        *end = '\0';
    size_t n;
    bl_run_spec_settings(&n);
    size_t rows = 0;
    for (char *line = strstr(start, "\n| `"); line; line = strstr(line + 1, "\n| `")) {
        char key[64];
        if (sscanf(line, "\n| `%63[a-z_]`", key) != 1)
            continue;
        char *eol = strchr(line + 1, '\n');
        if (eol)
            *eol = '\0';
        rows++;
        const bl_run_setting *s = bl_run_spec_find(key);
        bool object = false;
        for (const bl_run_object_key *k = bl_run_spec_object_keys(); k->name; k++)
            object = object || strcmp(k->name, key) == 0;
        if (!s && !object)
            fail_msg("docs/lua-api.md lists bl.train key '%s', which the run spec lacks", key);
        if (s && s->opt.default_value && *s->opt.default_value) {
            char want[3][96];
            snprintf(want[0], sizeof want[0], "default %s", s->opt.default_value);
            snprintf(want[1], sizeof want[1], "default `%s`", s->opt.default_value);
            snprintf(want[2], sizeof want[2], "default \"%s\"", s->opt.default_value);
            if (!strstr(line, want[0]) && !strstr(line, want[1]) && !strstr(line, want[2]))
                fail_msg("docs/lua-api.md: the row of '%s' does not say \"%s\"", key, want[0]);
        }
        if (eol)
            *eol = '\n';
    }
    size_t n_obj = 0;
    for (const bl_run_object_key *k = bl_run_spec_object_keys(); k->name; k++)
        n_obj++;
    if (rows != n + n_obj)
        fail_msg("docs/lua-api.md lists %zu bl.train keys; the run spec has %zu", rows,
                 n + n_obj);
    free(doc);
}

/* ---- the orchestrator ------------------------------------------------------------------------- */

typedef struct recorder {
    char log[256];
    int points;
    int fail_begin;
} recorder;

static int rec_begin(void *self, bl_ctx *ctx, const bl_run_info *info)
{
    recorder *r = self;
    assert_non_null(info->net);
    strcat(r->log, "b");
    return r->fail_begin ? bl_error(ctx, BL_EIO, "recorder refuses") : BL_OK;
}

static int rec_point(void *self, bl_ctx *ctx, const bl_eval_point *p)
{
    (void)ctx;
    (void)p;
    recorder *r = self;
    r->points++;
    if (strlen(r->log) < 200)
        strcat(r->log, "p");
    return BL_OK;
}

static void rec_end(void *self, bl_ctx *ctx, int rc, bl_run_result *result)
{
    (void)ctx;
    (void)result;
    recorder *r = self;
    strcat(r->log, rc == BL_OK ? "e" : "E");
}

static bl_run_output recording(recorder *r)
{
    return (bl_run_output){"rec", r, rec_begin, rec_point, rec_end, NULL};
}

typedef struct plan_fixture {
    bl_ctx *ctx;
    bl_registry *reg;
    bl_dataset *data;
    bl_config *spec;
    bl_run_plan plan;
} plan_fixture;

static void make_plan(plan_fixture *f)
{
    memset(f, 0, sizeof *f);
    f->ctx = bl_ctx_new();
    BL_ASSERT_OK(f->ctx, bl_registry_new(f->ctx, &f->reg));
    BL_ASSERT_OK(f->ctx, bl_registry_scan(f->ctx, f->reg));
    const bl_plugin *dp;
    BL_ASSERT_OK(f->ctx, bl_registry_find(f->ctx, f->reg, BL_PLUGIN_DATASET, "synthetic", &dp));
    bl_config *dopts;
    BL_ASSERT_OK(f->ctx, bl_config_new(f->ctx, &dopts));
    BL_ASSERT_OK(f->ctx, bl_config_set_assignment(f->ctx, dopts, "samples=400"));
    BL_ASSERT_OK(f->ctx, bl_dataset_open(f->ctx, dp, dopts, &f->data));
    bl_config_free(dopts);
    f->plan.train = bl_train_defaults();
    f->spec = validated(f->ctx, "epochs=2 batch=50 threads=1 eval_every=1");
    BL_ASSERT_OK(f->ctx, bl_run_spec_apply(f->ctx, f->spec, "test", &f->plan.train));
    f->plan.train.data = f->data;
    f->plan.threads = 1;
    BL_ASSERT_OK(f->ctx, bl_registry_find(f->ctx, f->reg, BL_PLUGIN_MODEL, "mlp", &f->plan.model));
    f->plan.label = "unit";
    f->plan.config_json = "{\"batch\":50}";
}

static void free_plan(plan_fixture *f)
{
    bl_config_free(f->spec);
    bl_dataset_close(f->data);
    bl_registry_free(f->reg);
    bl_ctx_free(f->ctx);
}

static void test_run_drives_outputs(void **state)
{
    (void)state;
    plan_fixture f;
    make_plan(&f);
    char db[1024];
    snprintf(db, sizeof db, "%s/run.db", bl_test_tmpdir("run_spec"));
    recorder a = {0}, b = {0};
    bl_run_output outs[3] = {recording(&a), {0}, recording(&b)};
    BL_ASSERT_OK(f.ctx, bl_run_store_output(f.ctx, db, "unit-exp", &outs[1]));
    bl_run_result r;
    BL_ASSERT_OK(f.ctx, bl_run(f.ctx, &f.plan, outs, 3, &r));
    assert_int_equal(r.status, BL_RUN_COMPLETED);
    assert_int_equal(a.points, (int)r.history_count);
    assert_true(a.points >= 2);
    assert_string_equal(a.log, b.log);
    assert_int_equal(a.log[0], 'b');
    assert_int_equal(a.log[strlen(a.log) - 1], 'e');
    int64_t id = bl_run_store_output_id(&outs[1]);
    assert_true(id > 0);
    /* resume finds the finished run of the same configuration */
    int64_t found = 0;
    BL_ASSERT_OK(f.ctx, bl_run_store_output_find(f.ctx, &outs[1], f.plan.config_json, &found));
    assert_int_equal(found, id);
    bl_run_result stored;
    BL_ASSERT_OK(f.ctx, bl_run_store_output_load(f.ctx, &outs[1], id, &stored));
    assert_int_equal(stored.history_count, r.history_count);
    assert_int_equal(stored.steps, r.steps);
    bl_run_result_free(&stored);
    bl_run_result_free(&r);
    bl_run_outputs_close(outs, 3);

    /* an output that fails to begin: no training, the outputs begun before it end */
    recorder c = {0}, d = {.fail_begin = 1}, e = {0};
    bl_run_output outs2[3] = {recording(&c), recording(&d), recording(&e)};
    BL_ASSERT_ERR(f.ctx, BL_EIO, "recorder refuses", bl_run(f.ctx, &f.plan, outs2, 3, &r));
    assert_int_equal(r.status, BL_RUN_FAILED);
    assert_string_equal(c.log, "bE");
    assert_string_equal(d.log, "b");
    assert_string_equal(e.log, "");
    bl_run_result_free(&r);
    free_plan(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_finite_budgets),
        cmocka_unit_test(test_defaults_agree_with_engine),
        cmocka_unit_test(test_train_h_documents_spec_defaults),
        cmocka_unit_test(test_lua_api_doc_lists_the_spec),
        cmocka_unit_test(test_run_drives_outputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
