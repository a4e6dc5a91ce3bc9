// The JIT buffer pool: alignment, reuse of freed blocks, the waste bound,
// over-aligned blocks, trimming.
#include "compiler/cpu/BufferPool.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <numeric>

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
