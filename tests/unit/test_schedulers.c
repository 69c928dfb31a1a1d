/* Scheduler plugins (plugins/schedulers): each one loaded from the build tree through the
 * registry and opened with bl_scheduler_open, then stepped through hand-made training states;
 * the batch (and LR factor) sequence must match values computed by hand, max_batch must be
 * exactly the largest batch the schedule returns, bad options must be refused with a message
 * naming the option, and next() must not allocate. */
#include "testutil.h"

#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRAIN_SIZE 1000 /* samples per epoch in the synthetic states */

static const char *const SCHEDULERS[] = {"constant", "step", "ramp", "smith", "gns"};
#define N_SCHEDULERS (sizeof SCHEDULERS / sizeof *SCHEDULERS)

typedef struct fixture {
    bl_ctx *ctx;
    bl_registry *reg;
} fixture;

static int teardown(void **state)
{
    fixture *fx = *state;
    if (fx) {
        bl_registry_free(fx->reg);
        bl_ctx_free(fx->ctx);
        free(fx);
    }
    *state = NULL;
    return 0;
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    *state = fx;
    fx->ctx = bl_ctx_new();
    if (!fx->ctx || bl_registry_new(fx->ctx, &fx->reg) != BL_OK) {
        teardown(state);
        return -1;
    }
    for (size_t i = 0; i < N_SCHEDULERS; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/bl_%s.so", BATCHLAB_BUILD_PLUGIN_DIR, SCHEDULERS[i]);
        if (bl_registry_load(fx->ctx, fx->reg, path) != BL_OK) {
            fprintf(stderr, "cannot load %s: %s\n", path, bl_errmsg(fx->ctx));
            teardown(state);
            return -1;
        }
    }
    return 0;
}

/* Opens scheduler `name` with the NULL-terminated "option=value" assignments that follow. */
static int open_sched(fixture *fx, const char *name, bl_scheduler **out, ...)
{
    const bl_plugin *plugin = NULL;
    int rc = bl_registry_find(fx->ctx, fx->reg, BL_PLUGIN_SCHEDULER, name, &plugin);
    if (rc)
        return rc;
    bl_config *cfg = NULL;
    if ((rc = bl_config_new(fx->ctx, &cfg)))
        return rc;
    va_list ap;
    va_start(ap, out);
    for (const char *a; !rc && (a = va_arg(ap, const char *));)
        rc = bl_config_set_assignment(fx->ctx, cfg, a);
    va_end(ap);
    if (!rc)
        rc = bl_scheduler_open(fx->ctx, plugin, cfg, out);
    bl_config_free(cfg);
    return rc;
}

/* A state at the start of epoch `epoch` (10 steps per epoch). */
static bl_train_state at_epoch(int64_t epoch)
{
    bl_train_state s = {.step = epoch * 10, .epoch = epoch, .epoch_progress = (double)epoch,
                        .samples = epoch * TRAIN_SIZE, .train_size = TRAIN_SIZE, .batch = 100,
                        .lr = 0.1, .gns = NAN};
    return s;
}

/* A state after `samples` training samples (fractional epochs follow). */
static bl_train_state at_samples(int64_t samples)
{
    bl_train_state s = {.step = samples / 10, .epoch = samples / TRAIN_SIZE,
                        .epoch_progress = (double)samples / TRAIN_SIZE, .samples = samples,
                        .train_size = TRAIN_SIZE, .batch = 10, .lr = 0.1, .gns = NAN};
    return s;
}

/* A state before step `step` with noise-scale estimate `gns` (batch 32 per step so far). */
static bl_train_state at_step(int64_t step, double gns)
{
    bl_train_state s = {.step = step, .epoch = step * 32 / TRAIN_SIZE,
                        .epoch_progress = (double)(step * 32) / TRAIN_SIZE, .samples = step * 32,
                        .train_size = TRAIN_SIZE, .batch = 32, .lr = 0.1, .gns = gns};
    return s;
}

static void expect(fixture *fx, bl_scheduler *s, bl_train_state st, int64_t batch, double lr)
{
    int64_t b = -1;
    double f = -1;
    BL_ASSERT_OK(fx->ctx, bl_scheduler_next(fx->ctx, s, &st, &b, &f));
    if (b != batch || fabs(f - lr) > 1e-12 * lr)
        fail_msg("%s at step %lld (epoch %lld, samples %lld, gns %g): got batch %lld, lr factor "
                 "%.17g; expected %lld, %.17g",
                 bl_scheduler_plugin(s)->name, (long long)st.step, (long long)st.epoch,
                 (long long)st.samples, st.gns, (long long)b, f, (long long)batch, lr);
}

/* ---- descriptors ---------------------------------------------------------------------------- */

/* Every scheduler: well-formed descriptor, documented options, opens with its defaults, and
 * needs_gns only for gns. */
static void test_descriptors_and_defaults(void **state)
{
    fixture *fx = *state;
    for (size_t i = 0; i < N_SCHEDULERS; i++) {
        const bl_plugin *p = NULL;
        BL_ASSERT_OK(fx->ctx, bl_registry_find(fx->ctx, fx->reg, BL_PLUGIN_SCHEDULER,
                                                SCHEDULERS[i], &p));
        assert_int_equal(p->abi, BL_PLUGIN_ABI);
        assert_int_equal(p->size, sizeof(bl_plugin));
        assert_string_equal(p->name, SCHEDULERS[i]);
        assert_non_null(p->version);
        assert_true(p->summary && *p->summary);
        assert_non_null(p->options);
        for (const bl_option *o = p->options; o->name; o++) {
            assert_non_null(o->default_value);
            assert_true(o->help && *o->help);
        }
        bl_scheduler *s = NULL;
        BL_ASSERT_OK(fx->ctx, open_sched(fx, SCHEDULERS[i], &s, NULL));
        assert_true(bl_scheduler_max_batch(s) >= 1);
        assert_int_equal(bl_scheduler_needs_gns(s), strcmp(SCHEDULERS[i], "gns") == 0);
        bl_scheduler_close(s);
    }
}

/* ---- constant ------------------------------------------------------------------------------- */

static void test_constant(void **state)
{
    fixture *fx = *state;
    bl_scheduler *s = NULL;
    BL_ASSERT_OK(fx->ctx, open_sched(fx, "constant", &s, NULL));
    assert_int_equal(bl_scheduler_max_batch(s), 128);
    expect(fx, s, at_epoch(0), 128, 1.0);
    expect(fx, s, at_epoch(7), 128, 1.0);
    bl_scheduler_close(s);

    BL_ASSERT_OK(fx->ctx, open_sched(fx, "constant", &s, "batch=48", NULL));
    assert_int_equal(bl_scheduler_max_batch(s), 48);
    for (int64_t e = 0; e < 5; e++)
        expect(fx, s, at_epoch(e), 48, 1.0);
    bl_scheduler_close(s);

    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "scheduler constant: option 'batch'",
                  open_sched(fx, "constant", &s, "batch=0", NULL));
    assert_true(bl_test_contains(bl_errmsg(fx->ctx), "got 0"));
}

/* ---- step ----------------------------------------------------------------------------------- */

static void test_step(void **state)
{
    fixture *fx = *state;
    bl_scheduler *s = NULL;

    /* ×2 at epochs 2 and 5, capped at 300: 100 (0–1), 200 (2–4), 300 not 400 (5 on). */
    BL_ASSERT_OK(fx->ctx, open_sched(fx, "step", &s, "batch=100", "factor=2", "milestones=2,5",
                                     "max=300", NULL));
    assert_int_equal(bl_scheduler_max_batch(s), 300);
    const int64_t want[] = {100, 100, 200, 200, 200, 300, 300, 300};
    for (int64_t e = 0; e < 8; e++)
        expect(fx, s, at_epoch(e), want[e], 1.0);
    /* Mid-epoch states use completed epochs: 1.99 epochs done is still before epoch 2. */
    expect(fx, s, at_samples(1990), 100, 1.0);
    expect(fx, s, at_samples(2000), 200, 1.0);
    bl_scheduler_close(s);

    /* A fractional factor, computed from the start each time: 128·1.5^k rounded. */
    BL_ASSERT_OK(fx->ctx, open_sched(fx, "step", &s, "batch=128", "factor=1.5",
                                     "milestones=1,2,3,4", NULL));
    assert_int_equal(bl_scheduler_max_batch(s), 648);
    const int64_t want15[] = {128, 192, 288, 432, 648, 648};
    for (int64_t e = 0; e < 6; e++)
        expect(fx, s, at_epoch(e), want15[e], 1.0);
    bl_scheduler_close(s);

    /* A factor below 1 shrinks the batch; max_batch is then the start. */
    BL_ASSERT_OK(fx->ctx, open_sched(fx, "step", &s, "batch=128", "factor=0.5", "milestones=3",
                                     NULL));
    assert_int_equal(bl_scheduler_max_batch(s), 128);
    expect(fx, s, at_epoch(2), 128, 1.0);
    expect(fx, s, at_epoch(3), 64, 1.0);
    bl_scheduler_close(s);

    /* The default (no milestones) is constant. */
    BL_ASSERT_OK(fx->ctx, open_sched(fx, "step", &s, NULL));
    assert_int_equal(bl_scheduler_max_batch(s), 128);
    expect(fx, s, at_epoch(100), 128, 1.0);
    bl_scheduler_close(s);

    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "scheduler step: option 'factor' must be > 0, got 0",
                  open_sched(fx, "step", &s, "factor=0", "milestones=1", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'factor' must be > 0, got -2",
                  open_sched(fx, "step", &s, "factor=-2", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'milestones' must be strictly increasing, got 2 after 3",
                  open_sched(fx, "step", &s, "milestones=1,3,2", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'milestones' must be strictly increasing",
                  open_sched(fx, "step", &s, "milestones=2,2", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'milestones': milestones must be ≥ 0",
                  open_sched(fx, "step", &s, "milestones=-1,4", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'unit' must be epochs, steps or samples",
                  open_sched(fx, "step", &s, "milestones=1", "unit=hours", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'max' (64) must be ≥ 'batch' (128)",
                  open_sched(fx, "step", &s, "max=64", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'batch' must be a batch size",
                  open_sched(fx, "step", &s, "batch=-5", NULL));
    /* Growing without a cap past 2^31-1 is refused, naming the epoch and the option to set. */
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "set option 'max'",
                  open_sched(fx, "step", &s, "factor=10", "milestones=1,2,3,4,5,6,7,8", NULL));
    assert_true(bl_test_contains(bl_errmsg(fx->ctx), "at epoch 8"));
}

/* ---- ramp ----------------------------------------------------------------------------------- */

static void test_ramp(void **state)
{
    fixture *fx = *state;
    bl_scheduler *s = NULL;

    /* Linear 32 → 256 over 1000 samples in multiples of 32: b = 32 + 224·t rounded to the
     * nearest multiple (half away from zero). */
    BL_ASSERT_OK(fx->ctx, open_sched(fx, "ramp", &s, "start=32", "stop=256", "samples=1000",
                                     "multiple=32", NULL));
    assert_int_equal(bl_scheduler_max_batch(s), 256);
    expect(fx, s, at_samples(0), 32, 1.0);
    expect(fx, s, at_samples(100), 64, 1.0);   /* 54.4 → 1.7 → 2 */
    expect(fx, s, at_samples(250), 96, 1.0);   /* 88 → 2.75 → 3 */
    expect(fx, s, at_samples(500), 160, 1.0);  /* 144 → 4.5 → 5 */
    expect(fx, s, at_samples(750), 192, 1.0);  /* 200 → 6.25 → 6 */
    expect(fx, s, at_samples(1000), 256, 1.0);
    expect(fx, s, at_samples(123456), 256, 1.0); /* stays at the end */
    bl_scheduler_close(s);

    /* Exponential 16 → 1024 over 600 samples: 16·64^t. */
    BL_ASSERT_OK(fx->ctx, open_sched(fx, "ramp", &s, "start=16", "stop=1024", "samples=600",
                                     "shape=exponential", NULL));
    assert_int_equal(bl_scheduler_max_batch(s), 1024);
    expect(fx, s, at_samples(0), 16, 1.0);
    expect(fx, s, at_samples(200), 64, 1.0);
    expect(fx, s, at_samples(300), 128, 1.0);
    expect(fx, s, at_samples(400), 256, 1.0);
    expect(fx, s, at_samples(600), 1024, 1.0);
    expect(fx, s, at_samples(900), 1024, 1.0);
    bl_scheduler_close(s);

    /* Over epochs (samples = 0): 10 → 20 over 2 epochs, by fractional epochs done. */
    BL_ASSERT_OK(fx->ctx, open_sched(fx, "ramp", &s, "start=10", "stop=20", "epochs=2", NULL));
    expect(fx, s, at_samples(0), 10, 1.0);
    expect(fx, s, at_samples(500), 13, 1.0);  /* 12.5 → 13 */
    expect(fx, s, at_samples(1000), 15, 1.0);
    expect(fx, s, at_samples(2000), 20, 1.0);
    expect(fx, s, at_samples(5000), 20, 1.0);
    bl_scheduler_close(s);

    /* Downwards: max_batch is the start. */
    BL_ASSERT_OK(fx->ctx, open_sched(fx, "ramp", &s, "start=256", "stop=64", "samples=100",
                                     NULL));
    assert_int_equal(bl_scheduler_max_batch(s), 256);
    expect(fx, s, at_samples(0), 256, 1.0);
    expect(fx, s, at_samples(50), 160, 1.0);
    expect(fx, s, at_samples(100), 64, 1.0);
    bl_scheduler_close(s);

    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "scheduler ramp: option 'stop' must be a batch size",
                  open_sched(fx, "ramp", &s, "stop=0", NULL));
    assert_true(bl_test_contains(bl_errmsg(fx->ctx), "got 0"));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'start' must be a batch size",
                  open_sched(fx, "ramp", &s, "start=-1", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'shape' must be linear or exponential, got 'cubic'",
                  open_sched(fx, "ramp", &s, "shape=cubic", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'start' (30) must be a multiple of 'multiple' (32)",
                  open_sched(fx, "ramp", &s, "start=30", "multiple=32", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'multiple' must be ≥ 1",
                  open_sched(fx, "ramp", &s, "multiple=0", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'epochs' must be a positive number",
                  open_sched(fx, "ramp", &s, "epochs=-1", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'samples' must be a positive number",
                  open_sched(fx, "ramp", &s, "samples=-10", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "give only one of 'epochs', 'steps', 'samples'",
                  open_sched(fx, "ramp", &s, "samples=10", "steps=5", NULL));
    /* the Lua library's ramps: ends and one length required */
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "one of 'epochs', 'steps', 'samples' is required",
                  open_sched(fx, "linear_ramp", &s, "start=8", "stop=16", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "missing required option 'batch'",
                  open_sched(fx, "warmup", &s, "start=8", "steps=10", NULL));
}

/* ---- smith ---------------------------------------------------------------------------------- */

/* The noise scale ε/B falls by exactly `alpha` at every milestone, whatever the cap does. */
static void expect_noise_drop(fixture *fx, bl_scheduler *s, const int64_t *epochs, int n,
                              double alpha)
{
    double prev = NAN;
    for (int i = 0; i < n; i++) {
        bl_train_state st = at_epoch(epochs[i]);
        int64_t b;
        double f;
        BL_ASSERT_OK(fx->ctx, bl_scheduler_next(fx->ctx, s, &st, &b, &f));
        double g = f / (double)b;
        if (i > 0)
            assert_true(fabs(prev / g - alpha) < 1e-9 * alpha);
        prev = g;
    }
}

static void test_smith(void **state)
{
    fixture *fx = *state;
    bl_scheduler *s = NULL;

    /* Defaults: the paper's CIFAR-10 schedule, α = 5 at epochs 60, 120, 160, no cap. */
    BL_ASSERT_OK(fx->ctx, open_sched(fx, "smith", &s, NULL));
    assert_int_equal(bl_scheduler_max_batch(s), 16000);
    expect(fx, s, at_epoch(0), 128, 1.0);
    expect(fx, s, at_epoch(59), 128, 1.0);
    expect(fx, s, at_epoch(60), 640, 1.0);
    expect(fx, s, at_epoch(119), 640, 1.0);
    expect(fx, s, at_epoch(120), 3200, 1.0);
    expect(fx, s, at_epoch(160), 16000, 1.0);
    expect(fx, s, at_epoch(199), 16000, 1.0);
    bl_scheduler_close(s);

    /* Hybrid: the cap is met exactly at the first milestone; the LR decays after it. */
    BL_ASSERT_OK(fx->ctx, open_sched(fx, "smith", &s, "max=640", NULL));
    assert_int_equal(bl_scheduler_max_batch(s), 640);
    expect(fx, s, at_epoch(0), 128, 1.0);
    expect(fx, s, at_epoch(60), 640, 1.0);
    expect(fx, s, at_epoch(120), 640, 0.2);
    expect(fx, s, at_epoch(160), 640, 0.04);
    const int64_t paper[] = {0, 60, 120, 160};
    expect_noise_drop(fx, s, paper, 4, 5.0);
    bl_scheduler_close(s);

    /* A partial increase: 512 × 5 > 1024, so B → 1024 (×2) and the LR × 2/5. */
    BL_ASSERT_OK(fx->ctx, open_sched(fx, "smith", &s, "batch=512", "factor=5", "max=1024",
                                     "milestones=10,20", NULL));
    assert_int_equal(bl_scheduler_max_batch(s), 1024);
    expect(fx, s, at_epoch(9), 512, 1.0);
    expect(fx, s, at_epoch(10), 1024, 0.4);
    expect(fx, s, at_epoch(19), 1024, 0.4);
    expect(fx, s, at_epoch(20), 1024, 0.08);
    const int64_t ep[] = {0, 10, 20};
    expect_noise_drop(fx, s, ep, 3, 5.0);
    bl_scheduler_close(s);

    /* A fractional α: 3 · 2.5 = 7.5 rounds to 8 and the LR factor makes up for it (8/7.5);
     * then 18.75 → 19 (19/18.75); the noise scale still falls by exactly 2.5 each time. */
    BL_ASSERT_OK(fx->ctx, open_sched(fx, "smith", &s, "batch=3", "factor=2.5",
                                     "milestones=1,2", NULL));
    assert_int_equal(bl_scheduler_max_batch(s), 19);
    expect(fx, s, at_epoch(0), 3, 1.0);
    expect(fx, s, at_epoch(1), 8, 8.0 / 7.5);
    expect(fx, s, at_epoch(2), 19, 19.0 / 18.75);
    const int64_t ep2[] = {0, 1, 2};
    expect_noise_drop(fx, s, ep2, 3, 2.5);
    bl_scheduler_close(s);

    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "scheduler smith: option 'factor' must be > 1",
                  open_sched(fx, "smith", &s, "factor=1", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'factor' must be > 1",
                  open_sched(fx, "smith", &s, "factor=0", NULL));
    assert_true(bl_test_contains(bl_errmsg(fx->ctx), "got 0"));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION,
                  "option 'milestones' must be strictly increasing, got 30 after 60",
                  open_sched(fx, "smith", &s, "milestones=60,30", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'max' (100) must be ≥ 'batch' (128)",
                  open_sched(fx, "smith", &s, "max=100", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "set option 'max'",
                  open_sched(fx, "smith", &s, "factor=10", "milestones=1,2,3,4,5,6,7,8", NULL));
}

/* ---- gns ------------------------------------------------------------------------------------ */

static void test_gns(void **state)
{
    fixture *fx = *state;
    bl_scheduler *s = NULL;

    BL_ASSERT_OK(fx->ctx, open_sched(fx, "gns", &s, "batch=32", "k=2", "min=16", "max=1024",
                                     "multiple=16", "every=10", NULL));
    assert_int_equal(bl_scheduler_max_batch(s), 1024);
    assert_true(bl_scheduler_needs_gns(s));
    expect(fx, s, at_step(0, NAN), 32, 1.0);      /* no estimate yet */
    expect(fx, s, at_step(5, 100), 32, 1.0);      /* too soon after step 0 */
    expect(fx, s, at_step(10, 100), 208, 1.0);    /* 200 → 12.5 → 13 × 16 */
    expect(fx, s, at_step(15, 300), 208, 1.0);    /* too soon after step 10 */
    expect(fx, s, at_step(19, 300), 208, 1.0);
    expect(fx, s, at_step(20, 300), 608, 1.0);    /* 600 → 37.5 → 38 × 16 */
    expect(fx, s, at_step(30, 50), 608, 1.0);     /* 100 → 96, but never down */
    expect(fx, s, at_step(40, 1e6), 1024, 1.0);   /* capped */
    expect(fx, s, at_step(50, NAN), 1024, 1.0);   /* estimate lost: keep */
    expect(fx, s, at_step(60, -5), 1024, 1.0);    /* unusable estimate: keep */
    expect(fx, s, at_step(70, INFINITY), 1024, 1.0);
    /* A new run with the same handle starts over. */
    expect(fx, s, at_step(0, 5000), 32, 1.0);
    expect(fx, s, at_step(10, 4), 32, 1.0);       /* 8 → clamped to min 16, never down */
    bl_scheduler_close(s);

    /* Not monotonic: follows the estimate down to min. */
    BL_ASSERT_OK(fx->ctx, open_sched(fx, "gns", &s, "batch=32", "k=2", "min=16", "max=1024",
                                     "multiple=16", "every=10", "monotonic=false", NULL));
    expect(fx, s, at_step(0, NAN), 32, 1.0);
    expect(fx, s, at_step(10, 100), 208, 1.0);
    expect(fx, s, at_step(20, 5), 16, 1.0);
    expect(fx, s, at_step(25, 500), 16, 1.0);
    expect(fx, s, at_step(30, 500), 1008, 1.0);   /* 1000 → 62.5 → 63 × 16 */
    bl_scheduler_close(s);

    /* every = 1: a change at any step. */
    BL_ASSERT_OK(fx->ctx, open_sched(fx, "gns", &s, "batch=32", "min=1", "max=4096",
                                     "every=1", NULL));
    expect(fx, s, at_step(0, 870.4), 32, 1.0);    /* at step 0 the batch is the start */
    expect(fx, s, at_step(1, 870.4), 870, 1.0);
    expect(fx, s, at_step(2, 876.6), 877, 1.0);
    bl_scheduler_close(s);

    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "scheduler gns: option 'min' (64) must be ≤ 'max' (32)",
                  open_sched(fx, "gns", &s, "min=64", "max=32", "batch=32", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'k' must be > 0, got 0",
                  open_sched(fx, "gns", &s, "k=0", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'batch' (8) must be in [min, max] = [16, 4096]",
                  open_sched(fx, "gns", &s, "batch=8", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'min' (20) must be a multiple of 'multiple' (16)",
                  open_sched(fx, "gns", &s, "min=20", "multiple=16", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'every' must be ≥ 1, got 0",
                  open_sched(fx, "gns", &s, "every=0", NULL));
    BL_ASSERT_ERR(fx->ctx, BL_EOPTION, "option 'max' must be a batch size",
                  open_sched(fx, "gns", &s, "max=0", NULL));
}

/* ---- no allocation in next() ---------------------------------------------------------------- */

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* glibc's heap counters do not move across many next() calls of any scheduler. (Under
 * AddressSanitizer the counters stay at zero and the check passes trivially.) */
static void test_next_allocates_nothing(void **state)
{
    fixture *fx = *state;
    for (size_t i = 0; i < N_SCHEDULERS; i++) {
        bl_scheduler *s = NULL;
        BL_ASSERT_OK(fx->ctx, open_sched(fx, SCHEDULERS[i], &s, NULL));
        int64_t b;
        double f;
        bl_train_state st = at_step(0, NAN);
        BL_ASSERT_OK(fx->ctx, bl_scheduler_next(fx->ctx, s, &st, &b, &f)); /* warm */
        const size_t before = heap_in_use();
        for (int64_t step = 0; step < 20000; step++) {
            st = at_step(step, step < 100 ? NAN : (double)step / 4);
            st.epoch = step / 50; /* reach every smith milestone */
            if (bl_scheduler_next(fx->ctx, s, &st, &b, &f) != BL_OK)
                fail_msg("%s: %s", SCHEDULERS[i], bl_errmsg(fx->ctx));
            assert_true(b >= 1 && b <= bl_scheduler_max_batch(s));
        }
        assert_int_equal(heap_in_use(), before);
        bl_scheduler_close(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptors_and_defaults),
        cmocka_unit_test(test_constant),
        cmocka_unit_test(test_step),
        cmocka_unit_test(test_ramp),
        cmocka_unit_test(test_smith),
        cmocka_unit_test(test_gns),
        cmocka_unit_test(test_next_allocates_nothing),
    };
    return cmocka_run_group_tests_name("schedulers", tests, setup, teardown);
}
