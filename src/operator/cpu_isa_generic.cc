// The direct CPU kernels in portable C++ (vector types of 32 bytes, which the
// compiler lowers to whatever the target has).
#define IGC_CPU_ISA generic
#include "group_conv_cpu_impl.h"
#include "igc_conv_cpu_direct_impl.h"
#include "cpu_isa.h"
IGC_CPU_DEFINE_VARIANT("generic")
