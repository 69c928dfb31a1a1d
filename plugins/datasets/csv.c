/* Dataset plugin "csv": numeric features and a label from a CSV file.
 *
 * Format: fields separated by `separator` (default ","; "tab" or "\t" for tabs), records
 * ended by LF, CRLF or CR. A field may be quoted with '"' (a doubled "" inside is a quote; a
 * quoted field may span lines; spaces may surround the quotes). A UTF-8 byte-order mark
 * is skipped; blank lines are skipped; every other row must have as many fields as the first.
 * Feature cells must be finite numbers (strtod syntax, surrounding spaces allowed); an empty
 * cell is an error (no missing values).
 *
 * Header: "yes", "no" or "auto" — the first row is a header when one of its cells is not a
 * number while the cell below it is (so a text label column alone does not make a header).
 *
 * Label: `label` names a header column, or is a 0-based column index (negative counts from the
 * end: -1 = last); empty = the last column. Every other column is a feature; samples are
 * [features].
 *
 * task = "classification": the distinct label values, sorted, become classes 0..K-1 (numeric
 * order when every label is a number — so labels 0..K-1 keep their values, and "1","2","3"
 * become 0,1,2 — and byte order of the text otherwise); the class names are the values' text.
 * At least two classes are needed. task = "regression": the label must be numeric; targets are
 * one float, never standardized.
 *
 * standardize = true: each feature becomes (x - mean)/std with the mean and std of the
 * training split (validation excluded; std 1 for a constant feature), for every split.
 * test_file (optional) is a second file with the same columns (and header rule) → the test
 * split; its labels must be among the classes of `file`.
 *
 * Errors name the file and line (and column, 1-based, with its header name) of the problem.
 * A NUL byte inside a cell is an error (it would cut the value short). The file must be a
 * regular file (a FIFO or a device is refused when opened) and is read up to its size.
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/types.h>

#include "batchlab/plugin_sdk.h"
#include "common.h"

static const bl_option csv_options[] = {
    {"file", BL_TYPE_STRING, NULL, "CSV file with the training (and validation) samples"},
    {"label", BL_TYPE_STRING, "",
     "label column: header name or 0-based index (negative from the end); empty = last"},
    {"header", BL_TYPE_STRING, "auto",
     "first row is a header: yes, no, or auto (it has a non-number above a number)"},
    {"task", BL_TYPE_STRING, "classification",
     "classification (sorted distinct labels → classes) or regression (numeric target)"},
    {"standardize", BL_TYPE_BOOL, "true",
     "scale each feature to mean 0, std 1 using training-split statistics"},
    {"separator", BL_TYPE_STRING, ",", "field separator: one character, or tab"},
    {"validation", BL_TYPE_NUMBER, "0", BL_DS_HELP_VALIDATION},
    {"seed", BL_TYPE_INT, "1", BL_DS_HELP_SEED},
    {"test_file", BL_TYPE_STRING, "", "optional CSV file with the same columns: the test split"},
    {NULL, 0, NULL, NULL}};

/* ---- tokenizing -------------------------------------------------------------------------- */

/* A file cut into rows of NUL-terminated cells, decoded in place in buf. */
typedef struct csv_table {
    const char *path;
    char *buf;          /* file contents (+1 byte), cells decoded in place */
    size_t *cell;       /* offset in buf of each cell's text */
    size_t n_cells, cap_cells;
    size_t *row_start;  /* first cell of each row; n_rows + 1 entries once done */
    long *row_line;     /* 1-based line on which each row starts */
    size_t n_rows, cap_rows;
    size_t cols;        /* fields of the first row */
} csv_table;

static void table_free(csv_table *t)
{
    free(t->buf);
    free(t->cell);
    free(t->row_start);
    free(t->row_line);
    memset(t, 0, sizeof *t);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

static const char *cell_text(const csv_table *t, size_t row, size_t col)
{
    return t->buf + t->cell[t->row_start[row] + col];
}

/* Reads the whole file: a regular file only (a FIFO or a device such as /dev/zero is refused
 * when opened, never read until memory runs out), and no more than the size fstat gave when it
 * was opened (a file that grows meanwhile is read as it was). */
static int read_file(bl_ctx *ctx, const char *path, char **out, size_t *len)
{
    int fd;
    int64_t size;
    int rc = bl_ds_open_regular(ctx, path, &fd, &size);
    if (rc != BL_OK)
        return rc;
    if ((uint64_t)size >= SIZE_MAX / 2) {
        close(fd);
        return bl_error(ctx, BL_ENOMEM, "%s: file too large (%lld bytes)", path,
                        (long long)size);
    }
    char *buf = malloc((size_t)size + 1); /* the text and its NUL */
    if (!buf) {
        close(fd);
        return bl_error(ctx, BL_ENOMEM, "%s: no memory to read the file (%lld bytes)", path,
                        (long long)size);
    }
    size_t n = 0;
    while (n < (size_t)size) {
        ssize_t r = read(fd, buf + n, (size_t)size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return bl_error(ctx, BL_EIO, "%s: read error at byte offset %zu: %s", path, n,
                            strerror(e));
        }
        if (r == 0)
            break; /* the file shrank: what is there */
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return BL_OK;
}

/* BL_EFORMAT for a NUL byte at p (inside the cell `col` of the row on `line`): a NUL would end
 * the cell's text early and the rest of the value would be lost silently. */
static int nul_error(bl_ctx *ctx, const csv_table *t, const char *p, long line, size_t col)
{
    return bl_error(ctx, BL_EFORMAT,
                    "%s: line %ld, column %zu: a NUL byte inside a cell (byte offset %zu); "
                    "expected text (is this a binary file or a UTF-16 text?)",
                    t->path, line, col, (size_t)(p - t->buf));
}

static int blank(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return *s == '\0';
}

/* Cuts the file into rows and cells and checks that every row has the first row's width. */
static int tokenize(bl_ctx *ctx, const char *path, char sep, csv_table *t)
{
    memset(t, 0, sizeof *t);
    t->path = path;
    size_t len = 0;
    int rc = read_file(ctx, path, &t->buf, &len);
    if (rc != BL_OK)
        return rc;
    char *p = t->buf, *end = t->buf + len;
    if (len >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
        (unsigned char)p[2] == 0xBF)
        p += 3;
    long line = 1;
    while (p < end) {
        size_t first = t->n_cells;
        long row_line = line;
        for (;;) {
            char *q = p; /* spaces before an opening quote are allowed */
            while (q < end && (*q == ' ' || *q == '\t') && *q != sep)
                q++;
            if (q < end && *q == '"')
                p = q;
            char *w = p;
            size_t start = (size_t)(p - t->buf);
            if (p < end && *p == '"') {
                long qline = line;
                p++;
                for (;;) {
                    if (p >= end) {
                        rc = bl_error(ctx, BL_EFORMAT,
                                      "%s: line %ld, column %zu: quoted field never "
                                      "closed: expected a '\"' before the end of the file",
                                      path, qline, t->n_cells - first + 1);
                        goto fail;
                    }
                    if (*p == '"') {
                        if (p + 1 < end && p[1] == '"') {
                            *w++ = '"';
                            p += 2;
                            continue;
                        }
                        p++;
                        break;
                    }
                    if (*p == '\n' || (*p == '\r' && !(p + 1 < end && p[1] == '\n')))
                        line++;
                    if (*p == '\0') {
                        rc = nul_error(ctx, t, p, line, t->n_cells - first + 1);
                        goto fail;
                    }
                    *w++ = *p++;
                }
                while (p < end && (*p == ' ' || *p == '\t') && *p != sep)
                    p++;
                if (p < end && *p != sep && *p != '\n' && *p != '\r') {
                    rc = bl_error(ctx, BL_EFORMAT,
                                  "%s: line %ld, column %zu: unexpected '%c' after a "
                                  "closing quote: expected the separator or the end of the "
                                  "line",
                                  path, line, t->n_cells - first + 1,
                                  isprint((unsigned char)*p) ? *p : '?');
                    goto fail;
                }
            } else {
                while (p < end && *p != sep && *p != '\n' && *p != '\r' && *p != '\0')
                    p++;
                if (p < end && *p == '\0') {
                    rc = nul_error(ctx, t, p, line, t->n_cells - first + 1);
                    goto fail;
                }
                w = p;
            }
            char term = p < end ? *p : '\0';
            *w = '\0'; /* w <= p <= end, and buf has a byte at end */
            if (grow((void **)&t->cell, &t->cap_cells, t->n_cells + 1, sizeof *t->cell))
                goto nomem;
            t->cell[t->n_cells++] = start; /* a quoted cell is decoded from its quote on */
            if (p >= end)
                break;
            if (term == sep) {
                p++;
                continue;
            }
            if (term == '\r' && p + 1 < end && p[1] == '\n')
                p++;
            p++;
            line++;
            break;
        }
        size_t n = t->n_cells - first;
        if (n == 1 && blank(t->buf + t->cell[first])) {
            t->n_cells = first; /* a blank line */
            continue;
        }
        if (t->n_rows + 2 > t->cap_rows) {
            size_t cap = t->cap_rows;
            if (grow((void **)&t->row_start, &cap, t->n_rows + 2, sizeof *t->row_start))
                goto nomem;
            long *lines = realloc(t->row_line, cap * sizeof *lines);
            if (!lines)
                goto nomem;
            t->row_line = lines;
            t->cap_rows = cap;
        }
        if (t->n_rows == 0)
            t->cols = n;
        else if (n != t->cols) {
            rc = bl_error(ctx, BL_EFORMAT,
                          "%s: line %ld: expected %zu columns (as in line %ld), found %zu",
                          path, row_line, t->cols, t->row_line[0], n);
            goto fail;
        }
        t->row_start[t->n_rows] = first;
        t->row_line[t->n_rows] = row_line;
        t->n_rows++;
    }
    if (t->n_rows == 0) {
        rc = bl_error(ctx, BL_EFORMAT, "%s: empty: expected rows of comma-separated "
                      "values", path);
        goto fail;
    }
    t->row_start[t->n_rows] = t->n_cells;
    return BL_OK;
nomem:
    rc = bl_error(ctx, BL_ENOMEM, "%s: no memory for the table", path);
fail:
    table_free(t);
    return rc;
}

/* ---- cells --------------------------------------------------------------------------------- */

/* A finite number with optional surrounding spaces. */
static int parse_number(const char *s, double *out)
{
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s)
        return 0;
    char *e;
    double v = strtod(s, &e);
    if (e == s)
        return 0;
    while (*e == ' ' || *e == '\t')
        e++;
    if (*e || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

/* A cell's text without surrounding spaces, copied into buf (cut at cap - 1). */
static const char *trimmed(const char *s, char *buf, size_t cap)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return buf;
}

/* The trimmed text of a cell, in place: the cell is shortened and its start advanced. */
static char *trim_cell(csv_table *t, size_t row, size_t col)
{
    size_t *off = &t->cell[t->row_start[row] + col];
    char *s = t->buf + *off;
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    *off = (size_t)(s - t->buf);
    return s;
}

/* ---- the dataset ----------------------------------------------------------------------------- */

typedef enum { TASK_CLASSIFICATION, TASK_REGRESSION } csv_task;

typedef struct csv_ds {
    float *x[2];                  /* [0] file, [1] test_file: rows × dim raw features */
    int32_t *cls[2];              /* classification labels of those rows */
    float *target[2];             /* regression targets of those rows */
    int64_t rows[2];
    int64_t *map[BL_SPLIT_COUNT]; /* split position → row; NULL = identity */
    int64_t count[BL_SPLIT_COUNT];
    int64_t dim, classes;
    float *shift, *scale;         /* per feature: x' = (x - shift) * scale */
    char **names;                 /* classes names (classification) */
} csv_ds;

static void csv_close(void *handle)
{
    csv_ds *d = handle;
    if (!d)
        return;
    for (int i = 0; i < 2; i++) {
        free(d->x[i]);
        free(d->cls[i]);
        free(d->target[i]);
    }
    for (int s = 0; s < BL_SPLIT_COUNT; s++)
        free(d->map[s]);
    free(d->shift);
    free(d->scale);
    if (d->names)
        for (int64_t c = 0; c < d->classes; c++)
            free(d->names[c]);
    free(d->names);
    free(d);
}

/* Parsed, file-independent choices. */
typedef struct csv_spec {
    char sep;
    const char *header;   /* "auto", "yes", "no" */
    const char *label;
    csv_task task;
    size_t label_col;     /* resolved on the first file */
} csv_spec;

static int decide_header(bl_ctx *ctx, const csv_spec *spec, const csv_table *t, int *has)
{
    if (strcmp(spec->header, "yes") == 0)
        *has = 1;
    else if (strcmp(spec->header, "no") == 0)
        *has = 0;
    else if (strcmp(spec->header, "auto") == 0) {
        *has = 0;
        double v;
        for (size_t c = 0; c < t->cols && !*has; c++)
            if (!parse_number(cell_text(t, 0, c), &v) &&
                (t->n_rows < 2 || parse_number(cell_text(t, 1, c), &v)))
                *has = 1;
    } else
        return bl_error(ctx, BL_EOPTION, "header = '%s': expected auto, yes or no",
                        spec->header);
    if (*has && t->n_rows < 2)
        return bl_error(ctx, BL_EFORMAT, "%s: line %ld: only a header row; expected data "
                        "rows after it", t->path, t->row_line[0]);
    return BL_OK;
}

static int resolve_label(bl_ctx *ctx, csv_spec *spec, csv_table *t, int has_header)
{
    size_t cols = t->cols;
    if (cols < 2)
        return bl_error(ctx, BL_EFORMAT, "%s: line %ld: %zu column: expected at least one "
                        "feature column and the label column", t->path, t->row_line[0], cols);
    const char *l = spec->label;
    if (!l || !*l) {
        spec->label_col = cols - 1;
        return BL_OK;
    }
    if (has_header)
        for (size_t c = 0; c < cols; c++)
            if (strcmp(trim_cell(t, 0, c), l) == 0) {
                spec->label_col = c;
                return BL_OK;
            }
    char *e;
    errno = 0;
    long long i = strtoll(l, &e, 10);
    if (*l && !*e && errno == 0) {
        if (i < 0)
            i += (long long)cols;
        if (i >= 0 && i < (long long)cols) {
            spec->label_col = (size_t)i;
            return BL_OK;
        }
        return bl_error(ctx, BL_EOPTION, "label = %s: %s has %zu columns (indices 0..%zu, "
                        "or -%zu..-1 from the end)", l, t->path, cols, cols - 1, cols);
    }
    if (!has_header)
        return bl_error(ctx, BL_EOPTION, "label = '%s': %s has no header row, so the label "
                        "must be a column index (0..%zu)", l, t->path, cols - 1);
    char list[512];
    size_t used = 0;
    list[0] = '\0';
    for (size_t c = 0; c < cols && used + 1 < sizeof list; c++) {
        int w = snprintf(list + used, sizeof list - used, "%s%s", c ? ", " : "",
                         cell_text(t, 0, c));
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return bl_error(ctx, BL_EOPTION, "label = '%s': no such column in %s (columns: %s)", l,
                    t->path, list);
}

/* Message fragment naming a column: "column 3 ('width')" or "column 3". */
static const char *column_name(const csv_table *t, int has_header, size_t c, char *buf,
                               size_t cap)
{
    char name[48];
    if (has_header)
        snprintf(buf, cap, "column %zu ('%s')", c + 1,
                 trimmed(cell_text(t, 0, c), name, sizeof name));
    else
        snprintf(buf, cap, "column %zu", c + 1);
    return buf;
}

/* Features of every data row of t into *x (rows × dim floats). */
static int parse_features(bl_ctx *ctx, const csv_spec *spec, csv_table *t, int has_header,
                          float **x, int64_t *rows)
{
    size_t first = has_header ? 1 : 0;
    size_t n = t->n_rows - first, dim = t->cols - 1;
    float *out = malloc((n ? n : 1) * dim * sizeof *out);
    if (!out)
        return bl_error(ctx, BL_ENOMEM, "%s: no memory for %zu×%zu features", t->path, n,
                        dim);
    for (size_t r = 0; r < n; r++) {
        float *o = out + r * dim;
        for (size_t c = 0; c < t->cols; c++) {
            if (c == spec->label_col)
                continue;
            double v;
            const char *s = cell_text(t, first + r, c);
            if (!parse_number(s, &v)) {
                char col[96], shown[48];
                bl_error(ctx, BL_EFORMAT, "%s: line %ld, %s: expected a number, found '%s'",
                         t->path, t->row_line[first + r],
                         column_name(t, has_header, c, col, sizeof col),
                         trimmed(s, shown, sizeof shown));
                free(out);
                return BL_EFORMAT;
            }
            *o++ = (float)v;
        }
    }
    *x = out;
    *rows = (int64_t)n;
    return BL_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Builds the class list from the training file's labels (sorted distinct values) and maps
 * the labels of both files (tables[1] may be NULL) to class indices. */
static int parse_classes(bl_ctx *ctx, csv_ds *d, const csv_spec *spec, csv_table *tables[2],
                         const int has_header[2])
{
    /* Numeric or text classes: decided by the training file alone. */
    csv_table *t = tables[0];
    int numeric = 1;
    for (size_t r = has_header[0] ? 1 : 0; r < t->n_rows && numeric; r++) {
        double v;
        numeric = parse_number(cell_text(t, r, spec->label_col), &v);
    }
    size_t first = has_header[0] ? 1 : 0, n = t->n_rows - first;
    double *vals = NULL;
    char **strs = NULL;
    int64_t k = 0;
    int rc = BL_OK;
    if (numeric) {
        vals = malloc(n * sizeof *vals);
        if (!vals)
            goto nomem;
        for (size_t r = 0; r < n; r++)
            parse_number(cell_text(t, first + r, spec->label_col), &vals[r]);
        qsort(vals, n, sizeof *vals, cmp_double);
        for (size_t r = 0; r < n; r++)
            if (k == 0 || vals[r] != vals[k - 1])
                vals[k++] = vals[r];
    } else {
        strs = malloc(n * sizeof *strs);
        if (!strs)
            goto nomem;
        for (size_t r = 0; r < n; r++)
            strs[r] = trim_cell(t, first + r, spec->label_col);
        qsort(strs, n, sizeof *strs, cmp_str);
        for (size_t r = 0; r < n; r++)
            if (k == 0 || strcmp(strs[r], strs[k - 1]) != 0)
                strs[k++] = strs[r];
    }
    if (k < 2) {
        char col[96], shown[48];
        rc = bl_error(ctx, BL_EFORMAT, "%s: %s: classification needs at least two "
                      "distinct labels, found only '%s' (use task = regression for numbers)",
                      t->path, column_name(t, has_header[0], spec->label_col, col, sizeof col),
                      trimmed(cell_text(t, first, spec->label_col), shown, sizeof shown));
        goto done;
    }
    if (k > INT32_MAX) {
        rc = bl_error(ctx, BL_EFORMAT, "%s: too many classes (%lld)", t->path,
                      (long long)k);
        goto done;
    }
    d->names = calloc((size_t)k, sizeof *d->names);
    if (!d->names)
        goto nomem;
    d->classes = k;
    for (int64_t c = 0; c < k; c++) {
        char num[32];
        const char *s = strs ? strs[c] : num;
        if (!strs)
            snprintf(num, sizeof num, "%.15g", vals[c]);
        size_t l = strlen(s);
        d->names[c] = malloc(l + 1);
        if (!d->names[c])
            goto nomem;
        memcpy(d->names[c], s, l + 1);
    }
    for (int f = 0; f < 2; f++) {
        csv_table *tf = tables[f];
        if (!tf)
            continue;
        size_t fr = has_header[f] ? 1 : 0, rows = tf->n_rows - fr;
        d->cls[f] = malloc((rows ? rows : 1) * sizeof *d->cls[f]);
        if (!d->cls[f])
            goto nomem;
        for (size_t r = 0; r < rows; r++) {
            const void *hit;
            double v;
            const char *s;
            if (vals) {
                hit = NULL;
                if (parse_number(cell_text(tf, fr + r, spec->label_col), &v))
                    hit = bsearch(&v, vals, (size_t)k, sizeof *vals, cmp_double);
                if (hit)
                    d->cls[f][r] = (int32_t)((const double *)hit - vals);
            } else {
                s = trim_cell(tf, fr + r, spec->label_col);
                hit = bsearch(&s, strs, (size_t)k, sizeof *strs, cmp_str);
                if (hit)
                    d->cls[f][r] = (int32_t)((char *const *)hit - strs);
            }
            if (!hit) {
                char shown[48];
                rc = bl_error(ctx, BL_EFORMAT, "%s: line %ld: label '%s' is not one of "
                              "the %lld classes of %s", tf->path, tf->row_line[fr + r],
                              trimmed(cell_text(tf, fr + r, spec->label_col), shown,
                                      sizeof shown),
                              (long long)k, t->path);
                goto done;
            }
        }
    }
    goto done;
nomem:
    rc = bl_error(ctx, BL_ENOMEM, "no memory for the labels");
done:
    free(vals);
    free(strs);
    return rc;
}

static int parse_targets(bl_ctx *ctx, const csv_spec *spec, csv_table *t, int has_header,
                         float **out)
{
    size_t first = has_header ? 1 : 0, n = t->n_rows - first;
    float *y = malloc((n ? n : 1) * sizeof *y);
    if (!y)
        return bl_error(ctx, BL_ENOMEM, "no memory for the targets");
    for (size_t r = 0; r < n; r++) {
        double v;
        const char *s = cell_text(t, first + r, spec->label_col);
        if (!parse_number(s, &v)) {
            char col[96], shown[48];
            bl_error(ctx, BL_EFORMAT, "%s: line %ld, %s: expected a number (regression "
                     "target), found '%s'", t->path, t->row_line[first + r],
                     column_name(t, has_header, spec->label_col, col, sizeof col),
                     trimmed(s, shown, sizeof shown));
            free(y);
            return BL_EFORMAT;
        }
        y[r] = (float)v;
    }
    *out = y;
    return BL_OK;
}

static int parse_separator(bl_ctx *ctx, const char *s, char *sep)
{
    if (s && (strcmp(s, "tab") == 0 || strcmp(s, "\\t") == 0 || strcmp(s, "\t") == 0)) {
        *sep = '\t';
        return BL_OK;
    }
    if (!s || strlen(s) != 1 || s[0] == '"' || s[0] == '\n' || s[0] == '\r')
        return bl_error(ctx, BL_EOPTION, "separator = '%s': expected one character (not "
                        "a quote or a line break), or tab", s ? s : "");
    *sep = s[0];
    return BL_OK;
}

static void standardize(csv_ds *d, int on)
{
    for (int64_t j = 0; j < d->dim; j++) {
        d->shift[j] = 0.0f;
        d->scale[j] = 1.0f;
    }
    int64_t n = d->count[BL_SPLIT_TRAIN];
    if (!on || n == 0)
        return;
    for (int64_t j = 0; j < d->dim; j++) {
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++) {
            double v = d->x[0][bl_ds_row(d->map[BL_SPLIT_TRAIN], i) * d->dim + j];
            s += v;
        }
        double mean = s / (double)n;
        for (int64_t i = 0; i < n; i++) {
            double v = d->x[0][bl_ds_row(d->map[BL_SPLIT_TRAIN], i) * d->dim + j] - mean;
            s2 += v * v;
        }
        double std = sqrt(s2 / (double)n);
        d->shift[j] = (float)mean;
        d->scale[j] = std > 1e-12 * (fabs(mean) + 1.0) ? (float)(1.0 / std) : 1.0f;
    }
}

static int csv_open(bl_ctx *ctx, const bl_config *opts, void **handle)
{
    csv_spec spec;
    memset(&spec, 0, sizeof spec);
    const char *file = bl_config_string(opts, "file");
    const char *test_file = bl_config_string(opts, "test_file");
    const char *task = bl_config_string(opts, "task");
    spec.header = bl_config_string(opts, "header");
    spec.label = bl_config_string(opts, "label");
    if (!spec.header)
        spec.header = "auto";
    int rc = parse_separator(ctx, bl_config_string(opts, "separator"), &spec.sep);
    if (rc != BL_OK)
        return rc;
    if (task && strcmp(task, "classification") == 0)
        spec.task = TASK_CLASSIFICATION;
    else if (task && strcmp(task, "regression") == 0)
        spec.task = TASK_REGRESSION;
    else
        return bl_error(ctx, BL_EOPTION, "task = '%s': expected classification or "
                        "regression", task ? task : "");
    if (!file || !*file)
        return bl_error(ctx, BL_EOPTION, "file is empty: give the path of a CSV file");

    csv_table tab[2];
    memset(tab, 0, sizeof tab);
    csv_table *tables[2] = {NULL, NULL};
    int has_header[2] = {0, 0};
    csv_ds *d = calloc(1, sizeof *d);
    if (!d)
        return bl_error(ctx, BL_ENOMEM, "no memory");
    const char *paths[2] = {file, test_file && *test_file ? test_file : NULL};
    for (int f = 0; f < 2; f++) {
        if (!paths[f])
            continue;
        rc = tokenize(ctx, paths[f], spec.sep, &tab[f]);
        if (rc != BL_OK)
            goto fail;
        tables[f] = &tab[f];
        rc = decide_header(ctx, &spec, tables[f], &has_header[f]);
        if (rc != BL_OK)
            goto fail;
        if (f == 0) {
            rc = resolve_label(ctx, &spec, tables[0], has_header[0]);
            if (rc != BL_OK)
                goto fail;
        } else if (tab[1].cols != tab[0].cols) {
            rc = bl_error(ctx, BL_EFORMAT, "%s: line %ld: expected %zu columns (as in %s), "
                          "found %zu", tab[1].path, tab[1].row_line[0], tab[0].cols,
                          tab[0].path, tab[1].cols);
            goto fail;
        }
        rc = parse_features(ctx, &spec, tables[f], has_header[f], &d->x[f], &d->rows[f]);
        if (rc != BL_OK)
            goto fail;
        if (spec.task == TASK_REGRESSION) {
            rc = parse_targets(ctx, &spec, tables[f], has_header[f], &d->target[f]);
            if (rc != BL_OK)
                goto fail;
        }
    }
    if (spec.task == TASK_CLASSIFICATION) {
        rc = parse_classes(ctx, d, &spec, tables, has_header);
        if (rc != BL_OK)
            goto fail;
    }
    d->dim = (int64_t)tab[0].cols - 1;
    table_free(&tab[0]);
    table_free(&tab[1]);

    int64_t n_val;
    rc = bl_ds_validation_count(ctx, bl_config_number(opts, "validation"), d->rows[0],
                                &n_val);
    if (rc == BL_OK)
        rc = bl_ds_split(ctx, d->rows[0], n_val, (uint64_t)bl_config_int(opts, "seed"),
                         &d->map[BL_SPLIT_TRAIN], &d->map[BL_SPLIT_VALIDATION]);
    if (rc != BL_OK)
        goto fail;
    d->count[BL_SPLIT_TRAIN] = d->rows[0] - n_val;
    d->count[BL_SPLIT_VALIDATION] = n_val;
    d->count[BL_SPLIT_TEST] = d->rows[1];
    d->shift = malloc((size_t)d->dim * sizeof *d->shift);
    d->scale = malloc((size_t)d->dim * sizeof *d->scale);
    if (!d->shift || !d->scale) {
        rc = bl_error(ctx, BL_ENOMEM, "no memory");
        goto fail;
    }
    standardize(d, bl_config_bool(opts, "standardize"));
    *handle = d;
    return BL_OK;

fail:
    table_free(&tab[0]);
    table_free(&tab[1]);
    csv_close(d);
    return rc;
}

static void csv_info(void *handle, bl_data_info *out)
{
    const csv_ds *d = handle;
    bl_data_info_reset(out);
    out->sample.ndim = 1;
    out->sample.dim[0] = d->dim;
    out->classes = d->names ? d->classes : 0;
    out->target_dim = 1;
    for (int s = 0; s < BL_SPLIT_COUNT; s++)
        out->count[s] = d->count[s];
    out->class_names = d->names ? (const char *const *)d->names : NULL;
}

static int csv_gather(void *handle, bl_ctx *ctx, bl_split split, const int64_t *idx, int64_t n,
                      float *x, void *y)
{
    const csv_ds *d = handle;
    if ((unsigned)split >= BL_SPLIT_COUNT)
        return bl_error(ctx, BL_EINVAL, "unknown split %d", (int)split);
    int src = split == BL_SPLIT_TEST;
    int64_t dim = d->dim;
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= d->count[split])
            return bl_error(ctx, BL_EINVAL, "sample %lld out of range for the %s split of "
                            "%lld", (long long)idx[i], bl_ds_split_name(split),
                            (long long)d->count[split]);
        int64_t row = bl_ds_row(d->map[split], idx[i]);
        if (x) {
            const float *p = d->x[src] + row * dim;
            float *o = x + i * dim;
            for (int64_t j = 0; j < dim; j++)
                o[j] = (p[j] - d->shift[j]) * d->scale[j];
        }
        if (y) {
            if (d->names)
                ((int32_t *)y)[i] = d->cls[src][row];
            else
                ((float *)y)[i] = d->target[src][row];
        }
    }
    return BL_OK;
}

static const bl_dataset_ops csv_ops = {sizeof(bl_dataset_ops), csv_open, csv_close, csv_info,
                                       csv_gather, NULL, NULL};

static const bl_plugin csv_plugin = {
    BL_PLUGIN_ABI, sizeof(bl_plugin), BL_PLUGIN_DATASET, "csv", "1.0",
    "numeric features and a label (class or regression target) from a CSV file",
    csv_options, &csv_ops};

BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index);
BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index)
{
    return index == 0 ? &csv_plugin : NULL;
}
