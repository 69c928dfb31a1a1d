/* The probe (batchlab/probe.h) on the synthetic teacher task, whose gradient noise scale is
 * known analytically (plugins/datasets/synthetic.c): the probe's B_noise against the
 * analytic B_simple at the weights of its own noise run, the predicted curve's shape, the
 * step times, S_min's basis, the memory budget and the errors. No timing is asserted beyond
 * "positive". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/probe.h"
#include "testutil.h"

enum { D = 10 };

typedef struct fixture {
    bl_ctx *ctx;
    bl_registry *reg;
    bl_dataset *data;
    bl_run_plan plan;
    double teacher[D], sigma;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->ctx = bl_ctx_new();
    BL_ASSERT_OK(f->ctx, bl_registry_new(f->ctx, &f->reg));
    BL_ASSERT_OK(f->ctx, bl_registry_scan(f->ctx, f->reg));
    const bl_plugin *dp;
    BL_ASSERT_OK(f->ctx, bl_registry_find(f->ctx, f->reg, BL_PLUGIN_DATASET, "synthetic", &dp));
    bl_config *dopts = bl_test_config(
        f->ctx, "task=teacher samples=4000 dim=10 noise=0.5 validation=0.25 seed=2");
    BL_ASSERT_OK(f->ctx, bl_dataset_open(f->ctx, dp, dopts, &f->data));
    bl_config_free(dopts);
    int64_t n;
    BL_ASSERT_OK(f->ctx, bl_dataset_property(f->ctx, f->data, "teacher_weights", f->teacher, D,
                                             &n));
    BL_ASSERT_OK(f->ctx, bl_dataset_property(f->ctx, f->data, "noise_std", &f->sigma, 1, &n));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    bl_dataset_close(f->data);
    bl_registry_free(f->reg);
    bl_ctx_free(f->ctx);
    free(f);
    return 0;
}

/* logreg (linear regression here), SGD lr 0.005, batch 64, target val_loss ≤ 0.3 (the noise
 * floor is σ² = 0.25): the probe measures while the loss still falls, where B_simple is a few
 * times the chunk size and its estimate is good. */
static bl_run_plan teacher_plan(fixture *f)
{
    bl_run_plan p;
    memset(&p, 0, sizeof p);
    p.train = bl_train_defaults();
    p.train.data = f->data;
    p.train.batch = 64;
    p.train.optim.lr = 0.005;
    p.train.has_target = true;
    p.train.target_metric = BL_METRIC_VAL_LOSS;
    p.train.target_value = 0.3;
    p.train.target_higher_better = false;
    p.threads = 1;
    BL_ASSERT_OK(f->ctx, bl_registry_find(f->ctx, f->reg, BL_PLUGIN_MODEL, "logreg", &p.model));
    return p;
}

/* An output given to every run of the probe: in the noise run (the one measuring the noise
 * scale) it computes the analytic B_simple at the net's weights at each evaluation point. */
typedef struct analytic {
    const fixture *f;
    bl_net *net;            /* the run's net while it is the noise run, else NULL */
    int64_t steps[128];
    double value[128];
    int n, runs;
    int64_t batch[64];      /* the batch of each run, in order */
} analytic;

static int an_begin(void *self, bl_ctx *ctx, const bl_run_info *info)
{
    (void)ctx;
    analytic *a = self;
    if (a->runs < 64)
        a->batch[a->runs] = info->train->batch;
    a->runs++;
    a->net = info->train->measure_gns ? (bl_net *)info->net : NULL;
    return BL_OK;
}

/* With bias (synthetic.c): B_simple = ((D + 2)|d|² + D b² + (D + 1)σ²) / (|d|² + b²). */
static int an_point(void *self, bl_ctx *ctx, const bl_eval_point *p)
{
    (void)ctx;
    analytic *a = self;
    if (!a->net || a->n >= 128)
        return BL_OK;
    const float *w = bl_net_params(a->net);   /* CPU: host memory */
    double d2 = 0, b2 = (double)w[D] * w[D], s2 = a->f->sigma * a->f->sigma;
    for (int i = 0; i < D; i++)
        d2 += (w[i] - a->f->teacher[i]) * (w[i] - a->f->teacher[i]);
    a->steps[a->n] = p->step;
    a->value[a->n++] = ((D + 2) * d2 + D * b2 + (D + 1) * s2) / (d2 + b2);
    return BL_OK;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static void b_noise_matches_the_analytic_value(void **state)
{
    fixture *f = *state;
    bl_run_plan plan = teacher_plan(f);
    analytic an = {.f = f};
    bl_run_output out = {"analytic", &an, an_begin, an_point, NULL, NULL};
    bl_probe_config c = bl_probe_defaults();
    c.probe_steps = 200;
    c.max_batch = 256;
    c.outputs = &out;
    c.n_outputs = 1;
    bl_probe_result r;
    BL_ASSERT_OK(f->ctx, bl_probe(f->ctx, &plan, &c, &r));

    /* the analytic value over the same points the probe takes its median over */
    double later[128];
    int m = 0;
    for (int i = 0; i < an.n; i++)
        if (2 * an.steps[i] > r.noise_steps)
            later[m++] = an.value[i];
    assert_true(m >= 5);
    assert_true(m >= (int)r.gns_points && r.gns_points >= 3);
    qsort(later, (size_t)m, sizeof *later, cmp_double);
    double expected = m % 2 ? later[m / 2] : (later[m / 2 - 1] + later[m / 2]) / 2;
    print_message("B_noise: probe %.1f, analytic %.1f (over %d points)\n", r.b_noise, expected, m);
    assert_true(r.b_noise > expected / 2 && r.b_noise < expected * 2);

    /* the runs: one noise run, two rounds of timing runs over batches 1, 2, ..., 256 */
    assert_int_equal(r.noise_batch, 64);
    assert_int_equal(r.noise_steps, 200);
    assert_int_equal(r.count, 9);
    assert_int_equal(an.runs, 1 + 2 * 9);
    for (int i = 0; i < 9; i++) {
        assert_int_equal(an.batch[1 + i], (int64_t)1 << i);       /* up the ladder */
        assert_int_equal(an.batch[18 - i], (int64_t)1 << i);      /* and down again */
    }
    assert_int_equal(r.s_min_basis, BL_PROBE_S_MIN_TARGET);
    assert_true(r.noise_steps_to_target > 0 && r.noise_steps_to_target < 200);
    assert_true(fabs(r.s_min * (1 + r.b_noise / 64) - r.noise_steps_to_target) < 1e-6);
    assert_true(r.seconds > 0);

    /* the curve: S(B) = S_min (1 + B_noise/B) falls with B, every batch timed */
    double best = INFINITY;
    bool best_within = false;
    for (size_t i = 0; i < r.count; i++) {
        const bl_probe_point *p = &r.points[i];
        assert_int_equal(p->batch, (int64_t)1 << i);
        assert_true(p->step_time > 0);
        assert_int_equal(p->timed_steps, c.time_steps * c.rounds);
        assert_true(p->peak_bytes > 0);
        assert_true(fabs(p->steps - r.s_min * (1 + r.b_noise / (double)p->batch)) <
                    1e-9 * p->steps);
        assert_true(fabs(p->time - p->steps * p->step_time) <= 1e-12 + 1e-9 * p->time);
        if (i > 0)
            assert_true(p->steps < r.points[i - 1].steps);
        assert_true(p->relative_time >= 1.0 - 1e-12);
        assert_int_equal(p->within, p->relative_time <= 1.1 + 1e-12);
        if (p->time < best)
            best = p->time;
        if (p->batch == r.best_batch) {
            assert_true(fabs(p->relative_time - 1.0) < 1e-12);
            best_within = p->within;
        }
    }
    assert_true(best_within);
    assert_true(r.within_count >= 1);
    for (size_t i = 0; i < r.count; i++)
        if (r.points[i].batch == r.best_batch)
            assert_true(r.points[i].time == best);
    char text[512];
    bl_probe_summary(&r, c.tie_fraction, text, sizeof text);
    print_message("%s\n", text);
    char want[64];
    snprintf(want, sizeof want, "predicted best batch %lld", (long long)r.best_batch);
    assert_true(bl_test_contains(text, want));
    assert_true(bl_test_contains(text, "within 10%"));
    assert_true(bl_test_contains(text, "B_noise ≈"));
    bl_probe_result_free(&r);
}

/* A target the probe does not reach: S_min extrapolated from its progress; a metric it
 * cannot measure (accuracy on regression): S_min unknown, yet the ranking stands. */
static void s_min_basis_follows_the_target(void **state)
{
    fixture *f = *state;
    bl_run_plan plan = teacher_plan(f);
    plan.train.target_value = 0.25;   /* the noise floor σ²: not reached */
    bl_probe_config c = bl_probe_defaults();
    c.probe_steps = 40;
    c.time_steps = 3;
    c.batches = (const int64_t[]){16, 64};
    c.batch_count = 2;
    bl_probe_result r;
    BL_ASSERT_OK(f->ctx, bl_probe(f->ctx, &plan, &c, &r));
    assert_int_equal(r.s_min_basis, BL_PROBE_S_MIN_EXTRAPOLATED);
    assert_true(r.noise_steps_to_target > 40);
    assert_int_equal(r.count, 2);
    assert_int_equal(r.points[0].batch, 16);
    assert_int_equal(r.points[1].batch, 64);
    bl_probe_result_free(&r);

    plan.train.target_metric = BL_METRIC_VAL_ACCURACY;
    plan.train.target_higher_better = true;
    plan.train.target_value = 0.9;
    BL_ASSERT_OK(f->ctx, bl_probe(f->ctx, &plan, &c, &r));
    assert_int_equal(r.s_min_basis, BL_PROBE_S_MIN_NONE);
    assert_true(isnan(r.s_min) && isnan(r.points[0].steps) && isnan(r.points[1].time));
    assert_true(r.points[0].relative_time >= 1 && r.points[1].relative_time >= 1);
    assert_true(r.best_batch == 16 || r.best_batch == 64);
    char text[512];
    assert_true(bl_test_contains(bl_probe_summary(&r, 0.1, text, sizeof text),
                                 "S_min unknown"));
    bl_probe_result_free(&r);
}

/* With a memory budget the max-batch finder ends the ladder. */
static void budget_bounds_the_ladder(void **state)
{
    fixture *f = *state;
    bl_run_plan plan = teacher_plan(f);
    bl_probe_config c = bl_probe_defaults();
    c.probe_steps = 20;
    c.time_steps = 3;
    c.warmup_steps = 0;
    c.min_batch = 8;
    c.budget_bytes = 64 * 1024;
    bl_probe_result r;
    BL_ASSERT_OK(f->ctx, bl_probe(f->ctx, &plan, &c, &r));
    print_message("largest fit %lld, %zu batches\n", (long long)r.largest_fit, r.count);
    assert_true(r.largest_fit >= 8 && r.largest_fit < 3000);
    assert_true(r.count >= 1);
    assert_true(r.points[r.count - 1].batch <= r.largest_fit);
    assert_true(r.points[r.count - 1].batch * 2 > r.largest_fit);
    for (size_t i = 0; i < r.count; i++)
        assert_true(r.points[i].peak_bytes <= c.budget_bytes);
    bl_probe_result_free(&r);
}

static void bad_inputs_are_clear_errors(void **state)
{
    fixture *f = *state;
    bl_probe_result r;
    bl_run_plan plan = teacher_plan(f);
    plan.train.has_target = false;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "a 'target' is needed", bl_probe(f->ctx, &plan, NULL, &r));
    assert_null(r.points);

    plan = teacher_plan(f);
    plan.train.batch = 4;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "too small to measure the noise scale",
                  bl_probe(f->ctx, &plan, NULL, &r));

    plan = teacher_plan(f);
    bl_probe_config c = bl_probe_defaults();
    c.probe_steps = 5;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "'probe_steps' must be ≥ 20",
                  bl_probe(f->ctx, &plan, &c, &r));
    c = bl_probe_defaults();
    c.batches = (const int64_t[]){64, 32};
    c.batch_count = 2;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "must be increasing", bl_probe(f->ctx, &plan, &c, &r));
    c.batches = (const int64_t[]){32, 100000};
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "batches[2] = 100000 must be in [1, 3000]",
                  bl_probe(f->ctx, &plan, &c, &r));
    c = bl_probe_defaults();
    c.min_batch = 8;
    c.max_batch = 4;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "min_batch", bl_probe(f->ctx, &plan, &c, &r));

    /* the interrupt flag (Ctrl-C) ends the probe */
    volatile sig_atomic_t flag = 1;
    plan = teacher_plan(f);
    plan.train.interrupt = &flag;
    BL_ASSERT_ERR(f->ctx, BL_EINTERRUPTED, "interrupted during the noise-scale run",
                  bl_probe(f->ctx, &plan, NULL, &r));

    /* an LR that diverges at the probe's batch */
    plan = teacher_plan(f);
    plan.train.optim.lr = 1e6;
    c = bl_probe_defaults();
    c.probe_steps = 20;
    BL_ASSERT_ERR(f->ctx, BL_EDIVERGED, "noise-scale run at batch 64 diverged",
                  bl_probe(f->ctx, &plan, &c, &r));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(b_noise_matches_the_analytic_value),
        cmocka_unit_test(s_min_basis_follows_the_target),
        cmocka_unit_test(budget_bounds_the_ladder),
        cmocka_unit_test(bad_inputs_are_clear_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
