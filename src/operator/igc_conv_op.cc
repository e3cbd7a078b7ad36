// Registers `InterleavedGroupConv(data, weight, [bias,] [residual,] primary_partition,
// secondary_partition, no_bias, with_residual, act_type)`:
// Reorder(L) -> 1x1 Convolution(num_group=M, no_bias) -> Reorder(M) in one op, with
// L = primary_partition and M = secondary_partition (the 1x1 convolution's num_group,
// which is also the second Reorder's branch_factor; the paper's M when C = L*M, but
// the original CIFAR resnet_igc also uses other values). weight is that
// convolution's weight, (C, C/M, 1, 1). With no_bias=False a bias (C,) is added to
// output channel c, with with_residual=True an array of the output's shape, and
// act_type='relu' follows (CPU only): what a BatchNorm, a residual sum and a ReLU
// after the unit fold into for inference. The work is done by igc_conv_{cpu,cuda}.
#include <climits>  // INT_MAX
#include <cstring>  // memcpy
#include <vector>

#include "igc_conv_kernels.h"
#include "op_utils.h"

using namespace mxnet::ext;  // NOLINT: REGISTER_OP expects the API's names unqualified

namespace {

constexpr char kOp[] = "InterleavedGroupConv";

struct InterleavedGroupConvOp {
  static constexpr const char* kName = kOp;
  static constexpr const char* kDtypes = "float32 or float64 (float16 on GPU)";

  struct Params {
    long long L;  // primary_partition
    long long M;  // secondary_partition
    igc::BiasAct epilogue;
    bool residual;  // a residual input added before the activation
    // Input index of the residual.
    int residual_input() const { return epilogue.bias ? 3 : 2; }
    bool any_epilogue() const { return epilogue.any() || residual; }
  };

  static bool parse(const igc::Attrs& attrs, Params* p) {
    return igc::check_known_params(kOp, attrs,
                                   {"primary_partition", "secondary_partition", "no_bias",
                                    "with_residual", "act_type"}) &&
           igc::parse_int_param(kOp, attrs, "primary_partition", true, 0, 1, INT_MAX, &p->L) &&
           igc::parse_int_param(kOp, attrs, "secondary_partition", true, 0, 1, INT_MAX, &p->M) &&
           igc::parse_bias_act(kOp, attrs, &p->epilogue) &&
           igc::parse_bool_param(kOp, attrs, "with_residual", false, &p->residual);
  }

  static int num_inputs(const Params& p) { return p.residual_input() + (p.residual ? 1 : 0); }

  static bool supported_dtype(int dtype) { return igc::float_dtype(dtype); }

  // Checks the data shape against L and M; shared by shape inference and compute.
  template <typename Dims>
  static bool check_data_shape(const Dims& shape, const Params& p) {
    if (!igc::check_dims(kOp, "data", shape, 4, "(N, C, H, W)")) return false;
    const long long channels = static_cast<long long>(shape[1]);
    if (channels % p.L != 0) {
      igc::error_message(kOp) << "channels C=" << channels << " is not divisible by "
                              << "primary_partition=" << p.L;
      return false;
    }
    if (channels % p.M != 0) {
      igc::error_message(kOp) << "channels C=" << channels << " is not divisible by "
                              << "secondary_partition=" << p.M;
      return false;
    }
    if ((channels / p.M) % p.L != 0) {
      igc::error_message(kOp) << "channels per secondary group C/M=" << channels / p.M
                              << " (C=" << channels << ", secondary_partition=" << p.M
                              << ") is not a multiple of primary_partition=" << p.L;
      return false;
    }
    const int64_t sizes[] = {static_cast<int64_t>(shape[0]), channels,
                             static_cast<int64_t>(shape[2]), static_cast<int64_t>(shape[3])};
    if (igc::checked_product(sizes, 4) < 0) {
      igc::error_message(kOp) << "data " << igc::shape_text(shape)
                              << " has more than 2^31 - 1 elements, the most MXNet's wheels "
                                 "index";
      return false;
    }
    return true;
  }

  // The weight shape the data implies: (C, C/M, 1, 1).
  static std::vector<unsigned int> weight_shape(unsigned int channels, const Params& p) {
    return {channels, static_cast<unsigned int>(channels / p.M), 1u, 1u};
  }

  template <typename Dims>
  static bool check_weight_shape(const Dims& shape, unsigned int channels, const Params& p) {
    const std::vector<unsigned int> want = weight_shape(channels, p);
    bool same = shape.size() == want.size();
    for (size_t k = 0; same && k < want.size(); ++k) same = shape[k] == want[k];
    if (!same) {
      igc::error_message(kOp) << "weight shape " << igc::shape_text(shape)
                              << " does not match (C, C/secondary_partition, 1, 1) = "
                              << igc::shape_text(want) << " for C=" << channels
                              << ", secondary_partition=" << p.M;
    }
    return same;
  }

  static MXReturnValue infer_shape(const igc::Attrs& attrs,
                                   std::vector<std::vector<unsigned int>>* in_shapes,
                                   std::vector<std::vector<unsigned int>>* out_shapes) {
    Params p;
    if (!parse(attrs, &p)) return MX_FAIL;
    const std::vector<unsigned int>& data = in_shapes->at(0);
    if (!check_data_shape(data, p)) return MX_FAIL;
    std::vector<unsigned int>& weight = in_shapes->at(1);
    if (weight.empty()) {
      weight = weight_shape(data[1], p);  // a weight variable without a shape yet
    } else if (!check_weight_shape(weight, data[1], p)) {
      return MX_FAIL;
    }
    if (p.epilogue.bias && !igc::infer_bias_shape(kOp, &in_shapes->at(2), data[1])) return MX_FAIL;
    if (p.residual) {
      std::vector<unsigned int>& residual = in_shapes->at(p.residual_input());
      if (residual.empty()) residual = data;
      if (!check_residual_shape(residual, data)) return MX_FAIL;
    }
    out_shapes->at(0) = data;
    return MX_SUCCESS;
  }

  template <typename Dims, typename Data>
  static bool check_residual_shape(const Dims& residual, const Data& data) {
    bool same = residual.size() == data.size();
    for (size_t k = 0; same && k < data.size(); ++k) same = residual[k] == data[k];
    if (!same) {
      igc::error_message(kOp) << "residual shape " << igc::shape_text(residual)
                              << " does not match the output's " << igc::shape_text(data);
    }
    return same;
  }

  // One kernel call. `data` supplies the shape; a, b, c are the kernel's operands, and
  // `bias`, `residual` the forward pass's (null: none).
  static MXReturnValue run(igc::Pass pass, const Params& p, const MXTensor& data, const void* a,
                           const void* b, MXTensor* c, const OpResource& res,
                           const void* bias = nullptr, const void* residual = nullptr) {
    const int64_t batch = data.shape[0], channels = data.shape[1];
    const int64_t inner = data.shape[2] * data.shape[3];
    if (data.ctx.dev_type == "gpu") {
#ifdef IGC_WITH_CUDA
      if (p.any_epilogue()) return igc::no_gpu_bias_act(kOp);
      void* stream = res.get_cuda_stream();
      int status;
      if (pass == igc::Pass::kForward) {
        status = igc_interleaved_conv_forward_cuda(a, b, c->data_ptr, batch, channels, inner, p.L,
                                                   p.M, data.dtype, stream);
      } else if (pass == igc::Pass::kBackwardData) {
        status = igc_interleaved_conv_backward_data_cuda(a, b, c->data_ptr, batch, channels, inner,
                                                         p.L, p.M, data.dtype, stream);
      } else {
        const int64_t bytes = igc_interleaved_conv_backward_weight_cuda_workspace(
            batch, channels, inner, p.L, p.M, data.dtype);
        void* workspace = bytes > 0 ? res.alloc_gpu(bytes) : nullptr;
        status = igc_interleaved_conv_backward_weight_cuda(a, b, c->data_ptr, batch, channels,
                                                           inner, p.L, p.M, data.dtype, workspace,
                                                           bytes, stream);
      }
      return igc::kernel_result(kOp, status, igc_last_cuda_error());
#else
      return igc::no_cuda(kOp);
#endif
    }
    if (data.dtype == kFloat16) return igc::no_cpu_float16(kOp);
    int status;
    if (pass == igc::Pass::kForward) {
      status = igc_interleaved_conv_forward_epilogue_cpu(a, b, bias, residual,
                                                         p.epilogue.activation, c->data_ptr, batch,
                                                         channels, inner, p.L, p.M, data.dtype);
    } else {
      auto* fn = pass == igc::Pass::kBackwardData ? igc_interleaved_conv_backward_data_cpu
                                                  : igc_interleaved_conv_backward_weight_cpu;
      status = fn(a, b, c->data_ptr, batch, channels, inner, p.L, p.M, data.dtype);
    }
    return igc::kernel_result(kOp, status);
  }

  // Parses the params and validates data, weight and bias (inputs[first...]): compute
  // sees inputs that shape inference may never have checked (e.g. imperative calls
  // with mismatched arrays).
  static bool prepare(const igc::Attrs& attrs, const std::vector<MXTensor>& inputs, size_t first,
                      Params* p) {
    if (!parse(attrs, p)) return false;
    const MXTensor& data = inputs.at(first);
    const MXTensor& weight = inputs.at(first + 1);
    if (!check_data_shape(data.shape, *p) ||
        !check_weight_shape(weight.shape, static_cast<unsigned int>(data.shape[1]), *p))
      return false;
    std::vector<const MXTensor*> tensors = {&data, &weight};
    if (p->epilogue.bias) {
      const MXTensor& bias = inputs.at(first + 2);
      std::vector<unsigned int> shape(bias.shape.begin(), bias.shape.end());
      if (!igc::infer_bias_shape(kOp, &shape, static_cast<unsigned int>(data.shape[1])))
        return false;
      tensors.push_back(&bias);
    }
    if (p->residual) {
      const MXTensor& residual = inputs.at(first + p->residual_input());
      if (!check_residual_shape(residual.shape, data.shape)) return false;
      tensors.push_back(&residual);
    }
    return igc::check_dtypes<InterleavedGroupConvOp>(tensors);
  }

  static MXReturnValue forward(const igc::Attrs& attrs, std::vector<MXTensor>* inputs,
                               std::vector<MXTensor>* outputs, const OpResource& res) {
    Params p;
    if (!prepare(attrs, *inputs, 0, &p)) return MX_FAIL;
    const MXTensor& data = inputs->at(0);
    return run(igc::Pass::kForward, p, data, data.data_ptr, inputs->at(1).data_ptr, &outputs->at(0),
               res, p.epilogue.bias ? inputs->at(2).data_ptr : nullptr,
               p.residual ? inputs->at(p.residual_input()).data_ptr : nullptr);
  }

  // Backward inputs are (out_grad, data, weight, [bias,] [residual,] output); outputs
  // are (data_grad, weight_grad[, bias_grad][, residual_grad]).
  static MXReturnValue backward(const igc::Attrs& attrs, std::vector<MXTensor>* inputs,
                                std::vector<MXTensor>* outputs, const OpResource& res) {
    Params p;
    if (!prepare(attrs, *inputs, 1, &p)) return MX_FAIL;
    const MXTensor& out_grad = inputs->at(0);
    const MXTensor& data = inputs->at(1);
    const MXTensor& weight = inputs->at(2);
    if (data.ctx.dev_type == "gpu" && p.any_epilogue()) return igc::no_gpu_bias_act(kOp);
    const void* grad = out_grad.data_ptr;
    igc::Scratch scratch;
    if (igc::bias_act_backward_cpu(kOp, p.epilogue, out_grad, inputs->at(num_inputs(p) + 1),
                                   p.epilogue.bias ? &outputs->at(2) : nullptr, &scratch,
                                   &grad) != MX_SUCCESS)
      return MX_FAIL;
    if (p.residual) {  // the sum passes the gradient before the activation through
      MXTensor& residual_grad = outputs->at(p.residual_input());
      memcpy(residual_grad.data_ptr, grad, residual_grad.size() * igc_dtype_size(data.dtype));
    }
    if (run(igc::Pass::kBackwardData, p, data, grad, weight.data_ptr, &outputs->at(0), res) !=
        MX_SUCCESS)
      return MX_FAIL;
    return run(igc::Pass::kBackwardWeight, p, data, grad, data.data_ptr, &outputs->at(1), res);
  }
};

}  // namespace

IGC_REGISTER_OP(InterleavedGroupConv, InterleavedGroupConvOp);
