/* Internal: a direct (no im2col) convolution for the CPU backend's whole-batch conv2d, for
 * layers with few input channels (LeNet's first layer: 1 channel, 6 outputs, 5×5 on 28×28),
 * where the column matrix costs more than the products and the products are too skinny for a
 * GEMM. AVX2/FMA code chosen at run time like cpu_gemm.h (the same availability test); elsewhere
 * bl__conv_direct_fits() is false and the backend keeps im2col and GEMM.
 *
 * The image is first copied into a zero-padded buffer xp [C, HP, WP] (bl__conv_direct_pad),
 * HP = H + 2·pad_h, WP = the output width rounded up to 16, plus kernel_w − 1, so that every
 * output row is computed as whole vectors of 8 without bounds tests.
 *
 * Forward is bit-identical to bl__small_gemm_rows on the column matrix (the same FMA chain over
 * k = (c, ki, kj) in that order, from zero) followed by the bias addition. The weight gradient
 * sums in another order than bl__small_gemm_nt on the columns (8-lane partial sums over each
 * output row's vectors, the last one masked, instead of vectors across the flattened
 * positions), so its rounding differs; it does not depend on the thread count either.
 */
#ifndef BATCHLAB_CPU_CONV_DIRECT_H
#define BATCHLAB_CPU_CONV_DIRECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batchlab/device.h"

/* True when the direct kernels can run this layer (stride 1, at most a few input channels,
 * AVX2/FMA present: `own`) and the padded image fits in `room` floats. */
bool bl__conv_direct_fits(const bl_window2d *w, bool own, int64_t room);

/* Floats of the padded image xp for this window. */
int64_t bl__conv_direct_padded_size(const bl_window2d *w);

/* xp = image [C, H, W] placed inside zeros. With `zero_border` false only the interior is
 * written (the border must still be zero from an earlier call on the same buffer). */
void bl__conv_direct_pad(const bl_window2d *w, const float *image, bool zero_border, float *xp);

/* y [O, OH·OW] = weight [O, K] ⊛ xp (+ bias [O] when not NULL), overwriting y; on 16-lane
 * vectors where `wide` (the caller has checked AVX-512F; the same bits). */
void bl__conv_direct_forward(const bl_window2d *w, int64_t out_channels, bool wide,
                             const float *xp, const float *weight, const float *bias, float *y);

/* dweight [O, K] = dy [O, OH·OW] ⊛ xp + beta·dweight (beta 0 ignores dweight's contents); two
 * taps to a 16-lane vector where `wide` (the same bits). */
void bl__conv_direct_wgrad(const bl_window2d *w, int64_t out_channels, bool wide,
                           const float *xp, const float *dy, float beta, float *dweight);

#endif
