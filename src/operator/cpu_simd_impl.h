// The register-blocked inner loops that both direct CPU kernels (GroupConvolution
// and InterleavedGroupConv) are built from, and their scratch and task helpers.
// Compiled once per instruction set: each cpu_isa_*.cc defines IGC_CPU_ISA (a
// namespace name) and the block sizes below, then includes
// group_conv_cpu_impl.h and igc_conv_cpu_direct_impl.h, which include this file,
// with its own -m flags; cpu_isa.cc picks one variant at run time.
//
// No standard-library templates here on purpose: their instantiations are
// shared between translation units by the linker, so one compiled with -mavx2
// could end up called from the generic path on a CPU without AVX2.
#ifndef IGC_MX_CPU_SIMD_IMPL_H_
#define IGC_MX_CPU_SIMD_IMPL_H_

#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "igc_common.h"

// The vector types below never cross a function boundary that another
// translation unit sees, so the ABI note GCC gives for them does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

#ifndef IGC_CPU_VECTOR_BYTES
#define IGC_CPU_VECTOR_BYTES 32  // width of the inner loops' vectors (one AVX2 register)
#endif

// Outputs that sum_taps computes together, and vectors per output: the
// accumulators (their product) must fit in the vector registers with room for
// the sources.
#ifndef IGC_CPU_OUTPUT_BLOCK
#define IGC_CPU_OUTPUT_BLOCK 2
#endif
#ifndef IGC_CPU_VECTOR_BLOCK
#define IGC_CPU_VECTOR_BLOCK 2
#endif
// Filters x taps (at most 3 x 9) whose weight-gradient dot products share one
// pass, same constraint.
#ifndef IGC_CPU_DOT_FILTERS
#define IGC_CPU_DOT_FILTERS 1
#endif
#ifndef IGC_CPU_DOT_TAPS
#define IGC_CPU_DOT_TAPS 9
#endif

#ifndef IGC_CPU_ISA
#error "define IGC_CPU_ISA (the namespace of this instruction-set variant) first"
#endif

namespace igc {
namespace cpu {
namespace IGC_CPU_ISA {

// Below this many multiply-adds a parallel region costs more than it saves.
constexpr int64_t kParallelMacs = 1 << 16;
// Elements every scratch buffer has past its end, for sum_taps' last vector.
constexpr int64_t kSlack = 64;
constexpr int kOutputBlock = IGC_CPU_OUTPUT_BLOCK;
constexpr int kVectorBlock = IGC_CPU_VECTOR_BLOCK;
// Filters and taps whose dot products share one pass (the weight gradients).
constexpr int kDotFilters = IGC_CPU_DOT_FILTERS;
constexpr int kDotTaps = IGC_CPU_DOT_TAPS;

// Items in the block starting at `first` of `count` (blocks of `block`).
inline int block_size(int64_t count, int64_t first, int64_t block = kOutputBlock) {
  return static_cast<int>(count - first < block ? count - first : block);
}

// ---- inner loops: NT taps fused, so the accumulator is loaded and stored once
// per NT multiply-adds. Written with GCC/Clang vector types: the compilers'
// own vectorisation of dot_taps spilled its sums to the stack. ----------------

// Makes the compiler load v once into a register: left alone, GCC folds the load
// into every multiply-add that uses it, one load per use, and the loops that
// share a loaded vector among several outputs became load-bound again.
#if defined(__x86_64__) && defined(__AVX512F__)
#define IGC_CPU_IN_REGISTER(v) __asm__("" : "+v"(v))
#elif defined(__x86_64__) && defined(__AVX__)
#define IGC_CPU_IN_REGISTER(v) __asm__("" : "+x"(v))
#else
#define IGC_CPU_IN_REGISTER(v) ((void)0)
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
  typedef T type __attribute__((vector_size(IGC_CPU_VECTOR_BYTES)));
  static constexpr int kLanes = IGC_CPU_VECTOR_BYTES / sizeof(T);
  typedef typename SameSizeInt<T>::type lane;
  typedef lane lanes __attribute__((vector_size(IGC_CPU_VECTOR_BYTES)));
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
// vector at its end, zero past n so that the products there are 0 (a scalar tail
// is slow on small maps: docs/group_conv.md).
template <int NF, int NT, bool Exact, bool Whole, bool Tail, typename T>
void dot_pass(T* part, int64_t stride, int64_t n, int64_t images, const T* const* a, int64_t a_step,
              const T* const* src, int64_t src_step) {
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
        IGC_CPU_IN_REGISTER(sv);
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
void dot_taps(T* part, int64_t stride, int64_t n, int64_t images, const T* const* a, int64_t a_step,
              const T* const* src, int64_t src_step) {
  // Exact rows take their tail in a pass of its own: in the same loop nest its
  // loads make GCC spill the filter vectors of the main loop to the stack. Other
  // rows keep the tail in the main loop, where a second pass is slower. The
  // measurements: docs/group_conv.md ("CPU").
  if (!Exact) {
    dot_pass<NF, NT, Exact, true, true>(part, stride, n, images, a, a_step, src, src_step);
    return;
  }
  constexpr int L = Vector<T>::kLanes;
  if (n >= L)
    dot_pass<NF, NT, Exact, true, false>(part, stride, n, images, a, a_step, src, src_step);
  if (n % L)
    dot_pass<NF, NT, Exact, false, true>(part, stride, n, images, a, a_step, src, src_step);
}

template <int NF, bool Exact, typename T>
void dot_filters(T* part, int64_t stride, int64_t nt, int64_t n, int64_t images, const T* const* a,
                 int64_t a_step, const T* const* src, int64_t src_step) {
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
#if IGC_CPU_DOT_FILTERS > 1
    case 2: dot_filters<2, Exact>(part, stride, nt, n, images, a, a_step, src, src_step); break;
#endif
#if IGC_CPU_DOT_FILTERS > 2
    case 3: dot_filters<3, Exact>(part, stride, nt, n, images, a, a_step, src, src_step); break;
#endif
    default: break;
  }
}

// What sum_taps does to each sum before it stores it: + bias[c] (null: none), +
// residual[c][i] (null: none; rows laid out as the outputs'), then with `relu`
// every value that is not above 0 (NaN too, as MXNet's relu) becomes 0.
template <typename T>
struct RowEpilogue {
  const T* bias = nullptr;
  const T* const* residual = nullptr;
  bool relu = false;
};

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
// The epilogue `e` is applied in registers, before the one store of each output
// vector (see RowEpilogue). A separate pass for it would cost a read and a write
// of the whole output.
template <int NC, bool Exact, typename T>
void sum_taps(T* const* out, int64_t n, int64_t nt, const T* w, const T* const* src,
              const RowEpilogue<T>& e) {
  using V = Vector<T>;
  using Vec = typename V::type;
  constexpr int L = V::kLanes;
  constexpr int B = kVectorBlock;
  Vec start[NC];
  for (int c = 0; c < NC; ++c) start[c] = (e.bias != nullptr ? e.bias[c] : T(0)) - Vec{};
  // sum + residual[c][i] (read like the output: up to kSlack past n unless Exact),
  // then the ReLU
  auto finish = [&e](Vec v, int c, int64_t i, int64_t part) {
    if (e.residual != nullptr)
      v += part < L ? V::load_part(e.residual[c] + i, part) : V::load(e.residual[c] + i);
    return e.relu ? (v > Vec{} ? v : Vec{}) : v;
  };
  int64_t i = 0;
  for (; i + B * L <= n; i += B * L) {
    Vec acc[NC][B];
    for (int c = 0; c < NC; ++c) {
      for (int b = 0; b < B; ++b) acc[c][b] = start[c];
    }
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
      for (int b = 0; b < B; ++b) V::store(out[c] + i + b * L, finish(acc[c][b], c, i + b * L, L));
    }
  }
  // The tail in whole vectors, past n: a scalar tail is one long chain of
  // dependent multiply-adds, slow on small maps (docs/group_conv.md).
  for (; i < n; i += L) {
    const bool part = Exact && n - i < L;
    Vec acc[NC];
    for (int c = 0; c < NC; ++c) acc[c] = start[c];
    const T* wt = w;
    for (int64_t t = 0; t < nt; ++t, wt += NC) {
      const Vec sv = part ? V::load_part(src[t] + i, n - i) : V::load(src[t] + i);
      for (int c = 0; c < NC; ++c) acc[c] += (wt[c] - Vec{}) * sv;
    }
    for (int c = 0; c < NC; ++c) {
      if (part) {
        V::store_part(out[c] + i, finish(acc[c], c, i, n - i), n - i);
      } else {
        V::store(out[c] + i, finish(acc[c], c, i, L));
      }
    }
  }
}

// sum_taps for a runtime number of outputs, 1 <= nc <= kOutputBlock, with the
// epilogue of those nc outputs.
template <bool Exact = false, typename T>
void sum_any(T* const* out, int nc, int64_t n, int64_t nt, const T* w, const T* const* src,
             const RowEpilogue<T>& e = RowEpilogue<T>()) {
  switch (nc) {
    case 1: sum_taps<1, Exact>(out, n, nt, w, src, e); break;
    case 2: sum_taps<2, Exact>(out, n, nt, w, src, e); break;
    case 3: sum_taps<3, Exact>(out, n, nt, w, src, e); break;
    case 4: sum_taps<4, Exact>(out, n, nt, w, src, e); break;
#if IGC_CPU_OUTPUT_BLOCK > 4
    case 5: sum_taps<5, Exact>(out, n, nt, w, src, e); break;
    case 6: sum_taps<6, Exact>(out, n, nt, w, src, e); break;
    case 7: sum_taps<7, Exact>(out, n, nt, w, src, e); break;
    case 8: sum_taps<8, Exact>(out, n, nt, w, src, e); break;
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

// ---- scratch memory and tasks -----------------------------------------------

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
// activations. At most kImageBlocks, and no more than it takes to make
// kWeightTasks (image block, group) tasks: fewer blocks mean longer dot products
// per call (the horizontal sums and weight-gradient stores are per call). The
// count depends on the shape only.
constexpr int64_t kImageBlocks = 8, kWeightTasks = 32;
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

// Per-thread scratch buffers of run_tasks, freed when the thread is done.
struct Buffers {
  void* p[3] = {nullptr, nullptr, nullptr};
  Buffers() = default;
  Buffers(const Buffers&) = delete;
  Buffers& operator=(const Buffers&) = delete;
  ~Buffers() {
    for (void* q : p) free(q);
  }
  bool ok(int count) const {
    for (int k = 0; k < count; ++k) {
      if (p[k] == nullptr) return false;
    }
    return true;
  }
};

// run(task, buffers) for every task < tasks, over OpenMP threads when `parallel`.
// Each thread first fills its own Buffers with allocate(buffers), which returns
// how many it allocated; a failed allocation makes the call IGC_OUT_OF_MEMORY.
// Tasks are handed out one at a time (schedule dynamic): on a shared machine a
// thread that loses its core leaves its work to the others instead of holding
// up the whole call.
template <typename Allocate, typename Run>
int run_tasks(int64_t tasks, bool parallel, Allocate allocate, Run run) {
  int failed = 0;
#pragma omp parallel if (parallel) reduction(| : failed)
  {
    Buffers buffers;
    if (!buffers.ok(allocate(&buffers))) failed = 1;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      if (!failed) run(task, buffers);
    }
  }
  return failed ? static_cast<int>(IGC_OUT_OF_MEMORY) : IGC_OK;
}

// A forward pass's epilogue (see RowEpilogue): a bias per output channel (null:
// none), a residual tensor of the output's shape (null: none) and an igc_activation.
struct Epilogue {
  const void* bias;
  const void* residual;
  int activation;
  template <typename T>
  const T* bias_as() const {
    return static_cast<const T*>(bias);
  }
  template <typename T>
  const T* residual_as() const {
    return static_cast<const T*>(residual);
  }
  bool relu() const { return activation == IGC_ACT_RELU; }
};

// run(a, b, c) with the arrays as double (IGC_FLOAT64) or float.
template <typename Run>
int with_dtype(int dtype, const void* a, const void* b, void* c, Run run) {
  if (dtype == IGC_FLOAT64)
    return run(static_cast<const double*>(a), static_cast<const double*>(b),
               static_cast<double*>(c));
  return run(static_cast<const float*>(a), static_cast<const float*>(b), static_cast<float*>(c));
}

}  // namespace IGC_CPU_ISA
}  // namespace cpu
}  // namespace igc

#endif  // IGC_MX_CPU_SIMD_IMPL_H_
