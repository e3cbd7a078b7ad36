// The CPU grouped convolution for x86-64 with AVX2 and FMA (compiled with
// -mavx2 -mfma; chosen at run time by group_conv_cpu.cc).
// 16 registers of 8 floats: sum_taps keeps 4 outputs x 2 vectors, the weight
// gradient 2 filters x 5 taps.
#define IGC_GC_ISA avx2
#define IGC_GC_OUTPUT_BLOCK 4
#define IGC_GC_VECTOR_BLOCK 2
#define IGC_GC_DOT_FILTERS 2
#define IGC_GC_DOT_TAPS 5
#include "group_conv_cpu_impl.h"
