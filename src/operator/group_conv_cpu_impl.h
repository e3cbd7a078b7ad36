// The CPU grouped convolution, compiled once per instruction set: each
// group_conv_cpu*.cc defines IGC_GC_ISA (a namespace name) and includes this file
// with its own -m flags; group_conv_cpu.cc picks one at run time.
//
// No standard-library templates here on purpose: their instantiations are
// shared between translation units by the linker, so one compiled with -mavx2
// could end up called from the generic path on a CPU without AVX2.
//
// The trick that keeps every inner loop long and contiguous is the "plane"
// layout. A padded input channel (Hp x Wp) is split by stride phase into
// stride_h * stride_w planes of Hq x Wq, Hq = ceil(Hp / stride_h),
// Wq = ceil(Wp / stride_w), where plane (a, b) holds padded pixel
// (r * stride_h + a, c * stride_w + b) at r * Wq + c. Output pixel (oh, ow) then
// reads tap (kh, kw) at
//     plane(kh % stride_h, kw % stride_w)[(oh + kh / stride_h) * Wq + ow + kw / stride_w]
// so with the output stored Wq wide (columns OW..Wq-1 are scratch), each tap is
// one multiply-add over a single contiguous run of OH * Wq elements, whatever the
// stride. Output pixels in the scratch columns read junk, and are dropped.
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "group_conv_kernels.h"

// The vector types below never cross a function boundary that another
// translation unit sees, so the ABI note GCC gives for them does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

#ifndef IGC_GC_VECTOR_BYTES
#define IGC_GC_VECTOR_BYTES 32  // width of the inner loops' vectors (one AVX2 register)
#endif

#ifndef IGC_GC_ISA
#error "define IGC_GC_ISA (the namespace of this instruction-set variant) first"
#endif

namespace igc_gc {
namespace IGC_GC_ISA {

// Below this many multiply-adds a parallel region costs more than it saves.
constexpr int64_t kParallelMacs = 1 << 16;
// Taps whose dot products share one pass over out_grad: a 3x3 kernel.
constexpr int kMaxFusedTaps = 9;
// Elements every scratch buffer has past its end, for sum_taps' last vector.
constexpr int64_t kSlack = 64;
// Image blocks of the weight gradient (see backward_weight).
constexpr int64_t kImageBlocks = 8;
// Tasks are handed out one at a time (schedule dynamic): on a shared machine a
// thread that loses its core leaves its work to the others instead of holding
// up the whole call.

struct Plan {
  int64_t N, C, H, W, F, G, KH, KW, SH, SW, PH, PW;
  int64_t OH, OW, Cg, Fg;
  int64_t Hq, Wq, plane;  // plane = Hq * Wq
  int64_t run;            // OH * Wq: one output channel, Wq wide
  int64_t lead;           // zeros in front of a packed output channel (see pack_out)
  int64_t out_stride;     // lead + plane + KW + kSlack: one packed output channel

  explicit Plan(const igc_conv_geometry& g)
      : N(g.batch), C(g.channels), H(g.height), W(g.width), F(g.filters), G(g.groups),
        KH(g.kernel_h), KW(g.kernel_w), SH(g.stride_h), SW(g.stride_w), PH(g.pad_h),
        PW(g.pad_w) {
    OH = igc_conv_out_size(H, KH, SH, PH);
    OW = igc_conv_out_size(W, KW, SW, PW);
    Cg = C / G;
    Fg = F / G;
    Hq = (H + 2 * PH + SH - 1) / SH;
    Wq = (W + 2 * PW + SW - 1) / SW;
    plane = Hq * Wq;
    run = OH * Wq;
    lead = ((KH - 1) / SH) * Wq + (KW - 1) / SW;
    out_stride = lead + plane + KW + kSlack;
    for (int64_t t = 0; t < KH * KW && t < kCachedTaps; ++t) {
      cached_shift[t] = compute_shift(t);
      cached_source[t] = compute_source(t);
    }
  }
  // Tap t = kh * KW + kw: its offset inside its plane, and from the start of
  // the packed channel. The inner loops are short at CIFAR sizes, so these are
  // looked up rather than recomputed with divisions for every pass.
  int64_t shift(int64_t t) const { return t < kCachedTaps ? cached_shift[t] : compute_shift(t); }
  int64_t source(int64_t t) const {
    return t < kCachedTaps ? cached_source[t] : compute_source(t);
  }
  // One packed input channel: all planes, plus slack for the junk columns of the
  // last output row (up to KW elements past the last plane) and for sum_taps.
  int64_t in_stride() const { return SH * SW * plane + KW + kSlack; }
  int64_t macs() const { return N * F * OH * OW * Cg * KH * KW; }

 private:
  static constexpr int64_t kCachedTaps = 49;  // up to 7x7 kernels
  int64_t cached_shift[kCachedTaps], cached_source[kCachedTaps];
  int64_t compute_shift(int64_t t) const { return (t / KW / SH) * Wq + (t % KW) / SW; }
  int64_t compute_source(int64_t t) const {
    const int64_t kh = t / KW, kw = t % KW;
    return ((kh % SH) * SW + kw % SW) * plane + compute_shift(t);
  }
};

// ---- inner loops: NT taps fused, so the accumulator is loaded and stored once
// per NT multiply-adds. Written with GCC/Clang vector types: the compilers'
// own vectorisation of dot_taps spilled its sums to the stack. ----------------

template <typename T>
struct Vector {
  typedef T type __attribute__((vector_size(IGC_GC_VECTOR_BYTES)));
  static constexpr int kLanes = IGC_GC_VECTOR_BYTES / sizeof(T);
  // memcpy: unaligned, and no aliasing questions; compiles to one vector move.
  static type load(const T* p) {
    type v;
    memcpy(&v, p, sizeof v);
    return v;
  }
  static void store(T* p, type v) { memcpy(p, &v, sizeof v); }
};

// part[t] += a[i] * src[t][i] lane by lane, i < n: vector partial sums, kept
// across calls and reduced to scalars once per task (see backward_weight_task),
// so the horizontal sums do not cost as much as the products on small planes.
// The order is fixed by the code: no -ffast-math needed.
template <int NT, typename T>
void dot_taps(typename Vector<T>::type* part, int64_t n, const T* __restrict a,
              const T* const* src) {
  using V = Vector<T>;
  constexpr int L = V::kLanes;
  typename V::type acc[NT];
  const T* s[NT];
  for (int t = 0; t < NT; ++t) {
    acc[t] = part[t];
    s[t] = src[t];
  }
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const typename V::type av = V::load(a + i);
    for (int t = 0; t < NT; ++t) acc[t] += av * V::load(s[t] + i);
  }
  for (; i < n; ++i) {
    for (int t = 0; t < NT; ++t) acc[t][0] += a[i] * s[t][i];
  }
  for (int t = 0; t < NT; ++t) part[t] = acc[t];
}

// out[i] = sum_t w[t] * src[t][i], i < n, for any number of taps: kBlock
// vectors of out stay in registers while every tap streams through, so out is
// written once, and the per-tap cost is one broadcast for kBlock multiply-adds.
// Reads and writes up to kSlack elements past n: out and every src must have
// them (the buffers below do; what lands there is junk, never used).
template <typename T>
void sum_taps(T* __restrict out, int64_t n, int64_t nt, const T* w, const T* const* src) {
  using V = Vector<T>;
  using Vec = typename V::type;
  constexpr int L = V::kLanes;
  constexpr int kBlock = 4;
  int64_t i = 0;
  for (; i + kBlock * L <= n; i += kBlock * L) {
    Vec acc[kBlock] = {};
    for (int64_t t = 0; t < nt; ++t) {
      const Vec wv = w[t] - Vec{};
      const T* s = src[t] + i;
      for (int b = 0; b < kBlock; ++b) acc[b] += wv * V::load(s + b * L);
    }
    for (int b = 0; b < kBlock; ++b) V::store(out + i + b * L, acc[b]);
  }
  // The tail in whole vectors, past n: a scalar tail is one long chain of
  // dependent multiply-adds, and took most of the time on 8x8 maps.
  for (; i < n; i += L) {
    Vec acc = {};
    for (int64_t t = 0; t < nt; ++t) acc += (w[t] - Vec{}) * V::load(src[t] + i);
    V::store(out + i, acc);
  }
}

// Runtime tap counts, in chunks of at most kMaxFusedTaps.
template <typename T>
void dot_any(typename Vector<T>::type* out, int64_t n, int64_t nt, const T* a,
             const T* const* src) {
  for (; nt > 0; nt -= kMaxFusedTaps, out += kMaxFusedTaps, src += kMaxFusedTaps) {
    switch (nt < kMaxFusedTaps ? nt : kMaxFusedTaps) {
      case 1: dot_taps<1>(out, n, a, src); break;
      case 2: dot_taps<2>(out, n, a, src); break;
      case 3: dot_taps<3>(out, n, a, src); break;
      case 4: dot_taps<4>(out, n, a, src); break;
      case 5: dot_taps<5>(out, n, a, src); break;
      case 6: dot_taps<6>(out, n, a, src); break;
      case 7: dot_taps<7>(out, n, a, src); break;
      case 8: dot_taps<8>(out, n, a, src); break;
      default: dot_taps<9>(out, n, a, src); break;
    }
  }
}

// ---- packing --------------------------------------------------------------

// Input channel (H x W) -> zero-padded planes (see the top of the file).
template <typename T>
void pack_in(const Plan& p, const T* __restrict src, T* __restrict dst) {
  memset(dst, 0, sizeof(T) * p.in_stride());
  for (int64_t ih = 0; ih < p.H; ++ih) {
    const int64_t r = ih + p.PH;
    T* row = dst + (r % p.SH) * p.SW * p.plane + (r / p.SH) * p.Wq;
    const T* in = src + ih * p.W;
    if (p.SW == 1) {
      memcpy(row + p.PW, in, sizeof(T) * p.W);
      continue;
    }
    for (int64_t iw = 0; iw < p.W; ++iw) {
      const int64_t c = iw + p.PW;
      row[(c % p.SW) * p.plane + c / p.SW] = in[iw];
    }
  }
}

// Padded planes -> input channel (H x W): drops the padding.
template <typename T>
void unpack_in(const Plan& p, const T* __restrict src, T* __restrict dst) {
  for (int64_t ih = 0; ih < p.H; ++ih) {
    const int64_t r = ih + p.PH;
    const T* row = src + (r % p.SH) * p.SW * p.plane + (r / p.SH) * p.Wq;
    T* out = dst + ih * p.W;
    if (p.SW == 1) {
      memcpy(out, row + p.PW, sizeof(T) * p.W);
      continue;
    }
    for (int64_t iw = 0; iw < p.W; ++iw) {
      const int64_t c = iw + p.PW;
      out[iw] = row[(c % p.SW) * p.plane + c / p.SW];
    }
  }
}

// Output channel (OH x OW) -> Wq-wide rows with zero scratch columns, behind
// `lead` zeros: the backward passes read it shifted back by up to `lead`, and
// the zeros make the out-of-range taps contribute nothing.
template <typename T>
void pack_out(const Plan& p, const T* __restrict src, T* __restrict dst) {
  memset(dst, 0, sizeof(T) * p.out_stride);
  T* body = dst + p.lead;
  for (int64_t oh = 0; oh < p.OH; ++oh) memcpy(body + oh * p.Wq, src + oh * p.OW, sizeof(T) * p.OW);
}

// ---- the three passes, one (image, group) task at a time --------------------

template <typename T>
void forward_task(const Plan& p, int64_t n, int64_t g, const T* data, const T* weight, T* out,
                  T* packed, T* acc, const T** taps) {
  for (int64_t ci = 0; ci < p.Cg; ++ci)
    pack_in(p, data + ((n * p.C + g * p.Cg + ci) * p.H) * p.W, packed + ci * p.in_stride());
  // Taps in (ci, kh, kw) order: the order of a filter's weights, so the
  // weights need no gathering, and the source list serves every filter.
  const int64_t kernel = p.KH * p.KW;
  for (int64_t ci = 0; ci < p.Cg; ++ci) {
    for (int64_t t = 0; t < kernel; ++t) taps[ci * kernel + t] = packed + ci * p.in_stride() + p.source(t);
  }
  for (int64_t fo = 0; fo < p.Fg; ++fo) {
    const int64_t f = g * p.Fg + fo;
    sum_taps(acc, p.run, p.Cg * kernel, weight + f * p.Cg * kernel, taps);
    T* y = out + ((n * p.F + f) * p.OH) * p.OW;
    for (int64_t oh = 0; oh < p.OH; ++oh) memcpy(y + oh * p.OW, acc + oh * p.Wq, sizeof(T) * p.OW);
  }
}

// Data gradient as a gather: padded input pixel j of plane (a, b) receives
// w[f, ci, kh, kw] * out_grad[f][j - shift(kh, kw)] from every tap in that
// plane; pack_out's zeros stand in for the output pixels that do not exist.
// Taps run plane by plane, (fo, kh, kw) within a plane: the source list is the
// same for every input channel, and `by_plane` holds the weights in that order
// (see plane_order_weights).
template <typename T>
void backward_data_task(const Plan& p, int64_t n, int64_t g, const T* out_grad, const T* by_plane,
                        T* data_grad, T* packed_grad, T* planes, const T** taps) {
  for (int64_t fo = 0; fo < p.Fg; ++fo)
    pack_out(p, out_grad + ((n * p.F + g * p.Fg + fo) * p.OH) * p.OW,
             packed_grad + fo * p.out_stride);
  int64_t nt = 0;
  for (int64_t a = 0; a < p.SH; ++a) {
    for (int64_t b = 0; b < p.SW; ++b) {
      for (int64_t fo = 0; fo < p.Fg; ++fo) {
        const T* grad = packed_grad + fo * p.out_stride + p.lead;
        for (int64_t kh = a; kh < p.KH; kh += p.SH) {
          for (int64_t kw = b; kw < p.KW; kw += p.SW) taps[nt++] = grad - p.shift(kh * p.KW + kw);
        }
      }
    }
  }
  for (int64_t ci = 0; ci < p.Cg; ++ci) {
    const T* w = by_plane + (g * p.Cg + ci) * nt;
    const T** src = taps;
    for (int64_t a = 0; a < p.SH; ++a) {
      for (int64_t b = 0; b < p.SW; ++b) {
        const int64_t count = p.Fg * ((p.KH - a + p.SH - 1) / p.SH) * ((p.KW - b + p.SW - 1) / p.SW);
        sum_taps(planes + (a * p.SW + b) * p.plane, p.plane, count, w, src);
        w += count;
        src += count;
      }
    }
    unpack_in(p, planes, data_grad + ((n * p.C + g * p.Cg + ci) * p.H) * p.W);
  }
}

// The weights of input channel (g, ci) in backward_data_task's tap order.
template <typename T>
void plane_order_weights(const Plan& p, const T* weight, T* by_plane) {
  const int64_t kernel = p.KH * p.KW;
  for (int64_t g = 0; g < p.G; ++g) {
    for (int64_t ci = 0; ci < p.Cg; ++ci) {
      for (int64_t a = 0; a < p.SH; ++a) {
        for (int64_t b = 0; b < p.SW; ++b) {
          for (int64_t fo = 0; fo < p.Fg; ++fo) {
            const T* w = weight + ((g * p.Fg + fo) * p.Cg + ci) * kernel;
            for (int64_t kh = a; kh < p.KH; kh += p.SH) {
              for (int64_t kw = b; kw < p.KW; kw += p.SW) *by_plane++ = w[kh * p.KW + kw];
            }
          }
        }
      }
    }
  }
}

// Weight gradient of group g over images [first, last): w[f, ci, kh, kw] +=
// dot(out_grad[f] (Wq wide, zero scratch columns), the tap's run of the packed
// input), in vector partials `part` (Fg * Cg * KH * KW vectors), then summed
// into `grad`.
template <typename T>
void backward_weight_task(const Plan& p, int64_t first, int64_t last, int64_t g,
                          const T* out_grad, const T* data, T* grad, T* packed, T* packed_grad,
                          typename Vector<T>::type* part, const T** taps) {
  using Vec = typename Vector<T>::type;
  const int64_t kernel = p.KH * p.KW;
  const int64_t per_filter = p.Cg * kernel;
  memset(static_cast<void*>(part), 0, sizeof(Vec) * p.Fg * per_filter);
  for (int64_t n = first; n < last; ++n) {
    for (int64_t ci = 0; ci < p.Cg; ++ci) {
      T* planes = packed + ci * p.in_stride();
      pack_in(p, data + ((n * p.C + g * p.Cg + ci) * p.H) * p.W, planes);
      for (int64_t t = 0; t < kernel; ++t) taps[ci * kernel + t] = planes + p.source(t);
    }
    for (int64_t fo = 0; fo < p.Fg; ++fo) {
      pack_out(p, out_grad + ((n * p.F + g * p.Fg + fo) * p.OH) * p.OW, packed_grad);
      dot_any(part + fo * per_filter, p.run, per_filter, packed_grad + p.lead, taps);
    }
  }
  T* dw = grad + g * p.Fg * per_filter;
  for (int64_t k = 0; k < p.Fg * per_filter; ++k) {
    T sum = 0;
    for (int l = 0; l < Vector<T>::kLanes; ++l) sum += part[k][l];
    dw[k] += sum;
  }
}

// ---- drivers ----------------------------------------------------------------

template <typename T>
T* scratch(int64_t elements) {
  // 64-byte aligned; sizes rounded up as aligned_alloc requires.
  const size_t bytes = ((sizeof(T) * static_cast<size_t>(elements) + 63) / 64) * 64;
  return static_cast<T*>(aligned_alloc(64, bytes > 0 ? bytes : 64));
}

// A per-thread list of source pointers, one per tap.
template <typename T>
const T** tap_sources(int64_t taps) {
  return static_cast<const T**>(aligned_alloc(64, ((taps * sizeof(T*) + 63) / 64) * 64));
}

template <typename T>
int forward(const Plan& p, const T* data, const T* weight, T* out) {
  const int64_t tasks = p.N * p.G;
  int failed = 0;
#pragma omp parallel if (p.macs() >= kParallelMacs) reduction(| : failed)
  {
    T* packed = scratch<T>(p.Cg * p.in_stride());
    T* acc = scratch<T>(p.run + kSlack);
    const T** taps = tap_sources<T>(p.Cg * p.KH * p.KW);
    if (packed == nullptr || acc == nullptr || taps == nullptr)
      failed = 1;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      if (!failed)
        forward_task(p, task / p.G, task % p.G, data, weight, out, packed, acc, taps);
    }
    free(packed);
    free(acc);
    free(const_cast<T**>(taps));
  }
  return failed ? static_cast<int>(IGC_OUT_OF_MEMORY) : IGC_OK;
}

template <typename T>
int backward_data(const Plan& p, const T* out_grad, const T* weight, T* data_grad) {
  const int64_t tasks = p.N * p.G;
  T* by_plane = scratch<T>(p.F * p.Cg * p.KH * p.KW);
  if (by_plane == nullptr) return IGC_OUT_OF_MEMORY;
  plane_order_weights(p, weight, by_plane);
  int failed = 0;
#pragma omp parallel if (p.macs() >= kParallelMacs) reduction(| : failed)
  {
    T* packed_grad = scratch<T>(p.Fg * p.out_stride);
    T* planes = scratch<T>(p.in_stride());
    const T** taps = tap_sources<T>(p.Fg * p.KH * p.KW);
    if (packed_grad == nullptr || planes == nullptr || taps == nullptr)
      failed = 1;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      if (!failed)
        backward_data_task(p, task / p.G, task % p.G, out_grad, by_plane, data_grad,
                           packed_grad, planes, taps);
    }
    free(packed_grad);
    free(planes);
    free(const_cast<T**>(taps));
  }
  free(by_plane);
  return failed ? static_cast<int>(IGC_OUT_OF_MEMORY) : IGC_OK;
}

template <typename T>
int backward_weight(const Plan& p, const T* out_grad, const T* data, T* weight_grad) {
  // Images are cut into a fixed number of blocks, each with its own partial
  // weight gradient, summed in block order at the end: no two tasks write one
  // address (no atomics), and the result does not depend on the thread count
  // or on which thread ran what. The weights are small next to the activations.
  const int64_t blocks = p.N < kImageBlocks ? p.N : kImageBlocks;
  const int64_t tasks = blocks * p.G;
  const int64_t size = p.F * p.Cg * p.KH * p.KW;
  T* partial = scratch<T>(blocks * size);
  if (partial == nullptr) return IGC_OUT_OF_MEMORY;
  memset(partial, 0, sizeof(T) * blocks * size);
  int failed = 0;
#pragma omp parallel if (p.macs() >= kParallelMacs) reduction(| : failed)
  {
    using Vec = typename Vector<T>::type;
    T* packed = scratch<T>(p.Cg * p.in_stride());
    T* packed_grad = scratch<T>(p.out_stride);
    Vec* part = reinterpret_cast<Vec*>(scratch<T>(Vector<T>::kLanes * p.Fg * p.Cg * p.KH * p.KW));
    const T** taps = tap_sources<T>(p.Cg * p.KH * p.KW);
    if (packed == nullptr || packed_grad == nullptr || part == nullptr || taps == nullptr)
      failed = 1;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t block = task / p.G, g = task % p.G;
      if (!failed)
        backward_weight_task(p, block * p.N / blocks, (block + 1) * p.N / blocks, g, out_grad,
                             data, partial + block * size, packed, packed_grad, part, taps);
    }
    free(packed);
    free(packed_grad);
    free(part);
    free(const_cast<T**>(taps));
  }
  if (!failed) {
#pragma omp parallel for schedule(static) if (size * blocks >= 1 << 16)
    for (int64_t k = 0; k < size; ++k) {
      T sum = 0;
      for (int64_t b = 0; b < blocks; ++b) sum += partial[b * size + k];
      weight_grad[k] = sum;
    }
  }
  free(partial);
  return failed ? static_cast<int>(IGC_OUT_OF_MEMORY) : IGC_OK;
}

// Entry points for the dispatcher (geometry and dtype already checked).
int forward_entry(const igc_conv_geometry& g, const void* data, const void* weight, void* out,
                  int dtype) {
  const Plan p(g);
  if (dtype == IGC_FLOAT64)
    return forward(p, static_cast<const double*>(data), static_cast<const double*>(weight),
                   static_cast<double*>(out));
  return forward(p, static_cast<const float*>(data), static_cast<const float*>(weight),
                 static_cast<float*>(out));
}

int backward_data_entry(const igc_conv_geometry& g, const void* out_grad, const void* weight,
                        void* data_grad, int dtype) {
  const Plan p(g);
  if (dtype == IGC_FLOAT64)
    return backward_data(p, static_cast<const double*>(out_grad),
                         static_cast<const double*>(weight), static_cast<double*>(data_grad));
  return backward_data(p, static_cast<const float*>(out_grad), static_cast<const float*>(weight),
                       static_cast<float*>(data_grad));
}

int backward_weight_entry(const igc_conv_geometry& g, const void* out_grad, const void* data,
                          void* weight_grad, int dtype) {
  const Plan p(g);
  if (dtype == IGC_FLOAT64)
    return backward_weight(p, static_cast<const double*>(out_grad),
                           static_cast<const double*>(data), static_cast<double*>(weight_grad));
  return backward_weight(p, static_cast<const float*>(out_grad), static_cast<const float*>(data),
                         static_cast<float*>(weight_grad));
}

}  // namespace IGC_GC_ISA
}  // namespace igc_gc
