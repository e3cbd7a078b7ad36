// CUDA kernels for the interleaved channel permutation. See reorder_kernels.h.
#include "cuda_common.cuh"
#include "reorder_kernels.h"

namespace {

// Output row `row` (an (image, channel) pair) reads input row `source_row(row)`.
template <typename Index>
__device__ __forceinline__ Index source_row(Index row, Index channels, Index branch_factor,
                                            Index per_branch) {
  const Index image = row / channels;
  const Index out_channel = row - image * channels;
  const Index j = out_channel / branch_factor;
  const Index i = out_channel - j * branch_factor;
  return image * channels + i * per_branch + j;
}

// Copy in units of Vec (2, 4, 8 or 16 bytes), one unit per thread per step.
template <typename Vec, typename Index>
__global__ void shuffle_copy_kernel(const Vec* __restrict__ src, Vec* __restrict__ dst, Index rows,
                                    Index channels, Index branch_factor, Index per_branch,
                                    Index vecs_per_row) {
  const Index total = rows * vecs_per_row;
  for (Index idx = blockIdx.x * static_cast<Index>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<Index>(gridDim.x) * blockDim.x) {
    const Index row = idx / vecs_per_row;
    const Index k = idx - row * vecs_per_row;
    dst[idx] = src[source_row(row, channels, branch_factor, per_branch) * vecs_per_row + k];
  }
}

template <typename Vec, typename Index>
void launch_copy(const void* src, void* dst, Index rows, Index channels, Index branch_factor,
                 Index row_bytes, cudaStream_t stream) {
  constexpr unsigned kThreads = 256;
  const Index n = row_bytes / sizeof(Vec);
  // Enough blocks to fill any current GPU several times; the loop is grid-stride.
  IGC_LAUNCH((shuffle_copy_kernel<Vec, Index>), dim3(igc::cuda::grid_blocks(rows * n, kThreads)),
             dim3(kThreads), stream, static_cast<const Vec*>(src), static_cast<Vec*>(dst), rows,
             channels, branch_factor, channels / branch_factor, n);
}

// The widest unit that divides both the rows and the pointers' alignment.
template <typename Index>
void launch_widest(const void* src, void* dst, Index rows, Index channels, Index branch_factor,
                   Index row_bytes, cudaStream_t stream) {
  const uintptr_t both = reinterpret_cast<uintptr_t>(src) | reinterpret_cast<uintptr_t>(dst) |
                         static_cast<uintptr_t>(row_bytes);
  if (both % 16 == 0) {
    launch_copy<uint4>(src, dst, rows, channels, branch_factor, row_bytes, stream);
  } else if (both % 8 == 0) {
    launch_copy<uint2>(src, dst, rows, channels, branch_factor, row_bytes, stream);
  } else if (both % 4 == 0) {
    launch_copy<uint32_t>(src, dst, rows, channels, branch_factor, row_bytes, stream);
  } else {
    launch_copy<uint16_t>(src, dst, rows, channels, branch_factor, row_bytes, stream);
  }
}

}  // namespace

extern "C" int igc_reorder_cuda(const void* src, void* dst, int64_t batch, int64_t channels,
                                int64_t branch_factor, int64_t inner, int dtype, void* stream) {
  const int status = igc_reorder_check(src, dst, batch, channels, branch_factor, inner, dtype);
  if (status != IGC_OK) return status;
  if (batch == 0 || channels == 0 || inner == 0) return IGC_OK;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  // 32-bit indices when every byte offset fits: integer division is the
  // costliest instruction in this kernel and is twice as cheap in 32 bits.
  const int64_t row_bytes = inner * igc_dtype_size(dtype);
  if (batch * channels * row_bytes < (int64_t{1} << 31)) {
    launch_widest<uint32_t>(src, dst, static_cast<uint32_t>(batch * channels),
                            static_cast<uint32_t>(channels), static_cast<uint32_t>(branch_factor),
                            static_cast<uint32_t>(row_bytes), s);
  } else {
    launch_widest<uint64_t>(src, dst, static_cast<uint64_t>(batch * channels),
                            static_cast<uint64_t>(channels), static_cast<uint64_t>(branch_factor),
                            static_cast<uint64_t>(row_bytes), s);
  }
  return igc::cuda::finish();
}
