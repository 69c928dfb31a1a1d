/* The sweep (batchlab/sweep.h): grid order, the work queue of point indices, recording,
 * scoring and the best point. Front ends (bl.sweep in l_sweep.c) supply hooks that build and
 * run point i; executors decide where a point runs. */
#include "batchlab/sweep.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- the grid ------------------------------------------------------------------------------ */

#define GRID_LIMIT ((size_t)1 << 40)

int bl_grid_init(bl_ctx *ctx, bl_grid *grid, const char *const *names, const size_t *len,
                 size_t nk)
{
    if (!grid || (nk > 0 && (!names || !len)))
        return bl_error(ctx, BL_EINVAL, "bl_grid_init: NULL argument");
    memset(grid, 0, sizeof *grid);
    size_t *order = malloc((nk ? nk : 1) * sizeof *order);
    size_t *lens = malloc((nk ? nk : 1) * sizeof *lens);
    if (!order || !lens) {
        free(order);
        free(lens);
        return bl_error(ctx, BL_ENOMEM, "out of memory making a grid");
    }
    /* insertion sort of the positions by name: grids have a handful of keys */
    for (size_t i = 0; i < nk; i++) {
        size_t j = i;
        while (j > 0 && strcmp(names[order[j - 1]], names[i]) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    size_t total = 1;
    for (size_t k = 0; k < nk; k++) {
        lens[k] = len[order[k]];
        if (lens[k] == 0 || total > GRID_LIMIT / lens[k]) {
            if (lens[k] == 0)
                bl_error(ctx, BL_EINVAL, "'%s' must be a non-empty list of values",
                         names[order[k]]);
            else
                bl_error(ctx, BL_EINVAL, "the grid is too large (more than 2^40 points)");
            free(order);
            free(lens);
            return BL_EINVAL;
        }
        total *= lens[k];
    }
    *grid = (bl_grid){.nk = nk, .total = total, .order = order, .len = lens};
    return BL_OK;
}

void bl_grid_point(const bl_grid *grid, size_t index, size_t *at)
{
    /* mixed radix, the last key the lowest digit (fastest) */
    for (size_t k = grid->nk; k-- > 0;) {
        at[k] = index % grid->len[k];
        index /= grid->len[k];
    }
}

void bl_grid_free(bl_grid *grid)
{
    if (!grid)
        return;
    free(grid->order);
    free(grid->len);
    memset(grid, 0, sizeof *grid);
}

/* ---- the sweep ----------------------------------------------------------------------------- */

struct bl_sweep {
    const bl_sweep_hooks *hooks;
    bl_sweep_summary *sum;
    size_t next;          /* the next index to hand out */
    bool *recorded;       /* per index */
};

static const bl_sweep_point unrun = {.status = BL_SWEEP_FAILED, .time_to_target = NAN,
                                     .val_loss = NAN, .score = NAN, .steps_to_target = NAN};

bool bl_sweep_next_index(bl_sweep *sw, size_t *index)
{
    if (sw->next >= sw->sum->total)
        return false;
    *index = sw->next++;
    return true;
}

int bl_sweep_run_point(bl_sweep *sw, bl_ctx *ctx, size_t index, bl_sweep_point *out)
{
    *out = unrun;
    if (sw->hooks->resume) {
        bool found = false;
        int rc = sw->hooks->resume(sw->hooks->user, ctx, index, out, &found);
        if (rc != BL_OK)
            return rc;
        if (found) {
            out->resumed = true;
            return BL_OK;
        }
        *out = unrun;
    }
    return sw->hooks->run(sw->hooks->user, ctx, index, out);
}

int bl_sweep_record(bl_sweep *sw, bl_ctx *ctx, size_t index, const bl_sweep_point *p)
{
    bl_sweep_summary *s = sw->sum;
    if (index >= s->total || sw->recorded[index])
        return bl_error(ctx, BL_EINVAL, "bl_sweep_record: point %zu is out of range or was "
                        "recorded already", index);
    sw->recorded[index] = true;
    s->points[index] = *p;
    s->points[index].score = NAN;
    s->done++;
    if (p->status == BL_SWEEP_FAILED)
        s->failed++;
    if (p->resumed)
        s->resumed++;
    if (sw->hooks->on_point)
        return sw->hooks->on_point(sw->hooks->user, ctx, index, &s->points[index], s->total);
    return BL_OK;
}

int bl_sweep_pack(bl_sweep *sw, bl_ctx *ctx, size_t index, int rc, void **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    if (!sw->hooks->pack)
        return BL_OK;
    return sw->hooks->pack(sw->hooks->user, ctx, index, rc, data, len);
}

int bl_sweep_unpack(bl_sweep *sw, bl_ctx *ctx, size_t index, int rc, const char *msg,
                    const void *data, size_t len, bl_sweep_point *p)
{
    if (sw->hooks->unpack)
        return sw->hooks->unpack(sw->hooks->user, ctx, index, rc, msg, data, len, p);
    return rc == BL_OK ? BL_OK : bl_error(ctx, rc, "%s", msg ? msg : "");
}

size_t bl_sweep_points(const bl_sweep *sw)
{
    return sw->sum->total;
}

static int inprocess_execute(const bl_sweep_executor *self, bl_sweep *sw, bl_ctx *ctx)
{
    (void)self;
    size_t i;
    while (bl_sweep_next_index(sw, &i)) {
        bl_sweep_point p;
        int rc = bl_sweep_run_point(sw, ctx, i, &p);
        if (rc == BL_OK)
            rc = bl_sweep_record(sw, ctx, i, &p);
        if (rc != BL_OK)
            return rc;
    }
    return BL_OK;
}

const bl_sweep_executor *bl_sweep_inprocess(void)
{
    static const bl_sweep_executor inprocess = {"in-process", inprocess_execute, NULL};
    return &inprocess;
}

/* Scores every completed point and picks the best. */
static int score_points(bl_ctx *ctx, const bl_sweep_hooks *hooks, bool higher,
                        bl_sweep_summary *s)
{
    bool by_target = false;
    for (size_t i = 0; i < s->total && !hooks->score; i++)
        if (s->points[i].status == BL_SWEEP_COMPLETED && s->points[i].has_target_time)
            by_target = true;
    for (size_t i = 0; i < s->total; i++) {
        bl_sweep_point *p = &s->points[i];
        if (p->status != BL_SWEEP_COMPLETED)
            continue;
        double v = NAN;
        if (hooks->score) {
            int rc = hooks->score(hooks->user, ctx, i, p, &v);
            if (rc != BL_OK)
                return rc;
        } else {
            v = by_target ? (p->has_target_time ? p->time_to_target : NAN) : p->val_loss;
        }
        if (!isfinite(v))
            continue;
        p->score = v;
        if (s->best == SIZE_MAX || (higher ? v > s->best_score : v < s->best_score)) {
            s->best = i;
            s->best_score = v;
        }
    }
    return BL_OK;
}

int bl_sweep_run(bl_ctx *ctx, const bl_sweep_options *opts, const bl_sweep_hooks *hooks,
                 const bl_sweep_executor *executor, bl_sweep_summary *out)
{
    if (!out)
        return bl_error(ctx, BL_EINVAL, "bl_sweep_run: NULL summary");
    memset(out, 0, sizeof *out);
    out->best = SIZE_MAX;
    out->best_score = NAN;
    if (!opts || !hooks || !hooks->run)
        return bl_error(ctx, BL_EINVAL, "bl_sweep_run: options and a run hook are required");
    if (!executor)
        executor = bl_sweep_inprocess();
    size_t n = opts->points;
    out->total = n;
    out->points = malloc((n ? n : 1) * sizeof *out->points);
    bool *recorded = calloc(n ? n : 1, sizeof *recorded);
    if (!out->points || !recorded) {
        free(recorded);
        return bl_error(ctx, BL_ENOMEM, "out of memory starting a sweep of %zu points", n);
    }
    for (size_t i = 0; i < n; i++)
        out->points[i] = unrun;
    bl_sweep sw = {.hooks = hooks, .sum = out, .recorded = recorded};
    int rc = executor->execute(executor, &sw, ctx);
    free(recorded);
    if (rc != BL_OK)
        return rc;
    if (out->done != n)
        return bl_error(ctx, BL_EINVAL, "sweep executor %s recorded %zu of %zu points",
                        executor->name ? executor->name : "?", out->done, n);
    return score_points(ctx, hooks, opts->higher_is_better, out);
}

void bl_sweep_summary_free(bl_sweep_summary *summary)
{
    if (!summary)
        return;
    free(summary->points);
    memset(summary, 0, sizeof *summary);
    summary->best = SIZE_MAX;
}
