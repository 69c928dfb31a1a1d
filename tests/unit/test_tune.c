/* The LR tuner (batchlab/tune.h): successive halving on a fake run hook with known scores —
 * which trials run at which rung and budget, which are abandoned, ties, diverged and failed
 * trials, repeats over seeds, the counted runs' scores and best, the executor seam, errors —
 * and the fit of ε_opt(B) = ε_max / (1 + B_noise/B). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "batchlab/tune.h"
#include "testutil.h"

static int ctx_setup(void **state)
{
    *state = bl_ctx_new();
    return *state ? 0 : -1;
}

static int ctx_teardown(void **state)
{
    bl_ctx_free(*state);
    return 0;
}

/* ---- a scripted tuning ----------------------------------------------------------------------- */

#define G 3
#define F 6
#define R 4

typedef struct fake {
    double loss[G][F][R];            /* final val_loss of candidate f of group g at rung j */
    double ttt[G][F][R];             /* time to target; NAN: none */
    double steps[G][F][R];           /* steps to target; NAN: none */
    bl_sweep_status status[G][F][R];
    double repeat_loss;              /* val_loss of every repeat */
    size_t nran;
    bl_tune_entry ran[128];            /* what run() saw, in order */
    size_t seen[128], nseen;         /* on_run() indices */
    int fail_at;                     /* run() returns BL_EINTERRUPTED at this call (-1: never) */
} fake;

static int fake_run(void *user, bl_ctx *ctx, size_t index, const bl_tune_entry *r,
                    bl_sweep_point *out)
{
    fake *fk = user;
    assert_int_equal(out->status, BL_SWEEP_FAILED);   /* pre-set */
    assert_int_equal(index, fk->nran);                /* handed out in order */
    if ((int)fk->nran == fk->fail_at)
        return bl_error(ctx, BL_EINTERRUPTED, "interrupted at run %zu", index);
    fk->ran[fk->nran++] = *r;
    if (r->range) {
        out->status = BL_SWEEP_COMPLETED;
        return BL_OK;
    }
    if (r->repeat) {
        out->status = BL_SWEEP_COMPLETED;
        out->val_loss = fk->repeat_loss + (double)r->seed;
        return BL_OK;
    }
    out->status = fk->status[r->group][r->factor][r->rung];
    out->val_loss = fk->loss[r->group][r->factor][r->rung];
    out->time_to_target = fk->ttt[r->group][r->factor][r->rung];
    out->has_target_time = !isnan(out->time_to_target);
    out->steps_to_target = fk->steps[r->group][r->factor][r->rung];
    return BL_OK;
}

static int fake_on_run(void *user, bl_ctx *ctx, size_t index, const bl_tune_entry *r)
{
    fake *fk = user;
    assert_int_equal(r->point.status, r->repeat ? BL_SWEEP_COMPLETED
                                                : fk->status[r->group][r->factor][r->rung]);
    fk->seen[fk->nseen++] = index;
    return BL_OK;
}

/* Losses fall with the factor up to `best`, then rise: candidate `best` wins everywhere. */
static void make(fake *fk, size_t best)
{
    memset(fk, 0, sizeof *fk);
    fk->fail_at = -1;
    fk->repeat_loss = 10;
    for (size_t g = 0; g < G; g++)
        for (size_t f = 0; f < F; f++)
            for (size_t j = 0; j < R; j++) {
                fk->loss[g][f][j] = 1.0 + fabs((double)f - (double)best) + 0.1 * (double)g -
                                    0.01 * (double)j;
                fk->ttt[g][f][j] = NAN;
                fk->steps[g][f][j] = NAN;
                fk->status[g][f][j] = BL_SWEEP_COMPLETED;
            }
}

/* The factors run at rung j for group g, in the order run. */
static size_t ran_at(const fake *fk, size_t g, size_t j, size_t *factors)
{
    size_t n = 0;
    for (size_t k = 0; k < fk->nran; k++)
        if (!fk->ran[k].repeat && fk->ran[k].group == g && fk->ran[k].rung == j)
            factors[n++] = fk->ran[k].factor;
    return n;
}

static void test_halving_rungs_and_budgets(void **state)
{
    bl_ctx *ctx = *state;
    fake fk;
    make(&fk, 3);
    /* eta 2, 6 candidates: rungs keep 6, 3, 1 (default rungs = 1 + ⌊log2 6⌋ = 3) */
    bl_tune_options o = {.groups = 2, .factors = 6, .eta = 2, .seeds = 1};
    bl_tune_hooks h = {.user = &fk, .run = fake_run, .on_run = fake_on_run};
    bl_tune_summary s;
    BL_ASSERT_OK(ctx, bl_tune_run(ctx, &o, &h, NULL, &s));
    assert_int_equal(s.rungs, 3);
    assert_true(s.eta == 2);
    assert_int_equal(s.n_runs, 2 * (6 + 3 + 1));
    assert_int_equal(s.planned, 2 * (6 + 3 + 1));
    assert_int_equal(fk.nseen, s.n_runs);
    size_t got[F], n;
    /* rung 0: everything, in factor order, a quarter of the budget */
    n = ran_at(&fk, 0, 0, got);
    assert_int_equal(n, 6);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(got[i], i);
    assert_true(fk.ran[0].budget == 0.25);
    /* rung 1: the best 3 by val_loss (3; then 2 and 4 tie at distance 1: both kept), in
     * factor order, half the budget */
    n = ran_at(&fk, 1, 1, got);
    assert_int_equal(n, 3);
    assert_int_equal(got[0], 2);
    assert_int_equal(got[1], 3);
    assert_int_equal(got[2], 4);
    /* rung 2 (the last): the single best, full budget */
    n = ran_at(&fk, 0, 2, got);
    assert_int_equal(n, 1);
    assert_int_equal(got[0], 3);
    for (size_t g = 0; g < 2; g++) {
        assert_int_equal(s.groups[g].factor, 3);
        assert_int_equal(s.groups[g].trials, 10);
        assert_int_equal(s.groups[g].abandoned, 5);
        const bl_tune_entry *w = &s.runs[s.groups[g].winner];
        assert_true(w->best && !w->repeat);
        assert_int_equal(w->rung, 2);
        assert_true(w->budget == 1.0);
        assert_int_equal(w->group, g);
    }
    /* rungs are stages: every group's rung 0 runs before any rung 1 */
    for (size_t k = 0; k < 12; k++)
        assert_int_equal(s.runs[k].rung, 0);
    /* only the winners count; the best counted run is group 0's (lower loss) */
    assert_int_equal(s.counted, 2);
    size_t nbest = 0;
    for (size_t k = 0; k < s.n_runs; k++)
        nbest += s.runs[k].best;
    assert_int_equal(nbest, 2);
    assert_int_equal(s.best, s.groups[0].winner);
    assert_true(fabs(s.best_score - (1.0 - 0.02)) < 1e-12);
    assert_true(isnan(s.runs[0].point.score));            /* a trial has no score */
    bl_tune_summary_free(&s);
    bl_tune_summary_free(&s);
}

static void test_ties_keep_the_earlier_candidate(void **state)
{
    bl_ctx *ctx = *state;
    fake fk;
    make(&fk, 0);
    for (size_t f = 0; f < F; f++)
        for (size_t j = 0; j < R; j++)
            fk.loss[0][f][j] = 2.0;                    /* all equal */
    bl_tune_options o = {.groups = 1, .factors = 5, .eta = 3};
    bl_tune_hooks h = {.user = &fk, .run = fake_run};
    bl_tune_summary s;
    BL_ASSERT_OK(ctx, bl_tune_run(ctx, &o, &h, NULL, &s));
    assert_int_equal(s.rungs, 2);                       /* 5 → 1 */
    size_t got[F];
    assert_int_equal(ran_at(&fk, 0, 1, got), 1);
    assert_int_equal(got[0], 0);
    assert_int_equal(s.groups[0].factor, 0);
    assert_true(fabs(s.runs[0].budget - 1.0 / 3) < 1e-15);
    bl_tune_summary_free(&s);
}

static void test_diverged_and_failed_trials_are_dropped(void **state)
{
    bl_ctx *ctx = *state;
    fake fk;
    make(&fk, 3);
    /* group 0: the best candidates diverge at rung 0; the best left are 2 and 4 (then 1) */
    fk.status[0][3][0] = BL_SWEEP_OTHER;
    fk.status[0][5][0] = BL_SWEEP_FAILED;
    /* group 1: everything diverges at rung 0 except candidate 5 */
    for (size_t f = 0; f < 5; f++)
        fk.status[1][f][0] = BL_SWEEP_OTHER;
    /* group 2: the promoted ones all diverge at the last rung: no winner */
    for (size_t f = 0; f < F; f++)
        fk.status[2][f][2] = BL_SWEEP_OTHER;
    bl_tune_options o = {.groups = 3, .factors = 6, .eta = 2, .seeds = 2};
    bl_tune_hooks h = {.user = &fk, .run = fake_run};
    bl_tune_summary s;
    BL_ASSERT_OK(ctx, bl_tune_run(ctx, &o, &h, NULL, &s));
    size_t got[F];
    assert_int_equal(ran_at(&fk, 0, 1, got), 3);
    assert_int_equal(got[0], 1);
    assert_int_equal(got[1], 2);
    assert_int_equal(got[2], 4);
    assert_int_equal(s.groups[0].factor, 2);            /* 2 and 4 tie: the earlier */
    assert_int_equal(ran_at(&fk, 1, 1, got), 1);        /* one survivor, fewer than planned */
    assert_int_equal(got[0], 5);
    assert_int_equal(ran_at(&fk, 1, 2, got), 1);
    assert_int_equal(s.groups[1].factor, 5);
    assert_int_equal(s.groups[1].trials, 6 + 1 + 1);
    assert_int_equal(s.groups[1].abandoned, 5);
    assert_int_equal(s.groups[2].winner, SIZE_MAX);
    assert_int_equal(s.groups[2].factor, SIZE_MAX);
    assert_int_equal(s.failed, 1);
    /* repeats: seed 1 for groups 0 and 1 only, with the winner's factor, full budget */
    size_t reps = 0;
    for (size_t k = 0; k < fk.nran; k++) {
        if (!fk.ran[k].repeat)
            continue;
        reps++;
        assert_int_equal(fk.ran[k].seed, 1);
        assert_true(fk.ran[k].budget == 1.0);
        assert_int_equal(fk.ran[k].factor, s.groups[fk.ran[k].group].factor);
        assert_true(fk.ran[k].group != 2);
    }
    assert_int_equal(reps, 2);
    assert_int_equal(s.counted, 4);
    assert_true(s.n_runs < s.planned);
    bl_tune_summary_free(&s);
}

static void test_target_time_ranks_first(void **state)
{
    bl_ctx *ctx = *state;
    fake fk;
    make(&fk, 0);
    /* candidate 0 has the best loss but never reaches the target; 2 reaches it sooner than 1 */
    fk.ttt[0][1][0] = 9, fk.ttt[0][2][0] = 4;
    fk.ttt[0][1][1] = 9, fk.ttt[0][2][1] = 5;
    bl_tune_options o = {.groups = 1, .factors = 3, .eta = 2, .rungs = 2};
    bl_tune_hooks h = {.user = &fk, .run = fake_run};
    bl_tune_summary s;
    BL_ASSERT_OK(ctx, bl_tune_run(ctx, &o, &h, NULL, &s));
    size_t got[F];
    assert_int_equal(ran_at(&fk, 0, 1, got), 1);        /* ⌊3/2⌋ = 1 */
    assert_int_equal(got[0], 2);
    assert_int_equal(s.groups[0].factor, 2);
    assert_true(s.best_score == 5);                     /* the sweep's score: time to target */
    bl_tune_summary_free(&s);

    /* with steps to target, steps decide (one batch size: no step-time noise): 1 needs fewer
     * steps although its time is longer */
    make(&fk, 0);
    fk.ttt[0][1][0] = 9, fk.ttt[0][2][0] = 4;
    fk.steps[0][1][0] = 10, fk.steps[0][2][0] = 11;
    BL_ASSERT_OK(ctx, bl_tune_run(ctx, &o, &h, NULL, &s));
    assert_int_equal(ran_at(&fk, 0, 1, got), 1);
    assert_int_equal(got[0], 1);
    bl_tune_summary_free(&s);
}

static int higher_score(void *user, bl_ctx *ctx, size_t index, const bl_tune_entry *r,
                        double *score)
{
    (void)user;
    (void)index;
    if (r->factor == 4 && !r->repeat)
        return bl_error(ctx, BL_ESCRIPT, "no score for 4");
    *score = r->factor == 1 ? NAN : (double)r->factor + (double)r->seed;
    return BL_OK;
}

static void test_score_hook_and_repeats(void **state)
{
    bl_ctx *ctx = *state;
    fake fk;
    make(&fk, 0);
    /* higher is better: 3 wins; 1 has no score and ranks after every scored one */
    bl_tune_options o = {.groups = 1, .factors = 4, .eta = 2, .seeds = 3,
                         .higher_is_better = true};
    bl_tune_hooks h = {.user = &fk, .run = fake_run, .score = higher_score};
    bl_tune_summary s;
    BL_ASSERT_OK(ctx, bl_tune_run(ctx, &o, &h, NULL, &s));
    size_t got[F];
    assert_int_equal(ran_at(&fk, 0, 1, got), 2);
    assert_int_equal(got[0], 2);
    assert_int_equal(got[1], 3);
    assert_int_equal(s.groups[0].factor, 3);
    assert_int_equal(s.counted, 3);
    /* the counted runs: the winner (seed 0) and repeats 1, 2; the best is seed 2's */
    assert_true(s.runs[s.best].repeat);
    assert_int_equal(s.runs[s.best].seed, 2);
    assert_true(s.best_score == 5);
    assert_true(s.runs[s.groups[0].winner].point.score == 3);
    bl_tune_summary_free(&s);

    /* a score hook's error ends the tuning with it */
    o.factors = 5;
    make(&fk, 0);
    BL_ASSERT_ERR(ctx, BL_ESCRIPT, "no score for 4", bl_tune_run(ctx, &o, &h, NULL, &s));
    bl_tune_summary_free(&s);
}

static void test_interrupt_and_errors(void **state)
{
    bl_ctx *ctx = *state;
    fake fk;
    make(&fk, 1);
    fk.fail_at = 4;
    bl_tune_options o = {.groups = 1, .factors = 6, .eta = 2};
    bl_tune_hooks h = {.user = &fk, .run = fake_run};
    bl_tune_summary s;
    BL_ASSERT_ERR(ctx, BL_EINTERRUPTED, "interrupted at run 4",
                  bl_tune_run(ctx, &o, &h, NULL, &s));
    assert_int_equal(fk.nran, 4);
    assert_int_equal(s.best, SIZE_MAX);
    bl_tune_summary_free(&s);

    o.eta = 1.5;
    BL_ASSERT_ERR(ctx, BL_EINVAL, "'eta'", bl_tune_run(ctx, &o, &h, NULL, &s));
    bl_tune_summary_free(&s);
    o.eta = 2;
    o.rungs = 17;
    BL_ASSERT_ERR(ctx, BL_EINVAL, "'rungs'", bl_tune_run(ctx, &o, &h, NULL, &s));
    bl_tune_summary_free(&s);
    o.rungs = 0;
    o.factors = 0;
    BL_ASSERT_ERR(ctx, BL_EINVAL, "factor", bl_tune_run(ctx, &o, &h, NULL, &s));
    bl_tune_summary_free(&s);
    o.factors = 2;
    BL_ASSERT_ERR(ctx, BL_EINVAL, "run hook",
                  bl_tune_run(ctx, &o, &(bl_tune_hooks){0}, NULL, &s));
    bl_tune_summary_free(&s);

    /* one rung: every candidate at full budget, nothing abandoned */
    make(&fk, 1);
    o = (bl_tune_options){.groups = 1, .factors = 3, .rungs = 1};
    BL_ASSERT_OK(ctx, bl_tune_run(ctx, &o, &h, NULL, &s));
    assert_int_equal(s.n_runs, 3);
    assert_true(s.runs[0].budget == 1.0);
    assert_int_equal(s.groups[0].abandoned, 0);
    assert_int_equal(s.groups[0].factor, 1);
    bl_tune_summary_free(&s);
}

/* The executor seam: an executor of its own (here: every stage's points in reverse) runs the
 * trials; the outcome is the same. */
static size_t stages_seen;

static int reverse_execute(const bl_sweep_executor *self, bl_sweep *sw, bl_ctx *ctx)
{
    (void)self;
    size_t idx[64], n = 0, i;
    stages_seen++;
    while (bl_sweep_next_index(sw, &i))
        idx[n++] = i;
    while (n-- > 0) {
        bl_sweep_point p;
        int rc = bl_sweep_run_point(sw, ctx, idx[n], &p);
        if (rc == BL_OK)
            rc = bl_sweep_record(sw, ctx, idx[n], &p);
        if (rc != BL_OK)
            return rc;
    }
    return BL_OK;
}

static int any_order_run(void *user, bl_ctx *ctx, size_t index, const bl_tune_entry *r,
                         bl_sweep_point *out)
{
    fake *fk = user;
    fk->nran = index;                                   /* fake_run checks the order */
    return fake_run(user, ctx, index, r, out);
}

static void test_executor_seam(void **state)
{
    bl_ctx *ctx = *state;
    fake fk;
    make(&fk, 4);
    bl_tune_options o = {.groups = 2, .factors = 6, .eta = 2, .seeds = 2};
    bl_tune_hooks h = {.user = &fk, .run = any_order_run};
    bl_sweep_executor rev = {"reverse", reverse_execute, NULL};
    bl_tune_summary s;
    stages_seen = 0;
    BL_ASSERT_OK(ctx, bl_tune_run(ctx, &o, &h, &rev, &s));
    assert_int_equal(stages_seen, 4);                   /* 3 rungs and the repeats */
    assert_int_equal(s.groups[0].factor, 4);
    assert_int_equal(s.groups[1].factor, 4);
    assert_int_equal(s.counted, 4);
    bl_tune_summary_free(&s);
}

/* The range test: a stage of one run per group before rung 0; the centre hook's answer
 * multiplies the group's candidates (a centre that is not a positive number leaves 1). */
static int centre_hook(void *user, bl_ctx *ctx, size_t index, const bl_tune_entry *r,
                       double *centre)
{
    fake *fk = user;
    assert_true(r->range);
    assert_int_equal(fk->ran[index].group, r->group);
    *centre = r->group == 0 ? 2.5 : r->group == 1 ? NAN : -1;
    return BL_OK;
}

static void test_range_test_centres(void **state)
{
    bl_ctx *ctx = *state;
    fake fk;
    make(&fk, 1);
    bl_tune_options o = {.groups = 3, .factors = 3, .eta = 3, .seeds = 2, .range_test = true};
    bl_tune_hooks h = {.user = &fk, .run = fake_run};
    bl_tune_summary s;
    BL_ASSERT_ERR(ctx, BL_EINVAL, "centre hook", bl_tune_run(ctx, &o, &h, NULL, &s));
    bl_tune_summary_free(&s);
    h.centre = centre_hook;
    BL_ASSERT_OK(ctx, bl_tune_run(ctx, &o, &h, NULL, &s));
    for (size_t g = 0; g < 3; g++) {                    /* the range tests run first */
        assert_true(fk.ran[g].range);
        assert_int_equal(fk.ran[g].group, g);
        assert_int_equal(s.groups[g].range_run, g);
        assert_false(s.runs[g].best);
    }
    assert_true(s.groups[0].centre == 2.5);
    assert_true(s.groups[1].centre == 1);
    assert_true(s.groups[2].centre == 1);
    for (size_t k = 3; k < fk.nran; k++) {
        assert_false(fk.ran[k].range);
        assert_true(fk.ran[k].centre == s.groups[fk.ran[k].group].centre);
    }
    assert_int_equal(s.groups[0].trials, 3 + 1);        /* the range test is not a trial */
    assert_int_equal(s.counted, 6);
    assert_int_equal(s.n_runs, s.planned);
    bl_tune_summary_free(&s);
}

static void test_lr_range_pick(void **state)
{
    bl_ctx *ctx = *state;
    /* 100 points from 1e-4 to 10; the loss falls steepest at 1e-2 (a sigmoid in log lr), then
     * blows up past 1 */
    double lr[100], loss[100], pick;
    for (size_t i = 0; i < 100; i++) {
        lr[i] = pow(10, -4 + 5 * (double)i / 99);
        double x = log10(lr[i]);
        loss[i] = 2 - 1 / (1 + exp(-3 * (x + 2)));
        if (x > 0)
            loss[i] += exp(10 * x) - 1;
    }
    BL_ASSERT_OK(ctx, bl_lr_range_pick(ctx, lr, loss, 100, &pick));
    assert_true(pick > 1e-2 / 1.3 && pick < 1e-2 * 1.3);
    /* a blow-up cuts the curve: a steeper fall after it does not count */
    for (size_t i = 60; i < 100; i++)
        loss[i] = i < 70 ? 100 : 10 - (double)i / 10;
    BL_ASSERT_OK(ctx, bl_lr_range_pick(ctx, lr, loss, 100, &pick));
    assert_true(pick < lr[60]);
    loss[50] = NAN;
    BL_ASSERT_OK(ctx, bl_lr_range_pick(ctx, lr, loss, 100, &pick));
    assert_true(pick < lr[48]);
    /* a loss that never falls: no pick */
    for (size_t i = 0; i < 100; i++)
        loss[i] = 1 + 0.01 * (double)i;
    BL_ASSERT_OK(ctx, bl_lr_range_pick(ctx, lr, loss, 100, &pick));
    assert_true(isnan(pick));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "at least 5", bl_lr_range_pick(ctx, lr, loss, 4, &pick));
    lr[3] = lr[2];
    BL_ASSERT_ERR(ctx, BL_EINVAL, "point 4", bl_lr_range_pick(ctx, lr, loss, 10, &pick));
}

/* ---- the fit of ε_opt(B) --------------------------------------------------------------------- */

static void test_fit_lr_recovers_parameters(void **state)
{
    bl_ctx *ctx = *state;
    const double eps_max = 0.8, b_noise = 300;
    double b[] = {16, 32, 64, 128, 256, 512, 1024, 2048}, lr[8];
    for (size_t i = 0; i < 8; i++)
        lr[i] = eps_max / (1 + b_noise / b[i]);
    bl_lr_fit f;
    BL_ASSERT_OK(ctx, bl_fit_lr(ctx, b, lr, 8, &f));
    assert_true(fabs(f.eps_max - eps_max) < 1e-9 * eps_max);
    assert_true(fabs(f.b_noise - b_noise) < 1e-9 * b_noise);
    assert_true(f.valid);
    assert_true(fabs(f.r2 - 1) < 1e-12);
    assert_int_equal(f.n, 8);

    /* a multiplicative grid: each tuned LR off by ×2^±0.5 at most; within a factor 1.5 */
    const double wobble[] = {1.3, 0.8, 1.2, 0.75, 1.35, 0.9, 1.1, 0.8};
    for (size_t i = 0; i < 8; i++)
        lr[i] = wobble[i] * eps_max / (1 + b_noise / b[i]);
    BL_ASSERT_OK(ctx, bl_fit_lr(ctx, b, lr, 8, &f));
    assert_true(f.eps_max > eps_max / 1.5 && f.eps_max < eps_max * 1.5);
    assert_true(f.b_noise > b_noise / 1.5 && f.b_noise < b_noise * 1.5);
    assert_true(f.r2 > 0.9 && f.r2 < 1);

    /* the linear-scaling regime throughout (ε ∝ B): no maximum within reach */
    for (size_t i = 0; i < 8; i++)
        lr[i] = 0.001 * b[i];
    BL_ASSERT_OK(ctx, bl_fit_lr(ctx, b, lr, 8, &f));
    assert_true(f.eps_max > 1e6);

    /* the LR falling with the batch: B_noise < 0, not valid */
    for (size_t i = 0; i < 8; i++)
        lr[i] = 1.0 / (1 + b[i] / 100);
    BL_ASSERT_OK(ctx, bl_fit_lr(ctx, b, lr, 8, &f));
    assert_false(f.valid);
}

static void test_fit_lr_refuses(void **state)
{
    bl_ctx *ctx = *state;
    double b[] = {32, 64, 64, 32}, lr[] = {0.1, 0.2, 0.2, 0.1};
    bl_lr_fit f = {.n = 99};
    BL_ASSERT_ERR(ctx, BL_EINVAL, "at least 3 batch sizes", bl_fit_lr(ctx, b, lr, 4, &f));
    assert_int_equal(f.n, 99);                          /* untouched */
    double b3[] = {32, 64, 128}, bad[] = {0.1, -1, 0.3};
    BL_ASSERT_ERR(ctx, BL_EINVAL, "pair 2", bl_fit_lr(ctx, b3, bad, 3, &f));
    double nan_b[] = {32, NAN, 128}, ok[] = {0.1, 0.2, 0.3};
    BL_ASSERT_ERR(ctx, BL_EINVAL, "pair 2", bl_fit_lr(ctx, nan_b, ok, 3, &f));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "at least 3", bl_fit_lr(ctx, NULL, NULL, 0, &f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_halving_rungs_and_budgets),
        cmocka_unit_test(test_ties_keep_the_earlier_candidate),
        cmocka_unit_test(test_diverged_and_failed_trials_are_dropped),
        cmocka_unit_test(test_target_time_ranks_first),
        cmocka_unit_test(test_score_hook_and_repeats),
        cmocka_unit_test(test_interrupt_and_errors),
        cmocka_unit_test(test_executor_seam),
        cmocka_unit_test(test_range_test_centres),
        cmocka_unit_test(test_lr_range_pick),
        cmocka_unit_test(test_fit_lr_recovers_parameters),
        cmocka_unit_test(test_fit_lr_refuses),
    };
    return cmocka_run_group_tests(tests, ctx_setup, ctx_teardown);
}
