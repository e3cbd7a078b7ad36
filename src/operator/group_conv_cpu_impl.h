// GroupConvolution's direct CPU kernels, compiled once per instruction set (see
// cpu_simd_impl.h); group_conv_cpu.cc calls them through cpu_isa.h.
//
// The trick that keeps every inner loop long and contiguous is the "plane"
// layout. A padded input channel (Hp x Wp) is split by stride phase into planes
// of Hq x Wq, Hq = ceil(Hp / stride_h), Wq = ceil(Wp / stride_w), where plane
// (a, b) holds padded pixel (r * stride_h + a, c * stride_w + b) at r * Wq + c.
// Output pixel (oh, ow) then reads tap (kh, kw) at
//     plane(kh % stride_h, kw % stride_w)[(oh + kh / stride_h) * Wq + ow + kw / stride_w]
// so with the output stored Wq wide (columns OW..Wq-1 are scratch), each tap is
// one multiply-add over a single contiguous run of OH * Wq elements, whatever the
// stride. Output pixels in the scratch columns read junk, and are dropped. Only
// the min(stride, kernel) phases per axis that some tap reads are stored, so a
// stride far larger than the kernel costs nothing.
#ifndef IGC_MX_GROUP_CONV_CPU_IMPL_H_
#define IGC_MX_GROUP_CONV_CPU_IMPL_H_

#include "cpu_simd_impl.h"
#include "group_conv_kernels.h"

namespace igc {
namespace cpu {
namespace IGC_CPU_ISA {

struct Plan {
  int64_t N, C, H, W, F, G, KH, KW, SH, SW, PH, PW;
  int64_t OH, OW, Cg, Fg;
  int64_t AH, AW;         // row and column phases that some tap reads: min(S, K)
  int64_t Hq, Wq, plane;  // plane = Hq * Wq
  int64_t run;            // OH * Wq: one output channel, Wq wide
  int64_t lead;           // zeros in front of a packed output channel (see pack_out)
  int64_t out_stride;     // lead + plane + KW + kSlack: one packed output channel

  explicit Plan(const igc_group_conv_geometry& g)
      : N(g.batch),
        C(g.channels),
        H(g.height),
        W(g.width),
        F(g.filters),
        G(g.groups),
        KH(g.kernel_h),
        KW(g.kernel_w),
        SH(g.stride_h),
        SW(g.stride_w),
        PH(g.pad_h),
        PW(g.pad_w) {
    OH = igc_group_conv_out_size(H, KH, SH, PH);
    OW = igc_group_conv_out_size(W, KW, SW, PW);
    Cg = C / G;
    Fg = F / G;
    AH = SH < KH ? SH : KH;
    AW = SW < KW ? SW : KW;
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
  int64_t source(int64_t t) const { return t < kCachedTaps ? cached_source[t] : compute_source(t); }
  // One packed input channel: all planes, plus slack for the junk columns of the
  // last output row (up to KW elements past the last plane) and for sum_taps.
  int64_t in_stride() const { return AH * AW * plane + KW + kSlack; }
  // Whether some input pixels lie in phases no tap reads (a stride larger than
  // the kernel): their data gradient is zero.
  bool skips_phases() const { return AH < SH || AW < SW; }
  int64_t macs() const { return N * F * OH * OW * Cg * KH * KW; }

 private:
  static constexpr int64_t kCachedTaps = 49;  // up to 7x7 kernels
  int64_t cached_shift[kCachedTaps], cached_source[kCachedTaps];
  int64_t compute_shift(int64_t t) const { return (t / KW / SH) * Wq + (t % KW) / SW; }
  int64_t compute_source(int64_t t) const {
    const int64_t kh = t / KW, kw = t % KW;
    return ((kh % SH) * AW + kw % SW) * plane + compute_shift(t);
  }
};

// ---- packing --------------------------------------------------------------

// dst[j] = src[j], j < n, inline: rows are 8 to 56 elements at IGC shapes, where a
// memcpy call per row costs about as much as the arithmetic (docs/group_conv.md).
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
// row into its two column phases, by vector shuffles (element by element, this
// copy and its inverse were a large part of a stride-2 pass: docs/group_conv.md).
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
inline void join_row(const T* __restrict even, const T* __restrict odd, int64_t n,
                     T* __restrict dst) {
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
// start in plane 0, at column stride 2 with two column phases.
inline int64_t even_columns(const Plan& p) { return (p.PW % 2) * p.plane + p.PW / 2; }
inline int64_t odd_columns(const Plan& p) { return ((p.PW + 1) % 2) * p.plane + (p.PW + 1) / 2; }

// visit(ih, at) for every input row ih in a phase that some tap reads, `at` being where padded row
// ih + PH starts in the planes; row phase by row phase, so that no division runs per row (a 64-bit
// division per row cost more than the copy on stride-2 layers).
template <typename Visit>
void each_input_row(const Plan& p, Visit visit) {
  for (int64_t a = 0; a < p.AH; ++a) {
    const int64_t ih0 = ((a - p.PH) % p.SH + p.SH) % p.SH;
    int64_t at = a * p.AW * p.plane + (ih0 + p.PH) / p.SH * p.Wq;
    for (int64_t ih = ih0; ih < p.H; ih += p.SH, at += p.Wq) visit(ih, at);
  }
}

// visit(iw0, at) for every column phase b that some tap reads: input columns iw0, iw0 + SW, ...
// land at at, at + 1, ... from the start of a padded row.
template <typename Visit>
void each_column_phase(const Plan& p, Visit visit) {
  for (int64_t b = 0; b < p.AW; ++b) {
    const int64_t iw0 = ((b - p.PW) % p.SW + p.SW) % p.SW;
    visit(iw0, b * p.plane + (iw0 + p.PW) / p.SW);
  }
}

// Input channel (H x W) -> zero-padded planes (see the top of the file). The
// same pixels of dst are written on every call and the padding never is, so
// dst is zeroed once, when allocated (zeroed_scratch); zeroing it per channel
// was a noticeable part of the 8x8-map passes.
template <typename T>
void pack_in(const Plan& p, const T* __restrict src, T* __restrict dst) {
  if (p.SW == 1) {
    each_input_row(p,
                   [&](int64_t ih, int64_t at) { copy_row(dst + at + p.PW, src + ih * p.W, p.W); });
    return;
  }
  if (p.SW == 2 && p.AW == 2) {
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

// Padded planes -> input channel (H x W): drops the padding. Pixels in phases
// that no tap reads are left as they are (see skips_phases).
template <typename T>
void unpack_in(const Plan& p, const T* __restrict src, T* __restrict dst) {
  if (p.SW == 1) {
    each_input_row(p,
                   [&](int64_t ih, int64_t at) { copy_row(dst + ih * p.W, src + at + p.PW, p.W); });
    return;
  }
  if (p.SW == 2 && p.AW == 2) {
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
void forward_task(const Plan& p, int64_t n, int64_t g, const T* data, const T* blocked,
                  const Epilogue& epilogue, T* out, T* packed, T* acc, const T** taps) {
  for (int64_t ci = 0; ci < p.Cg; ++ci)
    pack_in(p, data + ((n * p.C + g * p.Cg + ci) * p.H) * p.W, packed + ci * p.in_stride());
  // Taps in (ci, kh, kw) order: the order of a filter's weights, and one source
  // list serves every filter of the group.
  const int64_t kernel = p.KH * p.KW, per_filter = p.Cg * kernel;
  for (int64_t ci = 0; ci < p.Cg; ++ci) {
    for (int64_t t = 0; t < kernel; ++t)
      taps[ci * kernel + t] = packed + ci * p.in_stride() + p.source(t);
  }
  T* sums[kOutputBlock];
  for (int64_t f0 = 0; f0 < p.Fg; f0 += kOutputBlock) {
    const int nc = block_size(p.Fg, f0);
    const int64_t f = g * p.Fg + f0;
    for (int c = 0; c < nc; ++c) sums[c] = acc + c * (p.run + kSlack);
    RowEpilogue<T> rows;
    rows.bias = epilogue.bias != nullptr ? epilogue.bias_as<T>() + f : nullptr;
    rows.relu = epilogue.relu();
    sum_any(sums, nc, p.run, per_filter, blocked + f * per_filter, taps, rows);
    for (int c = 0; c < nc; ++c) {
      T* y = out + ((n * p.F + f + c) * p.OH) * p.OW;
      for (int64_t oh = 0; oh < p.OH; ++oh) copy_row(y + oh * p.OW, sums[c] + oh * p.Wq, p.OW);
    }
  }
}

// The rows of a plane of row phase a that hold input pixels, not padding: plane
// rows first .. first + count - 1. The data gradient computes only those (on
// small maps the padding rows are a large part of a plane).
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
  for (int64_t a = 0; a < p.AH; ++a) {
    const int64_t skip = plane_rows(p, a).first * p.Wq;
    for (int64_t b = 0; b < p.AW; ++b) {
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
    for (int64_t a = 0; a < p.AH; ++a) {
      const RowSpan rows = plane_rows(p, a);
      for (int64_t b = 0; b < p.AW; ++b) {
        const int64_t count =
            p.Fg * ((p.KH - a + p.SH - 1) / p.SH) * ((p.KW - b + p.SW - 1) / p.SW);
        for (int c = 0; c < nc; ++c)
          sums[c] = planes + c * p.in_stride() + (a * p.AW + b) * p.plane + rows.first * p.Wq;
        if (rows.count > 0)
          sum_any(sums, nc, rows.count * p.Wq, count, w + first * nc, taps + first);
        first += count;
      }
    }
    for (int c = 0; c < nc; ++c) {
      T* dx = data_grad + ((n * p.C + g * p.Cg + c0 + c) * p.H) * p.W;
      if (p.skips_phases()) memset(dx, 0, sizeof(T) * p.H * p.W);
      unpack_in(p, planes + c * p.in_stride(), dx);
    }
  }
}

// The weights of input channel (g, ci) in backward_data_task's tap order.
template <typename T>
void plane_order_weights(const Plan& p, const T* weight, T* by_plane) {
  const int64_t kernel = p.KH * p.KW;
  for (int64_t g = 0; g < p.G; ++g) {
    for (int64_t ci = 0; ci < p.Cg; ++ci) {
      for (int64_t a = 0; a < p.AH; ++a) {
        for (int64_t b = 0; b < p.AW; ++b) {
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
    for (int64_t t = 0; t < kernel; ++t)
      taps[ci * kernel + t] = packed + ci * p.in_stride() + p.source(t);
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
int forward(const Plan& p, const T* data, const T* weight, const Epilogue& epilogue, T* out) {
  const int64_t per_filter = p.Cg * p.KH * p.KW;
  T* blocked = scratch<T>(p.F * per_filter);
  if (blocked == nullptr) return IGC_OUT_OF_MEMORY;
  interleave_rows(weight, p.F, p.Fg, per_filter, blocked);
  const int status = run_tasks(
      p.N * p.G, p.macs() >= kParallelMacs,
      [&](Buffers* b) {
        b->p[0] = zeroed_scratch<T>(p.Cg * p.in_stride());
        b->p[1] = scratch<T>(kOutputBlock * (p.run + kSlack));
        b->p[2] = tap_sources<T>(per_filter);
        return 3;
      },
      [&](int64_t task, Buffers& b) {
        forward_task(p, task / p.G, task % p.G, data, blocked, epilogue, out,
                     static_cast<T*>(b.p[0]), static_cast<T*>(b.p[1]),
                     static_cast<const T**>(b.p[2]));
      });
  free(blocked);
  return status;
}

template <typename T>
int backward_data(const Plan& p, const T* out_grad, const T* weight, T* data_grad) {
  // Each input channel's weights in its taps' order, then interleaved for sum_taps.
  const int64_t size = p.F * p.Cg * p.KH * p.KW;
  T* by_plane = scratch<T>(2 * size);
  if (by_plane == nullptr) return IGC_OUT_OF_MEMORY;
  T* blocked = by_plane + size;
  plane_order_weights(p, weight, by_plane);
  interleave_rows(by_plane, p.C, p.Cg, p.Fg * p.KH * p.KW, blocked);
  const int status = run_tasks(
      p.N * p.G, p.macs() >= kParallelMacs,
      [&](Buffers* b) {
        b->p[0] = zeroed_scratch<T>(p.Fg * p.out_stride);
        b->p[1] = scratch<T>(kOutputBlock * p.in_stride());
        b->p[2] = tap_sources<T>(p.Fg * p.KH * p.KW);
        return 3;
      },
      [&](int64_t task, Buffers& b) {
        backward_data_task(p, task / p.G, task % p.G, out_grad, blocked, data_grad,
                           static_cast<T*>(b.p[0]), static_cast<T*>(b.p[1]),
                           static_cast<const T**>(b.p[2]));
      });
  free(by_plane);
  return status;
}

template <typename T>
int backward_weight(const Plan& p, const T* out_grad, const T* data, T* weight_grad) {
  const int64_t blocks = image_blocks(p.N, p.G);
  const int64_t size = p.F * p.Cg * p.KH * p.KW;
  const int64_t chunk = weight_chunk<T>(p, (p.N + blocks - 1) / blocks);
  T* partial = zeroed_scratch<T>(blocks * size);
  if (partial == nullptr) return IGC_OUT_OF_MEMORY;
  const int status = run_tasks(
      blocks * p.G, p.macs() >= kParallelMacs,
      [&](Buffers* b) {
        b->p[0] = zeroed_scratch<T>(chunk * p.Cg * p.in_stride());
        b->p[1] = zeroed_scratch<T>(chunk * p.Fg * p.out_stride);
        b->p[2] = tap_sources<T>(p.Cg * p.KH * p.KW);
        return 3;
      },
      [&](int64_t task, Buffers& b) {
        const int64_t block = task / p.G, g = task % p.G;
        backward_weight_task(p, block * p.N / blocks, (block + 1) * p.N / blocks, chunk, g,
                             out_grad, data, partial + block * size, static_cast<T*>(b.p[0]),
                             static_cast<T*>(b.p[1]), static_cast<const T**>(b.p[2]));
      });
  if (status == IGC_OK) sum_blocks(partial, blocks, size, weight_grad);
  free(partial);
  return status;
}

// Entry points of the variant table (geometry and dtype already checked).
int group_conv_forward_epilogue(const igc_group_conv_geometry& g, const void* data,
                                const void* weight, const Epilogue& epilogue, void* out,
                                int dtype) {
  const Plan p(g);
  return with_dtype(dtype, data, weight, out,
                    [&](auto x, auto w, auto y) { return forward(p, x, w, epilogue, y); });
}

int group_conv_forward(const igc_group_conv_geometry& g, const void* data, const void* weight,
                       void* out, int dtype) {
  return group_conv_forward_epilogue(g, data, weight, Epilogue{nullptr, nullptr, IGC_ACT_NONE}, out,
                                     dtype);
}

int group_conv_backward_data(const igc_group_conv_geometry& g, const void* out_grad,
                             const void* weight, void* data_grad, int dtype) {
  const Plan p(g);
  return with_dtype(dtype, out_grad, weight, data_grad,
                    [&](auto dy, auto w, auto dx) { return backward_data(p, dy, w, dx); });
}

int group_conv_backward_weight(const igc_group_conv_geometry& g, const void* out_grad,
                               const void* data, void* weight_grad, int dtype) {
  const Plan p(g);
  return with_dtype(dtype, out_grad, data, weight_grad,
                    [&](auto dy, auto x, auto dw) { return backward_weight(p, dy, x, dw); });
}

}  // namespace IGC_CPU_ISA
}  // namespace cpu
}  // namespace igc

#endif  // IGC_MX_GROUP_CONV_CPU_IMPL_H_
