/* A small SVG chart writer for the HTML report: axes with nice ticks (linear or log), lines,
 * markers, min–max bars, marker lines and a legend. See svg_chart.h. */
#include "results/report/svg_chart.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/error.h"
#include "base/grow.h"

/* Layout in SVG user units: the plot area, with the legend to its right. */
enum { W = 720, H = 340, PL = 66, PR = 196, PT = 34, PB = 48 };
#define PW (W - PL - PR)
#define PH (H - PT - PB)
#define MAX_TICKS 40

typedef struct series {
    char *legend;
    char *name;              /* hover text's name; NULL: the legend */
    int color;
    unsigned style;
    double *x, *y;
    size_t n;
} series;

typedef struct bars {
    int color;
    double *x, *lo, *hi;
    size_t n;
} bars;

typedef struct mark {
    double x;
    char *label;
} mark;

struct bl__chart {
    char *id, *title, *x_label, *y_label;
    bl__scale xs, ys;
    series *s;
    size_t ns, cs;
    bars *b;
    size_t nb, cb;
    mark *m;
    size_t nm, cm;
    double *xt;
    size_t nxt;
    double ymax;             /* NAN: none */
    bool nomem;
};

enum { HOVER_POINTS = 40, LEGEND_CHARS = 24, LEGEND_LINES = 3 };

typedef struct axis {
    bl__scale scale;
    double lo, hi;
    double ticks[MAX_TICKS];
    int nt;
    double step;   /* linear tick step (labels' decimals); 0 for log ticks */
    bool custom;   /* ticks given by the caller */
} axis;

static const char *const palette[10] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

const char *bl__chart_color(int i)
{
    return palette[(i < 0 ? -i : i) % 10];
}

void bl__html_puts(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&#39;", out); break;
        default: fputc(*s, out);
        }
    }
}

/* ---- building ----------------------------------------------------------------------------- */

static char *dup_or_null(bl__chart *c, const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        c->nomem = true;
    return d;
}

static double *dup_values(bl__chart *c, const double *v, size_t n)
{
    double *d = malloc((n ? n : 1) * sizeof *d);
    if (!d) {
        c->nomem = true;
        return NULL;
    }
    if (n)
        memcpy(d, v, n * sizeof *d);
    return d;
}

/* Makes room for one more element in *items (capacity *cap); false when out of memory. */
static bool grow(bl__chart *c, void **items, size_t n, size_t *cap, size_t size)
{
    void *p = bl__grow(*items, cap, n + 1, size);
    if (!p) {
        c->nomem = true;
        return false;
    }
    *items = p;
    return true;
}

bl__chart *bl__chart_new(const char *id, const char *title, const char *x_label,
                         const char *y_label, bl__scale x_scale, bl__scale y_scale)
{
    bl__chart *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->xs = x_scale;
    c->ys = y_scale;
    c->ymax = NAN;
    c->id = dup_or_null(c, id ? id : "chart");
    c->title = dup_or_null(c, title);
    c->x_label = dup_or_null(c, x_label);
    c->y_label = dup_or_null(c, y_label);
    if (c->nomem) {
        bl__chart_free(c);
        return NULL;
    }
    return c;
}

void bl__chart_free(bl__chart *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->ns; i++) {
        free(c->s[i].legend);
        free(c->s[i].name);
        free(c->s[i].x);
        free(c->s[i].y);
    }
    for (size_t i = 0; i < c->nb; i++) {
        free(c->b[i].x);
        free(c->b[i].lo);
        free(c->b[i].hi);
    }
    for (size_t i = 0; i < c->nm; i++)
        free(c->m[i].label);
    free(c->s);
    free(c->b);
    free(c->m);
    free(c->xt);
    free(c->id);
    free(c->title);
    free(c->x_label);
    free(c->y_label);
    free(c);
}

void bl__chart_series(bl__chart *c, const char *legend, int color, unsigned style,
                      const double *x, const double *y, size_t n)
{
    if (!c || c->nomem || !grow(c, (void **)&c->s, c->ns, &c->cs, sizeof *c->s))
        return;
    series *s = &c->s[c->ns++];
    *s = (series){.color = color, .style = style, .n = n};
    s->legend = dup_or_null(c, legend);
    s->x = dup_values(c, x, n);
    s->y = dup_values(c, y, n);
}

void bl__chart_name_last(bl__chart *c, const char *name)
{
    if (!c || c->nomem || c->ns == 0)
        return;
    free(c->s[c->ns - 1].name);
    c->s[c->ns - 1].name = dup_or_null(c, name);
}

void bl__chart_ymax(bl__chart *c, double ymax)
{
    if (c)
        c->ymax = ymax;
}

void bl__chart_bars(bl__chart *c, int color, const double *x, const double *lo,
                    const double *hi, size_t n)
{
    if (!c || c->nomem || !grow(c, (void **)&c->b, c->nb, &c->cb, sizeof *c->b))
        return;
    bars *b = &c->b[c->nb++];
    *b = (bars){.color = color, .n = n};
    b->x = dup_values(c, x, n);
    b->lo = dup_values(c, lo, n);
    b->hi = dup_values(c, hi, n);
}

void bl__chart_xmark(bl__chart *c, double x, const char *label)
{
    if (!c || c->nomem || !grow(c, (void **)&c->m, c->nm, &c->cm, sizeof *c->m))
        return;
    mark *m = &c->m[c->nm++];
    m->x = x;
    m->label = dup_or_null(c, label);
}

void bl__chart_xticks(bl__chart *c, const double *ticks, size_t n)
{
    if (!c || c->nomem)
        return;
    free(c->xt);
    c->xt = dup_values(c, ticks, n);
    c->nxt = c->xt ? n : 0;
}

/* ---- axes --------------------------------------------------------------------------------- */

static bool usable(double v, bl__scale s)
{
    return isfinite(v) && (s == BL__SCALE_LINEAR || v > 0);
}

size_t bl__chart_drawable(const bl__chart *c)
{
    size_t n = 0;
    for (size_t i = 0; c && i < c->ns; i++)
        for (size_t k = 0; k < c->s[i].n; k++)
            n += usable(c->s[i].x[k], c->xs) && usable(c->s[i].y[k], c->ys);
    for (size_t i = 0; c && i < c->nb; i++)
        for (size_t k = 0; k < c->b[i].n; k++)
            n += usable(c->b[i].x[k], c->xs) && usable(c->b[i].lo[k], c->ys) &&
                 usable(c->b[i].hi[k], c->ys);
    return n;
}

static void extend(double *lo, double *hi, double v, bl__scale s)
{
    if (!usable(v, s))
        return;
    if (v < *lo)
        *lo = v;
    if (v > *hi)
        *hi = v;
}

/* The data ranges of both axes (only points drawn on both count). */
static void data_range(const bl__chart *c, double *x0, double *x1, double *y0, double *y1)
{
    *x0 = *y0 = INFINITY;
    *x1 = *y1 = -INFINITY;
    for (size_t i = 0; i < c->ns; i++) {
        const series *s = &c->s[i];
        for (size_t k = 0; k < s->n; k++)
            if (usable(s->x[k], c->xs) && usable(s->y[k], c->ys)) {
                extend(x0, x1, s->x[k], c->xs);
                extend(y0, y1, s->y[k], c->ys);
            }
    }
    for (size_t i = 0; i < c->nb; i++) {
        const bars *b = &c->b[i];
        for (size_t k = 0; k < b->n; k++)
            if (usable(b->x[k], c->xs)) {
                extend(x0, x1, b->x[k], c->xs);
                extend(y0, y1, b->lo[k], c->ys);
                extend(y0, y1, b->hi[k], c->ys);
            }
    }
    for (size_t i = 0; i < c->nm; i++)
        extend(x0, x1, c->m[i].x, c->xs);
    if (usable(c->ymax, c->ys) && *y1 > c->ymax)
        *y1 = c->ymax > *y0 ? c->ymax : *y0;
}

static double nice_step(double x)
{
    double e = floor(log10(x)), f = x / pow(10, e);
    double nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    return nf * pow(10, e);
}

static void linear_ticks(axis *a, double lo, double hi, bool widen)
{
    double step = nice_step((hi - lo) / 5);
    if (widen) {
        lo = floor(lo / step) * step;
        hi = ceil(hi / step) * step;
        a->lo = lo;
        a->hi = hi;
    }
    a->step = step;
    a->nt = 0;
    double first = ceil(a->lo / step - 1e-9);
    for (int i = 0; a->nt < MAX_TICKS; i++) {
        double v = (first + i) * step;
        if (v > a->hi + step * 1e-9)
            break;
        if (a->scale == BL__SCALE_LINEAR || v > 0)
            a->ticks[a->nt++] = fabs(v) < step * 1e-9 ? 0 : v;
    }
}

static int log_ticks_in(axis *a, const double *mant, int nm, bool store)
{
    int n = 0;
    for (double k = floor(log10(a->lo)); k <= ceil(log10(a->hi)); k++)
        for (int i = 0; i < nm; i++) {
            double v = mant[i] * pow(10, k);
            if (v >= a->lo * (1 - 1e-9) && v <= a->hi * (1 + 1e-9)) {
                if (store && a->nt < MAX_TICKS)
                    a->ticks[a->nt++] = v;
                n++;
            }
        }
    return n;
}

static void axis_make(axis *a, bl__scale scale, double lo, double hi, const double *custom,
                      size_t ncustom)
{
    *a = (axis){.scale = scale};
    if (!(lo <= hi)) {               /* no data */
        lo = scale == BL__SCALE_LOG ? 1 : 0;
        hi = scale == BL__SCALE_LOG ? 10 : 1;
    }
    if (scale == BL__SCALE_LINEAR) {
        if (lo == hi) {
            double d = lo == 0 ? 1 : fabs(lo) * 0.1;
            lo -= d;
            hi += d;
        }
        linear_ticks(a, lo, hi, true);
    } else {
        double l0 = log10(lo), l1 = log10(hi);
        if (l1 - l0 < 1e-9) {
            l0 -= 0.5;
            l1 += 0.5;
        }
        double pad = (l1 - l0) * 0.06;
        a->lo = pow(10, l0 - pad);
        a->hi = pow(10, l1 + pad);
        static const double m1[] = {1}, m2[] = {1, 2, 5}, m3[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
        if (log_ticks_in(a, m1, 1, false) >= 3)
            log_ticks_in(a, m1, 1, true);
        else if (log_ticks_in(a, m2, 3, false) >= 3)
            log_ticks_in(a, m2, 3, true);
        else if (log_ticks_in(a, m3, 9, false) >= 2)
            log_ticks_in(a, m3, 9, true);
        else
            linear_ticks(a, a->lo, a->hi, false);
    }
    if (custom) {
        int n = 0;
        for (size_t i = 0; i < ncustom; i++)
            n += custom[i] >= a->lo && custom[i] <= a->hi && usable(custom[i], scale);
        if (n >= 2 && n <= MAX_TICKS) {
            a->nt = 0;
            a->custom = true;
            for (size_t i = 0; i < ncustom; i++)
                if (custom[i] >= a->lo && custom[i] <= a->hi && usable(custom[i], scale))
                    a->ticks[a->nt++] = custom[i];
        }
    }
}

/* Position along the axis in [0, 1]. */
static double frac(const axis *a, double v)
{
    if (a->scale == BL__SCALE_LOG)
        return (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo));
    return (v - a->lo) / (a->hi - a->lo);
}

static double px(const axis *a, double v)
{
    return PL + frac(a, v) * PW;
}

static double py(const axis *a, double v)
{
    return PT + (1 - frac(a, v)) * PH;
}

static void fmt_tick(char *buf, size_t cap, const axis *a, double v)
{
    double av = fabs(v);
    if (v == 0) {
        snprintf(buf, cap, "0");
    } else if (a->custom) {
        snprintf(buf, cap, "%g", v);
    } else if (av >= 1e6 || av < 1e-4) {
        int e = (int)floor(log10(av) + 1e-9);
        double m = v / pow(10, e);
        snprintf(buf, cap, fabs(m - round(m)) < 1e-6 ? "%.0fe%d" : "%.1fe%d", m, e);
    } else {
        double ref = a->step > 0 ? a->step : av;
        int dec = ref >= 1 ? 0 : (int)ceil(-log10(ref) - 1e-9);
        snprintf(buf, cap, "%.*f", dec > 6 ? 6 : dec, v);
    }
}

/* ---- writing ------------------------------------------------------------------------------ */

/* Writes `s` cut to `max` characters (UTF-8 aware), with "…" when cut. */
static void puts_cut(FILE *out, const char *s, int max)
{
    size_t len = strlen(s), at = 0;
    int chars = 0;
    while (at < len && chars < max) {
        at++;
        while (at < len && ((unsigned char)s[at] & 0xC0) == 0x80)
            at++;
        chars++;
    }
    if (at >= len) {
        bl__html_puts(out, s);
        return;
    }
    char buf[256];
    size_t keep = at < sizeof buf - 1 ? at : sizeof buf - 1;
    while (keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80)
        keep--;
    memcpy(buf, s, keep);
    buf[keep] = '\0';
    bl__html_puts(out, buf);
    fputs("\xE2\x80\xA6", out);
}

static void write_axes(const bl__chart *c, FILE *out, const axis *ax, const axis *ay)
{
    char t[48];
    fputs("<g class=\"grid\">", out);
    for (int i = 0; i < ax->nt; i++)
        fprintf(out, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>", px(ax, ax->ticks[i]),
                PT, px(ax, ax->ticks[i]), PT + PH);
    for (int i = 0; i < ay->nt; i++)
        fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>", PL,
                py(ay, ay->ticks[i]), PL + PW, py(ay, ay->ticks[i]));
    fputs("</g>\n", out);
    fprintf(out, "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>\n", PL, PT,
            PW, PH);
    for (int i = 0; i < ax->nt; i++) {
        fmt_tick(t, sizeof t, ax, ax->ticks[i]);
        fprintf(out, "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>",
                px(ax, ax->ticks[i]), PT + PH + 15, t);
    }
    for (int i = 0; i < ay->nt; i++) {
        fmt_tick(t, sizeof t, ay, ay->ticks[i]);
        fprintf(out, "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>",
                PL - 5, py(ay, ay->ticks[i]) + 4, t);
    }
    fputs("\n", out);
    if (c->x_label) {
        fprintf(out, "<text class=\"label\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">",
                PL + PW / 2, H - 10);
        bl__html_puts(out, c->x_label);
        fputs(c->xs == BL__SCALE_LOG ? " (log)</text>\n" : "</text>\n", out);
    }
    if (c->y_label) {
        fprintf(out, "<text class=\"label\" transform=\"translate(14 %d) rotate(-90)\" "
                     "text-anchor=\"middle\">", PT + PH / 2);
        bl__html_puts(out, c->y_label);
        fputs(c->ys == BL__SCALE_LOG ? " (log)</text>\n" : "</text>\n", out);
    }
}

/* The y drawn for v: clamped to the top of the axis when the chart caps it. */
static double y_drawn(const bl__chart *c, const axis *ay, double v, bool *clipped)
{
    *clipped = usable(c->ymax, c->ys) && v > ay->hi;
    return *clipped ? ay->hi : v;
}

/* <title>step 100, loss 1.1 (batch 64)</title>: the hover text of a point, named by the axis
 * labels and the series. */
static void point_title(const bl__chart *c, FILE *out, const series *s, double x, double y,
                        bool clipped)
{
    fputs(clipped ? "<title>clipped: " : "<title>", out);
    bl__html_puts(out, c->x_label ? c->x_label : "x");
    fprintf(out, " %.6g, ", x);
    bl__html_puts(out, c->y_label ? c->y_label : "y");
    fprintf(out, " %.6g", y);
    const char *name = s->name ? s->name : s->legend;
    if (name) {
        fputs(" (", out);
        bl__html_puts(out, name);
        fputs(")", out);
    }
    fputs("</title>", out);
}

static void write_series(const bl__chart *c, FILE *out, const series *s, const axis *ax,
                         const axis *ay)
{
    const char *col = bl__chart_color(s->color);
    bool faint = s->style & BL__FAINT, clipped;
    size_t drawable = 0;
    for (size_t k = 0; k < s->n; k++)
        drawable += usable(s->x[k], c->xs) && usable(s->y[k], c->ys);
    if (s->style & BL__LINE) {
        fprintf(out, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s%s d=\"", col,
                faint ? "1" : "1.8", faint ? " stroke-opacity=\"0.45\"" : "",
                s->style & BL__DASHED ? " stroke-dasharray=\"6 4\"" : "");
        bool pen = false;
        for (size_t k = 0; k < s->n; k++) {
            if (!usable(s->x[k], c->xs) || !usable(s->y[k], c->ys)) {
                pen = false;                             /* a gap */
                continue;
            }
            fprintf(out, "%s%.1f %.1f", pen ? " L" : " M", px(ax, s->x[k]),
                    py(ay, y_drawn(c, ay, s->y[k], &clipped)));
            pen = true;
        }
        fputs("\"/>\n", out);
        if (!(s->style & BL__MARKERS) && drawable > 0) {   /* invisible points to hover */
            size_t stride = drawable / HOVER_POINTS + 1, seen = 0;
            fputs("<g class=\"hover\" fill=\"transparent\">", out);
            for (size_t k = 0; k < s->n; k++) {
                if (!usable(s->x[k], c->xs) || !usable(s->y[k], c->ys))
                    continue;
                if (seen++ % stride != 0 && seen != drawable)
                    continue;
                fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\">", px(ax, s->x[k]),
                        py(ay, y_drawn(c, ay, s->y[k], &clipped)));
                point_title(c, out, s, s->x[k], s->y[k], false);
                fputs("</circle>", out);
            }
            fputs("</g>\n", out);
        }
    }
    if (s->style & BL__MARKERS) {
        fprintf(out, "<g fill=\"%s\"%s>", col, faint ? " fill-opacity=\"0.45\"" : "");
        for (size_t k = 0; k < s->n; k++)
            if (usable(s->x[k], c->xs) && usable(s->y[k], c->ys)) {
                fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%s\">", px(ax, s->x[k]),
                        py(ay, y_drawn(c, ay, s->y[k], &clipped)), faint ? "2.5" : "3.5");
                point_title(c, out, s, s->x[k], s->y[k], false);
                fputs("</circle>", out);
            }
        fputs("</g>\n", out);
    }
    /* Points above the cap: a triangle at the top edge with the value. */
    for (size_t k = 0; k < s->n; k++) {
        if (!usable(s->x[k], c->xs) || !usable(s->y[k], c->ys))
            continue;
        y_drawn(c, ay, s->y[k], &clipped);
        if (!clipped)
            continue;
        double x = px(ax, s->x[k]), y = PT;
        fprintf(out, "<path class=\"clipped\" fill=\"%s\" d=\"M%.1f %.1f l-4 7 h8 z\">", col, x,
                y);
        point_title(c, out, s, s->x[k], s->y[k], true);
        fputs("</path>\n", out);
    }
}

static void write_bars(const bl__chart *c, FILE *out, const bars *b, const axis *ax,
                       const axis *ay)
{
    fprintf(out, "<g stroke=\"%s\" stroke-width=\"1.5\">", bl__chart_color(b->color));
    for (size_t k = 0; k < b->n; k++) {
        if (!usable(b->x[k], c->xs) || !usable(b->lo[k], c->ys) || !usable(b->hi[k], c->ys))
            continue;
        double x = px(ax, b->x[k]), y0 = py(ay, b->lo[k]), y1 = py(ay, b->hi[k]);
        fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x, y0, x, y1);
        fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x - 5, y0, x + 5,
                y0);
        fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x - 5, y1, x + 5,
                y1);
    }
    fputs("</g>\n", out);
}

/* Splits `s` into lines of at most `width` characters (UTF-8 aware), breaking after a space
 * or comma where it can; returns the byte length of the first line. */
static size_t legend_line(const char *s, int width)
{
    size_t at = 0, brk = 0;
    int chars = 0;
    while (s[at] && chars < width) {
        if (s[at] == ' ' || s[at] == ',')
            brk = at + 1;
        at++;
        while (s[at] && ((unsigned char)s[at] & 0xC0) == 0x80)
            at++;
        chars++;
    }
    if (!s[at])
        return at;
    return brk > 0 ? brk : at;
}

/* The number of lines `s` takes in the legend (at most LEGEND_LINES). */
static int legend_lines(const char *s)
{
    int n = 0;
    while (*s && n < LEGEND_LINES) {
        s += legend_line(s, LEGEND_CHARS);
        while (*s == ' ')
            s++;
        n++;
    }
    return n ? n : 1;
}

static void write_legend(const bl__chart *c, FILE *out)
{
    const int x = PL + PW + 12, step = 15, room = (H - PT) / step;
    int row = 0;
    size_t entries = 0, done = 0;
    for (size_t i = 0; i < c->ns; i++)
        entries += c->s[i].legend != NULL;
    for (size_t i = 0; i < c->ns; i++) {
        const series *s = &c->s[i];
        if (!s->legend)
            continue;
        int lines = legend_lines(s->legend);
        if (row + lines > room - 1 && done + 1 < entries) {
            fprintf(out, "<text class=\"legend\" x=\"%d\" y=\"%d\">+%zu more</text>\n", x,
                    PT + 4 + row * step, entries - done);
            break;
        }
        int y = PT + row * step;
        const char *col = bl__chart_color(s->color);
        fputs("<g><title>", out);
        bl__html_puts(out, s->legend);
        fputs("</title>", out);
        if (s->style & BL__LINE)
            fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
                         "stroke-width=\"2\"%s/>", x, y, x + 18, y, col,
                    s->style & BL__DASHED ? " stroke-dasharray=\"5 3\"" : "");
        if (s->style & BL__MARKERS)
            fprintf(out, "<circle cx=\"%d\" cy=\"%d\" r=\"3.5\" fill=\"%s\"/>", x + 9, y, col);
        fprintf(out, "<text class=\"legend\" x=\"%d\" y=\"%d\">", x + 24, y + 4);
        const char *p = s->legend;
        for (int l = 0; *p && l < lines; l++) {
            size_t len = legend_line(p, LEGEND_CHARS);
            fprintf(out, "<tspan x=\"%d\" dy=\"%s\">", x + 24, l ? "1.2em" : "0");
            if (l == lines - 1 && p[len]) {
                puts_cut(out, p, LEGEND_CHARS);            /* longer than three lines */
                fputs("</tspan>", out);
                break;
            }
            char buf[256];
            size_t keep = len < sizeof buf ? len : sizeof buf - 1;
            memcpy(buf, p, keep);
            buf[keep] = '\0';
            bl__html_puts(out, buf);
            fputs("</tspan>", out);
            p += len;
            while (*p == ' ')
                p++;
        }
        fputs("</text></g>\n", out);
        row += lines;
        done++;
    }
}

int bl__chart_write(const bl__chart *c, FILE *out)
{
    if (!c || c->nomem)
        return BL_ENOMEM;
    fprintf(out, "<svg class=\"chart\" id=\"%s\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
                 "role=\"img\">\n<title>", c->id, W, H, W, H);
    bl__html_puts(out, c->title ? c->title : "chart");
    fputs("</title>\n", out);
    if (c->title) {
        fprintf(out, "<text class=\"title\" x=\"%d\" y=\"20\" text-anchor=\"middle\">",
                PL + PW / 2);
        bl__html_puts(out, c->title);
        fputs("</text>\n", out);
    }
    double x0, x1, y0, y1;
    data_range(c, &x0, &x1, &y0, &y1);
    if (bl__chart_drawable(c) == 0) {
        fprintf(out, "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>"
                     "<text class=\"label\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">no data"
                     "</text>\n</svg>\n", PL, PT, PW, PH, PL + PW / 2, PT + PH / 2);
        return BL_OK;
    }
    axis ax, ay;
    axis_make(&ax, c->xs, x0, x1, c->xt, c->nxt);
    axis_make(&ay, c->ys, y0, y1, NULL, 0);
    fprintf(out, "<defs><clipPath id=\"%s-clip\"><rect x=\"%d\" y=\"%d\" width=\"%d\" "
                 "height=\"%d\"/></clipPath></defs>\n", c->id, PL, PT, PW, PH);
    write_axes(c, out, &ax, &ay);
    fprintf(out, "<g clip-path=\"url(#%s-clip)\">\n", c->id);
    for (size_t i = 0; i < c->nb; i++)
        write_bars(c, out, &c->b[i], &ax, &ay);
    for (size_t i = 0; i < c->ns; i++)      /* faint series first: summaries stay on top */
        if (c->s[i].style & BL__FAINT)
            write_series(c, out, &c->s[i], &ax, &ay);
    for (size_t i = 0; i < c->ns; i++)
        if (!(c->s[i].style & BL__FAINT))
            write_series(c, out, &c->s[i], &ax, &ay);
    for (size_t i = 0; i < c->nm; i++) {
        if (!usable(c->m[i].x, c->xs))
            continue;
        double x = px(&ax, c->m[i].x);
        fprintf(out, "<line class=\"mark\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>", x,
                PT, x, PT + PH);
        if (c->m[i].label) {
            bool right = x > PL + PW * 0.7;
            fprintf(out, "<text class=\"marklabel\" x=\"%.1f\" y=\"%d\" text-anchor=\"%s\">",
                    right ? x - 4 : x + 4, PT + 14, right ? "end" : "start");
            bl__html_puts(out, c->m[i].label);
            fputs("</text>", out);
        }
        fputs("\n", out);
    }
    fputs("</g>\n", out);
    write_legend(c, out);
    fputs("</svg>\n", out);
    return BL_OK;
}
