// Glue shared by the operator registrations: parameter parsing and error
// reporting on top of MXNet's extension API (include/mxnet/lib_api.h).
#ifndef IGC_MX_OP_UTILS_H_
#define IGC_MX_OP_UTILS_H_

#include <climits>
#include <initializer_list>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "igc_common.h"
#include "mxnet/lib_api.h"

namespace igc {

using Attrs = std::unordered_map<std::string, std::string>;

// Starts a new error message for MXNet to raise as MXNetError. lib_api.cc keeps
// every message ever added and MXNet prints them all, so without a reset a
// second error would repeat the first one's text; this drops the old ones first.
std::ostream& error_message(const char* op);

// Keys MXNet itself adds to a node (e.g. "__ext_dtype__", "__profiler_scope__").
inline bool is_internal_key(const std::string& key) {
  return key.size() >= 4 && key.compare(0, 2, "__") == 0 &&
         key.compare(key.size() - 2, 2, "__") == 0;
}

// Fails on any user key not in `known`, naming it and the accepted ones.
bool check_known_params(const char* op, const Attrs& attrs,
                        std::initializer_list<const char*> known);

// Parses attrs[key] as a base-10 integer in [lo, hi]. When the key is absent,
// uses `fallback` if `required` is false. Errors name the key and the value.
bool parse_int_param(const char* op, const Attrs& attrs, const char* key, bool required,
                     long long fallback, long long lo, long long hi, long long* out);

// "float32", "float64", ... for messages.
const char* dtype_name(int dtype);

// "(2,3,4)" for messages; a dimension MXNet does not know yet prints as "?".
template <typename Dims>
std::string shape_text(const Dims& shape) {
  std::string s = "(";
  for (size_t k = 0; k < shape.size(); ++k) {
    s += k ? "," : "";
    s += static_cast<unsigned>(shape[k]) == UINT_MAX ? std::string("?") : std::to_string(shape[k]);
  }
  return s + ")";
}

// Fails, naming the op, the input and the shape, unless `shape` has `ndim`
// dimensions that are all known and >= 1. (MXNet hands a library an unknown
// dimension as UINT_MAX; in its default shape semantics a 0 means unknown too.)
template <typename Dims>
bool check_dims(const char* op, const char* input, const Dims& shape, size_t ndim,
                const char* layout) {
  if (shape.size() != ndim) {
    error_message(op) << input << " must be " << ndim << "-dimensional " << layout
                      << ", got ndim=" << shape.size() << " shape=" << shape_text(shape);
    return false;
  }
  for (size_t k = 0; k < shape.size(); ++k) {
    const unsigned d = static_cast<unsigned>(shape[k]);
    if (d == 0 || d == UINT_MAX) {
      error_message(op) << input << " shape " << shape_text(shape) << " has an unknown or "
                        << "zero-size dimension " << k << "; every dimension must be >= 1";
      return false;
    }
  }
  return true;
}

// Type inference for ops whose inputs (data, weight) and output share one dtype:
// unknown (-1) entries take the known one. Fails, naming the dtypes, when the
// inputs differ or the dtype is not `supported`; `expected` lists what is.
mxnet::ext::MXReturnValue infer_shared_dtype(const char* op, std::vector<int>* in_types,
                                             std::vector<int>* out_types, bool (*supported)(int),
                                             const char* expected);

// The op's return value for a kernel's igc_status: MX_SUCCESS for IGC_OK, else
// MX_FAIL with the status text (and, for IGC_CUDA_ERROR, `cuda_error`) as the error.
mxnet::ext::MXReturnValue kernel_result(const char* op, int status,
                                        const char* cuda_error = nullptr);

// MX_FAIL for a GPU array reaching a library built without CUDA.
mxnet::ext::MXReturnValue no_cuda(const char* op);

// The registration hooks every op shares. An op type `Op` provides
//   kName, kDtypes (text for messages), struct Params,
//   static bool parse(const Attrs&, Params*), static int num_inputs(const Params&)
//   (array inputs; one output), static bool supported_dtype(int), and the
//   infer_shape, forward and backward functions that IGC_REGISTER_OP names.
template <typename Op>
mxnet::ext::MXReturnValue parse_attrs(const Attrs& attrs, int* num_in, int* num_out) {
  typename Op::Params params;
  if (!Op::parse(attrs, &params)) return mxnet::ext::MX_FAIL;
  *num_in = Op::num_inputs(params);
  *num_out = 1;
  return mxnet::ext::MX_SUCCESS;
}

// The epilogue of the convolution ops' forward pass: a bias input (no_bias=False;
// absent or true: none, as the ops had no bias at first and saved symbols omit it)
// and act_type ('relu'; absent or 'None': none), applied as each output is stored.
struct BiasAct {
  bool bias = false;
  int activation = IGC_ACT_NONE;
  bool any() const { return bias || activation != IGC_ACT_NONE; }
};

// Parses attrs[key] as a boolean (True/False, true/false, 1/0); `fallback` when absent.
bool parse_bool_param(const char* op, const Attrs& attrs, const char* key, bool fallback,
                      bool* out);

// Parses no_bias and act_type as above; errors name the key and the value.
bool parse_bias_act(const char* op, const Attrs& attrs, BiasAct* out);

// Fails, naming the shape, unless `bias` is (channels,); a bias of unknown shape
// (empty) gets that shape. For shape inference.
bool infer_bias_shape(const char* op, std::vector<unsigned int>* bias, unsigned int channels);

// Backward through the epilogue on the CPU, for an output `out` of (N, C, inner...):
// *pre_grad is the gradient before the activation (out_grad's data without one,
// else computed into scratch memory that lives until the op returns), and
// `bias_grad` (null: no bias) gets its sum per channel. `scratch` owns the memory.
struct Scratch {
  void* p = nullptr;
  ~Scratch();
};
mxnet::ext::MXReturnValue bias_act_backward_cpu(const char* op, const BiasAct& epilogue,
                                                const mxnet::ext::MXTensor& out_grad,
                                                const mxnet::ext::MXTensor& out,
                                                mxnet::ext::MXTensor* bias_grad, Scratch* scratch,
                                                const void** pre_grad);

// MX_FAIL for a bias, residual or activation on the GPU, which the CUDA kernels lack.
mxnet::ext::MXReturnValue no_gpu_bias_act(const char* op);

template <typename Op>
mxnet::ext::MXReturnValue infer_type(const Attrs&, std::vector<int>* in_types,
                                     std::vector<int>* out_types) {
  return infer_shared_dtype(Op::kName, in_types, out_types, Op::supported_dtype, Op::kDtypes);
}

// Fails unless every tensor has one dtype that `Op` supports; at compute time,
// where shape and type inference may have been skipped (imperative calls).
template <typename Op>
bool check_dtypes(const std::vector<const mxnet::ext::MXTensor*>& tensors) {
  const int dtype = tensors.front()->dtype;
  bool same = true;
  for (const mxnet::ext::MXTensor* t : tensors) same = same && t->dtype == dtype;
  if (same && Op::supported_dtype(dtype)) return true;
  std::ostream& msg = error_message(Op::kName);
  msg << "unsupported dtypes";
  for (const mxnet::ext::MXTensor* t : tensors) msg << " " << dtype_name(t->dtype);
  msg << "; expected one dtype for all inputs: " << Op::kDtypes;
  return false;
}

// The dtypes of ops with CUDA kernels: float16 only where a GPU can run it.
inline bool float_dtype(int dtype) {
#ifdef IGC_WITH_CUDA
  if (dtype == mxnet::ext::kFloat16) return true;
#endif
  return dtype == mxnet::ext::kFloat32 || dtype == mxnet::ext::kFloat64;
}

// MX_FAIL for float16 on the CPU, whose kernels are float32 and float64.
mxnet::ext::MXReturnValue no_cpu_float16(const char* op);

// False, naming the op and the arrays, when an output shares memory with an input.
// The kernels read their inputs after they have started writing outputs, so
// `out=` naming an input (or a view of one) would give a wrong result silently.
bool outputs_apart(const char* op, const std::vector<mxnet::ext::MXTensor>& inputs,
                   const std::vector<mxnet::ext::MXTensor>& outputs);

// The op's compute function `Fn` behind the check above.
template <typename Op, mxnet::ext::MXReturnValue (*Fn)(
                           const Attrs&, std::vector<mxnet::ext::MXTensor>*,
                           std::vector<mxnet::ext::MXTensor>*, const mxnet::ext::OpResource&)>
mxnet::ext::MXReturnValue compute_apart(const Attrs& attrs,
                                        std::vector<mxnet::ext::MXTensor>* inputs,
                                        std::vector<mxnet::ext::MXTensor>* outputs,
                                        const mxnet::ext::OpResource& res) {
  if (!outputs_apart(Op::kName, *inputs, *outputs)) return mxnet::ext::MX_FAIL;
  return Fn(attrs, inputs, outputs, res);
}

}  // namespace igc

#ifdef IGC_WITH_CUDA
#define IGC_GPU_COMPUTE(Op)                                 \
  .setForward(::igc::compute_apart<Op, Op::forward>, "gpu") \
      .setBackward(::igc::compute_apart<Op, Op::backward>, "gpu")
#else
#define IGC_GPU_COMPUTE(Op)
#endif

// REGISTER_OP(Name) with the shared hooks and Op's own shape inference and compute.
#define IGC_REGISTER_OP(Name, Op)                               \
  REGISTER_OP(Name)                                             \
      .setParseAttrs(::igc::parse_attrs<Op>)                    \
      .setInferType(::igc::infer_type<Op>)                      \
      .setInferShape(Op::infer_shape)                           \
      .setForward(::igc::compute_apart<Op, Op::forward>, "cpu") \
      .setBackward(::igc::compute_apart<Op, Op::backward>, "cpu") IGC_GPU_COMPUTE(Op)

#endif  // IGC_MX_OP_UTILS_H_
