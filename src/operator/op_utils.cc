#include "op_utils.h"

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <vector>

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

mxnet::ext::MXReturnValue infer_shared_dtype(const char* op, std::vector<int>* in_types,
                                             std::vector<int>* out_types, bool (*supported)(int),
                                             const char* expected) {
  int dtype = -1;  // -1: not known yet
  for (int t : *in_types) {
    if (t == -1) continue;
    if (dtype != -1 && t != dtype) {
      error_message(op) << "data and weight dtypes differ: " << dtype_name(in_types->at(0))
                        << " and " << dtype_name(in_types->at(1));
      return mxnet::ext::MX_FAIL;
    }
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
