// InterleavedGroupConv's direct CPU kernels (layout in igc_conv_kernels.h),
// compiled once per instruction set (see cpu_simd_impl.h); igc_conv_cpu.cc
// calls them through cpu_isa.h for groups of up to 64 channels.
//
// A group's 1x1 convolution is sum_taps over whole rows, with the group's K
// input rows as the taps and the rows used in place (no packing). In the
// (C, inner) view of an image, group g's input c = t * L + i is row
// i * P + g * S + t and its output a is row a * M + g. For small groups this
// runs at the multiply-add rate, where BLAS, given such thin matrices, does not.
#ifndef IGC_MX_IGC_CONV_CPU_DIRECT_IMPL_H_
#define IGC_MX_IGC_CONV_CPU_DIRECT_IMPL_H_

#include "cpu_simd_impl.h"

namespace igc {
namespace cpu {
namespace IGC_CPU_ISA {

struct Rows {
  int64_t N, C, HW, L, M, P, K, S;
  Rows(int64_t n, int64_t c, int64_t hw, int64_t l, int64_t m)
      : N(n), C(c), HW(hw), L(l), M(m), P(c / l), K(c / m), S(c / m / l) {}
  int64_t in_row(int64_t g, int64_t c) const { return (c % L) * P + g * S + c / L; }
  int64_t out_row(int64_t g, int64_t a) const { return a * M + g; }
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
  for (int64_t g = 0; g < r.M; ++g) {
    for (int64_t a = 0; a < r.K; ++a) {
      for (int64_t c = 0; c < r.K; ++c)
        columns[(g * r.K + c) * r.K + a] = weight[(g * r.K + a) * r.K + c];
    }
  }
  interleave_rows(columns, r.C, r.K, r.K, blocked);
  free(columns);
  return blocked;
}

// The bias of group g's output a at [g * K + a] (it is output channel a * M + g's),
// so that a block of a group's outputs reads its biases in a row; null without one.
template <typename T>
T* group_order_bias(const Rows& r, const T* bias) {
  if (bias == nullptr) return nullptr;
  T* grouped = scratch<T>(r.C);
  if (grouped == nullptr) return nullptr;
  for (int64_t g = 0; g < r.M; ++g) {
    for (int64_t a = 0; a < r.K; ++a) grouped[g * r.K + a] = bias[r.out_row(g, a)];
  }
  return grouped;
}

// out rows (to_row) = blocked weights x in rows (from_row), per (image, group), plus
// the bias of the out row's group order (see group_order_bias) and the residual's
// rows at the out rows' places, then the activation.
template <typename T, typename FromRow, typename ToRow>
int interleaved_sums(const Rows& r, const T* in, const T* weight, T* out, bool transpose,
                     FromRow from_row, ToRow to_row, const T* bias = nullptr,
                     const T* residual = nullptr, bool relu = false) {
  T* blocked = interleaved_weights(r, weight, transpose);
  if (blocked == nullptr) return IGC_OUT_OF_MEMORY;
  const int64_t image = r.C * r.HW;
  const int status = run_tasks(
      r.N * r.M, r.macs() >= kParallelMacs,
      [&](Buffers* b) {
        b->p[0] = tap_sources<T>(r.K);
        return 1;
      },
      [&](int64_t task, Buffers& b) {
        const int64_t n = task / r.M, g = task % r.M;
        const T** src = static_cast<const T**>(b.p[0]);
        T* sums[kOutputBlock];
        const T* residual_rows[kOutputBlock];
        RowEpilogue<T> epilogue;
        epilogue.relu = relu;
        epilogue.residual = residual != nullptr ? residual_rows : nullptr;
        for (int64_t c = 0; c < r.K; ++c) src[c] = in + n * image + from_row(g, c) * r.HW;
        for (int64_t a0 = 0; a0 < r.K; a0 += kOutputBlock) {
          const int nc = block_size(r.K, a0);
          for (int c = 0; c < nc; ++c) {
            const int64_t row = n * image + to_row(g, a0 + c) * r.HW;
            sums[c] = out + row;
            if (residual != nullptr) residual_rows[c] = residual + row;
          }
          epilogue.bias = bias != nullptr ? bias + g * r.K + a0 : nullptr;
          sum_any<true>(sums, nc, r.HW, r.K, blocked + (g * r.K + a0) * r.K, src, epilogue);
        }
      });
  free(blocked);
  return status;
}

template <typename T>
int interleaved_forward(const Rows& r, const T* x, const T* w, const Epilogue& epilogue, T* y) {
  T* bias = group_order_bias(r, epilogue.bias_as<T>());
  if (epilogue.bias != nullptr && bias == nullptr) return IGC_OUT_OF_MEMORY;
  const int status = interleaved_sums(
      r, x, w, y, false, [&](int64_t g, int64_t c) { return r.in_row(g, c); },
      [&](int64_t g, int64_t a) { return r.out_row(g, a); }, bias, epilogue.residual_as<T>(),
      epilogue.relu());
  free(bias);
  return status;
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
  const int64_t blocks = image_blocks(r.N, r.M);
  const int64_t size = r.C * r.K, image = r.C * r.HW;
  T* partial = zeroed_scratch<T>(blocks * size);
  if (partial == nullptr) return IGC_OUT_OF_MEMORY;
  const int status = run_tasks(
      blocks * r.M, r.macs() >= kParallelMacs,
      [&](Buffers* b) {
        b->p[0] = tap_sources<T>(r.K);
        return 1;
      },
      [&](int64_t task, Buffers& b) {
        const int64_t block = task / r.M, g = task % r.M;
        const int64_t first = block * r.N / blocks, last = (block + 1) * r.N / blocks;
        const T** src = static_cast<const T**>(b.p[0]);
        const T* rows[kDotFilters];
        for (int64_t c = 0; c < r.K; ++c) src[c] = x + first * image + r.in_row(g, c) * r.HW;
        T* out = partial + block * size + g * r.K * r.K;
        for (int64_t a0 = 0; a0 < r.K; a0 += kDotFilters) {
          const int nf = block_size(r.K, a0, kDotFilters);
          for (int f = 0; f < nf; ++f) rows[f] = dy + first * image + r.out_row(g, a0 + f) * r.HW;
          dot_any<true>(out + a0 * r.K, r.K, nf, r.K, r.HW, last - first, rows, image, src, image);
        }
      });
  if (status == IGC_OK) sum_blocks(partial, blocks, size, dw);
  free(partial);
  return status;
}

// Entry points of the variant table (sizes and dtype already checked).
int interleaved_conv_forward_epilogue(const void* x, const void* w, const Epilogue& epilogue,
                                      void* y, int64_t batch, int64_t channels, int64_t inner,
                                      int64_t primary, int64_t secondary, int dtype) {
  const Rows r(batch, channels, inner, primary, secondary);
  return with_dtype(dtype, x, w, y, [&](auto a, auto b, auto c) {
    return interleaved_forward(r, a, b, epilogue, c);
  });
}

int interleaved_conv_forward(const void* x, const void* w, void* y, int64_t batch, int64_t channels,
                             int64_t inner, int64_t primary, int64_t secondary, int dtype) {
  return interleaved_conv_forward_epilogue(x, w, Epilogue{nullptr, nullptr, IGC_ACT_NONE}, y, batch,
                                           channels, inner, primary, secondary, dtype);
}

int interleaved_conv_backward_data(const void* dy, const void* w, void* dx, int64_t batch,
                                   int64_t channels, int64_t inner, int64_t primary,
                                   int64_t secondary, int dtype) {
  const Rows r(batch, channels, inner, primary, secondary);
  return with_dtype(dtype, dy, w, dx,
                    [&](auto a, auto b, auto c) { return interleaved_backward_data(r, a, b, c); });
}

int interleaved_conv_backward_weight(const void* dy, const void* x, void* dw, int64_t batch,
                                     int64_t channels, int64_t inner, int64_t primary,
                                     int64_t secondary, int dtype) {
  const Rows r(batch, channels, inner, primary, secondary);
  return with_dtype(dtype, dy, x, dw, [&](auto a, auto b, auto c) {
    return interleaved_backward_weight(r, a, b, c);
  });
}

}  // namespace IGC_CPU_ISA
}  // namespace cpu
}  // namespace igc

#endif  // IGC_MX_IGC_CONV_CPU_DIRECT_IMPL_H_
