/*
 * The ABI every kernel of this library shares: element types, status codes and
 * their text, the CUDA error channel, and (for C++) the pass enum and the
 * overflow-checked size arithmetic. Plain C types only, so that the kernels can
 * be called from C, Python ctypes, PyTorch or CuPy without an MXNet build.
 *
 * Per-op headers (reorder_kernels.h, igc_conv_kernels.h, group_conv_kernels.h)
 * declare the kernels themselves.
 */
#ifndef IGC_MX_IGC_COMMON_H_
#define IGC_MX_IGC_COMMON_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element types, numbered as MXNet's MXDType so the glue can pass them through. */
enum igc_dtype { IGC_FLOAT32 = 0, IGC_FLOAT64 = 1, IGC_FLOAT16 = 2 };

enum igc_status {
  IGC_OK = 0,
  IGC_BAD_SHAPE = 1,     /* a size is out of range or does not divide as the op needs */
  IGC_BAD_DTYPE = 2,     /* dtype is not one of igc_dtype, or not one this device runs */
  IGC_BAD_POINTER = 3,   /* a null pointer for a non-empty tensor, or src aliases dst */
  IGC_CUDA_ERROR = 4,    /* a CUDA call failed; see igc_last_cuda_error() */
  IGC_NO_BLAS = 5,       /* no cblas library found (InterleavedGroupConv on CPU) */
  IGC_OUT_OF_MEMORY = 6, /* scratch memory could not be allocated */
  IGC_TOO_LARGE = 7,     /* a tensor or scratch buffer would exceed IGC_MAX_ELEMENTS */
  IGC_BAD_WORKSPACE = 8, /* the workspace is smaller than the *_workspace query asked for */
  IGC_BAD_ACTIVATION = 9 /* an activation that is not one of igc_activation */
};

/* What a forward pass applies to each output value before it stores it, after the
 * bias (a per-output-channel array, or NULL for none). */
enum igc_activation { IGC_ACT_NONE = 0, IGC_ACT_RELU = 1 };

/* The most elements any tensor or scratch buffer may hold: the index range of the
 * mxnet wheels (built without large-tensor support). Keeping every size below it
 * keeps every index product far from 64-bit overflow. */
#define IGC_MAX_ELEMENTS ((int64_t)2147483647)

/* Size in bytes of one element of `dtype`, or 0 if it is not an igc_dtype. */
int igc_dtype_size(int dtype);

/* Human-readable text for an igc_status value. */
const char* igc_status_string(int status);

/* The text of the last CUDA error seen by a CUDA entry point of this library, in
 * this thread ("no error" before any). */
const char* igc_last_cuda_error(void);

/* Records `text` (a string with static lifetime) for igc_last_cuda_error. */
void igc_set_last_cuda_error(const char* text);

/* Which CPU code path the direct kernels run: "avx512", "avx2" or "generic". */
const char* igc_cpu_isa(void);

#ifdef __cplusplus
}  // extern "C"

namespace igc {

// The three computations of every op with a weight.
enum class Pass { kForward = 0, kBackwardData = 1, kBackwardWeight = 2 };

// a * b, or -1 when either is negative or the product exceeds IGC_MAX_ELEMENTS.
inline int64_t checked_mul(int64_t a, int64_t b) {
  if (a < 0 || b < 0) return -1;
  if (a != 0 && b > IGC_MAX_ELEMENTS / a) return -1;
  return a * b;
}

// The product of `count` sizes, or -1 as checked_mul.
inline int64_t checked_product(const int64_t* sizes, int count) {
  int64_t product = 1;
  for (int k = 0; k < count && product >= 0; ++k) product = checked_mul(product, sizes[k]);
  return product;
}

}  // namespace igc
#endif  // __cplusplus

#endif  // IGC_MX_IGC_COMMON_H_
