/* The training engine (train.h): determinism, divergence, accumulation, the gradient noise
 * scale against its analytic value, targets, LR rules, changing batches, no allocation per step. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "batchlab/run_spec.h"
#include "testutil.h"

/* ---- malloc counting (the executable's definitions interpose libc's for the whole process);
 * not under AddressSanitizer, which owns malloc itself */
static volatile long malloc_calls;
#ifndef __SANITIZE_ADDRESS__
#define COUNTING_MALLOC 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
void *malloc(size_t n);
void *calloc(size_t a, size_t b);
void *realloc(void *p, size_t n);
void free(void *p);
void *malloc(size_t n)
{
    malloc_calls++;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    malloc_calls++;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    malloc_calls++;
    return __libc_realloc(p, n);
}
void free(void *p)
{
    __libc_free(p);
}
#endif

static float *params_copy(bl_test_env *f, bl_net *net)
{
    size_t n = bl_net_num_params(net);
    float *h = malloc(n * sizeof *h);
    BL_ASSERT_OK(f->ctx, bl_device_download(f->ctx, f->dev, h, bl_net_params(net), n * sizeof *h));
    return h;
}

#define BLOBS "task=blobs samples=1200 dim=8 classes=3 noise=1.0 seed=3 validation=200 test=200"

static bl_train_config base_config(bl_net *net, bl_dataset *ds)
{
    bl_train_config c = bl_train_defaults();
    c.net = net;
    c.data = ds;
    c.optim.lr = 0.05;
    c.optim.momentum = 0.9;
    c.batch = 32;
    c.epochs = 2;
    c.seed = 7;
    return c;
}

/* Twice the same configuration, once gathering batches on the prefetch thread and once in the
 * step: the histories must be bit-identical (determinism, and prefetching never changes what
 * is trained on). */
static void same_seed_same_history(void **state)
{
    bl_test_env *f = *state;
    bl_dataset *ds = bl_test_dataset(f, "synthetic", BLOBS);
    bl_run_result r[2];
    for (int i = 0; i < 2; i++) {
        bl_net *net = bl_test_model(f, "mlp", "hidden=16 dropout=0.1", ds, 11);
        bl_train_config c = base_config(net, ds);
        c.prefetch = i == 0 ? BL_PREFETCH_ON : BL_PREFETCH_OFF;
        c.eval_unit = BL_EVAL_STEPS;
        c.eval_every = 10;
        BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r[i]));
        assert_int_equal(r[i].status, BL_RUN_COMPLETED);
        bl_net_free(net);
    }
    assert_int_equal(r[0].history_count, r[1].history_count);
    assert_true(r[0].history_count >= 7);
    for (size_t i = 0; i < r[0].history_count; i++) {
        /* bit-identical, not merely close */
        assert_memory_equal(&r[0].history[i].train_loss, &r[1].history[i].train_loss,
                            sizeof(double));
        assert_memory_equal(&r[0].history[i].val_loss, &r[1].history[i].val_loss,
                            sizeof(double));
    }
    assert_true(r[0].final.val_accuracy > 0.8);
    assert_false(isnan(r[0].test_accuracy));
    assert_string_equal(r[0].stopped_by, "epochs");
    assert_int_equal(r[0].samples, 2 * bl_dataset_info(ds)->count[BL_SPLIT_TRAIN]);
    bl_run_result_free(&r[0]);
    bl_run_result_free(&r[1]);
    bl_dataset_close(ds);
}

/* The next batch is gathered while the step computes — by a thread of the loader's own (a
 * 1-thread device, prefetch on), or between the kernels of a device that uses every core
 * (prefetch auto; its pool's background work). Either way the gathers of a dataset never
 * overlap (dataset.h: one thread at a time per handle), evaluation points included: the
 * fixture dataset fails a gather that starts while another runs (200 µs each). And each way
 * trains on exactly the batches of gathering in the step. */
static void prefetch_never_overlaps_gathers(void **state)
{
    bl_test_env *f = *state;
    BL_ASSERT_OK(f->ctx, bl_registry_load(f->ctx, f->reg, BATCHLAB_TEST_PLUGIN_DIR "/fx_data.so"));
    bl_dataset *ds = bl_test_dataset(f, "fx_one_thread", "train=300");

    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    bl_device *all_cores; /* AUTO gathers between its kernels: it uses every core */
    BL_ASSERT_OK(f->ctx, bl_device_cpu_open(f->ctx, cores > 2 ? (int)cores : 2, &all_cores));
    struct {
        bl_device *dev;
        bl_prefetch_mode mode;
    } ways[] = {{f->dev, BL_PREFETCH_OFF}, {f->dev, BL_PREFETCH_ON}, {all_cores, BL_PREFETCH_AUTO}};
    bl_run_result r[3];
    for (int i = 0; i < 3; i++) {
        const bl_plugin *mp;
        BL_ASSERT_OK(f->ctx, bl_registry_find(f->ctx, f->reg, BL_PLUGIN_MODEL, "mlp", &mp));
        bl_net *net;
        BL_ASSERT_OK(f->ctx, bl_model_build(f->ctx, mp, NULL, bl_dataset_info(ds), ways[i].dev,
                                            5, &net));
        bl_train_config c = base_config(net, ds);
        c.batch = 16;
        c.optim.lr = 0.01;
        c.prefetch = ways[i].mode;
        c.eval_unit = BL_EVAL_STEPS;
        c.eval_every = 3;
        c.diverge_chance_evals = 0; /* the fixture's labels cannot be learned */
        c.diverge_loss_factor = 0;
        BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r[i]));
        if (r[i].status != BL_RUN_COMPLETED)
            fail_msg("prefetch way %d: %s", i, r[i].error);
        bl_net_free(net);
    }
    for (int i = 1; i < 3; i++) {
        assert_int_equal(r[i].history_count, r[0].history_count);
        for (size_t k = 0; k < r[0].history_count; k++)
            assert_memory_equal(&r[i].history[k].train_loss, &r[0].history[k].train_loss,
                                sizeof(double));
    }
    for (int i = 0; i < 3; i++)
        bl_run_result_free(&r[i]);
    bl_device_free(all_cores);
    bl_dataset_close(ds);
}

static void divergence_is_reported(void **state)
{
    bl_test_env *f = *state;
    bl_dataset *ds = bl_test_dataset(f, "synthetic", BLOBS);
    bl_net *net = bl_test_model(f, "mlp", "hidden=16", ds, 1);
    bl_train_config c = base_config(net, ds);
    c.optim.lr = 1e6;
    c.optim.momentum = 0;
    bl_run_result r;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
    assert_int_equal(r.status, BL_RUN_DIVERGED);
    assert_true(r.diverged_step >= 1 && r.diverged_step < 100);
    assert_true(bl_test_contains(r.error, "step"));
    assert_string_equal(r.stopped_by, "diverged");
    bl_run_result_free(&r);
    bl_net_free(net);
    bl_dataset_close(ds);
}

/* Ten classes of overlapping blobs: the net can learn them, but not at a far too large LR. */
#define TEN_CLASSES "task=blobs samples=3000 dim=16 classes=10 noise=2 seed=7 validation=500 test=0"

/* The case of issue 10: a large batch at a far too large LR ended at chance accuracy with
 * status completed. It now ends early as diverged, saying why, at the point that showed it. */
static void chance_accuracy_is_divergence(void **state)
{
    bl_test_env *f = *state;
    bl_dataset *ds = bl_test_dataset(f, "synthetic", TEN_CLASSES);
    bl_net *net = bl_test_model(f, "mlp", "hidden=32", ds, 1);
    bl_train_config c = base_config(net, ds);
    c.batch = 1024;
    c.optim.lr = 4;
    c.optim.momentum = 0;
    c.seed = 1;
    c.epochs = 6;
    c.eval_every = 0.5;
    c.diverge_loss_factor = 0;      /* the chance rule alone */
    bl_run_result r;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
    assert_int_equal(r.status, BL_RUN_DIVERGED);
    assert_string_equal(r.stopped_by, "diverged");
    assert_true(bl_test_contains(r.error, "at chance (1/10 classes) for 3 evaluations"));
    assert_true(r.epochs < 6);                              /* early */
    assert_true(r.final.epoch >= 2 - 1e-9);                 /* points from epoch 1 on count */
    assert_int_equal(r.diverged_step, r.steps);
    assert_int_equal(r.final.step, r.steps);
    assert_true(r.final.val_accuracy <= 0.1 + 0.02);
    assert_true(isnan(r.test_accuracy));
    bl_run_result_free(&r);

    /* the same run with the check off trains its whole budget (as before) */
    bl_net_free(net);
    net = bl_test_model(f, "mlp", "hidden=32", ds, 1);
    c.net = net;
    c.diverge_chance_evals = 0;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
    assert_int_equal(r.status, BL_RUN_COMPLETED);
    assert_true(fabs(r.epochs - 6) < 1e-9);
    bl_run_result_free(&r);
    bl_net_free(net);
    bl_dataset_close(ds);
}

/* A loss growing (finite) far above its start ends the run at the point that shows it:
 * least squares at an LR past the stability limit grows the loss ×25 per step. The start is
 * the mean over the first 512 samples (steps 1-2 of 256), and so is each window judged. */
static void growing_loss_is_divergence(void **state)
{
    bl_test_env *f = *state;
    bl_dataset *ds = bl_test_dataset(f, "synthetic",
                                     "task=teacher samples=2000 dim=10 noise=0.1 seed=2 "
                                     "validation=200 test=0");
    bl_net *net = bl_test_model(f, "logreg", NULL, ds, 4);
    bl_train_config c = base_config(net, ds);
    c.batch = 256;
    c.optim.lr = 3;
    c.optim.momentum = 0;
    c.epochs = 10;
    c.eval_unit = BL_EVAL_STEPS;
    c.eval_every = 1;
    bl_run_result r;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
    assert_int_equal(r.status, BL_RUN_DIVERGED);
    assert_string_equal(r.stopped_by, "diverged");
    assert_true(bl_test_contains(r.error, "(mean over steps 3-4) is more than 3× its starting "
                                          "value"));
    /* points 1 and 3 close no window; point 2's window is the start itself */
    assert_int_equal(r.diverged_step, 4);
    assert_int_equal(r.steps, 4);
    assert_true(isfinite(r.final.train_loss) && r.final.train_loss > 3 * r.history[0].train_loss);
    bl_run_result_free(&r);

    /* a larger factor lets it go on (to the non-finite loss, or its budget) */
    c.diverge_loss_factor = 1e300;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
    assert_true(r.steps > 4);
    bl_run_result_free(&r);
    bl_net_free(net);
    bl_dataset_close(ds);
}

/* A healthy run with a point after every single-sample step: one sample's loss is often
 * several times the start, the mean over a window of 512 samples is not. */
static void noisy_points_are_not_divergence(void **state)
{
    bl_test_env *f = *state;
    bl_dataset *ds = bl_test_dataset(f, "synthetic",
                                     "task=teacher samples=2000 dim=10 noise=1 seed=2 "
                                     "validation=0 test=0");
    bl_net *net = bl_test_model(f, "logreg", NULL, ds, 4);
    bl_train_config c = base_config(net, ds);
    c.batch = 1;
    c.optim.lr = 0.002;
    c.optim.momentum = 0;
    c.epochs = 0;
    c.max_steps = 2000;
    c.eval_unit = BL_EVAL_STEPS;
    c.eval_every = 1;
    c.skip_eval = true;
    bl_run_result r;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
    assert_int_equal(r.status, BL_RUN_COMPLETED);
    assert_int_equal(r.steps, 2000);
    double start = 0, late = 0;
    int over = 0;
    for (size_t i = 0; i < 512; i++)
        start += r.history[i].train_loss / 512;
    for (size_t i = 0; i < r.history_count; i++)
        over += r.history[i].train_loss > 3 * start;    /* points judged alone would be */
    for (size_t i = 1500; i < 2000; i++)
        late += r.history[i].train_loss / 500;
    assert_true(over > 0);
    assert_true(late < start);                          /* and it did learn */
    bl_run_result_free(&r);
    bl_net_free(net);
    bl_dataset_close(ds);
}

/* Steps to target are interpolated between the points around the crossing, as
 * bl_target_crossing_find does on the history, with the point gap as their error. */
static void target_is_interpolated(void **state)
{
    bl_test_env *f = *state;
    bl_dataset *ds = bl_test_dataset(f, "synthetic", BLOBS);
    bl_net *net = bl_test_model(f, "mlp", "hidden=16", ds, 1);
    bl_train_config c = base_config(net, ds);
    c.optim.lr = 0.001;
    c.epochs = 20;
    c.eval_unit = BL_EVAL_STEPS;
    c.eval_every = 10;
    c.has_target = true;
    c.target_metric = BL_METRIC_VAL_ACCURACY;
    c.target_value = 0.8;
    bl_run_result r;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
    assert_int_equal(r.status, BL_RUN_COMPLETED);
    size_t k = 0;
    while (k < r.history_count && !(r.history[k].val_accuracy >= 0.8))
        k++;
    assert_true(k > 0 && k < r.history_count);              /* reached, not at the first point */
    const bl_eval_point *a = &r.history[k - 1], *b = &r.history[k];
    double frac = (0.8 - a->val_accuracy) / (b->val_accuracy - a->val_accuracy);
    assert_int_equal(r.steps_to_target, llround(a->step + frac * (double)(b->step - a->step)));
    assert_int_equal(r.samples_to_target,
                     llround((double)a->samples + frac * (double)(b->samples - a->samples)));
    assert_true(fabs(r.wall_time_to_target - (a->wall + frac * (b->wall - a->wall))) < 1e-12);
    assert_true(r.step_time_median > 0);
    assert_true(r.time_to_target == (double)r.steps_to_target * r.step_time_median);
    assert_true(fabs(r.epochs_to_target - (a->epoch + frac * (b->epoch - a->epoch))) < 1e-12);
    assert_int_equal(r.steps_to_target_error, 10);
    assert_true(r.steps_to_target > a->step && r.steps_to_target <= b->step);
    bl_run_result_free(&r);
    bl_net_free(net);
    bl_dataset_close(ds);
}

/* One step of batch 64: plain, as 4 micro-batches of 16, and with the noise scale measured
 * (the chunked path) must give the same parameters within float tolerance. */
static void accumulation_equals_full_batch(void **state)
{
    bl_test_env *f = *state;
    bl_dataset *ds = bl_test_dataset(f, "synthetic", BLOBS);
    float *p[4];
    for (int variant = 0; variant < 4; variant++) {
        bl_net *net = bl_test_model(f, "mlp", "hidden=32", ds, 5);
        bl_train_config c = base_config(net, ds);
        c.batch = 64;
        c.epochs = 0;
        c.max_steps = 3;
        c.skip_eval = true;
        if (variant == 1)
            c.micro_batch = 16;
        if (variant == 2)
            c.measure_gns = true;
        if (variant == 3) {
            c.micro_batch = 24; /* 24 + 24 + 16: unequal last chunk */
            c.measure_gns = true;
        }
        bl_run_result r;
        BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
        assert_int_equal(r.status, BL_RUN_COMPLETED);
        bl_run_result_free(&r);
        p[variant] = params_copy(f, net);
        size_t n = bl_net_num_params(net);
        if (variant > 0) {
            for (size_t i = 0; i < n; i++) {
                double tol = 1e-5 * (1.0 + fabs(p[0][i]));
                if (fabs((double)p[variant][i] - p[0][i]) > tol)
                    fail_msg("variant %d param %zu: %.9g vs %.9g", variant, i, p[variant][i],
                             p[0][i]);
            }
        }
        bl_net_free(net);
    }
    for (int v = 0; v < 4; v++)
        free(p[v]);
    bl_dataset_close(ds);
}

/* Teacher–student regression y = w*·x + ε, x ~ N(0, I_D), student (w, b), loss (w·x + b − y)².
 * Per-example gradient g = 2r(x, 1), r = d·x + b − ε, d = w − w*. With E[(d·x)² x xᵀ] =
 * |d|² I + 2 d dᵀ:  |G|² = 4(|d|² + b²),  tr Σ = 4((D + 2)|d|² + D·b² + (D + 1)σ²), so
 * B_simple = ((D + 2)|d|² + D·b² + (D + 1)σ²) / (|d|² + b²). The weights are held fixed (tiny
 * LR) so that the smoothed estimate converges to the value at those weights. */
static void gns_matches_analytic_value(void **state)
{
    bl_test_env *f = *state;
    const int D = 10;
    bl_dataset *ds = bl_test_dataset(f, "synthetic",
                                     "task=teacher samples=40000 dim=10 noise=0.5 seed=2 "
                                     "validation=0 test=0");
    double teacher[10], sigma;
    int64_t n;
    BL_ASSERT_OK(f->ctx, bl_dataset_property(f->ctx, ds, "teacher_weights", teacher, 10, &n));
    assert_int_equal(n, D);
    BL_ASSERT_OK(f->ctx, bl_dataset_property(f->ctx, ds, "noise_std", &sigma, 1, &n));

    bl_net *net = bl_test_model(f, "logreg", NULL, ds, 4);
    assert_int_equal(bl_net_num_params(net), D + 1);
    float *w = params_copy(f, net);
    double d2 = 0;
    for (int i = 0; i < D; i++)
        d2 += (w[i] - teacher[i]) * (w[i] - teacher[i]);
    double b2 = (double)w[D] * w[D];
    double expected = ((D + 2) * d2 + D * b2 + (D + 1) * sigma * sigma) / (d2 + b2);

    bl_train_config c = bl_train_defaults();
    c.net = net;
    c.data = ds;
    c.optim.lr = 1e-12;
    c.batch = 256;
    c.max_steps = 3000;
    c.measure_gns = true;
    c.gns_chunks = 8;
    c.gns_ema = 0.995;
    c.skip_eval = true;
    bl_run_result r;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
    assert_int_equal(r.status, BL_RUN_COMPLETED);
    double got = r.final.gns;
    print_message("gns: estimated %.3f, analytic %.3f (|d|² %.3f, b² %.4f, σ %.2f)\n", got,
                  expected, d2, b2, sigma);
    assert_true(fabs(got - expected) <= 0.15 * expected);
    bl_run_result_free(&r);
    free(w);
    bl_net_free(net);
    bl_dataset_close(ds);
}

static void target_is_timed_and_stops(void **state)
{
    bl_test_env *f = *state;
    bl_dataset *ds = bl_test_dataset(f, "synthetic", BLOBS);
    bl_net *net = bl_test_model(f, "mlp", "hidden=16", ds, 1);
    bl_train_config c = base_config(net, ds);
    c.epochs = 20;
    c.eval_unit = BL_EVAL_STEPS;
    c.eval_every = 5;
    c.has_target = true;
    c.target_metric = BL_METRIC_VAL_ACCURACY;
    c.target_value = 0.7;
    c.stop_at_target = true;
    bl_run_result r;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
    assert_int_equal(r.status, BL_RUN_COMPLETED);
    assert_string_equal(r.stopped_by, "target");
    assert_true(r.steps_to_target > 0 && r.steps_to_target == r.steps);
    assert_true(r.samples_to_target == r.samples);
    assert_true(r.wall_time_to_target > 0 && r.wall_time_to_target <= r.time + 1e-9);
    assert_true(r.time_to_target == (double)r.steps_to_target * r.step_time_median);
    assert_true(r.final.val_accuracy >= 0.7);
    assert_true(r.epochs < 20);
    bl_run_result_free(&r);
    bl_net_free(net);
    bl_dataset_close(ds);
}

/* A batch function that grows the batch every 5 steps and counts its calls. */
typedef struct grow {
    int calls;
} grow;

static int grow_batch(void *user, bl_ctx *ctx, const bl_train_state *s, int64_t *batch,
                      double *lr_factor)
{
    grow *g = user;
    g->calls++;
    *batch = 8 << (s->step / 5 < 4 ? s->step / 5 : 4);
    *lr_factor = 0.5;
    return BL_OK;
}

/* Steps 0 and 1 at 700 samples, then 800: the prefetch for step 2 guessed 700, and the fill
 * gathers the 100 it lacks. */
static int seven_then_eight_hundred(void *user, bl_ctx *ctx, const bl_train_state *s,
                                    int64_t *batch, double *lr_factor)
{
    (void)user;
    (void)ctx;
    *batch = s->step < 2 ? 700 : 800;
    *lr_factor = 1.0;
    return BL_OK;
}

/* A batch of 700 images of 28×28 is 2.2 MB of floats, above the loader's SPLIT_MIN_BYTES
 * (engine/loader.c): with prefetch auto on a device with a pool, an idx dataset's batches are
 * prefetched as bytes and turned into floats at fill, in one float buffer for both slots. The
 * run trains on exactly the batches of gathering floats in the step (prefetch off): the same
 * history, bit for bit, over 2 epochs of 3000 samples (700, 700, then 800 to the epoch's end,
 * the last batch 600): prefetches used whole, one that falls short of a batch that grew, and
 * each epoch's first batch gathered in the step. */
static void split_gather_same_history(void **state)
{
    bl_test_env *f = *state;
    enum { N = 3000, PX = 28 * 28 };
    const char *dir = bl_test_tmpdir("split_gather");
    unsigned char *pixels = malloc((size_t)N * PX), labels[N];
    assert_non_null(pixels);
    bl_rng rng;
    bl_rng_seed(&rng, 5, BL_STREAM_DATA);
    for (int i = 0; i < N; i++) {
        labels[i] = (unsigned char)(i % 10);
        for (int j = 0; j < PX; j++) /* brighter where the label says, so that it can learn */
            pixels[(size_t)i * PX + j] =
                (unsigned char)(bl_rng_uniform(&rng) * 128 + (j % 10 == i % 10 ? 127 : 0));
    }
    bl_test_write_idx(dir, "train-images-idx3-ubyte", 3, (const uint32_t[]){N, 28, 28}, pixels,
                      (size_t)N * PX);
    bl_test_write_idx(dir, "train-labels-idx1-ubyte", 1, (const uint32_t[]){N}, labels, N);
    free(pixels);
    char opts[1300];
    snprintf(opts, sizeof opts, "dir=%s validation=0", dir);
    bl_dataset *ds = bl_test_dataset(f, "idx", opts);
    bl_device *dev;
    BL_ASSERT_OK(f->ctx, bl_device_cpu_open(f->ctx, 2, &dev));
    bl_run_result r[2];
    for (int i = 0; i < 2; i++) {
        const bl_plugin *mp;
        BL_ASSERT_OK(f->ctx, bl_registry_find(f->ctx, f->reg, BL_PLUGIN_MODEL, "mlp", &mp));
        bl_net *net;
        BL_ASSERT_OK(f->ctx, bl_model_build(f->ctx, mp, NULL, bl_dataset_info(ds), dev, 9, &net));
        bl_train_config c = base_config(net, ds);
        c.batch = 700;
        c.batch_fn = seven_then_eight_hundred;
        c.max_batch = 800;
        c.optim.lr = 0.01;
        c.prefetch = i == 0 ? BL_PREFETCH_OFF : BL_PREFETCH_AUTO;
        c.eval_unit = BL_EVAL_STEPS;
        c.eval_every = 1;
        c.skip_eval = true;
        BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r[i]));
        if (r[i].status != BL_RUN_COMPLETED)
            fail_msg("prefetch %s: %s", i ? "auto" : "off", r[i].error);
        bl_net_free(net);
    }
    assert_int_equal(r[0].samples, 2 * N);
    assert_int_equal(r[1].history_count, r[0].history_count);
    assert_true(r[0].history_count >= 4);
    for (size_t k = 0; k < r[0].history_count; k++)
        assert_memory_equal(&r[1].history[k].train_loss, &r[0].history[k].train_loss,
                            sizeof(double));
    assert_true(r[0].history[r[0].history_count - 1].train_loss < r[0].history[0].train_loss);
    bl_run_result_free(&r[0]);
    bl_run_result_free(&r[1]);
    bl_device_free(dev);
    bl_dataset_close(ds);
    bl_test_rmdir(dir);
}

/* A batch source that sleeps 40 ms at every fifth step: another process slowing the machine
 * now and then, inside the timed step. */
static int slow_now_and_then(void *user, bl_ctx *ctx, const bl_train_state *s, int64_t *batch,
                             double *lr_factor)
{
    (void)user;
    (void)ctx;
    *batch = 32;
    *lr_factor = 1;
    if (s->step % 5 == 4)
        nanosleep(&(struct timespec){.tv_nsec = 40000000}, NULL);
    return BL_OK;
}

/* time_to_target = steps_to_target × the median step time: slow steps move the wall time to
 * target (kept as wall_time_to_target), not the robust one. */
static void robust_time_ignores_slow_steps(void **state)
{
    bl_test_env *f = *state;
    bl_dataset *ds = bl_test_dataset(f, "synthetic", BLOBS);
    bl_net *net = bl_test_model(f, "mlp", "hidden=16", ds, 1);
    bl_train_config c = base_config(net, ds);
    c.batch = 32;
    c.batch_fn = slow_now_and_then;
    c.max_batch = 32;
    c.optim.lr = 0.001;
    c.epochs = 20;
    c.eval_unit = BL_EVAL_STEPS;
    c.eval_every = 5;
    c.has_target = true;
    c.target_metric = BL_METRIC_VAL_ACCURACY;
    c.target_value = 0.8;
    c.stop_at_target = true;
    bl_run_result r;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
    assert_int_equal(r.status, BL_RUN_COMPLETED);
    assert_true(r.steps_to_target >= 10);
    /* a step of this tiny net takes well under a millisecond; a fifth of them 40 ms */
    assert_true(r.step_time_median > 0 && r.step_time_median < 0.005);
    assert_true(r.time_to_target == (double)r.steps_to_target * r.step_time_median);
    assert_true(r.wall_time_to_target >= 0.04 * (double)(r.steps_to_target / 5 - 1));
    assert_true(r.time_to_target < 0.2 * r.wall_time_to_target);
    bl_run_result_free(&r);
    bl_net_free(net);
    bl_dataset_close(ds);
}

/* Points before the first point at the target (the crossing's history). */
static int points_before_target(const bl_run_result *r, double target)
{
    int n = 0;
    while ((size_t)n < r->history_count && !(r->history[n].val_accuracy >= target))
        n++;
    return n;
}

/* eval_every = "auto" (BL_EVAL_AUTO): a sweep of batch sizes 16 … 1024 gets at least 4 points
 * before the target at every batch size, with points at steps 1, 2, …, 8, then growing by
 * 1/8; the default cadence (every epoch) gives the small batches none. */
static void auto_cadence_gives_every_batch_points(void **state)
{
    bl_test_env *f = *state;
    bl_dataset *ds = bl_test_dataset(f, "synthetic",
                                     "task=blobs samples=4400 dim=8 classes=3 noise=1.0 seed=3 "
                                     "validation=200 test=200");
    for (int64_t b = 16; b <= 1024; b *= 2) {
        for (int autoc = 0; autoc < 2; autoc++) {
            bl_net *net = bl_test_model(f, "mlp", "hidden=16", ds, 1);
            bl_train_config c = base_config(net, ds);
            c.batch = b;
            c.optim.lr = 0.01;
            c.epochs = 200;
            c.skip_test = true;
            c.train_eval_samples = 0;
            if (autoc)
                BL_ASSERT_OK(f->ctx, bl_run_spec_parse_eval_every(f->ctx, "auto", &c));
            c.has_target = true;
            c.target_metric = BL_METRIC_VAL_ACCURACY;
            c.target_value = 0.85;
            c.stop_at_target = true;
            bl_run_result r;
            BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
            assert_int_equal(r.status, BL_RUN_COMPLETED);
            assert_true(r.steps_to_target > 0);
            int before = points_before_target(&r, 0.85);
            if (autoc) {
                if (before < 4)
                    fail_msg("batch %lld: %d points before the target (step %lld)",
                             (long long)b, before, (long long)r.steps_to_target);
                /* the cadence: 1, 2, …, 8, then ⌈s·9/8⌉ */
                assert_int_equal(r.history[0].step, 1);
                for (size_t i = 0; i + 1 < r.history_count; i++) {
                    int64_t s = r.history[i].step, want = (s * 9 + 7) / 8;
                    assert_int_equal(r.history[i + 1].step, want > s + 1 ? want : s + 1);
                }
                /* the resolution follows the steps: the bracket is within 1/8 of them + 1 */
                assert_true(r.steps_to_target_error <= r.steps_to_target / 8 + 1);
            } else if (b == 16) {
                assert_true(before < 4);   /* what "auto" is for */
            }
            bl_run_result_free(&r);
            bl_net_free(net);
        }
    }
    bl_dataset_close(ds);
}

static void changing_batch_and_lr_rules(void **state)
{
    bl_test_env *f = *state;
    bl_dataset *ds = bl_test_dataset(f, "synthetic", BLOBS);
    bl_net *net = bl_test_model(f, "mlp", "hidden=16", ds, 1);
    bl_train_config c = base_config(net, ds);
    grow g = {0};
    c.batch = 8;
    c.batch_fn = grow_batch;
    c.batch_user = &g;
    c.max_batch = 128;
    c.epochs = 1;
    c.prefetch = BL_PREFETCH_ON; /* the prefetch guesses the old batch: a wrong guess is used */
    c.lr_scaling = BL_LR_SCALE_LINEAR;
    c.base_batch = 8;
    c.eval_unit = BL_EVAL_STEPS;
    c.eval_every = 1;
    c.skip_eval = true;
    bl_run_result r;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
    assert_int_equal(r.status, BL_RUN_COMPLETED);
    assert_int_equal(g.calls, r.steps);
    int64_t n_train = bl_dataset_info(ds)->count[BL_SPLIT_TRAIN];
    assert_int_equal(r.samples, n_train); /* one epoch, last partial batch kept */
    assert_int_equal(r.max_batch_used, 128);
    for (size_t i = 0; i < r.history_count; i++) {
        const bl_eval_point *p = &r.history[i];
        /* lr = 0.05 · (B / 8) · 0.5 (linear scaling with the schedule's factor) */
        double want = 0.05 * ((double)p->batch / 8.0) * 0.5;
        assert_true(fabs(p->lr - want) < 1e-12 * want + 1e-15);
    }
    assert_int_equal(r.history[0].batch, 8);
    assert_int_equal(r.history[5].batch, 16);
    bl_run_result_free(&r);

    /* warmup: the first step's LR is between lr/scale and lr, rising */
    c.batch_fn = NULL;
    c.batch = 32;
    c.lr_scaling = BL_LR_SCALE_SQRT;
    c.warmup_steps = 10;
    c.max_steps = 12;
    c.epochs = 0;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
    double full = 0.05 * 2.0; /* sqrt(32/8) */
    assert_true(r.history[0].lr < r.history[5].lr);
    assert_true(fabs(r.history[0].lr - full * (0.5 + 0.5 * 0.1)) < 1e-12);
    assert_true(fabs(r.history[11].lr - full) < 1e-12);
    bl_run_result_free(&r);

    /* drop_last: each epoch runs ⌊n/300⌋ full steps */
    c.warmup_steps = 0;
    c.lr_scaling = BL_LR_SCALE_NONE;
    c.batch = 300;
    c.drop_last = true;
    c.max_steps = 0;
    c.epochs = 2;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
    assert_int_equal(r.steps, 2 * (n_train / 300));
    assert_int_equal(r.samples, 2 * (n_train / 300) * 300);
    bl_run_result_free(&r);
    bl_net_free(net);
    bl_dataset_close(ds);
}

static void bad_configs_are_rejected(void **state)
{
    bl_test_env *f = *state;
    bl_dataset *ds = bl_test_dataset(f, "synthetic", BLOBS);
    bl_net *net = bl_test_model(f, "mlp", "hidden=16", ds, 1);
    bl_train_config c = base_config(net, ds);
    bl_run_result r;
    c.epochs = 0;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "budget", bl_train(f->ctx, &c, &r));
    assert_int_equal(r.status, BL_RUN_FAILED);
    bl_run_result_free(&r);
    c = base_config(net, ds);
    c.batch = 0;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "batch", bl_train(f->ctx, &c, &r));
    bl_run_result_free(&r);
    c = base_config(net, ds);
    c.batch_fn = grow_batch;
    c.max_batch = -1;           /* 0 is allowed (the buffers grow: batch_fn_buffers_grow) */
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "max_batch must be ≥ 0", bl_train(f->ctx, &c, &r));
    bl_run_result_free(&r);
    c = base_config(net, ds);
    c.optim.lr = -1;
    assert_int_not_equal(bl_train(f->ctx, &c, &r), BL_OK);
    assert_true(bl_test_contains(bl_errmsg(f->ctx), "lr"));
    bl_run_result_free(&r);
    c = base_config(net, ds);
    c.batch = 5000;
    c.drop_last = true;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "drop_last", bl_train(f->ctx, &c, &r));
    bl_run_result_free(&r);
    c = base_config(net, ds);
    c.diverge_chance_margin = NAN;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "diverge_chance_margin", bl_train(f->ctx, &c, &r));
    bl_run_result_free(&r);
    c = base_config(net, ds);
    c.diverge_loss_factor = -1;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "diverge_loss_factor", bl_train(f->ctx, &c, &r));
    bl_run_result_free(&r);
    bl_net_free(net);
    bl_dataset_close(ds);
}

/* Counts allocations between the second step and the last one. */
typedef struct alloc_probe {
    long at_step2;
    long at_last;
    int64_t last_step;
} alloc_probe;

static void probe_progress(void *user, const bl_train_state *s, double loss, int64_t total)
{
    alloc_probe *p = user;
    if (s->step == 2)
        p->at_step2 = malloc_calls;
    if (s->step == p->last_step)
        p->at_last = malloc_calls;
}

static void step_loop_allocates_nothing(void **state)
{
    bl_test_env *f = *state;
#ifndef COUNTING_MALLOC
    skip();
#endif
    bl_dataset *ds = bl_test_dataset(f, "synthetic", BLOBS);
    bl_net *net = bl_test_model(f, "mlp", "hidden=32", ds, 1);
    for (int gns = 0; gns < 2; gns++) {
        bl_train_config c = base_config(net, ds);
        alloc_probe probe = {0, 0, 60};
        c.epochs = 0;
        c.max_steps = 60;
        c.measure_gns = gns;
        c.eval_unit = BL_EVAL_STEPS;
        c.eval_every = 1000; /* no evaluation point until the end */
        c.on_progress = probe_progress;
        c.progress_user = &probe;
        bl_run_result r;
        size_t dev_allocs = f->dev->alloc_count;
        BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
        assert_int_equal(r.status, BL_RUN_COMPLETED);
        assert_true(probe.at_step2 > 0);
        if (probe.at_last != probe.at_step2)
            fail_msg("%ld allocations in steps 3..60 (gns %d)", probe.at_last - probe.at_step2,
                     gns);
        assert_true(f->dev->alloc_count > dev_allocs);
        bl_run_result_free(&r);
    }
    bl_net_free(net);
    bl_dataset_close(ds);
}

/* Issue 14: a batch function without max_batch. The buffers grow when a larger batch first
 * appears (8, then 16, then 32 within the first steps) and never again once the largest has
 * been seen (no device allocation after step 10), and the run is the same, point for point, as
 * with max_batch declared. */
static int pattern_batch(void *user, bl_ctx *ctx, const bl_train_state *s, int64_t *batch,
                         double *factor)
{
    (void)user;
    (void)ctx;
    static const int64_t seq[] = {8, 16, 8, 32, 16};
    *batch = seq[s->step % 5];
    *factor = 1;
    return BL_OK;
}

typedef struct dev_probe {
    const bl_device *dev;
    size_t at_step10, at_last;
} dev_probe;

static void probe_device(void *user, const bl_train_state *s, double loss, int64_t total)
{
    (void)loss;
    (void)total;
    dev_probe *p = user;
    if (s->step == 10)
        p->at_step10 = p->dev->alloc_count;
    p->at_last = p->dev->alloc_count;
}

static void batch_fn_buffers_grow(void **state)
{
    bl_test_env *f = *state;
    bl_dataset *ds = bl_test_dataset(f, "synthetic", BLOBS);
    bl_run_result r[2];
    for (int declared = 0; declared < 2; declared++) {
        bl_net *net = bl_test_model(f, "mlp", "hidden=32", ds, 1);
        bl_train_config c = base_config(net, ds);
        c.epochs = 0;
        c.max_steps = 60;
        c.batch = 0;
        c.batch_fn = pattern_batch;
        c.max_batch = declared ? 32 : 0;
        c.eval_unit = BL_EVAL_STEPS;
        c.eval_every = 20;
        dev_probe probe = {f->dev, 0, 0};
        c.on_progress = probe_device;
        c.progress_user = &probe;
        BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r[declared]));
        assert_int_equal(r[declared].status, BL_RUN_COMPLETED);
        assert_int_equal(r[declared].max_batch_used, 32);
        if (probe.at_last != probe.at_step10)
            fail_msg("%zu device allocations after step 10 (max_batch %lld)",
                     probe.at_last - probe.at_step10, (long long)c.max_batch);
        bl_net_free(net);
    }
    assert_int_equal(r[0].history_count, r[1].history_count);
    for (size_t i = 0; i < r[0].history_count; i++) {
        assert_true(r[0].history[i].train_loss == r[1].history[i].train_loss);
        assert_true(r[0].history[i].val_loss == r[1].history[i].val_loss);
    }
    bl_run_result_free(&r[0]);
    bl_run_result_free(&r[1]);
    bl_dataset_close(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_seed_same_history),
        cmocka_unit_test(divergence_is_reported),
        cmocka_unit_test(chance_accuracy_is_divergence),
        cmocka_unit_test(growing_loss_is_divergence),
        cmocka_unit_test(noisy_points_are_not_divergence),
        cmocka_unit_test(target_is_interpolated),
        cmocka_unit_test(accumulation_equals_full_batch),
        cmocka_unit_test(gns_matches_analytic_value),
        cmocka_unit_test(target_is_timed_and_stops),
        cmocka_unit_test(robust_time_ignores_slow_steps),
        cmocka_unit_test(auto_cadence_gives_every_batch_points),
        cmocka_unit_test(changing_batch_and_lr_rules),
        cmocka_unit_test(bad_configs_are_rejected),
        cmocka_unit_test(prefetch_never_overlaps_gathers),
        cmocka_unit_test(split_gather_same_history),
        cmocka_unit_test(step_loop_allocates_nothing),
        cmocka_unit_test(batch_fn_buffers_grow),
    };
    return cmocka_run_group_tests(tests, bl_test_setup_plugins, bl_test_teardown);
}
