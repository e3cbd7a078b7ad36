// The direct CPU kernels for x86-64 with AVX-512F (compiled with -mavx512f
// -mavx2 -mfma). 32 registers of 16 floats: sum_taps keeps 8 outputs x 2
// vectors, the weight gradients 3 filters x 8 taps.
#define IGC_CPU_ISA avx512
#define IGC_CPU_VECTOR_BYTES 64
#define IGC_CPU_OUTPUT_BLOCK 8
#define IGC_CPU_VECTOR_BLOCK 2
#define IGC_CPU_DOT_FILTERS 3
#define IGC_CPU_DOT_TAPS 8
#include "group_conv_cpu_impl.h"
#include "igc_conv_cpu_direct_impl.h"
#include "cpu_isa.h"
IGC_CPU_DEFINE_VARIANT("avx512")
