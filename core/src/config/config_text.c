/* Plugin options, part 2: option text — parsing "0.5", "yes", "{256, 128}" into typed values,
 * formatting values back as text, and the canonical JSON of a config (see batchlab/config.h). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* strdup */
#endif

#include "batchlab/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

/* ---- text ----------------------------------------------------------------------------------- */

/* The value of `e` as option text. */
void bl__config_format_entry(bl__sbuf *b, const bl__config_entry *e)
{
    char num[40];
    switch (e->type) {
    case BL_TYPE_NUMBER:
        bl__format_double(num, sizeof num, e->v.num, 15);
        bl__sb_puts(b, num);
        break;
    case BL_TYPE_INT:
        snprintf(num, sizeof num, "%" PRId64, e->v.i);
        bl__sb_puts(b, num);
        break;
    case BL_TYPE_BOOL:
        bl__sb_puts(b, e->v.b ? "true" : "false");
        break;
    case BL_TYPE_STRING:
    case BL_TYPE_TEXT:
        bl__sb_puts(b, e->v.s);
        break;
    case BL_TYPE_INT_LIST:
    case BL_TYPE_NUMBER_LIST:
        for (size_t i = 0; i < e->v.list.n; i++) {
            if (i)
                bl__sb_puts(b, ",");
            if (e->type == BL_TYPE_INT_LIST)
                snprintf(num, sizeof num, "%" PRId64, ((const int64_t *)e->v.list.p)[i]);
            else
                bl__format_double(num, sizeof num, ((const double *)e->v.list.p)[i], 15);
            bl__sb_puts(b, num);
        }
        break;
    }
}

size_t bl_config_format_value(const bl_config *cfg, size_t index, char *buf, size_t cap)
{
    if (buf && cap)
        buf[0] = '\0';
    if (!cfg || index >= cfg->n)
        return 0;
    bl__sbuf b = {0};
    bl__config_format_entry(&b, &cfg->e[index]);
    size_t need = b.failed ? 0 : b.len;
    if (buf && cap && b.p) {
        size_t n = need < cap - 1 ? need : cap - 1;
        memcpy(buf, b.p, n);
        buf[n] = '\0';
    }
    free(b.p);
    return need;
}

/* ---- parsing option text -------------------------------------------------------------------- */

/* [*a, *b) is `s` without leading and trailing blanks. */
static void trim(const char *s, size_t len, const char **a, const char **b)
{
    const char *p = s, *q = s + len;
    while (p < q && isspace((unsigned char)*p))
        p++;
    while (q > p && isspace((unsigned char)q[-1]))
        q--;
    *a = p;
    *b = q;
}

/* Parses the whole of [a, b) as a finite number. */
bool bl__parse_number(const char *a, const char *b, double *out)
{
    char buf[64];
    size_t n = (size_t)(b - a);
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, a, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (*end != '\0' || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* An integral double in the range of int64_t. */
bool bl__integral(double v, int64_t *out)
{
    if (!isfinite(v) || v != floor(v) || v < -9223372036854775808.0 ||
        v >= 9223372036854775808.0)
        return false;
    *out = (int64_t)v;
    return true;
}

/* Parses the whole of [a, b) as an integer: decimal digits, or a number with an integral
 * value ("1e3"). */
static bool parse_int(const char *a, const char *b, int64_t *out)
{
    char buf[64];
    size_t n = (size_t)(b - a);
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, a, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end == '\0' && errno == 0) {
        *out = (int64_t)v;
        return true;
    }
    double d;
    return errno != ERANGE && bl__parse_number(a, b, &d) && bl__integral(d, out);
}

static bool word_is(const char *a, const char *b, const char *word)
{
    size_t n = (size_t)(b - a);
    if (n != strlen(word))
        return false;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)a[i]) != word[i])
            return false;
    return true;
}

static bool parse_bool(const char *a, const char *b, bool *out)
{
    if (word_is(a, b, "true") || word_is(a, b, "yes") || word_is(a, b, "1")) {
        *out = true;
        return true;
    }
    if (word_is(a, b, "false") || word_is(a, b, "no") || word_is(a, b, "0")) {
        *out = false;
        return true;
    }
    return false;
}

/* Parses "256,128", "{256, 128}", "[0.5]", "" (empty) into a list of `type`; one trailing
 * comma is allowed, as in Lua tables. On BL_EOPTION `bad` receives the offending element. */
static int parse_list(const char *text, bl_type type, bl__config_entry *out, char *bad,
                      size_t bad_cap)
{
    const char *a, *b;
    trim(text, strlen(text), &a, &b);
    if (b - a >= 2 && ((*a == '{' && b[-1] == '}') || (*a == '[' && b[-1] == ']'))) {
        a++;
        b--;
        trim(a, (size_t)(b - a), &a, &b);
    }
    size_t elem = type == BL_TYPE_INT_LIST ? sizeof(int64_t) : sizeof(double);
    size_t pieces = a == b ? 0 : 1;
    for (const char *p = a; p < b; p++)
        pieces += *p == ',';
    void *items = pieces ? malloc(pieces * elem) : NULL;
    if (pieces && !items)
        return BL_ENOMEM;
    size_t n = 0;
    const char *p = a;
    for (size_t k = 0; k < pieces; k++) {
        const char *comma = memchr(p, ',', (size_t)(b - p));
        const char *stop = comma ? comma : b;
        const char *ea, *eb;
        trim(p, (size_t)(stop - p), &ea, &eb);
        p = comma ? comma + 1 : b;
        if (ea == eb && k == pieces - 1 && k > 0)
            break; /* the trailing comma of "256,128," */
        bool ok = type == BL_TYPE_INT_LIST ? parse_int(ea, eb, &((int64_t *)items)[n])
                                           : bl__parse_number(ea, eb, &((double *)items)[n]);
        if (!ok) {
            snprintf(bad, bad_cap, "%.*s", (int)(eb - ea), ea);
            free(items);
            return BL_EOPTION;
        }
        n++;
    }
    out->type = type;
    out->v.list.p = n ? items : NULL;
    out->v.list.n = n;
    if (!n)
        free(items);
    return BL_OK;
}

/* Parses option text into a value of `type`. BL_EOPTION with *why set when it does not parse. */
int bl__config_parse_text(const char *text, bl_type type, bl__config_entry *out, char *why,
                          size_t why_cap)
{
    const char *a, *b;
    trim(text, strlen(text), &a, &b);
    why[0] = '\0';
    memset(out, 0, sizeof *out);
    out->type = type;
    switch (type) {
    case BL_TYPE_NUMBER:
        if (bl__parse_number(a, b, &out->v.num))
            return BL_OK;
        snprintf(why, why_cap, "expected a number such as 0.5 or 1e-3");
        return BL_EOPTION;
    case BL_TYPE_INT:
        if (parse_int(a, b, &out->v.i))
            return BL_OK;
        snprintf(why, why_cap, "expected an integer such as 10");
        return BL_EOPTION;
    case BL_TYPE_BOOL:
        if (parse_bool(a, b, &out->v.b))
            return BL_OK;
        snprintf(why, why_cap, "expected true/false, yes/no or 1/0");
        return BL_EOPTION;
    case BL_TYPE_STRING:
        out->v.s = strdup(text);
        return out->v.s ? BL_OK : BL_ENOMEM;
    case BL_TYPE_INT_LIST:
    case BL_TYPE_NUMBER_LIST: {
        char bad[64];
        int rc = parse_list(text, type, out, bad, sizeof bad);
        if (rc == BL_EOPTION)
            snprintf(why, why_cap, "'%s' is not %s; expected a list such as %s", bad,
                     type == BL_TYPE_INT_LIST ? "an integer" : "a number",
                     type == BL_TYPE_INT_LIST ? "256,128" : "0.5,0.25");
        return rc;
    }
    case BL_TYPE_TEXT:
        break;
    }
    snprintf(why, why_cap, "options cannot be declared with type %s", bl_type_name(type));
    return BL_EOPTION;
}

/* ---- canonical JSON ------------------------------------------------------------------------- */

static int cmp_key(const void *a, const void *b)
{
    const bl__config_entry *x = *(const bl__config_entry *const *)a;
    const bl__config_entry *y = *(const bl__config_entry *const *)b;
    return strcmp(x->name, y->name);
}

int bl_config_to_json(bl_ctx *ctx, const bl_config *cfg, char **out)
{
    if (!cfg || !out)
        return bl_error(ctx, BL_EINVAL, "bl_config_to_json: NULL argument");
    const bl__config_entry **sorted = malloc((cfg->n ? cfg->n : 1) * sizeof *sorted);
    if (!sorted)
        return bl_error(ctx, BL_ENOMEM, "out of memory writing a config as JSON");
    for (size_t i = 0; i < cfg->n; i++)
        sorted[i] = &cfg->e[i];
    qsort(sorted, cfg->n, sizeof *sorted, cmp_key);

    bl__sbuf b = {0};
    char num[40];
    bl__sb_puts(&b, "{");
    for (size_t i = 0; i < cfg->n; i++) {
        const bl__config_entry *e = sorted[i];
        if (i)
            bl__sb_puts(&b, ",");
        bl__sb_json_string(&b, e->name);
        bl__sb_puts(&b, ":");
        switch (e->type) {
        case BL_TYPE_NUMBER:
            bl__sb_json_number(&b, e->v.num, 17);
            break;
        case BL_TYPE_INT:
            snprintf(num, sizeof num, "%" PRId64, e->v.i);
            bl__sb_puts(&b, num);
            break;
        case BL_TYPE_BOOL:
            bl__sb_puts(&b, e->v.b ? "true" : "false");
            break;
        case BL_TYPE_STRING:
        case BL_TYPE_TEXT:
            bl__sb_json_string(&b, e->v.s);
            break;
        case BL_TYPE_INT_LIST:
        case BL_TYPE_NUMBER_LIST:
            bl__sb_puts(&b, "[");
            for (size_t k = 0; k < e->v.list.n; k++) {
                if (k)
                    bl__sb_puts(&b, ",");
                if (e->type == BL_TYPE_INT_LIST) {
                    snprintf(num, sizeof num, "%" PRId64, ((const int64_t *)e->v.list.p)[k]);
                    bl__sb_puts(&b, num);
                } else {
                    bl__sb_json_number(&b, ((const double *)e->v.list.p)[k], 17);
                }
            }
            bl__sb_puts(&b, "]");
            break;
        }
    }
    bl__sb_puts(&b, "}");
    free(sorted);
    if (b.failed) {
        free(b.p);
        return bl_error(ctx, BL_ENOMEM, "out of memory writing a config as JSON");
    }
    *out = b.p;
    return BL_OK;
}
