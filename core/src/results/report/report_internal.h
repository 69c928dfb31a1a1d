/* Internal: the data of the HTML report, read from the store (report_data.c) and written as a
 * page (report.c: the page, the recommendation and the table; report_charts.c: the chart
 * sections). */
#ifndef BATCHLAB_REPORT_INTERNAL_H
#define BATCHLAB_REPORT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stdio.h>

#include "batchlab/recommend.h"
#include "batchlab/report.h"

/* One run. Strings are owned (never NULL). Metrics not recorded are NAN. */
typedef struct bl__rrun {
    int64_t id, experiment_id;
    char *label, *experiment;
    bl_run_status status;
    char *error;             /* why it failed or diverged ("" when none) */
    uint64_t seed;
    double batch;            /* the batch size; NAN for a schedule */
    char *batch_text;        /* "64", or the schedule's description */
    char *lr_text;           /* the learning rate as configured ("" when unknown) */
    double lr;
    double target;           /* the target value its configuration records; NAN: none */
    int64_t steps;           /* -1 when not recorded */
    double time, val_accuracy, test_accuracy;
    double time_to_target, steps_to_target;   /* under the report's target; NAN: not reached;
                                                 time: steps × step_time_median (train.h) */
    double step_time_median; /* NAN for runs stored before it was (their time is the wall) */
    double final_gns;        /* the last measured gradient noise scale; NAN: none */
    double gns;              /* its summary, bl_gns_summary (later half, median); NAN: none */
    double train_accuracy;   /* the last point's; NAN: not measured */
    double steps_error;      /* evaluation resolution of steps_to_target; NAN: unknown */
    double peak_lr;          /* the largest effective LR of its points; NAN: none */
    bl_eval_point *points;   /* in order */
    size_t point_count, point_cap;
    int group;               /* index into bl__rdata.groups */
} bl__rrun;

/* The runs drawn as one line colour and one legend entry: a batch size or a schedule (and a
 * learning rate, when the runs differ in it). */
typedef struct bl__rgroup {
    char *legend;            /* "batch 64", "ramp (from=32, to=512)", "batch 64, lr 0.1" */
    double batch;            /* NAN for a schedule */
} bl__rgroup;

typedef enum {
    BL__TARGET_NONE = 0,     /* no target: the target charts are left out */
    BL__TARGET_OPTION = 1,   /* the caller's target, applied to the points */
    BL__TARGET_RECORDED = 2, /* the runs' recorded time_to_target / steps_to_target */
    BL__TARGET_UNIFIED = 3   /* the runs recorded different targets: all are measured, from
                                their points, against the strictest */
} bl__target_mode;

typedef struct bl__rdata {
    const char *store_path;  /* the store's (borrowed) */
    char *experiment;        /* the experiment's name, or NULL (runs outside experiments:
                                options' experiment "", or a store without experiments) */
    bl__rrun *runs;
    size_t run_count, run_cap;
    bl__rgroup *groups;      /* numeric batches ascending, then schedules */
    size_t group_count;
    bl__target_mode target_mode;
    char target_text[256];   /* "val_accuracy ≥ 0.85", plain text; "" when unknown */
    bool any_gns;            /* some point has a gradient noise scale */
    bool any_schedule;       /* some run has a batch-size schedule */
} bl__rdata;

/* Reads the runs (see bl_report_write for the errors). On error *out needs no freeing. */
int bl__report_gather(bl_ctx *ctx, bl_store *store, const bl_report_options *opts,
                      bl__rdata *out);
void bl__report_data_free(bl__rdata *d);

/* The chart sections (report_charts.c), each a <section> with its heading, charts and
 * captions; `rec` is NULL when there is no recommendation. BL_OK or BL_ENOMEM. */
int bl__report_curves(FILE *out, const bl__rdata *d);
/* The batch size and the learning rate of each run against the samples seen. */
int bl__report_schedule_charts(FILE *out, const bl__rdata *d);
int bl__report_target_charts(FILE *out, const bl__rdata *d, const bl_recommendation *rec);
int bl__report_accuracy_chart(FILE *out, const bl__rdata *d);
int bl__report_gns_chart(FILE *out, const bl__rdata *d);
/* The three estimates of the critical batch size on one chart, and the Pareto front of time
 * to target against final validation accuracy (nothing without a recommendation). */
int bl__report_cbs_chart(FILE *out, const bl__rdata *d, const bl_recommendation *rec);
int bl__report_pareto_chart(FILE *out, const bl__rdata *d, const bl_recommendation *rec);

#endif
