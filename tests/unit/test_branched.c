/* Branched training (batchlab/branched.h): the k = 1 branch from a snapshot is the base run
 * continued, bit for bit (the snapshot restore and the branching add no drift); the critical
 * batch, its bracket and the warmup schedule follow the stated rules; bad configurations are
 * refused with the setting named. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/branched.h"
#include "batchlab/model.h"
#include "batchlab/run.h"
#include "testutil.h"

typedef struct fixture {
    bl_ctx *ctx;
    bl_registry *reg;
    bl_dataset *blobs;
    const bl_plugin *mlp;
    bl_config *mlp_opts;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->ctx = bl_ctx_new();
    if (bl_registry_new(f->ctx, &f->reg) != BL_OK || bl_registry_scan(f->ctx, f->reg) != BL_OK)
        return -1;
    const bl_plugin *p;
    if (bl_registry_find(f->ctx, f->reg, BL_PLUGIN_DATASET, "synthetic", &p) != BL_OK ||
        bl_registry_find(f->ctx, f->reg, BL_PLUGIN_MODEL, "mlp", &f->mlp) != BL_OK)
        return -1;
    bl_config *c = bl_test_config(f->ctx, "task=blobs samples=700 dim=6 classes=3 noise=1.5 seed=3 "
                                  "validation=100");
    int rc = bl_dataset_open(f->ctx, p, c, &f->blobs);
    bl_config_free(c);
    if (rc != BL_OK)
        return -1;
    f->mlp_opts = bl_test_config(f->ctx, "hidden=16 dropout=0.1");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    bl_config_free(f->mlp_opts);
    bl_dataset_close(f->blobs);
    bl_registry_free(f->reg);
    bl_ctx_free(f->ctx);
    free(f);
    return 0;
}

static bl_run_plan base_plan(fixture *f)
{
    bl_run_plan p;
    memset(&p, 0, sizeof p);
    p.train = bl_train_defaults();
    p.train.data = f->blobs;
    p.train.optim = bl_optim_defaults(BL_OPTIM_SGD);
    p.train.optim.lr = 0.05;
    p.train.optim.momentum = 0.9;
    p.train.batch = 16;
    p.train.epochs = 4;
    p.train.seed = 3;
    p.train.prefetch = BL_PREFETCH_OFF;
    p.model = f->mlp;
    p.model_opts = f->mlp_opts;
    p.threads = 1;
    return p;
}

/* Batch 16 up to 400 samples, then batch 32 at twice the LR: the k = 2 branch from 400
 * samples, written as one run. */
static int switch_at_400(void *user, bl_ctx *ctx, const bl_train_state *state, int64_t *batch,
                         double *lr_factor)
{
    (void)user;
    (void)ctx;
    *batch = state->samples < 400 ? 16 : 32;
    *lr_factor = state->samples < 400 ? 1.0 : 2.0;
    return 0;
}

/* The k = 1 branch from step 25 (400 samples) for 320 samples — across an epoch's partial
 * last batch — ends with the validation loss, byte for byte, of the base run trained straight
 * to 720 samples with the same evaluation. */
static void k1_branch_continues_the_base_run(void **state)
{
    fixture *f = *state;
    bl_run_plan plan = base_plan(f);
    bl_branched_config c = bl_branched_defaults();
    const int64_t points[] = {400};
    const int64_t ks[] = {1, 2, 4};
    c.base = &plan;
    c.points = points;
    c.n_given = 1;
    c.ks = ks;
    c.n_ks = 3;
    c.branch_samples = 320;
    c.measure = BL_BRANCH_MEASURE_VAL;
    bl_branched_result r;
    BL_ASSERT_OK(f->ctx, bl_branched_run(f->ctx, &c, &r));
    assert_int_equal(r.n_points, 1);
    assert_int_equal(r.points[0].step, 25);
    assert_int_equal(r.points[0].samples, 400);
    /* the epoch's partial batch of 8 makes both overshoot: 12 × 16, 8, 8 × 16 and
     * 6 × 32, 8, 4 × 32 */
    assert_int_equal(r.points[0].branch_samples[0], 328);
    assert_int_equal(r.points[0].branch_samples[1], 328);
    assert_true(r.lrs[1] == 2 * r.lrs[0] && r.lrs[2] == 4 * r.lrs[0]);  /* linear rule */
    assert_int_equal(r.measure, BL_BRANCH_MEASURE_VAL);

    bl_run_plan cont = base_plan(f);
    cont.train.eval_unit = BL_EVAL_STEPS;
    cont.train.eval_every = 1e18;
    cont.train.skip_test = true;
    cont.train.train_eval_samples = 0;
    cont.train.max_samples = 720;
    bl_run_result res;
    BL_ASSERT_OK(f->ctx, bl_run(f->ctx, &cont, NULL, 0, &res));
    assert_int_equal(res.status, BL_RUN_COMPLETED);
    assert_int_equal(res.samples, 728);
    double want = res.final.val_loss;
    if (memcmp(&want, &r.points[0].loss[0], sizeof want) != 0)
        fail_msg("the k = 1 branch ends at val_loss %.17g, the base run continued at %.17g",
                 r.points[0].loss[0], want);
    /* the other branches did train otherwise */
    assert_true(isfinite(r.points[0].loss[1]) && r.points[0].loss[1] != want);
    bl_run_result_free(&res);
    /* and the k = 2 branch started from the snapshot (not from scratch): it is the run that
     * switches to batch 32 and 2× the LR at 400 samples */
    cont.train.batch_fn = switch_at_400;
    cont.train.max_batch = 32;
    BL_ASSERT_OK(f->ctx, bl_run(f->ctx, &cont, NULL, 0, &res));
    assert_int_equal(res.samples, 728);
    want = res.final.val_loss;
    if (memcmp(&want, &r.points[0].loss[1], sizeof want) != 0)
        fail_msg("the k = 2 branch ends at val_loss %.17g, the switching run at %.17g",
                 r.points[0].loss[1], want);
    bl_run_result_free(&res);

    /* the rule: the largest k·B0 before the first loss outside the tolerance */
    const bl_branch_point *pt = &r.points[0];
    size_t last = 0;
    while (last + 1 < r.n_ks && pt->loss[last + 1] <= pt->loss[0] * (1 + c.tolerance))
        last++;
    assert_int_equal(pt->b_crit, 16 * r.ks[last]);
    assert_int_equal(pt->lo, pt->b_crit);
    assert_int_equal(pt->capped, last + 1 == r.n_ks);
    assert_int_equal(pt->hi, pt->capped ? 0 : 16 * r.ks[last + 1]);
    assert_int_equal(r.estimate, pt->b_crit);
    assert_int_equal(r.estimate_hi, pt->hi);
    /* the schedule starts at B0 with the k = 1 LR and goes to b_crit at the point */
    assert_int_equal(r.schedule[0].samples, 0);
    assert_int_equal(r.schedule[0].batch, 16);
    assert_true(r.schedule[0].lr_factor == 1.0);
    assert_int_equal(r.n_schedule, pt->b_crit > 16 ? 2 : 1);
    if (r.n_schedule == 2) {
        assert_int_equal(r.schedule[1].samples, 400);
        assert_int_equal(r.schedule[1].batch, pt->b_crit);
        assert_true(r.schedule[1].lr_factor == (double)(pt->b_crit / 16));
    }
}

/* evals = 2: the branch in legs, evaluated at 640 (reached at 648) and at its end: the mean of
 * the base run continued to each, byte for byte — the legs train exactly as one piece. */
static void legs_train_as_one_piece(void **state)
{
    fixture *f = *state;
    bl_run_plan plan = base_plan(f);
    bl_branched_config c = bl_branched_defaults();
    const int64_t points[] = {400};
    const int64_t ks[] = {1, 2};
    c.base = &plan;
    c.points = points;
    c.n_given = 1;
    c.ks = ks;
    c.n_ks = 2;
    c.branch_samples = 320;
    c.evals = 2;
    bl_branched_result r;
    BL_ASSERT_OK(f->ctx, bl_branched_run(f->ctx, &c, &r));
    assert_int_equal(r.points[0].branch_samples[0], 328);
    double v[2];
    const int64_t ends[] = {640, 720};
    for (int i = 0; i < 2; i++) {
        bl_run_plan cont = base_plan(f);
        cont.train.eval_unit = BL_EVAL_STEPS;
        cont.train.eval_every = 1e18;
        cont.train.skip_test = true;
        cont.train.train_eval_samples = 0;
        cont.train.max_samples = ends[i];
        bl_run_result res;
        BL_ASSERT_OK(f->ctx, bl_run(f->ctx, &cont, NULL, 0, &res));
        v[i] = res.final.val_loss;
        bl_run_result_free(&res);
    }
    double want = (0 + v[0] + v[1]) / 2;
    if (memcmp(&want, &r.points[0].loss[0], sizeof want) != 0)
        fail_msg("k = 1 in legs: %.17g, the base run continued: %.17g", r.points[0].loss[0],
                 want);
    c.evals = 0;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "'evals'", bl_branched_run(f->ctx, &c, &r));
}

/* Geometric points end Δ before the horizon, factor 2 apart; the schedule is monotone. */
static void geometric_points_and_schedule(void **state)
{
    fixture *f = *state;
    bl_run_plan plan = base_plan(f);
    plan.train.epochs = 2;               /* 1200 samples */
    bl_branched_config c = bl_branched_defaults();
    c.base = &plan;
    c.n_points = 3;
    c.branch_samples = 240;
    c.lr_rule = BL_LR_SCALE_SQRT;
    bl_branched_result r;
    BL_ASSERT_OK(f->ctx, bl_branched_run(f->ctx, &c, &r));
    assert_int_equal(r.n_points, 3);
    assert_int_equal(r.points[0].samples, 240);   /* 960/4 */
    assert_int_equal(r.points[1].samples, 480);
    assert_int_equal(r.points[2].samples, 968);   /* 960 rounded up to a step: 600 + 23 × 16 */
    assert_int_equal(r.n_ks, 5);                  /* 1 … 16: 256 ≤ 600 samples */
    assert_true(fabs(r.lrs[2] - 2 * r.lrs[0]) < 1e-15);   /* sqrt rule, k = 4 */
    assert_int_equal(r.schedule[0].batch, 16);
    for (size_t i = 1; i < r.n_schedule; i++) {
        assert_true(r.schedule[i].samples > r.schedule[i - 1].samples);
        assert_true(r.schedule[i].batch > r.schedule[i - 1].batch);
    }
    for (size_t i = 0; i < r.n_points; i++) {
        /* the batch in force after each point is at least that point's b_crit */
        int64_t b = 0;
        for (size_t j = 0; j < r.n_schedule; j++)
            if (r.schedule[j].samples <= r.points[i].samples)
                b = r.schedule[j].batch;
        assert_true(b >= r.points[i].b_crit);
    }
    assert_true(r.seconds > 0);
}

static void bad_configurations_name_the_setting(void **state)
{
    fixture *f = *state;
    bl_run_plan plan = base_plan(f);
    bl_branched_config c = bl_branched_defaults();
    c.base = &plan;
    bl_branched_result r;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "branch_samples", bl_branched_run(f->ctx, &c, &r));
    c.branch_samples = 100;
    const int64_t no_one[] = {2, 4}, down[] = {1, 4, 2};
    c.ks = no_one;
    c.n_ks = 2;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "'ks' must start at 1", bl_branched_run(f->ctx, &c, &r));
    c.ks = down;
    c.n_ks = 3;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "strictly increasing", bl_branched_run(f->ctx, &c, &r));
    c = bl_branched_defaults();
    c.base = &plan;
    c.branch_samples = 100;
    c.tolerance = -0.1;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "tolerance", bl_branched_run(f->ctx, &c, &r));
    c.tolerance = 0.01;
    const int64_t pts[] = {300, 200};
    c.points = pts;
    c.n_given = 2;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "'points' must be increasing",
                  bl_branched_run(f->ctx, &c, &r));
    const int64_t late[] = {2350};
    c.points = late;
    c.n_given = 1;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "passes the base run's budget",
                  bl_branched_run(f->ctx, &c, &r));
    c.points = NULL;
    plan.train.max_seconds = 5;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "max_seconds", bl_branched_run(f->ctx, &c, &r));
    plan.train.max_seconds = 0;
    plan.scheduler_plugin = f->mlp;     /* any plugin: refused before it is opened */
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "'batch' must be a constant",
                  bl_branched_run(f->ctx, &c, &r));
    plan.scheduler_plugin = NULL;
    plan.train.epochs = 0;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "needs a budget", bl_branched_run(f->ctx, &c, &r));
    plan.train.epochs = 4;
    c.measure = BL_BRANCH_MEASURE_VAL;
    plan.train.batch = 400;             /* 2 × 400 passes the 600 training samples */
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "training samples", bl_branched_run(f->ctx, &c, &r));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(k1_branch_continues_the_base_run),
        cmocka_unit_test(legs_train_as_one_piece),
        cmocka_unit_test(geometric_points_and_schedule),
        cmocka_unit_test(bad_configurations_name_the_setting),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
