// The shared ABI of igc_common.h: dtype sizes, status texts, the CUDA error channel.
#include "igc_common.h"

namespace {
thread_local const char* last_cuda_error = "no error";
}  // namespace

extern "C" int igc_dtype_size(int dtype) {
  switch (dtype) {
    case IGC_FLOAT32: return 4;
    case IGC_FLOAT64: return 8;
    case IGC_FLOAT16: return 2;
    default: return 0;
  }
}

extern "C" const char* igc_status_string(int status) {
  switch (status) {
    case IGC_OK: return "ok";
    case IGC_BAD_SHAPE: return "bad shape: a size is out of range or does not divide as required";
    case IGC_BAD_DTYPE: return "unsupported dtype: expected float32 or float64 (float16 on GPU)";
    case IGC_BAD_POINTER: return "bad pointer: null for a non-empty tensor, or src == dst";
    case IGC_CUDA_ERROR: return "CUDA error";
    case IGC_NO_BLAS:
      return "no BLAS: libopenblas.so.0 (loaded by mxnet) not found; set IGC_BLAS_LIBRARY";
    case IGC_OUT_OF_MEMORY: return "out of memory: scratch memory could not be allocated";
    case IGC_TOO_LARGE:
      return "too large: a tensor or scratch buffer would exceed 2^31 - 1 elements";
    case IGC_BAD_WORKSPACE: return "workspace missing or smaller than its query asked for";
    case IGC_BAD_ACTIVATION: return "unknown activation: expected IGC_ACT_NONE or IGC_ACT_RELU";
    default: return "unknown status";
  }
}

extern "C" const char* igc_last_cuda_error(void) { return last_cuda_error; }

extern "C" void igc_set_last_cuda_error(const char* text) { last_cuda_error = text; }
