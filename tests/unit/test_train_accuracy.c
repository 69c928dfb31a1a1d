/* Where a point's train_accuracy comes from (train.h, bl_train_acc_source): by default the
 * training steps since the previous point (issue 13: the extra pass over a training subset at
 * every point was a large part of a study's evaluation time); the subset pass on request;
 * nothing when train_eval_samples is 0 or the task is a regression. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* 800 training samples, 3 classes */
#define BLOBS "task=blobs samples=1000 dim=8 classes=3 noise=2.0 seed=3 validation=200 test=200"

static bl_train_config config(bl_net *net, bl_dataset *ds)
{
    bl_train_config c = bl_train_defaults();
    c.net = net;
    c.data = ds;
    c.optim.lr = 0.05;
    c.batch = 32;
    c.epochs = 1;
    c.seed = 7;
    c.skip_test = true;
    return c;
}

/* One full-batch step with a vanishing LR: the step scores every training sample with the
 * initial parameters, and the subset pass (all 800 samples) scores them with parameters that
 * moved by ~1e-9, so the two accuracies agree; neither is the accuracy of a different set. */
static void steps_and_subset_agree_on_one_full_batch(void **state)
{
    bl_test_env *f = *state;
    bl_dataset *ds = bl_test_dataset(f, "synthetic", BLOBS);
    double acc[2];
    for (int from = 0; from < 2; from++) {
        bl_net *net = bl_test_model(f, "mlp", "hidden=16", ds, 5);
        bl_train_config c = config(net, ds);
        c.batch = 800;
        c.optim.lr = 1e-9;
        c.train_eval_samples = 800;
        c.train_accuracy_from = from ? BL_TRAIN_ACC_SUBSET : BL_TRAIN_ACC_STEPS;
        bl_run_result r;
        BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
        assert_int_equal(r.status, BL_RUN_COMPLETED);
        assert_int_equal(r.steps, 1);
        assert_int_equal(r.history_count, 1);
        acc[from] = r.history[0].train_accuracy;
        assert_true(acc[from] > 0.0 && acc[from] < 1.0);
        bl_run_result_free(&r);
        bl_net_free(net);
    }
    if (fabs(acc[0] - acc[1]) > 1.5 / 800)
        fail_msg("steps %.6f vs subset %.6f", acc[0], acc[1]);
    bl_dataset_close(ds);
}

/* A point every step of 32: the accuracy is that step's, a whole number of samples out of
 * 32; every 5 steps: a whole number out of the 160 samples since the previous point. */
static void steps_accuracy_counts_the_interval(void **state)
{
    bl_test_env *f = *state;
    bl_dataset *ds = bl_test_dataset(f, "synthetic", BLOBS);
    for (int every = 1; every <= 5; every += 4) {
        bl_net *net = bl_test_model(f, "mlp", "hidden=16", ds, 5);
        bl_train_config c = config(net, ds);
        c.eval_unit = BL_EVAL_STEPS;
        c.eval_every = every;
        bl_run_result r;
        BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
        assert_int_equal(r.status, BL_RUN_COMPLETED);
        assert_int_equal(r.history_count, (size_t)(25 / every));
        bool varies = false;
        for (size_t i = 0; i < r.history_count; i++) {
            double n = 32.0 * every, right = r.history[i].train_accuracy * n;
            if (!(fabs(right - round(right)) < 1e-6 && right >= 0 && right <= n))
                fail_msg("every %d, point %zu: accuracy %.9g is not a count out of %g", every,
                         i, r.history[i].train_accuracy, n);
            varies |= i > 0 && r.history[i].train_accuracy != r.history[0].train_accuracy;
        }
        assert_true(varies);
        bl_run_result_free(&r);
        bl_net_free(net);
    }
    bl_dataset_close(ds);
}

/* train_eval_samples = 0 turns it off in both modes; a regression has none. */
static void off_and_regression_have_none(void **state)
{
    bl_test_env *f = *state;
    bl_dataset *ds = bl_test_dataset(f, "synthetic", BLOBS);
    for (int from = 0; from < 2; from++) {
        bl_net *net = bl_test_model(f, "mlp", "hidden=16", ds, 5);
        bl_train_config c = config(net, ds);
        c.train_eval_samples = 0;
        c.train_accuracy_from = from ? BL_TRAIN_ACC_SUBSET : BL_TRAIN_ACC_STEPS;
        bl_run_result r;
        BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
        assert_int_equal(r.status, BL_RUN_COMPLETED);
        assert_true(r.history_count >= 1);
        for (size_t i = 0; i < r.history_count; i++)
            assert_true(isnan(r.history[i].train_accuracy));
        assert_true(isfinite(r.final.val_accuracy));
        bl_run_result_free(&r);
        bl_net_free(net);
    }
    bl_dataset_close(ds);

    ds = bl_test_dataset(f, "synthetic",
                         "task=teacher samples=300 dim=4 seed=2 validation=50 test=0");
    bl_net *net = bl_test_model(f, "mlp", "hidden=16", ds, 5);
    bl_train_config c = config(net, ds);
    bl_run_result r;
    BL_ASSERT_OK(f->ctx, bl_train(f->ctx, &c, &r));
    assert_int_equal(r.status, BL_RUN_COMPLETED);
    assert_true(isnan(r.final.train_accuracy));
    assert_true(isfinite(r.final.train_loss));
    bl_run_result_free(&r);
    bl_net_free(net);
    bl_dataset_close(ds);

    /* a source that does not exist is refused */
    ds = bl_test_dataset(f, "synthetic", BLOBS);
    net = bl_test_model(f, "mlp", "hidden=16", ds, 5);
    c = config(net, ds);
    c.train_accuracy_from = (bl_train_acc_source)7;
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "train_accuracy_from", bl_train(f->ctx, &c, &r));
    bl_run_result_free(&r);
    bl_net_free(net);
    bl_dataset_close(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(steps_and_subset_agree_on_one_full_batch),
        cmocka_unit_test(steps_accuracy_counts_the_interval),
        cmocka_unit_test(off_and_regression_have_none),
    };
    return cmocka_run_group_tests(tests, bl_test_setup_plugins, bl_test_teardown);
}
