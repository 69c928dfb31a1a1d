/* Writes a sample TensorBoard event file for tests/cli/tfevents_decode.sh:
 *   tfevents_sample LOGDIR
 * makes LOGDIR/sample/events.out.tfevents.* with the file-version event, the HParams
 * experiment and session start (batch 128, lr 0.5, optimizer "sgd", nesterov true; target_value
 * NaN: declared, no value), one scalar
 * ("custom/answer" = 42 at step 7), three evaluation points (steps 10, 20, 30; the first with
 * no validation figures) and the session end (completed), and prints the file's path. */
#include <math.h>
#include <stdio.h>

#include "batchlab/tfevents.h"

static int fail(bl_ctx *ctx)
{
    fprintf(stderr, "tfevents_sample: %s\n", bl_errmsg(ctx));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: tfevents_sample LOGDIR\n");
        return 2;
    }
    bl_ctx *ctx = bl_ctx_new();
    bl_config *hp = NULL;
    bl_tfevents *w = NULL;
    if (!ctx)
        return 1;
    if (bl_config_new(ctx, &hp) != BL_OK || bl_config_set_int(ctx, hp, "batch", 128) ||
        bl_config_set_number(ctx, hp, "lr", 0.5) ||
        bl_config_set_string(ctx, hp, "optimizer", "sgd") ||
        bl_config_set_bool(ctx, hp, "nesterov", true) ||
        bl_config_set_number(ctx, hp, "target_value", NAN) ||
        bl_tfevents_open(ctx, argv[1], "sample", &w) != BL_OK ||
        bl_tfevents_hparams(ctx, w, hp, NULL, 0) != BL_OK ||
        bl_tfevents_scalar(ctx, w, "custom/answer", 7, 42.0, 0) != BL_OK)
        return fail(ctx);
    for (int i = 1; i <= 3; i++) {
        bl_eval_point p = {.step = 10 * i, .samples = 1280 * i, .epoch = 0.25 * i,
                           .wall = i, .batch = 128, .lr = 0.5, .train_loss = 1.0 / i,
                           .train_accuracy = 0.5 + 0.125 * i,
                           .val_loss = i > 1 ? 1.5 / i : NAN,
                           .val_accuracy = i > 1 ? 0.25 * i : NAN, .gns = 100.0 * i,
                           .samples_per_sec = 2048};
        if (bl_tfevents_point(ctx, w, &p) != BL_OK)
            return fail(ctx);
    }
    if (bl_tfevents_end(ctx, w, BL_RUN_COMPLETED) != BL_OK)
        return fail(ctx);
    printf("%s\n", bl_tfevents_path(w));
    int rc = bl_tfevents_close(ctx, w);
    bl_config_free(hp);
    if (rc != BL_OK)
        return fail(ctx);
    bl_ctx_free(ctx);
    return 0;
}
