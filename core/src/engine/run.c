/* The run orchestrator (batchlab/run.h): builds what a plan names, runs bl_train and drives the
 * outputs' hooks. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batchlab/model.h"
#include "batchlab/run.h"
#include "batchlab/run_spec.h"
#include "batchlab/scheduler.h"
#include "batchlab/snapshot.h"
#include "engine/data_parallel.h"

/* The outputs, as bl_train's one on_point. */
typedef struct chain {
    bl_run_output *outputs;
    size_t n;
} chain;

static int chain_point(void *user, bl_ctx *ctx, const bl_eval_point *p)
{
    chain *c = user;
    for (size_t i = 0; i < c->n; i++) {
        bl_run_output *o = &c->outputs[i];
        int rc = o->point ? o->point(o->self, ctx, p) : BL_OK;
        if (rc != BL_OK)
            return rc;
    }
    return BL_OK;
}

void bl_run_result_blank(bl_run_result *r)
{
    memset(r, 0, sizeof *r);
    r->status = BL_RUN_FAILED;
    r->final = (bl_eval_point){.epoch = NAN, .wall = NAN, .lr = NAN, .train_loss = NAN,
                               .train_accuracy = NAN, .val_loss = NAN, .val_accuracy = NAN,
                               .gns = NAN, .samples_per_sec = NAN};
    r->test_loss = r->test_accuracy = NAN;
    r->time_to_target = r->wall_time_to_target = r->epochs_to_target = NAN;
    r->step_time_median = NAN;
    r->steps_to_target = r->samples_to_target = r->diverged_step = -1;
    r->steps_to_target_error = -1;
    r->resumed_step = -1;
    snprintf(r->stopped_by, sizeof r->stopped_by, "error");
}

/* Opens the plan's device by name ("cpu" when none), with its host thread count. */
static int open_device(bl_ctx *ctx, const bl_run_plan *plan, bl_device **dev)
{
    return bl_device_open_threads(ctx, plan->device ? plan->device : "cpu", plan->threads, dev);
}

/* Begins every output; on a failure, ends those already begun with the error. */
static int begin_outputs(bl_ctx *ctx, bl_run_output *outputs, size_t n, const bl_run_info *info,
                         bl_run_result *result)
{
    for (size_t i = 0; i < n; i++) {
        int rc = outputs[i].begin ? outputs[i].begin(outputs[i].self, ctx, info) : BL_OK;
        if (rc != BL_OK) {
            snprintf(result->error, sizeof result->error, "%s", bl_errmsg(ctx));
            for (size_t k = 0; k < i; k++)
                if (outputs[k].end)
                    outputs[k].end(outputs[k].self, ctx, rc, result);
            return rc;
        }
    }
    return BL_OK;
}

/* ---- checkpoints and weight files ------------------------------------------------------------ */

int bl_run_plan_files(bl_ctx *ctx, const bl_config *spec, bl_run_plan *plan)
{
    int rc = bl_run_spec_parse_checkpoint_every(ctx, bl_config_string(spec, "checkpoint_every"),
                                                &plan->checkpoint_every,
                                                &plan->checkpoint_seconds);
    if (rc != BL_OK)
        return rc;
    const char *ck = bl_config_string(spec, "checkpoint");
    const char *save = bl_config_string(spec, "save");
    const char *init = bl_config_string(spec, "init");
    plan->checkpoint = *ck ? ck : NULL;
    plan->save = *save ? save : NULL;
    plan->init = *init ? init : NULL;
    plan->resume = bl_config_bool(spec, "resume");
    return BL_OK;
}

typedef struct files {
    const bl_run_plan *plan;
    bl_run_result *result;
    char *checkpoint;        /* path when checkpointing, else NULL */
    bl_snapshot *resume;     /* the checkpoint continued from, or NULL */
} files;

/* FNV-1a, 64 bits: names a configuration's default checkpoint file. */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The default checkpoint file (run.h): DIR/batchlab-checkpoints/HASH.blsnap, DIR the store's
 * directory (or "."); makes the batchlab-checkpoints directory. */
static int default_checkpoint(bl_ctx *ctx, const bl_run_plan *plan, const char *store,
                              char **out)
{
    if (!plan->config_json)
        return bl_error(ctx, BL_EOPTION, "checkpoint_every: this run has no configuration text "
                        "to name its checkpoint by: give checkpoint = FILE");
    const char *slash = store ? strrchr(store, '/') : NULL;
    int dlen = slash ? (int)(slash - store) : 1;
    const char *dir = slash ? store : ".";
    if (slash == store)
        dlen = 1;   /* "/x.db" */
    size_t cap = (size_t)dlen + 64;
    char *path = malloc(cap);
    if (!path)
        return bl_error(ctx, BL_ENOMEM, "out of memory");
    snprintf(path, cap, "%.*s/batchlab-checkpoints", dlen, dir);
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
        int rc = bl_error(ctx, BL_EIO, "cannot make the checkpoint directory '%s': %s", path,
                          strerror(errno));
        free(path);
        return rc;
    }
    snprintf(path, cap, "%.*s/batchlab-checkpoints/%016" PRIx64 ".blsnap", dlen, dir,
             fnv1a(plan->config_json));
    *out = path;
    return BL_OK;
}

static int write_checkpoint(void *user, bl_ctx *ctx, const bl_snapshot *snap)
{
    files *f = user;
    int rc = bl_snapshot_write(ctx, snap, f->checkpoint);
    return rc == BL_OK ? 0 : bl_error_prefix(ctx, "checkpoint");
}

/* The end: a completed run writes `save` and removes its checkpoint; an interrupted one
 * writes a last checkpoint. */
static int write_final(void *user, bl_ctx *ctx, const bl_snapshot *snap)
{
    files *f = user;
    bl_run_status st = f->result->status;
    if (st == BL_RUN_COMPLETED && f->plan->save) {
        if (bl_snapshot_write(ctx, snap, f->plan->save) != BL_OK)
            return bl_error_prefix(ctx, "save");
    }
    if (st == BL_RUN_COMPLETED && f->checkpoint)
        unlink(f->checkpoint);
    if (st == BL_RUN_INTERRUPTED && f->checkpoint)
        return write_checkpoint(user, ctx, snap);
    return 0;
}

/* The store path of the first store output, or NULL. */
static const char *store_path(bl_run_output *outputs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *p = bl_run_store_output_path(&outputs[i]);
        if (p)
            return p;
    }
    return NULL;
}

/* A file the run will write must be a regular file or not exist: said before training, not
 * after it. */
static int check_target(bl_ctx *ctx, const char *what, const char *path)
{
    struct stat st;
    if (path && lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return bl_error(ctx, BL_EIO, "%s: '%s' is not a regular file (%s): refusing to replace "
                        "it", what, path, S_ISFIFO(st.st_mode) ? "a FIFO"
                                          : S_ISDIR(st.st_mode) ? "a directory"
                                          : S_ISLNK(st.st_mode) ? "a symbolic link"
                                                                : "a device or socket");
    return BL_OK;
}

/* init weights, the checkpoint file and the snapshot to resume from; installs the snapshot
 * callbacks in cfg. */
static int prepare_files(bl_ctx *ctx, const bl_run_plan *plan, bl_net *net,
                         bl_run_output *outputs, size_t n, bl_train_config *cfg, files *f)
{
    int rc;
    if (plan->init) {
        bl_snapshot *w = NULL;
        rc = bl_snapshot_read(ctx, plan->init, &w);
        if (rc == BL_OK)
            rc = bl_snapshot_load_weights(ctx, w, net);
        bl_snapshot_free(w);
        if (rc != BL_OK)
            return bl_error_prefix(ctx, "init");
    }
    bool checkpointing = plan->checkpoint_every > 0 || plan->checkpoint_seconds > 0;
    /* the plan's own snapshot callbacks keep their user unless the run writes files */
    if ((checkpointing || plan->save) && (cfg->on_snapshot || cfg->on_final_snapshot))
        return bl_error(ctx, BL_EINVAL, "run: checkpoints or save cannot be combined with the "
                        "plan's own snapshot callbacks");
    if ((rc = check_target(ctx, "save", plan->save)) != BL_OK)
        return rc;
    if (checkpointing) {
        if (plan->checkpoint) {
            f->checkpoint = strdup(plan->checkpoint);
            if (!f->checkpoint)
                return bl_error(ctx, BL_ENOMEM, "out of memory");
        } else if ((rc = default_checkpoint(ctx, plan, store_path(outputs, n), &f->checkpoint)) !=
                   BL_OK) {
            return rc;
        }
        if ((rc = check_target(ctx, "checkpoint", f->checkpoint)) != BL_OK)
            return rc;
        if (plan->resume) {
            rc = bl_snapshot_read(ctx, f->checkpoint, &f->resume);
            if (rc == BL_ENOTFOUND) {
                bl_clear_error(ctx);
            } else if (rc != BL_OK) {
                return bl_error_prefix(ctx, "resume");
            } else if (plan->config_json &&
                       strcmp(bl_snapshot_tag(f->resume), plan->config_json) != 0) {
                return bl_error(ctx, BL_EINVAL,
                                "resume: the checkpoint '%s' was written by another "
                                "configuration (remove it, or give another checkpoint file)",
                                f->checkpoint);
            }
        }
        cfg->on_snapshot = write_checkpoint;
        cfg->snapshot_every = plan->checkpoint_every;
        cfg->snapshot_seconds = plan->checkpoint_seconds;
        cfg->snapshot_tag = plan->config_json;
        cfg->resume_from = f->resume;
    }
    if (checkpointing || plan->save) {
        cfg->on_final_snapshot = write_final;
        cfg->snapshot_tag = plan->config_json;
        cfg->snapshot_user = f;
    }
    return BL_OK;
}

/* The outputs see the points of the run continued from (run.h). */
static int replay_points(bl_ctx *ctx, const bl_snapshot *snap, chain *c)
{
    bl_eval_point *points = NULL;
    size_t count = 0;
    int rc = bl_snapshot_history(ctx, snap, &points, &count);
    for (size_t i = 0; rc == BL_OK && i < count; i++)
        rc = chain_point(c, ctx, &points[i]);
    free(points);
    return rc;
}

int bl_run(bl_ctx *ctx, bl_run_plan *plan, bl_run_output *outputs, size_t n,
           bl_run_result *result)
{
    bl_run_result_blank(result);
    if (!plan->model)
        return bl_error(ctx, BL_EINVAL, "run: no model plugin");
    if (plan->train.on_point)
        return bl_error(ctx, BL_EINVAL, "run: give points to an output, not to on_point");
    int64_t n_train = plan->train.data ? bl_dataset_info(plan->train.data)->count[BL_SPLIT_TRAIN]
                                       : 0;
    if (!plan->scheduler_plugin && !plan->train.scheduler && !plan->train.batch_fn &&
        n_train > 0 && plan->train.batch > n_train)
        return bl_error(ctx, BL_EOPTION,
                        "train: batch %lld is larger than the %lld training samples (every "
                        "step would take the whole set, with buffers sized for %lld); give "
                        "batch ≤ %lld",
                        (long long)plan->train.batch, (long long)n_train,
                        (long long)plan->train.batch, (long long)n_train);
    bl_device *dev = NULL;
    bl_net *net = NULL;
    bl_scheduler *sched = NULL;
    int rc = open_device(ctx, plan, &dev);
    if (rc == BL_OK)
        rc = bl_model_build(ctx, plan->model, plan->model_opts, bl_dataset_info(plan->train.data),
                            dev, plan->train.seed, &net);
    if (rc == BL_OK && plan->scheduler_plugin)
        rc = bl_scheduler_open(ctx, plan->scheduler_plugin, plan->scheduler_opts, &sched);
    bl_train_config cfg = plan->train;
    cfg.net = net;
    if (sched)
        cfg.scheduler = sched;
    chain c = {outputs, n};
    cfg.on_point = chain_point;
    cfg.point_user = &c;
    files f = {plan, result, NULL, NULL};
    if (rc == BL_OK)
        rc = prepare_files(ctx, plan, net, outputs, n, &cfg, &f);
    /* data-parallel: from here on every rank of the run takes the same path (bl__dp_agree) */
    bl_reducer red;
    int drc = bl__dp_setup(ctx, plan, &cfg, &red);
    if (rc == BL_OK)
        rc = drc;
    bl_run_output *own = NULL;     /* data-parallel, rank > 0: the outputs of every rank */
    if (rc == BL_OK && cfg.reducer && red.rank > 0) {
        size_t k = 0;
        if (!(own = malloc((n ? n : 1) * sizeof *own)))
            rc = bl_error(ctx, BL_ENOMEM, "out of memory");
        for (size_t i = 0; own && i < n; i++)
            if (!bl__run_output_rank0_only(&outputs[i]))
                own[k++] = outputs[i];
        outputs = own;
        n = k;
        c = (chain){outputs, n};
    }
    bl_run_info info = {plan, net, dev, &cfg};
    if (rc == BL_OK)
        rc = begin_outputs(ctx, outputs, n, &info, result);
    if (cfg.reducer) {           /* every rank trains, or none; rank 0's weights */
        int arc = bl__dp_agree(ctx, cfg.reducer, rc);
        if (arc == BL_OK)
            arc = bl__dp_share_params(ctx, cfg.reducer, net);
        if (rc == BL_OK && arc != BL_OK) {
            snprintf(result->error, sizeof result->error, "%s", bl_errmsg(ctx));
            for (size_t i = 0; i < n; i++)
                if (outputs[i].end)
                    outputs[i].end(outputs[i].self, ctx, arc, result);
        }
        rc = arc;
    }
    if (rc == BL_OK) {
        if (f.resume)
            rc = replay_points(ctx, f.resume, &c);
        if (rc == BL_OK)
            rc = bl_train(ctx, &cfg, result);
        for (size_t i = 0; i < n; i++)
            if (outputs[i].end)
                outputs[i].end(outputs[i].self, ctx, rc, result);
    }
    free(own);
    bl_snapshot_free(f.resume);
    free(f.checkpoint);
    bl_scheduler_close(sched);
    bl_net_free(net);
    bl_device_free(dev);
    return rc;
}

void bl_run_outputs_close(bl_run_output *outputs, size_t n)
{
    for (size_t i = 0; outputs && i < n; i++) {
        if (outputs[i].close)
            outputs[i].close(outputs[i].self);
        outputs[i].close = NULL;
        outputs[i].self = NULL;
    }
}
