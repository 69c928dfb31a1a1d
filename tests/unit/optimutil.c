/* The optimizer tests' fixture (a tiny net on the CPU device) and their double-precision
 * reference of every rule. See optimutil.h. */
#include "optimutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double W0[NP] = {0.5, -0.3, 0.8, -1.2, 0.7, 0.1, 0.05, -0.4};
const double G[3][NP] = {
    {0.1, -0.2, 0.3, 0.05, -0.15, 0.25, 0.4, -0.1},
    {-0.05, 0.1, 0.2, -0.3, 0.12, -0.07, 0.3, 0.2},
    {0.2, 0.15, -0.1, 0.08, 0.0, -0.22, -0.25, 0.05},
};
const double LR_FACTOR[3] = {1.0, 0.9, 0.8}; /* the lr changes between steps */

int teardown(void **state);

int setup(void **state)
{
    void *env = NULL;
    if (bl_test_setup(&env) != 0)
        return -1;
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx) {
        bl_test_teardown(&env);
        return -1;
    }
    fx->env = env;
    *state = fx;
    bl_ctx *ctx = fx->env->ctx;
    bl_shape in = {.ndim = 1, .dim = {3}};
    bl_layer *lin = NULL;
    if (bl_net_new(ctx, fx->env->dev, &in, &fx->net) != BL_OK ||
        bl_linear(ctx, 2, true, &lin) != BL_OK || bl_net_add(ctx, fx->net, lin) != BL_OK ||
        bl_net_build(ctx, fx->net, BL_LOSS_MSE, 1) != BL_OK) {
        fprintf(stderr, "cannot build the test net: %s\n", bl_errmsg(ctx));
        teardown(state);
        return -1;
    }
    return 0;
}

int teardown(void **state)
{
    fixture *fx = *state;
    if (fx) {
        bl_net_free(fx->net);
        void *env = fx->env;
        bl_test_teardown(&env);
        free(fx);
    }
    *state = NULL;
    return 0;
}

static void put(fixture *fx, float *dst, const double *src, size_t n)
{
    float tmp[NP];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (float)src[i];
    BL_ASSERT_OK(fx->env->ctx, bl_device_upload(fx->env->ctx, fx->env->dev, dst, tmp,
                                                n * sizeof(float)));
}

static void get(fixture *fx, double *dst, const float *src, size_t n)
{
    float tmp[NP];
    BL_ASSERT_OK(fx->env->ctx, bl_device_download(fx->env->ctx, fx->env->dev, tmp, src,
                                                  n * sizeof(float)));
    for (size_t i = 0; i < n; i++)
        dst[i] = tmp[i];
}

void set_params(fixture *fx, const double *w) { put(fx, bl_net_params(fx->net), w, NP); }
void set_grads(fixture *fx, const double *g) { put(fx, bl_net_grads(fx->net), g, NP); }
void get_params(fixture *fx, double *w) { get(fx, w, bl_net_params(fx->net), NP); }
void get_grads(fixture *fx, double *g) { get(fx, g, bl_net_grads(fx->net), NP); }

void assert_close(const double *got, const double *want, size_t n, double tol,
                         const char *what)
{
    for (size_t i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]);
        if (!(err <= tol * (1.0 + fabs(want[i]))))
            fail_msg("%s: value %zu is %.9g, expected %.9g (error %.3g)", what, i, got[i],
                     want[i], err);
    }
}

/* ---- the reference: double precision, one parameter at a time ----------------------------- */

void ref_init(ref *r, const bl_optim_config *c)
{
    memset(r, 0, sizeof *r);
    r->c = *c;
    memcpy(r->w, W0, sizeof W0);
}

static double norm_of(const double *x, size_t lo, size_t hi)
{
    double s = 0;
    for (size_t i = lo; i < hi; i++)
        s += x[i] * x[i];
    return sqrt(s);
}

void ref_step(ref *r, const double *g_in, double lr)
{
    const bl_optim_config *c = &r->c;
    double g[NP];
    memcpy(g, g_in, sizeof g);
    r->last_norm = norm_of(g, 0, NP);
    if (c->clip_norm > 0 && r->last_norm > c->clip_norm)
        for (int i = 0; i < NP; i++)
            g[i] *= c->clip_norm / r->last_norm;
    r->t++;
    const size_t seg_lo[2] = {0, W_END}, seg_hi[2] = {W_END, NP};
    const bool seg_decay[2] = {true, false};
    double bc1 = 1 - pow(c->beta1, r->t), bc2 = 1 - pow(c->beta2, r->t);

    switch (c->kind) {
    case BL_OPTIM_SGD: /* torch.optim.SGD */
        for (int i = 0; i < NP; i++) {
            double gp = g[i] + c->weight_decay * r->w[i], d = gp;
            if (c->momentum != 0) {
                r->buf[i] = r->t == 1 ? gp : c->momentum * r->buf[i] + (1 - c->dampening) * gp;
                d = c->nesterov ? gp + c->momentum * r->buf[i] : r->buf[i];
            }
            r->w[i] -= lr * d;
        }
        break;
    case BL_OPTIM_ADAM:
    case BL_OPTIM_ADAMW: /* torch.optim.Adam / AdamW (decay applied to w first) */
        for (int i = 0; i < NP; i++) {
            double gp = g[i];
            if (c->kind == BL_OPTIM_ADAMW)
                r->w[i] *= 1 - lr * c->weight_decay;
            else
                gp += c->weight_decay * r->w[i];
            r->m[i] = c->beta1 * r->m[i] + (1 - c->beta1) * gp;
            r->v[i] = c->beta2 * r->v[i] + (1 - c->beta2) * gp * gp;
            r->w[i] -= lr * (r->m[i] / bc1) / (sqrt(r->v[i] / bc2) + c->eps);
        }
        break;
    case BL_OPTIM_LARS:
        for (int s = 0; s < 2; s++) {
            double lambda = 1, wd = 0;
            if (seg_decay[s]) {
                double wn = norm_of(r->w, seg_lo[s], seg_hi[s]);
                double gn = norm_of(g, seg_lo[s], seg_hi[s]);
                if (wn > 0 && gn > 0)
                    lambda = c->trust_coefficient * wn / (gn + c->weight_decay * wn);
                wd = c->weight_decay;
            }
            for (size_t i = seg_lo[s]; i < seg_hi[s]; i++) {
                double gp = lambda * (g[i] + wd * r->w[i]);
                r->buf[i] = r->t == 1 ? gp : c->momentum * r->buf[i] + gp;
                double d = c->nesterov ? gp + c->momentum * r->buf[i] : r->buf[i];
                r->w[i] -= lr * d;
            }
        }
        break;
    case BL_OPTIM_LAMB:
        for (int s = 0; s < 2; s++) {
            double u[NP] = {0};
            for (size_t i = seg_lo[s]; i < seg_hi[s]; i++) {
                r->m[i] = c->beta1 * r->m[i] + (1 - c->beta1) * g[i];
                r->v[i] = c->beta2 * r->v[i] + (1 - c->beta2) * g[i] * g[i];
                u[i] = (r->m[i] / bc1) / (sqrt(r->v[i] / bc2) + c->eps);
                if (seg_decay[s])
                    u[i] += c->weight_decay * r->w[i];
            }
            double wn = norm_of(r->w, seg_lo[s], seg_hi[s]);
            double un = norm_of(u, seg_lo[s], seg_hi[s]);
            double ratio = (wn > 0 && un > 0) ? wn / un : 1;
            for (size_t i = seg_lo[s]; i < seg_hi[s]; i++)
                r->w[i] -= lr * ratio * u[i];
        }
        break;
    }
}

/* Runs 3 steps of `cfg` on the test net and compares with the reference after each. */
void check_rule(fixture *fx, const bl_optim_config *cfg, double lr, double tol)
{
    bl_ctx *ctx = fx->env->ctx;
    bl_optim *opt = NULL;
    BL_ASSERT_OK(ctx, bl_optim_new(ctx, fx->net, cfg, &opt));
    ref r;
    ref_init(&r, cfg);
    set_params(fx, W0);
    char what[96];
    for (int k = 0; k < 3; k++) {
        set_grads(fx, G[k]);
        double norm = -1;
        BL_ASSERT_OK(ctx, bl_optim_step(ctx, opt, lr * LR_FACTOR[k], &norm));
        ref_step(&r, G[k], lr * LR_FACTOR[k]);
        double w[NP];
        get_params(fx, w);
        snprintf(what, sizeof what, "%s step %d", bl_optim_name(cfg->kind), k + 1);
        assert_close(w, r.w, NP, tol, what);
        assert_true(fabs(norm - r.last_norm) <= 1e-6 * r.last_norm);
    }
    assert_int_equal(bl_optim_steps(opt), 3);
    bl_optim_free(opt);
}
