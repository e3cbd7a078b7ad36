/*
 * Interleaved channel permutation ("Reorder") kernels: plain functions over raw
 * pointers, no MXNet types, so that they can be tested and timed from C, Python
 * ctypes, PyTorch or CuPy without an MXNet build.
 *
 * Layout: a tensor of shape (batch, channels, inner...) stored contiguously, where
 * `inner` is the product of the trailing dimensions. Viewing the channels as
 * (branch_factor, channels / branch_factor) and swapping the two axes gives
 *
 *     dst[n, j * branch_factor + i, :] = src[n, i * (channels / branch_factor) + j, :]
 *
 * The inverse permutation is the same operation with channels / branch_factor.
 * The permutation moves whole rows, so it only needs the element size.
 */
#ifndef IGC_MX_REORDER_KERNELS_H_
#define IGC_MX_REORDER_KERNELS_H_

#include <stdint.h>

#include "igc_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Argument check shared by both devices: IGC_OK or the igc_status to report. */
int igc_reorder_check(const void* src, const void* dst, int64_t batch, int64_t channels,
                      int64_t branch_factor, int64_t inner, int dtype);

/*
 * CPU: writes dst. OpenMP-parallel over (image, channel) rows; each row is one
 * contiguous copy. There is no accumulating variant: MXNet's extension API
 * never asks an op to add into its output (see python/igc_mx/_ops.py).
 */
int igc_reorder_cpu(const void* src, void* dst, int64_t batch, int64_t channels,
                    int64_t branch_factor, int64_t inner, int dtype);

/*
 * CUDA. Same contract, asynchronous on `stream` (a cudaStream_t; NULL is the
 * default stream). Available only in libraries built with IGC_USE_CUDA.
 */
int igc_reorder_cuda(const void* src, void* dst, int64_t batch, int64_t channels,
                     int64_t branch_factor, int64_t inner, int dtype, void* stream);

#ifdef __cplusplus
}
#endif

#endif  // IGC_MX_REORDER_KERNELS_H_
