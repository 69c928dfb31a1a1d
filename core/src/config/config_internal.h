/* Internal: what the three parts of the option code share — config.c (the store),
 * config_text.c (option text and JSON) and config_validate.c (validation) — and the check of a
 * plugin's option declaration used by the plugin loader. */
#ifndef BATCHLAB_CONFIG_INTERNAL_H
#define BATCHLAB_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/strbuf.h"

#include "batchlab/config.h"

/* One named value. Strings and arrays are owned by the entry. */
typedef struct bl__config_entry {
    char *name;
    bl_type type;
    union {
        double num;          /* BL_TYPE_NUMBER */
        int64_t i;           /* BL_TYPE_INT */
        bool b;              /* BL_TYPE_BOOL */
        char *s;             /* BL_TYPE_STRING, BL_TYPE_TEXT */
        struct {
            void *p;         /* int64_t[n] or double[n]; NULL when n = 0 */
            size_t n;
        } list;              /* BL_TYPE_INT_LIST, BL_TYPE_NUMBER_LIST */
    } v;
} bl__config_entry;

struct bl_config {
    bl__config_entry *e;     /* [n], insertion order */
    size_t n, cap;
};

/* ---- config.c ----------------------------------------------------------------------------- */

/* Frees the value of `e` (not its name) and zeroes it. */
void bl__config_entry_clear(bl__config_entry *e);
/* Copies the value of `src` as a value of `type` (the same type) into `dst`, which holds
 * nothing; BL_ENOMEM (no message) when memory runs out. */
int bl__config_value_copy(bl__config_entry *dst, bl_type type, const bl__config_entry *src);
/* Sets `name` to the value in `val`, replacing an existing one in place. Takes ownership of the
 * value, also on failure (where it is freed). */
int bl__config_put(bl_ctx *ctx, bl_config *cfg, const char *name, bl__config_entry *val);
/* Appends `name` (which the config does not hold: the caller knows) with the value in `val`,
 * without looking for it; takes ownership of the value as bl__config_put does. */
int bl__config_append(bl_ctx *ctx, bl_config *cfg, const char *name, bl__config_entry *val);

/* ---- config_text.c ------------------------------------------------------------------------ */


/* Appends the value of `e` as option text ("0.5", "true", "256,128"). */
void bl__config_format_entry(bl__sbuf *b, const bl__config_entry *e);

/* Parses option text into a new value of `type`. BL_EOPTION with the reason in `why` when it
 * does not parse, BL_ENOMEM when memory runs out. */
int bl__config_parse_text(const char *text, bl_type type, bl__config_entry *out, char *why,
                          size_t why_cap);

/* An integral double in the range of int64_t, converted. */
bool bl__integral(double v, int64_t *out);
/* Parses the whole of [a, b) (at most 63 characters) as a finite number: the one number
 * reader of option texts (config values, lists, run-spec composite texts). */
bool bl__parse_number(const char *a, const char *b, double *out);

/* ---- config_validate.c -------------------------------------------------------------------- */

/* Checks a plugin's option table: names non-empty and unique, declarable types, defaults that
 * parse to their type. BL_EPLUGIN with a message prefixed by `owner` otherwise. */
int bl__option_decl_check(bl_ctx *ctx, const bl_option *decl, const char *owner);

#endif
