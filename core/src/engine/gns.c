/* Gradient noise scale B_simple = tr(Σ)/|G|² (McCandlish et al. 2018), from the gradients of
 * k equal chunks of a batch. With m = mean_i |g_i|² and t = |mean_i g_i|² over chunks of b
 * samples: E[m] = |G|² + tr(Σ)/b and E[t] = |G|² + tr(Σ)/(k·b), hence the unbiased
 *   |G|² ≈ (k·t − m)/(k − 1),   tr(Σ) ≈ k·b·(m − t)/(k − 1).
 * Each estimate is noisy (|G|² can come out negative), so the two are smoothed separately and
 * only their ratio is reported — averaging ratios would be biased. */
#include <math.h>
#include <stdlib.h>

#include "engine/engine.h"

void bl__gns_init(bl__gns *g, double beta)
{
    g->beta = beta;
    g->ema_g2 = 0.0;
    g->ema_trace = 0.0;
    g->updates = 0;
    g->dev = NULL;
    g->slots = NULL;
    g->slots_host = NULL;
    g->n_slots = 0;
}

int bl__gns_reserve(bl_ctx *ctx, bl__gns *g, bl_device *dev, int64_t n_slots)
{
    g->slots_host = calloc((size_t)n_slots, sizeof *g->slots_host);
    if (!g->slots_host)
        return bl_error(ctx, BL_ENOMEM, "noise scale: out of memory");
    int rc = bl_device_alloc(ctx, dev, (size_t)n_slots * sizeof(double), (void **)&g->slots);
    if (rc != BL_OK) {
        free(g->slots_host);
        g->slots_host = NULL;
        return rc;
    }
    g->dev = dev;
    g->n_slots = n_slots;
    return BL_OK;
}

void bl__gns_release(bl__gns *g)
{
    if (g->dev)
        bl_device_release(g->dev, g->slots, (size_t)g->n_slots * sizeof(double));
    free(g->slots_host);
    g->dev = NULL;
    g->slots = NULL;
    g->slots_host = NULL;
    g->n_slots = 0;
}

double *bl__gns_slot(bl__gns *g, int64_t i)
{
    return g->slots + i;
}

int bl__gns_collect(bl_ctx *ctx, bl__gns *g, int64_t k, int64_t b, double f)
{
    if (k + 1 > g->n_slots)
        return bl_error(ctx, BL_EINVAL, "noise scale: %lld chunks but %lld reduction slots",
                        (long long)k, (long long)g->n_slots - 1);
    int rc = bl_device_download(ctx, g->dev, g->slots_host, g->slots,
                                (size_t)(k + 1) * sizeof(double));
    if (rc != BL_OK)
        return rc;
    double sum_sq = 0;
    for (int64_t i = 0; i < k; i++)
        sum_sq += g->slots_host[i];
    bl__gns_update(g, k, b, sum_sq / (double)k, g->slots_host[k] * f * f);
    return BL_OK;
}

void bl__gns_update(bl__gns *g, int64_t k, int64_t b, double mean_sq, double mean_grad_sq)
{
    if (k < 2 || b < 1 || !isfinite(mean_sq) || !isfinite(mean_grad_sq))
        return;
    double kk = (double)k;
    double g2 = (kk * mean_grad_sq - mean_sq) / (kk - 1.0);
    double trace = kk * (double)b * (mean_sq - mean_grad_sq) / (kk - 1.0);
    /* Both EMAs start at 0 and share β, so their bias (1 − β^n) cancels in the ratio. */
    g->ema_g2 = g->beta * g->ema_g2 + (1.0 - g->beta) * g2;
    g->ema_trace = g->beta * g->ema_trace + (1.0 - g->beta) * trace;
    g->updates++;
}

double bl__gns_value(const bl__gns *g)
{
    if (g->updates == 0 || !(g->ema_g2 > 0.0))
        return NAN;
    return g->ema_trace / g->ema_g2;
}
