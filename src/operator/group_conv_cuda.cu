// CUDA grouped convolution: direct kernels, one thread per output element for
// the forward and data-gradient passes, one block per weight element for the
// weight gradient (a block-wide tree sum: deterministic, no atomics). See
// group_conv_kernels.h for the contract.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "group_conv_kernels.h"

namespace {

thread_local const char* last_cuda_error = "no error";

// float16 loads and stores, arithmetic in float.
template <typename T> struct Acc { using type = T; };
template <> struct Acc<__half> { using type = float; };

template <typename T>
__device__ __forceinline__ typename Acc<T>::type load(const T* p) { return *p; }
template <>
__device__ __forceinline__ float load(const __half* p) { return __half2float(*p); }

template <typename T>
__device__ __forceinline__ void store(T* p, typename Acc<T>::type v) { *p = v; }
template <>
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half(v); }

// Geometry in device-friendly form, with the derived sizes.
struct Dims {
  int64_t N, C, H, W, F, G, KH, KW, SH, SW, PH, PW, OH, OW, Cg, Fg;
};

Dims make_dims(const igc_conv_geometry& g) {
  return {g.batch, g.channels, g.height, g.width, g.filters, g.groups, g.kernel_h, g.kernel_w,
          g.stride_h, g.stride_w, g.pad_h, g.pad_w,
          igc_conv_out_size(g.height, g.kernel_h, g.stride_h, g.pad_h),
          igc_conv_out_size(g.width, g.kernel_w, g.stride_w, g.pad_w),
          g.channels / g.groups, g.filters / g.groups};
}

// Consecutive threads take consecutive output columns: coalesced stores, and
// loads that overlap between neighbours.
template <typename T>
__global__ void forward_kernel(Dims d, const T* __restrict__ data,
                               const T* __restrict__ weight, T* __restrict__ out) {
  using A = typename Acc<T>::type;
  const int64_t total = d.N * d.F * d.OH * d.OW;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ow = idx % d.OW;
    const int64_t oh = (idx / d.OW) % d.OH;
    const int64_t f = (idx / (d.OW * d.OH)) % d.F;
    const int64_t n = idx / (d.OW * d.OH * d.F);
    const int64_t g = f / d.Fg;
    const T* x = data + (n * d.C + g * d.Cg) * d.H * d.W;
    const T* w = weight + f * d.Cg * d.KH * d.KW;
    A sum = 0;
    for (int64_t ci = 0; ci < d.Cg; ++ci) {
      for (int64_t kh = 0; kh < d.KH; ++kh) {
        const int64_t ih = oh * d.SH - d.PH + kh;
        if (ih < 0 || ih >= d.H) continue;
        for (int64_t kw = 0; kw < d.KW; ++kw) {
          const int64_t iw = ow * d.SW - d.PW + kw;
          if (iw < 0 || iw >= d.W) continue;
          sum += load(x + (ci * d.H + ih) * d.W + iw) * load(w + (ci * d.KH + kh) * d.KW + kw);
        }
      }
    }
    store(out + idx, sum);
  }
}

// Each input pixel gathers from the output pixels whose window covers it.
template <typename T>
__global__ void backward_data_kernel(Dims d, const T* __restrict__ out_grad,
                                     const T* __restrict__ weight, T* __restrict__ data_grad) {
  using A = typename Acc<T>::type;
  const int64_t total = d.N * d.C * d.H * d.W;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t iw = idx % d.W;
    const int64_t ih = (idx / d.W) % d.H;
    const int64_t c = (idx / (d.W * d.H)) % d.C;
    const int64_t n = idx / (d.W * d.H * d.C);
    const int64_t g = c / d.Cg, ci = c % d.Cg;
    A sum = 0;
    for (int64_t fo = 0; fo < d.Fg; ++fo) {
      const int64_t f = g * d.Fg + fo;
      const T* dy = out_grad + (n * d.F + f) * d.OH * d.OW;
      const T* w = weight + (f * d.Cg + ci) * d.KH * d.KW;
      for (int64_t kh = 0; kh < d.KH; ++kh) {
        const int64_t th = ih + d.PH - kh;
        if (th < 0 || th % d.SH != 0 || th / d.SH >= d.OH) continue;
        for (int64_t kw = 0; kw < d.KW; ++kw) {
          const int64_t tw = iw + d.PW - kw;
          if (tw < 0 || tw % d.SW != 0 || tw / d.SW >= d.OW) continue;
          sum += load(dy + (th / d.SH) * d.OW + tw / d.SW) * load(w + kh * d.KW + kw);
        }
      }
    }
    store(data_grad + idx, sum);
  }
}

constexpr int kReduceThreads = 256;

// Block b sums out_grad * data over (image, output pixel) for weight element b.
template <typename T>
__global__ void backward_weight_kernel(Dims d, const T* __restrict__ out_grad,
                                       const T* __restrict__ data, T* __restrict__ weight_grad) {
  using A = typename Acc<T>::type;
  __shared__ A partial[kReduceThreads];
  const int64_t elements = d.F * d.Cg * d.KH * d.KW;
  const int64_t pixels = d.OH * d.OW;
  for (int64_t e = blockIdx.x; e < elements; e += gridDim.x) {
    const int64_t kw = e % d.KW;
    const int64_t kh = (e / d.KW) % d.KH;
    const int64_t ci = (e / (d.KW * d.KH)) % d.Cg;
    const int64_t f = e / (d.KW * d.KH * d.Cg);
    const int64_t c = (f / d.Fg) * d.Cg + ci;
    A sum = 0;
    for (int64_t k = threadIdx.x; k < d.N * pixels; k += blockDim.x) {
      const int64_t n = k / pixels, p = k % pixels;
      const int64_t oh = p / d.OW, ow = p % d.OW;
      const int64_t ih = oh * d.SH - d.PH + kh, iw = ow * d.SW - d.PW + kw;
      if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) continue;
      sum += load(out_grad + (n * d.F + f) * pixels + p) *
             load(data + ((n * d.C + c) * d.H + ih) * d.W + iw);
    }
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int half = kReduceThreads / 2; half > 0; half /= 2) {
      if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
      __syncthreads();
    }
    if (threadIdx.x == 0) store(weight_grad + e, partial[0]);
    __syncthreads();
  }
}

unsigned grid_for(int64_t work, unsigned threads) {
  const int64_t blocks = (work + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

int finish() {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    last_cuda_error = cudaGetErrorString(err);
    return IGC_CUDA_ERROR;
  }
  return IGC_OK;
}

int check(const igc_conv_geometry* g, const void* a, const void* b, const void* c, int dtype) {
  const int status = igc_group_conv_check(g, dtype);
  if (status != IGC_OK) return status;
  if (g->batch > 0 && (a == nullptr || b == nullptr || c == nullptr)) return IGC_BAD_POINTER;
  return IGC_OK;
}

enum class Pass { kForward, kBackwardData, kBackwardWeight };

template <typename T>
void launch(Pass pass, const Dims& d, const void* a, const void* b, void* out,
            cudaStream_t stream) {
  constexpr unsigned kThreads = 256;
  const T* x = static_cast<const T*>(a);
  const T* y = static_cast<const T*>(b);
  T* o = static_cast<T*>(out);
  switch (pass) {
    case Pass::kForward:
      forward_kernel<T><<<grid_for(d.N * d.F * d.OH * d.OW, kThreads), kThreads, 0, stream>>>(
          d, x, y, o);
      break;
    case Pass::kBackwardData:
      backward_data_kernel<T>
          <<<grid_for(d.N * d.C * d.H * d.W, kThreads), kThreads, 0, stream>>>(d, x, y, o);
      break;
    default: {
      const int64_t elements = d.F * d.Cg * d.KH * d.KW;
      backward_weight_kernel<T><<<static_cast<unsigned>(elements < 65536 ? elements : 65536),
                                  kReduceThreads, 0, stream>>>(d, x, y, o);
    }
  }
}

int run(Pass pass, const igc_conv_geometry* g, const void* a, const void* b, void* out,
        int dtype, void* stream) {
  const int status = check(g, a, b, out, dtype);
  if (status != IGC_OK) return status;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (g->batch == 0) {  // nothing to read; the weight gradient is zero
    if (pass == Pass::kBackwardWeight) {
      const int64_t bytes = g->filters * (g->channels / g->groups) * g->kernel_h * g->kernel_w *
                            igc_dtype_size(dtype);
      if (out == nullptr) return IGC_BAD_POINTER;
      cudaMemsetAsync(out, 0, bytes, s);
    }
    return finish();
  }
  const Dims d = make_dims(*g);
  switch (dtype) {
    case IGC_FLOAT64: launch<double>(pass, d, a, b, out, s); break;
    case IGC_FLOAT16: launch<__half>(pass, d, a, b, out, s); break;
    default: launch<float>(pass, d, a, b, out, s);
  }
  return finish();
}

}  // namespace

extern "C" int igc_group_conv_forward_cuda(const igc_conv_geometry* g, const void* data,
                                           const void* weight, void* out, int dtype,
                                           void* stream) {
  return run(Pass::kForward, g, data, weight, out, dtype, stream);
}

extern "C" int igc_group_conv_backward_data_cuda(const igc_conv_geometry* g,
                                                 const void* out_grad, const void* weight,
                                                 void* data_grad, int dtype, void* stream) {
  return run(Pass::kBackwardData, g, out_grad, weight, data_grad, dtype, stream);
}

extern "C" int igc_group_conv_backward_weight_cuda(const igc_conv_geometry* g,
                                                   const void* out_grad, const void* data,
                                                   void* weight_grad, int dtype, void* stream) {
  return run(Pass::kBackwardWeight, g, out_grad, data, weight_grad, dtype, stream);
}

extern "C" const char* igc_last_group_conv_cuda_error(void) { return last_cuda_error; }
