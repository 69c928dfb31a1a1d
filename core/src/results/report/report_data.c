/* The data of the HTML report: the runs of one experiment with their points, what their
 * configurations say (batch or schedule, learning rate, target), the line groups and the
 * target the report measures against. See report_internal.h. */
#include "results/report/report_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/json.h"
#include "batchlab/train.h"
#include "base/grow.h"

/* What the report reads from a configuration. */
typedef struct cfg_view {
    char batch[64];          /* "batch" as a number */
    char sched[64];          /* the schedule's name */
    char sched_opts[160];    /* its options, "from=32, to=512" */
    char lr[64], top_lr[64]; /* optimizer.lr, lr */
    bool target;             /* a target was found */
    char t_metric[32];
    double t_value;
    int t_dir;               /* 1: at least, -1: at most, 0: by the metric */
} cfg_view;

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

static int cfg_leaf(void *user, const char *path, bl_json_kind kind, const char *value)
{
    cfg_view *v = user;
    bool number = kind == BL_JSON_NUMBER;
    if (strcmp(path, "batch") == 0) {
        if (number)
            copy(v->batch, sizeof v->batch, value);
        else if (kind == BL_JSON_STRING)
            copy(v->sched, sizeof v->sched, value);
    } else if (strncmp(path, "batch.", 6) == 0) {
        const char *k = path + 6;
        if (kind == BL_JSON_STRING && !v->sched[0] &&
            (strcmp(k, "name") == 0 || strcmp(k, "scheduler") == 0 ||
             strcmp(k, "schedule") == 0)) {
            copy(v->sched, sizeof v->sched, value);
        } else {
            if (strncmp(k, "options.", 8) == 0)               /* {scheduler =, options =} */
                k += 8;
            size_t len = strlen(v->sched_opts);
            if (len + 1 < sizeof v->sched_opts)
                snprintf(v->sched_opts + len, sizeof v->sched_opts - len, "%s%s=%s",
                         len ? ", " : "", k, value);
        }
    } else if (strcmp(path, "optimizer.lr") == 0 && number) {
        copy(v->lr, sizeof v->lr, value);
    } else if (strcmp(path, "lr") == 0 && number) {
        copy(v->top_lr, sizeof v->top_lr, value);
    } else if (strcmp(path, "target") == 0 && number) {       /* target = 0.9 */
        v->target = true;
        v->t_value = strtod(value, NULL);
        v->t_dir = 1;
    } else if (strncmp(path, "target.", 7) == 0) {
        const char *k = path + 7;
        bl_metric m;
        if (strcmp(k, "metric") == 0 && kind == BL_JSON_STRING) {
            copy(v->t_metric, sizeof v->t_metric, value);
        } else if (number && (strcmp(k, "at_least") == 0 || strcmp(k, "at_most") == 0 ||
                              strcmp(k, "value") == 0)) {
            v->target = true;
            v->t_value = strtod(value, NULL);
            v->t_dir = k[0] == 'v' ? 0 : k[3] == 'l' ? 1 : -1;
        } else if (number && bl_metric_parse(NULL, k, &m) == BL_OK) {  /* {val_loss = 0.3} */
            v->target = true;
            copy(v->t_metric, sizeof v->t_metric, k);
            v->t_value = strtod(value, NULL);
            v->t_dir = 0;
        }
    }
    return 0;
}

typedef struct gather {
    bl__rdata *d;
    bool outside_only;       /* experiment "": the runs outside any experiment */
    bool targets_differ;     /* two configurations record different targets */
    bl__rrun *cur;           /* the run whose points are being read */
    cfg_view first_target;   /* the first configuration with a target */
    bool nomem;
} gather;

static char *sdup(gather *g, const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        g->nomem = true;
    return d;
}

static int on_run(void *user, const bl_store_run *r)
{
    gather *g = user;
    bl__rdata *d = g->d;
    if (g->outside_only && r->experiment_id != 0)
        return 0;
    bl__rrun *p = bl__grow(d->runs, &d->run_cap, d->run_count + 1, sizeof *p);
    if (!p) {
        g->nomem = true;
        return 1;
    }
    d->runs = p;
    bl__rrun *x = &d->runs[d->run_count++];
    *x = (bl__rrun){.target = NAN, .id = r->id, .experiment_id = r->experiment_id, .status = r->status,
                    .seed = r->seed, .batch = NAN, .lr = NAN, .steps = r->steps,
                    .time = r->time, .val_accuracy = r->val_accuracy,
                    .test_accuracy = r->test_accuracy, .final_gns = NAN, .gns = NAN,
                    .train_accuracy = NAN, .peak_lr = NAN,
                    .steps_error = r->steps_to_target_error > 0
                                       ? (double)r->steps_to_target_error : NAN,
                    .time_to_target = r->time_to_target,
                    .step_time_median = r->step_time_median,
                    .steps_to_target = r->steps_to_target >= 0 ? (double)r->steps_to_target
                                                                 : NAN};
    x->label = sdup(g, r->label);
    x->experiment = sdup(g, r->experiment);
    x->error = sdup(g, r->error);

    cfg_view v = {0};
    bl_json_flatten(NULL, r->config_json, cfg_leaf, &v);   /* a bad config shows nothing */
    char text[256];
    if (v.batch[0]) {
        x->batch = strtod(v.batch, NULL);
        copy(text, sizeof text, v.batch);
    } else if (v.sched[0] || v.sched_opts[0]) {
        snprintf(text, sizeof text, "%s%s%s%s", v.sched[0] ? v.sched : "schedule",
                 v.sched_opts[0] ? " (" : "", v.sched_opts, v.sched_opts[0] ? ")" : "");
    } else {
        text[0] = '\0';                                    /* from the points, later */
    }
    x->batch_text = sdup(g, text);
    x->lr_text = sdup(g, v.lr[0] ? v.lr : v.top_lr);
    if (x->lr_text && x->lr_text[0])
        x->lr = strtod(x->lr_text, NULL);
    x->target = v.target ? v.t_value : NAN;
    if (v.target && !g->first_target.target)
        g->first_target = v;
    else if (v.target && (v.t_value != g->first_target.t_value ||
                          v.t_dir != g->first_target.t_dir ||
                          strcmp(v.t_metric, g->first_target.t_metric) != 0))
        g->targets_differ = true;
    return g->nomem ? 1 : 0;
}

static int on_point(void *user, int64_t run_id, const bl_eval_point *p)
{
    gather *g = user;
    bl__rrun *x = g->cur;
    bl_eval_point *q = bl__grow(x->points, &x->point_cap, x->point_count + 1, sizeof *q);
    if (!q) {
        g->nomem = true;
        return 1;
    }
    x->points = q;
    x->points[x->point_count++] = *p;
    return 0;
}

/* What the points tell when the record or the configuration did not: the batch (constant, or
 * a schedule from the first to the largest), the final accuracy and noise scale. */
static void from_points(gather *g, bl__rrun *x)
{
    for (size_t i = 0; i < x->point_count; i++)
        if (isfinite(x->points[i].gns) && x->points[i].gns > 0) {
            x->final_gns = x->points[i].gns;
            g->d->any_gns = true;
        }
    for (size_t k = x->point_count; isnan(x->val_accuracy) && k-- > 0;)
        x->val_accuracy = x->points[k].val_accuracy;        /* a run without an end */
    for (size_t k = x->point_count; isnan(x->train_accuracy) && k-- > 0;)
        x->train_accuracy = x->points[k].train_accuracy;
    double *step = malloc((x->point_count + 1) * 2 * sizeof *step), *gns = step + x->point_count;
    if (step) {
        for (size_t i = 0; i < x->point_count; i++) {
            step[i] = (double)x->points[i].step;
            gns[i] = x->points[i].gns;
            if (x->points[i].lr > 0 && !(x->points[i].lr <= x->peak_lr))
                x->peak_lr = x->points[i].lr;
        }
        x->gns = bl_gns_summary(step, gns, x->point_count);
        free(step);
    } else {
        g->nomem = true;
    }
    if (x->batch_text && !x->batch_text[0] && x->point_count > 0) {
        int64_t first = x->points[0].batch, hi = first;
        for (size_t i = 1; i < x->point_count; i++)
            hi = x->points[i].batch > hi ? x->points[i].batch : hi;
        char text[64];
        if (hi == first && first > 0) {
            x->batch = (double)first;
            snprintf(text, sizeof text, "%lld", (long long)first);
        } else {
            snprintf(text, sizeof text, "schedule %lld\u2192%lld", (long long)first,
                     (long long)hi);
        }
        free(x->batch_text);
        x->batch_text = sdup(g, text);
    }
    if (isnan(x->batch))
        g->d->any_schedule = true;
}

/* ---- line groups -------------------------------------------------------------------------- */

static int cmp_group(const void *a, const void *b)
{
    const bl__rgroup *x = a, *y = b;
    bool nx = isfinite(x->batch), ny = isfinite(y->batch);
    if (nx != ny)
        return nx ? -1 : 1;
    if (nx && x->batch != y->batch)
        return x->batch < y->batch ? -1 : 1;
    return strcmp(x->legend, y->legend);
}

static int make_groups(gather *g)
{
    bl__rdata *d = g->d;
    bool lr_varies = false;        /* two runs of one batch with different rates */
    for (size_t i = 0; i < d->run_count && !lr_varies; i++)
        for (size_t k = 0; k < i && !lr_varies; k++)
            lr_varies = strcmp(d->runs[i].batch_text, d->runs[k].batch_text) == 0 &&
                        strcmp(d->runs[i].lr_text, d->runs[k].lr_text) != 0;
    d->groups = calloc(d->run_count, sizeof *d->groups);
    char **keys = calloc(d->run_count, sizeof *keys);
    if (!d->groups || !keys) {
        free(keys);
        return BL_ENOMEM;
    }
    for (size_t i = 0; i < d->run_count; i++) {
        const bl__rrun *x = &d->runs[i];
        char legend[256];
        int n = snprintf(legend, sizeof legend, "%s%s", isfinite(x->batch) ? "batch " : "",
                         x->batch_text[0] ? x->batch_text : "batch unknown");
        if (lr_varies && x->lr_text[0] && n > 0 && (size_t)n < sizeof legend)
            snprintf(legend + n, sizeof legend - (size_t)n, ", lr %s", x->lr_text);
        size_t k = 0;
        while (k < d->group_count && strcmp(d->groups[k].legend, legend) != 0)
            k++;
        if (k == d->group_count) {
            d->groups[k] = (bl__rgroup){.legend = sdup(g, legend), .batch = x->batch};
            if (!d->groups[k].legend)
                break;
            d->group_count++;
        }
        keys[i] = d->groups[k].legend;
    }
    if (g->nomem) {
        free(keys);
        return BL_ENOMEM;
    }
    /* Sort, then find each run's group again by its legend. */
    qsort(d->groups, d->group_count, sizeof *d->groups, cmp_group);
    for (size_t i = 0; i < d->run_count; i++)
        for (size_t k = 0; k < d->group_count; k++)
            if (d->groups[k].legend == keys[i])
                d->runs[i].group = (int)k;
    free(keys);
    return BL_OK;
}

/* ---- the target --------------------------------------------------------------------------- */

/* Measures every run against one target, from its points. */
static void measure(bl__rdata *d, bl_metric metric, double target, bool higher)
{
    snprintf(d->target_text, sizeof d->target_text, "%s %s %g", bl_metric_name(metric),
             higher ? "\u2265" : "\u2264", target);
    for (size_t i = 0; i < d->run_count; i++) {
        bl__rrun *x = &d->runs[i];
        x->time_to_target = x->steps_to_target = x->steps_error = NAN;
        bl_target_crossing c;   /* interpolated as the step loop does, timed the same */
        if (bl_target_crossing_find(x->points, x->point_count, metric, target, higher,
                                    &c)) {
            x->time_to_target = x->step_time_median > 0
                                    ? (double)c.steps * x->step_time_median
                                    : c.wall;
            x->steps_to_target = (double)c.steps;
            x->steps_error = c.steps_error > 0 ? (double)c.steps_error : NAN;
        }
    }
}

static void choose_target(gather *g, const bl_report_options *o)
{
    bl__rdata *d = g->d;
    if (o->has_target) {
        bool higher = o->target_metric == BL_METRIC_VAL_ACCURACY ||
                      o->target_metric == BL_METRIC_TRAIN_ACCURACY;
        d->target_mode = BL__TARGET_OPTION;
        measure(d, o->target_metric, o->target, higher);
        return;
    }
    /* Runs that recorded different targets are not merged into one median: every run is
     * measured against the strictest of them (the highest accuracy, the lowest loss, of the
     * first run's metric), which the points of each run can be checked against. */
    bl_metric tm;
    const cfg_view *f = &g->first_target;
    const char *fm = f->t_metric[0] ? f->t_metric : "val_accuracy";
    if (g->targets_differ && bl_metric_parse(NULL, fm, &tm) == BL_OK) {
        bool higher = f->t_dir ? f->t_dir > 0 : bl_metric_name_higher_is_better(fm);
        double strict = NAN;
        for (size_t i = 0; i < d->run_count; i++) {
            double t = d->runs[i].target;
            if (isfinite(t) && (isnan(strict) || (higher ? t > strict : t < strict)))
                strict = t;
        }
        if (isfinite(strict)) {
            d->target_mode = BL__TARGET_UNIFIED;
            measure(d, tm, strict, higher);
            return;
        }
    }
    bool recorded = false;
    for (size_t i = 0; i < d->run_count; i++) {
        bl__rrun *x = &d->runs[i];
        if (!(isfinite(x->time_to_target) && x->time_to_target >= 0))
            x->time_to_target = NAN;
        recorded |= !isnan(x->time_to_target) || !isnan(x->steps_to_target);
    }
    const cfg_view *t = &g->first_target;
    if (!recorded && !t->target) {
        d->target_mode = BL__TARGET_NONE;
        return;
    }
    d->target_mode = BL__TARGET_RECORDED;
    if (t->target) {
        const char *m = t->t_metric[0] ? t->t_metric : "val_accuracy";
        int dir = t->t_dir ? t->t_dir : bl_metric_name_higher_is_better(m) ? 1 : -1;
        snprintf(d->target_text, sizeof d->target_text, "%s %s %g", m,
                 dir > 0 ? "\u2265" : "\u2264", t->t_value);
    }
}

/* ---- gathering ---------------------------------------------------------------------------- */

/* With no experiment named, the runs must belong to one; the message lists them otherwise. */
static int check_one_experiment(bl_ctx *ctx, bl__rdata *d, const char *path)
{
    char names[512] = "";
    size_t len = 0, distinct = 0;
    bool outside = false;
    for (size_t i = 0; i < d->run_count; i++) {
        const bl__rrun *x = &d->runs[i];
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = d->runs[k].experiment_id == x->experiment_id;
        if (seen)
            continue;
        distinct++;
        if (x->experiment_id == 0)
            outside = true;
        else if (len + 8 < sizeof names)
            len += (size_t)snprintf(names + len, sizeof names - len, "%s'%s'", len ? ", " : "",
                                    x->experiment);
    }
    if (distinct <= 1) {
        if (d->run_count > 0 && d->runs[0].experiment_id != 0) {
            d->experiment = strdup(d->runs[0].experiment);
            if (!d->experiment)
                return bl_error(ctx, BL_ENOMEM, "out of memory");
        }
        return BL_OK;
    }
    if (len >= sizeof names)
        len = sizeof names - 1;
    return bl_error(ctx, BL_EINVAL, "results store '%s' holds the runs of %zu experiments (%s%s"
                    "): choose one to report on (--experiment NAME, or --experiment '' for the runs outside "
                    "any experiment)", path, distinct, names,
                    outside ? (len ? ", and runs outside any experiment"
                                   : "runs outside any experiment") : "");
}

int bl__report_gather(bl_ctx *ctx, bl_store *store, const bl_report_options *o, bl__rdata *out)
{
    memset(out, 0, sizeof *out);
    bl__rdata d = {.store_path = bl_store_path(store)};
    gather g = {.d = &d, .outside_only = o->experiment && !*o->experiment};
    if (o->has_target && !isfinite(o->target))
        return bl_error(ctx, BL_EINVAL, "the report's target must be a finite number");
    int rc = bl_store_list_runs(ctx, store, g.outside_only ? NULL : o->experiment, on_run, &g);
    if (g.nomem)
        rc = bl_error(ctx, BL_ENOMEM, "out of memory reading the runs");
    if (rc == BL_OK && d.run_count == 0) {
        if (g.outside_only)
            rc = bl_error(ctx, BL_ENOTFOUND, "results store '%s' holds no runs outside an "
                          "experiment to report on", d.store_path);
        else if (o->experiment)
            rc = bl_error(ctx, BL_ENOTFOUND, "experiment '%s' in results store '%s' has no runs "
                          "to report on", o->experiment, d.store_path);
        else
            rc = bl_error(ctx, BL_ENOTFOUND, "results store '%s' holds no runs to report on",
                          d.store_path);
    }
    if (rc == BL_OK && o->experiment && !g.outside_only) {
        d.experiment = strdup(o->experiment);
        if (!d.experiment)
            rc = bl_error(ctx, BL_ENOMEM, "out of memory");
    } else if (rc == BL_OK && !g.outside_only) {
        rc = check_one_experiment(ctx, &d, d.store_path);
    }
    for (size_t i = 0; rc == BL_OK && i < d.run_count; i++) {
        g.cur = &d.runs[i];
        rc = bl_store_list_points(ctx, store, d.runs[i].id, on_point, &g);
        if (g.nomem)
            rc = bl_error(ctx, BL_ENOMEM, "out of memory reading the points of run %lld",
                          (long long)d.runs[i].id);
        if (rc == BL_OK)
            from_points(&g, &d.runs[i]);
    }
    if (rc == BL_OK && (make_groups(&g) != BL_OK || g.nomem))
        rc = bl_error(ctx, BL_ENOMEM, "out of memory");
    if (rc != BL_OK) {
        bl__report_data_free(&d);
        return rc;
    }
    choose_target(&g, o);
    *out = d;
    return BL_OK;
}

void bl__report_data_free(bl__rdata *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->run_count; i++) {
        free(d->runs[i].label);
        free(d->runs[i].experiment);
        free(d->runs[i].error);
        free(d->runs[i].batch_text);
        free(d->runs[i].lr_text);
        free(d->runs[i].points);
    }
    for (size_t k = 0; k < d->group_count; k++)
        free(d->groups[k].legend);
    free(d->runs);
    free(d->groups);
    free(d->experiment);
    memset(d, 0, sizeof *d);
}
