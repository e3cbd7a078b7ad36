// CUDA kernels of the fused interleaved group convolution: cuBLAS strided-batched
// GEMMs over the strided channel rows described in igc_conv_kernels.h.
//
// Batching: the forward and data-gradient GEMMs of one (group, slab) pair repeat
// over the images at a fixed stride (C*inner), so each pair is one batched call
// over the images. The weight gradient sums over the images, which a batched GEMM
// cannot do; its GEMMs repeat over the groups at fixed strides instead, so it is
// one batched call over the groups per (image, slab), accumulating with beta = 1.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "igc_conv_kernels.h"

namespace {

constexpr int kMaxDevices = 64;

// One cuBLAS handle per device and host thread (handles are not thread-safe);
// created on first use, kept for the life of the process.
cublasStatus_t handle_for(cublasHandle_t* out) {
  thread_local cublasHandle_t handles[kMaxDevices] = {};
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= kMaxDevices) {
    return CUBLAS_STATUS_NOT_INITIALIZED;
  }
  if (handles[device] == nullptr) {
    const cublasStatus_t status = cublasCreate(&handles[device]);
    if (status != CUBLAS_STATUS_SUCCESS) return status;
  }
  *out = handles[device];
  return CUBLAS_STATUS_SUCCESS;
}

struct Geometry {
  long long batch, channels, inner, primary, groups, P, K, S;
  Geometry(int64_t n, int64_t c, int64_t hw, int64_t l, int64_t g)
      : batch(n), channels(c), inner(hw), primary(l), groups(g), P(c / l), K(c / g),
        S(c / g / l) {}
  long long image() const { return channels * inner; }
  long long slab_offset(long long g, long long t) const { return (g * S + t) * inner; }
  long long weight_offset(long long g, long long t) const { return g * K * K + t * primary; }
};

// A dtype's cuBLAS data type, compute type and scalar (alpha/beta) type.
struct Types {
  cudaDataType_t data;
  cublasComputeType_t compute;
  int size;
  bool double_scalars;
};

bool types_of(int dtype, Types* t) {
  switch (dtype) {
    case IGC_FLOAT32: *t = {CUDA_R_32F, CUBLAS_COMPUTE_32F, 4, false}; return true;
    case IGC_FLOAT64: *t = {CUDA_R_64F, CUBLAS_COMPUTE_64F, 8, true}; return true;
    case IGC_FLOAT16: *t = {CUDA_R_16F, CUBLAS_COMPUTE_32F, 2, false}; return true;
    default: return false;
  }
}

// Row-major C = op(A) . op(B) + beta * C for `batch` triples at element strides
// sa, sb, sc. cuBLAS is column-major: the row-major C is the column-major C^T =
// op(B)^T . op(A)^T, so the operands swap.
class Gemm {
 public:
  Gemm(cublasHandle_t handle, const Types& types) : handle_(handle), t_(types) {}

  cublasStatus_t operator()(bool ta, bool tb, long long m, long long n, long long k,
                            const void* a, long long lda, long long sa, const void* b,
                            long long ldb, long long sb, bool accumulate, void* c,
                            long long ldc, long long sc, long long batch) const {
    const double one_d = 1.0, zero_d = 0.0;
    const float one_f = 1.0f, zero_f = 0.0f;
    const void* alpha = t_.double_scalars ? static_cast<const void*>(&one_d) : &one_f;
    const void* beta = accumulate ? alpha
                                  : (t_.double_scalars ? static_cast<const void*>(&zero_d)
                                                       : &zero_f);
    return cublasGemmStridedBatchedEx(
        handle_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
        static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), alpha,
        at(b), t_.data, static_cast<int>(ldb), sb, at(a), t_.data, static_cast<int>(lda), sa,
        beta, at(c), t_.data, static_cast<int>(ldc), sc, static_cast<int>(batch), t_.compute,
        CUBLAS_GEMM_DEFAULT);
  }

  // Pointer arithmetic in elements of the dtype.
  const void* at(const void* p, long long offset = 0) const {
    return static_cast<const char*>(p) + offset * t_.size;
  }
  void* at(void* p, long long offset = 0) const {
    return static_cast<char*>(p) + offset * t_.size;
  }

 private:
  cublasHandle_t handle_;
  Types t_;
};

const char* cublas_text(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "cuBLAS: not initialized (no CUDA device?)";
    case CUBLAS_STATUS_ALLOC_FAILED: return "cuBLAS: allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "cuBLAS: invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "cuBLAS: architecture mismatch";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "cuBLAS: execution failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "cuBLAS: not supported";
    default: return "cuBLAS: error";
  }
}

enum class Pass { kForward, kBackwardData, kBackwardWeight };

cublasStatus_t run_pass(Pass pass, const Gemm& gemm, const void* a, const void* b, void* c,
                        const Geometry& d) {
  cublasStatus_t s = CUBLAS_STATUS_SUCCESS;
  const long long image = d.image();
  switch (pass) {
    case Pass::kForward:  // a = data, b = weight, c = out
      for (long long g = 0; g < d.groups && s == CUBLAS_STATUS_SUCCESS; ++g) {
        for (long long t = 0; t < d.S && s == CUBLAS_STATUS_SUCCESS; ++t) {
          s = gemm(false, false, d.K, d.inner, d.primary, gemm.at(b, d.weight_offset(g, t)),
                   d.K, 0, gemm.at(a, d.slab_offset(g, t)), d.P * d.inner, image, t > 0,
                   gemm.at(c, g * d.inner), d.groups * d.inner, image, d.batch);
        }
      }
      return s;
    case Pass::kBackwardData:  // a = out_grad, b = weight, c = data_grad
      for (long long g = 0; g < d.groups && s == CUBLAS_STATUS_SUCCESS; ++g) {
        for (long long t = 0; t < d.S && s == CUBLAS_STATUS_SUCCESS; ++t) {
          s = gemm(true, false, d.primary, d.inner, d.K, gemm.at(b, d.weight_offset(g, t)),
                   d.K, 0, gemm.at(a, g * d.inner), d.groups * d.inner, image, false,
                   gemm.at(c, d.slab_offset(g, t)), d.P * d.inner, image, d.batch);
        }
      }
      return s;
    case Pass::kBackwardWeight:  // a = out_grad, b = data, c = weight_grad
      for (long long n = 0; n < d.batch && s == CUBLAS_STATUS_SUCCESS; ++n) {
        for (long long t = 0; t < d.S && s == CUBLAS_STATUS_SUCCESS; ++t) {
          s = gemm(false, true, d.K, d.primary, d.inner, gemm.at(a, n * image), d.groups * d.inner,
                   d.inner, gemm.at(b, n * image + d.slab_offset(0, t)), d.P * d.inner,
                   d.S * d.inner, n > 0, gemm.at(c, d.weight_offset(0, t)), d.K, d.K * d.K,
                   d.groups);
        }
      }
      return s;
  }
  return s;
}

int launch(Pass pass, const void* a, const void* b, void* c, int64_t batch, int64_t channels,
           int64_t inner, int64_t primary, int64_t groups, int dtype, void* stream) {
  const int status =
      igc_interleaved_conv_check(a, b, c, batch, channels, inner, primary, groups, dtype);
  if (status != IGC_OK) return status;
  Types types;
  if (!types_of(dtype, &types)) return IGC_BAD_DTYPE;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (batch == 0 || channels == 0 || inner == 0) {
    if (pass == Pass::kBackwardWeight && channels > 0 && c != nullptr) {
      // No images: the gradient of the (non-empty) weight is zero.
      const cudaError_t err =
          cudaMemsetAsync(c, 0, channels * (channels / groups) * types.size, s);
      if (err != cudaSuccess) {
        igc_set_last_cuda_error(cudaGetErrorString(err));
        return IGC_CUDA_ERROR;
      }
    }
    return IGC_OK;
  }
  cublasHandle_t handle;
  cublasStatus_t cs = handle_for(&handle);
  if (cs == CUBLAS_STATUS_SUCCESS) cs = cublasSetStream(handle, s);
  if (cs == CUBLAS_STATUS_SUCCESS) {
    cs = run_pass(pass, Gemm(handle, types), a, b, c,
                  Geometry(batch, channels, inner, primary, groups));
  }
  if (cs != CUBLAS_STATUS_SUCCESS) {
    igc_set_last_cuda_error(cublas_text(cs));
    return IGC_CUDA_ERROR;
  }
  return IGC_OK;
}

}  // namespace

extern "C" int igc_interleaved_conv_forward_cuda(const void* data, const void* weight,
                                                 void* out, int64_t batch, int64_t channels,
                                                 int64_t inner, int64_t primary,
                                                 int64_t groups, int dtype, void* stream) {
  return launch(Pass::kForward, data, weight, out, batch, channels, inner, primary, groups,
                dtype, stream);
}

extern "C" int igc_interleaved_conv_backward_data_cuda(const void* out_grad,
                                                       const void* weight, void* data_grad,
                                                       int64_t batch, int64_t channels,
                                                       int64_t inner, int64_t primary,
                                                       int64_t groups, int dtype,
                                                       void* stream) {
  return launch(Pass::kBackwardData, out_grad, weight, data_grad, batch, channels, inner,
                primary, groups, dtype, stream);
}

extern "C" int igc_interleaved_conv_backward_weight_cuda(const void* out_grad,
                                                         const void* data, void* weight_grad,
                                                         int64_t batch, int64_t channels,
                                                         int64_t inner, int64_t primary,
                                                         int64_t groups, int dtype,
                                                         void* stream) {
  return launch(Pass::kBackwardWeight, out_grad, data, weight_grad, batch, channels, inner,
                primary, groups, dtype, stream);
}
