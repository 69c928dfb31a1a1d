/* Plugin options, part 1: the config itself — typed name → value entries in insertion order,
 * setters, getters and iteration (see batchlab/config.h). Option text and JSON are in
 * config_text.c, validation against declarations in config_validate.c. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* strdup */
#endif

#include "batchlab/config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"
#include "base/grow.h"

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

void bl__config_entry_clear(bl__config_entry *e)
{
    if (e->type == BL_TYPE_STRING || e->type == BL_TYPE_TEXT)
        free(e->v.s);
    else if (e->type == BL_TYPE_INT_LIST || e->type == BL_TYPE_NUMBER_LIST)
        free(e->v.list.p);
    memset(&e->v, 0, sizeof e->v);
}

/* Copies a value of `type` from `src` into `dst` (which holds nothing). */
int bl__config_value_copy(bl__config_entry *dst, bl_type type, const bl__config_entry *src)
{
    dst->type = type;
    switch (type) {
    case BL_TYPE_STRING:
    case BL_TYPE_TEXT:
        dst->v.s = strdup(src->v.s);
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
        bl__config_entry_clear(&cfg->e[i]);
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
int bl__config_put(bl_ctx *ctx, bl_config *cfg, const char *name, bl__config_entry *val)
{
    if (!cfg || !name || !name[0]) {
        bl__config_entry_clear(val);
        return bl_error(ctx, BL_EINVAL, "config: an option needs a non-empty name");
    }
    long at = bl_config_find(cfg, name);
    if (at >= 0) {
        bl__config_entry *e = &cfg->e[at];
        bl__config_entry_clear(e);
        e->type = val->type;
        e->v = val->v;
        return BL_OK;
    }
    bl__config_entry *grown = bl__grow(cfg->e, &cfg->cap, cfg->n + 1, sizeof *grown);
    if (!grown) {
        bl__config_entry_clear(val);
        return bl_error(ctx, BL_ENOMEM, "out of memory setting option '%s'", name);
    }
    cfg->e = grown;
    char *copy = strdup(name);
    if (!copy) {
        bl__config_entry_clear(val);
        return bl_error(ctx, BL_ENOMEM, "out of memory setting option '%s'", name);
    }
    cfg->e[cfg->n].name = copy;
    cfg->e[cfg->n].type = val->type;
    cfg->e[cfg->n].v = val->v;
    cfg->n++;
    return BL_OK;
}

int bl__config_append(bl_ctx *ctx, bl_config *cfg, const char *name, bl__config_entry *val)
{
    bl__config_entry *grown = bl__grow(cfg->e, &cfg->cap, cfg->n + 1, sizeof *grown);
    char *copy = grown ? strdup(name) : NULL;
    if (grown)
        cfg->e = grown;
    if (!copy) {
        bl__config_entry_clear(val);
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
        bl__config_entry val = {0};
        if (bl__config_value_copy(&val, cfg->e[i].type, &cfg->e[i]) != BL_OK ||
            (rc = bl__config_put(ctx, copy, cfg->e[i].name, &val)) != BL_OK) {
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
    bl__config_entry val = {.type = BL_TYPE_NUMBER, .v.num = v};
    return bl__config_put(ctx, cfg, name, &val);
}

int bl_config_set_int(bl_ctx *ctx, bl_config *cfg, const char *name, int64_t v)
{
    bl__config_entry val = {.type = BL_TYPE_INT, .v.i = v};
    return bl__config_put(ctx, cfg, name, &val);
}

int bl_config_set_bool(bl_ctx *ctx, bl_config *cfg, const char *name, bool v)
{
    bl__config_entry val = {.type = BL_TYPE_BOOL, .v.b = v};
    return bl__config_put(ctx, cfg, name, &val);
}

static int set_owned_string(bl_ctx *ctx, bl_config *cfg, const char *name, bl_type type,
                            const char *v)
{
    if (!v)
        return bl_error(ctx, BL_EINVAL, "config: option '%s' given a NULL string",
                        name ? name : "(null)");
    bl__config_entry val = {.type = type, .v.s = strdup(v)};
    if (!val.v.s)
        return bl_error(ctx, BL_ENOMEM, "out of memory setting option '%s'",
                        name ? name : "(null)");
    return bl__config_put(ctx, cfg, name, &val);
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
    bl__config_entry src = {.type = type, .v.list = {(void *)v, n}};
    bl__config_entry val = {0};
    if (bl__config_value_copy(&val, type, &src) != BL_OK)
        return bl_error(ctx, BL_ENOMEM, "out of memory setting option '%s'",
                        name ? name : "(null)");
    return bl__config_put(ctx, cfg, name, &val);
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

static const bl__config_entry *get(const bl_config *cfg, const char *name, bl_type type)
{
    long at = bl_config_find(cfg, name);
    if (at < 0 || cfg->e[at].type != type)
        return NULL;
    return &cfg->e[at];
}

double bl_config_number(const bl_config *cfg, const char *name)
{
    const bl__config_entry *e = get(cfg, name, BL_TYPE_NUMBER);
    return e ? e->v.num : 0.0;
}

int64_t bl_config_int(const bl_config *cfg, const char *name)
{
    const bl__config_entry *e = get(cfg, name, BL_TYPE_INT);
    return e ? e->v.i : 0;
}

bool bl_config_bool(const bl_config *cfg, const char *name)
{
    const bl__config_entry *e = get(cfg, name, BL_TYPE_BOOL);
    return e ? e->v.b : false;
}

const char *bl_config_string(const bl_config *cfg, const char *name)
{
    const bl__config_entry *e = get(cfg, name, BL_TYPE_STRING);
    return e ? e->v.s : NULL;
}

const int64_t *bl_config_int_list(const bl_config *cfg, const char *name, size_t *n)
{
    const bl__config_entry *e = get(cfg, name, BL_TYPE_INT_LIST);
    if (n)
        *n = e ? e->v.list.n : 0;
    return e ? e->v.list.p : NULL;
}

const double *bl_config_number_list(const bl_config *cfg, const char *name, size_t *n)
{
    const bl__config_entry *e = get(cfg, name, BL_TYPE_NUMBER_LIST);
    if (n)
        *n = e ? e->v.list.n : 0;
    return e ? e->v.list.p : NULL;
}
