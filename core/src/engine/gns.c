/* Gradient noise scale B_simple = tr(Σ)/|G|² (McCandlish et al. 2018), from the gradients of
 * k equal chunks of a batch. With m = mean_i |g_i|² and t = |mean_i g_i|² over chunks of b
 * samples: E[m] = |G|² + tr(Σ)/b and E[t] = |G|² + tr(Σ)/(k·b), hence the unbiased
 *   |G|² ≈ (k·t − m)/(k − 1),   tr(Σ) ≈ k·b·(m − t)/(k − 1).
 * Each estimate is noisy (|G|² can come out negative), so the two are smoothed separately and
 * only their ratio is reported — averaging ratios would be biased. */
#include <math.h>

#include "engine/engine.h"

void bl__gns_init(bl__gns *g, double beta)
{
    g->beta = beta;
    g->ema_g2 = 0.0;
    g->ema_trace = 0.0;
    g->updates = 0;
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
