/*
 * GroupConvolution kernels: grouped 2-D convolution as plain functions over raw
 * pointers, no MXNet types; dtypes and status codes are those of igc_common.h.
 *
 * Layouts are MXNet's Convolution(layout NCHW, num_group = groups, no_bias):
 *   data   (batch, channels, height, width)
 *   weight (filters, channels / groups, kernel_h, kernel_w)
 *   out    (batch, filters, out_h, out_w)
 * Output channel f of group g = f / (filters / groups) reads input channels
 * g * (channels / groups) ... (g + 1) * (channels / groups) - 1. No dilation.
 *
 * All three passes write (never add into) their result; MXNet's extension API
 * cannot ask for accumulation (see python/igc_mx/_ops.py).
 */
#ifndef IGC_MX_GROUP_CONV_KERNELS_H_
#define IGC_MX_GROUP_CONV_KERNELS_H_

#include <stdint.h>

#include "igc_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct igc_group_conv_geometry {
  int64_t batch, channels, height, width;
  int64_t filters, groups;
  int64_t kernel_h, kernel_w;
  int64_t stride_h, stride_w;
  int64_t pad_h, pad_w;
} igc_group_conv_geometry;

/* Output size along one axis, or -1 when the kernel does not fit the padded input
 * or a size is out of range. */
int64_t igc_group_conv_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad);

/* IGC_OK; IGC_BAD_SHAPE when a size is out of range (negative batch, height or
 * width, kernel/stride/channels/filters/groups < 1, pad < 0, groups not dividing
 * channels or filters, a kernel that does not fit the padded input); IGC_TOO_LARGE
 * when a tensor would hold more than IGC_MAX_ELEMENTS; IGC_BAD_DTYPE. Shared by
 * both devices. */
int igc_group_conv_check(const igc_group_conv_geometry* geometry, int dtype);

/*
 * CPU, float32 and float64. Direct convolution, OpenMP-parallel over
 * (image, group); the inner loops run along the output width.
 *   forward:         out  = conv(data, weight)
 *   backward_data:   data_grad  from out_grad and weight
 *   backward_weight: weight_grad from out_grad and data (partial sums over fixed
 *                    blocks of images, reduced in order: no atomics, and the
 *                    same result whatever the thread count)
 */
int igc_group_conv_forward_cpu(const igc_group_conv_geometry* geometry, const void* data,
                               const void* weight, void* out, int dtype);
/* forward, then per output value: + bias[filter] (bias: `filters` values, or NULL for
 * none), then `activation` (igc_activation), in the loop that stores it. */
int igc_group_conv_forward_bias_act_cpu(const igc_group_conv_geometry* geometry, const void* data,
                                        const void* weight, const void* bias, int activation,
                                        void* out, int dtype);
int igc_group_conv_backward_data_cpu(const igc_group_conv_geometry* geometry, const void* out_grad,
                                     const void* weight, void* data_grad, int dtype);
int igc_group_conv_backward_weight_cpu(const igc_group_conv_geometry* geometry,
                                       const void* out_grad, const void* data, void* weight_grad,
                                       int dtype);

/*
 * CUDA, float32, float64 and float16 (float16 sums in float32). Same contract,
 * asynchronous on `stream` (a cudaStream_t; NULL is the default stream).
 * Available only in libraries built with IGC_USE_CUDA; errors are
 * IGC_CUDA_ERROR with the text in igc_last_cuda_error(). The weight gradient
 * sums partial results in `workspace`, device memory of at least
 * igc_group_conv_backward_weight_cuda_workspace() bytes (-1 where the check
 * fails).
 */
int igc_group_conv_forward_cuda(const igc_group_conv_geometry* geometry, const void* data,
                                const void* weight, void* out, int dtype, void* stream);
int igc_group_conv_backward_data_cuda(const igc_group_conv_geometry* geometry, const void* out_grad,
                                      const void* weight, void* data_grad, int dtype, void* stream);
int64_t igc_group_conv_backward_weight_cuda_workspace(const igc_group_conv_geometry* geometry,
                                                      int dtype);
int igc_group_conv_backward_weight_cuda(const igc_group_conv_geometry* geometry,
                                        const void* out_grad, const void* data, void* weight_grad,
                                        int dtype, void* workspace, int64_t workspace_bytes,
                                        void* stream);

#ifdef __cplusplus
}
#endif

#endif  // IGC_MX_GROUP_CONV_KERNELS_H_
