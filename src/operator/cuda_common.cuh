// What the CUDA kernel files share: the CUDA headers (or, with
// IGC_CUDA_EMULATION, cuda_emulation.h, which runs the same kernels on the CPU
// for the tests), the pointer and shared-memory types every kernel reaches memory
// through, the one launch helper, float16 loads and stores with float
// accumulation, and the error channel of igc_common.h.
#ifndef IGC_MX_CUDA_COMMON_CUH_
#define IGC_MX_CUDA_COMMON_CUH_

#ifdef IGC_CUDA_EMULATION
#include "cuda_emulation.h"
#else
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

#include <stdint.h>

#include "igc_common.h"

namespace igc {
namespace cuda {

// Kernels reach memory only through these, so that the emulation can check every
// access (bounds and races, see cuda_emulation.h); under nvcc they are T* and T[N].
//   ptr<T>                 a pointer into global or dynamic shared memory
//   shared_array<T, N>     a static __shared__ array, nestable for 2-D arrays
//   IGC_SHARED(type, name) a static __shared__ variable (of shared_array members)
//   IGC_DYNAMIC_SHARED(type, name)  ptr<type> to the launch's dynamic shared memory
#ifdef IGC_CUDA_EMULATION
template <typename T>
using ptr = ::igc_emu::Ptr<T>;
template <typename T, int N>
using shared_array = ::igc_emu::Array<T, N>;
#define IGC_SHARED(type, name) type& name = ::igc_emu::shared<type, __COUNTER__>()
#define IGC_DYNAMIC_SHARED(type, name) \
  ::igc::cuda::ptr<type> name = ::igc_emu::dynamic_shared<type>()
#else
template <typename T>
using ptr = T*;
template <typename T, int N>
using shared_array = T[N];
#define IGC_SHARED(type, name) __shared__ type name
// One extern array for every kernel (its type cannot differ between kernels),
// aligned for the widest element.
#define IGC_DYNAMIC_SHARED(type, name)                                \
  extern __shared__ __align__(16) unsigned char igc_dynamic_shared[]; \
  type* name = reinterpret_cast<type*>(igc_dynamic_shared)
#endif

// Sums run in float for float16 and float, in double for double.
template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

template <typename T>
__device__ __forceinline__ typename Acc<T>::type load(ptr<const T> p) {
  return *p;
}
template <>
__device__ __forceinline__ float load(ptr<const __half> p) {
  return __half2float(*p);
}
template <typename T>
__device__ __forceinline__ void store(ptr<T> p, typename Acc<T>::type v) {
  *p = v;
}
template <>
__device__ __forceinline__ void store(ptr<__half> p, float v) {
  *p = __float2half(v);
}

// CUDA's largest grid along x; y and z allow 65535.
constexpr int64_t kMaxGridX = 2147483647;

// Between 1 and `cap` blocks, `wanted` if it fits (kernels loop grid-stride over
// the rest; the emulation can cap lower so that those loops run in the tests).
inline unsigned grid_cap(int64_t wanted, int64_t cap = 65535) {
#ifdef IGC_CUDA_EMULATION
  cap = ::igc_emu::grid_cap(cap);
#endif
  return static_cast<unsigned>(wanted < 1 ? 1 : (wanted < cap ? wanted : cap));
}

// Blocks of a 1-D grid of `threads`-thread blocks for `work` items, at most `cap`.
inline unsigned grid_blocks(int64_t work, unsigned threads, int64_t cap = 65535) {
  return grid_cap((work + threads - 1) / threads, cap);
}

// The weight gradients split their reduction into chunks whose partial sums go to
// a workspace, summed in chunk order by sum_chunks_kernel: blocks wanted (8 per
// multiprocessor of a 132-SM H100/H200, at least 4 waves even where only 2 blocks
// fit on a multiprocessor at once) and the most workspace (bytes).
constexpr int64_t kWeightBlocksWanted = 8 * 132;
constexpr int64_t kMaxWorkspaceBytes = int64_t{256} << 20;

// Bytes of one accumulator (Acc<T>) for a dtype code.
inline int acc_bytes(int dtype) { return dtype == IGC_FLOAT64 ? 8 : 4; }

// Workspace of a chunked weight gradient: none for one chunk, else one partial
// weight gradient of `weight_elements` accumulators per chunk.
inline int64_t chunk_workspace_bytes(int chunks, int64_t weight_elements, int dtype) {
  return chunks == 1 ? 0 : int64_t{chunks} * weight_elements * acc_bytes(dtype);
}

// kernel<<<grid, block, shared_bytes, stream>>>(args...): the one way kernels are
// launched; shared_bytes of dynamic shared memory, at most 48 KiB (no kernel opts in
// to more).
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
            cudaStream_t stream, const char* name, Args&&... args) {
#ifdef IGC_CUDA_EMULATION
  (void)stream;
  ::igc_emu::launch(kernel, grid, block, shared_bytes, name, static_cast<Args&&>(args)...);
#else
  (void)name;
  // clang-format off
  kernel<<<grid, block, shared_bytes, stream>>>(static_cast<Args&&>(args)...);
  // clang-format on
#endif
}

// out[e] = the sum over chunks, in chunk order, of partial[chunk][e]: the second
// step of the weight gradients, which sum their chunks' partial results in a
// fixed order (deterministic, no atomics).
template <typename T>
__global__ void __launch_bounds__(256, 8)
    sum_chunks_kernel(int elements, int chunks,
                      ptr<const typename Acc<T>::type> __restrict__ partial,
                      ptr<T> __restrict__ out) {
  using A = typename Acc<T>::type;
  for (int e = blockIdx.x * 256 + threadIdx.x; e < elements; e += gridDim.x * 256) {
    A sum = A(0);
    for (int c = 0; c < chunks; ++c) sum += partial[int64_t{c} * elements + e];
    store(out + e, sum);
  }
}

// IGC_OK, or IGC_CUDA_ERROR with the text left in igc_last_cuda_error().
inline int status(cudaError_t err) {
  if (err == cudaSuccess) return IGC_OK;
  igc_set_last_cuda_error(cudaGetErrorString(err));
  return IGC_CUDA_ERROR;
}

// The status of the launches so far.
inline int finish() { return status(cudaGetLastError()); }

}  // namespace cuda
}  // namespace igc

#define IGC_LAUNCH(kernel, grid, block, shared_bytes, stream, ...) \
  ::igc::cuda::launch(kernel, grid, block, shared_bytes, stream, #kernel, __VA_ARGS__)

#endif  // IGC_MX_CUDA_COMMON_CUH_
