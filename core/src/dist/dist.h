/* The distributed layer's internal interface (batchlab/dist.h is the public part).
 *
 * Everything the engine needs from MPI, and nothing more: communicators (the world, the groups
 * of a sweep of data-parallel runs), a shared counter (the sweep's work queue), messages to a
 * root and broadcasts of bytes, and the gradient reducer (bl_reducer). dist_mpi.c implements
 * it with MPI; dist_single.c, built instead when MPI is not, is the one-rank world (every call
 * that would talk to another rank fails with BL_EUNSUPPORTED, and none is made: with one rank
 * the engine never asks). The engine includes this header and has no #ifdef of its own.
 *
 * The sweep's waits (a rank done with its points, rank 0 waiting for results) poll with short
 * sleeps (dist_mpi.c), not with MPI's blocking calls, which spin a core: a rank waiting for
 * its peers must not take a core from them. The reducer's sums, among ranks in step, block.
 */
#ifndef BATCHLAB_DIST_INTERNAL_H
#define BATCHLAB_DIST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batchlab/dist.h"

typedef struct bl_dist_comm bl_dist_comm;        /* a communicator: the world or a group */
typedef struct bl_dist_counter bl_dist_counter;  /* a counter held by rank 0 of a comm */

/* The world; NULL when MPI is not running (one rank). */
bl_dist_comm *bl__dist_world(void);

/* A comm's rank and size; NULL is the one-rank world (0, 1). */
int bl__dist_rank(const bl_dist_comm *comm);
int bl__dist_size(const bl_dist_comm *comm);

/* Collective over comm: the ranks with the same `color` form a new comm, ordered by `key`.
 * *out is new (bl__dist_comm_free). */
int bl__dist_split(bl_ctx *ctx, bl_dist_comm *comm, int color, int key, bl_dist_comm **out);
/* Releases a comm made by bl__dist_split (NULL and the world are ignored). */
void bl__dist_comm_free(bl_dist_comm *comm);

/* The comm a data-parallel run trains over: the group the sweep executor set while one of its
 * points runs, else the world (NULL without MPI). */
bl_dist_comm *bl__dist_current(void);
/* Sets it (NULL: back to the world); returns the previous one. */
bl_dist_comm *bl__dist_set_current(bl_dist_comm *comm);

/* Collective over comm: a counter starting at 0, held by comm's rank 0. */
int bl__dist_counter_new(bl_ctx *ctx, bl_dist_comm *comm, bl_dist_counter **out);
/* Atomically adds `add` and gives the value before in *before (any rank, any time: the holder
 * need not take part). */
int bl__dist_counter_add(bl_ctx *ctx, bl_dist_counter *counter, uint64_t add,
                         uint64_t *before);
/* Collective: releases the counter (NULL is fine). */
void bl__dist_counter_free(bl_dist_counter *counter);

/* Sends `len` bytes of buf to rank `dest` without waiting for it to receive them: buf (from
 * malloc) is taken, and freed once sent, by bl__dist_flush or a later post. On error it is
 * freed too. */
int bl__dist_post(bl_ctx *ctx, bl_dist_comm *comm, int dest, int tag, void *buf, size_t len);
/* Waits until every posted message of this process was sent. */
int bl__dist_flush(bl_ctx *ctx);
/* A message with `tag` from any rank: *buf (malloc'd, the caller frees) and *len, *src its
 * sender. With wait false and none there, *buf is NULL and it returns 0. */
int bl__dist_receive(bl_ctx *ctx, bl_dist_comm *comm, int tag, bool wait, int *src, void **buf,
                     size_t *len);
/* Collective: rank `root`'s *buf and *len reach every rank; on the others *buf is new (malloc'd;
 * the caller frees it; NULL when len is 0). */
int bl__dist_bcast(bl_ctx *ctx, bl_dist_comm *comm, int root, void **buf, size_t *len);

/* Fills *out with the MPI reducer over comm (no allocation; comm must outlive it). NULL: the
 * one-rank reducer (a sum is the buffer itself). */
void bl__dist_reducer(bl_dist_comm *comm, bl_reducer *out);

#endif
