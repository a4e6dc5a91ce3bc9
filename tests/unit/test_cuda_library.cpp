// The CUDA runtime path without a GPU: nvcc builds a layer's library into
// the on-disk cache once, later loads find it, a damaged entry is rebuilt,
// nvcc's failures come back as errors naming nvcc and its output, and the
// loaded library's host-side entry points answer (its info matches the
// layer; a call on a machine without a driver is an error, not a crash).
// With no nvcc these tests pass with a SKIP warning.
#include "compiler/cuda/CudaBuild.h"
#include "compiler/cuda/CudaDevice.h"
#include "compiler/cuda/CudaLayer.h"
#include "compiler/cuda/CudaMixer.h"
#include "tests/unit/NamedLayer.h"
#include "tests/unit/ScopedEnv.h"
#include "tests/unit/SpecArgsFor.h"

#include <catch2/catch.hpp>
#include <fstream>

using namespace einstruct;
using namespace einstruct::testing;
namespace fs = std::filesystem;

namespace {

bool haveNvcc() {
  if (findNvcc())
    return true;
  WARN("SKIP: no nvcc (" << findNvcc().error() << ")");
  return false;
}

CudaTarget target(CudaDType dtype, const char *arch = "sm_80") {
  CudaTarget t;
  t.dtype = dtype;
  t.arch = arch;
  return t;
}

// The .so entries of the cache at `dir`.
std::vector<fs::path> libraries(const fs::path &dir) {
  std::vector<fs::path> out;
  for (auto &p : entries(dir / "cuda"))
    if (p.extension() == ".so")
      out.push_back(p);
  return out;
}

// A call on host arrays: without a driver it says so; with one, the host
// pointers are refused (`refusal`). Either way an error, never a launch.
void checkHostArraysRefused(const Result<bool> &r, const char *refusal) {
  REQUIRE_FALSE(r);
  if (queryCudaDevice(0))
    CHECK_THAT(r.error(), Catch::Contains(refusal));
  else
    CHECK_THAT(r.error(), Catch::Contains("no CUDA driver") ||
                              Catch::Contains("no CUDA device"));
}

// A mixer's operand names, "*" after a shared one's.
std::vector<std::string> operandNames(const CudaMixer &m) {
  std::vector<std::string> names;
  for (const auto &op : m.operands())
    names.push_back(op.name + (op.perSequence ? "" : "*"));
  return names;
}

} // namespace

TEST_CASE("a CUDA layer's library is built once and found in the cache",
          "[cuda]") {
  if (!haveNvcc())
    return;
  fs::path dir = freshDirectory("cuda-cache");
  CacheDir scoped(dir.string());
  Layer layer = namedLayer("monarch(4)", 64, 48);

  auto first = CudaLayer::load(layer, target(CudaDType::F32));
  REQUIRE(first);
  CHECK_FALSE((*first)->fromCache());
  REQUIRE(libraries(dir).size() == 1);
  CHECK((*first)->libraryPath() == libraries(dir)[0].string());
  // The library describes the layer it was built from.
  CHECK((*first)->libraryDIn() == 64);
  CHECK((*first)->libraryDOut() == 48);
  CHECK((*first)->libraryDType() == "f32");
  // Only the entry is left: the build directory is gone.
  CHECK(entries(dir / "cuda").size() == 1);

  // The same layer from elsewhere (another label) is the same entry.
  layer.label = "another file:3";
  auto again = CudaLayer::load(layer, target(CudaDType::F32));
  REQUIRE(again);
  CHECK((*again)->fromCache());
  CHECK((*again)->libraryPath() == (*first)->libraryPath());

  // Another dtype, arch or layer is another entry.
  auto bf16 = CudaLayer::load(layer, target(CudaDType::BF16));
  REQUIRE(bf16);
  CHECK((*bf16)->libraryDType() == "bf16");
  auto hopper = CudaLayer::load(layer, target(CudaDType::BF16, "sm_90a"));
  REQUIRE(hopper);
  auto btt = CudaLayer::load(namedLayer("btt(rank=2)", 64, 48),
                             target(CudaDType::F32));
  REQUIRE(btt);
  CHECK((*btt)->libraryDIn() == 64);
  // A sum of one-weight terms: the cuBLAS library (linked with -lcublas,
  // found again through its rpath when opened).
  auto dyad = CudaLayer::load(namedLayer("dyad(blocks=4, variant=DT)", 64, 48),
                              target(CudaDType::BF16));
  REQUIRE(dyad);
  CHECK((*dyad)->libraryDOut() == 48);
  CHECK((*dyad)->libraryDType() == "bf16");
  CHECK(libraries(dir).size() == 5);
  fs::remove_all(dir);
}

TEST_CASE("a damaged CUDA cache entry is rebuilt", "[cuda]") {
  if (!haveNvcc())
    return;
  fs::path dir = freshDirectory("cuda-damaged");
  CacheDir scoped(dir.string());
  Layer layer = namedLayer("monarch(4)", 32, 32);
  auto built = CudaLayer::load(layer, target(CudaDType::F32));
  REQUIRE(built);
  const std::string path = (*built)->libraryPath();
  const auto size = fs::file_size(path);
  built->reset();
  fs::resize_file(path, 100); // a torn write

  auto rebuilt = CudaLayer::load(layer, target(CudaDType::F32));
  REQUIRE(rebuilt);
  CHECK_FALSE((*rebuilt)->fromCache());
  CHECK((*rebuilt)->libraryPath() == path);
  CHECK(fs::file_size(path) == size);
  CHECK((*rebuilt)->libraryDIn() == 32);
  fs::remove_all(dir);
}

TEST_CASE("with the cache off a CUDA library is built in a temporary "
          "directory and removed once loaded",
          "[cuda]") {
  if (!haveNvcc())
    return;
  CacheDir scoped("off");
  auto l = CudaLayer::load(namedLayer("monarch(4)", 32, 32),
                           target(CudaDType::F16));
  REQUIRE(l);
  CHECK_FALSE((*l)->fromCache());
  CHECK_FALSE(fs::exists((*l)->libraryPath()));
  CHECK((*l)->libraryDType() == "f16"); // still loaded
}

TEST_CASE("nvcc's failures come back as errors that name it", "[cuda]") {
  fs::path dir = freshDirectory("cuda-nvcc");
  CacheDir scoped((dir / "cache").string());
  Layer layer = namedLayer("monarch(4)", 32, 32);
  {
    ScopedEnv nvcc("EINSTRUCT_NVCC", (dir / "missing-nvcc").string());
    auto l = CudaLayer::load(layer, target(CudaDType::F32));
    REQUIRE_FALSE(l);
    CHECK_THAT(l.error(), Catch::Contains("EINSTRUCT_NVCC") &&
                              Catch::Contains("missing-nvcc"));
  }
  // An nvcc that answers --version but fails to compile.
  fs::create_directories(dir);
  const fs::path fake = dir / "nvcc";
  {
    std::ofstream out(fake);
    out << "#!/bin/sh\n"
           "if [ \"$1\" = --version ]; then echo 'fake nvcc 0.0'; exit 0; fi\n"
           "echo 'layer.cu(1): error: fake failure' >&2\nexit 3\n";
  }
  fs::permissions(fake, fs::perms::owner_all);
  ScopedEnv nvcc("EINSTRUCT_NVCC", fake.string());
  auto l = CudaLayer::load(layer, target(CudaDType::F32));
  REQUIRE_FALSE(l);
  CHECK_THAT(l.error(), Catch::Contains("nvcc (" + fake.string() + ") failed") &&
                            Catch::Contains("exit code 3") &&
                            Catch::Contains("fake failure"));
  // Nothing is left in the cache: no entry, no build directory.
  CHECK(entries(dir / "cache" / "cuda").empty());
  fs::remove_all(dir);
}

TEST_CASE("plans the CUDA kernels refuse are errors before nvcc runs",
          "[cuda]") {
  fs::path dir = freshDirectory("cuda-refused");
  CacheDir scoped(dir.string());
  ScopedEnv nvcc("EINSTRUCT_NVCC", "/nonexistent/nvcc");
  auto tt = layerFromArgs(
      einsumArgs("abc,xap,pybq,qzc->xyz", "a=2,b=2,c=2,x=2,y=2,z=2,p=2,q=2"));
  REQUIRE(tt);
  auto three = CudaLayer::load(*tt, target(CudaDType::F32));
  REQUIRE_FALSE(three);
  CHECK_THAT(three.error(), Catch::Contains("needs two weight tensors"));
  auto blockInner = layerFromArgs(einsumArgs("ki,oik->ko", "k=3,i=5,o=7"));
  REQUIRE(blockInner);
  auto inner = CudaLayer::load(*blockInner, target(CudaDType::F32));
  REQUIRE_FALSE(inner);
  CHECK_THAT(inner.error(), Catch::Contains("innermost letter is the block"));
  auto arch = CudaLayer::load(namedLayer("monarch(4)", 32, 32),
                              target(CudaDType::F32, "gfx90a"));
  REQUIRE_FALSE(arch);
  CHECK_THAT(arch.error(), Catch::Contains("gfx90a"));
}

TEST_CASE("a loaded CUDA library answers calls without a GPU with errors",
          "[cuda]") {
  if (!haveNvcc())
    return;
  fs::path dir = freshDirectory("cuda-calls");
  CacheDir scoped(dir.string());
  auto l = CudaLayer::load(namedLayer("monarch(4)", 32, 32),
                           target(CudaDType::F32));
  REQUIRE(l);
  const CudaLayer &layer = **l;
  std::vector<float> x(64), w1(128), w2(128), y(64);
  CHECK_THAT(layer.forward(x.data(), 0, {w1.data(), w2.data()}, y.data(),
                           nullptr)
                 .error(),
             Catch::Contains("batch = 0"));
  CHECK_THAT(layer.forward(x.data(), 2, {w1.data()}, y.data(), nullptr).error(),
             Catch::Contains("1 weights given; the layer has 2"));
  checkHostArraysRefused(
      layer.forward(x.data(), 2, {w1.data(), w2.data()}, y.data(), nullptr),
      "x is host memory");
  // The library's own status texts.
  CHECK_THAT(layer.statusText(-2), Catch::Contains("workspace too small"));
  CHECK_THAT(layer.statusText(-1003), Catch::Contains("cuBLAS call failed"));
  // A cuBLAS layer: one weight per term.
  auto dense = CudaLayer::load(namedLayer("dense", 32, 32),
                               target(CudaDType::F32));
  REQUIRE(dense);
  CHECK_THAT((*dense)->forward(x.data(), 2, {w1.data(), w2.data()}, y.data(),
                               nullptr)
                 .error(),
             Catch::Contains("2 weights given; the layer has 1"));
  CHECK_FALSE((*dense)->forward(x.data(), 2, {w1.data()}, y.data(), nullptr));
  CHECK_THAT((*dense)->statusText(-2), Catch::Contains("see layer_workspace"));
  fs::remove_all(dir);
}

TEST_CASE("a CUDA mixer's two libraries are built once, then found; "
          "m2-conv's and a whole block's too",
          "[cuda]") {
  if (!haveNvcc())
    return;
  fs::path dir = freshDirectory("cuda-mixer");
  CacheDir scoped(dir.string());
  auto spec = parseMixer("hydra(heads=2, head_dim=4, state=3, chunk=4)");
  REQUIRE(spec);
  // L = 7: the chunk's padding is inside the libraries.
  auto first = CudaMixer::load(*spec, 7, 0, "sm_80");
  REQUIRE(first);
  const CudaMixer &m = **first;
  CHECK_FALSE(m.fromCache());
  // The forward's, the saving forward's and the backward's from its
  // residuals, each one entry.
  auto built = libraries(dir);
  REQUIRE(built.size() == 3);
  auto paths = m.libraryPaths();
  std::sort(paths.begin(), paths.end());
  std::sort(built.begin(), built.end());
  CHECK(paths == std::vector<std::string>{built[0].string(), built[1].string(),
                                          built[2].string()});
  // The operands as the C ABI documents Hydra's: x [L, H, P], dt, a
  // [L, 2, H], B, C [L, 2, N], d [L, H]; y [L, H, P].
  CHECK(operandNames(m) ==
        std::vector<std::string>{"x", "dt", "a", "B", "C", "d"});
  CHECK(m.operands()[0].shape == std::vector<int64_t>{7, 2, 4});
  CHECK(m.operands()[3].shape == std::vector<int64_t>{7, 2, 3});
  CHECK(m.operands()[5].shape == std::vector<int64_t>{7, 2});
  CHECK(m.outputShape() == std::vector<int64_t>{7, 2, 4});
  auto again = CudaMixer::load(*spec, 7, 0, "sm_80");
  REQUIRE(again);
  CHECK((*again)->fromCache());
  CHECK(libraries(dir).size() == 3);

  // Calls: counts and batch checked first; host arrays never launch.
  std::vector<float> host(64);
  std::vector<const void *> in(6, host.data());
  CHECK_THAT(m.forward(in, 0, host.data(), nullptr).error(),
             Catch::Contains("batch = 0"));
  CHECK_THAT(m.forward({host.data()}, 1, host.data(), nullptr).error(),
             Catch::Contains("1 operands given, hydra takes 6"));
  CHECK_THAT(m.backward(in, host.data(), 1, {host.data()}, nullptr).error(),
             Catch::Contains("6 operands and 1 gradients given"));
  checkHostArraysRefused(m.forward(in, 1, host.data(), nullptr),
                         "x is host memory; a CUDA mixer");

  // m2-conv: JitMixer's operands (x [L, C]; k, k_rev [L, C] and D [C]
  // shared), the DFT grid and the kernel's layout inside the libraries
  // (the forward's and the backward's: it keeps no residuals); its DFT
  // matrices wait for a call on a device.
  auto conv =
      CudaMixer::load(*parseMixer("m2-conv(causal=false)"), 5, 3, "sm_80");
  REQUIRE(conv);
  const CudaMixer &c = **conv;
  CHECK(operandNames(c) == std::vector<std::string>{"x", "k*", "k_rev*", "D*"});
  CHECK(c.operands()[2].shape == std::vector<int64_t>{5, 3});
  CHECK(c.outputShape() == std::vector<int64_t>{5, 3});
  CHECK(libraries(dir).size() == 5);
  std::vector<void *> grads(4, host.data());
  checkHostArraysRefused(c.backward(std::vector<const void *>(4, host.data()),
                                    host.data(), 1, grads, nullptr),
                         "x is host memory; a CUDA mixer");

  // A whole block (M2's: projections, gates, filter and convolution in one
  // library each way): x, then its parameters, shared, by their state_dict
  // names; its constants (the filter's decay, the DFTs) inside the call.
  auto block = CudaMixer::load(
      *parseMixer("m2-block(causal=true, order=4, l_max=8)"), 5, 4, "sm_80");
  REQUIRE(block);
  const CudaMixer &b = **block;
  const auto names = operandNames(b);
  REQUIRE(names.size() > 3);
  CHECK(names[0] == "x");
  CHECK(names[1] == "in_linear.weight*");
  CHECK(names.back() == "out_linear.bias*");
  CHECK(b.outputShape() == std::vector<int64_t>{5, 4});
  CHECK(libraries(dir).size() == 8);
  checkHostArraysRefused(
      b.forward(std::vector<const void *>(names.size(), host.data()), 1,
                host.data(), nullptr),
      "x is host memory; a CUDA mixer");
  fs::remove_all(dir);
}

TEST_CASE("a bad mixer size is the planner's error, before nvcc runs",
          "[cuda]") {
  auto bad = parseMixer("ssd(heads=2, head_dim=4, state=3, chunk=8)");
  REQUIRE(bad);
  CHECK_THAT(CudaMixer::load(*bad, 4, 0, "sm_80").error(),
             Catch::Contains("chunk = 8 exceeds the sequence length 4"));
}

TEST_CASE("the arch and budget follow the device's compute capability",
          "[cuda]") {
  CudaDevice h100{0, 9, 0, 232448, "H100"};
  auto t = targetFor(h100, CudaDType::BF16);
  REQUIRE(t);
  CHECK(t->arch == "sm_90a");
  CHECK(t->smemBudget == 0); // the sm_90a default, as a prebuild uses
  CudaDevice a100{0, 8, 0, 166912, "A100"};
  CHECK(targetFor(a100, CudaDType::F32)->arch == "sm_80");
  CudaDevice l4{1, 8, 9, 101376, "L4"};
  auto ada = targetFor(l4, CudaDType::F16);
  REQUIRE(ada);
  CHECK(ada->arch == "sm_89");
  CHECK(ada->smemBudget == 101376 - 1024);
  CudaDevice t4{0, 7, 5, 65536, "T4"};
  auto old = targetFor(t4, CudaDType::F32);
  REQUIRE_FALSE(old);
  CHECK_THAT(old.error(), Catch::Contains("compute capability 7.5") &&
                              Catch::Contains("8.0 or newer"));
}
