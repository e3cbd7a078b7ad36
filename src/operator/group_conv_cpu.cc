// GroupConvolution on the CPU: the C ABI of group_conv_kernels.h and the checks
// both devices share. The kernels are in group_conv_cpu_impl.h, run in the
// CPU's instruction-set variant (cpu_isa.h).
#include <string.h>

#include "cpu_isa.h"
#include "group_conv_kernels.h"

extern "C" int64_t igc_group_conv_out_size(int64_t in, int64_t kernel, int64_t stride,
                                           int64_t pad) {
  if (in < 0 || kernel < 1 || stride < 1 || pad < 0) return -1;
  if (in > IGC_MAX_ELEMENTS || kernel > IGC_MAX_ELEMENTS || pad > IGC_MAX_ELEMENTS) return -1;
  const int64_t span = in + 2 * pad - kernel;
  return span < 0 ? -1 : span / stride + 1;
}

extern "C" int igc_group_conv_check(const igc_group_conv_geometry* g, int dtype) {
  if (dtype != IGC_FLOAT32 && dtype != IGC_FLOAT64 && dtype != IGC_FLOAT16) return IGC_BAD_DTYPE;
  if (g == nullptr) return IGC_BAD_POINTER;
  const int64_t sizes[] = {g->batch,    g->channels, g->height,   g->width,
                           g->filters,  g->groups,   g->kernel_h, g->kernel_w,
                           g->stride_h, g->stride_w, g->pad_h,    g->pad_w};
  for (int64_t s : sizes) {
    if (s < 0) return IGC_BAD_SHAPE;
    if (s > IGC_MAX_ELEMENTS) return IGC_TOO_LARGE;
  }
  if (g->groups < 1 || g->channels < 1 || g->filters < 1 || g->height < 1 || g->width < 1)
    return IGC_BAD_SHAPE;
  if (g->channels % g->groups != 0 || g->filters % g->groups != 0) return IGC_BAD_SHAPE;
  const int64_t oh = igc_group_conv_out_size(g->height, g->kernel_h, g->stride_h, g->pad_h);
  const int64_t ow = igc_group_conv_out_size(g->width, g->kernel_w, g->stride_w, g->pad_w);
  if (oh < 1 || ow < 1) return IGC_BAD_SHAPE;
  // Every tensor, and one padded input channel, within IGC_MAX_ELEMENTS.
  const int64_t data[] = {g->batch, g->channels, g->height, g->width};
  const int64_t weight[] = {g->filters, g->channels / g->groups, g->kernel_h, g->kernel_w};
  const int64_t out[] = {g->batch, g->filters, oh, ow};
  const int64_t padded[] = {g->height + 2 * g->pad_h, g->width + 2 * g->pad_w};
  if (igc::checked_product(data, 4) < 0 || igc::checked_product(weight, 4) < 0 ||
      igc::checked_product(out, 4) < 0 || igc::checked_product(padded, 2) < 0)
    return IGC_TOO_LARGE;
  return IGC_OK;
}

namespace {

int check_cpu(const igc_group_conv_geometry* g, const void* a, const void* b, const void* c,
              int dtype) {
  if (dtype == IGC_FLOAT16) return IGC_BAD_DTYPE;  // float16 runs on the GPU only
  const int status = igc_group_conv_check(g, dtype);
  if (status != IGC_OK) return status;
  if (g->batch > 0 && (a == nullptr || b == nullptr || c == nullptr)) return IGC_BAD_POINTER;
  return IGC_OK;
}

int run(igc::Pass pass, const igc_group_conv_geometry* g, const void* a, const void* b, void* c,
        int dtype, const void* bias = nullptr, int activation = IGC_ACT_NONE) {
  const int status = check_cpu(g, a, b, c, dtype);
  if (status != IGC_OK) return status;
  if (activation != IGC_ACT_NONE && activation != IGC_ACT_RELU) return IGC_BAD_ACTIVATION;
  if (g->batch == 0) {
    if (pass != igc::Pass::kBackwardWeight) return IGC_OK;  // nothing to compute
    // No images: the weight gradient is zero, not untouched.
    if (c == nullptr) return IGC_BAD_POINTER;
    const size_t elements = g->filters * (g->channels / g->groups) * g->kernel_h * g->kernel_w;
    memset(c, 0, elements * igc_dtype_size(dtype));
    return IGC_OK;
  }
  if (pass == igc::Pass::kForward)
    return igc::cpu::variant().group_conv_forward(*g, a, b, bias, activation, c, dtype);
  return igc::cpu::variant().group_conv[static_cast<int>(pass)](*g, a, b, c, dtype);
}

}  // namespace

extern "C" int igc_group_conv_forward_cpu(const igc_group_conv_geometry* g, const void* data,
                                          const void* weight, void* out, int dtype) {
  return run(igc::Pass::kForward, g, data, weight, out, dtype);
}

extern "C" int igc_group_conv_forward_bias_act_cpu(const igc_group_conv_geometry* g,
                                                   const void* data, const void* weight,
                                                   const void* bias, int activation, void* out,
                                                   int dtype) {
  return run(igc::Pass::kForward, g, data, weight, out, dtype, bias, activation);
}

extern "C" int igc_group_conv_backward_data_cpu(const igc_group_conv_geometry* g,
                                                const void* out_grad, const void* weight,
                                                void* data_grad, int dtype) {
  return run(igc::Pass::kBackwardData, g, out_grad, weight, data_grad, dtype);
}

extern "C" int igc_group_conv_backward_weight_cpu(const igc_group_conv_geometry* g,
                                                  const void* out_grad, const void* data,
                                                  void* weight_grad, int dtype) {
  return run(igc::Pass::kBackwardWeight, g, out_grad, data, weight_grad, dtype);
}
