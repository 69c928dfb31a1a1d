/* batchlab — error context.
 *
 * Every fallible function in batchlab returns 0 (BL_OK) or a negative BL_E… code and leaves a
 * human-readable message in the bl_ctx it was given: which file, which option, which layer,
 * what was expected. Nothing in libbatchlab prints, exits or aborts; the caller decides what
 * to show. A bl_ctx is not thread-safe: give each thread its own.
 */
#ifndef BATCHLAB_ERROR_H
#define BATCHLAB_ERROR_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define BL_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#define BL_EXPORT __attribute__((visibility("default")))
#else
#define BL_PRINTF(fmt_index, first_arg)
#define BL_EXPORT
#endif

enum {
    BL_OK = 0,
    BL_ENOMEM = -1,        /* an allocation failed, or a memory budget was exceeded */
    BL_EINVAL = -2,        /* a bad argument: NULL, negative size, unknown name */
    BL_ESHAPE = -3,        /* tensor or layer shapes do not fit together */
    BL_EIO = -4,           /* a file could not be opened, read or written */
    BL_EFORMAT = -5,       /* a file's contents are malformed */
    BL_ENOTFOUND = -6,     /* a plugin, option, file or record does not exist */
    BL_EPLUGIN = -7,       /* a plugin could not be loaded or misbehaved */
    BL_EUNSUPPORTED = -8,  /* not available in this build or on this device */
    BL_EDIVERGED = -9,     /* a loss or gradient became NaN or infinite */
    BL_EINTERRUPTED = -10, /* the user asked to stop (Ctrl-C) */
    BL_ESCRIPT = -11,      /* an error raised by user Lua code */
    BL_ESTORE = -12,       /* the results store refused or failed */
    BL_EOPTION = -13       /* an option has an unknown name, a wrong type or a bad value */
};

/* Severity of a message sent to the context's log callback. */
typedef enum { BL_LOG_DEBUG = 0, BL_LOG_INFO = 1, BL_LOG_WARN = 2 } bl_log_level;

typedef void (*bl_log_fn)(void *user, bl_log_level level, const char *message);

typedef struct bl_ctx bl_ctx;

/* A new context with no error and no log callback (warnings are then dropped).
 * Returns NULL only when memory is exhausted. The caller frees it with bl_ctx_free. */
BL_EXPORT bl_ctx *bl_ctx_new(void);

/* Frees a context; NULL is allowed. */
BL_EXPORT void bl_ctx_free(bl_ctx *ctx);

/* The message of the last error, or "" when there is none. The string belongs to the
 * context and is valid until the next call that sets or clears the error. */
BL_EXPORT const char *bl_errmsg(const bl_ctx *ctx);

/* The code of the last error, or BL_OK. */
BL_EXPORT int bl_errcode(const bl_ctx *ctx);

/* A short static description of a code ("out of memory", ...); never NULL. */
BL_EXPORT const char *bl_strerror(int code);

/* Records an error and returns `code`, so that `return bl_error(ctx, BL_EINVAL, ...)` works.
 * A NULL ctx is allowed (the message is dropped). Messages longer than 1 KiB are cut. */
BL_EXPORT int bl_error(bl_ctx *ctx, int code, const char *fmt, ...) BL_PRINTF(3, 4);
BL_EXPORT int bl_verror(bl_ctx *ctx, int code, const char *fmt, va_list ap) BL_PRINTF(3, 0);

/* Puts "<prefix>: " in front of the current message and returns the current code, for adding
 * context on the way up ("plugin mlp: layer linear2: ..."). A NULL ctx keeps no message but
 * still keeps the failure: it returns the code of the last error recorded with a NULL ctx on
 * this thread (bl_error(NULL, ...)), or BL_EINVAL when there was none since the last
 * bl_clear_error(NULL) — never BL_OK. */
BL_EXPORT int bl_error_prefix(bl_ctx *ctx, const char *fmt, ...) BL_PRINTF(2, 3);

/* Forgets the last error (with a NULL ctx: the code bl_error_prefix(NULL, ...) would return). */
BL_EXPORT void bl_clear_error(bl_ctx *ctx);

/* Installs a callback for warnings and information (e.g. "two plugins named mlp; using ...").
 * `fn` may be NULL to drop them. The callback must not call back into the same context. */
BL_EXPORT void bl_ctx_set_log(bl_ctx *ctx, bl_log_fn fn, void *user);

/* Sends a message to the log callback, if any. */
BL_EXPORT void bl_log(bl_ctx *ctx, bl_log_level level, const char *fmt, ...) BL_PRINTF(3, 4);

#ifdef __cplusplus
}
#endif
#endif
