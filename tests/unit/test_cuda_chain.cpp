// The CUDA libraries of contraction chains (sequence mixers), executed on
// the CPU step by step as the emitted code runs them (ChainExecution.h).
// Results against references
// in double: hand-written contractions in many layouts, the SSD's
// semiseparable matrix, the circular convolution M2's DFTs compute, fly's
// Monarch; gradients against central differences of <dy, reference>.
#include "compiler/cuda/ChainEmitter.h"
#include "compiler/cuda/kernels/einstruct_chain.cuh"
#include "compiler/ir/EmitLayer.h"
#include "compiler/ir/EmitMixer.h"
#include "compiler/passes/ChainOfFunction.h"
#include "compiler/passes/CudaPipeline.h"
#include "dialects/EinstructDialect.h"
#include "search/Einsum.h"
#include "tests/unit/ChainExecution.h"
#include "tests/unit/MixerReferences.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <fmt/format.h>
#include <functional>
#include <random>

using namespace einstruct;
using namespace einstruct::testing;

namespace {

// n standard normal floats.
std::vector<float> normals(size_t n, std::mt19937 &rng) {
  std::normal_distribution<float> normal;
  std::vector<float> v(n);
  for (auto &e : v)
    e = normal(rng);
  return v;
}

// One einstruct.contract `spec` in a function (letter 'n' dynamic), planned
// for CUDA; its result against the sum in double.
struct ContractCase {
  std::string spec;
  std::map<char, int64_t> sizes;
};

void checkContract(const ContractCase &c, int expectPermutes,
                   ChainStep::Kind expectKind) {
  auto t = parseEinsumLetters(c.spec);
  REQUIRE(t);
  auto typeOf = [&](const std::string &letters) {
    std::string s = "tensor<";
    for (char l : letters)
      s += (l == 'n' ? std::string("?") : std::to_string(c.sizes.at(l))) + "x";
    return s + "f32>";
  };
  const std::string lt = typeOf(t->input), rt = typeOf(t->weights[0]),
                    ot = typeOf(t->output);
  const std::string text =
      fmt::format("func.func @f(%a: {0}, %b: {1}) -> {2} {{\n"
                  "  %0 = einstruct.contract \"{3}\" %a, %b : {0}, {1} -> {2}\n"
                  "  return %0 : {2}\n}}\n",
                  lt, rt, ot, c.spec);
  mlir::MLIRContext ctx;
  loadDialects(ctx);
  auto module = mlir::parseSourceString<mlir::ModuleOp>(text, &ctx);
  REQUIRE(module);
  mlir::PassManager pm(&ctx);
  pm.addPass(createPlanCuda());
  REQUIRE(mlir::succeeded(pm.run(*module)));
  ChainPlan plan = chains(*module).at("f");
  INFO(c.spec);
  CHECK(countSteps(plan, ChainStep::Remap) == expectPermutes);
  CHECK(countSteps(plan, expectKind) == 1);
  const int64_t S = 3;
  std::map<char, int64_t> size = c.sizes;
  size['n'] = S;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  auto random = [&](const std::string &letters) {
    int64_t n = 1;
    for (char l : letters)
      n *= size.at(l);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto &e : v)
      e = normal(rng);
    return v;
  };
  Arrays in = {random(t->input), random(t->weights[0])};
  auto y = execute(plan, in, S);
  // The sum by brute force over every letter.
  std::string all = t->output;
  for (char l : t->input + t->weights[0])
    if (all.find(l) == std::string::npos)
      all += l;
  auto offset = [&](const std::string &letters,
                    const std::map<char, int64_t> &at) {
    int64_t o = 0;
    for (char l : letters)
      o = o * size.at(l) + at.at(l);
    return o;
  };
  int64_t outN = 1, total = 1;
  for (char l : t->output)
    outN *= size.at(l);
  for (char l : all)
    total *= size.at(l);
  std::vector<double> want(size_t(outN), 0.0);
  for (int64_t i = 0; i < total; ++i) {
    std::map<char, int64_t> at;
    int64_t r = i;
    for (size_t k = all.size(); k-- > 0;) {
      at[all[k]] = r % size.at(all[k]);
      r /= size.at(all[k]);
    }
    want[size_t(offset(t->output, at))] +=
        double(in[0][size_t(offset(t->input, at))]) *
        double(in[1][size_t(offset(t->weights[0], at))]);
  }
  CHECK(maxRelative(y[0], want) < 1e-5);
}

// The forward's output against `reference` (inputs in double), and the
// backward's gradients of the non-constant inputs against central
// differences of <dy, reference>.
void checkMixer(
    const std::map<std::string, ChainPlan> &plans, const Doubles &in, int64_t S,
    const std::function<std::vector<double>(const Doubles &)> &reference) {
  const ChainPlan &fwd = plans.at("m"), &bwd = plans.at("m_backward");
  Arrays f;
  for (const auto &v : in)
    f.push_back(toFloat(v));
  auto want = reference(in);
  auto y = execute(fwd, f, S);
  CHECK(maxRelative(y[0], want) < 2e-5);
  std::mt19937 rng(3);
  std::normal_distribution<double> normal;
  std::vector<double> dy(want.size());
  for (auto &e : dy)
    e = double(float(normal(rng)));
  Arrays bin = f;
  bin.push_back(toFloat(dy));
  auto grads = execute(bwd, bin, S);
  // ssd and hydra train from saved residuals (m2-conv and monarch-seq
  // recompute, as on the CPU).
  if (plans.count("m_saving"))
    checkSavingPair(plans, f, toFloat(dy), S);
  size_t g = 0;
  for (size_t op = 0; op < in.size(); ++op) {
    if (fwd.constantInput[op])
      continue;
    REQUIRE(g < grads.size());
    const auto &got = grads[g++];
    REQUIRE(got.size() == in[op].size());
    double scale = 0, err = 0;
    for (size_t k = 0; k < got.size(); ++k) {
      const double fd = centralDifference(reference, in, op, k, dy);
      scale = std::max(scale, std::abs(fd));
      err = std::max(err, std::abs(fd - double(got[k])));
    }
    INFO("input " << op << ": max error " << err << " of max " << scale);
    CHECK(err <= 1e-4 * std::max(scale, 1.0));
  }
  CHECK(g == grads.size());
}

std::vector<double> randomDoubles(std::mt19937 &rng, int64_t n, double lo,
                                  double hi) {
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(static_cast<size_t>(n));
  for (auto &e : v)
    e = double(float(u(rng)));
  return v;
}

} // namespace

TEST_CASE("CUDA contractions: one GEMM per contraction in any layout",
          "[cuda][chain]") {
  std::map<char, int64_t> s = {{'i', 20}, {'j', 18}, {'k', 17}, {'h', 3}};
  // Laid out for one GEMM already: no transpose, in all four op(A)/op(B)
  // combinations and with the result's roles swapped.
  checkContract({"nik,nkj->nij", s}, 0, ChainStep::Gemm);
  checkContract({"nki,nkj->nij", s}, 0, ChainStep::Gemm);
  checkContract({"nik,njk->nij", s}, 0, ChainStep::Gemm);
  checkContract({"nki,njk->nji", s}, 0, ChainStep::Gemm);
  checkContract({"nhik,nhkj->nhji", s}, 0, ChainStep::Gemm);
  // A summed letter shared with no batch order, and the batch inside:
  // transposes, the fewest elements.
  checkContract({"ikn,nkj->nij", s}, 1, ChainStep::Gemm);
  checkContract({"nik,nkj->inj", s}, 1, ChainStep::Gemm);
  checkContract({"nhik,nkhj->nijh", s}, 2, ChainStep::Gemm);
  // A weight without the dynamic letter: n is a row of the GEMM.
  checkContract({"nik,kj->nij", s}, 0, ChainStep::Gemm);
  checkContract({"kj,nik->nij", s}, 0, ChainStep::Gemm);
  checkContract({"kj,nik->nji", s}, 1, ChainStep::Gemm);
  // Little to sum, or a small matrix: the direct kernel, no transposes.
  checkContract({"nih,nhj->nji", s}, 0, ChainStep::Direct);
  checkContract({"nij,nhj->nhij", s}, 0, ChainStep::Direct);
  checkContract({"nhk,nk->nh", s}, 0, ChainStep::Direct);
}

TEST_CASE("CUDA chains: slices, reversals, transposes and their reshapes "
          "are read in place, not copied",
          "[cuda][chain]") {
  // x [S, 6, 8]. y1: a column slice, its rows collapsed (they step through
  // x as one), times w1 — the direct kernel reads x itself. y2: a row slice
  // reversed, whose collapse does not step as one: copied once, then
  // contracted. y3: a reversal split in two, contracted with w3 in place.
  // y4: a transpose zero-padded: one remap reading x.
  const char *text = R"mlir(
func.func @f(%x: tensor<?x6x8xf32>, %w1: tensor<4x3xf32>,
             %w2: tensor<8x3xf32>, %w3: tensor<4xf32>)
    -> (tensor<?x3xf32>, tensor<?x3xf32>, tensor<?x6x2xf32>,
        tensor<?x8x7xf32>) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?x6x8xf32>
  %a = tensor.extract_slice %x[0, 0, 2] [%n, 6, 4] [1, 1, 1]
      : tensor<?x6x8xf32> to tensor<?x6x4xf32>
  %ac = tensor.collapse_shape %a [[0, 1], [2]]
      : tensor<?x6x4xf32> into tensor<?x4xf32>
  %y1 = einstruct.contract "nk,kj->nj" %ac, %w1 {cuda_kernel = "direct"}
      : tensor<?x4xf32>, tensor<4x3xf32> -> tensor<?x3xf32>
  %b = tensor.extract_slice %x[0, 1, 0] [%n, 4, 8] [1, 1, 1]
      : tensor<?x6x8xf32> to tensor<?x4x8xf32>
  %br = einstruct.reverse %b dim 1 : tensor<?x4x8xf32>
  %bc = tensor.collapse_shape %br [[0, 1], [2]]
      : tensor<?x4x8xf32> into tensor<?x8xf32>
  %y2 = einstruct.contract "nk,kj->nj" %bc, %w2 {cuda_kernel = "direct"}
      : tensor<?x8xf32>, tensor<8x3xf32> -> tensor<?x3xf32>
  %r = einstruct.reverse %x dim 2 : tensor<?x6x8xf32>
  %re = tensor.expand_shape %r [[0], [1], [2, 3]] output_shape [%n, 6, 2, 4]
      : tensor<?x6x8xf32> into tensor<?x6x2x4xf32>
  %y3 = einstruct.contract "nabc,c->nab" %re, %w3 {cuda_kernel = "direct"}
      : tensor<?x6x2x4xf32>, tensor<4xf32> -> tensor<?x6x2xf32>
  %e = tensor.empty(%n) : tensor<?x8x6xf32>
  %t = linalg.transpose ins(%x : tensor<?x6x8xf32>)
      outs(%e : tensor<?x8x6xf32>) permutation = [0, 2, 1]
  %z = arith.constant 0.0 : f32
  %y4 = tensor.pad %t low[0, 0, 1] high[0, 0, 0] {
  ^bb0(%i: index, %j: index, %k: index):
    tensor.yield %z : f32
  } : tensor<?x8x6xf32> to tensor<?x8x7xf32>
  return %y1, %y2, %y3, %y4
      : tensor<?x3xf32>, tensor<?x3xf32>, tensor<?x6x2xf32>, tensor<?x8x7xf32>
}
)mlir";
  mlir::MLIRContext ctx;
  loadDialects(ctx);
  ctx.getOrLoadDialect<mlir::linalg::LinalgDialect>();
  auto module = mlir::parseSourceString<mlir::ModuleOp>(text, &ctx);
  REQUIRE(module);
  ChainPlan plan = chains(*module).at("f");
  // Five slices, reversals and transposes; two remaps: y2's copy and y4's
  // pad.
  CHECK(countSteps(plan, ChainStep::Remap) == 2);
  CHECK(countSteps(plan, ChainStep::Direct) == 3);
  CHECK(plan.steps.size() == 5);
  const int64_t S = 2;
  std::mt19937 rng(11);
  auto random = [&](size_t n) { return normals(n, rng); };
  Arrays in = {random(S * 48), random(12), random(24), random(4)};
  auto X = [&](int64_t s, int64_t i, int64_t j) {
    return double(in[0][size_t(s * 48 + i * 8 + j)]);
  };
  Arrays y = execute(plan, in, S);
  // [S·rows, 3]: Σ_k row(s, i, k)·w[k, j].
  auto times = [&](int64_t rows, int64_t K, const std::vector<float> &w,
                   auto row) {
    std::vector<double> out;
    for (int64_t s = 0; s < S; ++s)
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < 3; ++j) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += row(s, i, k) * double(w[size_t(k * 3 + j)]);
          out.push_back(acc);
        }
    return out;
  };
  auto y1 = times(6, 4, in[1], [&](int64_t s, int64_t i, int64_t k) {
    return X(s, i, 2 + k);
  });
  auto y2 = times(4, 8, in[2], [&](int64_t s, int64_t i, int64_t k) {
    return X(s, 1 + (3 - i), k);
  });
  std::vector<double> y3, y4;
  for (int64_t s = 0; s < S; ++s)
    for (int64_t i = 0; i < 6; ++i)
      for (int64_t h = 0; h < 2; ++h) {
        double acc = 0;
        for (int64_t c = 0; c < 4; ++c)
          acc += X(s, i, 7 - (h * 4 + c)) * double(in[3][size_t(c)]);
        y3.push_back(acc);
      }
  for (int64_t s = 0; s < S; ++s)
    for (int64_t j = 0; j < 8; ++j)
      for (int64_t i = 0; i < 7; ++i)
        y4.push_back(i == 0 ? 0.0 : X(s, i - 1, j));
  CHECK(maxRelative(y[0], y1) < 1e-6);
  CHECK(maxRelative(y[1], y2) < 1e-6);
  CHECK(maxRelative(y[2], y3) < 1e-6);
  CHECK(maxRelative(y[3], y4) == 0);
}

TEST_CASE("CUDA chains: a sum is added by the step that writes its newest "
          "term",
          "[cuda][chain]") {
  // x [S, 4, 3]. s1 = (x · w) + x: the direct kernel adds x as it writes.
  // s2 = pad(x) + p: the remap adds p. s3 = t + x with t read twice (t is
  // returned too): an add of its own. s4 = (x · w) + q where another step
  // came after the contraction: an add of its own.
  const char *text = R"mlir(
func.func @f(%x: tensor<?x4x3xf32>, %w: tensor<3x3xf32>, %p: tensor<?x5x3xf32>,
             %q: tensor<?x4x3xf32>)
    -> (tensor<?x4x3xf32>, tensor<?x5x3xf32>, tensor<?x4x3xf32>,
        tensor<?x4x3xf32>, tensor<?x4x3xf32>, tensor<?x5x3xf32>) {
  %xw = einstruct.contract "nlk,kj->nlj" %x, %w {cuda_kernel = "direct"}
      : tensor<?x4x3xf32>, tensor<3x3xf32> -> tensor<?x4x3xf32>
  %s1 = arith.addf %xw, %x : tensor<?x4x3xf32>
  %z = arith.constant 0.0 : f32
  %pad = tensor.pad %x low[0, 1, 0] high[0, 0, 0] {
  ^bb0(%i: index, %j: index, %k: index):
    tensor.yield %z : f32
  } : tensor<?x4x3xf32> to tensor<?x5x3xf32>
  %s2 = arith.addf %p, %pad : tensor<?x5x3xf32>
  %t = einstruct.contract "nlk,kj->nlj" %q, %w {cuda_kernel = "direct"}
      : tensor<?x4x3xf32>, tensor<3x3xf32> -> tensor<?x4x3xf32>
  %s3 = arith.addf %t, %x : tensor<?x4x3xf32>
  %u = einstruct.contract "nlk,kj->nlj" %x, %w {cuda_kernel = "direct"}
      : tensor<?x4x3xf32>, tensor<3x3xf32> -> tensor<?x4x3xf32>
  %v = einstruct.contract "nlk,kj->nlj" %p, %w {cuda_kernel = "direct"}
      : tensor<?x5x3xf32>, tensor<3x3xf32> -> tensor<?x5x3xf32>
  %s4 = arith.addf %u, %q : tensor<?x4x3xf32>
  return %s1, %s2, %s3, %t, %s4, %v
      : tensor<?x4x3xf32>, tensor<?x5x3xf32>, tensor<?x4x3xf32>,
        tensor<?x4x3xf32>, tensor<?x4x3xf32>, tensor<?x5x3xf32>
}
)mlir";
  mlir::MLIRContext ctx;
  loadDialects(ctx);
  auto module = mlir::parseSourceString<mlir::ModuleOp>(text, &ctx);
  REQUIRE(module);
  ChainPlan plan = chains(*module).at("f");
  int fused = 0;
  for (const ChainStep &st : plan.steps)
    fused += st.accumulate;
  CHECK(fused == 2);
  CHECK(countSteps(plan, ChainStep::Add) == 2);
  const int64_t S = 2;
  std::mt19937 rng(13);
  auto random = [&](size_t n) { return normals(n, rng); };
  Arrays in = {random(S * 12), random(9), random(S * 15), random(S * 12)};
  Arrays y = execute(plan, in, S);
  auto times = [&](const std::vector<float> &a) {
    std::vector<double> out;
    for (int64_t r = 0; r < S * 4; ++r)
      for (int64_t j = 0; j < 3; ++j) {
        double acc = 0;
        for (int64_t k = 0; k < 3; ++k)
          acc +=
              double(a[size_t(r * 3 + k)]) * double(in[1][size_t(k * 3 + j)]);
        out.push_back(acc);
      }
    return out;
  };
  auto plus = [](std::vector<double> a, const std::vector<float> &b) {
    for (size_t k = 0; k < a.size(); ++k)
      a[k] += double(b[k]);
    return a;
  };
  std::vector<double> padded;
  for (int64_t s = 0; s < S; ++s)
    for (int64_t l = 0; l < 5; ++l)
      for (int64_t c = 0; c < 3; ++c)
        padded.push_back(
            double(in[2][size_t((s * 5 + l) * 3 + c)]) +
            (l == 0 ? 0.0 : double(in[0][size_t((s * 4 + l - 1) * 3 + c)])));
  CHECK(maxRelative(y[0], plus(times(in[0]), in[0])) < 1e-6);
  CHECK(maxRelative(y[1], padded) < 1e-6);
  CHECK(maxRelative(y[2], plus(times(in[3]), in[0])) < 1e-6);
  CHECK(maxRelative(y[3], times(in[3])) < 1e-6);
  CHECK(maxRelative(y[4], plus(times(in[0]), in[3])) < 1e-6);
}

TEST_CASE("CUDA SSD: the chain equals the semiseparable matrix, gradients "
          "finite differences",
          "[cuda][chain][mixer]") {
  // Sizes at which the in-chunk contractions go to cuBLAS (16-wide); a
  // chunk that does not divide L (the zero padding in the IR); one token.
  for (auto [H, P, N, Q, L, S] :
       {std::tuple{2, 16, 16, 16, 32, 2}, std::tuple{1, 2, 3, 4, 12, 3},
        std::tuple{2, 2, 3, 4, 7, 2}, std::tuple{1, 1, 1, 1, 1, 1}}) {
    mlir::MLIRContext ctx;
    const std::string spec = fmt::format(
        "ssd(heads={}, head_dim={}, state={}, chunk={})", H, P, N, Q);
    INFO(spec << " L = " << L << " S = " << S);
    auto module = mixerModule(ctx, spec, L, 0);
    auto plans = chains(*module);
    CHECK(plans.count("m_saving") == 1);
    if (P == 16) {
      CHECK(countSteps(plans.at("m"), ChainStep::Gemm) >= 4);
      // Scratch buffers share slots: fewer slots than buffers.
      const ChainPlan &bwd = plans.at("m_backward");
      size_t scratch = 0;
      for (const auto &b : bwd.buffers)
        scratch += b.kind == ChainBuffer::Scratch;
      CHECK(bwd.slots.size() < scratch);
    }
    std::mt19937 rng(11);
    Doubles in = {randomDoubles(rng, S * L * H * P, -1, 1),
                  randomDoubles(rng, S * L * H, 0.1, 1),
                  randomDoubles(rng, S * L * H, -0.5, -0.05),
                  randomDoubles(rng, S * L * N, -1, 1),
                  randomDoubles(rng, S * L * N, -1, 1)};
    // Copies: a lambda captures no structured bindings before C++20.
    const int64_t s = S, l = L, h = H, p = P, n = N;
    checkMixer(plans, in, S, [&](const Doubles &v) {
      return ssdSequences(v, s, l, h, p, n);
    });
  }
}

TEST_CASE("CUDA Hydra: the chain equals the two flipped SSD passes, "
          "gradients finite differences",
          "[cuda][chain][mixer]") {
  // A chunk dividing L (with cuBLAS's 16-wide contractions), one that does
  // not (the zero padding in the IR), one token (no SSD pass reaches y).
  for (auto [H, P, N, Q, L, S] :
       {std::tuple{2, 16, 16, 16, 32, 2}, std::tuple{2, 2, 3, 4, 7, 2},
        std::tuple{1, 1, 1, 1, 1, 1}}) {
    mlir::MLIRContext ctx;
    const std::string spec = fmt::format(
        "hydra(heads={}, head_dim={}, state={}, chunk={})", H, P, N, Q);
    INFO(spec << " L = " << L << " S = " << S);
    auto module = mixerModule(ctx, spec, L, 0);
    auto plans = chains(*module);
    CHECK(plans.count("m_saving") == 1);
    // Flips, direction halves, shifts and the chunk's padding as Remaps.
    if (L > 1)
      CHECK(countSteps(plans.at("m"), ChainStep::Remap) >= 10);
    std::mt19937 rng(19);
    Doubles in = {randomDoubles(rng, S * L * H * P, -1, 1),
                  randomDoubles(rng, S * L * 2 * H, 0.1, 1),
                  randomDoubles(rng, S * L * 2 * H, -0.5, -0.05),
                  randomDoubles(rng, S * L * 2 * N, -1, 1),
                  randomDoubles(rng, S * L * 2 * N, -1, 1),
                  randomDoubles(rng, S * L * H, -1, 1)};
    const int64_t l = L, h = H, p = P, n = N, s = S;
    checkMixer(plans, in, S, [&](const Doubles &v) {
      return hydraSequences(v, s, l, h, p, n);
    });
  }
}

TEST_CASE("CUDA m2-conv: the chain equals M2's fftconv_ref, gradients "
          "finite differences",
          "[cuda][chain][mixer]") {
  // A length that fills the DFT grid's rows and one that does not (the
  // padding and the cut back to L in the IR), both directions; one token
  // (bidirectional: k_rev reaches nothing, its gradient is zero).
  for (auto [causal, L] :
       {std::pair{true, 20}, std::pair{false, 20}, std::pair{false, 8},
        std::pair{true, 1}, std::pair{false, 1}}) {
    mlir::MLIRContext ctx;
    const int64_t C = 3, S = 2;
    const std::string spec =
        fmt::format("m2-conv(causal={})", causal ? "true" : "false");
    INFO(spec << " L = " << L);
    auto module = mixerModule(ctx, spec, L, C);
    auto plans = chains(*module);
    CHECK(plans.count("m_saving") == 0);
    std::mt19937 rng(13);
    Doubles in = {randomDoubles(rng, S * L * C, -1, 1),
                  randomDoubles(rng, L * C, -1, 1)};
    if (!causal)
      in.push_back(randomDoubles(rng, L * C, -1, 1));
    in.push_back(randomDoubles(rng, C, -1, 1));
    const size_t params = in.size();
    for (const auto &k : m2ConvConstants(*m2ConvShape(*parseMixer(spec), L)))
      in.emplace_back(k.values.begin(), k.values.end());
    const int64_t l = L;
    const bool c = causal;
    checkMixer(plans, in, S, [&](const Doubles &v) {
      return convReference(v[0].data(), v[1].data(), c ? nullptr : v[2].data(),
                           v[params - 1].data(), S, l, C);
    });
  }
}

TEST_CASE("CUDA monarch-seq: the chain equals fly's Monarch reference",
          "[cuda][chain][mixer]") {
  mlir::MLIRContext ctx;
  const int64_t L = 64, C = 2, S = 2, nb = 4, m = L / nb;
  auto module = mixerModule(ctx, "monarch-seq(blocks=4)", L, C);
  auto plans = chains(*module);
  std::mt19937 rng(17);
  Doubles in = {randomDoubles(rng, S * L * C, -1, 1),
                randomDoubles(rng, nb * m * m, -1, 1),
                randomDoubles(rng, nb * m * m, -1, 1)};
  checkMixer(plans, in, S, [&](const Doubles &v) {
    return monarchReference(v[0].data(), v[1].data(), v[2].data(), S, L, C, nb);
  });
}

TEST_CASE("CUDA bf16 boundary: inputs and outputs converted around the "
          "float32 chain",
          "[cuda][chain][mixer]") {
  mlir::MLIRContext ctx;
  const int64_t H = 2, P = 2, N = 3, L = 7, S = 2;
  auto module =
      mixerModule(ctx, "hydra(heads=2, head_dim=2, state=3, chunk=4)", L, 0);
  auto f32 = chains(*module), bf16 = chains(*module, true);
  for (const auto &[name, plan] : bf16) {
    INFO(name);
    CHECK(plan.bf16Boundary);
    int boundary = 0;
    for (const auto &b : plan.buffers) {
      CHECK(b.bf16 == (b.kind != ChainBuffer::Scratch));
      boundary += b.kind != ChainBuffer::Scratch;
    }
    // One conversion per input and output, first and last; the rest is
    // the float32 chain.
    CHECK(countSteps(plan, ChainStep::Convert) == boundary);
    CHECK(plan.steps.size() == f32.at(name).steps.size() + size_t(boundary));
    CHECK(plan.steps.front().kind == ChainStep::Convert);
    CHECK(plan.steps.back().kind == ChainStep::Convert);
    auto src = emitChain(plan, name);
    REQUIRE(src);
    CHECK_THAT(src->source,
               Catch::Contains("const __nv_bfloat16 *b0 = "
                               "(const __nv_bfloat16 *)inputs[0]"));
    CHECK_THAT(src->header, Catch::Contains("const void *const *inputs"));
  }
  // The training pair's residuals stay float32 (where the sums are long
  // enough for any to be kept: state 8).
  auto ssd =
      mixerModule(ctx, "ssd(heads=2, head_dim=8, state=8, chunk=8)", 16, 0);
  int residuals = 0;
  for (const auto &[name, plan] : chains(*ssd, true))
    for (const auto &b : plan.buffers) {
      const bool residual = (b.kind == ChainBuffer::Input &&
                             plan.residualInput[size_t(b.index)]) ||
                            (b.kind == ChainBuffer::Output &&
                             plan.residualOutput[size_t(b.index)]);
      residuals += residual;
      if (b.kind != ChainBuffer::Scratch)
        CHECK(b.bf16 == !residual);
    }
  CHECK(residuals >= 2); // kept by m_saving, read by m_backward_saved
  // M2's DFT matrices (constant inputs, written in float32) stay float32,
  // in the backward too.
  auto conv = mixerModule(ctx, "m2-conv(causal=true)", 5, 3);
  for (const auto &[name, plan] : chains(*conv, true)) {
    INFO(name);
    CHECK(std::count(plan.constantInput.begin(), plan.constantInput.end(),
                     true) == 8);
    for (const auto &b : plan.buffers)
      if (b.kind == ChainBuffer::Input)
        CHECK(b.bf16 == !plan.constantInput[size_t(b.index)]);
  }
  // Inputs that bfloat16 holds exactly: the float32 chain's results,
  // rounded, bit for bit.
  std::mt19937 rng(23);
  Arrays in;
  for (auto [n, lo, hi] : {std::tuple{S * L * H * P, -1.0, 1.0},
                           std::tuple{S * L * 2 * H, 0.1, 1.0},
                           std::tuple{S * L * 2 * H, -0.5, -0.05},
                           std::tuple{S * L * 2 * N, -1.0, 1.0},
                           std::tuple{S * L * 2 * N, -1.0, 1.0},
                           std::tuple{S * L * H, -1.0, 1.0}}) {
    auto v = toFloat(randomDoubles(rng, n, lo, hi));
    for (float &e : v)
      e = roundToBf16(e);
    in.push_back(v);
  }
  auto compare = [&](const Arrays &got, const Arrays &want) {
    REQUIRE(got.size() == want.size());
    for (size_t k = 0; k < got.size(); ++k) {
      REQUIRE(got[k].size() == want[k].size());
      for (size_t i = 0; i < got[k].size(); ++i)
        CHECK(got[k][i] == roundToBf16(want[k][i]));
    }
  };
  compare(execute(bf16.at("m"), in, S), execute(f32.at("m"), in, S));
  Arrays withDy = in;
  auto dy = toFloat(randomDoubles(rng, S * L * H * P, -1, 1));
  for (float &e : dy)
    e = roundToBf16(e);
  withDy.push_back(dy);
  compare(execute(bf16.at("m_backward"), withDy, S),
          execute(f32.at("m_backward"), withDy, S));
}

TEST_CASE("CUDA chains: located errors for what the kernels cannot run",
          "[cuda][chain]") {
  mlir::MLIRContext ctx;
  loadDialects(ctx);
  std::string error;
  mlir::ScopedDiagnosticHandler collect(&ctx, [&](mlir::Diagnostic &d) {
    error = d.str();
    return mlir::success();
  });
  // The first error chainLibraries gives for the module `text`.
  auto chainError = [&](const char *text) {
    auto module = mlir::parseSourceString<mlir::ModuleOp>(text, &ctx);
    REQUIRE(module);
    auto r = chainLibraries(*module);
    REQUIRE_FALSE(r);
    return r.error();
  };
  // An unplanned contraction.
  CHECK_THAT(chainError("func.func @f(%a: tensor<?x4xf32>, %b: "
                        "tensor<4x5xf32>) -> tensor<?x5xf32> {\n"
                        "  %0 = einstruct.contract \"nk,kj->nj\" %a, %b : "
                        "tensor<?x4xf32>, tensor<4x5xf32> -> tensor<?x5xf32>\n"
                        "  return %0 : tensor<?x5xf32>\n}\n"),
             Catch::Contains("run --einstruct-plan-cuda"));
  // Two dynamic extents in one tensor.
  CHECK_THAT(
      chainError("func.func @f(%a: tensor<?x?xf32>, %b: tensor<?x5xf32>) -> "
                 "tensor<?x5xf32> {\n"
                 "  %0 = einstruct.contract \"nk,kj->nj\" %a, %b {cuda_kernel "
                 "= \"direct\"} : tensor<?x?xf32>, tensor<?x5xf32> -> "
                 "tensor<?x5xf32>\n"
                 "  return %0 : tensor<?x5xf32>\n}\n"),
      Catch::Contains("one runtime extent"));
  // cuBLAS named on a layout that is not one GEMM's.
  auto badLayout = mlir::parseSourceString<mlir::ModuleOp>(
      "func.func @f(%a: tensor<?x32x32xf32>, %b: tensor<32x?x32xf32>) -> "
      "tensor<?x32x32xf32> {\n"
      "  %0 = einstruct.contract \"nik,knj->inj\" %a, %b {cuda_kernel = "
      "\"cublas\"} : tensor<?x32x32xf32>, tensor<32x?x32xf32> -> "
      "tensor<?x32x32xf32>\n"
      "  return %0 : tensor<?x32x32xf32>\n}\n",
      &ctx);
  REQUIRE(badLayout);
  mlir::PassManager pm(&ctx);
  pm.addPass(createPlanCuda());
  CHECK(mlir::failed(pm.run(*badLayout)));
  CHECK_THAT(error, Catch::Contains("not laid out for one strided batched"));
  // Padding the sequences' dimension: its extent is the call's.
  CHECK_THAT(
      chainError("func.func @f(%a: tensor<?x4xf32>, %b: tensor<4x5xf32>) -> "
                 "tensor<?x5xf32> {\n"
                 "  %z = arith.constant 0.0 : f32\n"
                 "  %p = tensor.pad %a low[1, 0] high[0, 0] {\n"
                 "  ^bb0(%i: index, %j: index):\n"
                 "    tensor.yield %z : f32\n"
                 "  } : tensor<?x4xf32> to tensor<?x4xf32>\n"
                 "  %0 = einstruct.contract \"nk,kj->nj\" %p, %b {cuda_kernel "
                 "= \"direct\"} : tensor<?x4xf32>, tensor<4x5xf32> -> "
                 "tensor<?x5xf32>\n"
                 "  return %0 : tensor<?x5xf32>\n}\n"),
      Catch::Contains("pads dynamic dimension 0, which is kept whole here"));
}
