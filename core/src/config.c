/* Plugin options: typed name → value sets, validation against declarations, option text and
 * canonical JSON (see batchlab/config.h). */
#include "batchlab/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

typedef struct entry {
    char *name;
    bl_type type;
    union {
        double num;                    /* BL_TYPE_NUMBER */
        int64_t i;                     /* BL_TYPE_INT */
        bool b;                        /* BL_TYPE_BOOL */
        char *s;                       /* BL_TYPE_STRING, BL_TYPE_TEXT */
        struct {
            void *p;                   /* int64_t[n] or double[n]; NULL when n = 0 */
            size_t n;
        } list;                        /* BL_TYPE_INT_LIST, BL_TYPE_NUMBER_LIST */
    } v;
} entry;

struct bl_config {
    entry *e;   /* [n], insertion order */
    size_t n, cap;
};

const char *bl_type_name(bl_type type)
{
    switch (type) {
    case BL_TYPE_NUMBER: return "number";
    case BL_TYPE_INT: return "integer";
    case BL_TYPE_BOOL: return "boolean";
    case BL_TYPE_STRING: return "string";
    case BL_TYPE_INT_LIST: return "integer list";
    case BL_TYPE_NUMBER_LIST: return "number list";
    case BL_TYPE_TEXT: return "text";
    }
    return "unknown type";
}

/* ---- entries -------------------------------------------------------------------------------- */

static void entry_clear_value(entry *e)
{
    if (e->type == BL_TYPE_STRING || e->type == BL_TYPE_TEXT)
        free(e->v.s);
    else if (e->type == BL_TYPE_INT_LIST || e->type == BL_TYPE_NUMBER_LIST)
        free(e->v.list.p);
    memset(&e->v, 0, sizeof e->v);
}

static char *dup_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* Copies a value of `type` from `src` into `dst` (which holds nothing). */
static int value_copy(entry *dst, bl_type type, const entry *src)
{
    dst->type = type;
    switch (type) {
    case BL_TYPE_STRING:
    case BL_TYPE_TEXT:
        dst->v.s = dup_string(src->v.s);
        return dst->v.s ? BL_OK : BL_ENOMEM;
    case BL_TYPE_INT_LIST:
    case BL_TYPE_NUMBER_LIST: {
        size_t bytes = src->v.list.n * (type == BL_TYPE_INT_LIST ? sizeof(int64_t)
                                                                 : sizeof(double));
        dst->v.list.n = src->v.list.n;
        dst->v.list.p = NULL;
        if (bytes == 0)
            return BL_OK;
        dst->v.list.p = malloc(bytes);
        if (!dst->v.list.p)
            return BL_ENOMEM;
        memcpy(dst->v.list.p, src->v.list.p, bytes);
        return BL_OK;
    }
    default:
        dst->v = src->v;
        return BL_OK;
    }
}

int bl_config_new(bl_ctx *ctx, bl_config **out)
{
    if (!out)
        return bl_error(ctx, BL_EINVAL, "bl_config_new: out is NULL");
    bl_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return bl_error(ctx, BL_ENOMEM, "out of memory creating a config");
    *out = cfg;
    return BL_OK;
}

void bl_config_free(bl_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n; i++) {
        entry_clear_value(&cfg->e[i]);
        free(cfg->e[i].name);
    }
    free(cfg->e);
    free(cfg);
}

long bl_config_find(const bl_config *cfg, const char *name)
{
    if (!cfg || !name)
        return -1;
    for (size_t i = 0; i < cfg->n; i++)
        if (strcmp(cfg->e[i].name, name) == 0)
            return (long)i;
    return -1;
}

/* Takes ownership of the value in `val` (also on failure, where it is freed). */
static int config_put(bl_ctx *ctx, bl_config *cfg, const char *name, entry *val)
{
    if (!cfg || !name || !name[0]) {
        entry_clear_value(val);
        return bl_error(ctx, BL_EINVAL, "config: an option needs a non-empty name");
    }
    long at = bl_config_find(cfg, name);
    if (at >= 0) {
        entry *e = &cfg->e[at];
        entry_clear_value(e);
        e->type = val->type;
        e->v = val->v;
        return BL_OK;
    }
    if (cfg->n == cfg->cap) {
        size_t cap = cfg->cap ? 2 * cfg->cap : 8;
        entry *grown = realloc(cfg->e, cap * sizeof *grown);
        if (!grown) {
            entry_clear_value(val);
            return bl_error(ctx, BL_ENOMEM, "out of memory setting option '%s'", name);
        }
        cfg->e = grown;
        cfg->cap = cap;
    }
    char *copy = dup_string(name);
    if (!copy) {
        entry_clear_value(val);
        return bl_error(ctx, BL_ENOMEM, "out of memory setting option '%s'", name);
    }
    cfg->e[cfg->n].name = copy;
    cfg->e[cfg->n].type = val->type;
    cfg->e[cfg->n].v = val->v;
    cfg->n++;
    return BL_OK;
}

int bl_config_clone(bl_ctx *ctx, const bl_config *cfg, bl_config **out)
{
    if (!cfg || !out)
        return bl_error(ctx, BL_EINVAL, "bl_config_clone: NULL argument");
    bl_config *copy = NULL;
    int rc = bl_config_new(ctx, &copy);
    if (rc)
        return rc;
    for (size_t i = 0; i < cfg->n; i++) {
        entry val = {0};
        if (value_copy(&val, cfg->e[i].type, &cfg->e[i]) != BL_OK ||
            (rc = config_put(ctx, copy, cfg->e[i].name, &val)) != BL_OK) {
            bl_config_free(copy);
            return bl_error(ctx, BL_ENOMEM, "out of memory copying a config");
        }
    }
    *out = copy;
    return BL_OK;
}

/* ---- setters -------------------------------------------------------------------------------- */

int bl_config_set_number(bl_ctx *ctx, bl_config *cfg, const char *name, double v)
{
    entry val = {.type = BL_TYPE_NUMBER, .v.num = v};
    return config_put(ctx, cfg, name, &val);
}

int bl_config_set_int(bl_ctx *ctx, bl_config *cfg, const char *name, int64_t v)
{
    entry val = {.type = BL_TYPE_INT, .v.i = v};
    return config_put(ctx, cfg, name, &val);
}

int bl_config_set_bool(bl_ctx *ctx, bl_config *cfg, const char *name, bool v)
{
    entry val = {.type = BL_TYPE_BOOL, .v.b = v};
    return config_put(ctx, cfg, name, &val);
}

static int set_owned_string(bl_ctx *ctx, bl_config *cfg, const char *name, bl_type type,
                            const char *v)
{
    if (!v)
        return bl_error(ctx, BL_EINVAL, "config: option '%s' given a NULL string",
                        name ? name : "(null)");
    entry val = {.type = type, .v.s = dup_string(v)};
    if (!val.v.s)
        return bl_error(ctx, BL_ENOMEM, "out of memory setting option '%s'",
                        name ? name : "(null)");
    return config_put(ctx, cfg, name, &val);
}

int bl_config_set_string(bl_ctx *ctx, bl_config *cfg, const char *name, const char *v)
{
    return set_owned_string(ctx, cfg, name, BL_TYPE_STRING, v);
}

int bl_config_set_text(bl_ctx *ctx, bl_config *cfg, const char *name, const char *text)
{
    return set_owned_string(ctx, cfg, name, BL_TYPE_TEXT, text);
}

static int set_list(bl_ctx *ctx, bl_config *cfg, const char *name, bl_type type, const void *v,
                    size_t n)
{
    if (n > 0 && !v)
        return bl_error(ctx, BL_EINVAL, "config: option '%s' given a NULL array",
                        name ? name : "(null)");
    entry src = {.type = type, .v.list = {(void *)v, n}};
    entry val = {0};
    if (value_copy(&val, type, &src) != BL_OK)
        return bl_error(ctx, BL_ENOMEM, "out of memory setting option '%s'",
                        name ? name : "(null)");
    return config_put(ctx, cfg, name, &val);
}

int bl_config_set_int_list(bl_ctx *ctx, bl_config *cfg, const char *name, const int64_t *v,
                           size_t n)
{
    return set_list(ctx, cfg, name, BL_TYPE_INT_LIST, v, n);
}

int bl_config_set_number_list(bl_ctx *ctx, bl_config *cfg, const char *name, const double *v,
                              size_t n)
{
    return set_list(ctx, cfg, name, BL_TYPE_NUMBER_LIST, v, n);
}

int bl_config_set_assignment(bl_ctx *ctx, bl_config *cfg, const char *assignment)
{
    if (!assignment)
        return bl_error(ctx, BL_EINVAL, "config: NULL assignment");
    const char *eq = strchr(assignment, '=');
    if (!eq)
        return bl_error(ctx, BL_EOPTION, "option '%s' has no value: write it as name=value",
                        assignment);
    /* The name, without surrounding blanks. */
    const char *a = assignment, *b = eq;
    while (a < b && isspace((unsigned char)*a))
        a++;
    while (b > a && isspace((unsigned char)b[-1]))
        b--;
    if (a == b)
        return bl_error(ctx, BL_EOPTION, "option '%s' has no name: write it as name=value",
                        assignment);
    char name[128];
    if ((size_t)(b - a) >= sizeof name)
        return bl_error(ctx, BL_EOPTION, "option name in '%.40s...' is too long", assignment);
    memcpy(name, a, (size_t)(b - a));
    name[b - a] = '\0';
    return bl_config_set_text(ctx, cfg, name, eq + 1);
}

/* ---- iteration and getters ------------------------------------------------------------------ */

size_t bl_config_count(const bl_config *cfg)
{
    return cfg ? cfg->n : 0;
}

const char *bl_config_key(const bl_config *cfg, size_t index)
{
    return cfg && index < cfg->n ? cfg->e[index].name : NULL;
}

bl_type bl_config_type_at(const bl_config *cfg, size_t index)
{
    return cfg && index < cfg->n ? cfg->e[index].type : BL_TYPE_TEXT;
}

static const entry *get(const bl_config *cfg, const char *name, bl_type type)
{
    long at = bl_config_find(cfg, name);
    if (at < 0 || cfg->e[at].type != type)
        return NULL;
    return &cfg->e[at];
}

double bl_config_number(const bl_config *cfg, const char *name)
{
    const entry *e = get(cfg, name, BL_TYPE_NUMBER);
    return e ? e->v.num : 0.0;
}

int64_t bl_config_int(const bl_config *cfg, const char *name)
{
    const entry *e = get(cfg, name, BL_TYPE_INT);
    return e ? e->v.i : 0;
}

bool bl_config_bool(const bl_config *cfg, const char *name)
{
    const entry *e = get(cfg, name, BL_TYPE_BOOL);
    return e ? e->v.b : false;
}

const char *bl_config_string(const bl_config *cfg, const char *name)
{
    const entry *e = get(cfg, name, BL_TYPE_STRING);
    return e ? e->v.s : NULL;
}

const int64_t *bl_config_int_list(const bl_config *cfg, const char *name, size_t *n)
{
    const entry *e = get(cfg, name, BL_TYPE_INT_LIST);
    if (n)
        *n = e ? e->v.list.n : 0;
    return e ? e->v.list.p : NULL;
}

const double *bl_config_number_list(const bl_config *cfg, const char *name, size_t *n)
{
    const entry *e = get(cfg, name, BL_TYPE_NUMBER_LIST);
    if (n)
        *n = e ? e->v.list.n : 0;
    return e ? e->v.list.p : NULL;
}

/* ---- text ----------------------------------------------------------------------------------- */

/* A growable string; `failed` is set once an allocation fails. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool failed;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

/* The shortest of %.15g/%.16g/%.17g that reads back as exactly `v`. */
static void format_number_short(char *buf, size_t cap, double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v || isnan(v))
            return;
    }
}

/* The value of `e` as option text. */
static void format_entry(sbuf *b, const entry *e)
{
    char num[40];
    switch (e->type) {
    case BL_TYPE_NUMBER:
        format_number_short(num, sizeof num, e->v.num);
        sb_puts(b, num);
        break;
    case BL_TYPE_INT:
        snprintf(num, sizeof num, "%" PRId64, e->v.i);
        sb_puts(b, num);
        break;
    case BL_TYPE_BOOL:
        sb_puts(b, e->v.b ? "true" : "false");
        break;
    case BL_TYPE_STRING:
    case BL_TYPE_TEXT:
        sb_puts(b, e->v.s);
        break;
    case BL_TYPE_INT_LIST:
    case BL_TYPE_NUMBER_LIST:
        for (size_t i = 0; i < e->v.list.n; i++) {
            if (i)
                sb_puts(b, ",");
            if (e->type == BL_TYPE_INT_LIST)
                snprintf(num, sizeof num, "%" PRId64, ((const int64_t *)e->v.list.p)[i]);
            else
                format_number_short(num, sizeof num, ((const double *)e->v.list.p)[i]);
            sb_puts(b, num);
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
    sbuf b = {0};
    format_entry(&b, &cfg->e[index]);
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
static bool parse_number(const char *a, const char *b, double *out)
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
static bool integral(double v, int64_t *out)
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
    return errno != ERANGE && parse_number(a, b, &d) && integral(d, out);
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
static int parse_list(const char *text, bl_type type, entry *out, char *bad, size_t bad_cap)
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
                                           : parse_number(ea, eb, &((double *)items)[n]);
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
static int parse_text(const char *text, bl_type type, entry *out, char *why, size_t why_cap)
{
    const char *a, *b;
    trim(text, strlen(text), &a, &b);
    why[0] = '\0';
    memset(out, 0, sizeof *out);
    out->type = type;
    switch (type) {
    case BL_TYPE_NUMBER:
        if (parse_number(a, b, &out->v.num))
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
        out->v.s = dup_string(text);
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

/* ---- validation ----------------------------------------------------------------------------- */

/* Levenshtein distance, two rows; names longer than 63 bytes count as far away. */
static size_t edit_distance(const char *s, const char *t)
{
    size_t n = strlen(s), m = strlen(t);
    if (n > 63 || m > 63)
        return (size_t)-1;
    size_t prev[64], cur[64];
    for (size_t j = 0; j <= m; j++)
        prev[j] = j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t sub = prev[j - 1] + (s[i - 1] != t[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (m + 1) * sizeof *prev);
    }
    return prev[m];
}

/* At most 3 edits, and fewer edits than the longer name has characters (so "xy" does not
 * suggest "lr"); on a tie the earlier candidate wins. */
const char *bl_nearest_name(const char *name, const char *const *candidates, size_t n)
{
    if (!name || !candidates)
        return NULL;
    const char *best = NULL;
    size_t best_d = 4;
    for (size_t i = 0; i < n; i++) {
        if (!candidates[i])
            continue;
        size_t d = edit_distance(name, candidates[i]);
        size_t longer = strlen(name) > strlen(candidates[i]) ? strlen(name)
                                                             : strlen(candidates[i]);
        if (d < best_d && d < longer) {
            best = candidates[i];
            best_d = d;
        }
    }
    return best;
}

static size_t decl_count(const bl_option *decl)
{
    size_t n = 0;
    while (decl && decl[n].name)
        n++;
    return n;
}

/* "unknown option 'hiden'; did you mean 'hidden'? accepted: hidden, activation" */
static int unknown_option(bl_ctx *ctx, const char *owner, const char *name,
                          const bl_option *decl)
{
    size_t n = decl_count(decl);
    if (n == 0)
        return bl_error(ctx, BL_EOPTION, "%s: unknown option '%s'; it accepts no options", owner,
                        name);
    const char **names = malloc(n * sizeof *names);
    if (!names)
        return bl_error(ctx, BL_ENOMEM, "%s: unknown option '%s'", owner, name);
    sbuf list = {0};
    for (size_t i = 0; i < n; i++) {
        names[i] = decl[i].name;
        if (i)
            sb_puts(&list, ", ");
        sb_puts(&list, decl[i].name);
    }
    const char *near = bl_nearest_name(name, names, n);
    const char *accepted = list.p ? list.p : "";
    if (near)
        bl_error(ctx, BL_EOPTION, "%s: unknown option '%s'; did you mean '%s'? accepted: %s",
                 owner, name, near, accepted);
    else
        bl_error(ctx, BL_EOPTION, "%s: unknown option '%s'; accepted: %s", owner, name,
                 accepted);
    free(list.p);
    free(names);
    return BL_EOPTION;
}

/* "a boolean (true)", "a string (\"relu\")" — what was given, for type errors. */
static void describe_given(const entry *e, char *buf, size_t cap)
{
    sbuf b = {0};
    format_entry(&b, e);
    const char *text = b.p ? b.p : "";
    const char *article = e->type == BL_TYPE_INT || e->type == BL_TYPE_INT_LIST ? "an" : "a";
    if (e->type == BL_TYPE_STRING || e->type == BL_TYPE_TEXT)
        snprintf(buf, cap, "%s %s (\"%.60s\")", article, bl_type_name(e->type), text);
    else
        snprintf(buf, cap, "%s %s (%.60s)", article, bl_type_name(e->type), text);
    free(b.p);
}

static const char *example_of(bl_type t)
{
    switch (t) {
    case BL_TYPE_NUMBER: return "0.5";
    case BL_TYPE_INT: return "10";
    case BL_TYPE_BOOL: return "true";
    case BL_TYPE_STRING: return "\"relu\"";
    case BL_TYPE_INT_LIST: return "256,128";
    case BL_TYPE_NUMBER_LIST: return "0.5,0.25";
    default: return "?";
    }
}

/* Converts a given value to the declared type (the rules of bl_config_validate). */
static int convert(bl_ctx *ctx, const char *owner, const bl_option *opt, const entry *in,
                   entry *out)
{
    bl_type want = opt->type;
    memset(out, 0, sizeof *out);
    out->type = want;
    if (in->type == want)
        return value_copy(out, want, in) == BL_OK
                   ? BL_OK
                   : bl_error(ctx, BL_ENOMEM, "%s: out of memory", owner);
    if (in->type == BL_TYPE_TEXT) {
        char why[160];
        int rc = parse_text(in->v.s, want, out, why, sizeof why);
        if (rc == BL_ENOMEM)
            return bl_error(ctx, BL_ENOMEM, "%s: out of memory", owner);
        if (rc)
            return bl_error(ctx, BL_EOPTION, "%s: option '%s' (%s): cannot read \"%s\": %s",
                            owner, opt->name, bl_type_name(want), in->v.s, why);
        return BL_OK;
    }
    int64_t iv;
    switch (want) {
    case BL_TYPE_NUMBER:
        if (in->type == BL_TYPE_INT) {
            out->v.num = (double)in->v.i;
            return BL_OK;
        }
        break;
    case BL_TYPE_INT:
        if (in->type == BL_TYPE_NUMBER && integral(in->v.num, &iv)) {
            out->v.i = iv;
            return BL_OK;
        }
        break;
    case BL_TYPE_INT_LIST:
    case BL_TYPE_NUMBER_LIST: {
        size_t n = 1;
        bool ok = true;
        if (in->type == BL_TYPE_INT_LIST || in->type == BL_TYPE_NUMBER_LIST)
            n = in->v.list.n;
        else if (in->type != BL_TYPE_INT && in->type != BL_TYPE_NUMBER)
            break;
        void *items = n ? malloc(n * sizeof(double)) : NULL; /* int64_t and double alike */
        if (n && !items)
            return bl_error(ctx, BL_ENOMEM, "%s: out of memory", owner);
        for (size_t k = 0; k < n && ok; k++) {
            double d;
            bool is_int;
            int64_t i64 = 0;
            if (in->type == BL_TYPE_INT_LIST || in->type == BL_TYPE_INT) {
                i64 = in->type == BL_TYPE_INT ? in->v.i : ((const int64_t *)in->v.list.p)[k];
                d = (double)i64;
                is_int = true;
            } else {
                d = in->type == BL_TYPE_NUMBER ? in->v.num : ((const double *)in->v.list.p)[k];
                is_int = integral(d, &i64);
            }
            if (want == BL_TYPE_INT_LIST) {
                ok = is_int;
                ((int64_t *)items)[k] = i64;
            } else {
                ((double *)items)[k] = d;
            }
        }
        if (ok) {
            out->v.list.p = items;
            out->v.list.n = n;
            return BL_OK;
        }
        free(items);
        break;
    }
    default:
        break;
    }
    char given[128];
    describe_given(in, given, sizeof given);
    const char *article = want == BL_TYPE_INT || want == BL_TYPE_INT_LIST ? "an" : "a";
    return bl_error(ctx, BL_EOPTION, "%s: option '%s' must be %s %s (e.g. %s), got %s", owner,
                    opt->name, article, bl_type_name(want), example_of(want), given);
}

/* Parses a declared default; a bad one is the plugin's fault. */
static int parse_default(bl_ctx *ctx, const char *owner, const bl_option *opt, entry *out)
{
    char why[160];
    int rc = parse_text(opt->default_value, opt->type, out, why, sizeof why);
    if (rc == BL_ENOMEM)
        return bl_error(ctx, BL_ENOMEM, "%s: out of memory", owner);
    if (rc)
        return bl_error(ctx, BL_EOPTION,
                        "%s: the declared default \"%s\" of option '%s' is not a valid %s (%s); "
                        "fix the plugin's option table",
                        owner, opt->default_value, opt->name, bl_type_name(opt->type), why);
    return BL_OK;
}

int bl_config_validate(bl_ctx *ctx, const bl_config *in, const bl_option *decl,
                       const char *owner, bl_config **out)
{
    if (!out)
        return bl_error(ctx, BL_EINVAL, "bl_config_validate: out is NULL");
    if (!owner)
        owner = "options";
    size_t nd = decl_count(decl);
    /* Every given name must be declared. */
    for (size_t i = 0; in && i < in->n; i++) {
        size_t k = 0;
        while (k < nd && strcmp(decl[k].name, in->e[i].name) != 0)
            k++;
        if (k == nd)
            return unknown_option(ctx, owner, in->e[i].name, decl);
    }
    bl_config *res = NULL;
    int rc = bl_config_new(ctx, &res);
    if (rc)
        return rc;
    for (size_t k = 0; k < nd; k++) {
        const bl_option *opt = &decl[k];
        long at = bl_config_find(in, opt->name);
        entry val;
        if (at >= 0)
            rc = convert(ctx, owner, opt, &in->e[at], &val);
        else if (opt->default_value)
            rc = parse_default(ctx, owner, opt, &val);
        else
            rc = bl_error(ctx, BL_EOPTION, "%s: missing required option '%s' (%s%s%s)", owner,
                          opt->name, bl_type_name(opt->type), opt->help ? ": " : "",
                          opt->help ? opt->help : "");
        if (rc == BL_OK)
            rc = config_put(ctx, res, opt->name, &val);
        if (rc) {
            bl_config_free(res);
            return rc;
        }
    }
    *out = res;
    return BL_OK;
}

int bl__option_decl_check(bl_ctx *ctx, const bl_option *decl, const char *owner)
{
    size_t nd = decl_count(decl);
    for (size_t k = 0; k < nd; k++) {
        const bl_option *opt = &decl[k];
        if (!opt->name[0])
            return bl_error(ctx, BL_EPLUGIN, "%s: option #%zu has an empty name", owner, k);
        for (size_t j = 0; j < k; j++)
            if (strcmp(decl[j].name, opt->name) == 0)
                return bl_error(ctx, BL_EPLUGIN, "%s: option '%s' is declared twice", owner,
                                opt->name);
        if ((unsigned)opt->type > BL_TYPE_NUMBER_LIST)
            return bl_error(ctx, BL_EPLUGIN,
                            "%s: option '%s' has type %d; declare it as one of number, integer, "
                            "boolean, string, integer list, number list",
                            owner, opt->name, (int)opt->type);
        if (opt->default_value) {
            entry val;
            int rc = parse_default(ctx, owner, opt, &val);
            if (rc == BL_EOPTION) {
                char msg[1024];
                snprintf(msg, sizeof msg, "%s", bl_errmsg(ctx));
                return bl_error(ctx, BL_EPLUGIN, "%s", msg);
            }
            if (rc)
                return rc;
            entry_clear_value(&val);
        }
    }
    return BL_OK;
}

/* ---- canonical JSON ------------------------------------------------------------------------- */

static void json_string(sbuf *b, const char *s)
{
    sb_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': sb_puts(b, "\\\""); break;
        case '\\': sb_puts(b, "\\\\"); break;
        case '\b': sb_puts(b, "\\b"); break;
        case '\f': sb_puts(b, "\\f"); break;
        case '\n': sb_puts(b, "\\n"); break;
        case '\r': sb_puts(b, "\\r"); break;
        case '\t': sb_puts(b, "\\t"); break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                sb_puts(b, esc);
            } else {
                sb_putn(b, (const char *)p, 1);
            }
        }
    }
    sb_puts(b, "\"");
}

static void json_number(sbuf *b, double v)
{
    char num[40];
    if (!isfinite(v)) {
        sb_puts(b, "null"); /* JSON has no NaN or infinity */
        return;
    }
    snprintf(num, sizeof num, "%.17g", v);
    sb_puts(b, num);
}

static int cmp_key(const void *a, const void *b)
{
    const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
    return strcmp(x->name, y->name);
}

int bl_config_to_json(bl_ctx *ctx, const bl_config *cfg, char **out)
{
    if (!cfg || !out)
        return bl_error(ctx, BL_EINVAL, "bl_config_to_json: NULL argument");
    const entry **sorted = malloc((cfg->n ? cfg->n : 1) * sizeof *sorted);
    if (!sorted)
        return bl_error(ctx, BL_ENOMEM, "out of memory writing a config as JSON");
    for (size_t i = 0; i < cfg->n; i++)
        sorted[i] = &cfg->e[i];
    qsort(sorted, cfg->n, sizeof *sorted, cmp_key);

    sbuf b = {0};
    char num[40];
    sb_puts(&b, "{");
    for (size_t i = 0; i < cfg->n; i++) {
        const entry *e = sorted[i];
        if (i)
            sb_puts(&b, ",");
        json_string(&b, e->name);
        sb_puts(&b, ":");
        switch (e->type) {
        case BL_TYPE_NUMBER:
            json_number(&b, e->v.num);
            break;
        case BL_TYPE_INT:
            snprintf(num, sizeof num, "%" PRId64, e->v.i);
            sb_puts(&b, num);
            break;
        case BL_TYPE_BOOL:
            sb_puts(&b, e->v.b ? "true" : "false");
            break;
        case BL_TYPE_STRING:
        case BL_TYPE_TEXT:
            json_string(&b, e->v.s);
            break;
        case BL_TYPE_INT_LIST:
        case BL_TYPE_NUMBER_LIST:
            sb_puts(&b, "[");
            for (size_t k = 0; k < e->v.list.n; k++) {
                if (k)
                    sb_puts(&b, ",");
                if (e->type == BL_TYPE_INT_LIST) {
                    snprintf(num, sizeof num, "%" PRId64, ((const int64_t *)e->v.list.p)[k]);
                    sb_puts(&b, num);
                } else {
                    json_number(&b, ((const double *)e->v.list.p)[k]);
                }
            }
            sb_puts(&b, "]");
            break;
        }
    }
    sb_puts(&b, "}");
    free(sorted);
    if (b.failed) {
        free(b.p);
        return bl_error(ctx, BL_ENOMEM, "out of memory writing a config as JSON");
    }
    *out = b.p;
    return BL_OK;
}
