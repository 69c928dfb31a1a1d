/* The outputs shipped with the run orchestrator (batchlab/run.h): the results store,
 * TensorBoard event files and progress lines. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/run.h"
#include "batchlab/store.h"
#include "batchlab/tfevents.h"

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
    return bl_store_run_begin(ctx, s->store, s->experiment, info->plan->label,
                              info->plan->config_json, info->train->seed, &s->run_id);
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

static int tb_begin(void *self, bl_ctx *ctx, const bl_run_info *info)
{
    (void)info;
    tb_out *t = self;
    int rc = bl_tfevents_open(ctx, t->dir, t->run_name, &t->w);
    if (rc == BL_OK && t->hparams)
        rc = bl_tfevents_hparams(ctx, t->w, t->hparams, NULL, 0);
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
    if (bl_tfevents_end(ctx, t->w, result->status) != BL_OK && result->status == BL_RUN_COMPLETED) {
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
