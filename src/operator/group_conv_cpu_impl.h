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

// Outputs that sum_taps computes together, and vectors per output: the
// accumulators (their product) must fit in the vector registers with room for
// the sources.
#ifndef IGC_GC_OUTPUT_BLOCK
#define IGC_GC_OUTPUT_BLOCK 2
#endif
#ifndef IGC_GC_VECTOR_BLOCK
#define IGC_GC_VECTOR_BLOCK 2
#endif
// Filters x taps (at most 3 x 9) whose weight-gradient dot products share one
// pass, same constraint.
#ifndef IGC_GC_DOT_FILTERS
#define IGC_GC_DOT_FILTERS 1
#endif
#ifndef IGC_GC_DOT_TAPS
#define IGC_GC_DOT_TAPS 9
#endif

#ifndef IGC_GC_ISA
#error "define IGC_GC_ISA (the namespace of this instruction-set variant) first"
#endif

namespace igc_gc {
namespace IGC_GC_ISA {

// Below this many multiply-adds a parallel region costs more than it saves.
constexpr int64_t kParallelMacs = 1 << 16;
// Elements every scratch buffer has past its end, for sum_taps' last vector.
constexpr int64_t kSlack = 64;
constexpr int kOutputBlock = IGC_GC_OUTPUT_BLOCK;
constexpr int kVectorBlock = IGC_GC_VECTOR_BLOCK;
// Filters and taps whose dot products share one pass (backward_weight).
constexpr int kDotFilters = IGC_GC_DOT_FILTERS;
constexpr int kDotTaps = IGC_GC_DOT_TAPS;

// Items in the block starting at `first` of `count` (blocks of `block`).
inline int block_size(int64_t count, int64_t first, int64_t block = kOutputBlock) {
  return static_cast<int>(count - first < block ? count - first : block);
}
// Image blocks of a weight gradient (see sum_blocks): at most kImageBlocks,
// and no more than it takes to make kWeightTasks (image block, group) tasks.
constexpr int64_t kImageBlocks = 8, kWeightTasks = 32;
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

// Makes the compiler load v once into a register: left alone, GCC folds the load
// into every multiply-add that uses it, one load per use, and the loops that
// share a loaded vector among several outputs became load-bound again.
#if defined(__x86_64__) && defined(__AVX512F__)
#define IGC_GC_IN_REGISTER(v) __asm__("" : "+v"(v))
#elif defined(__x86_64__) && defined(__AVX__)
#define IGC_GC_IN_REGISTER(v) __asm__("" : "+x"(v))
#else
#define IGC_GC_IN_REGISTER(v) ((void)0)
#endif

template <typename T>
struct SameSizeInt;
template <>
struct SameSizeInt<float> {
  typedef int32_t type;
};
template <>
struct SameSizeInt<double> {
  typedef int64_t type;
};

template <typename T>
struct Vector {
  typedef T type __attribute__((vector_size(IGC_GC_VECTOR_BYTES)));
  static constexpr int kLanes = IGC_GC_VECTOR_BYTES / sizeof(T);
  typedef typename SameSizeInt<T>::type lane;
  typedef lane lanes __attribute__((vector_size(IGC_GC_VECTOR_BYTES)));
  // v with the lanes from `count` on zeroed, whatever they held (Inf and NaN too).
  static type first_lanes(type v, int64_t count) {
    lanes index;
    for (int l = 0; l < kLanes; ++l) index[l] = l;
    return index < static_cast<lane>(count) ? v : type{};
  }
  // v with the lanes below `count` zeroed.
  static type last_lanes(type v, int64_t count) {
    lanes index;
    for (int l = 0; l < kLanes; ++l) index[l] = l;
    return index >= static_cast<lane>(count) ? v : type{};
  }
  // memcpy: unaligned, and no aliasing questions; compiles to one vector move.
  static type load(const T* p) {
    type v;
    memcpy(&v, p, sizeof v);
    return v;
  }
  static void store(T* p, type v) { memcpy(p, &v, sizeof v); }
  // The first `count` (< kLanes) lanes only, the others zero: for the ends of
  // rows that have nothing readable or writable past them.
  static type load_part(const T* p, int64_t count) {
    type v = {};
    for (int64_t l = 0; l < count; ++l) v[l] = p[l];
    return v;
  }
  static void store_part(T* p, type v, int64_t count) {
    for (int64_t l = 0; l < count; ++l) p[l] = v[l];
  }
  // The 2L elements a, b -> their even-indexed ones and their odd-indexed ones.
  static void split(type a, type b, type* even, type* odd) {
    lanes e, o;
    for (int l = 0; l < kLanes; ++l) e[l] = 2 * l, o[l] = 2 * l + 1;
    *even = __builtin_shuffle(a, b, e);
    *odd = __builtin_shuffle(a, b, o);
  }
  // The inverse: even, odd -> the 2L elements lo, hi that alternate between them.
  static void join(type even, type odd, type* lo, type* hi) {
    lanes l0, h0;
    for (int l = 0; l < kLanes; ++l) {
      l0[l] = (l % 2 ? kLanes : 0) + l / 2;
      h0[l] = l0[l] + kLanes / 2;
    }
    *lo = __builtin_shuffle(even, odd, l0);
    *hi = __builtin_shuffle(even, odd, h0);
  }
};

// One pass of dot_taps over [0, n): Whole, its whole vectors; Tail, the partial
// vector at its end (a scalar tail took most of the time on 7x7 maps, 63 = 3 x
// 16 + 15), zero past n so that the products there are 0.
template <int NF, int NT, bool Exact, bool Whole, bool Tail, typename T>
void dot_pass(T* part, int64_t stride, int64_t n, int64_t images, const T* const* a,
              int64_t a_step, const T* const* src, int64_t src_step) {
  using V = Vector<T>;
  using Vec = typename V::type;
  constexpr int L = V::kLanes;
  const int64_t whole = n - n % L, keep = n - whole;
  // Exact, on a row of at least one vector, the tail reads the vector that ends
  // at n, with its lanes below `whole` (summed already) zeroed.
  const bool back = Exact && n >= L;
  auto tail = [&](const T* p) {
    return !Exact ? V::first_lanes(V::load(p + whole), keep)
           : back ? V::last_lanes(V::load(p + n - L), L - keep)
                  : V::load_part(p + whole, keep);
  };
  Vec acc[NF][NT] = {};
  for (int64_t k = 0; k < images; ++k) {
    const T* af[NF];
    const T* s[NT];
    for (int f = 0; f < NF; ++f) af[f] = a[f] + k * a_step;
    for (int t = 0; t < NT; ++t) s[t] = src[t] + k * src_step;
    for (int64_t i = 0; Whole && i < whole; i += L) {
      Vec av[NF];
      for (int f = 0; f < NF; ++f) av[f] = V::load(af[f] + i);
      for (int t = 0; t < NT; ++t) {
        Vec sv = V::load(s[t] + i);
        IGC_GC_IN_REGISTER(sv);
        for (int f = 0; f < NF; ++f) acc[f][t] += av[f] * sv;
      }
    }
    if (Tail && keep > 0) {
      Vec av[NF];
      for (int f = 0; f < NF; ++f) av[f] = tail(af[f]);
      for (int t = 0; t < NT; ++t) {
        const Vec sv = tail(s[t]);
        for (int f = 0; f < NF; ++f) acc[f][t] += av[f] * sv;
      }
    }
  }
  for (int f = 0; f < NF; ++f) {
    for (int t = 0; t < NT; ++t) {
      T sum = 0;
      for (int l = 0; l < L; ++l) sum += acc[f][t][l];
      part[f * stride + t] += sum;
    }
  }
}

// part[f * stride + t] += sum over i < n of a[f][i] * src[t][i], f < NF, t < NT,
// and over `images` runs (image k's runs start k * a_step and k * src_step
// further on). Each source vector loaded serves NF filters: the tap runs start
// anywhere, so most of their vector loads straddle two cache lines, and with
// one filter the loop ran at the load rate. All of a task's images go through
// one call (see backward_weight_task), so the accumulators stay in registers
// across many 8x8 planes and are summed horizontally once. The order is fixed
// by the code: no -ffast-math needed.
// Exact: nothing past a row's n elements is read (rows of the caller's arrays);
// otherwise a full vector is read there, and its source lanes past n zeroed.
template <int NF, int NT, bool Exact, typename T>
void dot_taps(T* part, int64_t stride, int64_t n, int64_t images, const T* const* a,
              int64_t a_step, const T* const* src, int64_t src_step) {
  // Exact rows take their tail in a pass of its own: in the same loop nest its
  // loads made GCC spill the filter vectors of the main loop to the stack (the
  // interleaved weight gradient ran 1.2-1.4x slower). Other rows keep the tail
  // in the main loop: a second pass made GroupConvolution's 7x7 weight gradient
  // 1.7x slower.
  if (!Exact) {
    dot_pass<NF, NT, Exact, true, true>(part, stride, n, images, a, a_step, src, src_step);
    return;
  }
  constexpr int L = Vector<T>::kLanes;
  if (n >= L) dot_pass<NF, NT, Exact, true, false>(part, stride, n, images, a, a_step, src, src_step);
  if (n % L) dot_pass<NF, NT, Exact, false, true>(part, stride, n, images, a, a_step, src, src_step);
}

template <int NF, bool Exact, typename T>
void dot_filters(T* part, int64_t stride, int64_t nt, int64_t n, int64_t images,
                 const T* const* a, int64_t a_step, const T* const* src, int64_t src_step) {
  for (int64_t t0 = 0; t0 < nt; t0 += kDotTaps) {
    T* out = part + t0;
    const T* const* s = src + t0;
    switch (nt - t0 < kDotTaps ? nt - t0 : kDotTaps) {
      case 1: dot_taps<NF, 1, Exact>(out, stride, n, images, a, a_step, s, src_step); break;
      case 2: dot_taps<NF, 2, Exact>(out, stride, n, images, a, a_step, s, src_step); break;
      case 3: dot_taps<NF, 3, Exact>(out, stride, n, images, a, a_step, s, src_step); break;
      case 4: dot_taps<NF, 4, Exact>(out, stride, n, images, a, a_step, s, src_step); break;
      case 5: dot_taps<NF, 5, Exact>(out, stride, n, images, a, a_step, s, src_step); break;
      case 6: dot_taps<NF, 6, Exact>(out, stride, n, images, a, a_step, s, src_step); break;
      case 7: dot_taps<NF, 7, Exact>(out, stride, n, images, a, a_step, s, src_step); break;
      case 8: dot_taps<NF, 8, Exact>(out, stride, n, images, a, a_step, s, src_step); break;
      default: dot_taps<NF, 9, Exact>(out, stride, n, images, a, a_step, s, src_step); break;
    }
  }
}

// part[f * stride + t] += dot(a[f], src[t]) for nf <= kDotFilters filters and all
// nt taps, in chunks of kDotTaps.
template <bool Exact = false, typename T>
void dot_any(T* part, int64_t stride, int nf, int64_t nt, int64_t n, int64_t images,
             const T* const* a, int64_t a_step, const T* const* src, int64_t src_step) {
  switch (nf) {
    case 1: dot_filters<1, Exact>(part, stride, nt, n, images, a, a_step, src, src_step); break;
#if IGC_GC_DOT_FILTERS > 1
    case 2: dot_filters<2, Exact>(part, stride, nt, n, images, a, a_step, src, src_step); break;
#endif
#if IGC_GC_DOT_FILTERS > 2
    case 3: dot_filters<3, Exact>(part, stride, nt, n, images, a, a_step, src, src_step); break;
#endif
    default: break;
  }
}

// out[c][i] = sum_t w[t * NC + c] * src[t][i] for c < NC, i < n: NC x kVectorBlock
// vectors of output stay in registers while every tap streams through. Each
// source vector loaded serves NC outputs (filters in the forward pass, input
// channels in the data gradient), so the loop runs at the multiply-add rate
// rather than the load rate, and each output is written once. The weights are
// interleaved ([tap][output], see interleave_rows), so the NC broadcasts of a
// tap read one small contiguous block.
// Reads and writes up to kSlack elements past n: out and every src must have
// them (the buffers below do; what lands there is junk, never used).
// Exact: nothing past n is read or written (rows of the caller's arrays); the
// last partial vector then goes lane by lane.
template <int NC, bool Exact, typename T>
void sum_taps(T* const* out, int64_t n, int64_t nt, const T* w, const T* const* src) {
  using V = Vector<T>;
  using Vec = typename V::type;
  constexpr int L = V::kLanes;
  constexpr int B = kVectorBlock;
  int64_t i = 0;
  for (; i + B * L <= n; i += B * L) {
    Vec acc[NC][B] = {};
    const T* wt = w;
    for (int64_t t = 0; t < nt; ++t, wt += NC) {
      const T* s = src[t] + i;
      Vec sv[B];
      for (int b = 0; b < B; ++b) sv[b] = V::load(s + b * L);
      for (int c = 0; c < NC; ++c) {
        const Vec wv = wt[c] - Vec{};
        for (int b = 0; b < B; ++b) acc[c][b] += wv * sv[b];
      }
    }
    for (int c = 0; c < NC; ++c) {
      for (int b = 0; b < B; ++b) V::store(out[c] + i + b * L, acc[c][b]);
    }
  }
  // The tail in whole vectors, past n: a scalar tail is one long chain of
  // dependent multiply-adds, and took most of the time on 8x8 maps.
  for (; i < n; i += L) {
    const bool part = Exact && n - i < L;
    Vec acc[NC] = {};
    const T* wt = w;
    for (int64_t t = 0; t < nt; ++t, wt += NC) {
      const Vec sv = part ? V::load_part(src[t] + i, n - i) : V::load(src[t] + i);
      for (int c = 0; c < NC; ++c) acc[c] += (wt[c] - Vec{}) * sv;
    }
    for (int c = 0; c < NC; ++c) {
      if (part) {
        V::store_part(out[c] + i, acc[c], n - i);
      } else {
        V::store(out[c] + i, acc[c]);
      }
    }
  }
}

// sum_taps for a runtime number of outputs, 1 <= nc <= kOutputBlock.
template <bool Exact = false, typename T>
void sum_any(T* const* out, int nc, int64_t n, int64_t nt, const T* w, const T* const* src) {
  switch (nc) {
    case 1: sum_taps<1, Exact>(out, n, nt, w, src); break;
    case 2: sum_taps<2, Exact>(out, n, nt, w, src); break;
    case 3: sum_taps<3, Exact>(out, n, nt, w, src); break;
    case 4: sum_taps<4, Exact>(out, n, nt, w, src); break;
#if IGC_GC_OUTPUT_BLOCK > 4
    case 5: sum_taps<5, Exact>(out, n, nt, w, src); break;
    case 6: sum_taps<6, Exact>(out, n, nt, w, src); break;
    case 7: sum_taps<7, Exact>(out, n, nt, w, src); break;
    case 8: sum_taps<8, Exact>(out, n, nt, w, src); break;
#endif
    default: break;
  }
}

// Rows of `len` weights (`rows` of them, `per_group` to a group) -> blocks of
// up to kOutputBlock rows of one group, each stored [column][row]: the order
// sum_taps reads. The block of nc rows starting at row r sits at dst + r * len,
// column j of its row c at j * nc + c.
template <typename T>
void interleave_rows(const T* src, int64_t rows, int64_t per_group, int64_t len, T* dst) {
  for (int64_t first = 0; first < rows; first += per_group) {
    for (int64_t b0 = 0; b0 < per_group; b0 += kOutputBlock) {
      const int64_t nc = block_size(per_group, b0), r = first + b0;
      for (int64_t c = 0; c < nc; ++c) {
        for (int64_t j = 0; j < len; ++j) dst[r * len + j * nc + c] = src[(r + c) * len + j];
      }
    }
  }
}

// ---- packing --------------------------------------------------------------

// dst[j] = src[j], j < n, inline: rows are 8 to 56 elements at IGC shapes, and a
// memcpy call per row cost as much as the arithmetic on 8x8 maps.
template <typename T>
inline void copy_row(T* __restrict dst, const T* __restrict src, int64_t n) {
  typedef T Chunk __attribute__((vector_size(32)));
  constexpr int64_t kChunk = 32 / sizeof(T);
  int64_t j = 0;
  for (; j + kChunk <= n; j += kChunk) {
    Chunk v;
    memcpy(&v, src + j, sizeof v);
    memcpy(dst + j, &v, sizeof v);
  }
  for (; j < n; ++j) dst[j] = src[j];
}

// even[k] = src[2k], odd[k] = src[2k + 1] for the n elements of src: a stride-2
// row into its two column phases. Element by element, this copy and its inverse
// took 40% of a stride-2 pass.
template <typename T>
inline void split_row(const T* __restrict src, int64_t n, T* __restrict even, T* __restrict odd) {
  using V = Vector<T>;
  constexpr int64_t L = V::kLanes;
  int64_t k = 0;
  for (; 2 * (k + L) <= n; k += L) {
    typename V::type e, o;
    V::split(V::load(src + 2 * k), V::load(src + 2 * k + L), &e, &o);
    V::store(even + k, e);
    V::store(odd + k, o);
  }
  for (int64_t j = 2 * k; j < n; ++j) (j % 2 ? odd : even)[j / 2] = src[j];
}

// The inverse of split_row.
template <typename T>
inline void join_row(const T* __restrict even, const T* __restrict odd, int64_t n, T* __restrict dst) {
  using V = Vector<T>;
  constexpr int64_t L = V::kLanes;
  int64_t k = 0;
  for (; 2 * (k + L) <= n; k += L) {
    typename V::type lo, hi;
    V::join(V::load(even + k), V::load(odd + k), &lo, &hi);
    V::store(dst + 2 * k, lo);
    V::store(dst + 2 * k + L, hi);
  }
  for (int64_t j = 2 * k; j < n; ++j) dst[j] = (j % 2 ? odd : even)[j / 2];
}

// Where a padded row's even and odd input columns start, counted from the row's
// start in plane 0, at column stride 2.
inline int64_t even_columns(const Plan& p) { return (p.PW % 2) * p.plane + p.PW / 2; }
inline int64_t odd_columns(const Plan& p) { return ((p.PW + 1) % 2) * p.plane + (p.PW + 1) / 2; }

// visit(ih, at) for every input row ih, `at` being where padded row ih + PH
// starts in the planes; row phase by row phase, so that no division runs per
// row (a 64-bit division per row cost more than the copy on stride-2 layers).
template <typename Visit>
void each_input_row(const Plan& p, Visit visit) {
  for (int64_t a = 0; a < p.SH; ++a) {
    const int64_t ih0 = ((a - p.PH) % p.SH + p.SH) % p.SH;
    int64_t at = a * p.SW * p.plane + (ih0 + p.PH) / p.SH * p.Wq;
    for (int64_t ih = ih0; ih < p.H; ih += p.SH, at += p.Wq) visit(ih, at);
  }
}

// visit(iw0, at) for every column phase b: input columns iw0, iw0 + SW, ... land
// at at, at + 1, ... from the start of a padded row.
template <typename Visit>
void each_column_phase(const Plan& p, Visit visit) {
  for (int64_t b = 0; b < p.SW; ++b) {
    const int64_t iw0 = ((b - p.PW) % p.SW + p.SW) % p.SW;
    visit(iw0, b * p.plane + (iw0 + p.PW) / p.SW);
  }
}

// Input channel (H x W) -> zero-padded planes (see the top of the file). The
// same pixels of dst are written on every call and the padding never is, so
// dst is zeroed once, when allocated (zeroed_scratch); zeroing it per channel
// cost 5 % of the 8x8-map passes.
template <typename T>
void pack_in(const Plan& p, const T* __restrict src, T* __restrict dst) {
  if (p.SW == 1) {
    each_input_row(p, [&](int64_t ih, int64_t at) { copy_row(dst + at + p.PW, src + ih * p.W, p.W); });
    return;
  }
  if (p.SW == 2) {
    const int64_t even = even_columns(p), odd = odd_columns(p);
    each_input_row(p, [&](int64_t ih, int64_t at) {
      split_row(src + ih * p.W, p.W, dst + at + even, dst + at + odd);
    });
    return;
  }
  each_column_phase(p, [&](int64_t iw0, int64_t col) {
    each_input_row(p, [&](int64_t ih, int64_t at) {
      T* out = dst + at + col;
      const T* in = src + ih * p.W;
      for (int64_t iw = iw0; iw < p.W; iw += p.SW) *out++ = in[iw];
    });
  });
}

// Padded planes -> input channel (H x W): drops the padding.
template <typename T>
void unpack_in(const Plan& p, const T* __restrict src, T* __restrict dst) {
  if (p.SW == 1) {
    each_input_row(p, [&](int64_t ih, int64_t at) { copy_row(dst + ih * p.W, src + at + p.PW, p.W); });
    return;
  }
  if (p.SW == 2) {
    const int64_t even = even_columns(p), odd = odd_columns(p);
    each_input_row(p, [&](int64_t ih, int64_t at) {
      join_row(src + at + even, src + at + odd, p.W, dst + ih * p.W);
    });
    return;
  }
  each_column_phase(p, [&](int64_t iw0, int64_t col) {
    each_input_row(p, [&](int64_t ih, int64_t at) {
      const T* in = src + at + col;
      T* out = dst + ih * p.W;
      for (int64_t iw = iw0; iw < p.W; iw += p.SW) out[iw] = *in++;
    });
  });
}

// Output channel (OH x OW) -> Wq-wide rows with zero scratch columns, behind
// `lead` zeros: the backward passes read it shifted back by up to `lead`, and
// the zeros make the out-of-range taps contribute nothing. dst is zeroed once,
// as for pack_in.
template <typename T>
void pack_out(const Plan& p, const T* __restrict src, T* __restrict dst) {
  T* body = dst + p.lead;
  for (int64_t oh = 0; oh < p.OH; ++oh) copy_row(body + oh * p.Wq, src + oh * p.OW, p.OW);
}

// ---- the three passes, one (image, group) task at a time --------------------

template <typename T>
void forward_task(const Plan& p, int64_t n, int64_t g, const T* data, const T* blocked, T* out,
                  T* packed, T* acc, const T** taps) {
  for (int64_t ci = 0; ci < p.Cg; ++ci)
    pack_in(p, data + ((n * p.C + g * p.Cg + ci) * p.H) * p.W, packed + ci * p.in_stride());
  // Taps in (ci, kh, kw) order: the order of a filter's weights, and one source
  // list serves every filter of the group.
  const int64_t kernel = p.KH * p.KW, per_filter = p.Cg * kernel;
  for (int64_t ci = 0; ci < p.Cg; ++ci) {
    for (int64_t t = 0; t < kernel; ++t) taps[ci * kernel + t] = packed + ci * p.in_stride() + p.source(t);
  }
  T* sums[kOutputBlock];
  for (int64_t f0 = 0; f0 < p.Fg; f0 += kOutputBlock) {
    const int nc = block_size(p.Fg, f0);
    const int64_t f = g * p.Fg + f0;
    for (int c = 0; c < nc; ++c) sums[c] = acc + c * (p.run + kSlack);
    sum_any(sums, nc, p.run, per_filter, blocked + f * per_filter, taps);
    for (int c = 0; c < nc; ++c) {
      T* y = out + ((n * p.F + f + c) * p.OH) * p.OW;
      for (int64_t oh = 0; oh < p.OH; ++oh) copy_row(y + oh * p.OW, sums[c] + oh * p.Wq, p.OW);
    }
  }
}

// The rows of a plane of row phase a that hold input pixels, not padding: plane
// rows first .. first + count - 1. The data gradient computes only those: on 8x8
// maps that is 80 of 100 elements, 5 vectors of 16 instead of 7.
struct RowSpan {
  int64_t first, count;
};
inline RowSpan plane_rows(const Plan& p, int64_t a) {
  if (a > p.PH + p.H - 1) return {0, 0};  // a stride past the whole padded input
  const int64_t first = a >= p.PH ? 0 : (p.PH - a + p.SH - 1) / p.SH;
  const int64_t end = (p.PH + p.H - 1 - a) / p.SH + 1;
  return {first, end > first ? end - first : 0};
}

// Data gradient as a gather: padded input pixel j of plane (a, b) receives
// w[f, ci, kh, kw] * out_grad[f][j - shift(kh, kw)] from every tap in that
// plane; pack_out's zeros stand in for the output pixels that do not exist.
// Taps run plane by plane, (fo, kh, kw) within a plane: the source list is the
// same for every input channel, and `by_plane` holds the weights in that order
// (see plane_order_weights).
template <typename T>
void backward_data_task(const Plan& p, int64_t n, int64_t g, const T* out_grad, const T* blocked,
                        T* data_grad, T* packed_grad, T* planes, const T** taps) {
  for (int64_t fo = 0; fo < p.Fg; ++fo)
    pack_out(p, out_grad + ((n * p.F + g * p.Fg + fo) * p.OH) * p.OW,
             packed_grad + fo * p.out_stride);
  int64_t nt = 0;
  for (int64_t a = 0; a < p.SH; ++a) {
    const int64_t skip = plane_rows(p, a).first * p.Wq;
    for (int64_t b = 0; b < p.SW; ++b) {
      for (int64_t fo = 0; fo < p.Fg; ++fo) {
        const T* grad = packed_grad + fo * p.out_stride + p.lead + skip;
        for (int64_t kh = a; kh < p.KH; kh += p.SH) {
          for (int64_t kw = b; kw < p.KW; kw += p.SW) taps[nt++] = grad - p.shift(kh * p.KW + kw);
        }
      }
    }
  }
  T* sums[kOutputBlock];
  for (int64_t c0 = 0; c0 < p.Cg; c0 += kOutputBlock) {
    const int nc = block_size(p.Cg, c0);
    const T* w = blocked + (g * p.Cg + c0) * nt;
    int64_t first = 0;  // the plane's first tap
    for (int64_t a = 0; a < p.SH; ++a) {
      const RowSpan rows = plane_rows(p, a);
      for (int64_t b = 0; b < p.SW; ++b) {
        const int64_t count = p.Fg * ((p.KH - a + p.SH - 1) / p.SH) * ((p.KW - b + p.SW - 1) / p.SW);
        for (int c = 0; c < nc; ++c)
          sums[c] = planes + c * p.in_stride() + (a * p.SW + b) * p.plane + rows.first * p.Wq;
        if (rows.count > 0) sum_any(sums, nc, rows.count * p.Wq, count, w + first * nc, taps + first);
        first += count;
      }
    }
    for (int c = 0; c < nc; ++c)
      unpack_in(p, planes + c * p.in_stride(), data_grad + ((n * p.C + g * p.Cg + c0 + c) * p.H) * p.W);
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

// Weight gradient of group g over images [first, last): grad[f, ci, kh, kw] +=
// dot(out_grad[f] (Wq wide, zero scratch columns), the tap's run of the packed
// input). Images are packed `chunk` at a time (see weight_chunk), and each dot
// product runs over all of a chunk's images in one call.
template <typename T>
void backward_weight_task(const Plan& p, int64_t first, int64_t last, int64_t chunk, int64_t g,
                          const T* out_grad, const T* data, T* grad, T* packed, T* packed_grad,
                          const T** taps) {
  const int64_t kernel = p.KH * p.KW;
  const int64_t per_filter = p.Cg * kernel;
  const int64_t in_step = p.Cg * p.in_stride(), grad_step = p.Fg * p.out_stride;
  T* dw = grad + g * p.Fg * per_filter;
  for (int64_t ci = 0; ci < p.Cg; ++ci) {
    for (int64_t t = 0; t < kernel; ++t) taps[ci * kernel + t] = packed + ci * p.in_stride() + p.source(t);
  }
  for (int64_t n0 = first; n0 < last; n0 += chunk) {
    const int64_t images = last - n0 < chunk ? last - n0 : chunk;
    for (int64_t k = 0; k < images; ++k) {
      for (int64_t ci = 0; ci < p.Cg; ++ci)
        pack_in(p, data + (((n0 + k) * p.C + g * p.Cg + ci) * p.H) * p.W,
                packed + k * in_step + ci * p.in_stride());
      for (int64_t fo = 0; fo < p.Fg; ++fo)
        pack_out(p, out_grad + (((n0 + k) * p.F + g * p.Fg + fo) * p.OH) * p.OW,
                 packed_grad + k * grad_step + fo * p.out_stride);
    }
    const T* rows[kDotFilters];
    for (int64_t f0 = 0; f0 < p.Fg; f0 += kDotFilters) {
      const int nf = block_size(p.Fg, f0, kDotFilters);
      for (int f = 0; f < nf; ++f) rows[f] = packed_grad + (f0 + f) * p.out_stride + p.lead;
      dot_any(dw + f0 * per_filter, per_filter, nf, per_filter, p.run, images, rows, grad_step,
              taps, in_step);
    }
  }
}

// Images backward_weight_task packs at once: as many as fit in kChunkBytes (so
// that they stay in the core's cache), at least one, at most `most`.
template <typename T>
int64_t weight_chunk(const Plan& p, int64_t most) {
  constexpr int64_t kChunkBytes = 256 << 10;
  const int64_t per_image = sizeof(T) * (p.Cg * p.in_stride() + p.Fg * p.out_stride);
  const int64_t fit = kChunkBytes / per_image;
  return fit < 1 ? 1 : (fit < most ? fit : most);
}

// ---- drivers ----------------------------------------------------------------

template <typename T>
T* scratch(int64_t elements) {
  // 64-byte aligned; sizes rounded up as aligned_alloc requires.
  const size_t bytes = ((sizeof(T) * static_cast<size_t>(elements) + 63) / 64) * 64;
  return static_cast<T*>(aligned_alloc(64, bytes > 0 ? bytes : 64));
}

template <typename T>
T* zeroed_scratch(int64_t elements) {
  T* p = scratch<T>(elements);
  if (p != nullptr) memset(p, 0, sizeof(T) * elements);
  return p;
}

// Image blocks of a weight gradient: each block sums its images into its own
// partial gradient, and sum_blocks adds the partials in block order, so no two
// tasks write one address (no atomics) and the result does not depend on the
// thread count or on which thread ran what. The weights are small next to the
// activations.
// Fewer blocks mean longer dot products per call (the horizontal sums and
// weight-gradient stores are per call): one image per block made the 7x7
// interleaved weight gradient 3x slower. The count depends on the shape only.
inline int64_t image_blocks(int64_t images, int64_t groups) {
  int64_t blocks = (kWeightTasks + groups - 1) / groups;
  if (blocks > kImageBlocks) blocks = kImageBlocks;
  return images < blocks ? images : blocks;
}

template <typename T>
void sum_blocks(const T* partial, int64_t blocks, int64_t size, T* out) {
#pragma omp parallel for schedule(static) if (size * blocks >= 1 << 16)
  for (int64_t k = 0; k < size; ++k) {
    T sum = 0;
    for (int64_t b = 0; b < blocks; ++b) sum += partial[b * size + k];
    out[k] = sum;
  }
}

// A per-thread list of source pointers, one per tap.
template <typename T>
const T** tap_sources(int64_t taps) {
  return static_cast<const T**>(aligned_alloc(64, ((taps * sizeof(T*) + 63) / 64) * 64));
}

template <typename T>
int forward(const Plan& p, const T* data, const T* weight, T* out) {
  const int64_t tasks = p.N * p.G;
  const int64_t per_filter = p.Cg * p.KH * p.KW;
  T* blocked = scratch<T>(p.F * per_filter);
  if (blocked == nullptr) return IGC_OUT_OF_MEMORY;
  interleave_rows(weight, p.F, p.Fg, per_filter, blocked);
  int failed = 0;
#pragma omp parallel if (p.macs() >= kParallelMacs) reduction(| : failed)
  {
    T* packed = zeroed_scratch<T>(p.Cg * p.in_stride());
    T* acc = scratch<T>(kOutputBlock * (p.run + kSlack));
    const T** taps = tap_sources<T>(p.Cg * p.KH * p.KW);
    if (packed == nullptr || acc == nullptr || taps == nullptr)
      failed = 1;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      if (!failed)
        forward_task(p, task / p.G, task % p.G, data, blocked, out, packed, acc, taps);
    }
    free(packed);
    free(acc);
    free(const_cast<T**>(taps));
  }
  free(blocked);
  return failed ? static_cast<int>(IGC_OUT_OF_MEMORY) : IGC_OK;
}

template <typename T>
int backward_data(const Plan& p, const T* out_grad, const T* weight, T* data_grad) {
  const int64_t tasks = p.N * p.G;
  // Each input channel's weights in its taps' order, then interleaved for sum_taps.
  const int64_t size = p.F * p.Cg * p.KH * p.KW;
  T* by_plane = scratch<T>(2 * size);
  if (by_plane == nullptr) return IGC_OUT_OF_MEMORY;
  T* blocked = by_plane + size;
  plane_order_weights(p, weight, by_plane);
  interleave_rows(by_plane, p.C, p.Cg, p.Fg * p.KH * p.KW, blocked);
  int failed = 0;
#pragma omp parallel if (p.macs() >= kParallelMacs) reduction(| : failed)
  {
    T* packed_grad = zeroed_scratch<T>(p.Fg * p.out_stride);
    T* planes = scratch<T>(kOutputBlock * p.in_stride());
    const T** taps = tap_sources<T>(p.Fg * p.KH * p.KW);
    if (packed_grad == nullptr || planes == nullptr || taps == nullptr)
      failed = 1;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      if (!failed)
        backward_data_task(p, task / p.G, task % p.G, out_grad, blocked, data_grad,
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
  const int64_t blocks = image_blocks(p.N, p.G);
  const int64_t tasks = blocks * p.G;
  const int64_t size = p.F * p.Cg * p.KH * p.KW;
  const int64_t chunk = weight_chunk<T>(p, (p.N + blocks - 1) / blocks);
  T* partial = zeroed_scratch<T>(blocks * size);
  if (partial == nullptr) return IGC_OUT_OF_MEMORY;
  int failed = 0;
#pragma omp parallel if (p.macs() >= kParallelMacs) reduction(| : failed)
  {
    T* packed = zeroed_scratch<T>(chunk * p.Cg * p.in_stride());
    T* packed_grad = zeroed_scratch<T>(chunk * p.Fg * p.out_stride);
    const T** taps = tap_sources<T>(p.Cg * p.KH * p.KW);
    if (packed == nullptr || packed_grad == nullptr || taps == nullptr)
      failed = 1;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t block = task / p.G, g = task % p.G;
      if (!failed)
        backward_weight_task(p, block * p.N / blocks, (block + 1) * p.N / blocks, chunk, g,
                             out_grad, data, partial + block * size, packed, packed_grad, taps);
    }
    free(packed);
    free(packed_grad);
    free(const_cast<T**>(taps));
  }
  if (!failed) sum_blocks(partial, blocks, size, weight_grad);
  free(partial);
  return failed ? static_cast<int>(IGC_OUT_OF_MEMORY) : IGC_OK;
}

// run(a, b, c) with the arrays as double (IGC_FLOAT64) or float.
template <typename Run>
int with_dtype(int dtype, const void* a, const void* b, void* c, Run run) {
  if (dtype == IGC_FLOAT64)
    return run(static_cast<const double*>(a), static_cast<const double*>(b), static_cast<double*>(c));
  return run(static_cast<const float*>(a), static_cast<const float*>(b), static_cast<float*>(c));
}

// Entry points for the dispatcher (geometry and dtype already checked).
int forward_entry(const igc_conv_geometry& g, const void* data, const void* weight, void* out,
                  int dtype) {
  const Plan p(g);
  return with_dtype(dtype, data, weight, out,
                    [&](auto x, auto w, auto y) { return forward(p, x, w, y); });
}

int backward_data_entry(const igc_conv_geometry& g, const void* out_grad, const void* weight,
                        void* data_grad, int dtype) {
  const Plan p(g);
  return with_dtype(dtype, out_grad, weight, data_grad,
                    [&](auto dy, auto w, auto dx) { return backward_data(p, dy, w, dx); });
}

int backward_weight_entry(const igc_conv_geometry& g, const void* out_grad, const void* data,
                          void* weight_grad, int dtype) {
  const Plan p(g);
  return with_dtype(dtype, out_grad, data, weight_grad,
                    [&](auto dy, auto x, auto dw) { return backward_weight(p, dy, x, dw); });
}

// ---- the interleaved 1x1 convolution of igc_conv_kernels.h ----------------------
// A group's 1x1 convolution is sum_taps over whole rows, with the group's K input
// rows as the taps and the rows used in place (no packing). In the (C, inner)
// view of an image, group g's input c = t * L + i is row i * P + g * S + t and its
// output a is row a * G + g (see igc_conv_kernels.h). For small L this runs at the
// multiply-add rate where BLAS, given 16 x 16 matrices, did not.

struct Rows {
  int64_t N, C, HW, L, G, P, K, S;
  Rows(int64_t n, int64_t c, int64_t hw, int64_t l, int64_t g)
      : N(n), C(c), HW(hw), L(l), G(g), P(c / l), K(c / g), S(c / g / l) {}
  int64_t in_row(int64_t g, int64_t c) const { return (c % L) * P + g * S + c / L; }
  int64_t out_row(int64_t g, int64_t a) const { return a * G + g; }
  int64_t macs() const { return N * C * K * HW; }
};

// Blocks of weights for sum_taps: `transpose` false gives output a's row
// (weight[g * K + a][c] over c), true input c's column (weight[g * K + a][c] over a).
template <typename T>
T* interleaved_weights(const Rows& r, const T* weight, bool transpose) {
  T* blocked = scratch<T>(r.C * r.K);
  if (blocked == nullptr || !transpose) {
    if (blocked != nullptr) interleave_rows(weight, r.C, r.K, r.K, blocked);
    return blocked;
  }
  T* columns = scratch<T>(r.C * r.K);
  if (columns == nullptr) {
    free(blocked);
    return nullptr;
  }
  for (int64_t g = 0; g < r.G; ++g) {
    for (int64_t a = 0; a < r.K; ++a) {
      for (int64_t c = 0; c < r.K; ++c) columns[(g * r.K + c) * r.K + a] = weight[(g * r.K + a) * r.K + c];
    }
  }
  interleave_rows(columns, r.C, r.K, r.K, blocked);
  free(columns);
  return blocked;
}

// out rows (to_row) = blocked weights x in rows (from_row), per (image, group).
template <typename T, typename FromRow, typename ToRow>
int interleaved_sums(const Rows& r, const T* in, const T* weight, T* out, bool transpose,
                     FromRow from_row, ToRow to_row) {
  T* blocked = interleaved_weights(r, weight, transpose);
  if (blocked == nullptr) return IGC_OUT_OF_MEMORY;
  const int64_t tasks = r.N * r.G, image = r.C * r.HW;
  int failed = 0;
#pragma omp parallel if (r.macs() >= kParallelMacs) reduction(| : failed)
  {
    const T** src = tap_sources<T>(r.K);
    if (src == nullptr) failed = 1;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      if (failed) continue;
      const int64_t n = task / r.G, g = task % r.G;
      T* sums[kOutputBlock];
      for (int64_t c = 0; c < r.K; ++c) src[c] = in + n * image + from_row(g, c) * r.HW;
      for (int64_t a0 = 0; a0 < r.K; a0 += kOutputBlock) {
        const int nc = block_size(r.K, a0);
        for (int c = 0; c < nc; ++c) sums[c] = out + n * image + to_row(g, a0 + c) * r.HW;
        sum_any<true>(sums, nc, r.HW, r.K, blocked + (g * r.K + a0) * r.K, src);
      }
    }
    free(const_cast<T**>(src));
  }
  free(blocked);
  return failed ? static_cast<int>(IGC_OUT_OF_MEMORY) : IGC_OK;
}

template <typename T>
int interleaved_forward(const Rows& r, const T* x, const T* w, T* y) {
  return interleaved_sums(
      r, x, w, y, false, [&](int64_t g, int64_t c) { return r.in_row(g, c); },
      [&](int64_t g, int64_t a) { return r.out_row(g, a); });
}

template <typename T>
int interleaved_backward_data(const Rows& r, const T* dy, const T* w, T* dx) {
  return interleaved_sums(
      r, dy, w, dx, true, [&](int64_t g, int64_t a) { return r.out_row(g, a); },
      [&](int64_t g, int64_t c) { return r.in_row(g, c); });
}

// dW[g * K + a][c] = sum over images of dot(dy row out_row(g, a), x row in_row(g, c)),
// over image blocks (see sum_blocks).
template <typename T>
int interleaved_backward_weight(const Rows& r, const T* dy, const T* x, T* dw) {
  const int64_t blocks = image_blocks(r.N, r.G);
  const int64_t size = r.C * r.K, image = r.C * r.HW, tasks = blocks * r.G;
  T* partial = zeroed_scratch<T>(blocks * size);
  if (partial == nullptr) return IGC_OUT_OF_MEMORY;
  int failed = 0;
#pragma omp parallel if (r.macs() >= kParallelMacs) reduction(| : failed)
  {
    const T** src = tap_sources<T>(r.K);
    if (src == nullptr) failed = 1;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      if (failed) continue;
      const int64_t block = task / r.G, g = task % r.G;
      const int64_t first = block * r.N / blocks, last = (block + 1) * r.N / blocks;
      const T* rows[kDotFilters];
      for (int64_t c = 0; c < r.K; ++c) src[c] = x + first * image + r.in_row(g, c) * r.HW;
      T* out = partial + block * size + g * r.K * r.K;
      for (int64_t a0 = 0; a0 < r.K; a0 += kDotFilters) {
        const int nf = block_size(r.K, a0, kDotFilters);
        for (int f = 0; f < nf; ++f) rows[f] = dy + first * image + r.out_row(g, a0 + f) * r.HW;
        dot_any<true>(out + a0 * r.K, r.K, nf, r.K, r.HW, last - first, rows, image, src, image);
      }
    }
    free(const_cast<T**>(src));
  }
  if (!failed) sum_blocks(partial, blocks, size, dw);
  free(partial);
  return failed ? static_cast<int>(IGC_OUT_OF_MEMORY) : IGC_OK;
}

// pass 0 forward (x, w -> y), 1 data gradient (dy, w -> dx), 2 weight gradient
// (dy, x -> dw); sizes already checked.
int interleaved_entry(int pass, const void* a, const void* b, void* c, int64_t batch,
                      int64_t channels, int64_t inner, int64_t primary, int64_t groups,
                      int dtype) {
  const Rows r(batch, channels, inner, primary, groups);
  return with_dtype(dtype, a, b, c, [&](auto x, auto y, auto z) {
    return pass == 0 ? interleaved_forward(r, x, y, z)
                     : pass == 1 ? interleaved_backward_data(r, x, y, z)
                                 : interleaved_backward_weight(r, x, y, z);
  });
}

}  // namespace IGC_GC_ISA
}  // namespace igc_gc
