// The CPU grouped convolution for x86-64 with AVX-512F (compiled with
// -mavx512f -mavx2 -mfma; chosen at run time by group_conv_cpu.cc).
#define IGC_GC_ISA avx512
#include "group_conv_cpu_impl.h"
