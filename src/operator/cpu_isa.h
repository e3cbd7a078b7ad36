// The direct CPU kernels in each instruction-set variant (cpu_isa_*.cc), and the
// one that runs on this CPU: the table through which group_conv_cpu.cc and
// igc_conv_cpu.cc call them. Sizes, pointers and dtype are checked by the
// callers; the entries only compute.
#ifndef IGC_MX_CPU_ISA_H_
#define IGC_MX_CPU_ISA_H_

#include <stdint.h>

#include "group_conv_kernels.h"

namespace igc {
namespace cpu {

using GroupConvEntry = int (*)(const igc_group_conv_geometry& geometry, const void* a,
                               const void* b, void* c, int dtype);
using InterleavedEntry = int (*)(const void* a, const void* b, void* c, int64_t batch,
                                 int64_t channels, int64_t inner, int64_t primary,
                                 int64_t secondary, int dtype);

// The forward passes with an epilogue: a bias per output channel (null: none), for
// InterleavedGroupConv a residual of the output's shape (null: none), and an
// igc_activation, applied as each output is stored.
using GroupConvForwardEntry = int (*)(const igc_group_conv_geometry& geometry, const void* data,
                                      const void* weight, const void* bias, int activation,
                                      void* out, int dtype);
using InterleavedForwardEntry = int (*)(const void* data, const void* weight, const void* bias,
                                        const void* residual, int activation, void* out,
                                        int64_t batch, int64_t channels, int64_t inner,
                                        int64_t primary, int64_t secondary, int dtype);

// One variant's entries, each indexed by igc::Pass, and the forward passes with an
// epilogue.
struct Variant {
  const char* name;
  GroupConvEntry group_conv[3];
  InterleavedEntry interleaved[3];
  GroupConvForwardEntry group_conv_forward;
  InterleavedForwardEntry interleaved_forward;
};

// The best variant this CPU runs; IGC_MX_CPU_ISA=generic|avx2 picks a lesser one
// (for tests and comparisons), never one the CPU lacks.
const Variant& variant();

}  // namespace cpu
}  // namespace igc

// Defines `kVariant` in the including variant's namespace, after its kernels
// (group_conv_cpu_impl.h and igc_conv_cpu_direct_impl.h).
#define IGC_CPU_DEFINE_VARIANT(label)                                                              \
  namespace igc {                                                                                  \
  namespace cpu {                                                                                  \
  namespace IGC_CPU_ISA {                                                                          \
  extern const Variant kVariant;                                                                   \
  const Variant kVariant = {                                                                       \
      label,                                                                                       \
      {group_conv_forward, group_conv_backward_data, group_conv_backward_weight},                  \
      {interleaved_conv_forward, interleaved_conv_backward_data,                                   \
       interleaved_conv_backward_weight},                                                          \
      [](const igc_group_conv_geometry& g, const void* x, const void* w, const void* bias,         \
         int activation, void* y, int dtype) {                                                     \
        return group_conv_forward_epilogue(g, x, w, Epilogue{bias, nullptr, activation}, y,        \
                                           dtype);                                                 \
      },                                                                                           \
      [](const void* x, const void* w, const void* bias, const void* residual, int activation,     \
         void* y, int64_t n, int64_t c, int64_t hw, int64_t l, int64_t m, int dtype) {             \
        return interleaved_conv_forward_epilogue(x, w, Epilogue{bias, residual, activation}, y, n, \
                                                 c, hw, l, m, dtype);                              \
      }};                                                                                          \
  }                                                                                                \
  }                                                                                                \
  }

#endif  // IGC_MX_CPU_ISA_H_
