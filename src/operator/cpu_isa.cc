// The choice of CPU variant (cpu_isa.h).
#include "cpu_isa.h"

#include <stdlib.h>
#include <string.h>

namespace igc {
namespace cpu {

namespace generic {
extern const Variant kVariant;
}
#ifdef IGC_CPU_X86_VARIANTS
namespace avx2 {
extern const Variant kVariant;
}
namespace avx512 {
extern const Variant kVariant;
}
#endif

namespace {

bool allowed(const char* name) {
  const char* wanted = getenv("IGC_MX_CPU_ISA");
  if (wanted == nullptr || *wanted == '\0') return true;
  const char* order[] = {"generic", "avx2", "avx512"};
  int wanted_rank = 2, rank = 0;
  for (int k = 0; k < 3; ++k) {
    if (strcmp(wanted, order[k]) == 0) wanted_rank = k;
    if (strcmp(name, order[k]) == 0) rank = k;
  }
  return rank <= wanted_rank;
}

const Variant& choose() {
#ifdef IGC_CPU_X86_VARIANTS
  __builtin_cpu_init();
  if (allowed("avx512") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma"))
    return avx512::kVariant;
  if (allowed("avx2") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return avx2::kVariant;
#endif
  return generic::kVariant;
}

}  // namespace

const Variant& variant() {
  static const Variant& chosen = choose();
  return chosen;
}

}  // namespace cpu
}  // namespace igc

extern "C" const char* igc_cpu_isa(void) { return igc::cpu::variant().name; }
