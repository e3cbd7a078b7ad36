#include "op_utils.h"

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "bias_act_kernels.h"

namespace igc {

namespace {
// Mirror of mxnet::ext::MXerrorMsgs' only data member. The class keeps it
// private and offers no way to clear it.
struct ErrorMessagesLayout {
  std::vector<std::stringstream*> messages;
};
static_assert(sizeof(ErrorMessagesLayout) == sizeof(mxnet::ext::MXerrorMsgs),
              "mxnet::ext::MXerrorMsgs changed layout; revisit error_message()");
}  // namespace

std::ostream& error_message(const char* op) {
  auto* store = reinterpret_cast<ErrorMessagesLayout*>(mxnet::ext::MXerrorMsgs::get());
  for (std::stringstream* old : store->messages) delete old;
  store->messages.clear();
  return MX_ERROR_MSG << op << ": ";
}

bool check_known_params(const char* op, const Attrs& attrs,
                        std::initializer_list<const char*> known) {
  for (const auto& kv : attrs) {
    if (is_internal_key(kv.first)) continue;
    bool found = false;
    for (const char* k : known) found = found || kv.first == k;
    if (!found) {
      std::ostream& msg = error_message(op);
      msg << "unknown parameter '" << kv.first << "'='" << kv.second << "'; expected one of:";
      for (const char* k : known) msg << " " << k;
      return false;
    }
  }
  return true;
}

bool parse_int_param(const char* op, const Attrs& attrs, const char* key, bool required,
                     long long fallback, long long lo, long long hi, long long* out) {
  auto it = attrs.find(key);
  if (it == attrs.end()) {
    if (required) {
      error_message(op) << "missing required parameter '" << key << "'";
      return false;
    }
    *out = fallback;
    return true;
  }
  const std::string& text = it->second;
  const char* begin = text.c_str();
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(begin, &end, 10);
  const bool digits = end != begin;  // strtoll leaves `end` at `begin` when none were read
  while (end != nullptr && (*end == ' ' || *end == '\t')) ++end;
  if (!digits || *end != '\0') {
    error_message(op) << "parameter " << key << "='" << text << "' is not an integer";
    return false;
  }
  if (errno == ERANGE || value < lo || value > hi) {
    error_message(op) << "parameter " << key << "=" << text << " is out of range: expected " << lo
                      << " <= " << key << " <= " << hi;
    return false;
  }
  *out = value;
  return true;
}

const char* dtype_name(int dtype) {
  switch (dtype) {
    case mxnet::ext::kFloat32: return "float32";
    case mxnet::ext::kFloat64: return "float64";
    case mxnet::ext::kFloat16: return "float16";
    case mxnet::ext::kUint8: return "uint8";
    case mxnet::ext::kInt32: return "int32";
    case mxnet::ext::kInt8: return "int8";
    case mxnet::ext::kInt64: return "int64";
    default: return "unknown dtype";
  }
}

bool parse_bool_param(const char* op, const Attrs& attrs, const char* key, bool fallback,
                      bool* out) {
  auto it = attrs.find(key);
  if (it == attrs.end()) {
    *out = fallback;
    return true;
  }
  const std::string& v = it->second;
  if (v == "True" || v == "true" || v == "1") {
    *out = true;
  } else if (v == "False" || v == "false" || v == "0") {
    *out = false;
  } else {
    error_message(op) << key << "='" << v << "' is not a boolean (True or False)";
    return false;
  }
  return true;
}

bool parse_bias_act(const char* op, const Attrs& attrs, BiasAct* out) {
  *out = BiasAct();
  bool no_bias = true;
  if (!parse_bool_param(op, attrs, "no_bias", true, &no_bias)) return false;
  out->bias = !no_bias;
  auto it = attrs.find("act_type");
  if (it != attrs.end() && it->second != "None") {
    if (it->second != "relu") {
      error_message(op) << "act_type='" << it->second
                        << "' is not supported: expected 'relu' (or None, no activation)";
      return false;
    }
    out->activation = IGC_ACT_RELU;
  }
  return true;
}

bool infer_bias_shape(const char* op, std::vector<unsigned int>* bias, unsigned int channels) {
  if (bias->empty()) {
    *bias = {channels};
    return true;
  }
  if (bias->size() != 1 || (*bias)[0] != channels) {
    error_message(op) << "bias shape " << shape_text(*bias) << " does not match (" << channels
                      << ",), one value per output channel";
    return false;
  }
  return true;
}

Scratch::~Scratch() { free(p); }

mxnet::ext::MXReturnValue bias_act_backward_cpu(const char* op, const BiasAct& epilogue,
                                                const mxnet::ext::MXTensor& out_grad,
                                                const mxnet::ext::MXTensor& out,
                                                mxnet::ext::MXTensor* bias_grad, Scratch* scratch,
                                                const void** pre_grad) {
  *pre_grad = out_grad.data_ptr;
  if (!epilogue.any()) return mxnet::ext::MX_SUCCESS;
  const int64_t batch = out.shape[0], channels = out.shape[1];
  int64_t inner = 1;
  for (size_t k = 2; k < out.shape.size(); ++k) inner *= out.shape[k];
  if (epilogue.activation != IGC_ACT_NONE) {
    const size_t bytes = static_cast<size_t>(out.size()) * igc_dtype_size(out.dtype);
    scratch->p = malloc(bytes > 0 ? bytes : 1);
    if (scratch->p == nullptr) return kernel_result(op, IGC_OUT_OF_MEMORY);
    *pre_grad = scratch->p;
  }
  return kernel_result(
      op, igc_bias_act_backward_cpu(out_grad.data_ptr, out.data_ptr, epilogue.activation,
                                    scratch->p, bias_grad ? bias_grad->data_ptr : nullptr, batch,
                                    channels, inner, out.dtype));
}

mxnet::ext::MXReturnValue no_gpu_bias_act(const char* op) {
  error_message(op) << "a bias (no_bias=False), residual or act_type runs on the CPU only: "
                       "the GPU kernels have no epilogue; on the GPU add them as separate ops";
  return mxnet::ext::MX_FAIL;
}

mxnet::ext::MXReturnValue infer_shared_dtype(const char* op, std::vector<int>* in_types,
                                             std::vector<int>* out_types, bool (*supported)(int),
                                             const char* expected) {
  static const char* const names[] = {"data", "weight", "bias"};
  auto name = [](size_t k) { return k < 3 ? names[k] : "input"; };
  int dtype = -1;  // -1: not known yet
  size_t first = 0;
  for (size_t k = 0; k < in_types->size(); ++k) {
    const int t = (*in_types)[k];
    if (t == -1) continue;
    if (dtype != -1 && t != dtype) {
      error_message(op) << name(first) << " and " << name(k)
                        << " dtypes differ: " << dtype_name(dtype) << " and " << dtype_name(t);
      return mxnet::ext::MX_FAIL;
    }
    if (dtype == -1) first = k;
    dtype = t;
  }
  if (dtype != -1 && !supported(dtype)) {
    error_message(op) << "unsupported dtype " << dtype_name(dtype) << "; expected " << expected;
    return mxnet::ext::MX_FAIL;
  }
  for (int& t : *in_types) t = dtype;
  for (int& t : *out_types) t = dtype;
  return mxnet::ext::MX_SUCCESS;
}

mxnet::ext::MXReturnValue kernel_result(const char* op, int status, const char* cuda_error) {
  if (status == IGC_OK) return mxnet::ext::MX_SUCCESS;
  if (status == IGC_CUDA_ERROR && cuda_error != nullptr) {
    error_message(op) << "CUDA kernel failed: " << cuda_error;
  } else {
    error_message(op) << igc_status_string(status);
  }
  return mxnet::ext::MX_FAIL;
}

mxnet::ext::MXReturnValue no_cuda(const char* op) {
  error_message(op) << "this library was built without CUDA (IGC_USE_CUDA=OFF)";
  return mxnet::ext::MX_FAIL;
}

mxnet::ext::MXReturnValue no_cpu_float16(const char* op) {
  error_message(op) << "float16 is supported on GPU only; on the CPU use float32 or float64";
  return mxnet::ext::MX_FAIL;
}

namespace {

// The bytes [begin, end) of a tensor's elements.
void byte_range(const mxnet::ext::MXTensor& t, uintptr_t* begin, uintptr_t* end) {
  size_t element = 1;
  switch (t.dtype) {
    case mxnet::ext::kFloat64:
    case mxnet::ext::kInt64: element = 8; break;
    case mxnet::ext::kFloat32:
    case mxnet::ext::kInt32: element = 4; break;
    case mxnet::ext::kFloat16: element = 2; break;
    default: break;
  }
  *begin = reinterpret_cast<uintptr_t>(t.data_ptr);
  *end = *begin + static_cast<uintptr_t>(t.size()) * element;
}

}  // namespace

bool outputs_apart(const char* op, const std::vector<mxnet::ext::MXTensor>& inputs,
                   const std::vector<mxnet::ext::MXTensor>& outputs) {
  for (size_t o = 0; o < outputs.size(); ++o) {
    uintptr_t out_begin, out_end;
    byte_range(outputs[o], &out_begin, &out_end);
    for (size_t i = 0; i < inputs.size(); ++i) {
      uintptr_t in_begin, in_end;
      byte_range(inputs[i], &in_begin, &in_end);
      if (out_begin < in_end && in_begin < out_end && out_begin != out_end) {
        error_message(op) << "output " << o << " shares memory with input " << i
                          << " (out= names an input or a view of one); give out= an array "
                             "of its own";
        return false;
      }
    }
  }
  return true;
}

}  // namespace igc
