// Glue shared by the operator registrations: parameter parsing and error
// reporting on top of MXNet's extension API (include/mxnet/lib_api.h).
#ifndef IGC_MX_OP_UTILS_H_
#define IGC_MX_OP_UTILS_H_

#include <initializer_list>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

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

// Type inference for ops whose inputs (data, weight) and output share one dtype:
// unknown (-1) entries take the known one. Fails, naming the dtypes, when the
// inputs differ or the dtype is not `supported`; `expected` lists what is.
mxnet::ext::MXReturnValue infer_shared_dtype(const char* op, std::vector<int>* in_types,
                                             std::vector<int>* out_types,
                                             bool (*supported)(int), const char* expected);

// The op's return value for a kernel's igc_status: MX_SUCCESS for IGC_OK, else
// MX_FAIL with the status text (and, for IGC_CUDA_ERROR, `cuda_error`) as the error.
mxnet::ext::MXReturnValue kernel_result(const char* op, int status,
                                        const char* cuda_error = nullptr);

// MX_FAIL for a GPU array reaching a library built without CUDA.
mxnet::ext::MXReturnValue no_cuda(const char* op);

}  // namespace igc

#endif  // IGC_MX_OP_UTILS_H_
