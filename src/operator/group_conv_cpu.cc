// CPU grouped convolution: the C ABI of group_conv_kernels.h, argument checks,
// and the choice of instruction-set variant. The kernels are in
// group_conv_cpu_impl.h; this file compiles its portable variant.
#include <stdlib.h>  // getenv
#include <string.h>  // strcmp, memset

#define IGC_GC_ISA generic
#include "group_conv_cpu_impl.h"

namespace igc_gc {

using Entry = int (*)(const igc_conv_geometry&, const void*, const void*, void*, int);

using InterleavedEntry = int (*)(int, const void*, const void*, void*, int64_t, int64_t,
                                 int64_t, int64_t, int64_t, int);

struct Variant {
  const char* name;
  Entry forward, backward_data, backward_weight;
  InterleavedEntry interleaved;
};

#ifdef IGC_GC_X86_VARIANTS
// Defined in group_conv_cpu_avx2.cc and group_conv_cpu_avx512.cc.
#define IGC_GC_DECLARE(isa)                                                                  \
  namespace isa {                                                                            \
  int forward_entry(const igc_conv_geometry&, const void*, const void*, void*, int);         \
  int backward_data_entry(const igc_conv_geometry&, const void*, const void*, void*, int);   \
  int backward_weight_entry(const igc_conv_geometry&, const void*, const void*, void*, int); \
  int interleaved_entry(int, const void*, const void*, void*, int64_t, int64_t, int64_t,     \
                        int64_t, int64_t, int);                                              \
  }
IGC_GC_DECLARE(avx2)
IGC_GC_DECLARE(avx512)
#undef IGC_GC_DECLARE
#endif

namespace {

// IGC_MX_CPU_ISA=generic|avx2 picks a lesser variant than the CPU allows (for
// tests and comparisons); it never picks one the CPU lacks.
bool allowed(const char* name) {
  const char* wanted = getenv("IGC_MX_CPU_ISA");
  if (wanted == nullptr || *wanted == '\0') return true;
  const char* order[] = {"generic", "avx2", "avx512"};
  int wanted_rank = 2, rank = 0;
  for (int k = 0; k < 3; ++k) {
    if (strcmp(wanted, order[k]) == 0) wanted_rank = k;
    if (strcmp(name, order[k]) == 0) rank = k;
  }
  return rank <= wanted_rank;
}

Variant choose() {
#ifdef IGC_GC_X86_VARIANTS
  __builtin_cpu_init();
  if (allowed("avx512") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma"))
    return {"avx512", avx512::forward_entry, avx512::backward_data_entry,
            avx512::backward_weight_entry, avx512::interleaved_entry};
  if (allowed("avx2") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return {"avx2", avx2::forward_entry, avx2::backward_data_entry, avx2::backward_weight_entry,
            avx2::interleaved_entry};
#endif
  return {"generic", generic::forward_entry, generic::backward_data_entry,
          generic::backward_weight_entry, generic::interleaved_entry};
}

const Variant& variant() {
  static const Variant chosen = choose();
  return chosen;
}

bool empty(const igc_conv_geometry& g) { return g.batch == 0; }

}  // namespace

// The interleaved 1x1 convolution's direct path (igc_conv_cpu.cc decides when).
int interleaved_direct(int pass, const void* a, const void* b, void* c, int64_t batch,
                       int64_t channels, int64_t inner, int64_t primary, int64_t groups,
                       int dtype) {
  return variant().interleaved(pass, a, b, c, batch, channels, inner, primary, groups, dtype);
}

}  // namespace igc_gc

extern "C" int64_t igc_conv_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
  if (in < 0 || kernel < 1 || stride < 1 || pad < 0) return -1;
  const int64_t span = in + 2 * pad - kernel;
  return span < 0 ? -1 : span / stride + 1;
}

extern "C" int igc_group_conv_check(const igc_conv_geometry* g, int dtype) {
  if (dtype != IGC_FLOAT32 && dtype != IGC_FLOAT64 && dtype != IGC_FLOAT16) return IGC_BAD_DTYPE;
  if (g == nullptr) return IGC_BAD_POINTER;
  // Sizes beyond 2^31 per axis are not convolutions anyone runs; refusing them
  // keeps every index product far from overflow.
  const int64_t limit = int64_t{1} << 31;
  const int64_t sizes[] = {g->batch, g->channels, g->height, g->width, g->filters, g->groups,
                           g->kernel_h, g->kernel_w, g->stride_h, g->stride_w, g->pad_h,
                           g->pad_w};
  for (int64_t s : sizes) {
    if (s < 0 || s >= limit) return IGC_BAD_SHAPE;
  }
  if (g->groups < 1 || g->channels < 1 || g->filters < 1) return IGC_BAD_SHAPE;
  if (g->channels % g->groups != 0 || g->filters % g->groups != 0) return IGC_BAD_SHAPE;
  if (igc_conv_out_size(g->height, g->kernel_h, g->stride_h, g->pad_h) < 1 ||
      igc_conv_out_size(g->width, g->kernel_w, g->stride_w, g->pad_w) < 1)
    return IGC_BAD_SHAPE;
  return IGC_OK;
}

namespace {

int check_cpu(const igc_conv_geometry* g, const void* a, const void* b, const void* c,
              int dtype) {
  if (dtype == IGC_FLOAT16) return IGC_BAD_DTYPE;  // float16 runs on the GPU only
  const int status = igc_group_conv_check(g, dtype);
  if (status != IGC_OK) return status;
  if (!igc_gc::empty(*g) && (a == nullptr || b == nullptr || c == nullptr)) return IGC_BAD_POINTER;
  return IGC_OK;
}

}  // namespace

extern "C" int igc_group_conv_forward_cpu(const igc_conv_geometry* g, const void* data,
                                          const void* weight, void* out, int dtype) {
  const int status = check_cpu(g, data, weight, out, dtype);
  if (status != IGC_OK || igc_gc::empty(*g)) return status;
  return igc_gc::variant().forward(*g, data, weight, out, dtype);
}

extern "C" int igc_group_conv_backward_data_cpu(const igc_conv_geometry* g,
                                                const void* out_grad, const void* weight,
                                                void* data_grad, int dtype) {
  const int status = check_cpu(g, out_grad, weight, data_grad, dtype);
  if (status != IGC_OK || igc_gc::empty(*g)) return status;
  return igc_gc::variant().backward_data(*g, out_grad, weight, data_grad, dtype);
}

extern "C" int igc_group_conv_backward_weight_cpu(const igc_conv_geometry* g,
                                                  const void* out_grad, const void* data,
                                                  void* weight_grad, int dtype) {
  const int status = check_cpu(g, out_grad, data, weight_grad, dtype);
  if (status != IGC_OK) return status;
  if (igc_gc::empty(*g)) {  // no images: the gradient is zero, not untouched
    if (weight_grad == nullptr) return IGC_BAD_POINTER;
    const size_t elements = g->filters * (g->channels / g->groups) * g->kernel_h * g->kernel_w;
    memset(weight_grad, 0, elements * (dtype == IGC_FLOAT64 ? 8 : 4));
    return IGC_OK;
  }
  return igc_gc::variant().backward_weight(*g, out_grad, data, weight_grad, dtype);
}

extern "C" const char* igc_group_conv_cpu_isa(void) { return igc_gc::variant().name; }
