// Registers `GroupConvolution(data, weight, kernel, stride, pad, num_filter,
// num_group, ...)` with MXNet through the extension API: MXNet Convolution's
// parameters and weight layout (NCHW, no bias, no dilation), so that the two are
// interchangeable and checkpoints carry over. The work is done by the
// group_conv_{cpu,cuda} kernels.
#include <climits>
#include <string>
#include <vector>

#include "group_conv_kernels.h"
#include "op_utils.h"

using namespace mxnet::ext;  // NOLINT: REGISTER_OP expects the API's names unqualified

namespace {

constexpr char kOp[] = "GroupConvolution";

struct Params {
  long long kernel[2], stride[2] = {1, 1}, pad[2] = {0, 0};
  long long num_filter, num_group;
};

// Parses MXNet's tuple text: "(3, 3)", "[3,3]" or "(3,3)"; "()" or "None" leave
// an optional key at its default. Exactly two values: the op is 2-D only.
bool parse_pair(const igc::Attrs& attrs, const char* key, bool required, long long lo,
                long long out[2]) {
  auto it = attrs.find(key);
  if (it == attrs.end()) {
    if (!required) return true;
    igc::error_message(kOp) << "missing required parameter '" << key << "'";
    return false;
  }
  const std::string& text = it->second;
  if (!required && text == "None") return true;
  std::vector<long long> values;
  std::string token;
  bool ok = true;
  for (size_t k = 0; k <= text.size() && ok; ++k) {
    const char c = k < text.size() ? text[k] : ',';
    if (c == '(' || c == ')' || c == '[' || c == ']' || c == ' ') continue;
    if (c != ',') {
      ok = (c >= '0' && c <= '9') || (c == '-' && token.empty());
      token += c;
      continue;
    }
    if (token.empty()) continue;
    ok = token != "-" && token.size() < 12;
    if (ok) values.push_back(std::stoll(token));
    token.clear();
  }
  if (!ok) {
    igc::error_message(kOp) << "parameter " << key << "='" << text
                            << "' is not a tuple of integers";
    return false;
  }
  if (values.empty() && !required && (text == "()" || text == "[]")) return true;
  if (values.size() != 2) {
    igc::error_message(kOp) << "parameter " << key << "='" << text
                            << "' must have 2 values: GroupConvolution is 2-D (NCHW) only";
    return false;
  }
  for (long long v : values) {
    if (v < lo || v > INT_MAX) {
      igc::error_message(kOp) << "parameter " << key << "='" << text << "' is out of range: "
                              << "each value must be >= " << lo;
      return false;
    }
  }
  out[0] = values[0];
  out[1] = values[1];
  return true;
}

// Accepted for symmetry with Convolution as long as they describe what this op
// does: no bias, no dilation, NCHW. cudnn_* and workspace only tune
// Convolution's own implementations.
bool check_convolution_compat(const igc::Attrs& attrs) {
  auto it = attrs.find("no_bias");
  if (it != attrs.end() && it->second != "True" && it->second != "true" && it->second != "1") {
    igc::error_message(kOp) << "no_bias='" << it->second
                            << "' is not supported: GroupConvolution has no bias input; "
                               "pass no_bias=True (or leave it out) and add a bias separately";
    return false;
  }
  long long dilate[2] = {1, 1};
  if (!parse_pair(attrs, "dilate", false, 1, dilate)) return false;
  if (dilate[0] != 1 || dilate[1] != 1) {
    igc::error_message(kOp) << "dilate='" << attrs.at("dilate")
                            << "' is not supported: only dilate=(1, 1)";
    return false;
  }
  it = attrs.find("layout");
  if (it != attrs.end() && it->second != "NCHW" && it->second != "None") {
    igc::error_message(kOp) << "layout='" << it->second << "' is not supported: only NCHW";
    return false;
  }
  long long workspace;
  return igc::parse_int_param(kOp, attrs, "workspace", false, 1024, 0, LLONG_MAX, &workspace);
}

bool parse_params(const igc::Attrs& attrs, Params* p) {
  return igc::check_known_params(kOp, attrs,
                                 {"kernel", "stride", "pad", "num_filter", "num_group", "no_bias",
                                  "dilate", "layout", "workspace", "cudnn_tune", "cudnn_off"}) &&
         check_convolution_compat(attrs) && parse_pair(attrs, "kernel", true, 1, p->kernel) &&
         parse_pair(attrs, "stride", false, 1, p->stride) &&
         parse_pair(attrs, "pad", false, 0, p->pad) &&
         igc::parse_int_param(kOp, attrs, "num_filter", true, 0, 1, INT_MAX, &p->num_filter) &&
         igc::parse_int_param(kOp, attrs, "num_group", false, 1, 1, INT_MAX, &p->num_group);
}

template <typename Dims>
std::string shape_text(const Dims& shape) {
  std::string s = "(";
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? "," : "") + std::to_string(shape[k]);
  return s + ")";
}

// Validates the data shape against the parameters and fills the geometry.
template <typename Dims>
bool make_geometry(const Params& p, const Dims& data, igc_conv_geometry* g) {
  if (data.size() != 4) {
    igc::error_message(kOp) << "data must be 4-D (N, C, H, W), got ndim=" << data.size()
                            << " shape=" << shape_text(data);
    return false;
  }
  *g = {static_cast<int64_t>(data[0]), static_cast<int64_t>(data[1]),
        static_cast<int64_t>(data[2]), static_cast<int64_t>(data[3]),
        p.num_filter, p.num_group, p.kernel[0], p.kernel[1], p.stride[0], p.stride[1],
        p.pad[0], p.pad[1]};
  if (g->channels % g->groups != 0) {
    igc::error_message(kOp) << "channels C=" << g->channels << " of data "
                            << shape_text(data) << " is not divisible by num_group="
                            << g->groups;
    return false;
  }
  if (g->filters % g->groups != 0) {
    igc::error_message(kOp) << "num_filter=" << g->filters << " is not divisible by num_group="
                            << g->groups;
    return false;
  }
  const int64_t oh = igc_conv_out_size(g->height, g->kernel_h, g->stride_h, g->pad_h);
  const int64_t ow = igc_conv_out_size(g->width, g->kernel_w, g->stride_w, g->pad_w);
  if (oh < 1 || ow < 1) {
    igc::error_message(kOp) << "kernel=(" << p.kernel[0] << "," << p.kernel[1]
                            << ") does not fit data " << shape_text(data) << " padded by pad=("
                            << p.pad[0] << "," << p.pad[1] << ")";
    return false;
  }
  if (igc_group_conv_check(g, IGC_FLOAT32) != IGC_OK) {
    igc::error_message(kOp) << "data " << shape_text(data) << " is too large";
    return false;
  }
  return true;
}

std::vector<unsigned> weight_shape(const igc_conv_geometry& g) {
  return {static_cast<unsigned>(g.filters), static_cast<unsigned>(g.channels / g.groups),
          static_cast<unsigned>(g.kernel_h), static_cast<unsigned>(g.kernel_w)};
}

template <typename Dims>
bool check_weight(const igc_conv_geometry& g, const Dims& weight) {
  const std::vector<unsigned> want = weight_shape(g);
  bool same = weight.size() == want.size();
  for (size_t k = 0; same && k < want.size(); ++k) same = weight[k] == want[k];
  if (!same) {
    igc::error_message(kOp) << "weight shape " << shape_text(weight) << " does not match "
                            << shape_text(want)
                            << " = (num_filter, C / num_group, kernel_h, kernel_w)";
  }
  return same;
}

bool supported_dtype(int dtype) {
#ifdef IGC_WITH_CUDA
  if (dtype == mxnet::ext::kFloat16) return true;  // GPU only; the CPU path says so
#endif
  return dtype == mxnet::ext::kFloat32 || dtype == mxnet::ext::kFloat64;
}

MXReturnValue parse_attrs(const igc::Attrs& attrs, int* num_in, int* num_out) {
  *num_in = 2;
  *num_out = 1;
  Params p;
  return parse_params(attrs, &p) ? MX_SUCCESS : MX_FAIL;
}

MXReturnValue infer_type(const igc::Attrs&, std::vector<int>* in_types,
                         std::vector<int>* out_types) {
  return igc::infer_shared_dtype(kOp, in_types, out_types, supported_dtype,
                                 "float32 or float64 (float16 on GPU)");
}

MXReturnValue infer_shape(const igc::Attrs& attrs,
                          std::vector<std::vector<unsigned int>>* in_shapes,
                          std::vector<std::vector<unsigned int>>* out_shapes) {
  Params p;
  igc_conv_geometry g;
  if (!parse_params(attrs, &p) || !make_geometry(p, in_shapes->at(0), &g)) return MX_FAIL;
  std::vector<unsigned int>& weight = in_shapes->at(1);
  if (weight.empty()) weight = weight_shape(g);  // unknown: a fresh parameter
  if (!check_weight(g, weight)) return MX_FAIL;
  out_shapes->at(0) = {static_cast<unsigned>(g.batch), static_cast<unsigned>(g.filters),
                       static_cast<unsigned>(
                           igc_conv_out_size(g.height, g.kernel_h, g.stride_h, g.pad_h)),
                       static_cast<unsigned>(
                           igc_conv_out_size(g.width, g.kernel_w, g.stride_w, g.pad_w))};
  return MX_SUCCESS;
}

enum class Pass { kForward, kBackwardData, kBackwardWeight };

// One kernel call on the device of `a`. Inputs are (a, b) -> out as in
// group_conv_kernels.h.
MXReturnValue run(Pass pass, const igc_conv_geometry& g, const MXTensor& a, const MXTensor& b,
                  MXTensor* out, const OpResource& res) {
  const int dtype = a.dtype;
  int status;
  if (a.ctx.dev_type == "gpu") {
#ifdef IGC_WITH_CUDA
    void* stream = res.get_cuda_stream();
    switch (pass) {
      case Pass::kForward:
        status = igc_group_conv_forward_cuda(&g, a.data_ptr, b.data_ptr, out->data_ptr, dtype,
                                             stream);
        break;
      case Pass::kBackwardData:
        status = igc_group_conv_backward_data_cuda(&g, a.data_ptr, b.data_ptr, out->data_ptr,
                                                   dtype, stream);
        break;
      default:
        status = igc_group_conv_backward_weight_cuda(&g, a.data_ptr, b.data_ptr, out->data_ptr,
                                                     dtype, stream);
    }
    return igc::kernel_result(kOp, status, igc_last_group_conv_cuda_error());
#else
    return igc::no_cuda(kOp);
#endif
  } else {
    if (dtype == mxnet::ext::kFloat16) {
      igc::error_message(kOp) << "float16 runs on the GPU only; use float32 or float64 on CPU";
      return MX_FAIL;
    }
    switch (pass) {
      case Pass::kForward:
        status = igc_group_conv_forward_cpu(&g, a.data_ptr, b.data_ptr, out->data_ptr, dtype);
        break;
      case Pass::kBackwardData:
        status = igc_group_conv_backward_data_cpu(&g, a.data_ptr, b.data_ptr, out->data_ptr,
                                                  dtype);
        break;
      default:
        status = igc_group_conv_backward_weight_cpu(&g, a.data_ptr, b.data_ptr, out->data_ptr,
                                                    dtype);
    }
  }
  return igc::kernel_result(kOp, status);
}

// Re-validates at compute time: arrays reach forward without shape inference
// when an imperative call skips it.
bool prepare(const igc::Attrs& attrs, const MXTensor& data, const MXTensor& weight,
             igc_conv_geometry* g) {
  Params p;
  if (!parse_params(attrs, &p) || !make_geometry(p, data.shape, g) ||
      !check_weight(*g, weight.shape))
    return false;
  if (data.dtype != weight.dtype || !supported_dtype(data.dtype)) {
    igc::error_message(kOp) << "unsupported dtypes data " << igc::dtype_name(data.dtype)
                            << ", weight " << igc::dtype_name(weight.dtype);
    return false;
  }
  return true;
}

MXReturnValue forward(const igc::Attrs& attrs, std::vector<MXTensor>* inputs,
                      std::vector<MXTensor>* outputs, const OpResource& res) {
  igc_conv_geometry g;
  if (!prepare(attrs, inputs->at(0), inputs->at(1), &g)) return MX_FAIL;
  return run(Pass::kForward, g, inputs->at(0), inputs->at(1), &outputs->at(0), res);
}

// Backward inputs are (out_grad, data, weight, out); outputs (data_grad, weight_grad).
MXReturnValue backward(const igc::Attrs& attrs, std::vector<MXTensor>* inputs,
                       std::vector<MXTensor>* outputs, const OpResource& res) {
  const MXTensor& out_grad = inputs->at(0);
  const MXTensor& data = inputs->at(1);
  const MXTensor& weight = inputs->at(2);
  igc_conv_geometry g;
  if (!prepare(attrs, data, weight, &g)) return MX_FAIL;
  if (run(Pass::kBackwardData, g, out_grad, weight, &outputs->at(0), res) != MX_SUCCESS)
    return MX_FAIL;
  return run(Pass::kBackwardWeight, g, out_grad, data, &outputs->at(1), res);
}

}  // namespace

REGISTER_OP(GroupConvolution)
    .setParseAttrs(parse_attrs)
    .setInferType(infer_type)
    .setInferShape(infer_shape)
    .setForward(forward, "cpu")
    .setBackward(backward, "cpu")
#ifdef IGC_WITH_CUDA
    .setForward(forward, "gpu")
    .setBackward(backward, "gpu")
#endif
    ;
