/* Dataset plugin "synthetic": generated data whose answers are known.
 *
 * task = "blobs": Gaussian-blob classification. Class centres c_k ~ N(0, spread² I_dim);
 *   each sample draws its class uniformly from 0..classes-1 and x = c_k + noise·N(0, I_dim).
 * task = "teacher": teacher–student linear regression. The teacher w* = teacher_norm · v/|v|
 *   with v ~ N(0, I_dim) (so |w*| = teacher_norm exactly); each sample x ~ N(0, I_dim) and
 *   y = w*·x + ε with ε ~ N(0, noise²). No bias in the teacher.
 *
 * Everything is drawn at open from one stream, bl_rng(seed, BL_STREAM_DATA), in this order: the
 * task's parameters (centres or w*), then the `samples` training-pool samples, then the `test`
 * samples — so a larger test set never changes the training pool. The validation split is
 * taken from the pool (common.h; stream BL_STREAM_SPLIT). Samples are [dim]; values are not
 * normalized.
 *
 * Properties: "input_dim" (1 value), "noise_std" (1), "teacher_weights" (dim; teacher only),
 * "centers" (classes × dim, row-major; blobs only).
 *
 * ---- Gradient noise scale of the teacher task (for tests of the engine's GNS estimate) ----
 * Loss per example as the engine's nets compute MSE with one output: ℓ = (w·x + b − y)², the
 * batch loss being the mean over examples. Write D = dim, d = w − w*, σ = noise, and let the
 * student have a bias b (b = 0 and no bias gradient for a bias-free student). The residual is
 * r = d·x + b − ε and the per-example gradient is g = 2r·x (weights) and 2r (bias). For
 * x ~ N(0, I), using E[x xᵀ] = I, E[(d·x)² x xᵀ] = |d|² I + 2 d dᵀ and odd moments = 0:
 *
 *   without bias (θ = w):
 *     G = E[g] = 2d,                        |G|² = 4|d|²
 *     E[g gᵀ] = 4(|d|² I + 2 d dᵀ + σ² I),  tr E[g gᵀ] = 4((D + 2)|d|² + Dσ²)
 *     tr Σ = tr E[g gᵀ] − |G|² = 4((D + 1)|d|² + Dσ²)
 *     B_simple = tr Σ / |G|² = D + 1 + Dσ²/|d|²
 *
 *   with bias (θ = (w, b)):
 *     G = (2d, 2b),                         |G|² = 4(|d|² + b²)
 *     tr Σ = 4((D + 2)|d|² + D b² + (D + 1)σ²)
 *     B_simple = ((D + 2)|d|² + D b² + (D + 1)σ²) / (|d|² + b²)
 *
 * (A constant factor in the loss, e.g. ½, scales G and Σ alike and leaves B_simple unchanged.)
 * These are population values; a finite training set's empirical values approach them as the
 * sample count grows. tests/unit/test_dataset_synthetic.c checks them against per-example
 * gradients computed on this plugin's data.
 */
#define _POSIX_C_SOURCE 200809L

#include "batchlab/plugin_sdk.h"
#include "common.h"

#define SYN_MAX_DIM (1 << 24)
#define SYN_MAX_CLASSES (1 << 20)

static const bl_option syn_options[] = {
    {"task", BL_TYPE_STRING, "blobs",
     "blobs (Gaussian-blob classification) or teacher (linear teacher-student regression)"},
    {"samples", BL_TYPE_INT, "1000", "samples in the training pool (validation included)"},
    {"test", BL_TYPE_INT, "0", "samples in the test split (0 = none)"},
    {"dim", BL_TYPE_INT, "10", "input dimension"},
    {"classes", BL_TYPE_INT, "3", "number of blobs/classes (blobs)"},
    {"noise", BL_TYPE_NUMBER, "1",
     "blobs: std of each blob around its centre; teacher: std of the label noise"},
    {"spread", BL_TYPE_NUMBER, "3", "blobs: std of the centres' coordinates"},
    {"teacher_norm", BL_TYPE_NUMBER, "1", "teacher: norm of the teacher weights w*"},
    {"validation", BL_TYPE_NUMBER, "0", BL_DS_HELP_VALIDATION},
    {"seed", BL_TYPE_INT, "1", "seed of the data (stream BL_STREAM_DATA) and of the split"},
    {NULL, 0, NULL, NULL}};

typedef enum { SYN_BLOBS, SYN_TEACHER } syn_task;

typedef struct syn_ds {
    syn_task task;
    int64_t dim, classes;
    double noise;
    double *params;               /* blobs: classes × dim centres; teacher: dim weights */
    float *x[2];                  /* [0] pool, [1] test: rows × dim */
    int32_t *cls[2];              /* blobs labels */
    float *target[2];             /* teacher targets */
    int64_t rows[2];
    int64_t *map[BL_SPLIT_COUNT]; /* split position → pool row; NULL = identity */
    int64_t count[BL_SPLIT_COUNT];
    char **names;                 /* blobs: "blob0", "blob1", … */
} syn_ds;

static void syn_close(void *handle)
{
    syn_ds *d = handle;
    if (!d)
        return;
    free(d->params);
    for (int i = 0; i < 2; i++) {
        free(d->x[i]);
        free(d->cls[i]);
        free(d->target[i]);
    }
    for (int s = 0; s < BL_SPLIT_COUNT; s++)
        free(d->map[s]);
    if (d->names)
        for (int64_t c = 0; c < d->classes; c++)
            free(d->names[c]);
    free(d->names);
    free(d);
}

static void generate(syn_ds *d, bl_rng *rng, int f)
{
    int64_t dim = d->dim;
    for (int64_t i = 0; i < d->rows[f]; i++) {
        float *x = d->x[f] + i * dim;
        if (d->task == SYN_BLOBS) {
            uint32_t c = bl_rng_below(rng, (uint32_t)d->classes);
            const double *mu = d->params + (int64_t)c * dim;
            for (int64_t j = 0; j < dim; j++)
                x[j] = (float)(mu[j] + d->noise * bl_rng_normal(rng));
            d->cls[f][i] = (int32_t)c;
        } else {
            double y = 0.0;
            for (int64_t j = 0; j < dim; j++) {
                x[j] = (float)bl_rng_normal(rng);
                y += d->params[j] * (double)x[j];
            }
            d->target[f][i] = (float)(y + d->noise * bl_rng_normal(rng));
        }
    }
}

static int syn_open(bl_ctx *ctx, const bl_config *opts, void **handle)
{
    const char *task = bl_config_string(opts, "task");
    int64_t samples = bl_config_int(opts, "samples"), test = bl_config_int(opts, "test");
    int64_t dim = bl_config_int(opts, "dim"), classes = bl_config_int(opts, "classes");
    double noise = bl_config_number(opts, "noise"), spread = bl_config_number(opts, "spread");
    double norm = bl_config_number(opts, "teacher_norm");
    uint64_t seed = (uint64_t)bl_config_int(opts, "seed");
    syn_task t;
    if (task && strcmp(task, "blobs") == 0)
        t = SYN_BLOBS;
    else if (task && strcmp(task, "teacher") == 0)
        t = SYN_TEACHER;
    else
        return bl_error(ctx, BL_EOPTION, "task = '%s': expected blobs or teacher",
                        task ? task : "");
    if (samples < 1 || test < 0 || samples > INT64_MAX / 2 - test)
        return bl_error(ctx, BL_EOPTION, "samples = %lld, test = %lld: expected "
                        "samples >= 1 and test >= 0", (long long)samples, (long long)test);
    if (dim < 1 || dim > SYN_MAX_DIM)
        return bl_error(ctx, BL_EOPTION, "dim = %lld: expected 1..%d",
                        (long long)dim, SYN_MAX_DIM);
    if (t == SYN_BLOBS && (classes < 2 || classes > SYN_MAX_CLASSES))
        return bl_error(ctx, BL_EOPTION, "classes = %lld: expected 2..%d",
                        (long long)classes, SYN_MAX_CLASSES);
    if (!(noise >= 0.0) || !(spread >= 0.0) || !(norm >= 0.0) || !isfinite(noise) ||
        !isfinite(spread) || !isfinite(norm))
        return bl_error(ctx, BL_EOPTION, "noise = %g, spread = %g, teacher_norm = "
                        "%g: expected finite values >= 0", noise, spread, norm);
    if ((uint64_t)(samples + test) > SIZE_MAX / sizeof(float) / (uint64_t)dim)
        return bl_error(ctx, BL_ENOMEM, "%lld samples of %lld values do not fit in "
                        "memory", (long long)(samples + test), (long long)dim);

    syn_ds *d = calloc(1, sizeof *d);
    if (!d)
        return bl_error(ctx, BL_ENOMEM, "no memory");
    d->task = t;
    d->dim = dim;
    d->classes = t == SYN_BLOBS ? classes : 0;
    d->noise = noise;
    d->rows[0] = samples;
    d->rows[1] = test;
    int64_t n_params = t == SYN_BLOBS ? classes * dim : dim;
    int rc = BL_OK;
    d->params = malloc((size_t)n_params * sizeof *d->params);
    if (!d->params)
        goto nomem;
    for (int f = 0; f < 2; f++) {
        size_t rows = d->rows[f] ? (size_t)d->rows[f] : 1;
        d->x[f] = malloc(rows * (size_t)dim * sizeof(float));
        if (t == SYN_BLOBS)
            d->cls[f] = malloc(rows * sizeof(int32_t));
        else
            d->target[f] = malloc(rows * sizeof(float));
        if (!d->x[f] || (!d->cls[f] && !d->target[f]))
            goto nomem;
    }
    if (t == SYN_BLOBS) {
        d->names = calloc((size_t)classes, sizeof *d->names);
        if (!d->names)
            goto nomem;
        for (int64_t c = 0; c < classes; c++) {
            d->names[c] = malloc(24);
            if (!d->names[c])
                goto nomem;
            snprintf(d->names[c], 24, "blob%lld", (long long)c);
        }
    }

    bl_rng rng;
    bl_rng_seed(&rng, seed, BL_STREAM_DATA);
    if (t == SYN_BLOBS) {
        for (int64_t i = 0; i < n_params; i++)
            d->params[i] = spread * bl_rng_normal(&rng);
    } else {
        double s2 = 0.0;
        do {
            s2 = 0.0;
            for (int64_t j = 0; j < dim; j++) {
                d->params[j] = bl_rng_normal(&rng);
                s2 += d->params[j] * d->params[j];
            }
        } while (s2 == 0.0);
        double k = norm / sqrt(s2);
        for (int64_t j = 0; j < dim; j++)
            d->params[j] *= k;
    }
    generate(d, &rng, 0);
    generate(d, &rng, 1);

    int64_t n_val;
    rc = bl_ds_validation_count(ctx, bl_config_number(opts, "validation"), samples,
                                &n_val);
    if (rc == BL_OK)
        rc = bl_ds_split(ctx, samples, n_val, seed, &d->map[BL_SPLIT_TRAIN],
                         &d->map[BL_SPLIT_VALIDATION]);
    if (rc != BL_OK)
        goto fail;
    d->count[BL_SPLIT_TRAIN] = samples - n_val;
    d->count[BL_SPLIT_VALIDATION] = n_val;
    d->count[BL_SPLIT_TEST] = test;
    *handle = d;
    return BL_OK;

nomem:
    rc = bl_error(ctx, BL_ENOMEM, "no memory for %lld samples of dimension %lld",
                  (long long)(samples + test), (long long)dim);
fail:
    syn_close(d);
    return rc;
}

static void syn_info(void *handle, bl_data_info *out)
{
    const syn_ds *d = handle;
    bl_data_info_reset(out);
    out->sample.ndim = 1;
    out->sample.dim[0] = d->dim;
    out->classes = d->classes;
    out->target_dim = 1;
    for (int s = 0; s < BL_SPLIT_COUNT; s++)
        out->count[s] = d->count[s];
    out->class_names = d->names ? (const char *const *)d->names : NULL;
}

static int syn_gather(void *handle, bl_ctx *ctx, bl_split split, const int64_t *idx, int64_t n,
                      float *x, void *y)
{
    const syn_ds *d = handle;
    if ((unsigned)split >= BL_SPLIT_COUNT)
        return bl_error(ctx, BL_EINVAL, "unknown split %d", (int)split);
    int src = split == BL_SPLIT_TEST;
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= d->count[split])
            return bl_error(ctx, BL_EINVAL, "sample %lld out of range for the %s "
                            "split of %lld", (long long)idx[i], bl_ds_split_name(split),
                            (long long)d->count[split]);
        int64_t row = bl_ds_row(d->map[split], idx[i]);
        if (x)
            memcpy(x + i * d->dim, d->x[src] + row * d->dim, (size_t)d->dim * sizeof(float));
        if (y) {
            if (d->task == SYN_BLOBS)
                ((int32_t *)y)[i] = d->cls[src][row];
            else
                ((float *)y)[i] = d->target[src][row];
        }
    }
    return BL_OK;
}

static int syn_property(void *handle, bl_ctx *ctx, const char *key, double *out, int64_t cap,
                        int64_t *n)
{
    const syn_ds *d = handle;
    double one;
    const double *src = &one;
    int64_t count = 1;
    if (key && strcmp(key, "input_dim") == 0)
        one = (double)d->dim;
    else if (key && strcmp(key, "noise_std") == 0)
        one = d->noise;
    else if (key && strcmp(key, "teacher_weights") == 0 && d->task == SYN_TEACHER) {
        src = d->params;
        count = d->dim;
    } else if (key && strcmp(key, "centers") == 0 && d->task == SYN_BLOBS) {
        src = d->params;
        count = d->classes * d->dim;
    } else
        return bl_error(ctx, BL_ENOTFOUND, "no property '%s' for task %s (known: "
                        "input_dim, noise_std, %s)", key ? key : "",
                        d->task == SYN_BLOBS ? "blobs" : "teacher",
                        d->task == SYN_BLOBS ? "centers" : "teacher_weights");
    for (int64_t i = 0; i < count && i < cap; i++)
        out[i] = src[i];
    if (n)
        *n = count;
    return BL_OK;
}

static const bl_dataset_ops syn_ops = {sizeof(bl_dataset_ops), syn_open, syn_close, syn_info,
                                       syn_gather, syn_property, NULL};

static const bl_plugin syn_plugin = {
    BL_PLUGIN_ABI, sizeof(bl_plugin), BL_PLUGIN_DATASET, "synthetic", "1.0",
    "generated data: Gaussian blobs (classification) or a linear teacher (regression)",
    syn_options, &syn_ops};

BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index);
BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t index)
{
    return index == 0 ? &syn_plugin : NULL;
}
