/* The host's dataset object: validated options, the plugin's handle, checked gathers
 * (see batchlab/dataset.h). */
#include "batchlab/dataset.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "plugin/plugin_internal.h"

struct bl_dataset {
    const bl_plugin *plugin;     /* retained until close */
    const bl_dataset_ops *ops;
    void *handle;                /* the plugin's object */
    bl_config *opts;             /* validated */
    bl_data_info info;           /* as reported by the plugin after open */
};

const char *bl_split_name(bl_split split)
{
    switch (split) {
    case BL_SPLIT_TRAIN: return "train";
    case BL_SPLIT_VALIDATION: return "validation";
    case BL_SPLIT_TEST: return "test";
    }
    return "unknown";
}

/* What the plugin reported must describe data the engine can use. */
static int check_info(bl_ctx *ctx, const char *name, const bl_data_info *in)
{
    char shape[64];
    bool shape_ok = in->sample.ndim == 1 || in->sample.ndim == 3;
    for (int d = 0; shape_ok && d < in->sample.ndim; d++)
        shape_ok = in->sample.dim[d] > 0;
    if (!shape_ok) {
        if (in->sample.ndim == 1 || in->sample.ndim == 3)
            bl_shape_format(&in->sample, shape, sizeof shape);
        else
            snprintf(shape, sizeof shape, "with %d dimensions", in->sample.ndim);
        return bl_error(ctx, BL_EPLUGIN,
                        "dataset %s: the plugin reported an invalid sample shape %s (expected "
                        "[features] or [channels, height, width] with positive sizes)",
                        name, shape);
    }
    if (in->classes == 1 || in->classes < 0)
        return bl_error(ctx, BL_EPLUGIN,
                        "dataset %s: the plugin reported %" PRId64 " classes (expected 0 for "
                        "regression or at least 2)",
                        name, in->classes);
    if (in->classes == 0 && in->target_dim < 1)
        return bl_error(ctx, BL_EPLUGIN,
                        "dataset %s: the plugin reported a regression target of %" PRId64
                        " values (expected at least 1)",
                        name, in->target_dim);
    for (int s = 0; s < BL_SPLIT_COUNT; s++)
        if (in->count[s] < 0)
            return bl_error(ctx, BL_EPLUGIN,
                            "dataset %s: the plugin reported %" PRId64 " samples in the %s split",
                            name, in->count[s], bl_split_name((bl_split)s));
    return BL_OK;
}

int bl_dataset_open(bl_ctx *ctx, const bl_plugin *plugin, const bl_config *opts,
                    bl_dataset **out)
{
    if (!out)
        return bl_error(ctx, BL_EINVAL, "bl_dataset_open: out is NULL");
    int rc = bl__plugin_expect(ctx, plugin, BL_PLUGIN_DATASET);
    if (rc)
        return rc;
    char owner[96];
    snprintf(owner, sizeof owner, "dataset %s", plugin->name);
    bl_dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return bl_error(ctx, BL_ENOMEM, "%s: out of memory", owner);
    ds->plugin = plugin;
    ds->ops = plugin->ops;
    rc = bl_config_validate(ctx, opts, plugin->options, owner, &ds->opts);
    if (rc) {
        free(ds);
        return rc;
    }
    bl_plugin_retain(plugin);
    bl_clear_error(ctx);
    rc = ds->ops->open(ctx, ds->opts, &ds->handle);
    if (rc) {
        rc = bl__plugin_failed(ctx, rc, owner, "open");
        bl_config_free(ds->opts);
        free(ds);
        bl_plugin_release(plugin);
        return rc;
    }
    ds->info.size = (uint32_t)sizeof ds->info; /* the rest is zero (calloc) */
    ds->ops->info(ds->handle, &ds->info);
    if (ds->info.size != sizeof ds->info) {
        rc = bl_error(ctx, BL_EPLUGIN,
                      "dataset %s: the plugin's info changed out->size from %zu to %u; keep it "
                      "(clear the struct with bl_data_info_reset, not memset, and fill its "
                      "fields one by one)",
                      plugin->name, sizeof ds->info, ds->info.size);
        bl_dataset_close(ds);
        return rc;
    }
    if (ds->info.classes >= 2 && ds->info.target_dim == 0)
        ds->info.target_dim = 1;
    rc = check_info(ctx, plugin->name, &ds->info);
    if (rc) {
        bl_dataset_close(ds);
        return rc;
    }
    *out = ds;
    return BL_OK;
}

void bl_dataset_close(bl_dataset *ds)
{
    if (!ds)
        return;
    const bl_plugin *plugin = ds->plugin;
    ds->ops->close(ds->handle);
    bl_config_free(ds->opts);
    free(ds);
    bl_plugin_release(plugin); /* last: close ran inside the shared object */
}

const bl_data_info *bl_dataset_info(const bl_dataset *ds)
{
    return ds ? &ds->info : NULL;
}

const bl_plugin *bl_dataset_plugin(const bl_dataset *ds)
{
    return ds ? ds->plugin : NULL;
}

const bl_config *bl_dataset_options(const bl_dataset *ds)
{
    return ds ? ds->opts : NULL;
}

/* The checks of a gather's arguments (x and y non-NULL, every index in range). */
static int check_gather(bl_ctx *ctx, const bl_dataset *ds, bl_split split, const int64_t *idx,
                        int64_t n, const void *x, const void *y)
{
    const char *name = ds->plugin->name;
    if ((unsigned)split >= BL_SPLIT_COUNT)
        return bl_error(ctx, BL_EINVAL, "dataset %s: unknown split %d", name, (int)split);
    int64_t count = ds->info.count[split];
    if (count == 0)
        return bl_error(ctx, BL_EINVAL, "dataset %s: there is no %s split", name,
                        bl_split_name(split));
    if (n < 0 || (n > 0 && (!idx || !x || !y)))
        return bl_error(ctx, BL_EINVAL,
                        "dataset %s: gather needs n >= 0 and non-NULL indices, x and y "
                        "(n = %" PRId64 ")",
                        name, n);
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= count)
            return bl_error(ctx, BL_EINVAL,
                            "dataset %s: index %" PRId64 " (position %" PRId64 " of %" PRId64
                            ") is out of range for the %s split of %" PRId64 " samples",
                            name, idx[i], i, n, bl_split_name(split), count);
    return BL_OK;
}

int bl_dataset_gather(bl_ctx *ctx, bl_dataset *ds, bl_split split, const int64_t *idx,
                      int64_t n, float *x, void *y)
{
    if (!ds)
        return bl_error(ctx, BL_EINVAL, "bl_dataset_gather: no dataset");
    const char *name = ds->plugin->name;
    int rc = check_gather(ctx, ds, split, idx, n, x, y);
    if (rc != BL_OK || n == 0)
        return rc;
    bl_clear_error(ctx);
    rc = ds->ops->gather(ds->handle, ctx, split, idx, n, x, y);
    if (rc) {
        char owner[96];
        snprintf(owner, sizeof owner, "dataset %s", name);
        return bl__plugin_failed(ctx, rc, owner, "gather");
    }
    return BL_OK;
}

int bl_dataset_gather_bytes(bl_ctx *ctx, bl_dataset *ds, bl_split split, const int64_t *idx,
                            int64_t n, uint8_t *x, void *y, float *scale, float *offset)
{
    if (!ds || !scale || !offset)
        return bl_error(ctx, BL_EINVAL, "bl_dataset_gather_bytes: bad argument");
    if (!BL__HAS_FIELD(ds->ops, bl_dataset_ops, gather_bytes) || !ds->ops->gather_bytes)
        return BL_EUNSUPPORTED;
    int rc = check_gather(ctx, ds, split, idx, n, x, y);
    if (rc != BL_OK)
        return rc;
    bl_clear_error(ctx);
    rc = ds->ops->gather_bytes(ds->handle, ctx, split, idx, n, x, y, scale, offset);
    if (rc) {
        char owner[96];
        snprintf(owner, sizeof owner, "dataset %s", ds->plugin->name);
        return bl__plugin_failed(ctx, rc, owner, "gather_bytes");
    }
    return BL_OK;
}

int bl_dataset_property(bl_ctx *ctx, bl_dataset *ds, const char *key, double *out, int64_t cap,
                        int64_t *n)
{
    if (!ds || !key || !n || (cap > 0 && !out) || cap < 0)
        return bl_error(ctx, BL_EINVAL, "bl_dataset_property: bad argument");
    const char *name = ds->plugin->name;
    *n = 0;
    if (!BL__HAS_FIELD(ds->ops, bl_dataset_ops, property) || !ds->ops->property)
        return bl_error(ctx, BL_ENOTFOUND, "dataset %s has no properties (asked for '%s')",
                        name, key);
    bl_clear_error(ctx);
    int rc = ds->ops->property(ds->handle, ctx, key, out, cap, n);
    if (rc == BL_ENOTFOUND && bl_errmsg(ctx)[0] == '\0')
        return bl_error(ctx, BL_ENOTFOUND, "dataset %s has no property '%s'", name, key);
    if (rc) {
        char owner[96];
        snprintf(owner, sizeof owner, "dataset %s", name);
        return bl__plugin_failed(ctx, rc, owner, "property");
    }
    return BL_OK;
}
