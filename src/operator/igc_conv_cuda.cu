// CUDA kernels of the fused interleaved group convolution (layout in
// igc_conv_kernels.h). All three passes are batched GEMMs over strided channel
// rows, run by one tiled kernel of our own.
//
// Why not cuBLAS: the operands are not plain strided matrices. A group's input
// rows interleave two strides (slab t, row i -> channel i*P + g*S + t), and the
// weight gradient sums over images and pixels in one reduction axis. cuBLAS
// would need one call per slab and per image; here each axis of each operand
// maps an index i to (i / div) * hi + (i % div) * lo, which covers all of these
// in one launch per pass. It also keeps the build free of cuBLAS, which the CI
// toolkit does not ship.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "igc_conv_kernels.h"

namespace {

// One axis of an operand: element offset of index i.
struct Axis {
  long long div, hi, lo;
};
constexpr long long kNoSplit = 1LL << 62;
Axis plain(long long stride) { return {kNoSplit, 0, stride}; }
Axis split(long long div, long long hi, long long lo) { return {div, hi, lo}; }

__device__ __forceinline__ long long offset(const Axis& a, long long i) {
  return a.div == kNoSplit ? i * a.lo : (i / a.div) * a.hi + (i % a.div) * a.lo;
}

struct Operand {
  Axis batch, row, col;
};

// C[z] (m x n) = A[z] (m x k) . B[z] (k x n), for z in [0, batches).
struct Problem {
  long long m, n, k, batches;
  Operand a, b, c;
};

template <typename T> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };

constexpr int kTile = 32;      // output tile kTile x kTile, k in steps of kTile
constexpr int kThreadRows = 8; // block (kTile, kThreadRows): kTile/kThreadRows rows each
constexpr int kPerThread = kTile / kThreadRows;
constexpr long long kMaxGridZ = 65535;

template <typename T>
__global__ void strided_gemm(const T* __restrict__ a, const T* __restrict__ b,
                             T* __restrict__ c, Problem p) {
  using A = typename Acc<T>::type;
  __shared__ A sa[kTile][kTile + 1];  // +1: no bank conflicts on column reads
  __shared__ A sb[kTile][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const long long row0 = static_cast<long long>(blockIdx.y) * kTile;
  const long long col0 = static_cast<long long>(blockIdx.x) * kTile;
  for (long long z = blockIdx.z; z < p.batches; z += gridDim.z) {
    const T* az = a + offset(p.a.batch, z);
    const T* bz = b + offset(p.b.batch, z);
    A acc[kPerThread] = {};
    for (long long k0 = 0; k0 < p.k; k0 += kTile) {
      for (int r = ty; r < kTile; r += kThreadRows) {
        const long long ar = row0 + r, ak = k0 + tx, bk = k0 + r, bc = col0 + tx;
        sa[r][tx] = (ar < p.m && ak < p.k)
                        ? static_cast<A>(az[offset(p.a.row, ar) + offset(p.a.col, ak)])
                        : A(0);
        sb[r][tx] = (bk < p.k && bc < p.n)
                        ? static_cast<A>(bz[offset(p.b.row, bk) + offset(p.b.col, bc)])
                        : A(0);
      }
      __syncthreads();
#pragma unroll 8
      for (int kk = 0; kk < kTile; ++kk) {
        const A bv = sb[kk][tx];
#pragma unroll
        for (int j = 0; j < kPerThread; ++j) acc[j] += sa[ty + j * kThreadRows][kk] * bv;
      }
      __syncthreads();
    }
    T* cz = c + offset(p.c.batch, z);
    const long long col = col0 + tx;
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
      const long long row = row0 + ty + j * kThreadRows;
      if (row < p.m && col < p.n) {
        cz[offset(p.c.row, row) + offset(p.c.col, col)] = static_cast<T>(acc[j]);
      }
    }
  }
}

enum class Pass { kForward, kBackwardData, kBackwardWeight };

// The three passes as Problems. Sizes as in igc_conv_kernels.h: P = C/L,
// K = C/G, S = K/L. Column c of a group's (K x .) input block is slab t = c / L,
// row i = c % L: channel i*P + g*S + t.
Problem problem(Pass pass, long long batch, long long channels, long long inner,
                long long primary, long long groups) {
  const long long L = primary, G = groups, P = channels / L, K = channels / G, S = K / L;
  const long long image = channels * inner;
  const Axis slab_rows = split(L, inner, P * inner);  // group-local column c -> x row
  const Axis pixels = plain(1);
  const Axis weight_of_group = split(G, 0, K * K);    // z = n*G + g -> weight[g]
  switch (pass) {
    case Pass::kForward:  // a = weight[g] (K x K), b = x slab rows (K x inner) -> y
      return {K, inner, K, batch * G,
              {weight_of_group, plain(K), plain(1)},
              {split(G, image, S * inner), slab_rows, pixels},
              {split(G, image, inner), plain(G * inner), pixels}};
    case Pass::kBackwardData:  // a = weight[g]^T, b = dy rows of g -> dx slab rows
      return {K, inner, K, batch * G,
              {weight_of_group, plain(1), plain(K)},
              {split(G, image, inner), plain(G * inner), pixels},
              {split(G, image, S * inner), slab_rows, pixels}};
    case Pass::kBackwardWeight:  // reduction index k = n*inner + pixel; z = g
    default:
      return {K, K, batch * inner, G,
              {plain(inner), plain(G * inner), split(inner, image, 1)},
              {plain(S * inner), split(inner, image, 1), slab_rows},
              {plain(K * K), plain(K), plain(1)}};
  }
}

template <typename T>
void launch_gemm(const void* a, const void* b, void* c, const Problem& p,
                 cudaStream_t stream) {
  const dim3 block(kTile, kThreadRows);
  const dim3 grid(static_cast<unsigned>((p.n + kTile - 1) / kTile),
                  static_cast<unsigned>((p.m + kTile - 1) / kTile),
                  static_cast<unsigned>(p.batches < kMaxGridZ ? p.batches : kMaxGridZ));
  strided_gemm<T><<<grid, block, 0, stream>>>(static_cast<const T*>(a),
                                               static_cast<const T*>(b),
                                               static_cast<T*>(c), p);
}

int fail(cudaError_t err) {
  igc_set_last_cuda_error(cudaGetErrorString(err));
  return IGC_CUDA_ERROR;
}

int run(Pass pass, const void* a, const void* b, void* c, int64_t batch, int64_t channels,
        int64_t inner, int64_t primary, int64_t groups, int dtype, void* stream) {
  const int status =
      igc_interleaved_conv_check(a, b, c, batch, channels, inner, primary, groups, dtype);
  if (status != IGC_OK) return status;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (batch == 0 || channels == 0 || inner == 0) {
    if (pass == Pass::kBackwardWeight && channels > 0) {
      // No images: the gradient of the (non-empty) weight is zero.
      const cudaError_t err = cudaMemsetAsync(
          c, 0, channels * (channels / groups) * igc_dtype_size(dtype), s);
      if (err != cudaSuccess) return fail(err);
    }
    return IGC_OK;
  }
  const Problem p = problem(pass, batch, channels, inner, primary, groups);
  switch (dtype) {
    case IGC_FLOAT32: launch_gemm<float>(a, b, c, p, s); break;
    case IGC_FLOAT64: launch_gemm<double>(a, b, c, p, s); break;
    case IGC_FLOAT16: launch_gemm<__half>(a, b, c, p, s); break;
    default: return IGC_BAD_DTYPE;
  }
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? IGC_OK : fail(err);
}

}  // namespace

extern "C" int igc_interleaved_conv_forward_cuda(const void* data, const void* weight,
                                                 void* out, int64_t batch, int64_t channels,
                                                 int64_t inner, int64_t primary,
                                                 int64_t groups, int dtype, void* stream) {
  return run(Pass::kForward, weight, data, out, batch, channels, inner, primary, groups,
             dtype, stream);
}

extern "C" int igc_interleaved_conv_backward_data_cuda(const void* out_grad,
                                                       const void* weight, void* data_grad,
                                                       int64_t batch, int64_t channels,
                                                       int64_t inner, int64_t primary,
                                                       int64_t groups, int dtype,
                                                       void* stream) {
  return run(Pass::kBackwardData, weight, out_grad, data_grad, batch, channels, inner,
             primary, groups, dtype, stream);
}

extern "C" int igc_interleaved_conv_backward_weight_cuda(const void* out_grad,
                                                         const void* data, void* weight_grad,
                                                         int64_t batch, int64_t channels,
                                                         int64_t inner, int64_t primary,
                                                         int64_t groups, int dtype,
                                                         void* stream) {
  return run(Pass::kBackwardWeight, out_grad, data, weight_grad, batch, channels, inner,
             primary, groups, dtype, stream);
}
