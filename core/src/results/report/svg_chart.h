/* Internal: a small SVG chart writer for the HTML report (report.c).
 *
 * A chart is a plot area with two axes (each linear or logarithmic, with "nice" ticks), a
 * title, axis labels and a legend on the right. It holds series (lines and/or markers),
 * vertical min–max bars and vertical marker lines; bl__chart_write writes it as one inline
 * <svg> element (no xmlns, no external resource: the HTML parser puts it in the SVG namespace).
 *
 * Values that are not finite — and values ≤ 0 on a logarithmic axis — are gaps: a line breaks
 * there and no marker is drawn. Every string is copied and HTML-escaped when written.
 *
 * Every marker, and a sample of at most HOVER_POINTS points of each line, carries an SVG
 * <title> with its values (shown on hover); legend entries wrap onto up to three lines.
 *
 * Errors are sticky: an add that runs out of memory marks the chart, and bl__chart_write then
 * writes nothing and returns BL_ENOMEM, so a caller may add everything and check once.
 */
#ifndef BATCHLAB_SVG_CHART_H
#define BATCHLAB_SVG_CHART_H

#include <stddef.h>
#include <stdio.h>

typedef enum { BL__SCALE_LINEAR = 0, BL__SCALE_LOG = 1 } bl__scale;

/* Series styles (combine with |). */
enum {
    BL__LINE = 1u << 0,    /* a polyline through the points */
    BL__MARKERS = 1u << 1, /* a dot at each point */
    BL__DASHED = 1u << 2,  /* the line dashed (reference lines, fits) */
    BL__FAINT = 1u << 3    /* drawn thin and translucent (individual runs behind a summary) */
};

typedef struct bl__chart bl__chart;

/* A new empty chart, or NULL when memory is exhausted. `id` (letters, digits, '-') must be
 * unique in the page: it names the clip path. Strings are plain text; NULL means none. */
bl__chart *bl__chart_new(const char *id, const char *title, const char *x_label,
                         const char *y_label, bl__scale x_scale, bl__scale y_scale);
void bl__chart_free(bl__chart *c);

/* Adds a series of n points (copied). `legend` NULL: no legend entry (e.g. the second seed of
 * a batch size already in the legend). `color` indexes bl__chart_color. */
void bl__chart_series(bl__chart *c, const char *legend, int color, unsigned style,
                      const double *x, const double *y, size_t n);
/* Adds vertical bars from lo[i] to hi[i] at x[i] (a spread over seeds). */
void bl__chart_bars(bl__chart *c, int color, const double *x, const double *lo,
                    const double *hi, size_t n);
/* Adds a dashed vertical line at x with a label at its top (e.g. "B_crit ≈ 64"); the x range
 * grows to include it. */
void bl__chart_xmark(bl__chart *c, double x, const char *label);
/* Uses these x ticks (e.g. the batch sizes measured) instead of computed ones; those outside
 * the data range are dropped, and computed ticks are used when fewer than two remain. */
void bl__chart_xticks(bl__chart *c, const double *ticks, size_t n);

/* Names the last series added for the hover text of its points ("run 3 · batch 64"); without
 * a name the legend is used. */
void bl__chart_name_last(bl__chart *c, const char *name);
/* Caps the y axis at `ymax`: values above it are drawn at the top edge and marked as clipped
 * (a triangle whose hover text gives the value), so one spike does not flatten the rest. */
void bl__chart_ymax(bl__chart *c, double ymax);

/* The number of points that will be drawn (finite, and > 0 on log axes), over all series. */
size_t bl__chart_drawable(const bl__chart *c);

/* Writes the chart as an <svg> element. BL_OK, or BL_ENOMEM when an add failed. Write errors
 * of `out` are left to the caller (ferror). */
int bl__chart_write(const bl__chart *c, FILE *out);

/* The colour of series index i as "#rrggbb" (a ten-colour palette, repeating). */
const char *bl__chart_color(int i);

/* Writes `s` with &, <, >, " and ' escaped as HTML character references; NULL writes
 * nothing. Safe in text and in quoted attribute values. */
void bl__html_puts(FILE *out, const char *s);

#endif
