// Registers `GroupConvolution(data, weight, [bias,] kernel, stride, pad, num_filter,
// num_group, ...)` with MXNet through the extension API: MXNet Convolution's
// parameters and weight layout (NCHW, no dilation), so that the two are
// interchangeable and checkpoints carry over. no_bias defaults to true (saved
// symbols from before the bias omit it); act_type='relu' applies a ReLU as the
// output is stored (CPU only). The work is done by the group_conv_{cpu,cuda} kernels.
#include <climits>
#include <string>
#include <vector>

#include "group_conv_kernels.h"
#include "op_utils.h"

using namespace mxnet::ext;  // NOLINT: REGISTER_OP expects the API's names unqualified

namespace {

constexpr char kOp[] = "GroupConvolution";

// Parses MXNet's tuple text: "(3, 3)", "[3,3]" or "(3,3)"; "()" or "None" leave
// an optional key at its default. Exactly two values: the op is 2-D only. Each
// value is an optional '-' and digits, with blanks only around it, so "(1 1, 1)"
// is refused as MXNet's own Convolution refuses it.
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
  auto blank = [](char c) { return c == ' ' || c == '\t'; };
  size_t begin = 0, end = text.size();
  while (begin < end && blank(text[begin])) ++begin;
  while (end > begin && blank(text[end - 1])) --end;
  if (end - begin >= 2 && ((text[begin] == '(' && text[end - 1] == ')') ||
                           (text[begin] == '[' && text[end - 1] == ']'))) {
    ++begin;
    --end;
  }
  std::vector<std::string> tokens;
  bool ok = true;
  for (size_t k = begin; k <= end && begin < end && ok; ++k) {
    size_t stop = text.find(',', k);
    if (stop == std::string::npos || stop > end) stop = end;
    size_t a = k, b = stop;
    while (a < b && blank(text[a])) ++a;
    while (b > a && blank(text[b - 1])) --b;
    // an empty last item is the trailing comma of "(3,)"; one elsewhere is an error
    if (a == b)
      ok = stop == end && !tokens.empty();
    else
      tokens.push_back(text.substr(a, b - a));
    k = stop;
  }
  bool too_large = false;
  std::vector<long long> values;
  for (size_t t = 0; t < tokens.size() && ok; ++t) {
    const std::string& token = tokens[t];
    const size_t digits = token[0] == '-' ? 1 : 0;
    ok =
        token.size() > digits && token.find_first_not_of("0123456789", digits) == std::string::npos;
    if (!ok) break;
    // longer than INT_MAX's 10 digits: out of range, whatever the digits
    too_large = too_large || token.size() - digits > 10;
    values.push_back(too_large ? LLONG_MAX : std::stoll(token));
  }
  if (!ok) {
    igc::error_message(kOp) << "parameter " << key << "='" << text
                            << "' is not a tuple of integers";
    return false;
  }
  if (values.empty() && !required) return true;
  if (values.size() != 2) {
    igc::error_message(kOp) << "parameter " << key << "='" << text
                            << "' must have 2 values: GroupConvolution is 2-D (NCHW) only";
    return false;
  }
  for (long long v : values) {
    if (v < lo || v > INT_MAX) {
      igc::error_message(kOp) << "parameter " << key << "='" << text << "' is out of range: "
                              << "each value must be in [" << lo << ", " << INT_MAX << "]";
      return false;
    }
  }
  out[0] = values[0];
  out[1] = values[1];
  return true;
}

// Accepted for symmetry with Convolution as long as they describe what this op
// does: no dilation, NCHW. cudnn_* and workspace only tune Convolution's own
// implementations.
bool check_convolution_compat(const igc::Attrs& attrs) {
  long long dilate[2] = {1, 1};
  if (!parse_pair(attrs, "dilate", false, 1, dilate)) return false;
  if (dilate[0] != 1 || dilate[1] != 1) {
    igc::error_message(kOp) << "dilate='" << attrs.at("dilate")
                            << "' is not supported: only dilate=(1, 1)";
    return false;
  }
  auto it = attrs.find("layout");
  if (it != attrs.end() && it->second != "NCHW" && it->second != "None") {
    igc::error_message(kOp) << "layout='" << it->second << "' is not supported: only NCHW";
    return false;
  }
  it = attrs.find("cudnn_tune");
  if (it != attrs.end() && it->second != "None" && it->second != "off" &&
      it->second != "limited_workspace" && it->second != "fastest") {
    igc::error_message(kOp) << "cudnn_tune='" << it->second
                            << "' is not one of None, off, limited_workspace, fastest";
    return false;
  }
  it = attrs.find("cudnn_off");
  if (it != attrs.end() && it->second != "True" && it->second != "False" && it->second != "true" &&
      it->second != "false" && it->second != "1" && it->second != "0") {
    igc::error_message(kOp) << "cudnn_off='" << it->second << "' is not a boolean";
    return false;
  }
  long long workspace;
  return igc::parse_int_param(kOp, attrs, "workspace", false, 1024, 0, LLONG_MAX, &workspace);
}

struct GroupConvolutionOp {
  static constexpr const char* kName = kOp;
  static constexpr const char* kDtypes = "float32 or float64 (float16 on GPU)";

  struct Params {
    long long kernel[2], stride[2] = {1, 1}, pad[2] = {0, 0};
    long long num_filter, num_group;
    igc::BiasAct epilogue;
  };

  static bool parse(const igc::Attrs& attrs, Params* p) {
    return igc::check_known_params(
               kOp, attrs,
               {"kernel", "stride", "pad", "num_filter", "num_group", "no_bias", "act_type",
                "dilate", "layout", "workspace", "cudnn_tune", "cudnn_off"}) &&
           igc::parse_bias_act(kOp, attrs, &p->epilogue) && check_convolution_compat(attrs) &&
           parse_pair(attrs, "kernel", true, 1, p->kernel) &&
           parse_pair(attrs, "stride", false, 1, p->stride) &&
           parse_pair(attrs, "pad", false, 0, p->pad) &&
           igc::parse_int_param(kOp, attrs, "num_filter", true, 0, 1, INT_MAX, &p->num_filter) &&
           igc::parse_int_param(kOp, attrs, "num_group", false, 1, 1, INT_MAX, &p->num_group);
  }

  static int num_inputs(const Params& p) { return p.epilogue.bias ? 3 : 2; }

  static bool supported_dtype(int dtype) { return igc::float_dtype(dtype); }

  // Validates the data shape against the parameters and fills the geometry.
  template <typename Dims>
  static bool make_geometry(const Params& p, const Dims& data, igc_group_conv_geometry* g) {
    if (!igc::check_dims(kOp, "data", data, 4, "(N, C, H, W)")) return false;
    *g = {static_cast<int64_t>(data[0]),
          static_cast<int64_t>(data[1]),
          static_cast<int64_t>(data[2]),
          static_cast<int64_t>(data[3]),
          p.num_filter,
          p.num_group,
          p.kernel[0],
          p.kernel[1],
          p.stride[0],
          p.stride[1],
          p.pad[0],
          p.pad[1]};
    if (g->channels % g->groups != 0) {
      igc::error_message(kOp) << "channels C=" << g->channels << " of data "
                              << igc::shape_text(data)
                              << " is not divisible by num_group=" << g->groups;
      return false;
    }
    if (g->filters % g->groups != 0) {
      igc::error_message(kOp) << "num_filter=" << g->filters
                              << " is not divisible by num_group=" << g->groups;
      return false;
    }
    if (out_size(*g, 0) < 1 || out_size(*g, 1) < 1) {
      igc::error_message(kOp) << "kernel=(" << p.kernel[0] << "," << p.kernel[1]
                              << ") does not fit data " << igc::shape_text(data)
                              << " padded by pad=(" << p.pad[0] << "," << p.pad[1] << ")";
      return false;
    }
    const int status = igc_group_conv_check(g, IGC_FLOAT32);
    if (status == IGC_TOO_LARGE) {
      igc::error_message(kOp) << "data " << igc::shape_text(data) << " with kernel=(" << p.kernel[0]
                              << "," << p.kernel[1] << "), pad=(" << p.pad[0] << "," << p.pad[1]
                              << ") and num_filter=" << p.num_filter
                              << " needs a tensor of more than 2^31 - 1 elements, the most "
                                 "MXNet's wheels index";
      return false;
    }
    if (status != IGC_OK) {
      igc::error_message(kOp) << "data " << igc::shape_text(data) << ": "
                              << igc_status_string(status);
      return false;
    }
    return true;
  }

  // Output height (axis 0) or width (axis 1).
  static int64_t out_size(const igc_group_conv_geometry& g, int axis) {
    return axis == 0 ? igc_group_conv_out_size(g.height, g.kernel_h, g.stride_h, g.pad_h)
                     : igc_group_conv_out_size(g.width, g.kernel_w, g.stride_w, g.pad_w);
  }

  static std::vector<unsigned> weight_shape(const igc_group_conv_geometry& g) {
    return {static_cast<unsigned>(g.filters), static_cast<unsigned>(g.channels / g.groups),
            static_cast<unsigned>(g.kernel_h), static_cast<unsigned>(g.kernel_w)};
  }

  template <typename Dims>
  static bool check_weight(const igc_group_conv_geometry& g, const Dims& weight) {
    const std::vector<unsigned> want = weight_shape(g);
    bool same = weight.size() == want.size();
    for (size_t k = 0; same && k < want.size(); ++k) same = weight[k] == want[k];
    if (!same) {
      igc::error_message(kOp) << "weight shape " << igc::shape_text(weight) << " does not match "
                              << igc::shape_text(want)
                              << " = (num_filter, C / num_group, kernel_h, kernel_w)";
    }
    return same;
  }

  static MXReturnValue infer_shape(const igc::Attrs& attrs,
                                   std::vector<std::vector<unsigned int>>* in_shapes,
                                   std::vector<std::vector<unsigned int>>* out_shapes) {
    Params p;
    igc_group_conv_geometry g;
    if (!parse(attrs, &p) || !make_geometry(p, in_shapes->at(0), &g)) return MX_FAIL;
    std::vector<unsigned int>& weight = in_shapes->at(1);
    if (weight.empty()) weight = weight_shape(g);  // unknown: a fresh parameter
    if (!check_weight(g, weight)) return MX_FAIL;
    if (p.epilogue.bias &&
        !igc::infer_bias_shape(kOp, &in_shapes->at(2), static_cast<unsigned>(g.filters)))
      return MX_FAIL;
    out_shapes->at(0) = {static_cast<unsigned>(g.batch), static_cast<unsigned>(g.filters),
                         static_cast<unsigned>(out_size(g, 0)),
                         static_cast<unsigned>(out_size(g, 1))};
    return MX_SUCCESS;
  }

  // One kernel call on the device of `on`. Inputs are (a, b) -> out as in
  // group_conv_kernels.h, and the forward pass's bias (null: none).
  static MXReturnValue run(igc::Pass pass, const Params& p, const igc_group_conv_geometry& g,
                           const MXTensor& on, const void* a, const void* b, MXTensor* out,
                           const OpResource& res, const void* bias = nullptr) {
    const int dtype = on.dtype;
    int status;
    if (on.ctx.dev_type == "gpu") {
#ifdef IGC_WITH_CUDA
      if (p.epilogue.any()) return igc::no_gpu_bias_act(kOp);
      void* stream = res.get_cuda_stream();
      if (pass == igc::Pass::kForward) {
        status = igc_group_conv_forward_cuda(&g, a, b, out->data_ptr, dtype, stream);
      } else if (pass == igc::Pass::kBackwardData) {
        status = igc_group_conv_backward_data_cuda(&g, a, b, out->data_ptr, dtype, stream);
      } else {
        const int64_t bytes = igc_group_conv_backward_weight_cuda_workspace(&g, dtype);
        void* workspace = bytes > 0 ? res.alloc_gpu(bytes) : nullptr;
        status = igc_group_conv_backward_weight_cuda(&g, a, b, out->data_ptr, dtype, workspace,
                                                     bytes, stream);
      }
      return igc::kernel_result(kOp, status, igc_last_cuda_error());
#else
      return igc::no_cuda(kOp);
#endif
    }
    if (dtype == kFloat16) return igc::no_cpu_float16(kOp);
    if (pass == igc::Pass::kForward) {
      status = igc_group_conv_forward_bias_act_cpu(&g, a, b, bias, p.epilogue.activation,
                                                   out->data_ptr, dtype);
    } else if (pass == igc::Pass::kBackwardData) {
      status = igc_group_conv_backward_data_cpu(&g, a, b, out->data_ptr, dtype);
    } else {
      status = igc_group_conv_backward_weight_cpu(&g, a, b, out->data_ptr, dtype);
    }
    return igc::kernel_result(kOp, status);
  }

  // Re-validates data, weight and bias (inputs[first...]) at compute time: arrays
  // reach forward without shape inference when an imperative call skips it.
  static bool prepare(const igc::Attrs& attrs, const std::vector<MXTensor>& inputs, size_t first,
                      Params* p, igc_group_conv_geometry* g) {
    const MXTensor& data = inputs.at(first);
    const MXTensor& weight = inputs.at(first + 1);
    if (!parse(attrs, p) || !make_geometry(*p, data.shape, g) || !check_weight(*g, weight.shape))
      return false;
    if (!p->epilogue.bias) return igc::check_dtypes<GroupConvolutionOp>({&data, &weight});
    const MXTensor& bias = inputs.at(first + 2);
    std::vector<unsigned int> shape(bias.shape.begin(), bias.shape.end());
    return igc::infer_bias_shape(kOp, &shape, static_cast<unsigned>(g->filters)) &&
           igc::check_dtypes<GroupConvolutionOp>({&data, &weight, &bias});
  }

  static MXReturnValue forward(const igc::Attrs& attrs, std::vector<MXTensor>* inputs,
                               std::vector<MXTensor>* outputs, const OpResource& res) {
    Params p;
    igc_group_conv_geometry g;
    if (!prepare(attrs, *inputs, 0, &p, &g)) return MX_FAIL;
    return run(igc::Pass::kForward, p, g, inputs->at(0), inputs->at(0).data_ptr,
               inputs->at(1).data_ptr, &outputs->at(0), res,
               p.epilogue.bias ? inputs->at(2).data_ptr : nullptr);
  }

  // Backward inputs are (out_grad, data, weight, [bias,] out); outputs (data_grad,
  // weight_grad[, bias_grad]).
  static MXReturnValue backward(const igc::Attrs& attrs, std::vector<MXTensor>* inputs,
                                std::vector<MXTensor>* outputs, const OpResource& res) {
    Params p;
    igc_group_conv_geometry g;
    if (!prepare(attrs, *inputs, 1, &p, &g)) return MX_FAIL;
    const MXTensor& out_grad = inputs->at(0);
    const MXTensor& data = inputs->at(1);
    const MXTensor& weight = inputs->at(2);
    if (data.ctx.dev_type == "gpu" && p.epilogue.any()) return igc::no_gpu_bias_act(kOp);
    const void* grad = out_grad.data_ptr;
    igc::Scratch scratch;
    if (igc::bias_act_backward_cpu(kOp, p.epilogue, out_grad, inputs->at(num_inputs(p) + 1),
                                   p.epilogue.bias ? &outputs->at(2) : nullptr, &scratch,
                                   &grad) != MX_SUCCESS)
      return MX_FAIL;
    if (run(igc::Pass::kBackwardData, p, g, data, grad, weight.data_ptr, &outputs->at(0), res) !=
        MX_SUCCESS)
      return MX_FAIL;
    return run(igc::Pass::kBackwardWeight, p, g, data, grad, data.data_ptr, &outputs->at(1), res);
  }
};

}  // namespace

IGC_REGISTER_OP(GroupConvolution, GroupConvolutionOp);
