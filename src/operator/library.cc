// Library entry points: MXNet's version handshake, and the build facts that the Python
// loader reads from the file before handing the library to MXNet.
#include "op_utils.h"

using namespace mxnet::ext;  // NOLINT

#ifndef IGC_MXNET_VERSION
#error "IGC_MXNET_VERSION (major*10000 + minor*100 + patch) must be defined by the build"
#endif

#ifdef IGC_WITH_CUDA
#define IGC_CUDA_FLAG "1"
#else
#define IGC_CUDA_FLAG "0"
#endif

#define IGC_STR_(x) #x
#define IGC_STR(x) IGC_STR_(x)

// The build facts live in a section of their own, so that the Python loader can read them
// from the file by the section's name, before anything maps or runs the library.
extern "C" __attribute__((used, section(".igc_mx_build_info"))) const char igc_mx_build_facts[] =
    "mxnet_version=" IGC_STR(IGC_MXNET_VERSION) ";lib_api=" IGC_STR(
        MX_LIBRARY_VERSION) ";cuda=" IGC_CUDA_FLAG;

MXReturnValue initialize(int version) {
  if (version != IGC_MXNET_VERSION) {
    igc::error_message("igc_mx") << "library built against MXNet version code " << IGC_MXNET_VERSION
                                 << " but loaded into " << version
                                 << "; rebuild it against the MXNet you run";
    return MX_FAIL;
  }
  return MX_SUCCESS;
}
