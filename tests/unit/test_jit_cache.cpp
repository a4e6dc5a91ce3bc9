// The JIT's on-disk object cache: a second compile of a layer loads the
// object instead of generating it and computes bit-identical results; a
// different target shape is a different entry; a damaged entry (or a FIFO,
// link or directory in its place), a disabled cache or an unwritable
// directory all fall back to compiling.
#include "compiler/cpu/JitLayer.h"
#include "tests/unit/CompiledLayer.h"
#include "tests/unit/NamedLayer.h"
#include "tests/unit/ScopedEnv.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sys/stat.h>
#include <unistd.h>

using namespace einstruct;
using einstruct::testing::compiledLayer;
using einstruct::testing::randomWeights;
using einstruct::testing::namedLayer;
using einstruct::testing::CacheDir;
using einstruct::testing::entries;
using einstruct::testing::freshDirectory;
namespace fs = std::filesystem;

namespace {

// Forward and backward outputs of one layer on fixed data, concatenated.
std::vector<float> outputs(const JitLayer &jit) {
  std::mt19937 rng(11);
  auto [weights, wp] = randomWeights(jit, rng);
  std::uniform_real_distribution<float> u(-1, 1);
  const int64_t batch = 9;
  std::vector<float> x(size_t(batch * jit.layer().dIn)),
      dy(size_t(batch * jit.layer().dOut));
  for (auto *v : {&x, &dy})
    for (auto &e : *v)
      e = u(rng);
  auto y = jit.forward(x.data(), batch, wp);
  auto g = jit.backward(x.data(), dy.data(), batch, wp);
  REQUIRE(y);
  REQUIRE(g);
  std::vector<float> all = *y;
  all.insert(all.end(), g->dx.begin(), g->dx.end());
  for (auto &dw : g->dw)
    all.insert(all.end(), dw.begin(), dw.end());
  return all;
}

} // namespace

TEST_CASE("JIT object cache: a second compile loads the object and computes "
          "the same bits",
          "[jit][cache]") {
  fs::path dir = freshDirectory("cache");
  CacheDir scoped(dir.string());
  Layer layer = namedLayer("btt(rank=2)", 64, 96);
  auto first = compiledLayer(layer);
  CHECK_FALSE(first->fromCache());
  REQUIRE(entries(dir).size() == 1);
  CHECK(entries(dir)[0].extension() == ".o");
  auto second = compiledLayer(layer);
  CHECK(second->fromCache());
  CHECK(outputs(*second) == outputs(*first));

  // Another layer, or the same one shaped for other vector units, is
  // another entry.
  auto avx2 = compiledLayer(layer, kAvx2);
  CHECK_FALSE(avx2->fromCache());
  auto other = compiledLayer(namedLayer("monarch(4)", 64, 64));
  CHECK_FALSE(other->fromCache());
  CHECK(entries(dir).size() == 3);
  fs::remove_all(dir);
}

TEST_CASE("JIT object cache: a damaged entry is recompiled and replaced",
          "[jit][cache]") {
  fs::path dir = freshDirectory("damaged");
  CacheDir scoped(dir.string());
  Layer layer = namedLayer("monarch(4)", 32, 32);
  std::vector<float> reference = outputs(*compiledLayer(layer));
  fs::path entry = entries(dir).at(0);
  auto size = fs::file_size(entry);
  SECTION("one byte changed") {
    std::fstream f(entry, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(size / 2));
    char c = 0;
    f.read(&c, 1);
    f.seekp(std::streamoff(size / 2));
    c = char(c ^ 0x5a);
    f.write(&c, 1);
  }
  SECTION("truncated") { fs::resize_file(entry, size / 3); }
  SECTION("empty") { fs::resize_file(entry, 0); }
  // Not regular files: read, they would block (a FIFO) or fill memory
  // (/dev/zero); each is skipped and replaced.
  SECTION("a FIFO") {
    fs::remove(entry);
    REQUIRE(mkfifo(entry.c_str(), 0644) == 0);
  }
  SECTION("a link to /dev/zero") {
    fs::remove(entry);
    fs::create_symlink("/dev/zero", entry);
  }
  SECTION("an empty directory") {
    fs::remove(entry);
    fs::create_directory(entry);
  }
  auto again = compiledLayer(layer);
  CHECK_FALSE(again->fromCache());
  CHECK(outputs(*again) == reference);
  CHECK(fs::is_regular_file(fs::symlink_status(entry)));
  CHECK(fs::file_size(entry) == size); // the entry was written anew
  CHECK(compiledLayer(layer)->fromCache());
  fs::remove_all(dir);
}

TEST_CASE("JIT object cache: off, or a directory that cannot be written",
          "[jit][cache]") {
  Layer layer = namedLayer("low-rank(4)", 16, 24);
  SECTION("EINSTRUCT_CACHE_DIR=off") {
    CacheDir scoped("off");
    auto a = compiledLayer(layer);
    auto b = compiledLayer(layer);
    CHECK_FALSE(b->fromCache());
    CHECK(outputs(*a) == outputs(*b));
  }
  SECTION("the directory is under a regular file") {
    fs::path file = freshDirectory("file");
    std::ofstream(file) << "not a directory";
    CacheDir scoped((file / "cache").string());
    auto a = compiledLayer(layer);
    CHECK_FALSE(a->fromCache());
    CHECK_FALSE(compiledLayer(layer)->fromCache());
    CHECK(outputs(*a).size() > 0);
    fs::remove(file);
  }
}
