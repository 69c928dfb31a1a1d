/* batchlab — reading run configurations stored as JSON text.
 *
 * Run configurations travel as JSON (bl_config_to_json writes them; the results store keeps
 * them). These helpers give the three views the tools need: a canonical form (the same
 * configuration always gives the same text, so it can be hashed), a flat list of leaves
 * ("optimizer.lr" = 0.05) for CSV columns, and an indented form for people.
 *
 * The text is read by jansson: RFC 8259 JSON in UTF-8, nesting at most 64 deep, no \u0000 in
 * strings. Integers are exact 64-bit values (one beyond int64 is an error, not rounded; "-0"
 * is the integer 0); a number with a fraction or an exponent is a double (one beyond a
 * double's range is an error) and is written in the fewest digits that read back as the same
 * double ("0.10000000000000001" → "0.1", "1E+5" → "1e+05", "-0.0" → "-0"). The writers are
 * batchlab's own, so the canonical text — and the configuration hashes stored from it — stay
 * the same from release to release.
 *
 * Parse errors are BL_EFORMAT with a message that names the line, the column and the byte
 * offset where reading stopped ("... at line 2, column 4 (offset 7)").
 */
#ifndef BATCHLAB_JSON_H
#define BATCHLAB_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "batchlab/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    BL_JSON_NULL = 0,
    BL_JSON_BOOL = 1,
    BL_JSON_NUMBER = 2,
    BL_JSON_STRING = 3,
    BL_JSON_ARRAY = 4,
    BL_JSON_OBJECT = 5
} bl_json_kind;

/* The canonical form of `json`: object keys sorted (byte order), no whitespace, strings
 * escaped as bl_config_to_json escapes them, numbers as said above. Equal configurations
 * give equal text whatever their key order, spacing or number spelling. On success *out is
 * a malloc'd string the caller frees with free(); on error (BL_EFORMAT naming the line, column
 * and byte offset; BL_ENOMEM; BL_EINVAL for a NULL argument) *out is untouched. A duplicate
 * key in one object is an error (BL_EFORMAT). */
BL_EXPORT int bl_json_canonical(bl_ctx *ctx, const char *json, char **out);

/* The canonical form indented by two spaces per level, one member per line. *out as above. */
BL_EXPORT int bl_json_pretty(bl_ctx *ctx, const char *json, char **out);

/* Called for each leaf, in canonical order. `path` joins object keys with '.' ("" for a
 * top-level scalar); arrays are leaves: `value` is their canonical JSON text ("[256,128]"), as
 * it is for an empty object ("{}"). Strings are given decoded (UTF-8), numbers as their token,
 * booleans as "true"/"false", null as "null". `path` and `value` are valid during the call
 * only. A non-zero return stops the walk and is returned by bl_json_flatten. */
typedef int (*bl_json_leaf_fn)(void *user, const char *path, bl_json_kind kind,
                               const char *value);

/* Walks the leaves of `json` (see bl_json_leaf_fn). Returns BL_OK, a parse error (BL_EFORMAT,
 * BL_ENOMEM) or the callback's non-zero return. */
BL_EXPORT int bl_json_flatten(bl_ctx *ctx, const char *json, bl_json_leaf_fn fn, void *user);

/* 64-bit FNV-1a of the canonical form of `json`, as 16 lowercase hex digits plus NUL in
 * `hex`. This is the configuration hash of the results store: two configurations that differ
 * only in key order or whitespace hash the same. Errors as bl_json_canonical. */
BL_EXPORT int bl_json_hash(bl_ctx *ctx, const char *json, char hex[17]);

#ifdef __cplusplus
}
#endif
#endif
