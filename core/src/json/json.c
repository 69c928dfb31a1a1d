/* JSON text of run configurations: a small tree parser and three writers (canonical, pretty,
 * flat leaves). See batchlab/json.h. Numbers are kept as text (integers exactly as written). */
#include "batchlab/json.h"
#include "base/strbuf.h"
#include "json/json_internal.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

/* ---- the tree ------------------------------------------------------------------------------- */

typedef struct jnode {
    bl_json_kind kind;
    char *key;              /* member key (decoded); NULL for array elements and the root */
    char *text;             /* number token, decoded string, "true" / "false"; else NULL */
    struct jnode **kids;    /* array elements / object members */
    size_t n, cap;
} jnode;

static void node_free(jnode *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->n; i++)
        node_free(j->kids[i]);
    free(j->kids);
    free(j->key);
    free(j->text);
    free(j);
}

typedef struct parser {
    bl_ctx *ctx;
    const char *s;
    size_t pos;
    int rc;                 /* first error */
} parser;

static int perr(parser *p, const char *what)
{
    if (p->rc == BL_OK)
        p->rc = bl_error(p->ctx, BL_EFORMAT, "JSON: %s at offset %zu", what, p->pos);
    return p->rc;
}

static int pnomem(parser *p)
{
    if (p->rc == BL_OK)
        p->rc = bl_error(p->ctx, BL_ENOMEM, "out of memory reading JSON");
    return p->rc;
}

static void skip_ws(parser *p)
{
    while (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
           p->s[p->pos] == '\r')
        p->pos++;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static void put_utf8(bl__sbuf *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    bl__sb_putn(b, u, n);
}

/* A string token at p->pos (the opening quote); *out is its decoded text (malloc'd). */
static int parse_string(parser *p, char **out)
{
    bl__sbuf b = {0};
    p->pos++; /* opening quote */
    bl__sb_putn(&b, "", 0);
    for (;;) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c == '\0') {
            free(b.p);
            return perr(p, "unterminated string");
        }
        if (c < 0x20) {
            free(b.p);
            return perr(p, "control character in a string");
        }
        if (c != '\\') {
            size_t start = p->pos;
            while ((unsigned char)p->s[p->pos] >= 0x20 && p->s[p->pos] != '"' &&
                   p->s[p->pos] != '\\')
                p->pos++;
            bl__sb_putn(&b, p->s + start, p->pos - start);
            continue;
        }
        char e = p->s[p->pos + 1];
        const char *plain = NULL;
        switch (e) {
        case '"': plain = "\""; break;
        case '\\': plain = "\\"; break;
        case '/': plain = "/"; break;
        case 'b': plain = "\b"; break;
        case 'f': plain = "\f"; break;
        case 'n': plain = "\n"; break;
        case 'r': plain = "\r"; break;
        case 't': plain = "\t"; break;
        case 'u': break;
        default:
            free(b.p);
            return perr(p, "bad escape in a string");
        }
        if (plain) {
            bl__sb_puts(&b, plain);
            p->pos += 2;
            continue;
        }
        unsigned cp, lo;
        if (hex4(p->s + p->pos + 2, &cp) != 0) {
            free(b.p);
            return perr(p, "bad \\u escape");
        }
        p->pos += 6;
        if (cp >= 0xd800 && cp < 0xdc00) {
            if (p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
                hex4(p->s + p->pos + 2, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff) {
                free(b.p);
                return perr(p, "unpaired surrogate in a \\u escape");
            }
            p->pos += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp < 0xe000) {
            free(b.p);
            return perr(p, "unpaired surrogate in a \\u escape");
        } else if (cp == 0) {
            free(b.p);
            return perr(p, "\\u0000 in a string is not supported");
        }
        put_utf8(&b, cp);
    }
    if (b.failed) {
        free(b.p);
        return pnomem(p);
    }
    *out = b.p;
    return BL_OK;
}

static int parse_number(parser *p, char **out)
{
    const char *s = p->s;
    size_t start = p->pos, i = p->pos;
    if (s[i] == '-')
        i++;
    if (s[i] == '0') {
        i++;
        if (s[i] >= '0' && s[i] <= '9') {
            p->pos = i;
            return perr(p, "bad number (leading zero)");
        }
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (s[i] >= '0' && s[i] <= '9')
            i++;
    } else {
        return perr(p, "bad number");
    }
    if (s[i] == '.') {
        i++;
        if (!(s[i] >= '0' && s[i] <= '9')) {
            p->pos = i;
            return perr(p, "bad number (no digit after '.')");
        }
        while (s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (s[i] == 'e' || s[i] == 'E') {
        i++;
        if (s[i] == '+' || s[i] == '-')
            i++;
        if (!(s[i] >= '0' && s[i] <= '9')) {
            p->pos = i;
            return perr(p, "bad number (no digit in the exponent)");
        }
        while (s[i] >= '0' && s[i] <= '9')
            i++;
    }
    char *t = malloc(i - start + 32);
    if (!t)
        return pnomem(p);
    memcpy(t, s + start, i - start);
    t[i - start] = '\0';
    p->pos = i;
    /* A number with a fraction or an exponent is a double: write it in the fewest digits
     * that read back as the same double, so "0.1", "0.10000000000000001" and "1e-1" agree.
     * Integers stay as written (they may be beyond a double's exact range). */
    if (strpbrk(t, ".eE")) {
        double v = strtod(t, NULL);
        if (isfinite(v)) {
            for (int digits = 1; digits <= 17; digits++) {
                snprintf(t, 32, "%.*g", digits, v);
                if (strtod(t, NULL) == v)
                    break;
            }
        }
    }
    *out = t;
    return BL_OK;
}

static int add_kid(parser *p, jnode *parent, jnode *kid)
{
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? 2 * parent->cap : 4;
        jnode **k = realloc(parent->kids, cap * sizeof *k);
        if (!k)
            return pnomem(p);
        parent->kids = k;
        parent->cap = cap;
    }
    parent->kids[parent->n++] = kid;
    return BL_OK;
}

static int parse_value(parser *p, int depth, jnode **out);

static int parse_container(parser *p, int depth, jnode *j)
{
    bool object = j->kind == BL_JSON_OBJECT;
    char close = object ? '}' : ']';
    p->pos++; /* '{' or '[' */
    skip_ws(p);
    if (p->s[p->pos] == close) {
        p->pos++;
        return BL_OK;
    }
    for (;;) {
        char *key = NULL;
        skip_ws(p);
        if (object) {
            if (p->s[p->pos] != '"')
                return perr(p, "expected a member name in quotes");
            if (parse_string(p, &key) != BL_OK)
                return p->rc;
            skip_ws(p);
            if (p->s[p->pos] != ':') {
                free(key);
                return perr(p, "expected ':'");
            }
            p->pos++;
        }
        jnode *kid = NULL;
        if (parse_value(p, depth + 1, &kid) != BL_OK) {
            free(key);
            return p->rc;
        }
        kid->key = key;
        if (add_kid(p, j, kid) != BL_OK) {
            node_free(kid);
            return p->rc;
        }
        skip_ws(p);
        if (p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->s[p->pos] == close) {
            p->pos++;
            return BL_OK;
        }
        return perr(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int parse_value(parser *p, int depth, jnode **out)
{
    if (depth > MAX_DEPTH)
        return perr(p, "nesting deeper than 64 levels");
    skip_ws(p);
    jnode *j = calloc(1, sizeof *j);
    if (!j)
        return pnomem(p);
    const char *s = p->s + p->pos;
    int rc = BL_OK;
    if (*s == '{' || *s == '[') {
        j->kind = *s == '{' ? BL_JSON_OBJECT : BL_JSON_ARRAY;
        rc = parse_container(p, depth, j);
    } else if (*s == '"') {
        j->kind = BL_JSON_STRING;
        rc = parse_string(p, &j->text);
    } else if (*s == '-' || (*s >= '0' && *s <= '9')) {
        j->kind = BL_JSON_NUMBER;
        rc = parse_number(p, &j->text);
    } else if (strncmp(s, "true", 4) == 0 || strncmp(s, "false", 5) == 0) {
        j->kind = BL_JSON_BOOL;
        j->text = strdup(*s == 't' ? "true" : "false");
        p->pos += *s == 't' ? 4 : 5;
        if (!j->text)
            rc = pnomem(p);
    } else if (strncmp(s, "null", 4) == 0) {
        j->kind = BL_JSON_NULL;
        p->pos += 4;
    } else {
        rc = perr(p, *s ? "unexpected character" : "unexpected end of text");
    }
    if (rc != BL_OK) {
        node_free(j);
        return rc;
    }
    *out = j;
    return BL_OK;
}

static int cmp_member(const void *a, const void *b)
{
    return strcmp((*(const jnode *const *)a)->key, (*(const jnode *const *)b)->key);
}

/* Sorts every object's members and refuses duplicate keys. */
static int sort_tree(parser *p, jnode *j)
{
    if (j->kind == BL_JSON_OBJECT && j->n > 1) {
        qsort(j->kids, j->n, sizeof *j->kids, cmp_member);
        for (size_t i = 1; i < j->n; i++)
            if (strcmp(j->kids[i - 1]->key, j->kids[i]->key) == 0) {
                if (p->rc == BL_OK)
                    p->rc = bl_error(p->ctx, BL_EFORMAT, "JSON: duplicate key \"%s\"",
                                     j->kids[i]->key);
                return p->rc;
            }
    }
    for (size_t i = 0; i < j->n; i++)
        if (sort_tree(p, j->kids[i]) != BL_OK)
            return p->rc;
    return BL_OK;
}

/* Parses the whole text into a sorted tree; *out freed with node_free. */
static int parse(bl_ctx *ctx, const char *json, jnode **out)
{
    if (!json)
        return bl_error(ctx, BL_EINVAL, "JSON: NULL text");
    parser p = {ctx, json, 0, BL_OK};
    jnode *root = NULL;
    if (parse_value(&p, 0, &root) != BL_OK)
        return p.rc;
    skip_ws(&p);
    if (json[p.pos] != '\0') {
        node_free(root);
        return perr(&p, "text after the JSON value");
    }
    if (sort_tree(&p, root) != BL_OK) {
        node_free(root);
        return p.rc;
    }
    *out = root;
    return BL_OK;
}

/* ---- writers -------------------------------------------------------------------------------- */


static void newline(bl__sbuf *b, int indent, int level)
{
    bl__sb_puts(b, "\n");
    for (int i = 0; i < indent * level; i++)
        bl__sb_puts(b, " ");
}

/* indent < 0: compact canonical text. */
static void write_node(bl__sbuf *b, const jnode *j, int indent, int level)
{
    switch (j->kind) {
    case BL_JSON_NULL: bl__sb_puts(b, "null"); return;
    case BL_JSON_BOOL:
    case BL_JSON_NUMBER: bl__sb_puts(b, j->text); return;
    case BL_JSON_STRING: bl__sb_json_string(b, j->text); return;
    case BL_JSON_ARRAY:
    case BL_JSON_OBJECT: break;
    }
    bool object = j->kind == BL_JSON_OBJECT;
    bl__sb_puts(b, object ? "{" : "[");
    for (size_t i = 0; i < j->n; i++) {
        if (i)
            bl__sb_puts(b, ",");
        if (indent >= 0)
            newline(b, indent, level + 1);
        if (object) {
            bl__sb_json_string(b, j->kids[i]->key);
            bl__sb_puts(b, indent >= 0 ? ": " : ":");
        }
        write_node(b, j->kids[i], indent, level + 1);
    }
    if (indent >= 0 && j->n)
        newline(b, indent, level);
    bl__sb_puts(b, object ? "}" : "]");
}

static int write_json(bl_ctx *ctx, const char *json, int indent, char **out)
{
    jnode *root;
    int rc = parse(ctx, json, &root);
    if (rc != BL_OK)
        return rc;
    bl__sbuf b = {0};
    write_node(&b, root, indent, 0);
    node_free(root);
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
    snprintf(hex, 17, "%016llx", (unsigned long long)h);
    return BL_OK;
}

/* ---- leaves --------------------------------------------------------------------------------- */

typedef struct walker {
    bl_ctx *ctx;
    bl_json_leaf_fn fn;
    void *user;
    bl__sbuf path;
} walker;

static int walk(walker *w, const jnode *j)
{
    if (j->kind == BL_JSON_OBJECT && j->n > 0) {
        size_t mark = w->path.len;
        for (size_t i = 0; i < j->n; i++) {
            if (mark)
                bl__sb_puts(&w->path, ".");
            bl__sb_puts(&w->path, j->kids[i]->key);
            if (w->path.failed)
                return bl_error(w->ctx, BL_ENOMEM, "out of memory reading JSON");
            int rc = walk(w, j->kids[i]);
            w->path.len = mark;
            w->path.p[mark] = '\0';
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    const char *path = w->path.p ? w->path.p : "";
    if (j->kind == BL_JSON_ARRAY || j->kind == BL_JSON_OBJECT) {
        bl__sbuf b = {0};
        write_node(&b, j, -1, 0);
        if (b.failed) {
            free(b.p);
            return bl_error(w->ctx, BL_ENOMEM, "out of memory reading JSON");
        }
        int rc = w->fn(w->user, path, j->kind, b.p);
        free(b.p);
        return rc;
    }
    return w->fn(w->user, path, j->kind, j->kind == BL_JSON_NULL ? "null" : j->text);
}

int bl_json_flatten(bl_ctx *ctx, const char *json, bl_json_leaf_fn fn, void *user)
{
    if (!fn)
        return bl_error(ctx, BL_EINVAL, "bl_json_flatten: NULL callback");
    jnode *root;
    int rc = parse(ctx, json, &root);
    if (rc != BL_OK)
        return rc;
    walker w = {ctx, fn, user, {0}};
    bl__sb_putn(&w.path, "", 0);
    if (w.path.failed)
        rc = bl_error(ctx, BL_ENOMEM, "out of memory reading JSON");
    else
        rc = walk(&w, root);
    free(w.path.p);
    node_free(root);
    return rc;
}
