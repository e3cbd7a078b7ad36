/*
 * The gradient through a forward pass's epilogue (a bias per output channel, then an
 * igc_activation; see igc_group_conv_forward_bias_act_cpu and
 * igc_interleaved_conv_forward_bias_act_cpu), shared by GroupConvolution and
 * InterleavedGroupConv. Plain functions over raw pointers, no MXNet types; dtypes
 * and status codes are those of igc_common.h.
 */
#ifndef IGC_MX_BIAS_ACT_KERNELS_H_
#define IGC_MX_BIAS_ACT_KERNELS_H_

#include <stdint.h>

#include "igc_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * CPU, float32 and float64. out_grad and out (the forward pass's output) are
 * (batch, channels, inner). With IGC_ACT_RELU, pre_grad = out_grad where out > 0,
 * else 0: the gradient before the activation (with IGC_ACT_NONE it is out_grad
 * itself, and pre_grad is not written and may be NULL). bias_grad, when not NULL,
 * receives the sum of that gradient over the batch and the inner positions of
 * each channel (summed in double). One pass over the tensors, OpenMP over channels.
 */
int igc_bias_act_backward_cpu(const void* out_grad, const void* out, int activation, void* pre_grad,
                              void* bias_grad, int64_t batch, int64_t channels, int64_t inner,
                              int dtype);

#ifdef __cplusplus
}
#endif

#endif  // IGC_MX_BIAS_ACT_KERNELS_H_
