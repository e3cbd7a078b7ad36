// Registers `Reorder(data, branch_factor, workspace)` with MXNet through the
// extension API. Name and parameters are those of the 2017 original so that its
// symbol files load unchanged. The work is done by reorder_{cpu,cuda} kernels.
#include <climits>  // INT_MAX
#include <vector>

#include "op_utils.h"
#include "reorder_kernels.h"

using namespace mxnet::ext;  // NOLINT: REGISTER_OP expects the API's names unqualified

namespace {

struct ReorderOp {
  static constexpr const char* kName = "Reorder";
  static constexpr const char* kDtypes = "float32, float64 or float16";

  struct Params {
    long long branch_factor;
  };

  static bool parse(const igc::Attrs& attrs, Params* p) {
    // workspace (MB) sized the original's scratch buffers; the kernel needs none, so
    // it is only checked against the original's range.
    long long workspace;
    return igc::check_known_params(kName, attrs, {"branch_factor", "workspace"}) &&
           igc::parse_int_param(kName, attrs, "branch_factor", true, 0, 1, INT_MAX,
                                &p->branch_factor) &&
           igc::parse_int_param(kName, attrs, "workspace", false, 1024, 0, 8192, &workspace);
  }

  static int num_inputs(const Params&) { return 1; }

  // A permutation of whole rows: any element size runs on both devices.
  static bool supported_dtype(int dtype) {
    return dtype == kFloat32 || dtype == kFloat64 || dtype == kFloat16;
  }

  // At least (N, C); C known and divisible by branch_factor. Other dimensions may
  // still be unknown during shape inference: they pass through.
  template <typename Dims>
  static bool check_shape(const Dims& shape, const Params& p) {
    if (shape.size() < 2) {
      igc::error_message(kName) << "input must have at least 2 dimensions (N, C, ...), got ndim="
                                << shape.size() << " shape=" << igc::shape_text(shape);
      return false;
    }
    const unsigned channels = static_cast<unsigned>(shape[1]);
    if (channels == UINT_MAX || channels == 0) {
      igc::error_message(kName) << "channels (axis 1) of " << igc::shape_text(shape)
                                << " are unknown or zero; Reorder needs C >= 1";
      return false;
    }
    if (channels % p.branch_factor != 0) {
      igc::error_message(kName) << "channels C=" << channels << " (axis 1) is not divisible by "
                                << "branch_factor=" << p.branch_factor;
      return false;
    }
    return true;
  }

  static MXReturnValue infer_shape(const igc::Attrs& attrs,
                                   std::vector<std::vector<unsigned int>>* in_shapes,
                                   std::vector<std::vector<unsigned int>>* out_shapes) {
    Params p;
    if (!parse(attrs, &p) || !check_shape(in_shapes->at(0), p)) return MX_FAIL;
    out_shapes->at(0) = in_shapes->at(0);
    return MX_SUCCESS;
  }

  // The permutation from `src` to `dst`; `inverse` selects the backward one: the
  // same kernel with C / branch_factor.
  static MXReturnValue run(const igc::Attrs& attrs, const MXTensor& src, MXTensor* dst,
                           bool inverse, const OpResource& res) {
    Params p;
    if (!parse(attrs, &p) || !check_shape(src.shape, p) || !igc::check_dtypes<ReorderOp>({&src}))
      return MX_FAIL;
    const int64_t batch = src.shape[0], channels = src.shape[1];
    int64_t inner = 1;
    for (size_t k = 2; k < src.shape.size(); ++k) inner *= src.shape[k];
    const int64_t branches = inverse ? channels / p.branch_factor : p.branch_factor;
    if (src.ctx.dev_type == "gpu") {
#ifdef IGC_WITH_CUDA
      return igc::kernel_result(kName,
                                igc_reorder_cuda(src.data_ptr, dst->data_ptr, batch, channels,
                                                 branches, inner, src.dtype, res.get_cuda_stream()),
                                igc_last_cuda_error());
#else
      return igc::no_cuda(kName);
#endif
    }
    return igc::kernel_result(kName, igc_reorder_cpu(src.data_ptr, dst->data_ptr, batch, channels,
                                                     branches, inner, src.dtype));
  }

  static MXReturnValue forward(const igc::Attrs& attrs, std::vector<MXTensor>* inputs,
                               std::vector<MXTensor>* outputs, const OpResource& res) {
    return run(attrs, inputs->at(0), &outputs->at(0), /*inverse=*/false, res);
  }

  // Backward inputs are (output gradient, data, output); the single output is the
  // data gradient.
  static MXReturnValue backward(const igc::Attrs& attrs, std::vector<MXTensor>* inputs,
                                std::vector<MXTensor>* outputs, const OpResource& res) {
    return run(attrs, inputs->at(0), &outputs->at(0), /*inverse=*/true, res);
  }
};

}  // namespace

IGC_REGISTER_OP(Reorder, ReorderOp);
