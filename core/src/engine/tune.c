/* The LR tuned per point by successive halving, with repeats over seeds and an optional LR
 * range test per point (batchlab/tune.h). The range tests, each rung and the repeats go
 * through bl_sweep_run (the executor seam); the counted runs are scored by bl_sweep_run too,
 * so the sweep's scoring has one owner (sweep.c). */
#include "batchlab/tune.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct tuner {
    const bl_tune_options *opts;
    const bl_tune_hooks *hooks;
    bl_tune_summary *sum;
    size_t cap;              /* runs allocated */
    size_t *stage;           /* indices into sum->runs of the stage being run */
} tuner;

static const bl_sweep_point unrun = {.status = BL_SWEEP_FAILED, .time_to_target = NAN,
                                     .val_loss = NAN, .score = NAN, .steps_to_target = NAN};

/* ---- a stage: a list of runs handed to bl_sweep_run ------------------------------------------ */

static int stage_run(void *user, bl_ctx *ctx, size_t i, bl_sweep_point *out)
{
    tuner *t = user;
    size_t k = t->stage[i];
    return t->hooks->run(t->hooks->user, ctx, k, &t->sum->runs[k], out);
}

static int stage_on_point(void *user, bl_ctx *ctx, size_t i, const bl_sweep_point *p,
                          size_t total)
{
    (void)total;
    tuner *t = user;
    size_t k = t->stage[i];
    bl_tune_entry *r = &t->sum->runs[k];
    r->point = *p;
    if (p->status == BL_SWEEP_FAILED)
        t->sum->failed++;
    if (p->resumed)
        t->sum->resumed++;
    return t->hooks->on_run ? t->hooks->on_run(t->hooks->user, ctx, k, r) : BL_OK;
}

static int stage_pack(void *user, bl_ctx *ctx, size_t i, int rc, void **data, size_t *len)
{
    tuner *t = user;
    return t->hooks->pack(t->hooks->user, ctx, t->stage[i], rc, data, len);
}

static int stage_unpack(void *user, bl_ctx *ctx, size_t i, int rc, const char *msg,
                        const void *data, size_t len, bl_sweep_point *p)
{
    tuner *t = user;
    return t->hooks->unpack(t->hooks->user, ctx, t->stage[i], rc, msg, data, len, p);
}

/* Runs sum->runs[first … n_runs-1] as one sweep through the executor. */
static int run_stage(tuner *t, bl_ctx *ctx, size_t first, const bl_sweep_executor *executor)
{
    size_t n = t->sum->n_runs - first;
    if (n == 0)
        return BL_OK;
    for (size_t i = 0; i < n; i++)
        t->stage[i] = first + i;
    bl_sweep_options so = {.points = n, .higher_is_better = t->opts->higher_is_better};
    bl_sweep_hooks sh = {.user = t, .run = stage_run, .on_point = stage_on_point,
                         .pack = t->hooks->pack ? stage_pack : NULL,
                         .unpack = t->hooks->unpack ? stage_unpack : NULL};
    bl_sweep_summary ss;
    int rc = bl_sweep_run(ctx, &so, &sh, executor, &ss);
    bl_sweep_summary_free(&ss);
    return rc;
}

static bl_tune_entry *add_run(tuner *t, size_t group, size_t factor, size_t seed, size_t rung,
                            bool repeat)
{
    bl_tune_summary *s = t->sum;
    if (s->n_runs >= t->cap)
        return NULL;             /* cannot happen: cap is the plan's upper bound */
    size_t r_last = s->rungs - 1;
    bl_tune_entry *r = &s->runs[s->n_runs++];
    *r = (bl_tune_entry){.group = group, .factor = factor, .seed = seed, .rung = rung,
                       .budget = pow(s->eta, -(double)(r_last - rung)), .repeat = repeat,
                       .best = repeat, .centre = s->groups[group].centre, .point = unrun};
    if (!repeat)
        s->groups[group].trials++;
    return r;
}

/* The LR range test of every group (a stage of its own), then each group's centre. */
static int range_tests(tuner *t, bl_ctx *ctx, const bl_sweep_executor *executor)
{
    bl_tune_summary *s = t->sum;
    size_t first = s->n_runs;
    for (size_t g = 0; g < s->n_groups; g++) {
        s->groups[g].range_run = s->n_runs;
        s->runs[s->n_runs++] = (bl_tune_entry){.group = g, .budget = 1, .range = true,
                                               .centre = 1, .point = unrun};
    }
    int rc = run_stage(t, ctx, first, executor);
    for (size_t g = 0; g < s->n_groups && rc == BL_OK; g++) {
        size_t k = s->groups[g].range_run;
        double c = NAN;
        rc = t->hooks->centre(t->hooks->user, ctx, k, &s->runs[k], &c);
        if (rc == BL_OK && c > 0 && isfinite(c))
            s->groups[g].centre = c;
    }
    return rc;
}

/* ---- ranking a rung's trials ----------------------------------------------------------------- */

typedef struct ranked {
    size_t run;              /* index into runs */
    int cls;                 /* 0 ranks ahead of 1 ahead of 2 */
    double v;                /* within a class: lower is better */
} ranked;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->cls != y->cls)
        return x->cls < y->cls ? -1 : 1;
    if (x->v != y->v)
        return x->v < y->v ? -1 : 1;
    return x->run < y->run ? -1 : x->run > y->run;   /* ties: the earlier candidate */
}

static int rank_key(tuner *t, bl_ctx *ctx, size_t k, ranked *out)
{
    const bl_tune_entry *r = &t->sum->runs[k];
    const bl_sweep_point *p = &r->point;
    *out = (ranked){.run = k, .cls = 2, .v = 0};
    int base = 0;
    if (t->hooks->score) {
        double sc = NAN;
        int rc = t->hooks->score(t->hooks->user, ctx, k, r, &sc);
        if (rc != BL_OK)
            return rc;
        if (isfinite(sc)) {
            *out = (ranked){k, 0, t->opts->higher_is_better ? -sc : sc};
            return BL_OK;
        }
        base = 1;
    }
    if (isfinite(p->steps_to_target))          /* one batch size: steps order as time does */
        *out = (ranked){k, base, p->steps_to_target};
    else if (p->has_target_time && isfinite(p->time_to_target))
        *out = (ranked){k, base, p->time_to_target};
    else if (isfinite(p->val_loss))
        *out = (ranked){k, base + 1, p->val_loss};
    else
        *out = (ranked){k, base + 2, 0};
    return BL_OK;
}

/* Ranks the completed trials of `group` among runs[from … to-1]; writes up to `keep` of them,
 * best first, to promoted[] and their count to *n. */
static int rank_group(tuner *t, bl_ctx *ctx, size_t group, size_t from, size_t to,
                      ranked *scratch, size_t keep, size_t *promoted, size_t *n)
{
    size_t m = 0;
    for (size_t k = from; k < to; k++) {
        const bl_tune_entry *r = &t->sum->runs[k];
        if (r->group != group || r->point.status != BL_SWEEP_COMPLETED)
            continue;
        int rc = rank_key(t, ctx, k, &scratch[m++]);
        if (rc != BL_OK)
            return rc;
    }
    qsort(scratch, m, sizeof *scratch, cmp_ranked);
    *n = m < keep ? m : keep;
    for (size_t i = 0; i < *n; i++)
        promoted[i] = scratch[i].run;
    return BL_OK;
}

/* ---- scoring the counted runs ---------------------------------------------------------------- */

typedef struct replay {
    tuner *t;
    const size_t *counted;   /* indices into runs */
} replay;

static int replay_run(void *user, bl_ctx *ctx, size_t i, bl_sweep_point *out)
{
    (void)ctx;
    replay *rp = user;
    *out = rp->t->sum->runs[rp->counted[i]].point;
    out->resumed = false;    /* counted in the summary already */
    return BL_OK;
}

static int replay_score(void *user, bl_ctx *ctx, size_t i, const bl_sweep_point *p,
                        double *score)
{
    (void)p;
    replay *rp = user;
    tuner *t = rp->t;
    size_t k = rp->counted[i];
    return t->hooks->score(t->hooks->user, ctx, k, &t->sum->runs[k], score);
}

/* Scores the counted runs (group order, seed order) with the sweep's rule; sets their scores
 * and the summary's best. */
static int score_counted(tuner *t, bl_ctx *ctx)
{
    bl_tune_summary *s = t->sum;
    size_t n = 0;
    for (size_t g = 0; g < s->n_groups; g++) {
        if (s->groups[g].winner == SIZE_MAX)
            continue;
        t->stage[n++] = s->groups[g].winner;
        for (size_t k = 0; k < s->n_runs; k++)
            if (s->runs[k].repeat && s->runs[k].group == g)
                t->stage[n++] = k;
    }
    s->counted = n;
    if (n == 0)
        return BL_OK;
    replay rp = {t, t->stage};
    bl_sweep_options so = {.points = n, .higher_is_better = t->opts->higher_is_better};
    bl_sweep_hooks sh = {.user = &rp, .run = replay_run,
                         .score = t->hooks->score ? replay_score : NULL};
    bl_sweep_summary ss;
    int rc = bl_sweep_run(ctx, &so, &sh, bl_sweep_inprocess(), &ss);
    if (rc == BL_OK) {
        for (size_t i = 0; i < n; i++)
            s->runs[t->stage[i]].point.score = ss.points[i].score;
        if (ss.best != SIZE_MAX) {
            s->best = t->stage[ss.best];
            s->best_score = ss.best_score;
        }
    }
    bl_sweep_summary_free(&ss);
    return rc;
}

/* ---- the plan -------------------------------------------------------------------------------- */

static int check_options(bl_ctx *ctx, const bl_tune_options *o, double *eta, size_t *rungs,
                         size_t *seeds)
{
    if (o->groups == 0 || o->factors == 0)
        return bl_error(ctx, BL_EINVAL, "tune: there must be at least one point and one "
                        "factor (got %zu points, %zu factors)", o->groups, o->factors);
    *eta = o->eta == 0 ? 3 : o->eta;
    if (!(*eta >= 2) || !isfinite(*eta))
        return bl_error(ctx, BL_EINVAL, "tune: 'eta' must be a number ≥ 2, got %g", o->eta);
    *rungs = o->rungs;
    if (*rungs == 0) {
        *rungs = 1;
        for (size_t n = o->factors; (size_t)floor((double)n / *eta) >= 1;
             n = (size_t)floor((double)n / *eta))
            ++*rungs;
    }
    if (*rungs > BL_TUNE_MAX_RUNGS)
        return bl_error(ctx, BL_EINVAL, "tune: 'rungs' must be 1 … %d, got %zu",
                        BL_TUNE_MAX_RUNGS, *rungs);
    *seeds = o->seeds ? o->seeds : 1;
    size_t limit = (size_t)1 << 32;
    if (o->groups > limit / o->factors / BL_TUNE_MAX_RUNGS || *seeds > limit / o->groups)
        return bl_error(ctx, BL_EINVAL, "tune: too many runs (%zu points × %zu factors × "
                        "%zu seeds)", o->groups, o->factors, *seeds);
    return BL_OK;
}

int bl_tune_run(bl_ctx *ctx, const bl_tune_options *opts, const bl_tune_hooks *hooks,
                const bl_sweep_executor *executor, bl_tune_summary *out)
{
    if (!out)
        return bl_error(ctx, BL_EINVAL, "bl_tune_run: NULL summary");
    memset(out, 0, sizeof *out);
    out->best = SIZE_MAX;
    out->best_score = NAN;
    if (!opts || !hooks || !hooks->run)
        return bl_error(ctx, BL_EINVAL, "bl_tune_run: options and a run hook are required");
    if (opts->range_test && !hooks->centre)
        return bl_error(ctx, BL_EINVAL, "bl_tune_run: a range test needs the centre hook");
    double eta = 3;
    size_t rungs = 1, seeds = 1;
    int rc = check_options(ctx, opts, &eta, &rungs, &seeds);
    if (rc != BL_OK)
        return rc;
    size_t planned[BL_TUNE_MAX_RUNGS], per_group = 0;
    planned[0] = opts->factors;
    for (size_t j = 1; j < rungs; j++) {
        size_t keep = (size_t)floor((double)planned[j - 1] / eta);
        planned[j] = keep ? keep : 1;
    }
    for (size_t j = 0; j < rungs; j++)
        per_group += planned[j];
    per_group += seeds - 1 + opts->range_test;

    tuner t = {.opts = opts, .hooks = hooks, .sum = out, .cap = opts->groups * per_group};
    out->n_groups = opts->groups;
    out->planned = t.cap;
    out->rungs = rungs;
    out->eta = eta;
    out->runs = calloc(t.cap, sizeof *out->runs);
    out->groups = calloc(opts->groups, sizeof *out->groups);
    t.stage = malloc(t.cap * sizeof *t.stage);
    ranked *scratch = malloc(opts->factors * sizeof *scratch);
    size_t *alive = malloc(opts->groups * opts->factors * sizeof *alive);
    size_t *n_alive = calloc(opts->groups, sizeof *n_alive);
    if (!out->runs || !out->groups || !t.stage || !scratch || !alive || !n_alive) {
        rc = bl_error(ctx, BL_ENOMEM, "out of memory planning a tuned sweep");
        goto done;
    }
    for (size_t g = 0; g < opts->groups; g++) {
        out->groups[g] = (bl_tune_group){.winner = SIZE_MAX, .factor = SIZE_MAX,
                                         .range_run = SIZE_MAX, .centre = 1};
        n_alive[g] = opts->factors;
        for (size_t f = 0; f < opts->factors; f++)
            alive[g * opts->factors + f] = f;
    }
    if (opts->range_test && (rc = range_tests(&t, ctx, executor)) != BL_OK)
        goto done;
    for (size_t j = 0; j < rungs; j++) {
        size_t first = out->n_runs;
        for (size_t g = 0; g < opts->groups; g++) {
            /* this rung's candidates in factor order (ranking lists them best first) */
            size_t *a = &alive[g * opts->factors];
            for (size_t x = 1; x < n_alive[g]; x++)
                for (size_t y = x; y > 0 && a[y - 1] > a[y]; y--) {
                    size_t tmp = a[y];
                    a[y] = a[y - 1];
                    a[y - 1] = tmp;
                }
            for (size_t x = 0; x < n_alive[g]; x++)
                add_run(&t, g, a[x], 0, j, false);
            if (j == rungs - 1)
                out->groups[g].abandoned = opts->factors - n_alive[g];
        }
        if ((rc = run_stage(&t, ctx, first, executor)) != BL_OK)
            goto done;
        size_t keep = j + 1 < rungs ? planned[j + 1] : 1;
        for (size_t g = 0; g < opts->groups; g++) {
            size_t *a = &alive[g * opts->factors], got, best[1];
            size_t *dst = j + 1 < rungs ? t.stage : best;
            if ((rc = rank_group(&t, ctx, g, first, out->n_runs, scratch, keep, dst, &got)) !=
                BL_OK)
                goto done;
            if (j + 1 < rungs) {
                for (size_t x = 0; x < got; x++)
                    a[x] = out->runs[dst[x]].factor;
                n_alive[g] = got;
            } else if (got == 1) {
                out->groups[g].winner = best[0];
                out->groups[g].factor = out->runs[best[0]].factor;
                out->runs[best[0]].best = true;
            }
        }
    }
    size_t first = out->n_runs;
    for (size_t s = 1; s < seeds; s++)
        for (size_t g = 0; g < opts->groups; g++)
            if (out->groups[g].winner != SIZE_MAX)
                add_run(&t, g, out->groups[g].factor, s, rungs - 1, true);
    if ((rc = run_stage(&t, ctx, first, executor)) != BL_OK)
        goto done;
    rc = score_counted(&t, ctx);
done:
    free(t.stage);
    free(scratch);
    free(alive);
    free(n_alive);
    return rc;
}

void bl_tune_summary_free(bl_tune_summary *summary)
{
    if (!summary)
        return;
    free(summary->runs);
    free(summary->groups);
    memset(summary, 0, sizeof *summary);
    summary->best = SIZE_MAX;
}
