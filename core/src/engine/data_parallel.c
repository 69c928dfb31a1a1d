/* Data-parallel training (engine/data_parallel.h): a rank's share of each batch, one in-place
 * sum of the flat gradient block, the noise scale from the per-rank gradients. */
#include <math.h>
#include <string.h>

#include "dist/dist.h"
#include "engine/data_parallel.h"

int bl__dp_setup(bl_ctx *ctx, const bl_run_plan *plan, bl_train_config *cfg, bl_reducer *red)
{
    cfg->reducer = NULL;
    if (!cfg->data_parallel)
        return BL_OK;
    bl_dist_comm *comm = bl__dist_current();
    if (bl__dist_size(comm) < 2)
        return BL_OK;
    bl__dist_reducer(comm, red);
    cfg->reducer = red;
    /* checkpoint and save files: rank 0 writes them (every rank holds the same state); a
     * resumed run reads the checkpoint on every rank, so it must be on a shared file system */
    bool files = plan->checkpoint_every > 0 || plan->checkpoint_seconds > 0 || plan->save;
    if (files && red->rank > 0) {
        cfg->on_snapshot = NULL;
        cfg->on_final_snapshot = NULL;
    }
    return BL_OK;
}

int bl__dp_share_params(bl_ctx *ctx, const bl_reducer *red, bl_net *net)
{
    /* the same seed builds the same weights everywhere; rank 0's are the ones (init files,
     * a plugin that draws from another source) */
    int rc = red->broadcast(red, ctx, bl_net_params(net),
                            bl_net_num_params(net) * sizeof(float), 0);
    return rc == BL_OK ? BL_OK : bl_error_prefix(ctx, "data_parallel");
}

int bl__dp_agree(bl_ctx *ctx, const bl_reducer *red, int rc)
{
    double failed = rc != BL_OK;
    int arc = red->sum_f64(red, ctx, &failed, 1);
    if (rc != BL_OK)
        return rc;
    if (arc != BL_OK)
        return arc;
    return failed > 0 ? bl_error(ctx, BL_EIO, "data_parallel: another rank could not start "
                                 "the run (see its message)") : BL_OK;
}

int bl__dp_gradients(bl_ctx *ctx, const bl_reducer *red, bl_net *net, const float *x,
                     const void *y, int64_t x_numel, size_t y_bytes, int64_t B,
                     int64_t micro_batch, bl__gns *gns, bl__dp_step *step, double *loss_sum)
{
    bl_device *dev = bl_net_device(net);
    const bl_device_ops *ops = dev->ops;
    size_t np = bl_net_num_params(net);
    float *grads = bl_net_grads(net);
    int64_t lo = B * red->rank / red->ranks, hi = B * (red->rank + 1) / red->ranks;
    int64_t chunk = micro_batch > 0 ? micro_batch : hi - lo;
    double local = 0;
    int rc = BL_OK;
    /* this rank's rows: the gradient of (1/B) × their summed loss, accumulated */
    for (int64_t off = lo; off < hi && rc == BL_OK; off += chunk) {
        int64_t n = hi - off < chunk ? hi - off : chunk;
        double l = 0;
        rc = bl_net_forward(ctx, net, x + off * x_numel, n, true, NULL);
        if (rc == BL_OK)
            rc = bl_net_loss(ctx, net, n, (const char *)y + (size_t)off * y_bytes, &l, NULL);
        if (rc == BL_OK && isfinite(l))
            rc = bl_net_backward(ctx, net, n, 1.0f / (float)B, off > lo);
        local += l;
    }
    if (rc == BL_OK && hi == lo)
        ops->fill(dev, (int64_t)np, 0.0f, grads);
    /* the small figures first: the loss, |g_r|² of this rank's mean gradient, the flags, and
     * whether this rank failed: the others wait in this sum, so a rank that failed still
     * joins it, and every rank then ends the run at this step */
    double sq = 0;
    if (rc == BL_OK && gns && hi > lo) {
        ops->sumsq(dev, (int64_t)np, grads, bl__gns_slot(gns, 0));
        rc = bl_device_download(ctx, dev, &sq, bl__gns_slot(gns, 0), sizeof sq);
        double f = (double)B / (double)(hi - lo);   /* grads hold g_r · (hi-lo)/B */
        sq *= f * f;
    }
    enum { LOSS, SQ, INTERRUPT, TIME, FAILED, SHARED };
    double shared[SHARED] = {[LOSS] = local, [SQ] = sq, [INTERRUPT] = step->interrupt ? 1 : 0,
                             [TIME] = red->rank == 0 ? step->time : 0,
                             [FAILED] = rc != BL_OK};
    int src = red->sum_f64(red, ctx, shared, SHARED);
    if (rc != BL_OK)
        return rc;
    if (src != BL_OK)
        return src;
    if (shared[FAILED] > 0)
        return bl_error(ctx, BL_EIO, "data_parallel: another rank of this run failed its step "
                        "(see its message)");
    *loss_sum = shared[LOSS];
    step->interrupt = shared[INTERRUPT] > 0;
    step->time = shared[TIME];
    if (!isfinite(*loss_sum))
        return BL_OK;         /* every rank sees it: the run diverged */
    /* the one large sum, in place over the flat block */
    if ((rc = red->sum_f32(red, ctx, grads, np)) != BL_OK)
        return rc;
    if (gns && B >= red->ranks) {
        ops->sumsq(dev, (int64_t)np, grads, bl__gns_slot(gns, 0));
        double t = 0;
        if ((rc = bl_device_download(ctx, dev, &t, bl__gns_slot(gns, 0), sizeof t)) != BL_OK)
            return rc;
        bl__gns_update(gns, red->ranks, B / red->ranks, shared[SQ] / red->ranks, t);
    }
    return BL_OK;
}
