/* Internal: the CPU backend's kernels that live outside device_cpu.c (image and normalization
 * kernels in device_cpu_image.c, the whole-batch convolution in cpu_conv.c). Signatures are
 * those of bl_device_ops. */
#ifndef BATCHLAB_DEVICE_CPU_INTERNAL_H
#define BATCHLAB_DEVICE_CPU_INTERNAL_H

#include "batchlab/device.h"

void bl__cpu_im2col(bl_device *dev, const bl_window2d *w, const float *image, float *cols);
void bl__cpu_col2im(bl_device *dev, const bl_window2d *w, const float *cols, float *image);
void bl__cpu_maxpool_forward(bl_device *dev, const bl_window2d *w, int64_t batch,
                             const float *x, float *y, int32_t *argmax);
void bl__cpu_maxpool_backward(bl_device *dev, const bl_window2d *w, int64_t batch,
                              const float *dy, const int32_t *argmax, float *dx);
void bl__cpu_bn_forward_train(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                              const float *x, const float *gamma, const float *beta, float eps,
                              float momentum, float *running_mean, float *running_var,
                              float *mean, float *invstd, float *y);
void bl__cpu_bn_forward_eval(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                             const float *x, const float *gamma, const float *beta, float eps,
                             const float *running_mean, const float *running_var, float *y);
void bl__cpu_bn_backward(bl_device *dev, int64_t outer, int64_t channels, int64_t inner,
                         const float *x, const float *gamma, const float *mean,
                         const float *invstd, const float *dy, float *dx, float *dgamma,
                         float *dbeta);
/* cpu_conv.c */
void bl__cpu_conv2d_forward(bl_device *dev, const bl_window2d *w, int64_t out_channels,
                            int64_t batch, const float *x, const float *weight,
                            const float *bias, float *y, int64_t slots, float *scratch);
void bl__cpu_conv2d_backward(bl_device *dev, const bl_window2d *w, int64_t out_channels,
                             int64_t batch, const float *x, const float *weight,
                             const float *dy, float beta, float *dweight, float *dx,
                             int64_t slots, float *scratch);

#endif
