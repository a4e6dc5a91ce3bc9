// The cuBLAS path's plans (compiler/cuda/GemmPlan), executed on the CPU:
// every step run as the emitted code runs it — cublasGemmStridedBatchedEx
// with its column-major semantics, the gather/scatter/fill kernels — with
// every index checked against its buffer, and the results compared with
// the CPU path (the MLIR JIT, forward and backward) for dense,
// block-diagonal, the three DYAD variants, padded layers and permuted
// weight and output layouts.
#include "compiler/cpu/JitLayer.h"
#include "compiler/cuda/GemmPlan.h"
#include "compiler/frontend/SpecReader.h"
#include "tests/unit/CompiledLayer.h"
#include "tests/unit/SpecArgsFor.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <fmt/format.h>
#include <map>
#include <random>

using namespace einstruct;
using einstruct::testing::randomValues;
using einstruct::testing::einsumArgs;
using einstruct::testing::namedArgs;

namespace {

// The arrays of one call, by buffer and term.
struct Arrays {
  std::map<std::pair<GemmBuffer, int>, std::vector<float>> data;
  std::vector<float> &at(GemmBuffer b, int term = 0) {
    bool perTerm = b == GemmBuffer::W || b == GemmBuffer::DW;
    auto it = data.find({b, perTerm ? term : 0});
    REQUIRE(it != data.end());
    return it->second;
  }
};

float &element(std::vector<float> &v, int64_t i) {
  REQUIRE(i >= 0);
  REQUIRE(i < int64_t(v.size()));
  return v[size_t(i)];
}

// cublasGemmStridedBatchedEx with alpha 1: C = op(A)·op(B) (+ C).
void runGemm(const GemmCall &g, Arrays &arrays, int64_t n) {
  const int64_t m = g.tokens == 0 ? n : g.m, nn = g.tokens == 1 ? n : g.n,
                k = g.tokens == 2 ? n : g.k;
  auto &A = arrays.at(g.a, g.termA), &B = arrays.at(g.b, g.termB),
       &C = arrays.at(g.c, g.termC);
  // Column-major: op(A) is m × k, op(B) k × nn; a stored matrix's leading
  // dimension must hold its rows.
  REQUIRE(g.lda >= (g.transA ? k : m));
  REQUIRE(g.ldb >= (g.transB ? nn : k));
  REQUIRE(g.ldc >= m);
  for (int64_t b = 0; b < g.batch; ++b)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < nn; ++j) {
        double acc = 0;
        for (int64_t l = 0; l < k; ++l) {
          int64_t ai = b * g.strideA + (g.transA ? l + i * g.lda : i + l * g.lda);
          int64_t bi = b * g.strideB + (g.transB ? j + l * g.ldb : l + j * g.ldb);
          acc += double(element(A, ai)) * element(B, bi);
        }
        float &c = element(C, b * g.strideC + i + j * g.ldc);
        c = float(acc) + (g.accumulate ? c : 0.0f);
      }
}

void runCopy(const GemmStep &s, Arrays &arrays, int64_t n) {
  const GemmCopy &c = s.copy;
  auto &strided = arrays.at(c.strided), &packed = arrays.at(c.packed);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t k = 0; k < c.K; ++k)
      for (int64_t e = 0; e < c.M; ++e) {
        const int64_t off = k * c.sK + e * c.sE;
        float &p = element(packed, (t * c.K + k) * c.M + e);
        if (s.kind == GemmStep::Gather)
          p = off < c.limit ? element(strided, t * c.row + off) : 0.0f;
        else if (off < c.limit) {
          float &d = element(strided, t * c.row + off);
          d = p + (c.accumulate ? d : 0.0f);
        }
      }
}

void run(const std::vector<GemmStep> &steps, Arrays &arrays, int64_t n) {
  for (const GemmStep &s : steps) {
    if (s.kind == GemmStep::Gemm)
      runGemm(s.gemm, arrays, n);
    else if (s.kind == GemmStep::Fill)
      for (int64_t t = 0; t < n; ++t)
        for (int64_t c = s.fill.from; c < s.fill.row; ++c)
          element(arrays.at(s.fill.buffer), t * s.fill.row + c) = 0.0f;
    else
      runCopy(s, arrays, n);
  }
}

double relErr(const std::vector<float> &got, const std::vector<float> &want) {
  REQUIRE(got.size() == want.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num = std::max(num, std::fabs(double(got[i]) - want[i])); // NaN: unwritten
    if (std::isnan(got[i]))
      return INFINITY;
    den = std::max(den, std::fabs(double(want[i])));
  }
  return num / std::max(den, 1e-30);
}

void checkGemm(const SpecArgs &args, int64_t n) {
  auto layer = layerFromArgs(args);
  REQUIRE(layer);
  INFO(layer->name << " " << layer->dIn << " -> " << layer->dOut);
  CudaTarget target;
  auto plan = planGemm(*layer, target);
  REQUIRE(plan);
  INFO(plan->why);
  std::mt19937 rng(3);
  auto random = [&](int64_t count) { return randomValues(count, rng); };
  const size_t terms = layer->terms.size();
  auto x = random(n * layer->dIn), dy = random(n * layer->dOut);
  std::vector<std::vector<float>> w;
  std::vector<const float *> wp;
  for (size_t j = 0; j < terms; ++j)
    w.push_back(random(plan->weightElems[j]));
  for (auto &v : w)
    wp.push_back(v.data());

  auto jit = JitLayer::compile(*layer);
  REQUIRE(jit);
  auto yRef = (*jit)->forward(x.data(), n, wp);
  REQUIRE(yRef);
  auto gRef = (*jit)->backward(x.data(), dy.data(), n, wp);
  REQUIRE(gRef);

  // Outputs start as NaN: a value never written shows.
  Arrays a;
  a.data[{GemmBuffer::X, 0}] = x;
  a.data[{GemmBuffer::DY, 0}] = dy;
  a.data[{GemmBuffer::Y, 0}] = std::vector<float>(size_t(n * layer->dOut), NAN);
  a.data[{GemmBuffer::DX, 0}] = std::vector<float>(size_t(n * layer->dIn), NAN);
  a.data[{GemmBuffer::XS, 0}] = std::vector<float>(size_t(n * plan->xsElems), NAN);
  a.data[{GemmBuffer::YS, 0}] = std::vector<float>(size_t(n * plan->ysElems), NAN);
  for (size_t j = 0; j < terms; ++j) {
    a.data[{GemmBuffer::W, int(j)}] = w[j];
    a.data[{GemmBuffer::DW, int(j)}] = std::vector<float>(w[j].size(), NAN);
  }
  run(plan->forward, a, n);
  CHECK(relErr(a.at(GemmBuffer::Y), *yRef) < 1e-5);
  run(plan->backwardInput, a, n);
  CHECK(relErr(a.at(GemmBuffer::DX), gRef->dx) < 1e-5);
  run(plan->backwardWeights, a, n);
  for (size_t j = 0; j < terms; ++j) {
    INFO("dW of term " << j + 1);
    CHECK(relErr(a.at(GemmBuffer::DW, int(j)), gRef->dw[j]) < 1e-5);
  }
}

} // namespace

TEST_CASE("cuBLAS plan: dense and block-diagonal emulate to the CPU path",
          "[cuda]") {
  checkGemm(namedArgs("dense", 40, 24), 9);
  checkGemm(namedArgs("block-diagonal(4)", 32, 48), 13);
  checkGemm(namedArgs("block-diagonal(8)", 64, 64), 1);
}

TEST_CASE("cuBLAS plan: DYAD's variants, sums of block-diagonal terms",
          "[cuda]") {
  for (const char *v : {"IT", "OT", "DT"}) {
    INFO("variant " << v);
    checkGemm(namedArgs(fmt::format("dyad(blocks=4, variant={})", v).c_str(), 32,
                    48),
              11);
  }
}

TEST_CASE("cuBLAS plan: permuted layouts and padding", "[cuda]") {
  // Weight [i][o]; weight interleaved [o][k][i] with y [o][k]; x [i][k].
  checkGemm(einsumArgs("ki,kio->ko", "k=3,i=5,o=7"), 6);
  checkGemm(einsumArgs("ki,oki->ok", "k=3,i=5,o=7"), 6);
  checkGemm(einsumArgs("ik,koi->ko", "k=4,i=3,o=2"), 5);
  checkGemm(einsumArgs("i,io->o", "i=9,o=4"), 3);
  // No summed letter (each block an outer product with one column of x).
  checkGemm(einsumArgs("k,ko->ko", "k=3,o=5"), 4);
  // Fewer columns than the structure (dropped / read as zero) and more
  // (ignored / written as zero).
  checkGemm(einsumArgs("ki,koi->ko", "k=4,i=8,o=12", 30, 50), 7);
  checkGemm(einsumArgs("ik,koi->ok", "k=4,i=8,o=12", 34, 40), 7);
}

TEST_CASE("cuBLAS plan: refusals name the term and the reason", "[cuda]") {
  CudaTarget target;
  auto two = layerFromArgs(namedArgs("monarch(4)", 16, 16));
  REQUIRE(two);
  CHECK_FALSE(isGemmLayer(*two));
  CHECK_THAT(planGemm(*two, target).error(), Catch::Contains("one weight"));
  auto blockInner = layerFromArgs(einsumArgs("ki,oik->ko", "k=3,i=5,o=7"));
  REQUIRE(blockInner);
  auto p = planGemm(*blockInner, target);
  REQUIRE_FALSE(p);
  CHECK_THAT(p.error(), Catch::Contains("term 1 (ki,oik->ko)") &&
                            Catch::Contains("innermost letter is the block"));
  // Without a summed letter W's blocks are columns: they need unit stride.
  auto column = layerFromArgs(einsumArgs("k,ok->ko", "k=3,o=5"));
  REQUIRE(column);
  CHECK_THAT(planGemm(*column, target).error(),
             Catch::Contains("innermost letter is the block"));
  auto twoBlocks = layerFromArgs(einsumArgs("kli,kloi->klo", "k=2,l=3,i=4,o=5"));
  REQUIRE(twoBlocks);
  CHECK_THAT(planGemm(*twoBlocks, target).error(),
             Catch::Contains("one block letter, not 'k' and 'l'"));
}
