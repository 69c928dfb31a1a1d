/* JSON text of run configurations: jansson parses, and the project's own writers print the
 * canonical, pretty and flat-leaf views (see batchlab/json.h). The canonical printer is ours,
 * not jansson's, because stored configuration hashes are computed from its exact text: keys in
 * byte order, integers in decimal, reals in the fewest digits that read back as the same
 * double, strings escaped by the one escaper of base/strbuf.h. tests/unit/test_json_golden.c
 * pins that text and its hash. */
#include "batchlab/json.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "json/json_internal.h"

#define MAX_DEPTH 64

/* ---- parsing -------------------------------------------------------------------------------- */

static int parse_error(bl_ctx *ctx, const json_error_t *e)
{
    const char *why = NULL; /* words of ours where jansson's alone would puzzle a user */
    switch (json_error_code(e)) {
    case json_error_out_of_memory:
        return bl_error(ctx, BL_ENOMEM, "out of memory reading JSON");
    case json_error_stack_overflow: why = "nesting deeper than 64 levels"; break;
    case json_error_premature_end_of_input: why = "unexpected end of text"; break;
    case json_error_end_of_input_expected: why = "text after the JSON value"; break;
    case json_error_invalid_utf8: why = "text that is not UTF-8"; break;
    case json_error_null_character: why = "\\u0000 in a string is not supported"; break;
    case json_error_numeric_overflow:
        why = "number out of range (integers must fit 64 bits, reals a double)";
        break;
    default: break;
    }
    /* jansson's position counts the bytes read, so the offending byte is the one before. */
    size_t at = e->position > 0 ? (size_t)e->position - 1 : 0;
    int column = e->column > 0 ? e->column : 1;
    if (why)
        return bl_error(ctx, BL_EFORMAT, "JSON: %s (%s) at line %d, column %d (offset %zu)",
                        why, e->text, e->line, column, at);
    return bl_error(ctx, BL_EFORMAT, "JSON: %s at line %d, column %d (offset %zu)", e->text,
                    e->line, column, at);
}

/* How many containers deep the deepest value below `j` lies ("1" and "[]" are 0, "[1]" and
 * "[[]]" are 1), as the limit of batchlab/json.h counts. */
static int depth_of(json_t *j)
{
    int deepest = 0, d;
    size_t i;
    json_t *kid;
    const char *key;
    if (json_is_array(j)) {
        json_array_foreach(j, i, kid)
            if ((d = depth_of(kid) + 1) > deepest)
                deepest = d;
    } else if (json_is_object(j)) {
        json_object_foreach(j, key, kid)
            if ((d = depth_of(kid) + 1) > deepest)
                deepest = d;
    } else {
        return 0;
    }
    return deepest;
}

/* Parses the whole text; *out is released with json_decref. */
static int parse(bl_ctx *ctx, const char *json, json_t **out)
{
    if (!json)
        return bl_error(ctx, BL_EINVAL, "JSON: NULL text");
    json_error_t e;
    json_t *root = json_loadb(json, strlen(json), JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
    if (!root)
        return parse_error(ctx, &e);
    if (depth_of(root) > MAX_DEPTH) {
        json_decref(root);
        return bl_error(ctx, BL_EFORMAT, "JSON: nesting deeper than %d levels", MAX_DEPTH);
    }
    *out = root;
    return BL_OK;
}

/* ---- writers -------------------------------------------------------------------------------- */

typedef struct member {
    const char *key;
    json_t *value;
} member;

static int cmp_member(const void *a, const void *b)
{
    return strcmp(((const member *)a)->key, ((const member *)b)->key);
}

/* The members of object `j` in key byte order (a new array the caller frees; NULL with n 0
 * for an empty object); NULL with b->failed set when memory runs out. */
static member *sorted_members(bl__sbuf *b, json_t *j, size_t *n)
{
    *n = json_object_size(j);
    if (*n == 0)
        return NULL;
    member *m = malloc(*n * sizeof *m);
    if (!m) {
        b->failed = true;
        return NULL;
    }
    size_t i = 0;
    const char *key;
    json_t *value;
    json_object_foreach(j, key, value) {
        m[i].key = key;
        m[i].value = value;
        i++;
    }
    qsort(m, *n, sizeof *m, cmp_member);
    return m;
}

/* A number as the canonical text writes it. */
static void put_number(bl__sbuf *b, json_t *j)
{
    char num[40];
    if (json_is_integer(j))
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
    else
        bl__format_double(num, sizeof num, json_real_value(j), 1);
    bl__sb_puts(b, num);
}

static void newline(bl__sbuf *b, int indent, int level)
{
    bl__sb_puts(b, "\n");
    for (int i = 0; i < indent * level; i++)
        bl__sb_puts(b, " ");
}

/* indent < 0: compact canonical text. */
static void write_node(bl__sbuf *b, json_t *j, int indent, int level)
{
    switch (json_typeof(j)) {
    case JSON_NULL: bl__sb_puts(b, "null"); return;
    case JSON_TRUE: bl__sb_puts(b, "true"); return;
    case JSON_FALSE: bl__sb_puts(b, "false"); return;
    case JSON_INTEGER:
    case JSON_REAL: put_number(b, j); return;
    case JSON_STRING: bl__sb_json_stringn(b, json_string_value(j), json_string_length(j)); return;
    case JSON_ARRAY:
    case JSON_OBJECT: break;
    }
    bool object = json_is_object(j);
    size_t n = 0;
    member *m = NULL;
    if (object) {
        m = sorted_members(b, j, &n);
        if (b->failed)
            return;
    } else {
        n = json_array_size(j);
    }
    bl__sb_puts(b, object ? "{" : "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            bl__sb_puts(b, ",");
        if (indent >= 0)
            newline(b, indent, level + 1);
        if (object) {
            bl__sb_json_string(b, m[i].key);
            bl__sb_puts(b, indent >= 0 ? ": " : ":");
        }
        write_node(b, object ? m[i].value : json_array_get(j, i), indent, level + 1);
    }
    free(m);
    if (indent >= 0 && n)
        newline(b, indent, level);
    bl__sb_puts(b, object ? "}" : "]");
}

static int write_json(bl_ctx *ctx, const char *json, int indent, char **out)
{
    json_t *root;
    int rc = parse(ctx, json, &root);
    if (rc != BL_OK)
        return rc;
    bl__sbuf b = {0};
    write_node(&b, root, indent, 0);
    json_decref(root);
    if (b.failed || !b.p) {
        free(b.p);
        return bl_error(ctx, BL_ENOMEM, "out of memory writing JSON");
    }
    *out = b.p;
    return BL_OK;
}

int bl_json_canonical(bl_ctx *ctx, const char *json, char **out)
{
    if (!out)
        return bl_error(ctx, BL_EINVAL, "bl_json_canonical: NULL argument");
    return write_json(ctx, json, -1, out);
}

int bl_json_pretty(bl_ctx *ctx, const char *json, char **out)
{
    if (!out)
        return bl_error(ctx, BL_EINVAL, "bl_json_pretty: NULL argument");
    return write_json(ctx, json, 2, out);
}

uint64_t bl__fnv1a64(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

int bl_json_hash(bl_ctx *ctx, const char *json, char hex[17])
{
    char *canon;
    if (!hex)
        return bl_error(ctx, BL_EINVAL, "bl_json_hash: NULL argument");
    int rc = bl_json_canonical(ctx, json, &canon);
    if (rc != BL_OK)
        return rc;
    uint64_t h = bl__fnv1a64(canon, strlen(canon));
    free(canon);
    snprintf(hex, 17, "%016" PRIx64, h);
    return BL_OK;
}

/* ---- leaves --------------------------------------------------------------------------------- */

typedef struct walker {
    bl_ctx *ctx;
    bl_json_leaf_fn fn;
    void *user;
    bl__sbuf path;
    bl__sbuf value;
} walker;

static int nomem(walker *w)
{
    return bl_error(w->ctx, BL_ENOMEM, "out of memory reading JSON");
}

static int walk(walker *w, json_t *j)
{
    if (json_is_object(j) && json_object_size(j) > 0) {
        size_t n, mark = w->path.len;
        member *m = sorted_members(&w->path, j, &n);
        if (w->path.failed)
            return nomem(w);
        int rc = 0;
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (mark)
                bl__sb_puts(&w->path, ".");
            bl__sb_puts(&w->path, m[i].key);
            rc = w->path.failed ? nomem(w) : walk(w, m[i].value);
            w->path.len = mark;
            if (w->path.p)
                w->path.p[mark] = '\0';
        }
        free(m);
        return rc;
    }
    const char *path = w->path.p ? w->path.p : "";
    bl_json_kind kind;
    bl__sb_clear(&w->value);
    switch (json_typeof(j)) {
    case JSON_NULL: kind = BL_JSON_NULL; bl__sb_puts(&w->value, "null"); break;
    case JSON_TRUE: kind = BL_JSON_BOOL; bl__sb_puts(&w->value, "true"); break;
    case JSON_FALSE: kind = BL_JSON_BOOL; bl__sb_puts(&w->value, "false"); break;
    case JSON_INTEGER:
    case JSON_REAL: kind = BL_JSON_NUMBER; put_number(&w->value, j); break;
    case JSON_STRING:
        kind = BL_JSON_STRING;
        bl__sb_putn(&w->value, json_string_value(j), json_string_length(j));
        break;
    case JSON_ARRAY: kind = BL_JSON_ARRAY; write_node(&w->value, j, -1, 0); break;
    case JSON_OBJECT:
    default: kind = BL_JSON_OBJECT; write_node(&w->value, j, -1, 0); break;
    }
    if (w->value.failed)
        return nomem(w);
    return w->fn(w->user, path, kind, w->value.p);
}

int bl_json_flatten(bl_ctx *ctx, const char *json, bl_json_leaf_fn fn, void *user)
{
    if (!fn)
        return bl_error(ctx, BL_EINVAL, "bl_json_flatten: NULL callback");
    json_t *root;
    int rc = parse(ctx, json, &root);
    if (rc != BL_OK)
        return rc;
    walker w = {ctx, fn, user, {0}, {0}};
    rc = walk(&w, root);
    free(w.path.p);
    free(w.value.p);
    json_decref(root);
    return rc;
}
