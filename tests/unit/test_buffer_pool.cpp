// The JIT buffer pool: alignment, reuse of freed blocks, the waste bound,
// over-aligned blocks, trimming, the cap on what it keeps.
#include "compiler/cpu/BufferPool.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <numeric>
#include <unistd.h>
#include <vector>

using namespace einstruct;

namespace {
bool aligned(const void *p, uintptr_t a) {
  return reinterpret_cast<uintptr_t>(p) % a == 0;
}
} // namespace

TEST_CASE("buffer pool reuses freed blocks of a fitting size", "[pool]") {
  bufferpool::trim();
  REQUIRE(bufferpool::cachedBytes() == 0);
  void *a = bufferpool::allocate(1000);
  REQUIRE(a);
  CHECK(aligned(a, 64));
  bufferpool::release(a);
  CHECK(bufferpool::cachedBytes() == 1024); // rounded up to 64 bytes
  // The same size, and one a little smaller, come back as that block.
  void *b = bufferpool::allocate(1000);
  CHECK(b == a);
  bufferpool::release(b);
  void *c = bufferpool::allocate(600);
  CHECK(c == a);
  CHECK(bufferpool::cachedBytes() == 0);
  // Too large for it: a fresh block, the cached one stays.
  bufferpool::release(c);
  void *d = bufferpool::allocate(2000);
  CHECK(d != a);
  CHECK(bufferpool::cachedBytes() == 1024);
  // Less than half of it would be used: not handed out.
  void *e = bufferpool::allocate(100);
  CHECK(e != a);
  bufferpool::release(d);
  bufferpool::release(e);
  bufferpool::trim();
  CHECK(bufferpool::cachedBytes() == 0);
}

TEST_CASE("buffer pool: zero bytes, over-aligned blocks, the C entry points",
          "[pool]") {
  bufferpool::trim();
  void *z = einstruct_pool_alloc(0);
  REQUIRE(z);
  einstruct_pool_free(z);
  einstruct_pool_free(nullptr); // like free(NULL)
  void *big = einstruct_pool_aligned_alloc(4096, 100);
  REQUIRE(big);
  CHECK(aligned(big, 4096));
  static_cast<char *>(big)[99] = 1;
  size_t before = bufferpool::cachedBytes();
  einstruct_pool_free(big); // not pooled: back to the system
  CHECK(bufferpool::cachedBytes() == before);
  void *small = einstruct_pool_aligned_alloc(32, 100);
  CHECK(aligned(small, 64));
  einstruct_pool_free(small);
  bufferpool::trim();
}

TEST_CASE("PooledFloats is an ordinary vector on the pool", "[pool]") {
  bufferpool::trim();
  {
    PooledFloats v(1000);
    std::iota(v.begin(), v.end(), 0.0f);
    v.resize(5000);
    CHECK(v[999] == 999.0f);
    CHECK(aligned(v.data(), 64));
  }
  CHECK(bufferpool::cachedBytes() >= 5000 * sizeof(float));
  bufferpool::trim();
}

TEST_CASE("buffer pool keeps as much as was once live, past an eighth of "
          "memory",
          "[pool]") {
  bufferpool::trim();
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  REQUIRE(pages > 0);
  const size_t eighth = size_t(pages) * size_t(page) / 8;
  CHECK(bufferpool::maxCachedBytes() >= eighth);
  // Live at once: an eighth of memory and 64 MiB more, in 64 MiB blocks
  // (never touched, so only address space).
  const size_t block = size_t(64) << 20;
  std::vector<void *> live;
  for (size_t total = 0; total < eighth + block; total += block) {
    live.push_back(bufferpool::allocate(block));
    REQUIRE(live.back());
  }
  const size_t total = live.size() * block;
  CHECK(bufferpool::maxCachedBytes() >= total);
  // All of it is kept when freed (a fixed eighth dropped the last blocks,
  // which the next call then faulted in again), and handed out again.
  for (void *b : live)
    bufferpool::release(b);
  CHECK(bufferpool::cachedBytes() == total);
  void *again = bufferpool::allocate(block);
  CHECK(std::find(live.begin(), live.end(), again) != live.end());
  bufferpool::release(again);
  bufferpool::trim();
  CHECK(bufferpool::cachedBytes() == 0);
}
