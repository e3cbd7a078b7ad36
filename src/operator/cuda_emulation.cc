// The fault controls of cuda_emulation.h, for the tests (through ctypes). Only in
// the emulated kernel library.
#include "cuda_emulation.h"

#if defined(__x86_64__)
// void igc_emu_switch(void** save_sp, void* load_sp): see switch_to in the header.
__asm__(R"(
  .text
  .globl igc_emu_switch
  .hidden igc_emu_switch
  .type igc_emu_switch, @function
igc_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size igc_emu_switch, .-igc_emu_switch
)");
#endif

// The shared array of self_test_kernel.
#define IGC_EMU_SHARED_TEST(bytes) \
  unsigned char (&block_shared)[bytes] = ::igc_emu::shared<unsigned char[bytes], __COUNTER__>()

extern "C" void igc_emu_drop_barrier(const char* file_suffix, int line) {
  igc_emu::faults.barrier_file = file_suffix ? file_suffix : "";
  igc_emu::faults.barrier_line = file_suffix ? line : -1;
}

extern "C" void igc_emu_skip_thread(const char* kernel, int64_t block, int64_t thread) {
  igc_emu::faults.skip_kernel = kernel ? kernel : "";
  igc_emu::faults.skip_block = block;
  igc_emu::faults.skip_thread = thread;
}

extern "C" void igc_emu_cap_grid(int64_t blocks) { igc_emu::faults.grid_cap = blocks; }

extern "C" int64_t igc_emu_barrier_hits(const char* file_suffix, int line) {
  int64_t total = 0;
  for (const igc_emu::Hits& h : igc_emu::barrier_hits) {
    if (h.line == line && igc_emu::ends_with(h.file, file_suffix)) total += h.count;
  }
  return total;
}

extern "C" void igc_emu_reset(void) {
  igc_emu::faults = igc_emu::Faults();
  igc_emu::barrier_hits.clear();
  igc_emu::launches.clear();
}

extern "C" void igc_emu_plan_only(int on) { igc_emu::faults.plan_only = on != 0; }

extern "C" const char* igc_emu_launches(void) { return igc_emu::launches.c_str(); }

namespace {

// A kernel for igc_emu_self_test: `shared_bytes` of shared memory, one barrier,
// and thread `early` (if >= 0) returning before it.
template <int Bytes>
__global__ void self_test_kernel(int early, unsigned char* out) {
  IGC_EMU_SHARED_TEST(Bytes);
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  if (static_cast<int>(t) == early) return;
  block_shared[t % Bytes] = 1;
  __syncthreads();
  if (t == 0) out[blockIdx.x] = block_shared[0];
}

}  // namespace

// Launches a small kernel with the given configuration (shared memory 1 KiB or,
// with big_shared, 64 KiB) and returns the launch's error text, or "" when it ran.
extern "C" const char* igc_emu_self_test(unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                         unsigned by, unsigned bz, int big_shared, int early) {
  static thread_local std::string text;
  std::vector<unsigned char> out(gx, 0);
  cudaGetLastError();
  if (big_shared) {
    igc_emu::launch(self_test_kernel<64 << 10>, dim3(gx, gy, gz), dim3(bx, by, bz),
                    "self_test_kernel", early, out.data());
  } else {
    igc_emu::launch(self_test_kernel<1 << 10>, dim3(gx, gy, gz), dim3(bx, by, bz),
                    "self_test_kernel", early, out.data());
  }
  const cudaError_t err = cudaGetLastError();
  text = err == cudaSuccess ? "" : cudaGetErrorString(err);
  return text.c_str();
}
