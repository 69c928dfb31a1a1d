/* batchlab — dataset plugins and the host's dataset object.
 *
 * A dataset plugin opens a source (files, generated data), reports its shape, classes and
 * splits, and fills batches for lists of sample indices. Pixels and other raw values may stay
 * in their compact form (bytes) inside the plugin: gather converts and normalizes while it
 * copies, which is both faster and smaller than keeping floats.
 */
#ifndef BATCHLAB_DATASET_H
#define BATCHLAB_DATASET_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "batchlab/config.h"
#include "batchlab/error.h"
#include "batchlab/nn.h"
#include "batchlab/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { BL_SPLIT_TRAIN = 0, BL_SPLIT_VALIDATION = 1, BL_SPLIT_TEST = 2 } bl_split;
#define BL_SPLIT_COUNT 3

/* "train", "validation", "test". */
BL_EXPORT const char *bl_split_name(bl_split split);

/* What a dataset reports about its data.
 * ABI: fields only appended. The host zeroes the struct and sets `size` to its own
 * sizeof(bl_data_info) before it calls the plugin's info; the plugin keeps `size` as it is
 * (clear with bl_data_info_reset, never memset the whole struct or assign it) and writes a
 * field added after ABI 2 only when BL_HAS_FIELD(out, bl_data_info, field) is true. Fields a
 * plugin does not know stay zero, which means "not reported" for every appended field. */
typedef struct bl_data_info {
    uint32_t size;             /* sizeof(bl_data_info) of the host */
    bl_shape sample;           /* shape of one input sample */
    int64_t classes;           /* ≥ 2: classification with int32 labels 0..classes-1;
                                  0: regression with float targets */
    int64_t target_dim;        /* floats per target (regression); 1 for classification */
    int64_t count[BL_SPLIT_COUNT]; /* samples per split; 0 = the split does not exist */
    const char *const *class_names; /* `classes` names, or NULL; owned by the dataset */
} bl_data_info;

/* For a plugin's info: zeroes every field of *out that the host's struct holds, keeping
 * out->size (compiled into the plugin, so it is safe against a host with a shorter struct). */
static inline void bl_data_info_reset(bl_data_info *out)
{
    uint32_t size = out->size;
    size_t n = size < sizeof *out ? size : sizeof *out;
    memset(out, 0, n);
    out->size = size;
}

/* Operation table of a dataset plugin; `size` = sizeof(bl_dataset_ops) at build time. */
typedef struct bl_dataset_ops {
    uint32_t size;
    /* Opens the source with validated options. On success *handle is the plugin's object,
     * passed to every other call and freed by close. Errors name the file (and the byte
     * offset or line for malformed data). */
    int (*open)(bl_ctx *ctx, const bl_config *opts, void **handle);
    void (*close)(void *handle);
    /* Fills *out (see bl_data_info: keep out->size, start with bl_data_info_reset). */
    void (*info)(void *handle, bl_data_info *out);
    /* Fills x[n × sample numel] with floats and y with n int32 labels (classification) or
     * n × target_dim floats (regression), for samples idx[0..n) of `split` (host memory).
     * Indices are in range (the host checks). Called from one thread at a time per handle,
     * possibly not the thread that opened it. */
    int (*gather)(void *handle, bl_ctx *ctx, bl_split split, const int64_t *idx, int64_t n,
                  float *x, void *y);
    /* Optional (may be NULL): named numeric facts about the data, e.g. the synthetic
     * teacher–student set's "teacher_weights" or "noise_std". Writes up to cap values to out,
     * sets *n to how many exist; BL_ENOTFOUND for an unknown key. */
    int (*property)(void *handle, bl_ctx *ctx, const char *key, double *out, int64_t cap,
                    int64_t *n);
    /* Optional (may be NULL; appended in issue 11), for inputs stored as bytes: as gather, but
     * x gets the n × sample numel stored bytes and *scale, *offset the affine map gather
     * applies to them: gather's x[k] is exactly (float)bytes[k]·scale + offset (in float, no
     * contraction). y as in gather. Lets the host keep a dataset on a device as bytes. */
    int (*gather_bytes)(void *handle, bl_ctx *ctx, bl_split split, const int64_t *idx,
                        int64_t n, uint8_t *x, void *y, float *scale, float *offset);
} bl_dataset_ops;

/* ---- host side ------------------------------------------------------------------------------ */

typedef struct bl_dataset bl_dataset;

/* Validates `opts` (may be NULL) against the plugin's options and opens the dataset. The
 * plugin's shared object stays loaded until bl_dataset_close. */
BL_EXPORT int bl_dataset_open(bl_ctx *ctx, const bl_plugin *plugin, const bl_config *opts,
                              bl_dataset **out);
BL_EXPORT void bl_dataset_close(bl_dataset *ds);
BL_EXPORT const bl_data_info *bl_dataset_info(const bl_dataset *ds);
BL_EXPORT const bl_plugin *bl_dataset_plugin(const bl_dataset *ds);
/* The validated options (defaults filled in). */
BL_EXPORT const bl_config *bl_dataset_options(const bl_dataset *ds);
/* Checks the indices against the split's size, then calls the plugin's gather. */
BL_EXPORT int bl_dataset_gather(bl_ctx *ctx, bl_dataset *ds, bl_split split,
                                const int64_t *idx, int64_t n, float *x, void *y);
/* The stored bytes of samples idx[0..n) and the affine map to gather's floats (see
 * bl_dataset_ops.gather_bytes); BL_EUNSUPPORTED, with no message, when the plugin does not
 * keep its inputs as bytes. Indices checked as in bl_dataset_gather. */
BL_EXPORT int bl_dataset_gather_bytes(bl_ctx *ctx, bl_dataset *ds, bl_split split,
                                      const int64_t *idx, int64_t n, uint8_t *x, void *y,
                                      float *scale, float *offset);
/* BL_ENOTFOUND when the plugin has no properties or not this one. */
BL_EXPORT int bl_dataset_property(bl_ctx *ctx, bl_dataset *ds, const char *key, double *out,
                                  int64_t cap, int64_t *n);

#ifdef __cplusplus
}
#endif
#endif
