/* Fuzz target: the JSON reader (core/src/json) through every public entry: canonical form,
 * pretty print, flattening and hash. The canonical form of an accepted text must be valid
 * UTF-8 and read back; from the second round on it is a fixed point. (Not from the first: a
 * negative zero double is written "-0", which reads back as the integer 0 — a documented quirk
 * the stored hashes pin, found by this target; see docs/reliability.md.) */
#define _POSIX_C_SOURCE 200809L
#include "batchlab/json.h"

#include "base/strbuf.h"
#include "fuzz_util.h"

static int leaf(void *user, const char *path, bl_json_kind kind, const char *value)
{
    (void)kind;
    *(size_t *)user += strlen(path) + strlen(value);
    return 0;
}

static void check_utf8(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t len = bl__utf8_valid_length((const unsigned char *)s + i, n - i);
        if (len == 0)
            abort(); /* the canonical text must be valid UTF-8 */
        i += len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    bl_ctx *ctx = bl_ctx_new();
    char *canon = NULL, *again = NULL, *third = NULL, *pretty = NULL, hex[17];
    if (bl_json_canonical(ctx, text, &canon) == BL_OK) {
        check_utf8(canon);
        if (bl_json_canonical(ctx, canon, &again) != BL_OK ||
            bl_json_canonical(ctx, again, &third) != BL_OK || strcmp(again, third) != 0)
            abort(); /* canonical reads back, and is a fixed point from the second round */
    }
    bl_json_pretty(ctx, text, &pretty);
    size_t total = 0;
    bl_json_flatten(ctx, text, leaf, &total);
    bl_json_hash(ctx, text, hex);
    free(canon);
    free(again);
    free(third);
    free(pretty);
    free(text);
    bl_ctx_free(ctx);
    return 0;
}
