/* The host's scheduler object: validated options, the plugin's handle, checked answers
 * (see batchlab/scheduler.h). */
#include "batchlab/scheduler.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "plugin/plugin_internal.h"

struct bl_scheduler {
    const bl_plugin *plugin;     /* retained until close */
    const bl_scheduler_ops *ops;
    void *handle;                /* the plugin's object */
    bl_config *opts;             /* validated */
    int64_t max_batch;           /* asked once, at open */
    bool needs_gns;              /* asked once, at open */
};

int bl_scheduler_open(bl_ctx *ctx, const bl_plugin *plugin, const bl_config *opts,
                      bl_scheduler **out)
{
    if (!out)
        return bl_error(ctx, BL_EINVAL, "bl_scheduler_open: out is NULL");
    int rc = bl__plugin_expect(ctx, plugin, BL_PLUGIN_SCHEDULER);
    if (rc)
        return rc;
    char owner[96];
    snprintf(owner, sizeof owner, "scheduler %s", plugin->name);
    bl_scheduler *s = calloc(1, sizeof *s);
    if (!s)
        return bl_error(ctx, BL_ENOMEM, "%s: out of memory", owner);
    s->plugin = plugin;
    s->ops = plugin->ops;
    rc = bl_config_validate(ctx, opts, plugin->options, owner, &s->opts);
    if (rc) {
        free(s);
        return rc;
    }
    bl_plugin_retain(plugin);
    bl_clear_error(ctx);
    rc = s->ops->create(ctx, s->opts, &s->handle);
    if (rc) {
        rc = bl__plugin_failed(ctx, rc, owner, "create");
        bl_config_free(s->opts);
        free(s);
        bl_plugin_release(plugin);
        return rc;
    }
    s->max_batch = s->ops->max_batch(s->handle);
    s->needs_gns = BL__HAS_FIELD(s->ops, bl_scheduler_ops, needs_gns) && s->ops->needs_gns &&
                   s->ops->needs_gns(s->handle);
    if (s->max_batch < 1) {
        rc = bl_error(ctx, BL_EPLUGIN, "%s: max_batch returned %" PRId64 " (must be at least 1)",
                      owner, s->max_batch);
        bl_scheduler_close(s);
        return rc;
    }
    *out = s;
    return BL_OK;
}

void bl_scheduler_close(bl_scheduler *s)
{
    if (!s)
        return;
    const bl_plugin *plugin = s->plugin;
    s->ops->destroy(s->handle);
    bl_config_free(s->opts);
    free(s);
    bl_plugin_release(plugin); /* last: destroy ran inside the shared object */
}

int64_t bl_scheduler_max_batch(const bl_scheduler *s)
{
    return s ? s->max_batch : 0;
}

bool bl_scheduler_needs_gns(const bl_scheduler *s)
{
    return s && s->needs_gns;
}

const bl_plugin *bl_scheduler_plugin(const bl_scheduler *s)
{
    return s ? s->plugin : NULL;
}

/* Called once per step: checks only, no allocation. */
int bl_scheduler_next(bl_ctx *ctx, bl_scheduler *s, const bl_train_state *state,
                      int64_t *batch, double *lr_factor)
{
    if (!s || !state || !batch)
        return bl_error(ctx, BL_EINVAL, "bl_scheduler_next: NULL scheduler, state or batch");
    const char *name = s->plugin->name;
    int64_t b = 0;
    double lr = 1.0;
    /* The plugin sees the host's sizes whoever filled the state (the engine, Lua, a test):
     * one small copy per step. */
    bl_train_state st = *state;
    st.size = (uint32_t)sizeof st;
    st.point_size = (uint32_t)sizeof(bl_eval_point);
    bl_clear_error(ctx);
    int rc = s->ops->next(s->handle, ctx, &st, &b, &lr);
    if (rc) {
        char owner[96];
        snprintf(owner, sizeof owner, "scheduler %s", name);
        return bl__plugin_failed(ctx, rc, owner, "next");
    }
    if (b < 1 || b > s->max_batch)
        return bl_error(ctx, BL_EPLUGIN,
                        "scheduler %s returned batch %" PRId64 " at step %" PRId64
                        " (must be between 1 and its max_batch %" PRId64 ")",
                        name, b, state->step, s->max_batch);
    if (!isfinite(lr) || lr <= 0)
        return bl_error(ctx, BL_EPLUGIN,
                        "scheduler %s returned learning-rate factor %g at step %" PRId64
                        " (must be finite and positive)",
                        name, lr, state->step);
    *batch = b;
    if (lr_factor)
        *lr_factor = lr;
    return BL_OK;
}

int bl_scheduler_save(bl_ctx *ctx, const bl_scheduler *s, void *buf, size_t cap, size_t *len)
{
    if (!s || !len)
        return bl_error(ctx, BL_EINVAL, "bl_scheduler_save: NULL scheduler or len");
    *len = 0;
    if (!BL__HAS_FIELD(s->ops, bl_scheduler_ops, restore) || !s->ops->save)
        return BL_OK;
    bl_clear_error(ctx);
    int rc = s->ops->save(s->handle, ctx, cap ? buf : NULL, cap, len);
    if (rc) {
        char owner[96];
        snprintf(owner, sizeof owner, "scheduler %s", s->plugin->name);
        return bl__plugin_failed(ctx, rc, owner, "save");
    }
    return BL_OK;
}

int bl_scheduler_restore(bl_ctx *ctx, bl_scheduler *s, const void *buf, size_t len)
{
    if (!s || (len && !buf))
        return bl_error(ctx, BL_EINVAL, "bl_scheduler_restore: NULL scheduler or state");
    if (len == 0)
        return BL_OK;
    char owner[96];
    snprintf(owner, sizeof owner, "scheduler %s", s->plugin->name);
    if (!BL__HAS_FIELD(s->ops, bl_scheduler_ops, restore) || !s->ops->restore)
        return bl_error(ctx, BL_EPLUGIN, "%s: a saved state of %zu bytes, but the plugin cannot "
                        "restore one", owner, len);
    bl_clear_error(ctx);
    int rc = s->ops->restore(s->handle, ctx, buf, len);
    if (rc)
        return bl__plugin_failed(ctx, rc, owner, "restore");
    return BL_OK;
}
