/* The "synthetic" dataset plugin (plugins/datasets/synthetic.c): Gaussian blobs and the linear
 * teacher, their properties, reproducibility, the splits, and the closed-form gradient noise
 * scale of the teacher task (documented in synthetic.c) against per-example gradients computed
 * on the plugin's own data. */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define PLUGIN BATCHLAB_BUILD_PLUGIN_DIR "/bl_synthetic.so"

typedef struct fx {
    bl_ctx *ctx;
    bl_registry *reg;
    const bl_plugin *plugin;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    if (bl_test_load_plugin(PLUGIN, BL_PLUGIN_DATASET, &f->ctx, &f->reg, &f->plugin) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    bl_registry_free(f->reg);
    bl_ctx_free(f->ctx);
    free(f);
    return 0;
}

static int open_ds(fx *f, bl_dataset **ds, ...)
{
    bl_config *cfg = NULL;
    BL_ASSERT_OK(f->ctx, bl_config_new(f->ctx, &cfg));
    va_list ap;
    va_start(ap, ds);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL)
        BL_ASSERT_OK(f->ctx, bl_config_set_assignment(f->ctx, cfg, a));
    va_end(ap);
    *ds = NULL;
    int rc = bl_dataset_open(f->ctx, f->plugin, cfg, ds);
    bl_config_free(cfg);
    return rc;
}

/* The whole split: *x (n × dim) and *y (n int32 or floats), malloc'd. */
static int64_t gather_all(fx *f, bl_dataset *ds, bl_split s, float **x, void **y)
{
    const bl_data_info *info = bl_dataset_info(ds);
    int64_t n = info->count[s], dim = info->sample.dim[0];
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)n);
    *x = malloc(sizeof(float) * (size_t)(n * dim));
    *y = malloc(4 * (size_t)n);
    assert_true(idx && *x && *y);
    for (int64_t i = 0; i < n; i++)
        idx[i] = i;
    BL_ASSERT_OK(f->ctx, bl_dataset_gather(f->ctx, ds, s, idx, n, *x, *y));
    free(idx);
    return n;
}

static void blobs(void **state)
{
    fx *f = *state;
    bl_dataset *ds;
    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, "task=blobs", "samples=3000", "dim=2", "classes=3",
                                 "noise=0.5", "spread=5", "test=400", "validation=500",
                                 "seed=11", NULL));
    const bl_data_info *info = bl_dataset_info(ds);
    assert_int_equal(info->sample.ndim, 1);
    assert_int_equal(info->sample.dim[0], 2);
    assert_int_equal(info->classes, 3);
    assert_int_equal(info->count[BL_SPLIT_TRAIN], 2500);
    assert_int_equal(info->count[BL_SPLIT_VALIDATION], 500);
    assert_int_equal(info->count[BL_SPLIT_TEST], 400);
    assert_string_equal(info->class_names[2], "blob2");

    double centers[6];
    int64_t n = 0;
    BL_ASSERT_OK(f->ctx, bl_dataset_property(f->ctx, ds, "centers", centers, 6, &n));
    assert_int_equal(n, 6);
    double v = 0;
    BL_ASSERT_OK(f->ctx, bl_dataset_property(f->ctx, ds, "noise_std", &v, 1, &n));
    assert_float_equal(v, 0.5, 0);
    BL_ASSERT_OK(f->ctx, bl_dataset_property(f->ctx, ds, "input_dim", &v, 1, &n));
    assert_float_equal(v, 2, 0);
    BL_ASSERT_ERR(f->ctx, BL_ENOTFOUND, "teacher_weights",
                  bl_dataset_property(f->ctx, ds, "teacher_weights", &v, 1, &n));

    /* each class's samples lie around its centre with std = noise */
    float *x;
    void *yv;
    int64_t m = gather_all(f, ds, BL_SPLIT_TRAIN, &x, &yv);
    int32_t *y = yv;
    double sum[3][2] = {{0}}, sq[3] = {0};
    int64_t cnt[3] = {0};
    for (int64_t i = 0; i < m; i++) {
        assert_in_range(y[i], 0, 2);
        cnt[y[i]]++;
        for (int j = 0; j < 2; j++) {
            sum[y[i]][j] += x[i * 2 + j];
            double e = x[i * 2 + j] - centers[y[i] * 2 + j];
            sq[y[i]] += e * e;
        }
    }
    for (int c = 0; c < 3; c++) {
        assert_in_range(cnt[c], 700, 970); /* uniform classes: 833 expected */
        for (int j = 0; j < 2; j++)
            assert_float_equal(sum[c][j] / (double)cnt[c], centers[c * 2 + j], 0.06);
        assert_float_equal(sqrt(sq[c] / (2.0 * (double)cnt[c])), 0.5, 0.03);
    }
    free(x);
    free(yv);
    bl_dataset_close(ds);
}

static void reproducible(void **state)
{
    fx *f = *state;
    bl_dataset *a, *b, *c;
    BL_ASSERT_OK(f->ctx, open_ds(f, &a, "samples=200", "dim=3", "seed=5", "validation=0.1", NULL));
    BL_ASSERT_OK(f->ctx, open_ds(f, &b, "samples=200", "dim=3", "seed=5", "validation=0.1",
                                 "test=50", NULL));
    BL_ASSERT_OK(f->ctx, open_ds(f, &c, "samples=200", "dim=3", "seed=6", "validation=0.1", NULL));
    float *xa, *xb, *xc;
    void *ya, *yb, *yc;
    for (int s = BL_SPLIT_TRAIN; s <= BL_SPLIT_VALIDATION; s++) {
        int64_t n = gather_all(f, a, (bl_split)s, &xa, &ya);
        assert_int_equal(gather_all(f, b, (bl_split)s, &xb, &yb), n);
        assert_int_equal(gather_all(f, c, (bl_split)s, &xc, &yc), n);
        /* same seed: same data and split, whatever the test size; another seed: other data */
        assert_memory_equal(xa, xb, sizeof(float) * (size_t)n * 3);
        assert_memory_equal(ya, yb, 4 * (size_t)n);
        assert_memory_not_equal(xa, xc, sizeof(float) * (size_t)n * 3);
        free(xa);
        free(xb);
        free(xc);
        free(ya);
        free(yb);
        free(yc);
    }
    assert_int_equal(bl_dataset_info(a)->count[BL_SPLIT_VALIDATION], 20);
    assert_int_equal(bl_dataset_info(a)->count[BL_SPLIT_TEST], 0);
    assert_int_equal(bl_dataset_info(b)->count[BL_SPLIT_TEST], 50);
    bl_dataset_close(a);
    bl_dataset_close(b);
    bl_dataset_close(c);
}

#define D 8
#define NS 50000

static void teacher(void **state)
{
    fx *f = *state;
    bl_dataset *ds;
    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, "task=teacher", "samples=50000", "dim=8", "noise=0.5",
                                 "teacher_norm=2", "test=100", "seed=7", NULL));
    const bl_data_info *info = bl_dataset_info(ds);
    assert_int_equal(info->classes, 0);
    assert_int_equal(info->target_dim, 1);
    assert_null(info->class_names);
    assert_int_equal(info->sample.dim[0], D);
    assert_int_equal(info->count[BL_SPLIT_TRAIN], NS);
    assert_int_equal(info->count[BL_SPLIT_TEST], 100);

    double w[D], sigma = 0, dim = 0;
    int64_t n = 0;
    BL_ASSERT_OK(f->ctx, bl_dataset_property(f->ctx, ds, "teacher_weights", w, 3, &n));
    assert_int_equal(n, D); /* how many exist, even when cap is smaller */
    BL_ASSERT_OK(f->ctx, bl_dataset_property(f->ctx, ds, "teacher_weights", w, D, &n));
    BL_ASSERT_OK(f->ctx, bl_dataset_property(f->ctx, ds, "noise_std", &sigma, 1, &n));
    BL_ASSERT_OK(f->ctx, bl_dataset_property(f->ctx, ds, "input_dim", &dim, 1, &n));
    assert_float_equal(sigma, 0.5, 0);
    assert_float_equal(dim, D, 0);
    double norm = 0;
    for (int j = 0; j < D; j++)
        norm += w[j] * w[j];
    assert_float_equal(sqrt(norm), 2.0, 1e-12);
    BL_ASSERT_ERR(f->ctx, BL_ENOTFOUND, "gns_at",
                  bl_dataset_property(f->ctx, ds, "gns_at", w, D, &n));

    float *x;
    void *yv;
    assert_int_equal(gather_all(f, ds, BL_SPLIT_TRAIN, &x, &yv), NS);
    const float *y = yv;
    /* x ~ N(0, I), y - w*·x ~ N(0, σ²) */
    double xs = 0, xs2 = 0, rs = 0, rs2 = 0;
    for (int64_t i = 0; i < NS; i++) {
        double r = y[i];
        for (int j = 0; j < D; j++) {
            xs += x[i * D + j];
            xs2 += (double)x[i * D + j] * x[i * D + j];
            r -= w[j] * x[i * D + j];
        }
        rs += r;
        rs2 += r * r;
    }
    assert_float_equal(xs / (NS * D), 0.0, 0.01);
    assert_float_equal(xs2 / (NS * D), 1.0, 0.02);
    assert_float_equal(rs / NS, 0.0, 0.01);
    assert_float_equal(sqrt(rs2 / NS), 0.5, 0.01);

    /* Gradient noise scale at a student w = w* + d with bias b: per-example gradient
     * g = 2(w·x + b − y)(x, 1); compare with the closed forms of synthetic.c. */
    double d[D], dd = 0;
    for (int j = 0; j < D; j++) {
        d[j] = 0.25 * (double)((j % 3) - 1) + 0.15;
        dd += d[j] * d[j];
    }
    for (int with_bias = 0; with_bias <= 1; with_bias++) {
        double b = with_bias ? 0.4 : 0.0;
        int P = D + with_bias;
        double G[D + 1] = {0}, sq = 0;
        for (int64_t i = 0; i < NS; i++) {
            double r = b - y[i];
            for (int j = 0; j < D; j++)
                r += (w[j] + d[j]) * x[i * D + j];
            double g2 = 0;
            for (int j = 0; j < P; j++) {
                double g = 2.0 * r * (j < D ? x[i * D + j] : 1.0);
                G[j] += g;
                g2 += g * g;
            }
            sq += g2;
        }
        double G2 = 0;
        for (int j = 0; j < P; j++) {
            G[j] /= NS;
            G2 += G[j] * G[j];
        }
        double trS = sq / NS - G2, s2 = sigma * sigma;
        double G2_true, trS_true;
        if (with_bias) {
            G2_true = 4 * (dd + b * b);
            trS_true = 4 * ((D + 2) * dd + D * b * b + (D + 1) * s2);
        } else {
            G2_true = 4 * dd;
            trS_true = 4 * ((D + 1) * dd + D * s2);
        }
        double B_true = trS_true / G2_true, B = trS / G2;
        if (getenv("BL_TEST_VERBOSE"))
            printf("    bias %d: |G|^2 %.4f (%.4f)  tr(Sigma) %.3f (%.3f)  B_simple %.3f (%.3f)\n",
                   with_bias, G2, G2_true, trS, trS_true, B, B_true);
        assert_float_equal(G2 / G2_true, 1.0, 0.08);
        assert_float_equal(trS / trS_true, 1.0, 0.04);
        assert_float_equal(B / B_true, 1.0, 0.1);
        if (!with_bias)
            assert_float_equal(B_true, D + 1 + D * s2 / dd, 1e-9);
    }
    free(x);
    free(yv);
    bl_dataset_close(ds);
}

static void bad_options(void **state)
{
    fx *f = *state;
    bl_dataset *ds;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "blobs or teacher", open_ds(f, &ds, "task=spiral", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "classes = 1", open_ds(f, &ds, "classes=1", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "dim = 0", open_ds(f, &ds, "dim=0", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "samples = 0", open_ds(f, &ds, "samples=0", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "test = -1", open_ds(f, &ds, "test=-1", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "noise = -1", open_ds(f, &ds, "noise=-1", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "holds out 10 of 10",
                  open_ds(f, &ds, "samples=10", "validation=10", NULL));
    /* classes does not matter for the teacher */
    BL_ASSERT_OK(f->ctx, open_ds(f, &ds, "task=teacher", "classes=1", "samples=5", NULL));
    bl_dataset_close(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(blobs, setup, teardown),
        cmocka_unit_test_setup_teardown(reproducible, setup, teardown),
        cmocka_unit_test_setup_teardown(teacher, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_options, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
