// CUDA kernels for the interleaved channel permutation. See reorder_kernels.h.
#include "cuda_common.cuh"
#include "reorder_kernels.h"

namespace {

using igc::cuda::ptr;

// Threads per block; few registers, so that a multiprocessor holds its most
// threads (2048 on sm_80/sm_90: 8 blocks).
constexpr unsigned kThreads = 256;

// Where output rows (an (image, channel) pair each) read their input: output
// channel oc = j * branch_factor + i is input channel i * per_branch + j. A thread
// walks rows `step` apart; Position follows (image, oc, j, i) by addition, so that
// the copy loop never divides.
template <typename Index>
struct Position {
  Index image, oc, j, i;
  __device__ __forceinline__ Position(Index row, Index channels, Index branch_factor) {
    image = row / channels;  // once per thread
    oc = row - image * channels;
    j = oc / branch_factor;
    i = oc - j * branch_factor;
  }
  __device__ __forceinline__ Index source(Index channels, Index per_branch) const {
    return image * channels + i * per_branch + j;
  }
};

// The step between a thread's rows, decomposed as Position does (on the host).
template <typename Index>
struct Step {
  Index rows, image, oc, j, i;
};

// Copy in units of Vec (2, 4, 8 or 16 bytes): threadIdx.x along a row, threadIdx.y
// over rows.
template <typename Vec, typename Index>
__global__ void __launch_bounds__(kThreads, 8)
    shuffle_copy_kernel(ptr<const Vec> __restrict__ src, ptr<Vec> __restrict__ dst, Index rows,
                        Index channels, Index branch_factor, Index vecs_per_row, Step<Index> step) {
  const Index per_branch = channels / branch_factor;
  Index row = blockIdx.x * static_cast<Index>(blockDim.y) + threadIdx.y;
  if (row >= rows) return;
  Position<Index> at(row, channels, branch_factor);
  for (; row < rows; row += step.rows) {
    const ptr<const Vec> from = src + at.source(channels, per_branch) * vecs_per_row;
    const ptr<Vec> to = dst + row * vecs_per_row;
    for (Index k = threadIdx.x; k < vecs_per_row; k += blockDim.x) to[k] = from[k];
    at.image += step.image;
    at.oc += step.oc;
    at.j += step.j;
    at.i += step.i;
    if (at.i >= branch_factor) {
      at.i -= branch_factor;
      ++at.j;
    }
    if (at.oc >= channels) {
      at.oc -= channels;
      at.j -= per_branch;
      ++at.image;
    }
  }
}

template <typename Vec, typename Index>
void launch_copy(const void* src, void* dst, Index rows, Index channels, Index branch_factor,
                 Index row_bytes, cudaStream_t stream) {
  const Index n = row_bytes / sizeof(Vec);
  // Threads along a row: the largest power of two up to the row's units (and 256);
  // the others take rows. Blocks: enough to fill any current GPU several times.
  unsigned along = 1;
  while (along * 2 <= n && along * 2 <= kThreads) along *= 2;
  const unsigned across = kThreads / along;
  const unsigned blocks = igc::cuda::grid_blocks(rows, across);
  Step<Index> step;
  step.rows = static_cast<Index>(blocks) * across;
  step.image = step.rows / channels;
  step.oc = step.rows - step.image * channels;
  step.j = step.oc / branch_factor;
  step.i = step.oc - step.j * branch_factor;
  IGC_LAUNCH((shuffle_copy_kernel<Vec, Index>), dim3(blocks), dim3(along, across), 0, stream,
             static_cast<const Vec*>(src), static_cast<Vec*>(dst), rows, channels, branch_factor, n,
             step);
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
