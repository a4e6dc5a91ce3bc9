// Memory for the buffers of JIT-compiled layers (z, transposed weights,
// results). The JIT'd code allocates through MLIR's generic allocation
// functions, which JitLayer binds to this pool: freed blocks are kept and
// handed out again, so a layer called repeatedly reuses memory whose pages
// are already mapped instead of faulting fresh pages in on every call (which
// cost more than the arithmetic of a batch-1 call on this project's VMs).
#pragma once
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace einstruct::bufferpool {

// A 64-byte aligned block of at least `bytes`; null when the system has no
// memory. Over-aligned blocks (align > 64, a power of two) are not pooled.
void *allocate(size_t bytes);
void *allocateAligned(size_t bytes, size_t align);
void release(void *block);

// Cached (free) bytes are capped at the most the pool has ever handed out
// at once, kept between an eighth of physical memory (at least 256 MiB)
// and a half; beyond it blocks go back to the system. So a workload that
// repeats its calls finds all its memory mapped, and the pool never holds
// more than was once live. (A long sequence mixer's call frees hundreds of
// MB, Hydra's whole block at L = 4096 2.9 GB per thread: under a fixed
// eighth, two threads' blocks were faulted in afresh on every call.)
size_t maxCachedBytes();

// A standard allocator on the pool, for transient host buffers of the same
// sizes call after call (row gathers, expert outputs).
template <class T> struct Allocator {
  using value_type = T;
  Allocator() = default;
  template <class U> Allocator(const Allocator<U> &) {}
  T *allocate(size_t n) {
    void *p = bufferpool::allocate(n * sizeof(T));
    if (!p)
      throw std::bad_alloc();
    return static_cast<T *>(p);
  }
  void deallocate(T *p, size_t) { release(p); }
  template <class U> bool operator==(const Allocator<U> &) const { return true; }
  template <class U> bool operator!=(const Allocator<U> &) const { return false; }
};

// Returns every cached block to the system.
void trim();
size_t cachedBytes();

} // namespace einstruct::bufferpool

namespace einstruct {
using PooledFloats = std::vector<float, bufferpool::Allocator<float>>;
} // namespace einstruct

// The functions --finalize-memref-to-llvm calls with use-generic-functions.
extern "C" {
void *einstruct_pool_alloc(uint64_t bytes);
void *einstruct_pool_aligned_alloc(uint64_t alignment, uint64_t bytes);
void einstruct_pool_free(void *block);
}
