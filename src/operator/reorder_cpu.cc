// CPU kernels for the interleaved channel permutation. See reorder_kernels.h.
#include <string.h>

#include "reorder_kernels.h"

namespace {

// Below this many bytes a parallel region costs more than the copy itself.
constexpr int64_t kParallelBytes = 1 << 16;

// Input channel that feeds output channel `out_channel`.
inline int64_t source_channel(int64_t out_channel, int64_t branch_factor, int64_t per_branch) {
  const int64_t j = out_channel / branch_factor;
  const int64_t i = out_channel - j * branch_factor;
  return i * per_branch + j;
}

// Rows are (image, channel) pairs. Output rows are visited in order so that the
// writes stream; each row is a single contiguous block of `row_bytes`.
void shuffle_copy(const char* src, char* dst, int64_t batch, int64_t channels,
                  int64_t branch_factor, int64_t row_bytes) {
  const int64_t per_branch = channels / branch_factor;
  const int64_t rows = batch * channels;
#pragma omp parallel for schedule(static) if (rows * row_bytes >= kParallelBytes)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t image = row / channels;
    const int64_t from =
        image * channels + source_channel(row - image * channels, branch_factor, per_branch);
    memcpy(dst + row * row_bytes, src + from * row_bytes, row_bytes);
  }
}

}  // namespace

extern "C" int igc_reorder_check(const void* src, const void* dst, int64_t batch, int64_t channels,
                                 int64_t branch_factor, int64_t inner, int dtype) {
  if (igc_dtype_size(dtype) == 0) return IGC_BAD_DTYPE;
  if (batch < 0 || channels < 0 || inner < 0 || branch_factor < 1) return IGC_BAD_SHAPE;
  if (channels % branch_factor != 0) return IGC_BAD_SHAPE;
  const int64_t sizes[] = {batch, channels, inner};
  if (igc::checked_product(sizes, 3) < 0) return IGC_TOO_LARGE;
  const bool empty = batch == 0 || channels == 0 || inner == 0;
  if (!empty && (src == nullptr || dst == nullptr || src == dst)) return IGC_BAD_POINTER;
  return IGC_OK;
}

extern "C" int igc_reorder_cpu(const void* src, void* dst, int64_t batch, int64_t channels,
                               int64_t branch_factor, int64_t inner, int dtype) {
  const int status = igc_reorder_check(src, dst, batch, channels, branch_factor, inner, dtype);
  if (status != IGC_OK) return status;
  if (batch == 0 || channels == 0 || inner == 0) return IGC_OK;
  shuffle_copy(static_cast<const char*>(src), static_cast<char*>(dst), batch, channels,
               branch_factor, inner * igc_dtype_size(dtype));
  return IGC_OK;
}
