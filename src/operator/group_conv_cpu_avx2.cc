// The CPU grouped convolution for x86-64 with AVX2 and FMA (compiled with
// -mavx2 -mfma; chosen at run time by group_conv_cpu.cc).
#define IGC_GC_ISA avx2
#include "group_conv_cpu_impl.h"
