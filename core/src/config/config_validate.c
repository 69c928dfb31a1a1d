/* Plugin options, part 3: validation of a config against an option declaration — conversions,
 * defaults, the messages with nearest-name suggestions — and the check of a plugin's own
 * declaration (see batchlab/config.h). */
#include "batchlab/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

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

/* A name of 3 or more characters that begins a candidate is its abbreviation ("val_acc" →
 * "val_accuracy"; the first such candidate). Otherwise at most 3 edits, and fewer edits than
 * the longer name has characters (so "xy" does not suggest "lr"); on a tie the earlier
 * candidate wins. The one rule for every "did you mean" (C and the Lua library). */
const char *bl_nearest_name(const char *name, const char *const *candidates, size_t n)
{
    if (!name || !candidates)
        return NULL;
    size_t len = strlen(name);
    for (size_t i = 0; i < n && len >= 3; i++)
        if (candidates[i] && strncmp(candidates[i], name, len) == 0)
            return candidates[i];
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
    bl__sbuf list = {0};
    for (size_t i = 0; i < n; i++) {
        names[i] = decl[i].name;
        if (i)
            bl__sb_puts(&list, ", ");
        bl__sb_puts(&list, decl[i].name);
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
static void describe_given(const bl__config_entry *e, char *buf, size_t cap)
{
    bl__sbuf b = {0};
    bl__config_format_entry(&b, e);
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
static int convert(bl_ctx *ctx, const char *owner, const bl_option *opt, const bl__config_entry *in,
                   bl__config_entry *out)
{
    bl_type want = opt->type;
    memset(out, 0, sizeof *out);
    out->type = want;
    if (in->type == want)
        return bl__config_value_copy(out, want, in) == BL_OK
                   ? BL_OK
                   : bl_error(ctx, BL_ENOMEM, "%s: out of memory", owner);
    if (in->type == BL_TYPE_TEXT) {
        char why[160];
        int rc = bl__config_parse_text(in->v.s, want, out, why, sizeof why);
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
        if (in->type == BL_TYPE_NUMBER && bl__integral(in->v.num, &iv)) {
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
                is_int = bl__integral(d, &i64);
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
static int parse_default(bl_ctx *ctx, const char *owner, const bl_option *opt,
                         bl__config_entry *out)
{
    char why[160];
    int rc = bl__config_parse_text(opt->default_value, opt->type, out, why, sizeof why);
    if (rc == BL_ENOMEM)
        return bl_error(ctx, BL_ENOMEM, "%s: out of memory", owner);
    if (rc)
        return bl_error(ctx, BL_EOPTION,
                        "%s: the declared default \"%s\" of option '%s' is not a valid %s (%s); "
                        "fix the plugin's option table",
                        owner, opt->default_value, opt->name, bl_type_name(opt->type), why);
    return BL_OK;
}

/* Sorting names: both tables below are sorted by strcmp once, so that every lookup is a
 * binary search and a descriptor of n options is checked and validated in O(n log n) (a
 * linear search per option made 200,000 options take minutes). */
static int cmp_decl(const void *a, const void *b)
{
    return strcmp((*(const bl_option *const *)a)->name, (*(const bl_option *const *)b)->name);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp((*(const bl__config_entry *const *)a)->name,
                  (*(const bl__config_entry *const *)b)->name);
}

/* The declarations sorted by name (malloc'd; NULL when memory runs out), and in *dup the first
 * name declared twice (NULL when none). */
static const bl_option **sorted_decl(const bl_option *decl, size_t nd, const char **dup)
{
    const bl_option **s = malloc((nd ? nd : 1) * sizeof *s);
    *dup = NULL;
    if (!s)
        return NULL;
    for (size_t k = 0; k < nd; k++)
        s[k] = &decl[k];
    qsort(s, nd, sizeof *s, cmp_decl);
    for (size_t k = 1; k < nd && !*dup; k++)
        if (strcmp(s[k - 1]->name, s[k]->name) == 0)
            *dup = s[k]->name;
    return s;
}

int bl_config_validate(bl_ctx *ctx, const bl_config *in, const bl_option *decl,
                       const char *owner, bl_config **out)
{
    if (!out)
        return bl_error(ctx, BL_EINVAL, "bl_config_validate: out is NULL");
    if (!owner)
        owner = "options";
    size_t nd = decl_count(decl), ni = in ? in->n : 0;
    const char *dup;
    const bl_option **by_name = sorted_decl(decl, nd, &dup);
    const bl__config_entry **given = malloc((ni ? ni : 1) * sizeof *given);
    if (!by_name || !given) {
        free(by_name);
        free(given);
        return bl_error(ctx, BL_ENOMEM, "%s: out of memory validating options", owner);
    }
    /* Every given name must be declared. */
    for (size_t i = 0; i < ni; i++) {
        bl_option key = {in->e[i].name, BL_TYPE_NUMBER, NULL, NULL};
        const bl_option *kp = &key;
        if (!bsearch(&kp, by_name, nd, sizeof *by_name, cmp_decl)) {
            free(by_name);
            free(given);
            return unknown_option(ctx, owner, in->e[i].name, decl);
        }
        given[i] = &in->e[i];
    }
    free(by_name);
    qsort(given, ni, sizeof *given, cmp_entry); /* a config holds each name once */
    bl_config *res = NULL;
    int rc = bl_config_new(ctx, &res);
    if (rc) {
        free(given);
        return rc;
    }
    for (size_t k = 0; k < nd; k++) {
        const bl_option *opt = &decl[k];
        bl__config_entry key = {.name = (char *)opt->name};
        const bl__config_entry *kp = &key;
        const bl__config_entry *const *hit =
            ni ? bsearch(&kp, given, ni, sizeof *given, cmp_entry) : NULL;
        bl__config_entry val;
        if (hit)
            rc = convert(ctx, owner, opt, *hit, &val);
        else if (opt->default_value)
            rc = parse_default(ctx, owner, opt, &val);
        else
            rc = bl_error(ctx, BL_EOPTION, "%s: missing required option '%s' (%s%s%s)", owner,
                          opt->name, bl_type_name(opt->type), opt->help ? ": " : "",
                          opt->help ? opt->help : "");
        if (rc == BL_OK)
            rc = dup ? bl__config_put(ctx, res, opt->name, &val)      /* replaces the first */
                     : bl__config_append(ctx, res, opt->name, &val);  /* names are unique */
        if (rc) {
            free(given);
            bl_config_free(res);
            return rc;
        }
    }
    free(given);
    *out = res;
    return BL_OK;
}

int bl__option_decl_check(bl_ctx *ctx, const bl_option *decl, const char *owner)
{
    size_t nd = decl_count(decl);
    const char *dup;
    const bl_option **by_name = sorted_decl(decl, nd, &dup);
    if (!by_name)
        return bl_error(ctx, BL_ENOMEM, "%s: out of memory checking its options", owner);
    free(by_name);
    for (size_t k = 0; k < nd; k++) {
        const bl_option *opt = &decl[k];
        if (!opt->name[0])
            return bl_error(ctx, BL_EPLUGIN, "%s: option #%zu has an empty name", owner, k);
        if (dup && strcmp(opt->name, dup) == 0)
            return bl_error(ctx, BL_EPLUGIN, "%s: option '%s' is declared twice", owner,
                            opt->name);
        if ((unsigned)opt->type > BL_TYPE_NUMBER_LIST)
            return bl_error(ctx, BL_EPLUGIN,
                            "%s: option '%s' has type %d; declare it as one of number, integer, "
                            "boolean, string, integer list, number list",
                            owner, opt->name, (int)opt->type);
        if (opt->default_value) {
            bl__config_entry val;
            int rc = parse_default(ctx, owner, opt, &val);
            if (rc == BL_EOPTION) {
                char msg[1024];
                snprintf(msg, sizeof msg, "%s", bl_errmsg(ctx));
                return bl_error(ctx, BL_EPLUGIN, "%s", msg);
            }
            if (rc)
                return rc;
            bl__config_entry_clear(&val);
        }
    }
    return BL_OK;
}
