// CUDA kernels for the interleaved channel permutation. See reorder_kernels.h.
#include <cuda_runtime.h>

#include "reorder_kernels.h"

namespace {

thread_local const char* last_cuda_error = "no error";

// Output row `row` (an (image, channel) pair) reads input row `source_row(row)`.
template <typename Index>
__device__ __forceinline__ Index source_row(Index row, Index channels, Index groups,
                                            Index per_group) {
  const Index image = row / channels;
  const Index out_channel = row - image * channels;
  const Index j = out_channel / groups;
  const Index i = out_channel - j * groups;
  return image * channels + i * per_group + j;
}

// Copy in units of Vec (4, 8 or 16 bytes), one unit per thread per step.
template <typename Vec, typename Index>
__global__ void shuffle_copy_kernel(const Vec* __restrict__ src, Vec* __restrict__ dst,
                                    Index rows, Index channels, Index groups,
                                    Index per_group, Index vecs_per_row) {
  const Index total = rows * vecs_per_row;
  for (Index idx = blockIdx.x * static_cast<Index>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<Index>(gridDim.x) * blockDim.x) {
    const Index row = idx / vecs_per_row;
    const Index k = idx - row * vecs_per_row;
    dst[idx] = src[source_row(row, channels, groups, per_group) * vecs_per_row + k];
  }
}

unsigned grid_for(int64_t work, unsigned threads) {
  const int64_t blocks = (work + threads - 1) / threads;
  // Enough blocks to fill any current GPU several times; the loops are grid-stride.
  return static_cast<unsigned>(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

template <typename Index>
void launch_copy(const void* src, void* dst, Index rows, Index channels, Index groups,
                 Index row_bytes, uintptr_t alignment, cudaStream_t stream) {
  constexpr unsigned kThreads = 256;
  const Index per_group = channels / groups;
  const uintptr_t both = alignment | static_cast<uintptr_t>(row_bytes);
  if (both % 16 == 0) {
    const Index n = row_bytes / 16;
    shuffle_copy_kernel<uint4, Index><<<grid_for(rows * n, kThreads), kThreads, 0, stream>>>(
        static_cast<const uint4*>(src), static_cast<uint4*>(dst), rows, channels, groups,
        per_group, n);
  } else if (both % 8 == 0) {
    const Index n = row_bytes / 8;
    shuffle_copy_kernel<uint2, Index><<<grid_for(rows * n, kThreads), kThreads, 0, stream>>>(
        static_cast<const uint2*>(src), static_cast<uint2*>(dst), rows, channels, groups,
        per_group, n);
  } else if (both % 4 == 0) {
    const Index n = row_bytes / 4;
    shuffle_copy_kernel<uint32_t, Index><<<grid_for(rows * n, kThreads), kThreads, 0, stream>>>(
        static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), rows, channels, groups,
        per_group, n);
  } else {
    const Index n = row_bytes / 2;
    shuffle_copy_kernel<uint16_t, Index><<<grid_for(rows * n, kThreads), kThreads, 0, stream>>>(
        static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), rows, channels, groups,
        per_group, n);
  }
}

}  // namespace

extern "C" int igc_reorder_cuda(const void* src, void* dst, int64_t batch, int64_t channels,
                                int64_t groups, int64_t inner, int dtype, void* stream) {
  const int status = igc_reorder_check(src, dst, batch, channels, groups, inner, dtype);
  if (status != IGC_OK) return status;
  if (batch == 0 || channels == 0 || inner == 0) return IGC_OK;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  // 32-bit indices when every element offset fits: integer division is the
  // costliest instruction in these kernels and is twice as cheap in 32 bits.
  const int64_t row_bytes = inner * igc_dtype_size(dtype);
  const uintptr_t alignment =
      reinterpret_cast<uintptr_t>(src) | reinterpret_cast<uintptr_t>(dst);
  if (batch * channels * row_bytes < (int64_t{1} << 31)) {
    launch_copy<uint32_t>(src, dst, static_cast<uint32_t>(batch * channels),
                          static_cast<uint32_t>(channels), static_cast<uint32_t>(groups),
                          static_cast<uint32_t>(row_bytes), alignment, s);
  } else {
    launch_copy<uint64_t>(src, dst, static_cast<uint64_t>(batch * channels),
                          static_cast<uint64_t>(channels), static_cast<uint64_t>(groups),
                          static_cast<uint64_t>(row_bytes), alignment, s);
  }
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    last_cuda_error = cudaGetErrorString(err);
    return IGC_CUDA_ERROR;
  }
  return IGC_OK;
}

extern "C" const char* igc_last_cuda_error(void) { return last_cuda_error; }

extern "C" void igc_set_last_cuda_error(const char* text) { last_cuda_error = text; }
