/*
 * Interleaved channel permutation ("Reorder") kernels: plain functions over raw
 * pointers, no MXNet types, so that they can be tested and timed from C, Python
 * ctypes, PyTorch or CuPy without an MXNet build.
 *
 * Layout: a tensor of shape (batch, channels, inner...) stored contiguously, where
 * `inner` is the product of the trailing dimensions. Viewing the channels as
 * (groups, channels / groups) and swapping the two axes gives
 *
 *     dst[n, j * groups + i, :] = src[n, i * (channels / groups) + j, :]
 *
 * The inverse permutation is the same operation with groups' = channels / groups.
 * The permutation moves whole rows, so it only needs the element size.
 */
#ifndef IGC_MX_REORDER_KERNELS_H_
#define IGC_MX_REORDER_KERNELS_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element types, numbered as MXNet's MXDType so the glue can pass them through. */
enum igc_dtype { IGC_FLOAT32 = 0, IGC_FLOAT64 = 1, IGC_FLOAT16 = 2 };

enum igc_status {
  IGC_OK = 0,
  IGC_BAD_SHAPE = 1,   /* a size is negative, or groups does not divide channels */
  IGC_BAD_DTYPE = 2,   /* dtype is not one of igc_dtype */
  IGC_BAD_POINTER = 3, /* a null pointer with a non-empty tensor, or src aliases dst */
  IGC_CUDA_ERROR = 4,  /* a CUDA launch failed; see igc_last_cuda_error() */
  IGC_NO_BLAS = 5,     /* no cblas library found (fused conv on CPU; see igc_conv_cpu.cc) */
  IGC_OUT_OF_MEMORY = 6 /* scratch memory could not be allocated (GroupConvolution) */
};

/* Size in bytes of one element of `dtype`, or 0 if it is not an igc_dtype. */
int igc_dtype_size(int dtype);

/* Human-readable text for an igc_status value. */
const char* igc_status_string(int status);

/* Argument check shared by both devices: IGC_OK or the igc_status to report. */
int igc_reorder_check(const void* src, const void* dst, int64_t batch, int64_t channels,
                      int64_t groups, int64_t inner, int dtype);

/*
 * CPU: writes dst. OpenMP-parallel over (image, channel) rows; each row is one
 * contiguous copy. There is no accumulating variant: MXNet's extension API
 * never asks an op to add into its output (see python/igc_mx/_ops.py).
 */
int igc_reorder_cpu(const void* src, void* dst, int64_t batch, int64_t channels,
                    int64_t groups, int64_t inner, int dtype);

/*
 * CUDA. Same contract, asynchronous on `stream` (a cudaStream_t; NULL is the
 * default stream). Available only in libraries built with IGC_USE_CUDA.
 */
int igc_reorder_cuda(const void* src, void* dst, int64_t batch, int64_t channels,
                     int64_t groups, int64_t inner, int dtype, void* stream);

/* The last CUDA error text seen by a CUDA entry point of this library, in this thread. */
const char* igc_last_cuda_error(void);

/* Records `text` (a static string) for igc_last_cuda_error; for the library's CUDA files. */
void igc_set_last_cuda_error(const char* text);

#ifdef __cplusplus
}
#endif

#endif  // IGC_MX_REORDER_KERNELS_H_
