// Registers `InterleavedGroupConv(data, weight, primary_partition, secondary_partition)`:
// Reorder(L) -> 1x1 Convolution(num_group=M, no_bias) -> Reorder(M) in one op, with
// L = primary_partition and M = secondary_partition (the 1x1 convolution's num_group,
// which is also the second Reorder's branch_factor; the paper's M when C = L*M, but
// the original CIFAR resnet_igc also uses other values). weight is that
// convolution's weight, (C, C/M, 1, 1). The work is done by igc_conv_{cpu,cuda}.
#include <climits>  // INT_MAX
#include <vector>

#include "igc_conv_kernels.h"
#include "op_utils.h"

using namespace mxnet::ext;  // NOLINT: REGISTER_OP expects the API's names unqualified

namespace {

constexpr char kOp[] = "InterleavedGroupConv";

struct Params {
  long long primary;  // L
  long long groups;   // M
};

bool parse_params(const igc::Attrs& attrs, Params* p) {
  return igc::check_known_params(kOp, attrs, {"primary_partition", "secondary_partition"}) &&
         igc::parse_int_param(kOp, attrs, "primary_partition", true, 0, 1, INT_MAX,
                              &p->primary) &&
         igc::parse_int_param(kOp, attrs, "secondary_partition", true, 0, 1, INT_MAX,
                              &p->groups);
}

bool supported_dtype(int dtype) {
  return dtype == kFloat32 || dtype == kFloat64 || dtype == kFloat16;
}

template <typename Dims>
void print_shape(std::ostream& msg, const Dims& shape) {
  msg << "(";
  for (size_t k = 0; k < shape.size(); ++k) msg << (k ? "," : "") << shape[k];
  msg << ")";
}

// Checks the data shape against L and G; shared by shape inference and compute.
template <typename Dims>
bool check_data_shape(const Dims& shape, const Params& p) {
  if (shape.size() != 4) {
    std::ostream& msg = igc::error_message(kOp);
    msg << "data must be 4-dimensional (N, C, H, W), got ndim=" << shape.size() << " shape=";
    print_shape(msg, shape);
    return false;
  }
  const long long channels = static_cast<long long>(shape[1]);
  if (channels % p.primary != 0) {
    igc::error_message(kOp) << "channels C=" << channels << " is not divisible by "
                            << "primary_partition=" << p.primary;
    return false;
  }
  if (channels % p.groups != 0) {
    igc::error_message(kOp) << "channels C=" << channels << " is not divisible by "
                            << "secondary_partition=" << p.groups;
    return false;
  }
  if ((channels / p.groups) % p.primary != 0) {
    igc::error_message(kOp) << "channels per secondary group C/M=" << channels / p.groups
                            << " (C=" << channels << ", secondary_partition=" << p.groups
                            << ") is not a multiple of primary_partition=" << p.primary;
    return false;
  }
  return true;
}

// The weight shape the data implies: (C, C/G, 1, 1).
std::vector<unsigned int> weight_shape(unsigned int channels, const Params& p) {
  return {channels, static_cast<unsigned int>(channels / p.groups), 1u, 1u};
}

template <typename Dims>
bool check_weight_shape(const Dims& shape, unsigned int channels, const Params& p) {
  const std::vector<unsigned int> want = weight_shape(channels, p);
  bool same = shape.size() == want.size();
  for (size_t k = 0; same && k < want.size(); ++k) same = shape[k] == want[k];
  if (!same) {
    std::ostream& msg = igc::error_message(kOp);
    msg << "weight shape ";
    print_shape(msg, shape);
    msg << " does not match (C, C/secondary_partition, 1, 1) = ";
    print_shape(msg, want);
    msg << " for C=" << channels << ", secondary_partition=" << p.groups;
    return false;
  }
  return true;
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
                                 "float32, float64 or float16 (GPU only)");
}

MXReturnValue infer_shape(const igc::Attrs& attrs,
                          std::vector<std::vector<unsigned int>>* in_shapes,
                          std::vector<std::vector<unsigned int>>* out_shapes) {
  Params p;
  if (!parse_params(attrs, &p)) return MX_FAIL;
  const std::vector<unsigned int>& data = in_shapes->at(0);
  if (!check_data_shape(data, p)) return MX_FAIL;
  std::vector<unsigned int>& weight = in_shapes->at(1);
  if (weight.empty()) {
    weight = weight_shape(data[1], p);  // a weight variable without a shape yet
  } else if (!check_weight_shape(weight, data[1], p)) {
    return MX_FAIL;
  }
  out_shapes->at(0) = data;
  return MX_SUCCESS;
}

enum class Pass { kForward, kBackwardData, kBackwardWeight };

// One kernel call. `data` supplies the shape; a, b, c are the kernel's operands.
MXReturnValue run(Pass pass, const Params& p, const MXTensor& data, const MXTensor& a,
                  const MXTensor& b, MXTensor* c, const OpResource& res) {
  const int64_t batch = data.shape[0], channels = data.shape[1];
  const int64_t inner = data.shape[2] * data.shape[3];
  if (data.ctx.dev_type == "gpu") {
#ifdef IGC_WITH_CUDA
    auto* fn = pass == Pass::kForward        ? igc_interleaved_conv_forward_cuda
               : pass == Pass::kBackwardData ? igc_interleaved_conv_backward_data_cuda
                                             : igc_interleaved_conv_backward_weight_cuda;
    return igc::kernel_result(kOp,
                              fn(a.data_ptr, b.data_ptr, c->data_ptr, batch, channels, inner,
                                 p.primary, p.groups, data.dtype, res.get_cuda_stream()),
                              igc_last_cuda_error());
#else
    return igc::no_cuda(kOp);
#endif
  }
  if (data.dtype == kFloat16) {
    igc::error_message(kOp) << "float16 is supported on GPU only; on CPU use float32 "
                               "or float64";
    return MX_FAIL;
  }
  auto* fn = pass == Pass::kForward        ? igc_interleaved_conv_forward_cpu
             : pass == Pass::kBackwardData ? igc_interleaved_conv_backward_data_cpu
                                           : igc_interleaved_conv_backward_weight_cpu;
  return igc::kernel_result(kOp, fn(a.data_ptr, b.data_ptr, c->data_ptr, batch, channels,
                                    inner, p.primary, p.groups, data.dtype));
}

// Parses the params and validates data and weight: compute sees inputs that shape
// inference may never have checked (e.g. imperative calls with mismatched arrays).
bool prepare(const igc::Attrs& attrs, const MXTensor& data, const MXTensor& weight,
             Params* p) {
  if (!parse_params(attrs, p) || !check_data_shape(data.shape, *p) ||
      !check_weight_shape(weight.shape, static_cast<unsigned int>(data.shape[1]), *p)) {
    return false;
  }
  if (!supported_dtype(data.dtype) || weight.dtype != data.dtype) {
    igc::error_message(kOp) << "unsupported dtypes data=" << igc::dtype_name(data.dtype)
                            << " weight=" << igc::dtype_name(weight.dtype)
                            << "; expected both float32, float64 or float16 (GPU only)";
    return false;
  }
  return true;
}

MXReturnValue forward(const igc::Attrs& attrs, std::vector<MXTensor>* inputs,
                      std::vector<MXTensor>* outputs, const OpResource& res) {
  const MXTensor& data = inputs->at(0);
  const MXTensor& weight = inputs->at(1);
  Params p;
  if (!prepare(attrs, data, weight, &p)) return MX_FAIL;
  return run(Pass::kForward, p, data, data, weight, &outputs->at(0), res);
}

// Backward inputs are (out_grad, data, weight, output); outputs are (data_grad,
// weight_grad).
MXReturnValue backward(const igc::Attrs& attrs, std::vector<MXTensor>* inputs,
                       std::vector<MXTensor>* outputs, const OpResource& res) {
  const MXTensor& out_grad = inputs->at(0);
  const MXTensor& data = inputs->at(1);
  const MXTensor& weight = inputs->at(2);
  Params p;
  if (!prepare(attrs, data, weight, &p)) return MX_FAIL;
  if (run(Pass::kBackwardData, p, data, out_grad, weight, &outputs->at(0), res) != MX_SUCCESS) {
    return MX_FAIL;
  }
  return run(Pass::kBackwardWeight, p, data, out_grad, data, &outputs->at(1), res);
}

}  // namespace

REGISTER_OP(InterleavedGroupConv)
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
