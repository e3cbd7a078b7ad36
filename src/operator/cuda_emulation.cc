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

extern "C" void igc_emu_drop_barrier(const char* file_suffix, int line) {
  igc_emu::faults.barrier_file = file_suffix ? file_suffix : "";
  igc_emu::faults.barrier_line = file_suffix ? line : -1;
}

extern "C" void igc_emu_skip_thread(const char* kernel, int64_t block, int64_t thread) {
  igc_emu::faults.skip_kernel = kernel ? kernel : "";
  igc_emu::faults.skip_block = block;
  igc_emu::faults.skip_thread = thread;
}

extern "C" void igc_emu_alias_thread(const char* kernel, int64_t block, int64_t thread,
                                     int64_t as_thread) {
  igc_emu::faults.alias_kernel = kernel ? kernel : "";
  igc_emu::faults.alias_block = block;
  igc_emu::faults.alias_thread = thread;
  igc_emu::faults.alias_as = as_thread;
}

extern "C" void igc_emu_trim_buffer(const char* name, int64_t front_bytes, int64_t back_bytes) {
  igc_emu::faults.trim_buffer = name ? name : "";
  igc_emu::faults.trim_front = front_bytes;
  igc_emu::faults.trim_back = back_bytes;
}

extern "C" void igc_emu_trim_dynamic_shared(int64_t bytes) { igc_emu::faults.trim_dynamic = bytes; }

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
  igc_emu::buffers.clear();
}

extern "C" void igc_emu_plan_only(int on) { igc_emu::faults.plan_only = on != 0; }

extern "C" const char* igc_emu_launches(void) { return igc_emu::launches.c_str(); }

// Registers `bytes` at `pointer` as a device buffer called `name`, shadowed per
// `granule` bytes (its element size); 0, or -1 for a bad size.
extern "C" int igc_emu_device_buffer(const void* pointer, int64_t bytes, int64_t granule,
                                     const char* name) {
  if (bytes < 0 || granule < 1) return -1;
  auto r = std::make_unique<igc_emu::Region>();
  const uintptr_t at = reinterpret_cast<uintptr_t>(pointer);
  igc_emu::set_region(r.get(), at, at + static_cast<uintptr_t>(bytes), igc_emu::Space::kGlobal,
                      std::string("global buffer '") + (name ? name : "") + "'");
  r->granule = static_cast<size_t>(granule);
  const igc_emu::Faults& f = igc_emu::faults;
  if (name != nullptr && f.trim_buffer == name) {
    const uintptr_t front = static_cast<uintptr_t>(f.trim_front < bytes ? f.trim_front : bytes);
    r->begin += front;
    r->end -= static_cast<uintptr_t>(f.trim_back < bytes - static_cast<int64_t>(front)
                                         ? f.trim_back
                                         : bytes - static_cast<int64_t>(front));
  }
  igc_emu::buffers.push_back(std::move(r));
  return 0;
}

extern "C" void igc_emu_forget_buffers(void) { igc_emu::buffers.clear(); }

namespace {

using igc_emu::Ptr;

// A static __shared__ array of self_test_kernel and bug_kernel.
template <typename T, int N, int Site>
igc_emu::Array<T, N>& shared_array() {
  return igc_emu::shared<igc_emu::Array<T, N>, Site>();
}

// A kernel for igc_emu_self_test: `Bytes` of shared memory, one barrier, and
// thread `early` (if >= 0) returning before it.
template <int Bytes>
__global__ void self_test_kernel(int early, Ptr<unsigned char> out) {
  constexpr int kWords = Bytes / 4;
  igc_emu::Array<unsigned, kWords>& block_shared = shared_array<unsigned, kWords, 0>();
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  if (static_cast<int>(t) == early) return;
  if (t < kWords) block_shared[t] = 1;
  __syncthreads();
  if (t == 0) out[blockIdx.x] = static_cast<unsigned char>(block_shared[0]);
}

// Small kernels with one planted bug each (see kBugs), for igc_emu_bug_test.
enum Bug {
  kLoadPastEnd,
  kLoadBeforeStart,
  kStorePastEnd,
  kSharedIndexPastEnd,
  kDynamicPastEnd,
  kSharedWriteWrite,
  kSharedReadWrite,
  kGlobalWriteWrite,
  kBlocksWriteOneElement,
  kUnregisteredBuffer,
  kNoBug,
  kAtomics,
};
constexpr int kBugThreads = 64;

__global__ void bug_kernel(int bug, Ptr<const float> in, Ptr<float> out) {
  igc_emu::Array<float, kBugThreads>& s = shared_array<float, kBugThreads, 1>();
  Ptr<float> dynamic = igc_emu::dynamic_shared<float>();
  const int t = static_cast<int>(threadIdx.x);
  switch (bug) {
    case kLoadPastEnd: out[t] = in[t]; break;             // in has one element too few
    case kLoadBeforeStart: out[t] = in[t - 1]; break;     // t - 1 < 0 for thread 0
    case kStorePastEnd: out[t] = in[t]; break;            // out has one element too few
    case kSharedIndexPastEnd: s[t + 1] = in[t]; break;    // s has kBugThreads elements
    case kDynamicPastEnd: dynamic[t + 1] = in[t]; break;  // as many floats as threads
    case kSharedWriteWrite:
      if (t == 1 || t == 2) s[0] = in[t];  // two threads, one slot, one phase
      break;
    case kSharedReadWrite:  // the barrier between the write and the read is missing
      if (t == 0) s[5] = in[0];
      if (t == 1) out[1] = s[5];
      break;
    case kGlobalWriteWrite:
      if (t < 2) out[0] = in[t];  // two threads of one block, one element
      break;
    case kBlocksWriteOneElement:
      if (t == 0) out[0] = in[blockIdx.x];  // thread 0 of every block
      break;
    case kUnregisteredBuffer: out[t] = in[t]; break;  // out is registered under no name
    case kNoBug:  // a barrier orders the write and the reads; each thread its own slot
      if (t == 0) s[0] = in[0];
      __syncthreads();
      out[blockIdx.x * kBugThreads + t] = s[0] + in[t];
      break;
    case kAtomics:  // every thread adds into one slot of shared and of global memory
      if (t == 0) s[0] = 0.0f;
      __syncthreads();
      atomicAdd(&s[0], 1.0f);
      atomicAdd(out + 0, 1.0f);
      __syncthreads();
      if (t == 0) out[1 + blockIdx.x] = s[0];
      break;
  }
}

struct BugCase {
  const char* name;
  Bug bug;
  int in_size, out_size, blocks;
};
constexpr BugCase kBugs[] = {
    {"load past the end", kLoadPastEnd, kBugThreads - 1, kBugThreads, 1},
    {"load before the start", kLoadBeforeStart, kBugThreads, kBugThreads, 1},
    {"store past the end", kStorePastEnd, kBugThreads, kBugThreads - 1, 1},
    {"shared index past the end", kSharedIndexPastEnd, kBugThreads, kBugThreads, 1},
    {"dynamic shared past the end", kDynamicPastEnd, kBugThreads, kBugThreads, 1},
    {"shared write-write race", kSharedWriteWrite, kBugThreads, kBugThreads, 1},
    {"shared read-write race", kSharedReadWrite, kBugThreads, kBugThreads, 1},
    {"global write-write race", kGlobalWriteWrite, kBugThreads, kBugThreads, 1},
    {"blocks write one element", kBlocksWriteOneElement, kBugThreads, kBugThreads, 2},
    {"unregistered buffer", kUnregisteredBuffer, kBugThreads, kBugThreads, 1},
    {"no bug", kNoBug, kBugThreads, 2 * kBugThreads, 2},
    {"atomics", kAtomics, kBugThreads, 3, 2},
};

}  // namespace

// Launches a small kernel with the given configuration (shared memory 1 KiB or,
// with big_shared, 64 KiB) and returns the launch's error text, or "" when it ran.
extern "C" const char* igc_emu_self_test(unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                         unsigned by, unsigned bz, int big_shared, int early) {
  static thread_local std::string text;
  std::vector<unsigned char> out(gx, 0);
  igc_emu_forget_buffers();
  igc_emu_device_buffer(out.data(), static_cast<int64_t>(out.size()), 1, "out");
  cudaGetLastError();
  unsigned char* raw = out.data();
  if (big_shared) {
    igc_emu::launch(self_test_kernel<64 << 10>, dim3(gx, gy, gz), dim3(bx, by, bz), 0,
                    "self_test_kernel", early, raw);
  } else {
    igc_emu::launch(self_test_kernel<1 << 10>, dim3(gx, gy, gz), dim3(bx, by, bz), 0,
                    "self_test_kernel", early, raw);
  }
  igc_emu_forget_buffers();
  const cudaError_t err = cudaGetLastError();
  text = err == cudaSuccess ? "" : cudaGetErrorString(err);
  return text.c_str();
}

// Runs the kernel with the named planted bug (kBugs) and returns the launch's
// error text, or "" when it ran and computed what it should.
extern "C" const char* igc_emu_bug_test(const char* bug) {
  static thread_local std::string text;
  const BugCase* c = nullptr;
  for (const BugCase& k : kBugs) {
    if (bug != nullptr && strcmp(bug, k.name) == 0) c = &k;
  }
  if (c == nullptr) {
    text = std::string("unknown bug '") + (bug ? bug : "") + "'";
    return text.c_str();
  }
  std::vector<float> in(kBugThreads * 2, 1.0f), out(kBugThreads * 2, 0.0f);
  igc_emu_forget_buffers();
  igc_emu_device_buffer(in.data(), c->in_size * 4, 4, "in");
  if (c->bug != kUnregisteredBuffer) igc_emu_device_buffer(out.data(), c->out_size * 4, 4, "out");
  cudaGetLastError();
  const float* in_raw = in.data();
  float* out_raw = out.data();
  igc_emu::launch(bug_kernel, dim3(c->blocks), dim3(kBugThreads), kBugThreads * sizeof(float),
                  "bug_kernel", static_cast<int>(c->bug), in_raw, out_raw);
  igc_emu_forget_buffers();
  const cudaError_t err = cudaGetLastError();
  text = err == cudaSuccess ? "" : cudaGetErrorString(err);
  if (err == cudaSuccess && c->bug == kAtomics &&
      (out[0] != kBugThreads * c->blocks || out[1] != kBugThreads || out[2] != kBugThreads))
    text = "atomicAdd: sums " + std::to_string(out[0]) + ", " + std::to_string(out[1]) + ", " +
           std::to_string(out[2]) + "; expected " + std::to_string(kBugThreads * c->blocks) + ", " +
           std::to_string(kBugThreads) + ", " + std::to_string(kBugThreads);
  return text.c_str();
}
