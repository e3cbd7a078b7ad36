// InterleavedGroupConv on the CPU: the C ABI of igc_conv_kernels.h, the argument
// check both devices share, and the choice between the direct kernels
// (igc_conv_cpu_direct_impl.h, through cpu_isa.h) and BLAS.
//
// BLAS is the OpenBLAS that the mxnet wheel ships. It is looked up at run time
// (dlopen of its soname with RTLD_NOLOAD finds the copy libmxnet.so has already
// loaded) rather than linked: the build then needs no BLAS, the MXNet-free
// kernel library builds anywhere, and a process never holds two OpenBLAS copies
// with two thread pools. IGC_BLAS_LIBRARY names another cblas library; without
// any, the BLAS path returns IGC_NO_BLAS.
//
// The parallel loop is ours: the GEMMs are small (K x L times L x H*W), too
// small for OpenBLAS to split well across threads, and there are many
// independent ones (one per image and group). That OpenBLAS is built with
// OpenMP and runs single-threaded inside a parallel region, so each thread of
// our loop runs whole GEMMs.
#include <dlfcn.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "cpu_isa.h"
#include "igc_conv_kernels.h"

namespace {

// cblas enum values (every cblas implementation uses these numbers).
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int,
                         float, float*, int);
using DgemmFn = void (*)(int, int, int, int, int, int, double, const double*, int, const double*,
                         int, double, double*, int);

struct Blas {
  SgemmFn sgemm = nullptr;
  DgemmFn dgemm = nullptr;
};

void* open_blas() {
  if (const char* path = std::getenv("IGC_BLAS_LIBRARY")) {
    return *path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : nullptr;
  }
  void* handle = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_NOLOAD);
  return handle ? handle : dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
}

const Blas& blas() {
  static Blas b;
  static std::once_flag once;
  std::call_once(once, [] {
    void* handle = open_blas();
    if (handle == nullptr) return;
    b.sgemm = reinterpret_cast<SgemmFn>(dlsym(handle, "cblas_sgemm"));
    b.dgemm = reinterpret_cast<DgemmFn>(dlsym(handle, "cblas_dgemm"));
    if (!b.sgemm || !b.dgemm) b = Blas();
  });
  return b;
}

// Row-major C = op(A) . op(B) + beta * C.
inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  blas().sgemm(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, static_cast<int>(m),
               static_cast<int>(n), static_cast<int>(k), 1.0f, a, static_cast<int>(lda), b,
               static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const double* a, int64_t lda,
                 const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  blas().dgemm(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, static_cast<int>(m),
               static_cast<int>(n), static_cast<int>(k), 1.0, a, static_cast<int>(lda), b,
               static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

// Sizes derived from (N, C, inner, L, M); see igc_conv_kernels.h.
struct Geometry {
  int64_t batch, channels, inner, primary, secondary;
  int64_t P, K, S;
  Geometry(int64_t n, int64_t c, int64_t hw, int64_t l, int64_t m)
      : batch(n),
        channels(c),
        inner(hw),
        primary(l),
        secondary(m),
        P(c / l),
        K(c / m),
        S(c / m / l) {}
  int64_t image() const { return channels * inner; }
  int64_t slab_offset(int64_t g, int64_t t) const { return (g * S + t) * inner; }
  int64_t weight_offset(int64_t g, int64_t t) const { return g * K * K + t * primary; }
};

// Columns of the (., inner) GEMMs are split into chunks when there are fewer
// (image, group) pairs than threads, so that small batches still use every core.
// Chunks stay at least this wide to keep each GEMM efficient.
constexpr int64_t kMinChunk = 256;

int64_t column_chunks(int64_t tasks, int64_t inner) {
  const int64_t threads = omp_get_max_threads();
  if (tasks >= 2 * threads) return 1;
  const int64_t wanted = (2 * threads + tasks - 1) / tasks;
  return std::max<int64_t>(1, std::min(wanted, inner / kMinChunk));
}

// The forward pass's epilogue (see igc_conv_kernels.h) on the BLAS path.
template <typename T>
struct Epilogue {
  const T* bias;      // by output channel, or null
  const T* residual;  // of the output's shape, or null
  bool relu;
  bool any() const { return bias != nullptr || residual != nullptr || relu; }
};

// y = act(y + bias + residual) on the `cols` columns from `offset` (within an
// image) of the rows group g writes: right after the task's GEMMs, while its
// block of output is still in cache.
template <typename T>
void apply(const Epilogue<T>& e, T* y, int64_t offset, int64_t g, int64_t cols, const Geometry& d) {
  for (int64_t a = 0; a < d.K; ++a) {
    const int64_t at = offset + a * d.secondary * d.inner;
    T* row = y + at;
    const T* res = e.residual != nullptr ? e.residual + at : nullptr;
    const T b = e.bias != nullptr ? e.bias[a * d.secondary + g] : T(0);
    for (int64_t j = 0; j < cols; ++j) {
      const T v = row[j] + b + (res != nullptr ? res[j] : T(0));
      row[j] = e.relu ? (v > T(0) ? v : T(0)) : v;
    }
  }
}

template <typename T>
void forward_epilogue(const T* x, const T* w, T* y, const Geometry& d, const Epilogue<T>& e) {
  const int64_t chunks = column_chunks(d.batch * d.secondary, d.inner);
  const int64_t width = (d.inner + chunks - 1) / chunks;
  const int64_t tasks = d.batch * d.secondary * chunks;
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t chunk = task % chunks;
    const int64_t g = (task / chunks) % d.secondary;
    const int64_t n = task / chunks / d.secondary;
    const int64_t col = chunk * width;
    const int64_t cols = std::min(width, d.inner - col);
    if (cols <= 0) continue;
    const T* xn = x + n * d.image() + col;
    const int64_t offset = n * d.image() + g * d.inner + col;
    for (int64_t t = 0; t < d.S; ++t) {
      gemm(false, false, d.K, cols, d.primary, w + d.weight_offset(g, t), d.K,
           xn + d.slab_offset(g, t), d.P * d.inner, t == 0 ? T(0) : T(1), y + offset,
           d.secondary * d.inner);
    }
    if (e.any()) apply(e, y, offset, g, cols, d);
  }
}

template <typename T>
void forward(const T* x, const T* w, T* y, const Geometry& d) {
  forward_epilogue<T>(x, w, y, d, Epilogue<T>{nullptr, nullptr, false});
}

template <typename T>
void backward_data(const T* dy, const T* w, T* dx, const Geometry& d) {
  const int64_t slabs = d.secondary * d.S;
  const int64_t chunks = column_chunks(d.batch * slabs, d.inner);
  const int64_t width = (d.inner + chunks - 1) / chunks;
  const int64_t tasks = d.batch * slabs * chunks;
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t chunk = task % chunks;
    const int64_t slab = (task / chunks) % slabs;
    const int64_t n = task / chunks / slabs;
    const int64_t g = slab / d.S, t = slab % d.S;
    const int64_t col = chunk * width;
    const int64_t cols = std::min(width, d.inner - col);
    if (cols <= 0) continue;
    gemm(true, false, d.primary, cols, d.K, w + d.weight_offset(g, t), d.K,
         dy + n * d.image() + g * d.inner + col, d.secondary * d.inner, T(0),
         dx + n * d.image() + d.slab_offset(g, t) + col, d.P * d.inner);
  }
}

// dW of group g, slab t, summed over images [first, last) into dw (ldc K).
template <typename T>
void weight_grad_slab(const T* dy, const T* x, T* dw, int64_t g, int64_t t, int64_t first,
                      int64_t last, const Geometry& d) {
  for (int64_t n = first; n < last; ++n) {
    gemm(false, true, d.K, d.primary, d.inner, dy + n * d.image() + g * d.inner,
         d.secondary * d.inner, x + n * d.image() + d.slab_offset(g, t), d.P * d.inner,
         n == first ? T(0) : T(1), dw + d.weight_offset(g, t), d.K);
  }
}

template <typename T>
void backward_weight(const T* dy, const T* x, T* dw, const Geometry& d) {
  const int64_t slabs = d.secondary * d.S;
  const int64_t weight_size = d.channels * d.K;
  const int64_t threads = omp_get_max_threads();
  if (slabs >= threads || d.batch < 2) {
    // Enough independent slabs: each thread owns whole slabs of dW.
#pragma omp parallel for schedule(static)
    for (int64_t slab = 0; slab < slabs; ++slab) {
      weight_grad_slab(dy, x, dw, slab / d.S, slab % d.S, 0, d.batch, d);
    }
    return;
  }
  // Few slabs (e.g. G = 2, one slab each): split the images instead, each thread
  // summing into its own copy of dW, then add the copies (dW is small).
  const int64_t parts = std::min(threads, d.batch);
  std::vector<T> partial(static_cast<size_t>((parts - 1) * weight_size));
#pragma omp parallel for schedule(static)
  for (int64_t part = 0; part < parts; ++part) {
    T* out = part == 0 ? dw : partial.data() + (part - 1) * weight_size;
    const int64_t first = d.batch * part / parts, last = d.batch * (part + 1) / parts;
    for (int64_t slab = 0; slab < slabs; ++slab) {
      weight_grad_slab(dy, x, out, slab / d.S, slab % d.S, first, last, d);
    }
  }
  for (int64_t part = 1; part < parts; ++part) {
    const T* src = partial.data() + (part - 1) * weight_size;
    for (int64_t i = 0; i < weight_size; ++i) dw[i] += src[i];
  }
}

bool empty(int64_t batch, int64_t channels, int64_t inner) {
  return batch == 0 || channels == 0 || inner == 0;
}

// The direct kernels run instead of BLAS for up to kDirectMaxK channels per
// group, where BLAS, given such thin GEMMs, runs far below its multiply-add
// rate; the weight gradient only from kDirectMinInner pixels, below which its
// dot products are too short to beat BLAS. The measurements behind both limits
// are in docs/fused.md. IGC_MX_IGC_CONV=blas|direct forces one, for tests and
// comparisons.
constexpr int64_t kDirectMaxK = 64, kDirectMinInner = 64;

bool use_direct(igc::Pass pass, int64_t channels, int64_t inner, int64_t secondary) {
  const char* forced = getenv("IGC_MX_IGC_CONV");
  if (forced != nullptr && strcmp(forced, "blas") == 0) return false;
  if (forced != nullptr && strcmp(forced, "direct") == 0) return true;
  return channels / secondary <= kDirectMaxK &&
         (pass != igc::Pass::kBackwardWeight || inner >= kDirectMinInner);
}

// Checks, then runs the direct kernel or `f32`/`f64` (BLAS) on a non-empty problem;
// the forward pass with the epilogue `bias`, `residual`, `activation` (see
// igc_conv_kernels.h).
template <typename F32, typename F64>
int dispatch(igc::Pass pass, const void* a, const void* b, void* c, int64_t batch, int64_t channels,
             int64_t inner, int64_t primary, int64_t secondary, int dtype, F32 f32, F64 f64,
             const void* bias = nullptr, const void* residual = nullptr,
             int activation = IGC_ACT_NONE) {
  const int status =
      igc_interleaved_conv_check(a, b, c, batch, channels, inner, primary, secondary, dtype);
  if (status != IGC_OK) return status;
  if (activation != IGC_ACT_NONE && activation != IGC_ACT_RELU) return IGC_BAD_ACTIVATION;
  if (dtype != IGC_FLOAT32 && dtype != IGC_FLOAT64) return IGC_BAD_DTYPE;
  if (empty(batch, channels, inner)) {
    if (pass == igc::Pass::kBackwardWeight && channels > 0) {
      // No images: the gradient of the (non-empty) weight is zero.
      if (c == nullptr) return IGC_BAD_POINTER;
      memset(c, 0, channels * (channels / secondary) * igc_dtype_size(dtype));
    }
    return IGC_OK;
  }
  if (use_direct(pass, channels, inner, secondary)) {
    if (pass == igc::Pass::kForward)
      return igc::cpu::variant().interleaved_forward(a, b, bias, residual, activation, c, batch,
                                                     channels, inner, primary, secondary, dtype);
    return igc::cpu::variant().interleaved[static_cast<int>(pass)](a, b, c, batch, channels, inner,
                                                                   primary, secondary, dtype);
  }
  if (blas().sgemm == nullptr) return IGC_NO_BLAS;
  const Geometry d(batch, channels, inner, primary, secondary);
  if (dtype == IGC_FLOAT32) {
    f32(static_cast<const float*>(a), static_cast<const float*>(b), static_cast<float*>(c), d);
  } else {
    f64(static_cast<const double*>(a), static_cast<const double*>(b), static_cast<double*>(c), d);
  }
  return IGC_OK;
}

}  // namespace

extern "C" int igc_interleaved_conv_check(const void* a, const void* b, const void* c,
                                          int64_t batch, int64_t channels, int64_t inner,
                                          int64_t primary, int64_t secondary, int dtype) {
  if (igc_dtype_size(dtype) == 0) return IGC_BAD_DTYPE;
  if (batch < 0 || channels < 0 || inner < 0 || primary < 1 || secondary < 1) {
    return IGC_BAD_SHAPE;
  }
  if (channels % primary != 0 || channels % secondary != 0 ||
      (channels / secondary) % primary != 0) {
    return IGC_BAD_SHAPE;
  }
  // Every tensor within IGC_MAX_ELEMENTS (BLAS also takes int sizes).
  const int64_t data[] = {batch, channels, inner};
  if (igc::checked_mul(channels, inner) < 0 || igc::checked_product(data, 3) < 0)
    return IGC_TOO_LARGE;
  const bool empty_data = empty(batch, channels, inner);
  if (!empty_data && (a == nullptr || b == nullptr || c == nullptr)) return IGC_BAD_POINTER;
  return IGC_OK;
}

extern "C" int igc_interleaved_conv_forward_cpu(const void* data, const void* weight, void* out,
                                                int64_t batch, int64_t channels, int64_t inner,
                                                int64_t primary, int64_t secondary, int dtype) {
  return dispatch(igc::Pass::kForward, data, weight, out, batch, channels, inner, primary,
                  secondary, dtype, forward<float>, forward<double>);
}

extern "C" int igc_interleaved_conv_forward_epilogue_cpu(const void* data, const void* weight,
                                                         const void* bias, const void* residual,
                                                         int activation, void* out, int64_t batch,
                                                         int64_t channels, int64_t inner,
                                                         int64_t primary, int64_t secondary,
                                                         int dtype) {
  const bool relu = activation == IGC_ACT_RELU;
  return dispatch(
      igc::Pass::kForward, data, weight, out, batch, channels, inner, primary, secondary, dtype,
      [&](const float* x, const float* w, float* y, const Geometry& d) {
        forward_epilogue(x, w, y, d,
                         Epilogue<float>{static_cast<const float*>(bias),
                                         static_cast<const float*>(residual), relu});
      },
      [&](const double* x, const double* w, double* y, const Geometry& d) {
        forward_epilogue(x, w, y, d,
                         Epilogue<double>{static_cast<const double*>(bias),
                                          static_cast<const double*>(residual), relu});
      },
      bias, residual, activation);
}

extern "C" int igc_interleaved_conv_backward_data_cpu(const void* out_grad, const void* weight,
                                                      void* data_grad, int64_t batch,
                                                      int64_t channels, int64_t inner,
                                                      int64_t primary, int64_t secondary,
                                                      int dtype) {
  return dispatch(igc::Pass::kBackwardData, out_grad, weight, data_grad, batch, channels, inner,
                  primary, secondary, dtype, backward_data<float>, backward_data<double>);
}

extern "C" int igc_interleaved_conv_backward_weight_cpu(const void* out_grad, const void* data,
                                                        void* weight_grad, int64_t batch,
                                                        int64_t channels, int64_t inner,
                                                        int64_t primary, int64_t secondary,
                                                        int dtype) {
  return dispatch(igc::Pass::kBackwardWeight, out_grad, data, weight_grad, batch, channels, inner,
                  primary, secondary, dtype, backward_weight<float>, backward_weight<double>);
}
