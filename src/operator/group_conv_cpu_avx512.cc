// The CPU grouped convolution for x86-64 with AVX-512F (compiled with
// -mavx512f -mavx2 -mfma; chosen at run time by group_conv_cpu.cc).
// 32 registers of 16 floats: sum_taps keeps 8 outputs x 2 vectors, the weight
// gradient 3 filters x 8 taps.
#define IGC_GC_ISA avx512
#define IGC_GC_VECTOR_BYTES 64
#define IGC_GC_OUTPUT_BLOCK 8
#define IGC_GC_VECTOR_BLOCK 2
#define IGC_GC_DOT_FILTERS 3
#define IGC_GC_DOT_TAPS 8
#include "group_conv_cpu_impl.h"
