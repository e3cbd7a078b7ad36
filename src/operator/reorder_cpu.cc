// CPU kernels for the interleaved channel permutation. See reorder_kernels.h.
#include <string.h>

#include "reorder_kernels.h"

namespace {

// Below this many bytes a parallel region costs more than the copy itself.
constexpr int64_t kParallelBytes = 1 << 16;

// Input channel that feeds output channel `out_channel`.
inline int64_t source_channel(int64_t out_channel, int64_t groups, int64_t per_group) {
  const int64_t j = out_channel / groups;
  const int64_t i = out_channel - j * groups;
  return i * per_group + j;
}

// Rows are (image, channel) pairs. Output rows are visited in order so that the
// writes stream; each row is a single contiguous block of `row_bytes`.
void shuffle_copy(const char* src, char* dst, int64_t batch, int64_t channels,
                  int64_t groups, int64_t row_bytes) {
  const int64_t per_group = channels / groups;
  const int64_t rows = batch * channels;
#pragma omp parallel for schedule(static) if (rows * row_bytes >= kParallelBytes)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t image = row / channels;
    const int64_t from = image * channels +
                         source_channel(row - image * channels, groups, per_group);
    memcpy(dst + row * row_bytes, src + from * row_bytes, row_bytes);
  }
}

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
    case IGC_BAD_SHAPE: return "bad shape: sizes must be >= 0, groups >= 1 and divide channels";
    case IGC_BAD_DTYPE: return "unsupported dtype: expected float32, float64 or float16";
    case IGC_BAD_POINTER: return "bad pointer: null for a non-empty tensor, or src == dst";
    case IGC_CUDA_ERROR: return "CUDA error";
    case IGC_OUT_OF_MEMORY: return "out of memory: scratch memory could not be allocated";
    case IGC_NO_BLAS:
      return "no BLAS: libopenblas.so.0 (loaded by mxnet) not found; set IGC_BLAS_LIBRARY";
    default: return "unknown status";
  }
}

extern "C" int igc_reorder_check(const void* src, const void* dst, int64_t batch,
                                 int64_t channels, int64_t groups, int64_t inner,
                                 int dtype) {
  if (igc_dtype_size(dtype) == 0) return IGC_BAD_DTYPE;
  if (batch < 0 || channels < 0 || inner < 0 || groups < 1) return IGC_BAD_SHAPE;
  if (channels % groups != 0) return IGC_BAD_SHAPE;
  const bool empty = batch == 0 || channels == 0 || inner == 0;
  if (!empty && (src == nullptr || dst == nullptr || src == dst)) return IGC_BAD_POINTER;
  return IGC_OK;
}

extern "C" int igc_reorder_cpu(const void* src, void* dst, int64_t batch, int64_t channels,
                               int64_t groups, int64_t inner, int dtype) {
  const int status = igc_reorder_check(src, dst, batch, channels, groups, inner, dtype);
  if (status != IGC_OK) return status;
  if (batch == 0 || channels == 0 || inner == 0) return IGC_OK;
  shuffle_copy(static_cast<const char*>(src), static_cast<char*>(dst), batch, channels, groups,
               inner * igc_dtype_size(dtype));
  return IGC_OK;
}
