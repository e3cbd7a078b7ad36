// Registers `Reorder(data, branch_factor, workspace)` with MXNet through the
// extension API. Name and parameters are those of the 2017 original so that its
// symbol files load unchanged. The work is done by reorder_{cpu,cuda} kernels.
#include <climits>  // INT_MAX
#include <vector>

#include "op_utils.h"
#include "reorder_kernels.h"

using namespace mxnet::ext;  // NOLINT: REGISTER_OP expects the API's names unqualified

namespace {

constexpr char kOp[] = "Reorder";

bool parse_branch_factor(const igc::Attrs& attrs, long long* branch_factor) {
  // workspace (MB) sized the original's scratch buffers; the kernel needs none, so it
  // is only checked against the original's range.
  long long workspace;
  return igc::check_known_params(kOp, attrs, {"branch_factor", "workspace"}) &&
         igc::parse_int_param(kOp, attrs, "branch_factor", true, 0, 1, INT_MAX,
                              branch_factor) &&
         igc::parse_int_param(kOp, attrs, "workspace", false, 1024, 0, 8192, &workspace);
}

bool supported_dtype(int dtype) {
  return dtype == mxnet::ext::kFloat32 || dtype == mxnet::ext::kFloat64 ||
         dtype == mxnet::ext::kFloat16;
}

// Validates a shape against branch_factor; shared by shape inference and compute.
template <typename Dims>
bool check_shape(const Dims& shape, long long branch_factor) {
  if (shape.size() < 2) {
    std::ostream& msg = igc::error_message(kOp);
    msg << "input must have at least 2 dimensions (N, C, ...), got ndim=" << shape.size()
        << " shape=(";
    for (size_t k = 0; k < shape.size(); ++k) msg << (k ? "," : "") << shape[k];
    msg << ")";
    return false;
  }
  const long long channels = static_cast<long long>(shape[1]);
  if (channels % branch_factor != 0) {
    igc::error_message(kOp) << "channels C=" << channels << " (axis 1) is not divisible by "
                            << "branch_factor=" << branch_factor;
    return false;
  }
  return true;
}

MXReturnValue parse_attrs(const igc::Attrs& attrs, int* num_in, int* num_out) {
  *num_in = 1;
  *num_out = 1;
  long long branch_factor;
  return parse_branch_factor(attrs, &branch_factor) ? MX_SUCCESS : MX_FAIL;
}

MXReturnValue infer_type(const igc::Attrs&, std::vector<int>* in_types,
                         std::vector<int>* out_types) {
  const int dtype = in_types->at(0);
  if (dtype != -1 && !supported_dtype(dtype)) {  // -1: not known yet
    igc::error_message(kOp) << "unsupported dtype " << igc::dtype_name(dtype)
                            << "; expected float32, float64 or float16";
    return MX_FAIL;
  }
  out_types->at(0) = dtype;
  return MX_SUCCESS;
}

MXReturnValue infer_shape(const igc::Attrs& attrs,
                          std::vector<std::vector<unsigned int>>* in_shapes,
                          std::vector<std::vector<unsigned int>>* out_shapes) {
  long long branch_factor;
  if (!parse_branch_factor(attrs, &branch_factor)) return MX_FAIL;
  const std::vector<unsigned int>& shape = in_shapes->at(0);
  if (!check_shape(shape, branch_factor)) return MX_FAIL;
  out_shapes->at(0) = shape;
  return MX_SUCCESS;
}

// Runs the permutation from `src` to `dst`. `inverse` selects the backward
// permutation: the same kernel with C / branch_factor groups.
MXReturnValue run(const igc::Attrs& attrs, const MXTensor& src, MXTensor* dst, bool inverse,
                  const OpResource& res) {
  long long branch_factor;
  if (!parse_branch_factor(attrs, &branch_factor)) return MX_FAIL;
  if (!check_shape(src.shape, branch_factor)) return MX_FAIL;
  if (!supported_dtype(src.dtype)) {
    igc::error_message(kOp) << "unsupported dtype " << igc::dtype_name(src.dtype)
                            << "; expected float32, float64 or float16";
    return MX_FAIL;
  }
  const int64_t batch = src.shape[0];
  const int64_t channels = src.shape[1];
  int64_t inner = 1;
  for (size_t k = 2; k < src.shape.size(); ++k) inner *= src.shape[k];
  const int64_t groups = inverse ? channels / branch_factor : branch_factor;

  if (src.ctx.dev_type == "gpu") {
#ifdef IGC_WITH_CUDA
    return igc::kernel_result(kOp,
                              igc_reorder_cuda(src.data_ptr, dst->data_ptr, batch, channels,
                                               groups, inner, src.dtype, res.get_cuda_stream()),
                              igc_last_cuda_error());
#else
    return igc::no_cuda(kOp);
#endif
  }
  return igc::kernel_result(kOp, igc_reorder_cpu(src.data_ptr, dst->data_ptr, batch, channels,
                                                 groups, inner, src.dtype));
}

MXReturnValue forward(const igc::Attrs& attrs, std::vector<MXTensor>* inputs,
                      std::vector<MXTensor>* outputs, const OpResource& res) {
  return run(attrs, inputs->at(0), &outputs->at(0), /*inverse=*/false, res);
}

// Backward inputs are (output gradient, data, output); the single output is the
// data gradient.
MXReturnValue backward(const igc::Attrs& attrs, std::vector<MXTensor>* inputs,
                       std::vector<MXTensor>* outputs, const OpResource& res) {
  return run(attrs, inputs->at(0), &outputs->at(0), /*inverse=*/true, res);
}

}  // namespace

REGISTER_OP(Reorder)
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
