#include "BufferPool.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>
#include <unistd.h>

namespace einstruct::bufferpool {
namespace {

// In the 64 bytes in front of each block: its usable size (0: not pooled,
// over-aligned) and the address to give back to the system.
constexpr size_t kHeader = 64;
struct Header {
  size_t size;
  void *base;
};

struct Cached {
  void *block;
  std::thread::id freedBy;
};

struct Pool {
  std::mutex mutex;
  std::multimap<size_t, Cached> free; // usable size → block
  size_t cached = 0;
  size_t inUse = 0, peakInUse = 0; // pooled blocks handed out
};

size_t physicalBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? size_t(pages) * size_t(page) : 0;
}

// The cap on cached bytes given the most ever handed out at once.
size_t capFor(size_t peakInUse) {
  static const size_t floor = std::max(size_t(256) << 20, physicalBytes() / 8),
                      ceiling = std::max(floor, physicalBytes() / 2);
  return std::clamp(peakInUse, floor, ceiling);
}

Pool &pool() {
  static Pool *p = new Pool(); // never destroyed: blocks may outlive main
  return *p;
}

Header &headerOf(void *block) {
  return *reinterpret_cast<Header *>(static_cast<char *>(block) - kHeader);
}

void *fresh(size_t bytes, size_t align, size_t pooledSize) {
  size_t front = align > kHeader ? align : kHeader;
  auto *base = static_cast<char *>(std::aligned_alloc(align, bytes + front));
  if (!base)
    return nullptr;
  void *block = base + front;
  headerOf(block) = Header{pooledSize, base};
  return block;
}

} // namespace

void *allocate(size_t bytes) {
  size_t want = (bytes + 63) / 64 * 64;
  if (want == 0)
    want = 64;
  Pool &p = pool();
  {
    // The smallest cached block that fits and wastes at most half of
    // itself; of those, first one this thread freed: its lines are likely
    // still in this core's cache, not another's (threads of one call each
    // reuse their own tiles' buffers).
    std::lock_guard<std::mutex> lock(p.mutex);
    auto first = p.free.lower_bound(want), pick = p.free.end();
    for (auto it = first; it != p.free.end() && it->first <= 2 * want; ++it) {
      if (pick == p.free.end())
        pick = it;
      if (it->second.freedBy == std::this_thread::get_id()) {
        pick = it;
        break;
      }
    }
    if (pick != p.free.end()) {
      void *block = pick->second.block;
      p.cached -= pick->first;
      p.inUse += pick->first;
      p.peakInUse = std::max(p.peakInUse, p.inUse);
      p.free.erase(pick);
      return block;
    }
  }
  void *block = fresh(want, 64, want);
  if (block) {
    std::lock_guard<std::mutex> lock(p.mutex);
    p.inUse += want;
    p.peakInUse = std::max(p.peakInUse, p.inUse);
  }
  return block;
}

void *allocateAligned(size_t bytes, size_t align) {
  if (align <= 64)
    return allocate(bytes);
  return fresh((bytes + align - 1) / align * align, align, 0);
}

void release(void *block) {
  if (!block)
    return;
  Header h = headerOf(block);
  Pool &p = pool();
  if (h.size) {
    std::lock_guard<std::mutex> lock(p.mutex);
    p.inUse -= h.size;
    if (p.cached + h.size <= capFor(p.peakInUse)) {
      p.free.emplace(h.size, Cached{block, std::this_thread::get_id()});
      p.cached += h.size;
      return;
    }
  }
  std::free(h.base);
}

size_t maxCachedBytes() {
  Pool &p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  return capFor(p.peakInUse);
}

void trim() {
  Pool &p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  for (auto &[size, entry] : p.free)
    std::free(headerOf(entry.block).base);
  p.free.clear();
  p.cached = 0;
}

size_t cachedBytes() {
  Pool &p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  return p.cached;
}

} // namespace einstruct::bufferpool

extern "C" {
void *einstruct_pool_alloc(uint64_t bytes) {
  return einstruct::bufferpool::allocate(bytes);
}
void *einstruct_pool_aligned_alloc(uint64_t alignment, uint64_t bytes) {
  return einstruct::bufferpool::allocateAligned(bytes, alignment);
}
void einstruct_pool_free(void *block) { einstruct::bufferpool::release(block); }
}
