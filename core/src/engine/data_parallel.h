/* Data-parallel training (data_parallel = true; docs/distributed.md): the ranks of the current
 * communicator (dist/dist.h: the world, or a sweep's group) train one run together. Each
 * takes its share of every logical batch, the gradients are summed over the ranks in place in
 * the net's one flat gradient block (bl_reducer: MPI now, NCCL later), and every rank applies
 * the same update, so the parameters stay identical without being sent again.
 *
 * run.c calls bl__dp_setup before training and bl__dp_agree after the outputs began;
 * train.c calls bl__dp_gradients in place of its own gradient pass. Nothing here calls MPI. */
#ifndef BATCHLAB_ENGINE_DATA_PARALLEL_H
#define BATCHLAB_ENGINE_DATA_PARALLEL_H

#include "batchlab/dist.h"
#include "batchlab/nn.h"
#include "batchlab/run.h"
#include "engine/engine.h"

/* With cfg->data_parallel and more than one rank in the current communicator: fills *red and
 * sets cfg->reducer to it (no communication; every rank of the run must then reach
 * bl__dp_agree, whatever failed before); otherwise leaves cfg->reducer NULL (a data-parallel
 * run on one rank is a plain run). Checkpoint and save files are written by rank 0 only. */
int bl__dp_setup(bl_ctx *ctx, const bl_run_plan *plan, bl_train_config *cfg, bl_reducer *red);

/* Collective: rank 0's parameters into every rank's net. */
int bl__dp_share_params(bl_ctx *ctx, const bl_reducer *red, bl_net *net);

/* Collective: every rank's `rc` (its outputs' begin) → BL_OK when all are BL_OK, else the
 * first error here, or BL_EIO "another rank could not start the run". */
int bl__dp_agree(bl_ctx *ctx, const bl_reducer *red, int rc);

/* What a step agrees on besides the gradients. */
typedef struct bl__dp_step {
    bool interrupt;          /* in: this rank's interrupt flag; out: any rank's */
    double time;             /* in: this rank's training time; out: rank 0's */
} bl__dp_step;

/* The mean gradient of the loss over the B samples of a logical batch (rows x, y; the
 * same on every rank) into the net's gradient block on every rank: this rank forward and
 * backward over its rows [B·rank/ranks, B·(rank+1)/ranks) in chunks of micro_batch (0: one),
 * then one in-place sum over the ranks. *loss_sum is the loss summed over all B samples. With
 * gns (may be NULL) the per-rank gradients are the small batches of the noise scale
 * (bl__gns_update with k = ranks, b = B/ranks); slot 0 of gns is used. Collective even when
 * this rank fails: every rank joins the step's first sum, so an error on one (out of memory, a
 * layer's error) ends the run on all at this step: this rank's own error, or BL_EIO "another
 * rank ... failed" on the others. */
int bl__dp_gradients(bl_ctx *ctx, const bl_reducer *red, bl_net *net, const float *x,
                     const void *y, int64_t x_numel, size_t y_bytes, int64_t B,
                     int64_t micro_batch, bl__gns *gns, bl__dp_step *step, double *loss_sum);

/* Whether `out` is a record-keeping output that runs on rank 0 only (run_outputs.c). */
bool bl__run_output_rank0_only(const bl_run_output *out);

#endif
