// CUDA kernels of GroupConvolution (contract in group_conv_kernels.h).
//
// All three passes work on tiles staged once in shared memory:
//   forward         block = (output tile, group x filter tile, image); the input
//                   tile of a few channels at a time and their weights are loaded
//                   once for the block's filters, each thread keeps FT filters of
//                   one output pixel in registers.
//   data gradient   block = (input tile, group x channel tile, image); gathers
//                   from the output-gradient tile, each thread keeps CT channels
//                   of one input pixel. A pixel's taps are the kh = (ih + pad) mod
//                   stride, + stride, ..., found once per pixel: no division per
//                   tap, and stride 1 visits every tap.
//   weight gradient block = (chunk of output pixels, group x tile of weight
//                   elements): a split-K GEMM. Every thread keeps a register tile
//                   of weight elements and sums it over its share of the chunk's
//                   pixels, reading them from global memory; the block adds the
//                   shares in a fixed order, and a second kernel the chunks' partial
//                   sums in chunk order: deterministic, no atomics.
// Every loop that runs per element or per multiply-add only adds and compares;
// divisions happen once per block, per tile or per chunk. The staged tiles live
// in dynamic shared memory sized to the launch. Sums run in float for float16 and
// float32, in double for double. docs/gpu_kernels.md has the tile and grid sizes
// and the bytes and FLOPs of each pass.
#include <type_traits>

#include "cuda_common.cuh"
#include "group_conv_kernels.h"

namespace {

using igc::Pass;
using igc::cuda::Acc;
using igc::cuda::load;
using igc::cuda::ptr;
using igc::cuda::store;

constexpr int kThreads = 256;
// The most shared memory a block stages into (bytes; each launch takes what its
// tiles need), and the loads per thread that cover one staged tile.
constexpr int kMaxSharedBytes = 32 << 10;
constexpr int kLoadsPerThread = 8;
// Weight gradient: (channel, tap) pairs per thread, the most register tiles per
// block (so that each has at least kThreads / kMaxOwners replicas), and the fewest
// pixels per replica in a chunk. Blocks wanted and the workspace limit:
// cuda_common.cuh.
constexpr int kTapsPerThread = 8;
constexpr int kMaxOwners = 32;
constexpr int kMinPixelsPerReplica = 8;
using igc::cuda::kMaxWorkspaceBytes;
using igc::cuda::kWeightBlocksWanted;

// The geometry with its derived sizes and the tiling (computed on the host).
// Every tensor has fewer than 2^31 elements (igc_group_conv_check): int offsets.
struct Conv {
  int N, C, H, W, F, G, KH, KW, SH, SW, PH, PW, OH, OW, Cg, Fg, KK;
  int TH, TW, threads;   // the tile of pixels a block computes, one thread each
  int tiles_h, tiles_w;  // tiles per map
  int IH, IW;            // forward / weight grad: the input tile of an output tile
  int DH, DW;            // data grad: the largest output-gradient tile of an input tile
  int step;              // channels (forward) or filters (data grad) per staged step
  // Weight gradient: CT = Cg * KK (channel, tap) pairs per filter; owners_f x
  // owners_c register tiles of RF filters x kTapsPerThread pairs per block, which
  // covers FB filters x CTB pairs; tiles_f x tiles_c such tiles per group.
  int CT, owners_f, owners_c, FB, CTB, tiles_f, tiles_c, chunks;
};

// Element e < count of a staged tile `rows` x `cols` (cols wide), as the thread's
// k-th load; precomputed once per block so that staging never divides.
struct Loads {
  int row[kLoadsPerThread], col[kLoadsPerThread];
  __device__ __forceinline__ void plan(int cols, int count, int threads) {
#pragma unroll
    for (int k = 0; k < kLoadsPerThread; ++k) {
      const int e = threadIdx.x + k * threads;
      row[k] = e < count ? e / cols : -1;
      col[k] = e < count ? e - row[k] * cols : 0;
    }
  }
};

// Copies one channel's rows [y0, y0 + rows) x [x0, x0 + cols) of an H x W map into
// dst (cols wide), zeros outside the map.
template <typename T, typename A>
__device__ __forceinline__ void stage(const Loads& at, ptr<const T> __restrict__ map, int H, int W,
                                      int y0, int x0, int cols, ptr<A> __restrict__ dst) {
#pragma unroll
  for (int k = 0; k < kLoadsPerThread; ++k) {
    if (at.row[k] < 0) continue;
    const int y = y0 + at.row[k], x = x0 + at.col[k];
    dst[at.row[k] * cols + at.col[k]] =
        (y >= 0 && y < H && x >= 0 && x < W) ? load(map + y * W + x) : A(0);
  }
}

// ---- forward ------------------------------------------------------------------

template <typename T, int FT>
__global__ void __launch_bounds__(kThreads, 2)
    forward_kernel(Conv d, ptr<const T> __restrict__ x, ptr<const T> __restrict__ w,
                   ptr<T> __restrict__ y) {
  using A = typename Acc<T>::type;
  IGC_DYNAMIC_SHARED(A, shared);  // forward_shared_bytes
  const int tid = threadIdx.x;
  const int ty = tid / d.TW, tx = tid - ty * d.TW;  // once per block
  const bool active = tid < d.TH * d.TW;
  const int in_area = d.IH * d.IW;
  const ptr<A> in_s = shared;                    // [step][IH][IW]
  const ptr<A> w_s = shared + d.step * in_area;  // [FT][step][KK]
  Loads at;
  at.plan(d.IW, in_area, d.threads);
  const int filter_tiles = (d.Fg + FT - 1) / FT;
  for (int tile = blockIdx.x; tile < d.tiles_h * d.tiles_w; tile += gridDim.x) {
    const int tile_y = tile / d.tiles_w, tile_x = tile - tile_y * d.tiles_w;
    const int oy = tile_y * d.TH + ty, ox = tile_x * d.TW + tx;
    const int iy0 = tile_y * d.TH * d.SH - d.PH, ix0 = tile_x * d.TW * d.SW - d.PW;
    for (int gf = blockIdx.y; gf < d.G * filter_tiles; gf += gridDim.y) {
      const int g = gf / filter_tiles, f0 = (gf - g * filter_tiles) * FT;
      const int filters = d.Fg - f0 < FT ? d.Fg - f0 : FT;
      for (int n = blockIdx.z; n < d.N; n += gridDim.z) {
        A acc[FT];
#pragma unroll
        for (int f = 0; f < FT; ++f) acc[f] = A(0);
        for (int c0 = 0; c0 < d.Cg; c0 += d.step) {
          const int channels = d.Cg - c0 < d.step ? d.Cg - c0 : d.step;
          for (int c = 0; c < channels; ++c)
            stage(at, x + (n * d.C + g * d.Cg + c0 + c) * d.H * d.W, d.H, d.W, iy0, ix0, d.IW,
                  in_s + c * in_area);
          // The weights of filter f0 + f, channels c0.., are one contiguous run.
          for (int f = 0; f < FT; ++f) {
            const ptr<const T> src = w + ((g * d.Fg + f0 + f) * d.Cg + c0) * d.KK;
            for (int e = tid; e < channels * d.KK; e += d.threads)
              w_s[f * d.step * d.KK + e] = f < filters ? load(src + e) : A(0);
          }
          __syncthreads();
          if (active) {
            for (int c = 0; c < channels; ++c) {
              const ptr<const A> in_c = in_s + c * in_area + ty * d.SH * d.IW + tx * d.SW;
              const ptr<const A> w_c = w_s + c * d.KK;
              for (int kh = 0; kh < d.KH; ++kh) {
                for (int kw = 0; kw < d.KW; ++kw) {
                  const A v = in_c[kh * d.IW + kw];
#pragma unroll
                  for (int f = 0; f < FT; ++f)
                    acc[f] += v * w_c[f * d.step * d.KK + kh * d.KW + kw];
                }
              }
            }
          }
          __syncthreads();
        }
        if (active && oy < d.OH && ox < d.OW) {
#pragma unroll
          for (int f = 0; f < FT; ++f) {
            if (f < filters)
              store(y + ((n * d.F + g * d.Fg + f0 + f) * d.OH + oy) * d.OW + ox, acc[f]);
          }
        }
      }
    }
  }
}

// ---- data gradient --------------------------------------------------------------

template <typename T, int CT>
__global__ void __launch_bounds__(kThreads, 2)
    backward_data_kernel(Conv d, ptr<const T> __restrict__ dy, ptr<const T> __restrict__ w,
                         ptr<T> __restrict__ dx) {
  using A = typename Acc<T>::type;
  IGC_DYNAMIC_SHARED(A, shared);  // backward_data_shared_bytes
  const int tid = threadIdx.x;
  const int ty = tid / d.TW, tx = tid - ty * d.TW;
  const bool active = tid < d.TH * d.TW;
  const int dy_area = d.DH * d.DW;
  const ptr<A> dy_s = shared;                    // [step][DH][DW]
  const ptr<A> w_s = shared + d.step * dy_area;  // [step][CT][KK]
  const int channel_tiles = (d.Cg + CT - 1) / CT;
  for (int tile = blockIdx.x; tile < d.tiles_h * d.tiles_w; tile += gridDim.x) {
    const int tile_y = tile / d.tiles_w, tile_x = tile - tile_y * d.tiles_w;
    const int iy0 = tile_y * d.TH, ix0 = tile_x * d.TW;
    // The output pixels whose windows touch the tile: [oy0, oy0 + rows) x [ox0, ...).
    const int oy0 = iy0 + d.PH - d.KH + 1 > 0 ? (iy0 + d.PH - d.KH + d.SH) / d.SH : 0;
    const int ox0 = ix0 + d.PW - d.KW + 1 > 0 ? (ix0 + d.PW - d.KW + d.SW) / d.SW : 0;
    const int oy1 = (iy0 + d.TH - 1 + d.PH) / d.SH, ox1 = (ix0 + d.TW - 1 + d.PW) / d.SW;
    const int rows = (oy1 < d.OH ? oy1 : d.OH - 1) - oy0 + 1;
    const int cols = (ox1 < d.OW ? ox1 : d.OW - 1) - ox0 + 1;
    Loads at;
    at.plan(cols > 0 ? cols : 1, rows > 0 && cols > 0 ? rows * cols : 0, d.threads);
    // This thread's input pixel, its first taps and the output pixel they read.
    const int iy = iy0 + ty, ix = ix0 + tx;
    const int rh = (iy + d.PH) % d.SH, rw = (ix + d.PW) % d.SW;
    const int first_row = (iy + d.PH - rh) / d.SH - oy0;
    const int first_col = (ix + d.PW - rw) / d.SW - ox0;
    for (int gc = blockIdx.y; gc < d.G * channel_tiles; gc += gridDim.y) {
      const int g = gc / channel_tiles, c0 = (gc - g * channel_tiles) * CT;
      const int channels = d.Cg - c0 < CT ? d.Cg - c0 : CT;
      for (int n = blockIdx.z; n < d.N; n += gridDim.z) {
        A acc[CT];
#pragma unroll
        for (int c = 0; c < CT; ++c) acc[c] = A(0);
        for (int f0 = 0; f0 < d.Fg; f0 += d.step) {
          const int filters = d.Fg - f0 < d.step ? d.Fg - f0 : d.step;
          for (int f = 0; f < filters; ++f) {
            stage(at, dy + (n * d.F + g * d.Fg + f0 + f) * d.OH * d.OW, d.OH, d.OW, oy0, ox0, cols,
                  dy_s + f * dy_area);
            // The weights of filter f, channels c0.., are one contiguous run.
            const ptr<const T> src = w + ((g * d.Fg + f0 + f) * d.Cg + c0) * d.KK;
            for (int e = tid; e < CT * d.KK; e += d.threads)
              w_s[f * CT * d.KK + e] = e < channels * d.KK ? load(src + e) : A(0);
          }
          __syncthreads();
          if (active && iy < d.H && ix < d.W) {
            for (int f = 0; f < filters; ++f) {
              const ptr<const A> grad = dy_s + f * dy_area;
              const ptr<const A> w_f = w_s + f * CT * d.KK;
              for (int kh = rh, r = first_row; kh < d.KH && r >= 0; kh += d.SH, --r) {
                if (r >= rows) continue;
                for (int kw = rw, c = first_col; kw < d.KW && c >= 0; kw += d.SW, --c) {
                  if (c >= cols) continue;
                  const A v = grad[r * cols + c];
#pragma unroll
                  for (int k = 0; k < CT; ++k) acc[k] += v * w_f[k * d.KK + kh * d.KW + kw];
                }
              }
            }
          }
          __syncthreads();
        }
        if (active && iy < d.H && ix < d.W) {
#pragma unroll
          for (int c = 0; c < CT; ++c) {
            if (c < channels)
              store(dx + ((n * d.C + g * d.Cg + c0 + c) * d.H + iy) * d.W + ix, acc[c]);
          }
        }
      }
    }
  }
}

// ---- weight gradient ------------------------------------------------------------

// dW_g (Fg x CT) = dY_g (Fg x pixels) . im2col(X_g) (pixels x CT), CT = Cg * KK
// (channel, tap) pairs: a GEMM with a small result and a long reduction over every
// output pixel of every image, split over chunks (blockIdx.x) and, inside a block,
// over replicas. The block's FB x CTB tile of the group's dW is owners_f x owners_c
// register tiles of RF filters x kTapsPerThread pairs; thread tid is replica
// tid / owners of register tile tid % owners and sums its tile over the chunk's
// pixels replica, replica + replicas, ... Its loads come straight from global
// memory: a warp's threads read the same taps of neighbouring pixels. Filters and
// pairs past the end of the group are clamped to the last one (the loads stay in
// bounds, the sums are dropped). The replicas' sums are added in replica order
// through shared memory ([kTapsPerThread][kThreads], weight_grad_shared_bytes),
// one filter of the register tile at a time.
template <typename T, int RF>
__global__ void __launch_bounds__(kThreads, 2)
    weight_grad_kernel(Conv d, ptr<const T> __restrict__ dy, ptr<const T> __restrict__ x,
                       ptr<typename Acc<T>::type> __restrict__ partial, ptr<T> __restrict__ dw) {
  using A = typename Acc<T>::type;
  constexpr int RC = kTapsPerThread;
  IGC_DYNAMIC_SHARED(A, sums);
  const int tid = threadIdx.x;
  const int owners = d.owners_f * d.owners_c;
  const int owner = tid % owners, replica = tid / owners;         // once per block
  const int replicas = (kThreads - owner + owners - 1) / owners;  // of this register tile
  const int of = owner / d.owners_c, oc = owner - of * d.owners_c;
  const int out_area = d.OH * d.OW, in_area = d.H * d.W, pixels = d.N * out_area;
  // The step between a replica's pixels, as (images, rows, columns).
  const int step_n = replicas / out_area, step_rest = replicas - step_n * out_area;
  const int step_y = step_rest / d.OW, step_x = step_rest - step_y * d.OW;
  const int element_tiles = d.tiles_f * d.tiles_c;
  for (int chunk = blockIdx.x; chunk < d.chunks; chunk += gridDim.x) {
    const int first = static_cast<int>(int64_t{chunk} * pixels / d.chunks);
    const int last = static_cast<int>(int64_t{chunk + 1} * pixels / d.chunks);
    for (int ge = blockIdx.y; ge < d.G * element_tiles; ge += gridDim.y) {
      const int g = ge / element_tiles, et = ge - g * element_tiles;  // once per tile
      const int ft = et / d.tiles_c;
      const int f_first = ft * d.FB + of * RF;  // this thread's filters and pairs
      const int ct_first = (et - ft * d.tiles_c) * d.CTB + oc * RC;
      int filter_at[RF];  // output-gradient map offset of each filter
#pragma unroll
      for (int i = 0; i < RF; ++i)
        filter_at[i] = (f_first + i < d.Fg ? f_first + i : d.Fg - 1) * out_area;
      int tap_y[RC], tap_x[RC], channel_at[RC];  // each pair's tap and channel
#pragma unroll
      for (int j = 0; j < RC; ++j) {
        const int ct = ct_first + j < d.CT ? ct_first + j : d.CT - 1;
        const int c = ct / d.KK, tap = ct - c * d.KK;
        tap_y[j] = tap / d.KW;
        tap_x[j] = tap - tap_y[j] * d.KW - d.PW;
        tap_y[j] -= d.PH;
        channel_at[j] = c * in_area;
      }
      A acc[RF][RC];
#pragma unroll
      for (int i = 0; i < RF; ++i) {
#pragma unroll
        for (int j = 0; j < RC; ++j) acc[i][j] = A(0);
      }
      // The replica's first pixel (n, oy, ox), then advanced by the step.
      int p = first + replica;
      int n = p / out_area, oy = (p - n * out_area) / d.OW;
      int ox = p - n * out_area - oy * d.OW;
      for (; p < last; p += replicas) {
        const ptr<const T> dy_pixel = dy + (n * d.F + g * d.Fg) * out_area + oy * d.OW + ox;
        const ptr<const T> x_image = x + (n * d.C + g * d.Cg) * in_area;
        const int iy = oy * d.SH, ix = ox * d.SW;
        A grad[RF];
#pragma unroll
        for (int i = 0; i < RF; ++i) grad[i] = load(dy_pixel + filter_at[i]);
#pragma unroll
        for (int j = 0; j < RC; ++j) {
          const int y = iy + tap_y[j], xx = ix + tap_x[j];
          const A v = static_cast<unsigned>(y) < static_cast<unsigned>(d.H) &&
                              static_cast<unsigned>(xx) < static_cast<unsigned>(d.W)
                          ? load(x_image + channel_at[j] + y * d.W + xx)
                          : A(0);
#pragma unroll
          for (int i = 0; i < RF; ++i) acc[i][j] += grad[i] * v;
        }
        ox += step_x;
        if (ox >= d.OW) {
          ox -= d.OW;
          ++oy;
        }
        oy += step_y;
        if (oy >= d.OH) {
          oy -= d.OH;
          ++n;
        }
        n += step_n;
      }
      // Replica r of this register tile (r < RC) adds pair r over the replicas.
      const int ct = ct_first + replica;
      for (int i = 0; i < RF; ++i) {
#pragma unroll
        for (int j = 0; j < RC; ++j) sums[j * kThreads + tid] = acc[i][j];
        __syncthreads();
        const int f = f_first + i;
        if (replica < RC && f < d.Fg && ct < d.CT) {
          A sum = A(0);
          for (int r = 0; r < replicas; ++r) sum += sums[replica * kThreads + owner + r * owners];
          const int weight = (g * d.Fg + f) * d.CT + ct;  // = ((filter * Cg) + c) * KK + tap
          if (d.chunks == 1) {
            store(dw + weight, sum);
          } else {
            partial[int64_t{chunk} * d.F * d.CT + weight] = sum;
          }
        }
        __syncthreads();
      }
    }
  }
}

// ---- planning -------------------------------------------------------------------

int ceil_div(int a, int b) { return (a + b - 1) / b; }

Conv geometry(const igc_group_conv_geometry& g) {
  Conv d{};
  d.N = static_cast<int>(g.batch);
  d.C = static_cast<int>(g.channels);
  d.H = static_cast<int>(g.height);
  d.W = static_cast<int>(g.width);
  d.F = static_cast<int>(g.filters);
  d.G = static_cast<int>(g.groups);
  d.KH = static_cast<int>(g.kernel_h);
  d.KW = static_cast<int>(g.kernel_w);
  d.SH = static_cast<int>(g.stride_h);
  d.SW = static_cast<int>(g.stride_w);
  d.PH = static_cast<int>(g.pad_h);
  d.PW = static_cast<int>(g.pad_w);
  d.OH = static_cast<int>(igc_group_conv_out_size(g.height, g.kernel_h, g.stride_h, g.pad_h));
  d.OW = static_cast<int>(igc_group_conv_out_size(g.width, g.kernel_w, g.stride_w, g.pad_w));
  d.Cg = d.C / d.G;
  d.Fg = d.F / d.G;
  d.KK = d.KH * d.KW;
  return d;
}

// A tile of up to 256 pixels of a rows x cols map, at most 32 wide, that
// `fits(th, tw)` accepts; false when even one pixel does not fit.
template <typename Fits>
bool choose_tile(Conv* d, int rows, int cols, Fits fits) {
  int tw = cols < 32 ? cols : 32;
  int th = kThreads / tw < rows ? kThreads / tw : rows;
  while (!fits(th, tw)) {
    if (th == 1 && tw == 1) return false;
    if (th >= tw) {
      th = (th + 1) / 2;
    } else {
      tw = (tw + 1) / 2;
    }
  }
  d->TH = th;
  d->TW = tw;
  d->threads = ceil_div(th * tw, 32) * 32;
  d->tiles_h = ceil_div(rows, th);
  d->tiles_w = ceil_div(cols, tw);
  return true;
}

// Accumulators that fit the staging memory.
int capacity(int dtype) { return kMaxSharedBytes / igc::cuda::acc_bytes(dtype); }

// Forward: FT filters per thread, `step` channels per staged step.
bool plan_forward(Conv* d, int ft, int dtype) {
  const int cap = capacity(dtype);
  return choose_tile(d, d->OH, d->OW, [&](int th, int tw) {
    d->IH = (th - 1) * d->SH + d->KH;
    d->IW = (tw - 1) * d->SW + d->KW;
    const int area = d->IH * d->IW, threads = ceil_div(th * tw, 32) * 32;
    if (area > kLoadsPerThread * threads) return false;
    d->step = d->Cg;
    while (d->step > 1 && d->step * (area + ft * d->KK) > cap) d->step = ceil_div(d->step, 2);
    return d->step * (area + ft * d->KK) <= cap;
  });
}

// Dynamic shared memory of forward_kernel<T, FT>: [step][IH][IW] + [FT][step][KK].
size_t forward_shared_bytes(const Conv& d, int ft, int dtype) {
  return static_cast<size_t>(d.step) * (d.IH * d.IW + ft * d.KK) * igc::cuda::acc_bytes(dtype);
}

// Data gradient: CT channels per thread, `step` filters per staged step.
bool plan_backward_data(Conv* d, int ct, int dtype) {
  const int cap = capacity(dtype);
  return choose_tile(d, d->H, d->W, [&](int th, int tw) {
    // The most output rows a window of th input rows can touch.
    d->DH = (th + d->KH - 2) / d->SH + 1;
    d->DW = (tw + d->KW - 2) / d->SW + 1;
    const int area = d->DH * d->DW, threads = ceil_div(th * tw, 32) * 32;
    if (area > kLoadsPerThread * threads) return false;
    d->step = d->Fg;
    while (d->step > 1 && d->step * (area + ct * d->KK) > cap) d->step = ceil_div(d->step, 2);
    return d->step * (area + ct * d->KK) <= cap;
  });
}

// Dynamic shared memory of backward_data_kernel<T, CT>: [step][DH][DW] + [step][CT][KK].
size_t backward_data_shared_bytes(const Conv& d, int ct, int dtype) {
  return static_cast<size_t>(d.step) * (d.DH * d.DW + ct * d.KK) * igc::cuda::acc_bytes(dtype);
}

// Weight gradient: filters per register tile, up to 4 (2 in float64, whose 4 x
// kTapsPerThread sums do not fit the registers of 2 blocks per multiprocessor).
int weight_filters_per_thread(int filters, int dtype) {
  const int most = dtype == IGC_FLOAT64 ? 2 : 4;
  return filters >= most ? most : filters >= 2 ? 2 : 1;
}

// Weight gradient: register tiles per block (at most kMaxOwners, as few element
// tiles per group as that allows, split evenly) and chunks of pixels enough to fill
// the GPU, each with kMinPixelsPerReplica pixels per replica, within the
// workspace limit.
void plan_backward_weight(Conv* d, int dtype) {
  d->CT = d->Cg * d->KK;
  const int rf = weight_filters_per_thread(d->Fg, dtype);
  const int need_f = ceil_div(d->Fg, rf), need_c = ceil_div(d->CT, kTapsPerThread);
  d->owners_f = need_f < 4 || need_f * need_c <= kMaxOwners ? need_f : 4;
  d->tiles_f = ceil_div(need_f, d->owners_f);
  d->owners_f = ceil_div(need_f, d->tiles_f);
  const int most_c = kMaxOwners / d->owners_f;
  d->tiles_c = ceil_div(need_c, most_c);
  d->owners_c = ceil_div(need_c, d->tiles_c);
  d->FB = d->owners_f * rf;
  d->CTB = d->owners_c * kTapsPerThread;
  const int64_t pixels = int64_t{d->N} * d->OH * d->OW;
  const int64_t replicas = kThreads / (d->owners_f * d->owners_c);
  const int64_t per_chunk = int64_t{d->G} * d->tiles_f * d->tiles_c;
  int64_t chunks = (kWeightBlocksWanted + per_chunk - 1) / per_chunk;
  const int64_t weight_bytes = int64_t{d->F} * d->CT * igc::cuda::acc_bytes(dtype);
  const int64_t by_work = pixels / (replicas * kMinPixelsPerReplica);
  if (chunks > by_work) chunks = by_work;
  if (chunks > kMaxWorkspaceBytes / weight_bytes) chunks = kMaxWorkspaceBytes / weight_bytes;
  d->chunks = static_cast<int>(chunks < 1 ? 1 : chunks);
}

// Dynamic shared memory of weight_grad_kernel: [kTapsPerThread][kThreads] sums.
size_t weight_grad_shared_bytes(int dtype) {
  return static_cast<size_t>(kTapsPerThread) * kThreads * igc::cuda::acc_bytes(dtype);
}

int64_t workspace_bytes(const Conv& d, int dtype) {
  return igc::cuda::chunk_workspace_bytes(d.chunks, int64_t{d.F} * d.CT, dtype);
}

// Registers per thread: up to 8 filters (forward) or channels (data grad).
int per_thread(int count) { return count >= 8 ? 8 : count >= 4 ? 4 : count >= 2 ? 2 : 1; }

template <typename T, int R>
void launch_forward(const Conv& d, const void* x, const void* w, void* y, int dtype,
                    cudaStream_t s) {
  const dim3 grid(igc::cuda::grid_cap(int64_t{d.tiles_h} * d.tiles_w, igc::cuda::kMaxGridX),
                  igc::cuda::grid_cap(int64_t{d.G} * ceil_div(d.Fg, R)), igc::cuda::grid_cap(d.N));
  IGC_LAUNCH((forward_kernel<T, R>), grid, dim3(d.threads), forward_shared_bytes(d, R, dtype), s, d,
             static_cast<const T*>(x), static_cast<const T*>(w), static_cast<T*>(y));
}

template <typename T, int R>
void launch_backward_data(const Conv& d, const void* dy, const void* w, void* dx, int dtype,
                          cudaStream_t s) {
  const dim3 grid(igc::cuda::grid_cap(int64_t{d.tiles_h} * d.tiles_w, igc::cuda::kMaxGridX),
                  igc::cuda::grid_cap(int64_t{d.G} * ceil_div(d.Cg, R)), igc::cuda::grid_cap(d.N));
  IGC_LAUNCH((backward_data_kernel<T, R>), grid, dim3(d.threads),
             backward_data_shared_bytes(d, R, dtype), s, d, static_cast<const T*>(dy),
             static_cast<const T*>(w), static_cast<T*>(dx));
}

template <typename T, int RF>
void launch_backward_weight(const Conv& d, const void* dy, const void* x, void* dw, void* workspace,
                            int dtype, cudaStream_t s) {
  using A = typename Acc<T>::type;
  const dim3 grid(igc::cuda::grid_cap(d.chunks, igc::cuda::kMaxGridX),
                  igc::cuda::grid_cap(int64_t{d.G} * d.tiles_f * d.tiles_c));
  A* partial = static_cast<A*>(workspace);
  IGC_LAUNCH((weight_grad_kernel<T, RF>), grid, dim3(kThreads), weight_grad_shared_bytes(dtype), s,
             d, static_cast<const T*>(dy), static_cast<const T*>(x), partial, static_cast<T*>(dw));
  if (d.chunks > 1) {
    const int elements = d.F * d.CT;
    IGC_LAUNCH(igc::cuda::sum_chunks_kernel<T>, dim3(igc::cuda::grid_blocks(elements, kThreads)),
               dim3(kThreads), 0, s, elements, d.chunks, static_cast<const A*>(partial),
               static_cast<T*>(dw));
  }
}

// fn(R) with R = per_thread(count) as a compile-time constant (8, 4, 2 or 1).
template <typename Fn>
void with_registers(int count, Fn fn) {
  switch (per_thread(count)) {
    case 8: fn(std::integral_constant<int, 8>()); break;
    case 4: fn(std::integral_constant<int, 4>()); break;
    case 2: fn(std::integral_constant<int, 2>()); break;
    default: fn(std::integral_constant<int, 1>());
  }
}

// fn(RF) with RF = weight_filters_per_thread(filters, dtype) as a compile-time
// constant (no 4 in float64).
template <typename T, typename Fn>
void with_weight_filters(int filters, int dtype, Fn fn) {
  switch (weight_filters_per_thread(filters, dtype)) {
    case 4:
      if constexpr (sizeof(typename Acc<T>::type) == 4) fn(std::integral_constant<int, 4>());
      break;
    case 2: fn(std::integral_constant<int, 2>()); break;
    default: fn(std::integral_constant<int, 1>());
  }
}

template <typename T>
int launch(Pass pass, Conv d, const void* a, const void* b, void* out, int dtype, void* workspace,
           int64_t workspace_size, cudaStream_t s) {
  if (pass == Pass::kForward) {
    if (!plan_forward(&d, per_thread(d.Fg), dtype)) return IGC_TOO_LARGE;
    with_registers(d.Fg,
                   [&](auto r) { launch_forward<T, decltype(r)::value>(d, a, b, out, dtype, s); });
  } else if (pass == Pass::kBackwardData) {
    if (!plan_backward_data(&d, per_thread(d.Cg), dtype)) return IGC_TOO_LARGE;
    with_registers(
        d.Cg, [&](auto r) { launch_backward_data<T, decltype(r)::value>(d, a, b, out, dtype, s); });
  } else {
    plan_backward_weight(&d, dtype);
    const int64_t bytes = workspace_bytes(d, dtype);
    if (bytes > 0 && (workspace == nullptr || workspace_size < bytes)) return IGC_BAD_WORKSPACE;
    with_weight_filters<T>(d.Fg, dtype, [&](auto r) {
      launch_backward_weight<T, decltype(r)::value>(d, a, b, out, workspace, dtype, s);
    });
  }
  return igc::cuda::finish();
}

int run(Pass pass, const igc_group_conv_geometry* g, const void* a, const void* b, void* out,
        int dtype, void* workspace, int64_t workspace_size, void* stream) {
  const int status = igc_group_conv_check(g, dtype);
  if (status != IGC_OK) return status;
  if (g->batch > 0 && (a == nullptr || b == nullptr || out == nullptr)) return IGC_BAD_POINTER;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (g->batch == 0) {  // nothing to read; the weight gradient is zero
    if (pass != Pass::kBackwardWeight) return IGC_OK;
    if (out == nullptr) return IGC_BAD_POINTER;
    const int64_t bytes =
        g->filters * (g->channels / g->groups) * g->kernel_h * g->kernel_w * igc_dtype_size(dtype);
    return igc::cuda::status(cudaMemsetAsync(out, 0, bytes, s));
  }
  const Conv d = geometry(*g);
  switch (dtype) {
    case IGC_FLOAT32: return launch<float>(pass, d, a, b, out, dtype, workspace, workspace_size, s);
    case IGC_FLOAT64:
      return launch<double>(pass, d, a, b, out, dtype, workspace, workspace_size, s);
    default: return launch<__half>(pass, d, a, b, out, dtype, workspace, workspace_size, s);
  }
}

}  // namespace

extern "C" int igc_group_conv_forward_cuda(const igc_group_conv_geometry* g, const void* data,
                                           const void* weight, void* out, int dtype, void* stream) {
  return run(Pass::kForward, g, data, weight, out, dtype, nullptr, 0, stream);
}

extern "C" int igc_group_conv_backward_data_cuda(const igc_group_conv_geometry* g,
                                                 const void* out_grad, const void* weight,
                                                 void* data_grad, int dtype, void* stream) {
  return run(Pass::kBackwardData, g, out_grad, weight, data_grad, dtype, nullptr, 0, stream);
}

extern "C" int64_t igc_group_conv_backward_weight_cuda_workspace(const igc_group_conv_geometry* g,
                                                                 int dtype) {
  if (igc_group_conv_check(g, dtype) != IGC_OK) return -1;
  if (g->batch == 0) return 0;
  Conv d = geometry(*g);
  plan_backward_weight(&d, dtype);
  return workspace_bytes(d, dtype);
}

extern "C" int igc_group_conv_backward_weight_cuda(const igc_group_conv_geometry* g,
                                                   const void* out_grad, const void* data,
                                                   void* weight_grad, int dtype, void* workspace,
                                                   int64_t workspace_size, void* stream) {
  return run(Pass::kBackwardWeight, g, out_grad, data, weight_grad, dtype, workspace,
             workspace_size, stream);
}
