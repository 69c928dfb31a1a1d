/* Internal: column-free ("implicit GEMM") kernels for the CPU backend's whole-batch conv2d, for
 * stride-1 unpadded layers with up to 16 output channels (LeNet's C3: 6 → 16 channels, 5×5 on
 * 14×14), where im2col cost about a fifth of the layer. Each product reads the image where the
 * column matrix would have copied it from, with the output channels along the vector lanes.
 * AVX2/FMA code chosen at run time like cpu_gemm.h; elsewhere bl__conv_implicit_fits() is false.
 *
 * Arithmetic order: forward computes every output as one FMA chain from zero over
 * k = (c, ki, kj) in order, as bl__small_gemm_rows does on the column matrix (the same bits as
 * the column path; the caller adds the bias afterwards). The weight gradient is one FMA chain
 * over the output positions p = (oh, ow) in order per entry, then added to the old value
 * (beta 1) or stored (beta 0): the same bits as bl__small_gemm_rows on cols · dyᵀ.
 *
 * Layouts: OV = 8 or 16 (the output channels rounded up to whole vectors); wt [K, OV] is the
 * weight transposed, zero-padded; yt and dyt [P, OV] are one image's output (gradient)
 * transposed, dyt zero-padded; dwt [K, O] is the weight gradient transposed.
 */
#ifndef BATCHLAB_CPU_CONV_IMPLICIT_H
#define BATCHLAB_CPU_CONV_IMPLICIT_H

#include <stdbool.h>
#include <stdint.h>

#include "batchlab/device.h"

/* True when these kernels can run this layer: AVX2/FMA present (`own`), stride 1, no padding,
 * 1 ≤ out_channels ≤ 16. */
bool bl__conv_implicit_fits(const bl_window2d *w, int64_t out_channels, bool own);

/* OV for out_channels (8 or 16). */
int64_t bl__conv_implicit_ov(int64_t out_channels);

/* yt [P, OV] = (weight · columns of image)ᵀ: lanes ≥ out_channels hold 0. */
void bl__conv_implicit_forward(const bl_window2d *w, int64_t out_channels, bool wide,
                               const float *image, const float *wt, float *yt);

/* dwt[k][o] = Σ_p columns(image)[k][p] · dyt[p][o] + beta·dwt[k][o] (beta 0 ignores dwt's
 * contents). */
void bl__conv_implicit_wgrad(const bl_window2d *w, int64_t out_channels, bool wide,
                             const float *image, const float *dyt, float beta, float *dwt);

#endif
