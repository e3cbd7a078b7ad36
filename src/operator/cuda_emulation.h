// CUDA's built-ins for running this library's .cu files on the CPU, so that the
// test suite executes every CUDA kernel on machines without a GPU, with memory
// and race checks that a GPU does not make. Included by cuda_common.cuh when
// IGC_CUDA_EMULATION is defined, instead of the CUDA headers. It covers what the
// kernels here use and nothing more: no warp intrinsics, atomicAdd on float and
// double only.
//
// How a launch runs. Blocks run one after another on each OS thread (OpenMP
// spreads them over the threads). The threads of one block are fibers on one OS
// thread, each with its own stack and threadIdx. A fiber runs until it reaches
// __syncthreads() or returns; when every fiber of the block has done so, the next
// phase starts. So __syncthreads() is a real barrier: no thread passes it before
// every other thread of the block has reached it.
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
// The race check below reports the same bug directly.
//
// Memory checks. Kernels reach memory only through checked types: global and
// dynamic shared memory through igc::cuda::ptr<T> (Ptr<T> here, T* under nvcc),
// static __shared__ arrays through igc::cuda::shared_array<T, N> (Array here, T[N]
// under nvcc). Each load and store goes through a Ref (ArrayRef for an element of
// a shared array), which
//   - checks the address against its region: the device buffer a kernel argument
//     points into (igc_emu_device_buffer registers the buffers of a call; each
//     pointer argument finds its buffer at launch), the block's dynamic shared
//     memory, or the index range of each dimension of a shared array. An access
//     outside is a launch error naming the kernel, the block, the thread, the
//     region and the byte offset; it reads zeros and writes nowhere, so that the
//     process never touches memory it does not own;
//   - records the access for race detection, as compute-sanitizer's racecheck
//     does on a GPU. Two accesses of one byte by different threads, at least one a
//     write, race unless both are atomic or they are ordered: by a barrier between
//     them when both threads are in one block (shared memory is per block), and
//     never across blocks of one launch. Shared memory has a shadow word per 4
//     bytes (so two threads writing different bytes of one word race; the kernels
//     keep 4- and 8-byte values in shared memory), stamped with the block's phase;
//     each global buffer a shadow cell per element, stamped with the launch. A race
//     is a launch error naming the kernel, both threads and the address.
//
// Faults for the tests (igc_emu_* below): drop the barrier at one source line,
// make one thread skip the whole kernel or run as another thread, register a
// buffer or dynamic shared memory shorter than the launch uses, or cap the grid
// so that grid-stride loops wrap on small inputs. The tests use them to show that
// a deleted barrier, an idle thread, two threads doing one thread's work and an
// access past the end each make them fail.
#ifndef IGC_MX_CUDA_EMULATION_H_
#define IGC_MX_CUDA_EMULATION_H_

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <tuple>
#include <type_traits>
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
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchFailure = 719
};

#define __global__
#define __device__
#define __forceinline__ inline
// Kernel pointers are checked Ptr objects here, which restrict cannot qualify.
#define __restrict__
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
constexpr size_t kMaxShared = 48 << 10;  // static + dynamic, for a kernel that does not opt in
// Room for a kernel that asks for more than the limit, so that the launch can
// finish and report it; beyond this the process stops.
constexpr size_t kSharedArena = 1 << 20;
constexpr size_t kFiberStack = 128 << 10;
// Each OS thread's Block lies in one aligned span, so that an address in its
// shared memory finds it without a thread-local lookup (see block_of).
constexpr uintptr_t kBlockSpan = 2 << 20;
constexpr size_t kSharedWord = 4;  // bytes per shadow word of shared memory

// The faults (see the top of this file), process-wide; set by the igc_emu_*
// functions while no kernel runs.
struct Faults {
  std::string barrier_file;  // drop the __syncthreads() at this file (suffix) and line
  int barrier_line = -1;
  std::string skip_kernel;  // this kernel's thread (skip_block, skip_thread) does nothing
  int64_t skip_block = 0, skip_thread = 0;
  std::string alias_kernel;  // its thread (alias_block, alias_thread) runs as alias_as
  int64_t alias_block = 0, alias_thread = 0, alias_as = 0;
  std::string trim_buffer;  // buffers registered under this name lose bytes at each end
  int64_t trim_front = 0, trim_back = 0;
  int64_t trim_dynamic = 0;  // bytes of dynamic shared memory fewer than a launch asks for
  int64_t grid_cap = 0;      // grid_cap() returns at most this many blocks (0: no cap)
  bool plan_only = false;    // record launches without running them (see launches)
};
inline Faults faults;
// Every launch since the last igc_emu_reset: "kernel<TAB>gx gy gz bx by bz shared",
// one a line (shared: bytes of dynamic shared memory).
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

// ---- memory regions and their shadows -------------------------------------------

enum class Space : uint8_t { kGlobal, kShared };
enum class Access : uint8_t { kRead, kWrite, kAtomic };

// What one granule of a global buffer saw in the current launch: the last write
// and the reads since, as (1 + linear block, packed phase and thread). Cells of an
// older launch (epoch) count as empty.
struct GlobalCell {
  uint32_t epoch, write_block, write_at, read_block, read_at;
};
constexpr uint32_t kSeveralBlocks = 0xffffffffu;  // read_block: readers in more than one block
constexpr uint32_t kSeveralThreads = 0x7ff;       // thread field: more than one thread
// phase (20 bits, modulo) | thread (11 bits) | atomic (1 bit)
inline uint32_t pack(uint32_t phase, uint32_t thread, bool atomic) {
  return (phase & 0xfffffu) << 12 | thread << 1 | (atomic ? 1u : 0u);
}
inline uint32_t phase_of(uint32_t at) { return at >> 12; }
inline uint32_t thread_of(uint32_t at) { return (at >> 1) & 0x7ffu; }
inline bool atomic_of(uint32_t at) { return (at & 1u) != 0; }

struct Block;

// Memory a checked pointer may reach: a registered device buffer, or a block's
// shared memory. Global regions keep their shadow; shared ones use the block's.
struct Region {
  uintptr_t begin = 0, end = 0;            // what may be accessed
  uintptr_t home_begin = 0, home_end = 0;  // what a pointer argument is looked up in
  Space space = Space::kGlobal;
  std::string name;
  size_t granule = 1;           // bytes per shadow cell (global)
  GlobalCell* cells = nullptr;  // allocated by the first launch that runs
  Block* block = nullptr;       // shared: the block whose memory it is

  Region() = default;
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  ~Region() { free(cells); }
};

// The device buffers of the current call, registered while no kernel runs.
inline std::vector<std::unique_ptr<Region>> buffers;
inline uint32_t launch_epoch = 0;
// Serialises the shadow updates of global cells between blocks running in parallel.
inline std::atomic<bool> cell_locks[256];

inline const Region* find_buffer(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  for (const auto& r : buffers) {
    if (a >= r->home_begin && a < r->home_end) return r.get();
  }
  return nullptr;
}

// ---- fibers ---------------------------------------------------------------------

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
  uint3 index;  // its threadIdx (another thread's under the alias fault)
  uint3 own;    // its own place in the block, which reports name
  State state;
  const char* barrier_file = nullptr;  // where it waits
  int barrier_line = 0;
};

// One OS thread's block in progress.
struct Block {
  Context scheduler;
  std::vector<Fiber> fibers;
  const std::function<void()>* body = nullptr;
  const char* kernel = "";
  int current = 0;
  int64_t linear = 0;                // this block's index in the grid, x fastest
  uint32_t phase = 0;                // barrier phases this block has completed
  uint32_t epoch = 0;                // stamps the shadow in this phase; unique per OS thread
  const char* phase_file = nullptr;  // the __syncthreads() that began the phase
  int phase_line = 0;
  alignas(64) unsigned char shared[kSharedArena];
  // Per 4-byte word of `shared`: epoch (32 bits), writer (16: 1 + thread, 0x8000 if
  // atomic) and reader (16: 1 + thread, or kSeveralThreads).
  uint64_t* shadow = static_cast<uint64_t*>(calloc(kSharedArena / kSharedWord, sizeof(uint64_t)));
  size_t shared_used = 0, static_peak = 0, dynamic = 0;
  Region dynamic_region, static_region;
  struct Site {
    const void* key;
    size_t offset, size;
  };
  std::vector<Site> shared_sites;  // the __shared__ variables declared so far
  std::vector<Hits> hits;          // this thread's barrier counts
  std::string error;               // the first error of the block
  bool illegal_address = false;    // whether it is an access out of bounds
};
inline thread_local Block* block = nullptr;
static_assert(sizeof(Block) <= kBlockSpan, "a Block must fit its span");

inline Block* new_block() { return new (aligned_alloc(kBlockSpan, kBlockSpan)) Block; }
// The Block whose shared memory holds address p.
inline Block* block_of(const void* p) {
  return reinterpret_cast<Block*>(reinterpret_cast<uintptr_t>(p) & ~(kBlockSpan - 1));
}

// ---- what the checks report -------------------------------------------------------

inline std::string text(const uint3& i) {
  return "(" + std::to_string(i.x) + "," + std::to_string(i.y) + "," + std::to_string(i.z) + ")";
}
inline uint3 thread_at(uint32_t t) {
  return {t % blockDim.x, t / blockDim.x % blockDim.y, t / (blockDim.x * blockDim.y)};
}
inline uint3 block_at(int64_t k) {
  return {static_cast<unsigned>(k % gridDim.x), static_cast<unsigned>(k / gridDim.x % gridDim.y),
          static_cast<unsigned>(k / (int64_t{gridDim.x} * gridDim.y))};
}
inline const char* verb(Access a) {
  return a == Access::kRead ? "reads" : a == Access::kWrite ? "writes" : "atomically updates";
}
inline std::string where(const Region& r, uintptr_t a) {
  const int64_t offset = static_cast<int64_t>(a - r.begin);
  return "byte offset " + std::to_string(offset) + " of " + r.name + " (" +
         std::to_string(r.end - r.begin) + " bytes)";
}
// The phase a shared-memory race happened in.
inline std::string phase_text(const Block& b) {
  if (b.phase_file == nullptr) return "before the first __syncthreads()";
  return "after the __syncthreads() at " + std::string(b.phase_file) + ":" +
         std::to_string(b.phase_line) + ", before the next";
}

// The first error of the current block: "<kernel>: block (..), thread (..) <what>";
// an access out of bounds with illegal_address.
inline void report(const std::string& what, bool illegal_address = false) {
  Block* b = block;
  if (!b->error.empty()) return;
  b->error = std::string(b->kernel) + ": block " + text(blockIdx) + ", thread " +
             text(b->fibers[b->current].own) + " " + what;
  b->illegal_address = illegal_address;
}

// An access outside its region: the error, then somewhere harmless to go.
inline void* outside(const Region* r, uintptr_t a, size_t size, Access access) {
  std::string what = std::string(verb(access)) + " " + std::to_string(size) + " bytes ";
  if (r == nullptr) {
    char address[32];
    snprintf(address, sizeof address, "%#llx", static_cast<unsigned long long>(a));
    what += std::string("at address ") + address +
            ", which lies in no device buffer of the call (accesses are checked against "
            "the buffers registered with igc_emu_device_buffer)";
  } else {
    what += "at " + where(*r, a) + ": out of bounds";
  }
  report(what, true);
  alignas(16) static thread_local unsigned char scratch[64];
  memset(scratch, 0, sizeof scratch);
  return scratch;
}

// Where address a lies in block b's shared memory: the dynamic shared memory, or a
// __shared__ variable.
inline std::string shared_where(const Block& b, uintptr_t a) {
  if (a >= b.dynamic_region.begin && a < b.dynamic_region.end) return where(b.dynamic_region, a);
  const uintptr_t base = reinterpret_cast<uintptr_t>(b.shared);
  for (const Block::Site& site : b.shared_sites) {
    if (a >= base + site.offset && a < base + site.offset + site.size)
      return "byte offset " + std::to_string(a - base - site.offset) +
             " of a __shared__ variable (" + std::to_string(site.size) + " bytes)";
  }
  return where(b.static_region, a);
}

inline void shared_race(const Block& b, uintptr_t a, Access access, uint32_t other, bool wrote) {
  const uint32_t thread = (other & 0x7ffu) - 1;
  const std::string them =
      (other & 0x7ffu) == kSeveralThreads ? "other threads" : "thread " + text(thread_at(thread));
  const bool atomic = (other & 0x8000u) != 0;
  report(std::string(verb(access)) + " " + shared_where(b, a) + ", which " + them +
         (wrote ? (atomic ? " atomically updated" : " wrote") : " read") + " in the same phase (" +
         phase_text(b) + "): a shared-memory race");
}

// Records an access of shared memory by the current thread of block b; reports a race.
__attribute__((noinline)) inline void track_shared(Block* b, uintptr_t a, size_t size,
                                                   Access access) {
  const uint64_t stamp = uint64_t{b->epoch} << 32;
  const uint32_t me = static_cast<uint32_t>(b->current) + 1;
  const uintptr_t base = reinterpret_cast<uintptr_t>(b->shared);
  const size_t first = (a - base) / kSharedWord, last = (a + size - 1 - base) / kSharedWord;
  uint64_t* cell = b->shadow + first;
  const auto other = [me](uint32_t field) { return field != 0 && (field & 0x7ffu) != me; };
  for (size_t k = 0; k <= last - first; ++k) {
    const uint64_t c = cell[k];
    uint32_t writer = 0, reader = 0;
    if ((c & ~uint64_t{0xffffffff}) == stamp) {
      writer = static_cast<uint32_t>(c >> 16) & 0xffffu;
      reader = static_cast<uint32_t>(c) & 0xffffu;
    }
    if (access == Access::kRead) {
      if (other(writer)) return shared_race(*b, a, access, writer, true);
      if (reader == me || reader == kSeveralThreads) continue;  // nothing new
      reader = reader == 0 ? me : kSeveralThreads;
    } else if (access == Access::kWrite) {
      if (other(writer)) return shared_race(*b, a, access, writer, true);
      if (other(reader)) return shared_race(*b, a, access, reader, false);
      writer = me;
    } else {
      if (other(writer) && (writer & 0x8000u) == 0) return shared_race(*b, a, access, writer, true);
      if (other(reader)) return shared_race(*b, a, access, reader, false);
      writer = 0x8000u | ((writer & 0x8000u) && other(writer) ? kSeveralThreads : me);
    }
    cell[k] = stamp | uint64_t{writer} << 16 | reader;
  }
}

// Whether a shared shadow word already holds what an access would record there:
// the common case of a thread reading what it or several threads read, or
// writing what it wrote, in this phase.
__attribute__((always_inline)) inline bool recorded(uint64_t c, uint64_t stamp, uint32_t me,
                                                    Access a) {
  if ((c & ~uint64_t{0xffffffff}) != stamp) return false;
  const uint32_t writer = static_cast<uint32_t>(c >> 16) & 0xffffu;
  const uint32_t reader = static_cast<uint32_t>(c) & 0xffffu;
  if (a == Access::kRead)
    return (writer == 0 || writer == me) && (reader == me || reader == kSeveralThreads);
  if (a == Access::kWrite) return writer == me && (reader == 0 || reader == me);
  return false;
}

// Whether an earlier access (block field, packed field) may run at the same time
// as the current thread's: from another block, or from another thread of this
// block in this phase.
inline bool unordered(uint32_t other_block, uint32_t at, uint32_t my_block, uint32_t phase,
                      uint32_t me) {
  if (other_block == 0) return false;
  if (other_block != my_block) return true;
  return phase_of(at) == (phase & 0xfffffu) && thread_of(at) != me;
}

inline void global_race(const Region& r, uintptr_t a, Access access, uint32_t other_block,
                        uint32_t at, bool wrote) {
  std::string them;
  if (other_block == kSeveralBlocks) {
    them = "threads of other blocks";
  } else {
    them = thread_of(at) == kSeveralThreads ? "other threads"
                                            : "thread " + text(thread_at(thread_of(at)));
    them += " of block " + text(block_at(other_block - 1));
  }
  const bool same_block = other_block == static_cast<uint32_t>(block->linear) + 1;
  report(std::string(verb(access)) + " " + where(r, a) + ", which " + them +
         (wrote ? (atomic_of(at) ? " atomically updated" : " wrote") : " read") +
         (same_block ? " in the same phase (" + phase_text(*block) + ")"
                     : " in the same launch (nothing orders the blocks of a launch)") +
         ": a global-memory race");
}

// Records an access of a global buffer by the current thread; reports a race.
inline void track_global(const Region& r, uintptr_t a, size_t size, Access access) {
  Block* b = block;
  const uint32_t my_block = static_cast<uint32_t>(b->linear) + 1, phase = b->phase;
  const uint32_t me = static_cast<uint32_t>(b->current);
  const size_t first = (a - r.begin) / r.granule, last = (a + size - 1 - r.begin) / r.granule;
  std::atomic<bool>& lock = cell_locks[(reinterpret_cast<uintptr_t>(&r) / 64 + first / 64) % 256];
  std::atomic<bool>& lock2 = cell_locks[(reinterpret_cast<uintptr_t>(&r) / 64 + last / 64) % 256];
  while (lock.exchange(true, std::memory_order_acquire)) {
  }
  while (&lock2 != &lock && lock2.exchange(true, std::memory_order_acquire)) {
  }
  for (size_t g = first; g <= last; ++g) {
    GlobalCell& c = r.cells[g];
    if (c.epoch != launch_epoch) c = {launch_epoch, 0, 0, 0, 0};
    const uintptr_t at = r.begin + g * r.granule < a ? a : r.begin + g * r.granule;
    if (access == Access::kRead) {
      if (unordered(c.write_block, c.write_at, my_block, phase, me)) {
        global_race(r, at, access, c.write_block, c.write_at, true);
        break;
      }
      if (c.read_block == 0 ||
          (c.read_block == my_block && phase_of(c.read_at) != (phase & 0xfffffu))) {
        c.read_block = my_block;
        c.read_at = pack(phase, me, false);
      } else if (c.read_block == my_block) {
        if (thread_of(c.read_at) != me) c.read_at = pack(phase, kSeveralThreads, false);
      } else {
        c.read_block = kSeveralBlocks;
      }
      continue;
    }
    const bool atomic = access == Access::kAtomic;
    const bool write_races = unordered(c.write_block, c.write_at, my_block, phase, me);
    if (write_races && !(atomic && atomic_of(c.write_at))) {
      global_race(r, at, access, c.write_block, c.write_at, true);
      break;
    }
    if (unordered(c.read_block, c.read_at, my_block, phase, me)) {
      global_race(r, at, access, c.read_block, c.read_at, false);
      break;
    }
    // Atomics of several threads: any later plain access of another races with one.
    c.write_block = write_races && c.write_block != my_block ? kSeveralBlocks : my_block;
    c.write_at = pack(phase, write_races ? kSeveralThreads : me, atomic);
  }
  if (&lock2 != &lock) lock2.store(false, std::memory_order_release);
  lock.store(false, std::memory_order_release);
}

// Where an access of `size` bytes at p through region r goes: p itself, recorded
// for the race check, or, outside r, a scratch slot (after reporting it).
// Records an access of shared memory of block b, the common case inline.
__attribute__((always_inline)) inline void note_shared(Block* b, uintptr_t at, size_t size,
                                                       Access a) {
  const uintptr_t base = reinterpret_cast<uintptr_t>(b->shared);
  const size_t first = (at - base) / kSharedWord, last = (at + size - 1 - base) / kSharedWord;
  const uint64_t stamp = uint64_t{b->epoch} << 32;
  const uint32_t me = static_cast<uint32_t>(b->current) + 1;
  for (size_t k = first; k <= last; ++k) {
    if (!recorded(b->shadow[k], stamp, me, a)) return track_shared(b, at, size, a);
  }
}

// Every load and store of a kernel through a Ptr comes here: the common case is inline.
__attribute__((always_inline)) inline void* access(const Region* r, const void* p, size_t size,
                                                   Access a) {
  const uintptr_t at = reinterpret_cast<uintptr_t>(p);
  if (r != nullptr && at >= r->begin && at <= r->end && size <= r->end - at) {
    if (r->space == Space::kShared) {
      note_shared(r->block, at, size, a);
    } else {
      track_global(*r, at, size, a);
    }
    return const_cast<void*>(p);
  }
  return outside(r, at, size, a);
}

// ---- checked pointers, references and shared arrays ---------------------------------

template <typename T>
class Ptr;

// One element of memory, read or written through a checked access.
template <typename T>
class Ref {
 public:
  using Value = std::remove_const_t<T>;
  Ref(T* p, const Region* r) : p_(p), region_(r) {}
  Ref(const Ref&) = default;

  operator Value() const {  // NOLINT: reads the element where a value is wanted
    Value v;
    memcpy(&v, access(region_, p_, sizeof(T), Access::kRead), sizeof(T));
    return v;
  }
  template <typename U = T, std::enable_if_t<!std::is_const<U>::value, int> = 0>
  Ref& operator=(const Value& v) {
    memcpy(access(region_, p_, sizeof(T), Access::kWrite), &v, sizeof(T));
    return *this;
  }
  Ref& operator=(const Ref& other) { return *this = static_cast<Value>(other); }
  template <typename V>
  Ref& operator+=(const V& v) {
    return *this = static_cast<Value>(static_cast<Value>(*this) + v);
  }
  template <typename V>
  Ref& operator-=(const V& v) {
    return *this = static_cast<Value>(static_cast<Value>(*this) - v);
  }
  Ptr<T> operator&() const { return Ptr<T>(p_, region_); }

 private:
  T* p_;
  const Region* region_;
};

// A pointer into a region; arithmetic is free, every access is checked.
template <typename T>
class Ptr {
 public:
  Ptr() = default;
  Ptr(std::nullptr_t) {}  // NOLINT: as T* converts from nullptr
  // A kernel argument: the device buffer it points into, found once at launch.
  explicit Ptr(T* p) : p_(p), region_(find_buffer(p)) {}
  Ptr(T* p, const Region* r) : p_(p), region_(r) {}
  template <typename U, typename = std::enable_if_t<std::is_convertible<U*, T*>::value>>
  Ptr(const Ptr<U>& other) : p_(other.get()), region_(other.region()) {}  // NOLINT: as T*

  T* get() const { return p_; }
  const Region* region() const { return region_; }
  template <typename I>
  Ptr operator+(I i) const {
    return Ptr(moved(static_cast<int64_t>(i)), region_);
  }
  template <typename I>
  Ptr operator-(I i) const {
    return Ptr(moved(-static_cast<int64_t>(i)), region_);
  }
  template <typename I>
  Ptr& operator+=(I i) {
    p_ = moved(static_cast<int64_t>(i));
    return *this;
  }
  Ref<T> operator*() const { return Ref<T>(p_, region_); }
  template <typename I>
  Ref<T> operator[](I i) const {
    return Ref<T>(moved(static_cast<int64_t>(i)), region_);
  }

 private:
  // p_ + n, in unsigned arithmetic: a pointer may point anywhere until it is used.
  T* moved(int64_t n) const {
    return reinterpret_cast<T*>(reinterpret_cast<uintptr_t>(p_) +
                                static_cast<uintptr_t>(n * static_cast<int64_t>(sizeof(T))));
  }
  T* p_ = nullptr;
  const Region* region_ = nullptr;
};

// An element of a shared array (whose index is checked already), read or written
// with the race check.
template <typename T>
class ArrayRef {
 public:
  using Value = std::remove_const_t<T>;
  ArrayRef(T* p, Block* b) : p_(p), block_(b) {}
  ArrayRef(const ArrayRef&) = default;

  operator Value() const {  // NOLINT: reads the element where a value is wanted
    note_shared(block_, reinterpret_cast<uintptr_t>(p_), sizeof(T), Access::kRead);
    Value v;
    memcpy(&v, p_, sizeof(T));
    return v;
  }
  template <typename U = T, std::enable_if_t<!std::is_const<U>::value, int> = 0>
  ArrayRef& operator=(const Value& v) {
    note_shared(block_, reinterpret_cast<uintptr_t>(p_), sizeof(T), Access::kWrite);
    memcpy(p_, &v, sizeof(T));
    return *this;
  }
  ArrayRef& operator=(const ArrayRef& other) { return *this = static_cast<Value>(other); }
  template <typename V>
  ArrayRef& operator+=(const V& v) {
    return *this = static_cast<Value>(static_cast<Value>(*this) + v);
  }
  template <typename V>
  ArrayRef& operator-=(const V& v) {
    return *this = static_cast<Value>(static_cast<Value>(*this) - v);
  }
  Ptr<T> operator&() const { return Ptr<T>(p_, &block_->static_region); }

 private:
  T* p_;
  Block* block_;
};

template <typename T, int N>
struct Array;
template <typename T>
struct IsArray : std::false_type {};
template <typename T, int N>
struct IsArray<Array<T, N>> : std::true_type {};

inline void bad_index(int64_t i, int n) {
  report("indexes a shared array of " + std::to_string(n) + " elements with " + std::to_string(i) +
             ": out of bounds",
         true);
}

// items[i] of a shared array: the sub-array, or an ArrayRef to the element.
template <typename T, int N>
__attribute__((always_inline)) inline decltype(auto) element(T (&items)[N], int64_t i) {
  if (i < 0 || i >= N) {
    bad_index(i, N);
    i = 0;
  }
  if constexpr (IsArray<std::remove_const_t<T>>::value) {
    return (items[i]);
  } else {
    return ArrayRef<T>(&items[i], block_of(items));
  }
}

// T[N] in shared memory, each index checked against N.
template <typename T, int N>
struct Array {
  T items[N];
  decltype(auto) operator[](int64_t i) { return element(items, i); }
  decltype(auto) operator[](int64_t i) const { return element(items, i); }
};

// ---- barriers and shared memory ------------------------------------------------------

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
  for (const Block::Site& site : b->shared_sites) {
    if (site.key == key) return b->shared + site.offset;
  }
  const size_t offset = (b->shared_used + align - 1) / align * align;
  if (offset + size > kSharedArena) {
    fprintf(stderr, "cuda_emulation: %zu bytes of shared memory per block\n", offset + size);
    abort();
  }
  b->shared_used = offset + size;
  b->shared_sites.push_back({key, offset, size});
  memset(b->shared + offset, 0xff, size);  // stale data is never a plausible value
  return b->shared + offset;
}

template <typename T, int Site>
T& shared() {
  static const char key = 0;  // one per declaration site and type
  return *static_cast<T*>(shared_storage(&key, sizeof(T), alignof(T)));
}

// The block's dynamic shared memory (extern __shared__), as many bytes as the launch gave.
template <typename T>
Ptr<T> dynamic_shared() {
  Block* b = block;
  return Ptr<T>(reinterpret_cast<T*>(b->shared), &b->dynamic_region);
}

// ---- launches ----------------------------------------------------------------------

inline void set_region(Region* r, uintptr_t begin, uintptr_t end, Space space, std::string name) {
  r->begin = r->home_begin = begin;
  r->end = r->home_end = end;
  r->space = space;
  r->name = std::move(name);
}

// A new stamp for the shared shadow: the accesses of earlier phases are ordered.
inline void next_phase(Block* b) {
  if (++b->epoch == 0) {  // wrapped: old stamps could look current
    memset(b->shadow, 0, kSharedArena / kSharedWord * sizeof(uint64_t));
    b->epoch = 1;
  }
}

inline bool matches(const std::string& kernel, const char* name, int64_t at, int64_t count,
                    int64_t linear) {
  return kernel == name && linear == (at < 0 ? count + at : at);
}

// Runs one block; an empty string or what went wrong.
inline std::string run_block(Block* b, const char* name, int64_t linear, size_t dynamic,
                             const std::function<void()>& body) {
  const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
  b->body = &body;
  b->kernel = name;
  b->linear = linear;
  b->phase = 0;
  b->phase_file = nullptr;
  b->error.clear();
  b->illegal_address = false;
  next_phase(b);
  const uintptr_t arena = reinterpret_cast<uintptr_t>(b->shared);
  const size_t trim = static_cast<size_t>(faults.trim_dynamic) < dynamic
                          ? static_cast<size_t>(faults.trim_dynamic)
                          : dynamic;
  set_region(&b->dynamic_region, arena, arena + dynamic - trim, Space::kShared,
             "dynamic shared memory");
  set_region(&b->static_region, arena, arena + kSharedArena, Space::kShared, "shared memory");
  b->dynamic_region.block = b->static_region.block = b;
  b->dynamic = dynamic;
  b->shared_used = (dynamic + 63) / 64 * 64;
  b->shared_sites.clear();
  memset(b->shared, 0xff, dynamic);  // stale data is never a plausible value
  b->fibers.resize(threads);
  // Negative fault indices count from the end: -1 is the last block or thread.
  const int64_t blocks = int64_t{gridDim.x} * gridDim.y * gridDim.z;
  const bool skip_here = matches(faults.skip_kernel, name, faults.skip_block, blocks, linear);
  const bool alias_here = matches(faults.alias_kernel, name, faults.alias_block, blocks, linear);
  const auto thread = [threads](int64_t t) { return t < 0 ? threads + t : t; };
  for (unsigned t = 0; t < threads; ++t) {
    Fiber& f = b->fibers[t];
    if (f.stack == nullptr) f.stack = static_cast<char*>(malloc(kFiberStack));
    f.own = thread_at(t);
    const bool aliased = alias_here && t == thread(faults.alias_thread);
    f.index = aliased ? thread_at(static_cast<uint32_t>(thread(faults.alias_as))) : f.own;
    f.state = skip_here && t == thread(faults.skip_thread) ? State::kSkipped : State::kRunnable;
    start_context(&f.context, f.stack, kFiberStack, fiber_main);
  }
  for (int64_t phase = 0;; ++phase) {
    const bool reverse = (linear + phase) % 2 == 1;
    for (unsigned k = 0; k < threads; ++k) {
      const unsigned t = reverse ? threads - 1 - k : k;
      if (b->fibers[t].state != State::kRunnable) continue;
      b->current = static_cast<int>(t);
      threadIdx = b->fibers[t].index;
      switch_to(&b->scheduler, &b->fibers[t].context);
    }
    if (!b->error.empty()) return b->error;
    const Fiber* waiting = nullptr;
    const Fiber* done = nullptr;
    for (const Fiber& f : b->fibers) {
      if (f.state == State::kAtBarrier) {
        if (waiting != nullptr && (f.barrier_line != waiting->barrier_line ||
                                   strcmp(f.barrier_file, waiting->barrier_file) != 0))
          return std::string(name) + ": threads " + text(waiting->own) + " and " + text(f.own) +
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
      return std::string(name) + ": thread " + text(done->own) + " returned while thread " +
             text(waiting->own) + " waits at __syncthreads() (" + waiting->barrier_file + ":" +
             std::to_string(waiting->barrier_line) + ")";
    for (Fiber& f : b->fibers) {
      if (f.state == State::kAtBarrier) f.state = State::kRunnable;
    }
    next_phase(b);
    ++b->phase;
    b->phase_file = waiting->barrier_file;
    b->phase_line = waiting->barrier_line;
  }
  const size_t static_bytes = b->shared_used - (dynamic + 63) / 64 * 64;
  if (static_bytes > b->static_peak) b->static_peak = static_bytes;
  if (static_bytes > kMaxShared)
    return std::string(name) + ": " + std::to_string(static_bytes) +
           " bytes of __shared__ memory per block, more than CUDA's 48 KiB of static shared "
           "memory";
  if (static_bytes + dynamic > kMaxShared)
    return std::string(name) + ": " + std::to_string(static_bytes) + " bytes of static and " +
           std::to_string(dynamic) +
           " of dynamic shared memory per block, more than the 48 KiB a kernel gets without "
           "opting in";
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

inline bool valid_configuration(dim3 grid, dim3 threads) {
  const uint64_t per_block = uint64_t{threads.x} * threads.y * threads.z;
  return threads.x != 0 && threads.y != 0 && threads.z != 0 && grid.x != 0 && grid.y != 0 &&
         grid.z != 0 && per_block <= kMaxThreadsPerBlock && threads.x <= kMaxThreadsPerBlock &&
         threads.y <= kMaxThreadsPerBlock && threads.z <= kMaxBlockZ && grid.x <= kMaxGridX &&
         grid.y <= kMaxGridYZ && grid.z <= kMaxGridYZ;
}

inline void run_grid(const char* name, dim3 grid, dim3 threads, size_t dynamic,
                     const std::function<void()>& body) {
  if (!valid_configuration(grid, threads)) {
    fail(cudaErrorInvalidConfiguration,
         std::string("invalid configuration argument: ") + name + " launched with grid " +
             text({grid.x, grid.y, grid.z}) + " and block " +
             text({threads.x, threads.y, threads.z}) +
             " (at most 1024 threads per block, block z <= 64, grid y and z <= 65535)");
    return;
  }
  if (dynamic > kMaxShared) {
    fail(cudaErrorInvalidValue, std::string("invalid argument: ") + name + " launched with " +
                                    std::to_string(dynamic) +
                                    " bytes of dynamic shared memory, more than 48 KiB");
    return;
  }
  launches += std::string(name) + "\t" + std::to_string(grid.x) + " " + std::to_string(grid.y) +
              " " + std::to_string(grid.z) + " " + std::to_string(threads.x) + " " +
              std::to_string(threads.y) + " " + std::to_string(threads.z) + " " +
              std::to_string(dynamic) + "\n";
  if (faults.plan_only) return;
  for (const auto& r : buffers) {
    if (r->cells == nullptr && r->end > r->begin) {
      const size_t cells = (r->end - r->begin + r->granule - 1) / r->granule;
      r->cells = static_cast<GlobalCell*>(calloc(cells, sizeof(GlobalCell)));
      if (r->cells == nullptr) {
        fprintf(stderr, "cuda_emulation: no memory for the shadow of %s\n", r->name.c_str());
        abort();
      }
    }
  }
  ++launch_epoch;
  const int64_t blocks = int64_t{grid.x} * grid.y * grid.z;
  std::string error;
  bool illegal = false;
  std::atomic<bool> failed{false};  // the rest of the grid is skipped, as a GPU aborts it
#pragma omp parallel
  {
    // One Block per OS thread, kept from launch to launch with its fiber stacks.
    static thread_local Block* kept = new_block();
    Block* mine = kept;
    mine->hits.clear();
    mine->static_peak = 0;
#pragma omp for schedule(dynamic, 1)
    for (int64_t k = 0; k < blocks; ++k) {
      if (failed.load(std::memory_order_relaxed)) continue;
      block = mine;
      gridDim = grid;
      blockDim = threads;
      blockIdx = block_at(k);
      std::string message = run_block(mine, name, k, dynamic, body);
      if (!message.empty()) {
        failed = true;
#pragma omp critical(igc_emu_error)
        if (error.empty()) {
          error = message;
          illegal = mine->illegal_address;
        }
      }
    }
#pragma omp critical(igc_emu_hits)
    for (const Hits& h : mine->hits) count_hit(&barrier_hits, h.file, h.line, h.count);
    block = nullptr;
  }
  if (error.empty()) return;
  fail(illegal ? cudaErrorIllegalAddress : cudaErrorLaunchFailure,
       (illegal ? "an illegal memory access was encountered: " : "unspecified launch failure: ") +
           error);
}

// At most `cap` blocks, or fewer under the grid_cap fault.
inline int64_t grid_cap(int64_t cap) {
  return faults.grid_cap > 0 && faults.grid_cap < cap ? faults.grid_cap : cap;
}

// kernel<<<grid, threads, dynamic>>>(args...): each pointer argument becomes a Ptr
// into its device buffer, once for the whole launch.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 threads, size_t dynamic, const char* name,
            Args&&... args) {
  std::tuple<std::decay_t<Params>...> params(
      static_cast<std::decay_t<Params>>(std::forward<Args>(args))...);
  const std::function<void()> body = [&]() { std::apply(kernel, params); };
  run_grid(name, grid, threads, dynamic, body);
}

}  // namespace igc_emu

#define __syncthreads() ::igc_emu::barrier(__FILE__, __LINE__)

// atomicAdd on float and double, in shared or global memory. Blocks run in
// parallel on the CPU, so the addition itself is a compare-and-swap.
template <typename T>
T atomicAdd(igc_emu::Ptr<T> p, T value) {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                "atomicAdd: float or double");
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  Bits* at =
      static_cast<Bits*>(igc_emu::access(p.region(), p.get(), sizeof(T), igc_emu::Access::kAtomic));
  Bits old = __atomic_load_n(at, __ATOMIC_RELAXED), updated;
  T before;
  do {
    memcpy(&before, &old, sizeof(T));
    const T after = before + value;
    memcpy(&updated, &after, sizeof(T));
  } while (
      !__atomic_compare_exchange_n(at, &old, updated, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  return before;
}

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
// Only inside one device buffer, as cudaMemsetAsync on a GPU.
inline cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
  if (bytes == 0) return cudaSuccess;
  const igc_emu::Region* r = igc_emu::find_buffer(p);
  const uintptr_t at = reinterpret_cast<uintptr_t>(p);
  if (r == nullptr || at < r->begin || at > r->end || bytes > r->end - at) {
    igc_emu::last_text = "invalid argument: cudaMemsetAsync of " + std::to_string(bytes) +
                         " bytes " +
                         (r == nullptr ? std::string("outside every device buffer")
                                       : "at " + igc_emu::where(*r, at) + ": out of bounds");
    return cudaErrorInvalidValue;
  }
  memset(p, value, bytes);
  return cudaSuccess;
}

// Fault control and checks for the tests (defined in cuda_emulation.cc).
extern "C" {
void igc_emu_drop_barrier(const char* file_suffix, int line);
void igc_emu_skip_thread(const char* kernel, int64_t block, int64_t thread);
void igc_emu_alias_thread(const char* kernel, int64_t block, int64_t thread, int64_t as_thread);
void igc_emu_trim_buffer(const char* name, int64_t front_bytes, int64_t back_bytes);
void igc_emu_trim_dynamic_shared(int64_t bytes);
void igc_emu_cap_grid(int64_t blocks);
int64_t igc_emu_barrier_hits(const char* file_suffix, int line);
void igc_emu_reset(void);
void igc_emu_plan_only(int on);
const char* igc_emu_launches(void);
int igc_emu_device_buffer(const void* pointer, int64_t bytes, int64_t granule, const char* name);
void igc_emu_forget_buffers(void);
const char* igc_emu_self_test(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                              unsigned bz, int big_shared, int early);
const char* igc_emu_bug_test(const char* bug);
}

#endif  // IGC_MX_CUDA_EMULATION_H_
