/* batchlab — options for plugins.
 *
 * Plugins declare the options they accept (a bl_option array) and receive their values as a
 * bl_config: an ordered set of name → typed value. The host builds a config from Lua tables,
 * command-line `name=value` text or C calls, then validates it against the declaration:
 * unknown names are rejected (with the nearest accepted name suggested), values are converted
 * to the declared type or rejected, and every declared option with a default is filled in. A
 * plugin therefore reads its options with the plain getters and never sees a missing or
 * mistyped value.
 */
#ifndef BATCHLAB_CONFIG_H
#define BATCHLAB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batchlab/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    BL_TYPE_NUMBER = 0,      /* double */
    BL_TYPE_INT = 1,         /* int64_t */
    BL_TYPE_BOOL = 2,
    BL_TYPE_STRING = 3,
    BL_TYPE_INT_LIST = 4,    /* int64_t array, possibly empty */
    BL_TYPE_NUMBER_LIST = 5, /* double array, possibly empty */
    BL_TYPE_TEXT = 6         /* only in unvalidated configs: text still to be parsed */
} bl_type;

/* "number", "integer", "boolean", "string", "integer list", "number list", "text". */
BL_EXPORT const char *bl_type_name(bl_type type);

/* A declared option. Arrays of them end with an entry whose name is NULL. */
typedef struct bl_option {
    const char *name;
    bl_type type;
    /* Default as text in option syntax: "0.5", "10", "true", "relu", "256,128", "" (empty list
     * or string). NULL: the option is required. */
    const char *default_value;
    const char *help;        /* one line */
} bl_option;

typedef struct bl_config bl_config;

/* A new empty config; the caller frees it with bl_config_free. */
BL_EXPORT int bl_config_new(bl_ctx *ctx, bl_config **out);
BL_EXPORT void bl_config_free(bl_config *cfg);
/* A deep copy. */
BL_EXPORT int bl_config_clone(bl_ctx *ctx, const bl_config *cfg, bl_config **out);

/* Setters replace an existing value of the same name (keeping its position). Strings and
 * arrays are copied. They fail only on a NULL/empty name or when memory runs out. */
BL_EXPORT int bl_config_set_number(bl_ctx *ctx, bl_config *cfg, const char *name, double v);
BL_EXPORT int bl_config_set_int(bl_ctx *ctx, bl_config *cfg, const char *name, int64_t v);
BL_EXPORT int bl_config_set_bool(bl_ctx *ctx, bl_config *cfg, const char *name, bool v);
BL_EXPORT int bl_config_set_string(bl_ctx *ctx, bl_config *cfg, const char *name,
                                   const char *v);
BL_EXPORT int bl_config_set_int_list(bl_ctx *ctx, bl_config *cfg, const char *name,
                                     const int64_t *v, size_t n);
BL_EXPORT int bl_config_set_number_list(bl_ctx *ctx, bl_config *cfg, const char *name,
                                        const double *v, size_t n);
/* A value as text ("0.5", "true", "256,128"), typed at validation (command-line options). */
BL_EXPORT int bl_config_set_text(bl_ctx *ctx, bl_config *cfg, const char *name,
                                 const char *text);
/* Parses "name=value" and calls bl_config_set_text; BL_EOPTION when there is no '='. */
BL_EXPORT int bl_config_set_assignment(bl_ctx *ctx, bl_config *cfg, const char *assignment);

/* Validates `in` against `decl` for the plugin or object named `owner` (used in messages:
 * "model mlp: unknown option 'hiden'; did you mean 'hidden'? accepted: hidden, activation,
 * ..."). On success *out is a new config the caller frees, holding every declared option
 * (given or default) with exactly its declared type, in declaration order. Conversions: an
 * integer where a number is declared; a number with an integral value where an integer is
 * declared; a single value where a list is declared; text parsed to the declared type.
 * Errors (BL_EOPTION): unknown name, wrong type, unparsable text, missing required option. */
BL_EXPORT int bl_config_validate(bl_ctx *ctx, const bl_config *in, const bl_option *decl,
                                 const char *owner, bl_config **out);

/* Iteration in insertion order. Index must be < bl_config_count. */
BL_EXPORT size_t bl_config_count(const bl_config *cfg);
BL_EXPORT const char *bl_config_key(const bl_config *cfg, size_t index);
BL_EXPORT bl_type bl_config_type_at(const bl_config *cfg, size_t index);
/* Index of `name`, or -1. */
BL_EXPORT long bl_config_find(const bl_config *cfg, const char *name);

/* Plain getters for validated configs: the value of `name`, or 0 / false / NULL (and n = 0)
 * when it is absent or of another type. Returned strings and arrays belong to the config. */
BL_EXPORT double bl_config_number(const bl_config *cfg, const char *name);
BL_EXPORT int64_t bl_config_int(const bl_config *cfg, const char *name);
BL_EXPORT bool bl_config_bool(const bl_config *cfg, const char *name);
BL_EXPORT const char *bl_config_string(const bl_config *cfg, const char *name);
BL_EXPORT const int64_t *bl_config_int_list(const bl_config *cfg, const char *name, size_t *n);
BL_EXPORT const double *bl_config_number_list(const bl_config *cfg, const char *name,
                                              size_t *n);

/* Writes the value at `index` as option text ("0.5", "true", "256,128") into buf
 * (NUL-terminated); returns the length needed. */
BL_EXPORT size_t bl_config_format_value(const bl_config *cfg, size_t index, char *buf,
                                        size_t cap);

/* The config as a JSON object with keys in sorted order and numbers printed round-trip
 * exactly ("%.17g"; a negative zero as -0.0, a non-finite number as null), so equal configs
 * give equal text (used for hashing run configurations).
 * On success *out is a malloc'd string the caller frees with free(). */
BL_EXPORT int bl_config_to_json(bl_ctx *ctx, const bl_config *cfg, char **out);

/* The accepted name nearest to `name`, or NULL: the first candidate that `name` (3 or more
 * characters) abbreviates, else the nearest by edit distance (at most 3 edits). */
BL_EXPORT const char *bl_nearest_name(const char *name, const char *const *candidates,
                                      size_t n);

#ifdef __cplusplus
}
#endif
#endif
