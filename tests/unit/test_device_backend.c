/* Device backends loaded at run time: the fixture backends of tests/fixtures/fx_backend.c
 * (real shared objects found through BATCHLAB_PLUGIN_PATH), the messages for a backend that is
 * missing, built for another ABI, short, or unsupported here; sticky faults; staging and events
 * in a training run; and the device fields that bl_find_max_batch must leave alone. */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "batchlab/batchlab.h"
#include "batchlab/device_backend.h"
#include "testutil.h"

#define BACKEND_DIR BATCHLAB_TEST_PLUGIN_DIR "/backends"
#define FIXTURE_SO BACKEND_DIR "/libbatchlab-fixture.so"

typedef struct fx_counters {
    long uploads_async, event_waits, host_allocs, syncs;
} fx_counters;

static int setup(void **state)
{
    setenv("BATCHLAB_PLUGIN_PATH", BACKEND_DIR, 1);
    bl_ctx *ctx = bl_ctx_new();
    if (!ctx)
        return -1;
    *state = ctx;
    return 0;
}

static int teardown(void **state)
{
    bl_ctx_free(*state);
    return 0;
}

/* The fixture library's counters, if it is loaded (a handle of our own is not kept). */
static fx_counters *counters(void)
{
    void *h = dlopen(FIXTURE_SO, RTLD_NOW | RTLD_NOLOAD);
    if (!h)
        return NULL;
    void *sym = dlsym(h, "fx_backend_counters");
    fx_counters *(*fn)(void);
    memcpy(&fn, &sym, sizeof fn);
    fx_counters *c = sym ? fn() : NULL;
    dlclose(h);
    return c;
}

static bool fixture_loaded(void)
{
    void *h = dlopen(FIXTURE_SO, RTLD_NOW | RTLD_NOLOAD);
    if (h)
        dlclose(h);
    return h != NULL;
}

/* Opened by name from its own shared object: probe, count, memory, capabilities, a few ops, and
 * the library is closed with the last device. */
static void test_fixture_backend(void **state)
{
    bl_ctx *ctx = *state;
    assert_false(fixture_loaded());
    bl_device *dev = NULL, *dev1 = NULL;
    BL_ASSERT_OK(ctx, bl_device_open(ctx, "fixture", &dev));
    assert_true(fixture_loaded());
    assert_string_equal(dev->backend->name, "fixture");
    assert_string_equal(dev->ops->name, "fixture");
    assert_int_equal(dev->kind, BL_DEVICE_OTHER);
    assert_int_equal(bl_device_caps(dev), BL_DEVICE_CAP_ASYNC);
    BL_ASSERT_OK(ctx, bl_device_open(ctx, "fixture:1", &dev1)); /* count says 2 */
    assert_int_equal(dev1->index, 1);
    BL_ASSERT_ERR(ctx, BL_EUNSUPPORTED, "2 devices", bl_device_open(ctx, "fixture:2", &dev1));

    size_t free_b = 0, total_b = 0;
    BL_ASSERT_OK(ctx, bl_device_memory(ctx, dev, &free_b, &total_b));
    assert_int_equal(total_b, (size_t)1 << 30);
    assert_int_equal(free_b, total_b);

    /* C[2×3] = A[2×4]·B[4×3], then |C|² into a device-side slot, one read-back */
    const float a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const float b[12] = {1, 0, 2, 0, 1, 0, 1, 1, 1, 2, 0, 3};
    float *da, *db, *dc;
    double *slot;
    BL_ASSERT_OK(ctx, bl_device_alloc(ctx, dev, sizeof a, (void **)&da));
    BL_ASSERT_OK(ctx, bl_device_alloc(ctx, dev, sizeof b, (void **)&db));
    BL_ASSERT_OK(ctx, bl_device_alloc(ctx, dev, 6 * sizeof(float), (void **)&dc));
    BL_ASSERT_OK(ctx, bl_device_alloc(ctx, dev, sizeof(double), (void **)&slot));
    BL_ASSERT_OK(ctx, bl_device_memory(ctx, dev, &free_b, NULL));
    assert_int_equal(free_b, total_b - dev->bytes_in_use);

    /* A through staging memory and an asynchronous upload with an event */
    fx_counters *fc = counters();
    assert_non_null(fc);
    long uploads = fc->uploads_async, waits = fc->event_waits;
    float *stage = NULL;
    bl_device_event *ev = NULL;
    BL_ASSERT_OK(ctx, bl_device_host_alloc(ctx, dev, sizeof a, (void **)&stage));
    memcpy(stage, a, sizeof a);
    BL_ASSERT_OK(ctx, bl_device_event_new(ctx, dev, &ev));
    BL_ASSERT_OK(ctx, bl_device_upload_async(ctx, dev, da, stage, sizeof a, ev));
    BL_ASSERT_OK(ctx, bl_device_event_wait(ctx, dev, ev));
    assert_int_equal(fc->uploads_async, uploads + 1);
    assert_int_equal(fc->event_waits, waits + 1);
    BL_ASSERT_OK(ctx, bl_device_upload(ctx, dev, db, b, sizeof b));

    dev->ops->gemm(dev, false, false, 2, 3, 4, 1.0f, da, 4, db, 3, 0.0f, dc, 3);
    dev->ops->sumsq(dev, 6, dc, slot);
    BL_ASSERT_OK(ctx, bl_device_synchronize(ctx, dev));
    float c[6];
    double ss = 0;
    BL_ASSERT_OK(ctx, bl_device_download(ctx, dev, c, dc, sizeof c));
    BL_ASSERT_OK(ctx, bl_device_download(ctx, dev, &ss, slot, sizeof ss));
    double want_ss = 0;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) {
            float s = 0;
            for (int p = 0; p < 4; p++)
                s += a[i * 4 + p] * b[p * 3 + j];
            assert_true(c[i * 3 + j] == s);
            want_ss += (double)s * s;
        }
    assert_true(ss == want_ss);

    bl_device_event_free(dev, ev);
    bl_device_host_free(dev, stage);
    bl_device_release(dev, da, sizeof a);
    bl_device_release(dev, db, sizeof b);
    bl_device_release(dev, dc, 6 * sizeof(float));
    bl_device_release(dev, slot, sizeof(double));
    BL_ASSERT_OK(ctx, bl_device_status(ctx, dev));
    bl_device_free(dev);
    assert_true(fixture_loaded()); /* dev1 still holds it */
    bl_device_free(dev1);
    assert_false(fixture_loaded()); /* dlclose'd with the last device */
}

/* A kernel fault sticks: synchronize, status and later copies all report it. */
static void test_sticky_fault(void **state)
{
    bl_ctx *ctx = *state;
    bl_device *dev = NULL;
    BL_ASSERT_OK(ctx, bl_device_open(ctx, "fixture", &dev));
    float *d;
    float host[4] = {1, 2, 3, 4};
    BL_ASSERT_OK(ctx, bl_device_alloc(ctx, dev, sizeof host, (void **)&d));
    BL_ASSERT_OK(ctx, bl_device_synchronize(ctx, dev));
    dev->ops->gemm(dev, false, false, -1, 2, 2, 1.0f, d, 2, d, 2, 0.0f, d, 2);
    BL_ASSERT_ERR(ctx, BL_EINVAL, "negative size", bl_device_synchronize(ctx, dev));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "earlier operation failed", bl_device_status(ctx, dev));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "negative size", bl_device_upload(ctx, dev, d, host, 16));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "negative size", bl_device_download(ctx, dev, host, d, 16));
    /* the first fault wins */
    dev->ops->gemm(dev, false, false, 2, -3, 2, 1.0f, d, 2, d, 2, 0.0f, d, 2);
    BL_ASSERT_ERR(ctx, BL_EINVAL, "-1x2x2", bl_device_synchronize(ctx, dev));
    bl_device_release(dev, d, sizeof host);
    bl_device_free(dev);
}

/* A backend that is not there: the message names every file tried and what to do. */
static void test_missing_backend(void **state)
{
    bl_ctx *ctx = *state;
    bl_device *dev = NULL;
    const char *a = BATCHLAB_TEST_DATA_DIR "/no-such-dir-a", *b = BACKEND_DIR;
    char path[1024];
    snprintf(path, sizeof path, "%s:%s", a, b);
    setenv("BATCHLAB_PLUGIN_PATH", path, 1);
    /* not "cuda": this build may have made libbatchlab-cuda.so in its plugin directory */
    const char *names[] = {"tpu", "tpu:1", "nosuch"};
    for (int i = 0; i < 3; i++) {
        char lib[64], want[1024];
        snprintf(lib, sizeof lib, "libbatchlab-%.*s.so", (int)strcspn(names[i], ":"), names[i]);
        BL_ASSERT_ERR(ctx, BL_EUNSUPPORTED, names[i], bl_device_open(ctx, names[i], &dev));
        snprintf(want, sizeof want, "%s/%s", a, lib);
        BL_ASSERT_ERR(ctx, BL_EUNSUPPORTED, want, bl_device_open(ctx, names[i], &dev));
        snprintf(want, sizeof want, "%s/%s", b, lib);
        BL_ASSERT_ERR(ctx, BL_EUNSUPPORTED, want, bl_device_open(ctx, names[i], &dev));
        snprintf(want, sizeof want, "%s/%s", BATCHLAB_BUILD_PLUGIN_DIR, lib);
        BL_ASSERT_ERR(ctx, BL_EUNSUPPORTED, want, bl_device_open(ctx, names[i], &dev));
        BL_ASSERT_ERR(ctx, BL_EUNSUPPORTED, "add its directory to BATCHLAB_PLUGIN_PATH",
                      bl_device_open(ctx, names[i], &dev));
    }
    assert_null(dev);
    setenv("BATCHLAB_PLUGIN_PATH", BACKEND_DIR, 1);
}

/* Refused descriptors say both versions; an unsupported backend gives its reason. */
static void test_refused_backends(void **state)
{
    bl_ctx *ctx = *state;
    bl_device *dev = NULL;
    char want[160];
    BL_ASSERT_ERR(ctx, BL_EPLUGIN, "built for device ABI 999",
                  bl_device_open(ctx, "fxoldabi", &dev));
    snprintf(want, sizeof want, "this batchlab has device ABI %d", BL_DEVICE_BACKEND_ABI);
    BL_ASSERT_ERR(ctx, BL_EPLUGIN, want, bl_device_open(ctx, "fxoldabi", &dev));

    BL_ASSERT_ERR(ctx, BL_EPLUGIN, "descriptor size 8", bl_device_open(ctx, "fxshort", &dev));
    snprintf(want, sizeof want, "device ABI %d requires (this batchlab's is %zu)",
             BL_DEVICE_BACKEND_ABI, sizeof(bl_device_backend));
    BL_ASSERT_ERR(ctx, BL_EPLUGIN, want, bl_device_open(ctx, "fxshort", &dev));

    BL_ASSERT_ERR(ctx, BL_EUNSUPPORTED, "cannot run here: no device (fixture)",
                  bl_device_open(ctx, "fxnodev", &dev));
    assert_null(dev);
}

/* ---- runs on the fixture device ------------------------------------------------------------ */

typedef struct run_env {
    bl_registry *reg;
    bl_dataset *data;
    const bl_plugin *mlp;
} run_env;

static void open_run_env(bl_ctx *ctx, run_env *e)
{
    memset(e, 0, sizeof *e);
    const bl_plugin *p;
    BL_ASSERT_OK(ctx, bl_registry_new(ctx, &e->reg));
    BL_ASSERT_OK(ctx, bl_registry_scan(ctx, e->reg));
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, e->reg, BL_PLUGIN_DATASET, "synthetic", &p));
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, e->reg, BL_PLUGIN_MODEL, "mlp", &e->mlp));
    bl_config *cfg;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &cfg));
    const char *set[] = {"task=blobs", "samples=600", "dim=8", "classes=3", "seed=3",
                         "validation=100", "test=0"};
    for (size_t i = 0; i < sizeof set / sizeof *set; i++)
        BL_ASSERT_OK(ctx, bl_config_set_assignment(ctx, cfg, set[i]));
    BL_ASSERT_OK(ctx, bl_dataset_open(ctx, p, cfg, &e->data));
    bl_config_free(cfg);
}

static void close_run_env(run_env *e)
{
    bl_dataset_close(e->data);
    bl_registry_free(e->reg);
}

static bl_run_result train_on(bl_ctx *ctx, run_env *e, bl_device *dev, bl_prefetch_mode prefetch,
                              bl_data_placement placement)
{
    bl_net *net;
    BL_ASSERT_OK(ctx, bl_model_build(ctx, e->mlp, NULL, bl_dataset_info(e->data), dev, 5, &net));
    bl_train_config c = bl_train_defaults();
    c.net = net;
    c.data = e->data;
    c.optim = bl_optim_defaults(BL_OPTIM_LAMB); /* per-tensor norms through the slots */
    c.optim.clip_norm = 1.0;
    c.batch = 32;
    c.epochs = 2;
    c.seed = 7;
    c.measure_gns = true;
    c.prefetch = prefetch;
    c.data_placement = placement;
    bl_run_result r;
    BL_ASSERT_OK(ctx, bl_train(ctx, &c, &r));
    assert_int_equal(r.status, BL_RUN_COMPLETED);
    bl_net_free(net);
    return r;
}

/* A run on the fixture device (staged batches, asynchronous uploads, events, reductions read
 * back from slots) gives exactly the CPU's result; so does one with the training split kept on
 * the device (the resident mode: batches gathered by the device's gather ops from the
 * permutation uploaded per epoch), which uploads nothing per batch. */
static void test_training_on_fixture(void **state)
{
    bl_ctx *ctx = *state;
    run_env e;
    open_run_env(ctx, &e);
    bl_device *cpu = NULL, *fx = NULL;
    BL_ASSERT_OK(ctx, bl_device_cpu_open(ctx, 1, &cpu));
    BL_ASSERT_OK(ctx, bl_device_open_threads(ctx, "fixture", 1, &fx));
    fx_counters *fc = counters();
    long uploads = fc->uploads_async, waits = fc->event_waits, stages = fc->host_allocs;
    bl_run_result want = train_on(ctx, &e, cpu, BL_PREFETCH_ON, BL_DATA_AUTO);
    for (int prefetch = 0; prefetch < 2; prefetch++) {
        bl_run_result got = train_on(ctx, &e, fx, prefetch ? BL_PREFETCH_ON : BL_PREFETCH_OFF,
                                     BL_DATA_STAGED);
        assert_true(got.final.train_loss == want.final.train_loss);
        assert_true(got.final.val_loss == want.final.val_loss);
        assert_true(got.final.gns == want.final.gns || (got.final.gns != got.final.gns &&
                                                         want.final.gns != want.final.gns));
        assert_int_equal(got.steps, want.steps);
        bl_run_result_free(&got);
    }
    assert_true(fc->uploads_async > uploads); /* the loader staged and uploaded */
    assert_true(fc->event_waits > waits);
    assert_true(fc->host_allocs >= stages + 4);
    /* resident: asked for, and by default (the split is far below half the fixture's 1 GiB) */
    for (int placement = 0; placement < 2; placement++) {
        uploads = fc->uploads_async;
        bl_run_result got = train_on(ctx, &e, fx, BL_PREFETCH_ON,
                                     placement ? BL_DATA_RESIDENT : BL_DATA_AUTO);
        assert_true(got.final.train_loss == want.final.train_loss);
        assert_true(got.final.val_loss == want.final.val_loss);
        assert_true(got.final.gns == want.final.gns || (got.final.gns != got.final.gns &&
                                                         want.final.gns != want.final.gns));
        assert_int_equal(got.steps, want.steps);
        assert_int_equal(fc->uploads_async, uploads); /* no batch staged */
        bl_run_result_free(&got);
    }
    bl_run_result_free(&want);
    bl_device_free(fx);

    /* staged on a device using every core: prefetch auto gathers without a thread of its own
     * only where batches need no copy, so the staged batches are still uploaded */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    BL_ASSERT_OK(ctx, bl_device_open_threads(ctx, "fixture", cores > 2 ? (int)cores : 2, &fx));
    want = train_on(ctx, &e, fx, BL_PREFETCH_OFF, BL_DATA_STAGED);
    bl_run_result got = train_on(ctx, &e, fx, BL_PREFETCH_AUTO, BL_DATA_STAGED);
    assert_true(got.final.train_loss == want.final.train_loss);
    assert_true(got.final.val_loss == want.final.val_loss);
    assert_int_equal(got.steps, want.steps);
    bl_run_result_free(&got);
    bl_run_result_free(&want);
    bl_device_free(fx);
    bl_device_free(cpu);
    close_run_env(&e);
}

/* The resident mode with a dataset stored as bytes (idx: uploaded as bytes, turned into floats
 * on the device by gather_bytes) gives the CPU's run exactly, as does the staged path. */
static void test_resident_bytes_on_fixture(void **state)
{
    bl_ctx *ctx = *state;
    const char *dir = bl_test_tmpdir("fx_resident_idx");
    enum { count = 300, side = 6 };
    static unsigned char pixels[count][side * side], labels[count];
    for (int i = 0; i < count; i++) {
        labels[i] = (unsigned char)(i * 7 % 10);
        for (int p = 0; p < side * side; p++)
            pixels[i][p] =
                (unsigned char)(p % (labels[i] + 2) == 0 ? 200 + i % 50 : (i * 13 + p) % 60);
    }
    bl_test_write_idx(dir, "train-images-idx3-ubyte", 3, (const uint32_t[]){count, side, side},
                      &pixels[0][0], sizeof pixels);
    bl_test_write_idx(dir, "train-labels-idx1-ubyte", 1, (const uint32_t[]){count}, labels,
                      sizeof labels);

    run_env e;
    open_run_env(ctx, &e);
    bl_dataset_close(e.data);
    const bl_plugin *idx;
    BL_ASSERT_OK(ctx, bl_registry_find(ctx, e.reg, BL_PLUGIN_DATASET, "idx", &idx));
    bl_config *cfg;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &cfg));
    BL_ASSERT_OK(ctx, bl_config_set_string(ctx, cfg, "dir", dir));
    BL_ASSERT_OK(ctx, bl_config_set_assignment(ctx, cfg, "validation=60"));
    BL_ASSERT_OK(ctx, bl_dataset_open(ctx, idx, cfg, &e.data));
    bl_config_free(cfg);

    bl_device *cpu = NULL, *fx = NULL;
    BL_ASSERT_OK(ctx, bl_device_cpu_open(ctx, 1, &cpu));
    BL_ASSERT_OK(ctx, bl_device_open_threads(ctx, "fixture", 1, &fx));
    fx_counters *fc = counters();
    bl_run_result want = train_on(ctx, &e, cpu, true, BL_DATA_AUTO);
    for (int placement = BL_DATA_STAGED; placement <= BL_DATA_RESIDENT; placement++) {
        long uploads = fc->uploads_async;
        bl_run_result got = train_on(ctx, &e, fx, true, (bl_data_placement)placement);
        assert_true(got.final.train_loss == want.final.train_loss);
        assert_true(got.final.val_loss == want.final.val_loss);
        assert_int_equal(got.steps, want.steps);
        if (placement == BL_DATA_RESIDENT)
            assert_int_equal(fc->uploads_async, uploads); /* no batch staged */
        else
            assert_true(fc->uploads_async > uploads);
        bl_run_result_free(&got);
    }
    bl_run_result_free(&want);
    bl_device_free(fx);
    bl_device_free(cpu);
    close_run_env(&e);
    bl_test_rmdir(dir);
}

/* bl_find_max_batch leaves a shared device's budget, peak and use as they were, whether the
 * search succeeds or fails. */
static void test_find_batch_keeps_device_fields(void **state)
{
    bl_ctx *ctx = *state;
    run_env e;
    open_run_env(ctx, &e);
    bl_device *dev = NULL;
    BL_ASSERT_OK(ctx, bl_device_cpu_open(ctx, 1, &dev));
    void *held;
    BL_ASSERT_OK(ctx, bl_device_alloc(ctx, dev, 1000, &held)); /* someone else's memory */
    dev->budget_bytes = (size_t)1 << 40;                      /* the owner's budget */
    size_t budget = dev->budget_bytes, peak = dev->peak_bytes, use = dev->bytes_in_use;

    for (int fail = 0; fail < 2; fail++) {
        bl_find_batch_config c = bl_find_batch_defaults();
        c.model = e.mlp;
        c.data = e.data;
        c.dev = dev;
        c.max = 64;
        c.budget_bytes = fail ? 1000 : (size_t)4 << 20; /* 1000 bytes: nothing fits */
        bl_find_batch_result r;
        int rc = bl_find_max_batch(ctx, &c, &r);
        if (fail) {
            assert_int_equal(rc, BL_ENOMEM);
        } else {
            BL_ASSERT_OK(ctx, rc);
            assert_true(r.largest >= 2);
            assert_true(r.trials[0].peak_bytes > 0 && r.trials[0].peak_bytes <= c.budget_bytes);
        }
        assert_int_equal(dev->budget_bytes, budget);
        assert_int_equal(dev->peak_bytes, peak);
        assert_int_equal(dev->bytes_in_use, use);
        assert_null(dev->watches);
    }
    bl_device_release(dev, held, 1000);
    bl_device_free(dev);
    close_run_env(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_backend),
        cmocka_unit_test(test_sticky_fault),
        cmocka_unit_test(test_missing_backend),
        cmocka_unit_test(test_refused_backends),
        cmocka_unit_test(test_training_on_fixture),
        cmocka_unit_test(test_resident_bytes_on_fixture),
        cmocka_unit_test(test_find_batch_keeps_device_fields),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
