// CUDA's built-ins for running this library's .cu files on the CPU, so that the
// test suite executes every CUDA kernel on machines without a GPU. Included by
// cuda_common.cuh when IGC_CUDA_EMULATION is defined, instead of the CUDA headers.
// It covers what the kernels here use and nothing more: no warp intrinsics, no
// atomics, no dynamic shared memory.
//
// How a launch runs. Blocks run one after another on each OS thread (OpenMP
// spreads them over the threads). The threads of one block are fibers (ucontext)
// on one OS thread, each with its own stack and threadIdx. A fiber runs until it
// reaches __syncthreads() or returns; when every fiber of the block has done so,
// the next phase starts. So __syncthreads() is a real barrier: no thread passes
// it before every other thread of the block has reached it.
//
// Why a missing barrier cannot hide. Between two barriers the fibers run one at
// a time, each to its next barrier, so a thread that reads what another thread
// writes in the same phase sees either all of the writer's phase or none of it.
// The order alternates between threadIdx order and its reverse, by phase and by
// block, so for every writer/reader pair some block runs the reader before the
// writer: it reads the stale value instead of the new one. Stale shared memory
// is never a plausible value: each block starts with its shared memory filled
// with 0xFF bytes (NaN in every float type). A block whose threads reach
// different barriers, or where some threads exit while others wait, is an error.
//
// Faults for the tests (igc_emu_* below): drop the barrier at one source line,
// make one thread skip the whole kernel, or cap the grid so that grid-stride
// loops wrap on small inputs. The tests use them to show that a deleted barrier
// or a thread that skips its share of the work makes them fail.
#ifndef IGC_MX_CUDA_EMULATION_H_
#define IGC_MX_CUDA_EMULATION_H_

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <functional>
#include <string>
#include <utility>
#include <vector>

// ---- types and qualifiers ----------------------------------------------------

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x, y, z;
};
struct alignas(8) uint2 {
  unsigned x, y;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
typedef struct igc_emu_stream* cudaStream_t;
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchFailure = 719
};

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)

// The built-in variables, per OS thread; the scheduler sets threadIdx before it
// resumes a fiber.
inline thread_local uint3 threadIdx, blockIdx;
inline thread_local dim3 blockDim, gridDim;

// ---- __half: IEEE binary16 storage, arithmetic in float ------------------------

struct __half {
  uint16_t bits;
  __half() = default;
  __half(float f) : bits(from_float(f)) {}           // NOLINT: implicit, as CUDA's
  operator float() const { return to_float(bits); }  // NOLINT

  static float to_float(uint16_t h) {
    const uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
    uint32_t out;
    if (exp == 0x1f) {
      out = sign | 0x7f800000u | (man << 13);  // inf, nan
    } else if (exp != 0) {
      out = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
      out = sign;
    } else {  // subnormal: normalise
      int e = -1;
      uint32_t m = man;
      do {
        ++e;
        m <<= 1;
      } while ((m & 0x400u) == 0);
      out = sign | ((112 - e) << 23) | ((m & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &out, 4);
    return f;
  }
  // Round to nearest even, as __float2half_rn.
  static uint16_t from_float(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t abs = x & 0x7fffffffu;
    if (abs >= 0x7f800000u) return sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0);
    if (abs >= 0x477ff000u) return sign | 0x7c00u;  // rounds past 65504: inf
    if (abs < 0x38800000u) {                        // subnormal or zero in half
      if (abs < 0x33000000u) return sign;           // below half the smallest subnormal
      const uint32_t man = (abs & 0x7fffffu) | 0x800000u;
      const int shift = 126 - static_cast<int>(abs >> 23);  // 14 .. 24
      const uint32_t half_man = man >> shift, rest = man & ((1u << shift) - 1);
      const uint32_t halfway = 1u << (shift - 1);
      return sign | (half_man + (rest > halfway || (rest == halfway && (half_man & 1))));
    }
    const uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1);  // ties to even
    return sign | ((rounded - 0x38000000u) >> 13);
  }
};
inline float __half2float(__half h) { return static_cast<float>(h); }
inline __half __float2half(float f) { return __half(f); }

namespace igc_emu {

// CUDA's limits, checked at every launch.
constexpr unsigned kMaxThreadsPerBlock = 1024, kMaxBlockZ = 64;
constexpr unsigned kMaxGridYZ = 65535, kMaxGridX = 2147483647u;
constexpr size_t kMaxStaticShared = 48 << 10;
// Room for a kernel that asks for more than the limit, so that the launch can
// finish and report it; beyond this the process stops.
constexpr size_t kSharedArena = 1 << 20;
constexpr size_t kFiberStack = 128 << 10;

// The faults (see the top of this file), process-wide; set by the igc_emu_*
// functions while no kernel runs.
struct Faults {
  std::string barrier_file;  // drop the __syncthreads() at this file (suffix) and line
  int barrier_line = -1;
  std::string skip_kernel;  // this kernel's thread (skip_block, skip_thread) does nothing
  int64_t skip_block = 0, skip_thread = 0;
  int64_t grid_cap = 0;    // grid_cap() returns at most this many blocks (0: no cap)
  bool plan_only = false;  // record launches without running them (see launches)
};
inline Faults faults;
// Every launch since the last igc_emu_reset: "kernel<TAB>gx gy gz bx by bz", one a line.
inline std::string launches;
// __syncthreads() executions per source site (file, line), to show that the
// tests reach each one.
struct Hits {
  const char* file;
  int line;
  int64_t count;
};
inline std::vector<Hits> barrier_hits;

inline void count_hit(std::vector<Hits>* hits, const char* file, int line, int64_t count) {
  for (Hits& h : *hits) {
    if (h.line == line && (h.file == file || strcmp(h.file, file) == 0)) {
      h.count += count;
      return;
    }
  }
  hits->push_back({file, line, count});
}

inline bool ends_with(const char* text, const std::string& suffix) {
  const size_t n = strlen(text);
  return !suffix.empty() && n >= suffix.size() && suffix == text + (n - suffix.size());
}

enum class State { kRunnable, kAtBarrier, kDone, kSkipped };

// Switching between fibers. On x86-64, igc_emu_switch (cuda_emulation.cc) saves
// the callee-saved registers on the current stack and jumps to another saved
// stack: no system call per switch, unlike swapcontext, which sets the signal
// mask every time. Elsewhere, ucontext.
#if defined(__x86_64__)
struct Context {
  void* sp = nullptr;
};
extern "C" void igc_emu_switch(void** save_sp, void* load_sp);
inline void switch_to(Context* from, Context* to) { igc_emu_switch(&from->sp, to->sp); }
// A context that starts `entry` on `stack`: the frame igc_emu_switch pops, with
// this thread's floating-point control words and `entry` as the return address.
inline void start_context(Context* c, char* stack, size_t size, void (*entry)()) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t{15};
  void** sp = reinterpret_cast<void**>(top) - 2;  // entry sees rsp = 8 mod 16
  *sp = reinterpret_cast<void*>(entry);
  sp -= 6;  // rbp rbx r12 r13 r14 r15
  for (int k = 0; k < 6; ++k) sp[k] = nullptr;
  sp -= 1;  // mxcsr and the x87 control word
  uint32_t control[2];
  __asm__ volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(control[0]), "=m"(control[1]));
  memcpy(sp, control, 8);
  c->sp = sp;
}
#else
struct Context {
  ucontext_t uc;
};
inline void switch_to(Context* from, Context* to) { swapcontext(&from->uc, &to->uc); }
inline void start_context(Context* c, char* stack, size_t size, void (*entry)()) {
  getcontext(&c->uc);
  c->uc.uc_stack.ss_sp = stack;
  c->uc.uc_stack.ss_size = size;
  c->uc.uc_link = nullptr;
  makecontext(&c->uc, entry, 0);
}
#endif

struct Fiber {
  Context context;
  char* stack = nullptr;
  uint3 index;
  State state;
  const char* barrier_file = nullptr;  // where it waits
  int barrier_line = 0;
};

// One OS thread's block in progress.
struct Block {
  Context scheduler;
  std::vector<Fiber> fibers;
  const std::function<void()>* body = nullptr;
  int current = 0;
  alignas(64) unsigned char shared[kSharedArena];
  size_t shared_used = 0, shared_peak = 0;
  std::vector<std::pair<const void*, size_t>> shared_sites;  // key -> offset
  std::vector<Hits> hits;                                    // this thread's barrier counts
  std::string error;
};
inline thread_local Block* block = nullptr;

inline void fiber_main() {
  Block* b = block;
  (*b->body)();
  b->fibers[b->current].state = State::kDone;
  switch_to(&b->fibers[b->current].context, &b->scheduler);
}

inline void barrier(const char* file, int line) {
  Block* b = block;
  if (line == faults.barrier_line && ends_with(file, faults.barrier_file)) return;
  count_hit(&b->hits, file, line, 1);
  Fiber& f = b->fibers[b->current];
  f.state = State::kAtBarrier;
  f.barrier_file = file;
  f.barrier_line = line;
  switch_to(&f.context, &b->scheduler);
}

// The block's instance of a __shared__ variable declared at one site.
inline void* shared_storage(const void* key, size_t size, size_t align) {
  Block* b = block;
  for (const auto& site : b->shared_sites) {
    if (site.first == key) return b->shared + site.second;
  }
  const size_t offset = (b->shared_used + align - 1) / align * align;
  if (offset + size > kSharedArena) {
    fprintf(stderr, "cuda_emulation: %zu bytes of shared memory per block\n", offset + size);
    abort();
  }
  b->shared_used = offset + size;
  if (b->shared_used > b->shared_peak) b->shared_peak = b->shared_used;
  b->shared_sites.emplace_back(key, offset);
  memset(b->shared + offset, 0xff, size);  // stale data is never a plausible value
  return b->shared + offset;
}

template <typename T, int Site>
T& shared() {
  static const char key = 0;  // one per declaration site and type
  return *static_cast<T*>(shared_storage(&key, sizeof(T), alignof(T)));
}

inline std::string text(const uint3& i) {
  return "(" + std::to_string(i.x) + "," + std::to_string(i.y) + "," + std::to_string(i.z) + ")";
}

// Runs one block; an empty string or what went wrong.
inline std::string run_block(Block* b, const char* name, int64_t linear_block,
                             const std::function<void()>& body) {
  const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
  b->body = &body;
  b->shared_used = 0;
  b->shared_sites.clear();
  b->fibers.resize(threads);
  // Negative fault indices count from the end: -1 is the last block or thread.
  const int64_t blocks = int64_t{gridDim.x} * gridDim.y * gridDim.z;
  const int64_t skip_block = faults.skip_block < 0 ? blocks + faults.skip_block : faults.skip_block;
  const int64_t skip_thread =
      faults.skip_thread < 0 ? threads + faults.skip_thread : faults.skip_thread;
  const bool skip_here = linear_block == skip_block && faults.skip_kernel == name;
  for (unsigned t = 0; t < threads; ++t) {
    Fiber& f = b->fibers[t];
    if (f.stack == nullptr) f.stack = static_cast<char*>(malloc(kFiberStack));
    f.index = {t % blockDim.x, t / blockDim.x % blockDim.y, t / (blockDim.x * blockDim.y)};
    f.state = skip_here && t == skip_thread ? State::kSkipped : State::kRunnable;
    start_context(&f.context, f.stack, kFiberStack, fiber_main);
  }
  for (int64_t phase = 0;; ++phase) {
    const bool reverse = (linear_block + phase) % 2 == 1;
    for (unsigned k = 0; k < threads; ++k) {
      const unsigned t = reverse ? threads - 1 - k : k;
      if (b->fibers[t].state != State::kRunnable) continue;
      b->current = static_cast<int>(t);
      threadIdx = b->fibers[t].index;
      switch_to(&b->scheduler, &b->fibers[t].context);
    }
    const Fiber* waiting = nullptr;
    const Fiber* done = nullptr;
    for (const Fiber& f : b->fibers) {
      if (f.state == State::kAtBarrier) {
        if (waiting != nullptr && (f.barrier_line != waiting->barrier_line ||
                                   strcmp(f.barrier_file, waiting->barrier_file) != 0))
          return std::string(name) + ": threads " + text(waiting->index) + " and " + text(f.index) +
                 " wait at different __syncthreads() (" + waiting->barrier_file + ":" +
                 std::to_string(waiting->barrier_line) + ", " + f.barrier_file + ":" +
                 std::to_string(f.barrier_line) + ")";
        waiting = &f;
      } else if (f.state == State::kDone) {
        done = &f;
      }
    }
    if (waiting == nullptr) break;  // every thread returned
    if (done != nullptr)
      return std::string(name) + ": thread " + text(done->index) + " returned while thread " +
             text(waiting->index) + " waits at __syncthreads() (" + waiting->barrier_file + ":" +
             std::to_string(waiting->barrier_line) + ")";
    for (Fiber& f : b->fibers) {
      if (f.state == State::kAtBarrier) f.state = State::kRunnable;
    }
  }
  if (b->shared_peak > kMaxStaticShared)
    return std::string(name) + ": " + std::to_string(b->shared_peak) +
           " bytes of __shared__ memory per block, more than CUDA's 48 KiB of static shared "
           "memory";
  return "";
}

// The last error of this OS thread, as cudaGetLastError reports it, and its text.
inline thread_local cudaError_t last_error = cudaSuccess;
inline thread_local std::string last_text;

inline void fail(cudaError_t code, std::string message) {
  if (last_error == cudaSuccess) {
    last_error = code;
    last_text = std::move(message);
  }
}

inline void run_grid(const char* name, dim3 grid, dim3 threads, const std::function<void()>& body) {
  const uint64_t per_block = uint64_t{threads.x} * threads.y * threads.z;
  if (threads.x == 0 || threads.y == 0 || threads.z == 0 || grid.x == 0 || grid.y == 0 ||
      grid.z == 0 || per_block > kMaxThreadsPerBlock || threads.x > kMaxThreadsPerBlock ||
      threads.y > kMaxThreadsPerBlock || threads.z > kMaxBlockZ || grid.x > kMaxGridX ||
      grid.y > kMaxGridYZ || grid.z > kMaxGridYZ) {
    fail(cudaErrorInvalidConfiguration,
         std::string("invalid configuration argument: ") + name + " launched with grid " +
             text({grid.x, grid.y, grid.z}) + " and block " +
             text({threads.x, threads.y, threads.z}) +
             " (at most 1024 threads per block, block z <= 64, grid y and z <= 65535)");
    return;
  }
  launches += std::string(name) + "\t" + std::to_string(grid.x) + " " + std::to_string(grid.y) +
              " " + std::to_string(grid.z) + " " + std::to_string(threads.x) + " " +
              std::to_string(threads.y) + " " + std::to_string(threads.z) + "\n";
  if (faults.plan_only) return;
  const int64_t blocks = int64_t{grid.x} * grid.y * grid.z;
  std::string error;
#pragma omp parallel
  {
    // One Block per OS thread, kept from launch to launch with its fiber stacks.
    static thread_local Block* kept = new Block;
    Block* mine = kept;
    mine->hits.clear();
    mine->shared_peak = 0;
#pragma omp for schedule(dynamic, 1)
    for (int64_t k = 0; k < blocks; ++k) {
      block = mine;
      gridDim = grid;
      blockDim = threads;
      blockIdx = {static_cast<unsigned>(k % grid.x), static_cast<unsigned>(k / grid.x % grid.y),
                  static_cast<unsigned>(k / (int64_t{grid.x} * grid.y))};
      std::string message = run_block(mine, name, k, body);
      if (!message.empty()) {
#pragma omp critical(igc_emu_error)
        if (error.empty()) error = message;
      }
    }
#pragma omp critical(igc_emu_hits)
    for (const Hits& h : mine->hits) count_hit(&barrier_hits, h.file, h.line, h.count);
    block = nullptr;
  }
  if (!error.empty()) fail(cudaErrorLaunchFailure, "unspecified launch failure: " + error);
}

// At most `cap` blocks, or fewer under the grid_cap fault.
inline int64_t grid_cap(int64_t cap) {
  return faults.grid_cap > 0 && faults.grid_cap < cap ? faults.grid_cap : cap;
}

template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 threads, const char* name, Args&&... args) {
  const std::function<void()> body = [&]() { kernel(args...); };
  run_grid(name, grid, threads, body);
}

}  // namespace igc_emu

#define __syncthreads() ::igc_emu::barrier(__FILE__, __LINE__)

// ---- the runtime API the library calls -----------------------------------------

inline cudaError_t cudaGetLastError() {
  const cudaError_t e = igc_emu::last_error;
  igc_emu::last_error = cudaSuccess;
  return e;
}
inline const char* cudaGetErrorString(cudaError_t e) {
  // The detailed text of this thread's last failure, else CUDA's generic ones.
  if (e != cudaSuccess && !igc_emu::last_text.empty()) return igc_emu::last_text.c_str();
  return e == cudaSuccess ? "no error" : "emulated CUDA error";
}
inline cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
  memset(p, value, bytes);
  return cudaSuccess;
}

// Fault control for the tests (defined in cuda_emulation.cc).
extern "C" {
void igc_emu_drop_barrier(const char* file_suffix, int line);
void igc_emu_skip_thread(const char* kernel, int64_t block, int64_t thread);
void igc_emu_cap_grid(int64_t blocks);
int64_t igc_emu_barrier_hits(const char* file_suffix, int line);
void igc_emu_reset(void);
void igc_emu_plan_only(int on);
const char* igc_emu_launches(void);
const char* igc_emu_self_test(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                              unsigned bz, int big_shared, int early);
}

#endif  // IGC_MX_CUDA_EMULATION_H_
