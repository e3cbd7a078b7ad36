/*
 * InterleavedGroupConv kernels: Reorder(L) -> 1x1 convolution with M groups (no
 * bias) -> Reorder(M), computed as GEMMs over strided channel rows with no
 * permuted copy. Plain functions over raw pointers, no MXNet types; dtypes and
 * status codes are those of igc_common.h.
 *
 * Sizes: batch N, channels C, inner = H*W (the rows of the (C, inner) view of one
 * image are contiguous), primary partition L, secondary partition M. With
 * P = C/L, K = C/M (channels per secondary group) and S = K/L (slabs per group;
 * 1 when C = L*M):
 *
 *   slab t of group g     = input rows  i*P + g*S + t,  i in [0, L)
 *                           (row stride P*inner, offset (g*S + t)*inner)
 *   output rows of group g = a*M + g,   a in [0, K)   (row stride M*inner)
 *   weight of group g      = weight[g*K:(g+1)*K, :] as a (K, K) row-major block;
 *                            slab t uses its columns [t*L, (t+1)*L)
 *
 *   out_g   = sum_t W[g, :, slab t] . X[g, t]         (S accumulated GEMMs)
 *   dX[g,t] = W[g, :, slab t]^T . dOut_g              (every input row written once)
 *   dW[g, :, slab t] = sum_n dOut_g[n] . X[g, t][n]^T
 *
 * This is exactly the unfused graph: Reorder(L) puts input row i*P + j at position
 * j*L + i, so group g's input column c = t*L + i is row i*P + g*S + t; Reorder(M)
 * sends the group's output a to channel a*M + g. The weight is the unfused 1x1
 * convolution's weight (C, K, 1, 1), so checkpoints interchange.
 *
 * Every function writes its output (never accumulates): MXNet's extension API
 * does not pass grad_req (see python/igc_mx/_ops.py).
 */
#ifndef IGC_MX_IGC_CONV_KERNELS_H_
#define IGC_MX_IGC_CONV_KERNELS_H_

#include <stdint.h>

#include "igc_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Argument check shared by every entry point: IGC_OK, IGC_BAD_SHAPE (a size < 0,
 * L or M < 1, L or M not dividing C, L not dividing C/M), IGC_TOO_LARGE (an image
 * of more than IGC_MAX_ELEMENTS), IGC_BAD_DTYPE, or IGC_BAD_POINTER (a null
 * pointer for a non-empty tensor).
 */
int igc_interleaved_conv_check(const void* a, const void* b, const void* c, int64_t batch,
                               int64_t channels, int64_t inner, int64_t primary, int64_t secondary,
                               int dtype);

/*
 * CPU, float32 and float64 (IGC_BAD_DTYPE otherwise). weight is (C, C/M)
 * row-major; data, out and their gradients are (N, C, inner). Register-blocked
 * direct loops for up to 64 channels per group (igc_conv_cpu_direct_impl.h),
 * else the GEMMs of the OpenBLAS that MXNet loads, found at run time
 * (IGC_NO_BLAS if none); OpenMP over independent (image, group) tasks.
 */
int igc_interleaved_conv_forward_cpu(const void* data, const void* weight, void* out, int64_t batch,
                                     int64_t channels, int64_t inner, int64_t primary,
                                     int64_t secondary, int dtype);
/* forward, then per output value: + bias[channel] (bias: C values, indexed by output
 * channel, or NULL for none), + residual (NULL for none, else (N, C, inner) like out:
 * a residual branch's sum), then `activation` (igc_activation), in the loop that
 * stores it (the direct path) or on each task's block of output right after its
 * GEMMs (the BLAS path). */
int igc_interleaved_conv_forward_epilogue_cpu(const void* data, const void* weight,
                                              const void* bias, const void* residual,
                                              int activation, void* out, int64_t batch,
                                              int64_t channels, int64_t inner, int64_t primary,
                                              int64_t secondary, int dtype);
int igc_interleaved_conv_backward_data_cpu(const void* out_grad, const void* weight,
                                           void* data_grad, int64_t batch, int64_t channels,
                                           int64_t inner, int64_t primary, int64_t secondary,
                                           int dtype);
int igc_interleaved_conv_backward_weight_cpu(const void* out_grad, const void* data,
                                             void* weight_grad, int64_t batch, int64_t channels,
                                             int64_t inner, int64_t primary, int64_t secondary,
                                             int dtype);

/*
 * CUDA, float32, float64 and float16 (float16 sums in float32), asynchronous on
 * `stream` (a cudaStream_t; NULL is the default stream). Only in libraries built
 * with IGC_USE_CUDA. IGC_CUDA_ERROR leaves its text in igc_last_cuda_error().
 * The weight gradient sums partial results in `workspace`, device memory of at
 * least igc_interleaved_conv_backward_weight_cuda_workspace() bytes (that query
 * returns -1 where the check fails).
 */
int igc_interleaved_conv_forward_cuda(const void* data, const void* weight, void* out,
                                      int64_t batch, int64_t channels, int64_t inner,
                                      int64_t primary, int64_t secondary, int dtype, void* stream);
int igc_interleaved_conv_backward_data_cuda(const void* out_grad, const void* weight,
                                            void* data_grad, int64_t batch, int64_t channels,
                                            int64_t inner, int64_t primary, int64_t secondary,
                                            int dtype, void* stream);
int64_t igc_interleaved_conv_backward_weight_cuda_workspace(int64_t batch, int64_t channels,
                                                            int64_t inner, int64_t primary,
                                                            int64_t secondary, int dtype);
int igc_interleaved_conv_backward_weight_cuda(const void* out_grad, const void* data,
                                              void* weight_grad, int64_t batch, int64_t channels,
                                              int64_t inner, int64_t primary, int64_t secondary,
                                              int dtype, void* workspace, int64_t workspace_bytes,
                                              void* stream);

#ifdef __cplusplus
}
#endif

#endif  // IGC_MX_IGC_CONV_KERNELS_H_
