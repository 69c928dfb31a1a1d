/* Progress on stderr (train.h, bl_progress_printer): a live line on a terminal, cut to its
 * width and redrawn in place; plain lines otherwise. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/duration.h"
#include "batchlab/train.h"

enum { LOSS_EMA_STEPS = 50 };   /* the smoothed loss spans about this many steps */

/* ---- a line cut to a width -------------------------------------------------------------- */

typedef struct line {
    char *buf;
    size_t cap, len;
    int cols, width;        /* columns used; the limit (0 = none) */
    bool full;              /* a field did not fit: nothing more is added */
} line;

/* Columns of UTF-8 text: one per character (continuation bytes do not count). */
static int columns(const char *s, size_t n)
{
    int c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* The byte offset after the first `n` characters of s[0 .. len). */
static size_t skip_columns(const char *s, size_t len, int n)
{
    size_t at = 0;
    for (int c = 0; c < n && at < len; c++) {
        at++;
        while (at < len && ((unsigned char)s[at] & 0xC0) == 0x80)
            at++;
    }
    return at;
}

/* Appends one field (a space in front unless it is the first) when it fits whole; the first
 * field (the label) is cut instead. Once a field does not fit, the line is full: fields come
 * in order of importance, so what is left out is the least useful. */
static void BL_PRINTF(2, 3) field(line *l, const char *fmt, ...)
{
    if (l->full)
        return;
    char piece[256];
    size_t at = 0;
    if (l->len > 0)
        piece[at++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(piece + at, sizeof piece - at, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = at + (size_t)n < sizeof piece ? at + (size_t)n : sizeof piece - 1;
    int cols = columns(piece, len);
    /* width − 1: writing the last column makes some terminals wrap */
    int room = l->width > 0 ? l->width - 1 - l->cols : 1 << 30;
    if (cols > room) {
        l->full = true;
        if (l->len > 0)
            return;
        /* the first field alone is too wide: keep what fits, whole characters only */
        size_t cut = 0;
        int c = 0;
        while (cut < len && c < room) {
            cut++;
            while (cut < len && ((unsigned char)piece[cut] & 0xC0) == 0x80)
                cut++;
            c++;
        }
        len = cut;
        cols = c;
    }
    if (l->len + len >= l->cap)
        len = l->cap - 1 - l->len;
    memcpy(l->buf + l->len, piece, len);
    l->len += len;
    l->buf[l->len] = '\0';
    l->cols += cols;
}

/* ---- the fields ------------------------------------------------------------------------- */

/* The run's fraction done by its budget (the first limit reached ends it), 0 when unknown. */
static double fraction_done(const bl_progress_printer *p)
{
    const bl_train_state *s = &p->state;
    double f = 0;
    if (p->planned_samples > 0)
        f = fmax(f, (double)s->samples / (double)p->planned_samples);
    if (p->max_steps > 0)
        f = fmax(f, (double)s->step / (double)p->max_steps);
    if (p->max_seconds > 0)
        f = fmax(f, s->wall / p->max_seconds);
    return f > 1 ? 1 : f;
}

/* The latest evaluation: validation accuracy, else validation loss, else train accuracy. */
static void eval_field(line *l, const bl_eval_point *e)
{
    if (!isnan(e->val_accuracy))
        field(l, "val_acc %.4f", e->val_accuracy);
    else if (!isnan(e->val_loss))
        field(l, "val_loss %.4f", e->val_loss);
    else if (!isnan(e->train_accuracy))
        field(l, "train_acc %.4f", e->train_accuracy);
}

void bl_progress_format(const bl_progress_printer *p, int width, const bl_run_result *final,
                        char *buf, size_t cap)
{
    line l = {buf, cap, 0, 0, width, false};
    buf[0] = '\0';
    if (cap < 2)
        return;
    char t[32];
    if (p->label && *p->label) {
        /* a long label leaves room for the figures: at most a third of the width, its middle
         * left out (a sweep's labels differ at their end: "name batch=32") */
        int most = width > 0 ? width / 3 : 0;
        size_t len = strlen(p->label);
        int cols = columns(p->label, len);
        if (most >= 9 && cols > most) {
            int tail_cols = (most - 3) / 2, head_cols = most - 3 - tail_cols;
            size_t head = skip_columns(p->label, len, head_cols);
            size_t tail = skip_columns(p->label, len, cols - tail_cols);
            field(&l, "%.*s...%s", (int)head, p->label, p->label + tail);
        } else {
            field(&l, "%s", p->label);
        }
    }
    if (p->run_count > 0)
        field(&l, "run %d/%d", p->run_index, p->run_count);
    const bl_train_state *s = &p->state;
    if (final) {
        const bl_eval_point *e = &final->final;
        const char *st = bl_run_status_name(final->status);
        if (final->stopped_by[0] && strcmp(final->stopped_by, st) != 0 &&
            final->status != BL_RUN_FAILED)     /* "error": the reason is said apart */
            field(&l, "%s (%s)", st, final->stopped_by);
        else
            field(&l, "%s", st);
        eval_field(&l, e);
        if (!isnan(final->test_accuracy))
            field(&l, "test_acc %.4f", final->test_accuracy);
        if (!isnan(e->train_loss))
            field(&l, "loss %.4f", e->train_loss);
        field(&l, "epoch %.2f", final->epochs);
        field(&l, "in %s", bl__format_seconds(t, sizeof t, final->time + final->eval_time));
        field(&l, "step %lld", (long long)final->steps);
        if (e->batch > 0)
            field(&l, "batch %lld", (long long)e->batch);
        return;
    }
    if (p->loss_steps > 0)
        field(&l, "loss %.4f", p->loss_ema);
    if (p->have_last)
        eval_field(&l, &p->last);
    double elapsed = p->start > 0 ? bl__now() - p->start : 0;
    double f = fraction_done(p), eta = NAN;
    if (f > 0 && elapsed > 0) {
        eta = elapsed * (1 - f) / f;
        field(&l, "eta %s", bl__format_seconds(t, sizeof t, eta));
    }
    if (p->run_count > 1 && !isnan(eta)) {
        /* the runs left after this one at the mean time of the earlier ones (or this one's) */
        double per_run = p->run_index > 1 ? p->sweep_elapsed / (p->run_index - 1) : elapsed + eta;
        double left = eta + per_run * (double)(p->run_count - p->run_index);
        field(&l, "sweep eta %s", bl__format_seconds(t, sizeof t, left));
    }
    field(&l, "epoch %.2f", s->epoch_progress);
    field(&l, "step %lld", (long long)s->step);
    field(&l, "batch %lld", (long long)s->batch);
    if (s->wall > 0)
        field(&l, "%.0f samples/s", (double)s->samples / s->wall);
}

/* ---- printing --------------------------------------------------------------------------- */

/* Columns of the terminal on stderr, else $COLUMNS, else 80. */
static int terminal_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    const char *c = getenv("COLUMNS");
    long v = c ? strtol(c, NULL, 10) : 0;
    return v > 0 && v < 100000 ? (int)v : 80;
}

static void draw(bl_progress_printer *p, const bl_run_result *final)
{
    char buf[1024];
    if (p->live) {
        bl_progress_format(p, p->width > 0 ? p->width : terminal_width(), final, buf,
                           sizeof buf);
        fprintf(stderr, "\r%s\033[K%s", buf, final ? "\n" : "");
        p->open_line = !final;
    } else {
        bl_progress_format(p, 0, final, buf, sizeof buf);
        fprintf(stderr, "%s\n", buf);
    }
    fflush(stderr);
    p->last_print = bl__now();
}

void bl_progress_print(void *user, const bl_train_state *s, double loss, int64_t total_samples)
{
    bl_progress_printer *p = user;
    double now = bl__now();
    if (p->start == 0)
        p->start = now;
    if (p->planned_samples == 0 && total_samples > 0)
        p->planned_samples = total_samples;
    p->state = *s;
    if (isfinite(loss)) {
        double a = 2.0 / (LOSS_EMA_STEPS + 1);
        /* the mean of the steps so far until there are enough of them for the EMA */
        double w = p->loss_steps + 1 < LOSS_EMA_STEPS ? 1.0 / (double)(p->loss_steps + 1) : a;
        p->loss_ema = p->loss_steps == 0 ? loss : p->loss_ema + w * (loss - p->loss_ema);
        p->loss_steps++;
    }
    double interval = p->live ? 0.2 : (p->interval > 0 ? p->interval : 30.0);
    if (now - p->last_print >= interval)
        draw(p, NULL);
}

void bl_progress_point(bl_progress_printer *p, const bl_eval_point *point)
{
    if (p->start == 0)
        p->start = bl__now();
    p->last = *point;
    p->have_last = true;
    draw(p, NULL);
}

void bl_progress_end(bl_progress_printer *p, const bl_run_result *result)
{
    draw(p, result);
}
