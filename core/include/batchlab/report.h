/* batchlab — the HTML report of a sweep.
 *
 * bl_report_write makes one self-contained HTML page from the runs of a results store (one
 * experiment): training loss against samples seen, steps and wall time (its y axis capped by
 * robust quantiles, points above marked as clipped), validation accuracy against steps, the
 * batch size and learning rate against samples seen,
 * steps- and time-to-target against the batch size on log–log axes (with the perfect-scaling
 * line, the fitted S(B) = S_min + E_min/B and B_crit, see batchlab/recommend.h), the final
 * validation accuracy against the batch size with its spread over seeds, the gradient noise
 * scale over training when it was measured, a sortable table of the runs, and the
 * recommendation with its reasons. A chart with nothing to draw is left out; points carry
 * their values as hover text. Charts are inline SVG; the only script sorts the table;
 * nothing is fetched from the network. Every string that comes from the store (names, labels,
 * configuration values) is HTML-escaped.
 *
 * The batch size, learning rate and schedule of a run come from its configuration JSON:
 * "batch" (a number, or a schedule: a string, or an object with "name" / "scheduler" /
 * "schedule" and its options), "optimizer.lr" or "lr". Without them the batches the points
 * record are used.
 *
 * The target: the options' target when set; else the targets recorded with the runs
 * (time_to_target / steps_to_target of the runs table, described by the configurations'
 * "target" when they have one); else none, and the page says that the target charts are left
 * out. When the runs recorded different targets, every run is measured from its points
 * against the strictest of them, so that no median mixes targets.
 */
#ifndef BATCHLAB_REPORT_H
#define BATCHLAB_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "batchlab/error.h"
#include "batchlab/store.h"
#include "batchlab/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_report_options {
    const char *experiment;   /* the experiment to report on; "": the runs outside any
                                 experiment; NULL: all runs of the store, which must then
                                 belong to a single experiment */
    const char *title;        /* the page's heading; NULL: from the experiment's name */
    bool has_target;          /* report against this target instead of the recorded ones */
    bl_metric target_metric;  /* default val_accuracy */
    double target;            /* reached at the first evaluation point where the metric is
                                 ≥ target (accuracies) or ≤ target (losses) */
    int refresh_seconds;      /* > 0: the page reloads itself this often (a meta refresh, for
                                 a page rewritten while a sweep runs); 0: a static page */
} bl_report_options;

/* All runs, no title, no target of its own. */
BL_EXPORT bl_report_options bl_report_defaults(void);

/* Writes the report to `out` (opts NULL = the defaults). Reads the store only. Errors, with
 * the message in ctx (naming the store and the experiment):
 *   BL_ENOTFOUND  the experiment does not exist (the message lists those that do), or there
 *                 are no runs to report on;
 *   BL_EINVAL     NULL store or out, or opts->experiment is NULL and the runs belong to
 *                 several experiments (the message lists them), or a non-finite target;
 *   BL_EIO        writing to `out` failed;
 *   BL_ESTORE, BL_ENOMEM.
 * Nothing is written to `out` before the data has been read, so a report that cannot be made
 * leaves `out` untouched; an error while writing may leave a partial page. */
BL_EXPORT int bl_report_write(bl_ctx *ctx, bl_store *store, const bl_report_options *opts,
                              FILE *out);

/* As bl_report_write, into the file `path`: written to a temporary file in the same
 * directory, fsync'd and renamed over `path` at the end, so `path` is either the whole new
 * report or left as it was (BL_EIO names the file on failure). An existing `path` that is not
 * a regular file (/dev/null, a FIFO) is written in place, never renamed over; a directory is
 * refused. */
BL_EXPORT int bl_report_write_file(bl_ctx *ctx, bl_store *store, const bl_report_options *opts,
                                   const char *path);

#ifdef __cplusplus
}
#endif
#endif
