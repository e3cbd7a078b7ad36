// The direct CPU kernels for x86-64 with AVX2 and FMA (compiled with -mavx2
// -mfma). 16 registers of 8 floats: sum_taps keeps 4 outputs x 2 vectors, the
// weight gradients 2 filters x 5 taps.
#define IGC_CPU_ISA avx2
#define IGC_CPU_OUTPUT_BLOCK 4
#define IGC_CPU_VECTOR_BLOCK 2
#define IGC_CPU_DOT_FILTERS 2
#define IGC_CPU_DOT_TAPS 5
#include "group_conv_cpu_impl.h"
#include "igc_conv_cpu_direct_impl.h"
#include "cpu_isa.h"
IGC_CPU_DEFINE_VARIANT("avx2")
