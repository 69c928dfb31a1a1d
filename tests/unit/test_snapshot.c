/* Training-state snapshots (batchlab/snapshot.h): a run paused at a step and continued from
 * its snapshot ends with the same parameters, byte for byte, as the run that was never
 * stopped — mlp (with dropout, with batch norm) and cnn, momentum SGD and Adam, the prefetch
 * thread on and off, a scheduler that changes the batch mid-run (stateless "step" and
 * stateful "gns"), in memory and through a file; branching with another batch and LR; a
 * snapshot that does not fit the run; damaged, truncated and foreign files; targets that are
 * not regular files. */
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batchlab/snapshot.h"
#include "testutil.h"

typedef struct fixture {
    bl_ctx *ctx;
    bl_device *dev;
    bl_registry *reg;
    bl_dataset *blobs, *images;
    char dir[1024];
} fixture;

/* ---- data ---------------------------------------------------------------------------------- */

/* 240 noisy 8×8 images of a bar, label 0 horizontal / 1 vertical, as IDX files in dir. */
static void write_bars(const char *dir)
{
    bl_rng rng;
    bl_rng_seed(&rng, 11, BL_STREAM_USER);
    enum { N = 240, S = 8 };
    static unsigned char img[N][S * S], lab[N];
    for (int n = 0; n < N; n++) {
        lab[n] = (unsigned char)bl_rng_below(&rng, 2);
        int pos = 1 + (int)bl_rng_below(&rng, S - 2);
        for (int i = 0; i < S * S; i++)
            img[n][i] = (unsigned char)bl_rng_below(&rng, 80);
        for (int j = 0; j < S; j++)
            img[n][lab[n] ? j * S + pos : pos * S + j] = 255;
    }
    bl_test_write_idx(dir, "train-images-idx3-ubyte", 3, (const uint32_t[]){N, S, S}, &img[0][0],
                      sizeof img);
    bl_test_write_idx(dir, "train-labels-idx1-ubyte", 1, (const uint32_t[]){N}, lab, sizeof lab);
}

/* The fixture as testutil's environment (the same context, device and registry). */
static bl_test_env env_of(const fixture *f)
{
    return (bl_test_env){f->ctx, f->dev, f->reg};
}

static bl_dataset *open_data(fixture *f, const char *plugin, const char *opts)
{
    bl_test_env env = env_of(f);
    return bl_test_dataset(&env, plugin, opts);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->ctx = bl_ctx_new();
    if (bl_device_cpu_open(f->ctx, 1, &f->dev) != BL_OK ||
        bl_registry_new(f->ctx, &f->reg) != BL_OK || bl_registry_scan(f->ctx, f->reg) != BL_OK) {
        fprintf(stderr, "setup: %s\n", bl_errmsg(f->ctx));
        return -1;
    }
    snprintf(f->dir, sizeof f->dir, "%s", bl_test_tmpdir("snapshot"));
    write_bars(f->dir);
    f->blobs = open_data(f, "synthetic",
                         "task=blobs samples=700 dim=6 classes=3 noise=1.0 seed=3 "
                         "validation=100 test=50");
    char opts[1200];
    snprintf(opts, sizeof opts, "dir=%s validation=40", f->dir);
    f->images = open_data(f, "idx", opts);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    bl_dataset_close(f->blobs);
    bl_dataset_close(f->images);
    bl_test_rmdir(f->dir);
    bl_registry_free(f->reg);
    bl_device_free(f->dev);
    bl_ctx_free(f->ctx);
    free(f);
    return 0;
}

static bl_net *build(fixture *f, const char *model, const char *opts, bl_dataset *ds,
                     uint64_t seed)
{
    bl_test_env env = env_of(f);
    return bl_test_model(&env, model, opts, ds, seed);
}

static bl_scheduler *open_sched(fixture *f, const char *name, const char *opts)
{
    const bl_plugin *p;
    BL_ASSERT_OK(f->ctx, bl_registry_find(f->ctx, f->reg, BL_PLUGIN_SCHEDULER, name, &p));
    bl_config *cfg = bl_test_config(f->ctx, opts);
    bl_scheduler *s;
    BL_ASSERT_OK(f->ctx, bl_scheduler_open(f->ctx, p, cfg, &s));
    bl_config_free(cfg);
    return s;
}

static float *params_of(fixture *f, bl_net *net)
{
    size_t n = bl_net_num_params(net);
    float *h = malloc(n * sizeof *h);
    BL_ASSERT_OK(f->ctx, bl_device_download(f->ctx, f->dev, h, bl_net_params(net), n * sizeof *h));
    return h;
}

/* ---- one case ------------------------------------------------------------------------------ */

typedef struct a_case {
    const char *model, *model_opts;
    bool images;
    bl_optim_kind optim;
    bl_prefetch_mode prefetch;
    const char *sched, *sched_opts;   /* NULL: constant batch 24 */
    bool via_file;
} a_case;

static int keep_and_pause(void *user, bl_ctx *ctx, const bl_snapshot *snap)
{
    return bl_snapshot_copy(ctx, snap, (bl_snapshot **)user) == BL_OK ? 1 : -1;
}

static bl_train_config case_config(const a_case *c, bl_net *net, bl_dataset *ds)
{
    bl_train_config t = bl_train_defaults();
    t.net = net;
    t.data = ds;
    t.optim = bl_optim_defaults(c->optim);
    t.optim.lr = c->optim == BL_OPTIM_SGD ? 0.05 : 0.003;
    if (c->optim == BL_OPTIM_SGD)
        t.optim.momentum = 0.9;
    t.batch = 24;
    t.max_steps = 44;
    t.seed = 9;
    t.prefetch = c->prefetch;
    t.eval_unit = BL_EVAL_STEPS;
    t.eval_every = 5;
    t.train_eval_samples = 50;
    t.lr_schedule = BL_LR_COSINE;
    t.epochs = 6;              /* the cosine's horizon; max_steps ends the run first */
    t.warmup_steps = 4;
    return t;
}

/* Trains c uninterrupted, then paused at step `at` and continued from the snapshot in a new
 * net (built from another seed, so every weight must come from the snapshot) and a new
 * scheduler object: the parameters must be equal byte for byte, and so must the history's
 * losses. */
static void check_case(fixture *f, const a_case *c, int64_t at)
{
    bl_dataset *ds = c->images ? f->images : f->blobs;
    bl_run_result full, paused, resumed;

    bl_net *n1 = build(f, c->model, c->model_opts, ds, 5);
    bl_scheduler *s1 = c->sched ? open_sched(f, c->sched, c->sched_opts) : NULL;
    bl_train_config t = case_config(c, n1, ds);
    t.scheduler = s1;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &t, &full));
    assert_int_equal(full.status, BL_RUN_COMPLETED);
    assert_true(full.steps > at + 4);   /* max_steps, or epochs for the small image set */
    float *want = params_of(f, n1);

    bl_net *n2 = build(f, c->model, c->model_opts, ds, 5);
    bl_scheduler *s2 = c->sched ? open_sched(f, c->sched, c->sched_opts) : NULL;
    bl_snapshot *snap = NULL;
    t = case_config(c, n2, ds);
    t.scheduler = s2;
    t.on_snapshot = keep_and_pause;
    t.snapshot_user = &snap;
    t.snapshot_steps = &at;
    t.snapshot_step_count = 1;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &t, &paused));
    assert_int_equal(paused.status, BL_RUN_COMPLETED);
    assert_string_equal(paused.stopped_by, "snapshot");
    assert_int_equal(paused.steps, at);
    assert_non_null(snap);
    bl_snapshot_info info;
    BL_ASSERT_OK(f->ctx, bl_snapshot_get_info(f->ctx, snap, &info));
    assert_int_equal(info.step, at);
    assert_int_equal(info.samples, paused.samples);
    assert_int_equal((int64_t)info.n_params, (int64_t)bl_net_num_params(n2));

    if (c->via_file) {
        char path[1200];
        snprintf(path, sizeof path, "%s/state.blsnap", f->dir);
        BL_ASSERT_OK(f->ctx, bl_snapshot_write(f->ctx, snap, path));
        bl_snapshot_free(snap);
        snap = NULL;
        BL_ASSERT_OK(f->ctx, bl_snapshot_read(f->ctx, path, &snap));
        unlink(path);
    }

    bl_net *n3 = build(f, c->model, c->model_opts, ds, 77);
    bl_scheduler *s3 = c->sched ? open_sched(f, c->sched, c->sched_opts) : NULL;
    /* the third scheduler has seen a later step first: restore must overwrite its state */
    if (s3) {
        bl_train_state st = {.step = 40, .samples = 960, .train_size = 600, .batch = 24,
                             .gns = 1000.0};
        int64_t b;
        BL_ASSERT_OK(f->ctx, bl_scheduler_next(f->ctx, s3, &st, &b, NULL));
    }
    t = case_config(c, n3, ds);
    t.scheduler = s3;
    t.resume_from = snap;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &t, &resumed));
    assert_int_equal(resumed.status, BL_RUN_COMPLETED);
    assert_int_equal(resumed.steps, full.steps);
    assert_int_equal(resumed.samples, full.samples);
    assert_int_equal(resumed.max_batch_used, full.max_batch_used);
    float *got = params_of(f, n3);
    size_t np = bl_net_num_params(n1);
    if (memcmp(want, got, np * sizeof *want) != 0) {
        size_t i = 0;
        while (want[i] == got[i])
            i++;
        fail_msg("%s/%s: parameter %zu differs after resuming at step %lld: %.9g vs %.9g",
                 c->model, bl_optim_name(c->optim), i, (long long)at, (double)want[i],
                 (double)got[i]);
    }
    assert_int_equal(resumed.history_count, full.history_count);
    for (size_t i = 0; i < full.history_count; i++) {
        const bl_eval_point *a = &full.history[i], *b = &resumed.history[i];
        assert_int_equal(a->step, b->step);
        assert_int_equal(a->samples, b->samples);
        assert_int_equal(a->batch, b->batch);
        assert_memory_equal(&a->train_loss, &b->train_loss, sizeof(double));
        /* the steps' accuracy since the last point: its count is in the snapshot */
        assert_memory_equal(&a->train_accuracy, &b->train_accuracy, sizeof(double));
        assert_memory_equal(&a->val_loss, &b->val_loss, sizeof(double));
        assert_memory_equal(&a->lr, &b->lr, sizeof(double));
        assert_memory_equal(&a->gns, &b->gns, sizeof(double));
    }
    assert_memory_equal(&full.test_loss, &resumed.test_loss, sizeof(double));

    free(want);
    free(got);
    bl_snapshot_free(snap);
    bl_run_result_free(&full);
    bl_run_result_free(&paused);
    bl_run_result_free(&resumed);
    bl_scheduler_close(s1);
    bl_scheduler_close(s2);
    bl_scheduler_close(s3);
    bl_net_free(n1);
    bl_net_free(n2);
    bl_net_free(n3);
}

#define STEP_SCHED "unit=steps milestones=10,25 batch=16 factor=2"
#define GNS_SCHED "batch=16 min=8 max=64 multiple=8 every=6 k=0.5 monotonic=false"

static void mlp_sgd_resumes_exactly(void **state)
{
    fixture *f = *state;
    const char *mlp = "hidden=16,8 dropout=0.2";
    a_case off = {"mlp", mlp, false, BL_OPTIM_SGD, BL_PREFETCH_OFF, NULL, NULL, false};
    check_case(f, &off, 17);
    a_case on = {"mlp", mlp, false, BL_OPTIM_SGD, BL_PREFETCH_ON, NULL, NULL, true};
    check_case(f, &on, 23);
    /* a batch that changes mid-run, across the snapshot, and a paused epoch boundary */
    a_case step = {"mlp", mlp, false, BL_OPTIM_SGD, BL_PREFETCH_ON, "step", STEP_SCHED, false};
    check_case(f, &step, 17);
    a_case bn = {"mlp", "hidden=16 batch_norm=true", false, BL_OPTIM_SGD, BL_PREFETCH_OFF,
                 "step", STEP_SCHED, true};
    check_case(f, &bn, 30);
}

static void mlp_adam_resumes_exactly(void **state)
{
    fixture *f = *state;
    const char *mlp = "hidden=16,8 dropout=0.1";
    a_case off = {"mlp", mlp, false, BL_OPTIM_ADAM, BL_PREFETCH_OFF, "step", STEP_SCHED, true};
    check_case(f, &off, 12);
    a_case on = {"mlp", mlp, false, BL_OPTIM_ADAM, BL_PREFETCH_ON, NULL, NULL, false};
    check_case(f, &on, 31);
    /* the gns scheduler keeps state (its batch, its last change) across calls */
    a_case gns = {"mlp", mlp, false, BL_OPTIM_ADAM, BL_PREFETCH_OFF, "gns", GNS_SCHED, true};
    check_case(f, &gns, 20);
}

static void cnn_resumes_exactly(void **state)
{
    fixture *f = *state;
    const char *cnn = "channels=4,4 kernel=3 padding=same fc=8";
    a_case sgd = {"cnn", cnn, true, BL_OPTIM_SGD, BL_PREFETCH_ON, "step", STEP_SCHED, true};
    check_case(f, &sgd, 19);
    a_case adam = {"cnn", cnn, true, BL_OPTIM_ADAM, BL_PREFETCH_OFF, NULL, NULL, false};
    check_case(f, &adam, 9);
}

/* Without the scheduler's state the gns case would not resume exactly: the plugin's save and
 * restore carry it. */
static void gns_scheduler_state_round_trips(void **state)
{
    fixture *f = *state;
    bl_scheduler *a = open_sched(f, "gns", GNS_SCHED), *b = open_sched(f, "gns", GNS_SCHED);
    bl_train_state st = {.step = 0, .train_size = 600, .batch = 16, .gns = NAN};
    int64_t ba = 0, bb = 0;
    BL_ASSERT_OK(f->ctx, bl_scheduler_next(f->ctx, a, &st, &ba, NULL));
    st.step = 7;
    st.gns = 120.0;
    BL_ASSERT_OK(f->ctx, bl_scheduler_next(f->ctx, a, &st, &ba, NULL));
    assert_int_equal(ba, 64);
    unsigned char buf[64];
    size_t len = 0;
    BL_ASSERT_OK(f->ctx, bl_scheduler_save(f->ctx, a, buf, sizeof buf, &len));
    assert_true(len > 0 && len <= sizeof buf);
    BL_ASSERT_OK(f->ctx, bl_scheduler_restore(f->ctx, b, buf, len));
    st.step = 8;
    st.gns = 10.0;       /* too soon to change (every = 6): both stay at 64 */
    BL_ASSERT_OK(f->ctx, bl_scheduler_next(f->ctx, a, &st, &ba, NULL));
    BL_ASSERT_OK(f->ctx, bl_scheduler_next(f->ctx, b, &st, &bb, NULL));
    assert_int_equal(ba, 64);
    assert_int_equal(bb, 64);
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "bytes", bl_scheduler_restore(f->ctx, b, buf, 3));
    /* a stateless schedule has nothing to save */
    bl_scheduler *s = open_sched(f, "step", STEP_SCHED);
    BL_ASSERT_OK(f->ctx, bl_scheduler_save(f->ctx, s, buf, sizeof buf, &len));
    assert_int_equal(len, 0);
    bl_scheduler_close(s);
    bl_scheduler_close(a);
    bl_scheduler_close(b);
}

/* A branch: from the snapshot, twice the batch and twice the LR for a fixed number of
 * samples (max_samples counts from the original start). */
static void branch_with_other_batch(void **state)
{
    fixture *f = *state;
    a_case c = {"mlp", "hidden=16", false, BL_OPTIM_SGD, BL_PREFETCH_OFF, NULL, NULL, false};
    bl_net *net = build(f, "mlp", "hidden=16", f->blobs, 5);
    bl_snapshot *snap = NULL;
    int64_t at = 10;
    bl_train_config t = case_config(&c, net, f->blobs);
    t.on_snapshot = keep_and_pause;
    t.snapshot_user = &snap;
    t.snapshot_steps = &at;
    t.snapshot_step_count = 1;
    bl_run_result base;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &t, &base));
    bl_snapshot_info info;
    BL_ASSERT_OK(f->ctx, bl_snapshot_get_info(f->ctx, snap, &info));
    assert_int_equal(info.samples, 240);
    assert_string_equal(info.optimizer, "sgd");

    bl_net *branch = build(f, "mlp", "hidden=16", f->blobs, 1);
    t = case_config(&c, branch, f->blobs);
    t.batch = 48;
    t.optim.lr = 0.1;
    t.max_steps = 0;
    t.epochs = 0;
    t.lr_schedule = BL_LR_CONSTANT;
    t.max_samples = info.samples + 480;
    t.resume_from = snap;
    bl_run_result r;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &t, &r));
    assert_int_equal(r.status, BL_RUN_COMPLETED);
    assert_string_equal(r.stopped_by, "max_samples");
    /* the first step at or past the budget ends it (an epoch's partial batch on the way) */
    assert_true(r.samples >= 720 && r.samples < 720 + 48);
    assert_int_equal(r.steps, 21);
    assert_true(r.history_count > base.history_count);
    assert_int_equal(r.history[0].step, base.history[0].step);
    assert_true(isfinite(r.final.train_loss));

    /* a snapshot does not fit another model or another optimizer */
    bl_net *other = build(f, "mlp", "hidden=12", f->blobs, 1);
    t = case_config(&c, other, f->blobs);
    t.resume_from = snap;
    bl_run_result bad;
    BL_ASSERT_ERR(f->ctx, BL_EINVAL, "another model", bl_train(f->ctx, &t, &bad));
    bl_run_result_free(&bad);
    t = case_config(&c, branch, f->blobs);
    t.optim = bl_optim_defaults(BL_OPTIM_ADAM);
    t.resume_from = snap;
    BL_ASSERT_ERR(f->ctx, BL_EINVAL, "optimizer", bl_train(f->ctx, &t, &bad));
    bl_run_result_free(&bad);

    /* the weights alone, for evaluation */
    bl_net *eval = build(f, "mlp", "hidden=16", f->blobs, 3);
    BL_ASSERT_OK(f->ctx, bl_snapshot_load_weights(f->ctx, snap, eval));
    float *w = params_of(f, eval);
    float *s = malloc(bl_net_num_params(eval) * sizeof *s);
    BL_ASSERT_OK(f->ctx, bl_snapshot_params(f->ctx, snap, s, bl_net_num_params(eval)));
    assert_memory_equal(w, s, bl_net_num_params(eval) * sizeof *s);
    BL_ASSERT_ERR(f->ctx, BL_EINVAL, "another model", bl_snapshot_load_weights(f->ctx, snap, other));
    free(w);
    free(s);

    bl_run_result_free(&base);
    bl_run_result_free(&r);
    bl_snapshot_free(snap);
    bl_net_free(net);
    bl_net_free(branch);
    bl_net_free(other);
    bl_net_free(eval);
}

static int keep_last(void *user, bl_ctx *ctx, const bl_snapshot *snap)
{
    bl_snapshot **keep = user;
    bl_snapshot_free(*keep);
    *keep = NULL;
    return bl_snapshot_copy(ctx, snap, keep);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, n, fp), n);
    fclose(fp);
}

/* Damaged, truncated, foreign and special files are refused with the file and the fault named;
 * a target that is not a regular file is never replaced. */
static void bad_files_are_refused(void **state)
{
    fixture *f = *state;
    a_case c = {"mlp", "hidden=8", false, BL_OPTIM_SGD, BL_PREFETCH_OFF, NULL, NULL, false};
    bl_net *net = build(f, "mlp", "hidden=8", f->blobs, 5);
    bl_snapshot *snap = NULL;
    bl_train_config t = case_config(&c, net, f->blobs);
    t.max_steps = 6;
    t.on_final_snapshot = keep_last;
    t.snapshot_user = &snap;
    t.snapshot_tag = "{\"config\":1}";
    bl_run_result r;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &t, &r));
    bl_run_result_free(&r);
    assert_non_null(snap);
    assert_string_equal(bl_snapshot_tag(snap), "{\"config\":1}");
    size_t len;
    const unsigned char *img = bl_snapshot_bytes(snap, &len);
    unsigned char *copy = malloc(len);
    memcpy(copy, img, len);
    char path[1200];
    snprintf(path, sizeof path, "%s/bad.blsnap", f->dir);
    bl_snapshot *got = NULL;

    write_file(path, copy, len - 7);
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "truncated", bl_snapshot_read(f->ctx, path, &got));
    assert_true(bl_test_contains(bl_errmsg(f->ctx), "bad.blsnap"));
    copy[len / 2] ^= 0x10;
    write_file(path, copy, len);
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "checksum", bl_snapshot_read(f->ctx, path, &got));
    copy[len / 2] ^= 0x10;
    copy[12] = 9;   /* version */
    write_file(path, copy, len);
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "header", bl_snapshot_read(f->ctx, path, &got));
    write_file(path, "SQLite format 3\0 and more bytes than a header has", 50);
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "not a batchlab snapshot",
                  bl_snapshot_read(f->ctx, path, &got));
    write_file(path, "BLS", 3);
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "truncated", bl_snapshot_read(f->ctx, path, &got));
    assert_null(got);
    snprintf(path, sizeof path, "%s/none.blsnap", f->dir);
    BL_ASSERT_ERR(f->ctx, BL_ENOTFOUND, "none.blsnap", bl_snapshot_read(f->ctx, path, &got));

    /* special files: refused for reading, never replaced by a write */
    BL_ASSERT_ERR(f->ctx, BL_EIO, "directory", bl_snapshot_read(f->ctx, f->dir, &got));
    BL_ASSERT_ERR(f->ctx, BL_EIO, "directory", bl_snapshot_write(f->ctx, snap, f->dir));
    snprintf(path, sizeof path, "%s/fifo", f->dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    BL_ASSERT_ERR(f->ctx, BL_EIO, "FIFO", bl_snapshot_read(f->ctx, path, &got));
    BL_ASSERT_ERR(f->ctx, BL_EIO, "FIFO", bl_snapshot_write(f->ctx, snap, path));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    unlink(path);
    struct stat dn;
    if (stat("/dev/null", &dn) == 0 && S_ISCHR(dn.st_mode)) {
        BL_ASSERT_ERR(f->ctx, BL_EIO, "character device",
                      bl_snapshot_write(f->ctx, snap, "/dev/null"));
        assert_int_equal(stat("/dev/null", &st), 0);
        assert_true(S_ISCHR(st.st_mode));
    }
    /* a good file round-trips byte for byte, with no temporary file left behind */
    snprintf(path, sizeof path, "%s/good.blsnap", f->dir);
    BL_ASSERT_OK(f->ctx, bl_snapshot_write(f->ctx, snap, path));
    BL_ASSERT_OK(f->ctx, bl_snapshot_write(f->ctx, snap, path));
    BL_ASSERT_OK(f->ctx, bl_snapshot_read(f->ctx, path, &got));
    size_t glen;
    const void *gimg = bl_snapshot_bytes(got, &glen);
    assert_int_equal(glen, len);
    assert_memory_equal(gimg, img, len);
    bl_snapshot *mem = NULL;
    copy[len - 1] ^= 1;
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "checksum",
                  bl_snapshot_from_bytes(f->ctx, copy, len, NULL, &mem));
    assert_null(mem);
    unlink(path);

    free(copy);
    bl_snapshot_free(got);
    bl_snapshot_free(snap);
    bl_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mlp_sgd_resumes_exactly),
        cmocka_unit_test(mlp_adam_resumes_exactly),
        cmocka_unit_test(cnn_resumes_exactly),
        cmocka_unit_test(gns_scheduler_state_round_trips),
        cmocka_unit_test(branch_with_other_batch),
        cmocka_unit_test(bad_files_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
