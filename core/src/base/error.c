#include "batchlab/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_CAP 1024

/* The code of the last error recorded with a NULL context on this thread: a NULL ctx keeps no
 * message, but bl_error_prefix(NULL, ...) must still return the code of the failure it wraps
 * (never BL_OK), so callers that write `return bl_error_prefix(ctx, ...)` stay failures. */
static _Thread_local int null_ctx_code = BL_OK;

struct bl_ctx {
    int code;
    char msg[MSG_CAP];
    bl_log_fn log_fn;
    void *log_user;
};

bl_ctx *bl_ctx_new(void)
{
    return calloc(1, sizeof(bl_ctx));
}

void bl_ctx_free(bl_ctx *ctx)
{
    free(ctx);
}

const char *bl_errmsg(const bl_ctx *ctx)
{
    return ctx ? ctx->msg : "";
}

int bl_errcode(const bl_ctx *ctx)
{
    return ctx ? ctx->code : BL_OK;
}

const char *bl_strerror(int code)
{
    switch (code) {
    case BL_OK: return "success";
    case BL_ENOMEM: return "out of memory";
    case BL_EINVAL: return "invalid argument";
    case BL_ESHAPE: return "shape mismatch";
    case BL_EIO: return "input/output error";
    case BL_EFORMAT: return "malformed data";
    case BL_ENOTFOUND: return "not found";
    case BL_EPLUGIN: return "plugin error";
    case BL_EUNSUPPORTED: return "not supported";
    case BL_EDIVERGED: return "diverged";
    case BL_EINTERRUPTED: return "interrupted";
    case BL_ESCRIPT: return "script error";
    case BL_ESTORE: return "store error";
    case BL_EOPTION: return "bad option";
    default: return "unknown error";
    }
}

int bl_verror(bl_ctx *ctx, int code, const char *fmt, va_list ap)
{
    if (!ctx) {
        null_ctx_code = code;
        return code;
    }
    ctx->code = code;
    vsnprintf(ctx->msg, MSG_CAP, fmt, ap);
    return code;
}

int bl_error(bl_ctx *ctx, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bl_verror(ctx, code, fmt, ap);
    va_end(ap);
    return code;
}

int bl_error_prefix(bl_ctx *ctx, const char *fmt, ...)
{
    if (!ctx)
        return null_ctx_code != BL_OK ? null_ctx_code : BL_EINVAL;
    char joined[MSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(joined, sizeof joined, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    size_t used = (size_t)n < MSG_CAP ? (size_t)n : MSG_CAP - 1;
    /* append ": <old message>" after the prefix, cutting at the capacity */
    const char *sep = ": ";
    for (const char *p = sep; *p && used < MSG_CAP - 1; p++)
        joined[used++] = *p;
    for (const char *p = ctx->msg; *p && used < MSG_CAP - 1; p++)
        joined[used++] = *p;
    joined[used] = '\0';
    memcpy(ctx->msg, joined, MSG_CAP);
    return ctx->code;
}

void bl_clear_error(bl_ctx *ctx)
{
    if (!ctx) {
        null_ctx_code = BL_OK;
        return;
    }
    ctx->code = BL_OK;
    ctx->msg[0] = '\0';
}

void bl_ctx_set_log(bl_ctx *ctx, bl_log_fn fn, void *user)
{
    if (!ctx)
        return;
    ctx->log_fn = fn;
    ctx->log_user = user;
}

void bl_log(bl_ctx *ctx, bl_log_level level, const char *fmt, ...)
{
    if (!ctx || !ctx->log_fn)
        return;
    char msg[MSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctx->log_fn(ctx->log_user, level, msg);
}
