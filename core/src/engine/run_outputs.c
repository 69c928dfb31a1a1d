/* The outputs shipped with the run orchestrator (batchlab/run.h): the results store,
 * TensorBoard event files and progress lines. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/run.h"
#include "batchlab/store.h"
#include "batchlab/tfevents.h"
#include "engine/data_parallel.h"

/* ---- the results store ------------------------------------------------------------------------ */

typedef struct store_out {
    bl_store *store;
    int64_t experiment;      /* 0 = none */
    int64_t run_id;          /* > 0 once begun */
    bool ended;
} store_out;

static int store_begin(void *self, bl_ctx *ctx, const bl_run_info *info)
{
    store_out *s = self;
    int rc = bl_store_run_begin(ctx, s->store, s->experiment, info->plan->label,
                                info->plan->config_json, info->train->seed, &s->run_id);
    if (rc == BL_OK && info->train->reducer && info->train->reducer->ranks > 1)
        rc = bl_store_run_set_ranks(ctx, s->store, s->run_id, info->train->reducer->ranks);
    return rc;
}

static int store_point(void *self, bl_ctx *ctx, const bl_eval_point *p)
{
    store_out *s = self;
    return bl_store_add_point(ctx, s->store, s->run_id, p);
}

static void store_end(void *self, bl_ctx *ctx, int rc, bl_run_result *result)
{
    store_out *s = self;
    if (s->run_id <= 0 || s->ended)
        return;
    s->ended = true;
    bl_run_result res = *result;
    if (rc != BL_OK) {
        /* ctx holds the message the caller reports: record it, keep it */
        res.status = BL_RUN_FAILED;
        snprintf(res.stopped_by, sizeof res.stopped_by, "error");
        snprintf(res.error, sizeof res.error, "%s", bl_errmsg(ctx));
        bl_store_run_end(NULL, s->store, s->run_id, &res);
        return;
    }
    if (res.status == BL_RUN_RUNNING)
        res.status = BL_RUN_FAILED;
    if (bl_store_run_end(ctx, s->store, s->run_id, &res) != BL_OK &&
        result->status == BL_RUN_COMPLETED) {
        /* the run cannot be recorded: say so rather than lose it quietly */
        result->status = BL_RUN_FAILED;
        snprintf(result->stopped_by, sizeof result->stopped_by, "error");
        snprintf(result->error, sizeof result->error, "%s", bl_errmsg(ctx));
    }
}

static void store_close(void *self)
{
    store_out *s = self;
    if (!s)
        return;
    bl_store_close(s->store);
    free(s);
}

int bl_run_store_output(bl_ctx *ctx, const char *path, const char *experiment,
                        bl_run_output *out)
{
    memset(out, 0, sizeof *out);
    store_out *s = calloc(1, sizeof *s);
    if (!s)
        return bl_error(ctx, BL_ENOMEM, "results store: out of memory");
    int rc = bl_store_open(ctx, path ? path : bl_store_default_path(), &s->store);
    if (rc == BL_OK && experiment)
        rc = bl_store_experiment(ctx, s->store, experiment, &s->experiment);
    if (rc != BL_OK) {
        store_close(s);
        return rc;
    }
    *out = (bl_run_output){"store", s, store_begin, store_point, store_end, store_close};
    return BL_OK;
}

int64_t bl_run_store_output_id(const bl_run_output *out)
{
    return out->begin == store_begin ? ((const store_out *)out->self)->run_id : 0;
}

const char *bl_run_store_output_path(const bl_run_output *out)
{
    return out->begin == store_begin ? bl_store_path(((const store_out *)out->self)->store) : NULL;
}

struct bl_store *bl_run_store_output_store(const bl_run_output *out, int64_t *experiment)
{
    if (out->begin != store_begin)
        return NULL;
    const store_out *s = out->self;
    if (experiment)
        *experiment = s->experiment;
    return s->store;
}

int bl_run_store_output_find(bl_ctx *ctx, bl_run_output *out, const char *config_json,
                             int64_t *run_id)
{
    if (out->begin != store_begin)
        return bl_error(ctx, BL_EINVAL, "not a store output");
    store_out *s = out->self;
    return bl_store_find_completed(ctx, s->store, s->experiment, config_json, run_id);
}

int bl_run_store_output_load(bl_ctx *ctx, bl_run_output *out, int64_t run_id,
                             bl_run_result *result)
{
    if (out->begin != store_begin)
        return bl_error(ctx, BL_EINVAL, "not a store output");
    store_out *s = out->self;
    return bl_store_load_result(ctx, s->store, run_id, result, NULL);
}

/* ---- TensorBoard event files ------------------------------------------------------------------ */

typedef struct tb_out {
    char *dir, *run_name;
    bl_config *hparams;
    bl_tfevents *w;
} tb_out;

/* The final figures: scalars at the run's last step (when known) and metrics of the HParams
 * table, after the four of every point. */
static const char *const tb_final_tags[] = {"test/accuracy", "test/loss",
                                            "target/time_to_target", "target/steps_to_target"};

/* Sets dst[prefix + key] to src's entry i (numbers, integers and booleans as they are; strings
 * and lists as their option text). */
static int tb_copy_entry(bl_ctx *ctx, bl_config *dst, const char *prefix, const bl_config *src,
                         size_t i)
{
    const char *key = bl_config_key(src, i);
    char name[256];
    snprintf(name, sizeof name, "%s%s", prefix, key);
    switch (bl_config_type_at(src, i)) {
    case BL_TYPE_NUMBER: return bl_config_set_number(ctx, dst, name, bl_config_number(src, key));
    case BL_TYPE_INT: return bl_config_set_int(ctx, dst, name, bl_config_int(src, key));
    case BL_TYPE_BOOL: return bl_config_set_bool(ctx, dst, name, bl_config_bool(src, key));
    default: {
        size_t n = bl_config_format_value(src, i, NULL, 0);
        char *text = malloc(n + 1);
        if (!text)
            return bl_error(ctx, BL_ENOMEM, "tensorboard: out of memory");
        bl_config_format_value(src, i, text, n + 1);
        int rc = bl_config_set_string(ctx, dst, name, text);
        free(text);
        return rc;
    }
    }
}

/* Every option of a plugin as dst["<prefix><option>"]: the given (validated) ones, else the
 * declared defaults. */
static int tb_plugin_options(bl_ctx *ctx, bl_config *dst, const char *prefix,
                             const bl_plugin *plugin, const bl_config *opts)
{
    bl_config *defaults = NULL;
    int rc = BL_OK;
    if (!opts && plugin->options) {
        bl_config *empty = NULL;
        rc = bl_config_new(ctx, &empty);
        if (rc == BL_OK)
            rc = bl_config_validate(ctx, empty, plugin->options, plugin->name, &defaults);
        bl_config_free(empty);
        if (rc != BL_OK) {               /* a required option: the run itself will say so */
            bl_clear_error(ctx);
            return BL_OK;
        }
        opts = defaults;
    }
    for (size_t i = 0; opts && i < bl_config_count(opts) && rc == BL_OK; i++)
        rc = tb_copy_entry(ctx, dst, prefix, opts, i);
    bl_config_free(defaults);
    return rc;
}

/* The run's hyperparameters: the front end's (`given`, may be NULL), then what the plan says,
 * under the same names for every run so that the runs of a sweep share the HParams columns:
 *   lr_scaling, base_batch (when not given: the run's constant batch; 0 when a schedule picks
 *   the first one), warmup_epochs, warmup_steps,
 *   lr_schedule, target_metric ("none" without a target), target_value (NaN: no value),
 *   model.<option> for every option of the model plugin,
 *   scheduler (the plugin's name; without one "none", unless the front end named the batch
 *   source) and scheduler.<option>. */
static int tb_hparams(bl_ctx *ctx, const bl_config *given, const bl_run_info *info,
                      bl_config **out)
{
    static const char *const scaling[] = {"none", "linear", "sqrt"};
    static const char *const schedules[] = {"constant", "step", "cosine", "linear"};
    const bl_run_plan *plan = info->plan;
    const bl_train_config *c = info->train;
    bl_config *hp = NULL;
    int rc = given ? bl_config_clone(ctx, given, &hp) : bl_config_new(ctx, &hp);
    if (rc != BL_OK)
        return rc;
    unsigned rule = (unsigned)c->lr_scaling, sched = (unsigned)c->lr_schedule;
    rc = bl_config_set_string(ctx, hp, "lr_scaling", rule < 3 ? scaling[rule] : "?");
    if (rc == BL_OK)
        rc = bl_config_set_int(ctx, hp, "base_batch", c->base_batch > 0 ? c->base_batch
                                                                          : c->batch);
    if (rc == BL_OK)
        rc = bl_config_set_number(ctx, hp, "warmup_epochs", c->warmup_epochs);
    if (rc == BL_OK)
        rc = bl_config_set_int(ctx, hp, "warmup_steps", c->warmup_steps);
    if (rc == BL_OK)
        rc = bl_config_set_string(ctx, hp, "lr_schedule", sched < 4 ? schedules[sched] : "?");
    if (rc == BL_OK)
        rc = bl_config_set_string(ctx, hp, "target_metric",
                                  c->has_target ? bl_metric_name(c->target_metric) : "none");
    if (rc == BL_OK)
        rc = bl_config_set_number(ctx, hp, "target_value", c->has_target ? c->target_value : NAN);
    if (rc == BL_OK && plan->model)
        rc = tb_plugin_options(ctx, hp, "model.", plan->model, plan->model_opts);
    if (rc == BL_OK && plan->scheduler_plugin) {
        rc = bl_config_set_string(ctx, hp, "scheduler", plan->scheduler_plugin->name);
        if (rc == BL_OK)
            rc = tb_plugin_options(ctx, hp, "scheduler.", plan->scheduler_plugin,
                                   plan->scheduler_opts);
    } else if (rc == BL_OK && bl_config_find(hp, "scheduler") < 0) {
        rc = bl_config_set_string(ctx, hp, "scheduler", c->batch_fn ? "function" : "none");
    }
    if (rc != BL_OK) {
        bl_config_free(hp);
        return rc;
    }
    *out = hp;
    return BL_OK;
}

static int tb_begin(void *self, bl_ctx *ctx, const bl_run_info *info)
{
    tb_out *t = self;
    const char *tags[4 + sizeof tb_final_tags / sizeof tb_final_tags[0]];
    size_t n = 0;
    for (size_t i = 0; i < 4; i++)
        tags[n++] = bl_tfevents_metric_tags[i];
    for (size_t i = 0; i < sizeof tb_final_tags / sizeof tb_final_tags[0]; i++)
        tags[n++] = tb_final_tags[i];
    bl_config *hp = NULL;
    int rc = tb_hparams(ctx, t->hparams, info, &hp);
    if (rc == BL_OK)
        rc = bl_tfevents_open(ctx, t->dir, t->run_name, &t->w);
    if (rc == BL_OK)
        rc = bl_tfevents_hparams(ctx, t->w, hp, tags, n);
    bl_config_free(hp);
    return rc;
}

/* The final figures of a run as scalars at its last step; NaN ones (no test split, target not
 * reached) are left out. */
static int tb_final(bl_ctx *ctx, bl_tfevents *w, const bl_run_result *r)
{
    const double values[] = {r->test_accuracy, r->test_loss, r->time_to_target,
                             r->steps_to_target >= 0 && !isnan(r->time_to_target)
                                 ? (double)r->steps_to_target
                                 : NAN};
    int rc = BL_OK;
    for (size_t i = 0; i < sizeof values / sizeof values[0] && rc == BL_OK; i++)
        if (!isnan(values[i]))
            rc = bl_tfevents_scalar(ctx, w, tb_final_tags[i], r->steps, values[i], 0);
    return rc;
}

static int tb_point(void *self, bl_ctx *ctx, const bl_eval_point *p)
{
    tb_out *t = self;
    return bl_tfevents_point(ctx, t->w, p);
}

static void tb_end(void *self, bl_ctx *ctx, int rc, bl_run_result *result)
{
    tb_out *t = self;
    if (!t->w)
        return;
    if (rc != BL_OK) {
        bl_tfevents_end(NULL, t->w, BL_RUN_FAILED);
        return;                  /* closed by close: the path stays readable */
    }
    if ((tb_final(ctx, t->w, result) != BL_OK ||
         bl_tfevents_end(ctx, t->w, result->status) != BL_OK) &&
        result->status == BL_RUN_COMPLETED) {
        result->status = BL_RUN_FAILED;
        snprintf(result->stopped_by, sizeof result->stopped_by, "error");
        snprintf(result->error, sizeof result->error, "%s", bl_errmsg(ctx));
    }
}

static void tb_close(void *self)
{
    tb_out *t = self;
    if (!t)
        return;
    bl_tfevents_close(NULL, t->w);
    bl_config_free(t->hparams);
    free(t->dir);
    free(t->run_name);
    free(t);
}

int bl_run_tensorboard_output(bl_ctx *ctx, const char *dir, const char *run_name,
                              const bl_config *hparams, bl_run_output *out)
{
    memset(out, 0, sizeof *out);
    tb_out *t = calloc(1, sizeof *t);
    if (!t || !(t->dir = strdup(dir)) || !(t->run_name = strdup(run_name)) ||
        (hparams && bl_config_clone(ctx, hparams, &t->hparams) != BL_OK)) {
        tb_close(t);
        return bl_error(ctx, BL_ENOMEM, "tensorboard: out of memory");
    }
    *out = (bl_run_output){"tensorboard", t, tb_begin, tb_point, tb_end, tb_close};
    return BL_OK;
}

const char *bl_run_tensorboard_output_path(const bl_run_output *out)
{
    const tb_out *t = out->begin == tb_begin ? out->self : NULL;
    return t && t->w ? bl_tfevents_path(t->w) : NULL;
}

/* ---- progress lines --------------------------------------------------------------------------- */

static int progress_begin(void *self, bl_ctx *ctx, const bl_run_info *info)
{
    (void)ctx;
    bl_progress_printer *p = self;
    bl_train_config *cfg = info->train;
    double n_train = (double)bl_dataset_info(cfg->data)->count[BL_SPLIT_TRAIN];
    p->planned_samples = cfg->epochs > 0 ? (int64_t)(cfg->epochs * n_train) : 0;
    p->max_steps = cfg->max_steps;
    p->max_seconds = cfg->max_seconds;
    cfg->on_progress = bl_progress_print;
    cfg->progress_user = p;
    return BL_OK;
}

static int progress_point(void *self, bl_ctx *ctx, const bl_eval_point *point)
{
    (void)ctx;
    bl_progress_point(self, point);
    return BL_OK;
}

static void progress_end(void *self, bl_ctx *ctx, int rc, bl_run_result *result)
{
    (void)ctx;
    (void)rc;
    /* the final line: the last evaluation, the status and why the run stopped */
    bl_progress_end(self, result);
}

static void progress_close(void *self)
{
    free(self);
}

int bl_run_progress_output(bl_ctx *ctx, const char *label, bool live, bl_run_output *out)
{
    memset(out, 0, sizeof *out);
    bl_progress_printer *p = calloc(1, sizeof *p);
    if (!p)
        return bl_error(ctx, BL_ENOMEM, "progress: out of memory");
    p->label = label;
    p->live = live;
    *out = (bl_run_output){"progress", p, progress_begin, progress_point, progress_end,
                           progress_close};
    return BL_OK;
}

void bl_run_progress_output_position(bl_run_output *out, int index, int count,
                                     double sweep_elapsed)
{
    if (out->begin != progress_begin)
        return;
    bl_progress_printer *p = out->self;
    p->run_index = index;
    p->run_count = count;
    p->sweep_elapsed = sweep_elapsed;
}

/* Whether `out` is one of the record-keeping outputs above, which a data-parallel run gives
 * to its rank 0 only (run.h). */
bool bl__run_output_rank0_only(const bl_run_output *out)
{
    return out->begin == store_begin || out->begin == tb_begin ||
           out->begin == progress_begin;
}
