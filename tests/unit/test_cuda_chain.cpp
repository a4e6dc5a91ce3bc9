// The CUDA libraries of contraction chains (sequence mixers), executed on
// the CPU step by step as the emitted code runs them: cuBLAS's strided
// batched GEMM with its column-major semantics, and einstruct_chain.cuh's
// element functions (the kernels' arithmetic, compiled here without nvcc),
// with every index checked against its buffer. Results against references
// in double: hand-written contractions in many layouts, the SSD's
// semiseparable matrix, the circular convolution M2's DFTs compute, fly's
// Monarch; gradients against central differences of <dy, reference>.
#include "compiler/cpu/JitMixer.h"
#include "compiler/cuda/ChainEmitter.h"
#include "compiler/cuda/kernels/einstruct_chain.cuh"
#include "compiler/ir/EmitLayer.h"
#include "compiler/ir/EmitMixer.h"
#include "compiler/passes/ChainOfFunction.h"
#include "compiler/passes/CudaPipeline.h"
#include "dialects/EinstructDialect.h"
#include "search/Einsum.h"
#include "tests/unit/MixerReferences.h"

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

using Arrays = std::vector<std::vector<float>>;
using Doubles = std::vector<std::vector<double>>;

// The largest offset a strided walk reaches, plus one.
int64_t reach(const einstruct_chain::Strided &s, bool b) {
  int64_t far = 0;
  for (int d = 0; d < s.rank; ++d)
    far += (s.dims[d] - 1) * (b ? s.b[d] : s.a[d]);
  return far + 1;
}

einstruct_chain::Strided strided(const ChainStep::Dims &d, int64_t S) {
  einstruct_chain::Strided s{};
  s.rank = int(d.dims.size());
  REQUIRE(s.rank <= einstruct_chain::kMaxRank);
  for (int k = 0; k < s.rank; ++k) {
    s.dims[k] = d.dims[size_t(k)].at(S);
    s.a[k] = d.a[size_t(k)].at(S);
    s.b[k] = d.b[size_t(k)].at(S);
  }
  return s;
}

// Runs `plan` on S sequences; returns its outputs.
// __float2bfloat16_rn: the nearest bfloat16 (the upper 16 bits), ties to
// even; finite values only.
float roundToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  u &= 0xFFFF0000u;
  std::memcpy(&f, &u, 4);
  return f;
}

Arrays execute(const ChainPlan &plan, const Arrays &inputs, int64_t S) {
  REQUIRE(int(inputs.size()) == plan.inputs);
  // Scratch buffers live in their workspace slots, shared as the emitted
  // code shares them: a slot reused too early corrupts what is read later.
  const size_t nb = plan.buffers.size();
  Arrays storage(nb + plan.slots.size());
  std::vector<size_t> at(nb);
  for (size_t k = 0; k < plan.slots.size(); ++k)
    // NaN: a read of what no step wrote shows in the results.
    storage[nb + k].assign(size_t(plan.slots[k].at(S)), std::nanf(""));
  for (size_t b = 0; b < nb; ++b) {
    const ChainBuffer &x = plan.buffers[b];
    at[b] = x.kind == ChainBuffer::Scratch ? nb + size_t(x.slot) : b;
    if (x.kind == ChainBuffer::Scratch) {
      REQUIRE(x.slot >= 0);
      REQUIRE(plan.slots[size_t(x.slot)].at(S) == x.elems.at(S));
    } else if (x.kind == ChainBuffer::Input) {
      REQUIRE(int64_t(inputs[size_t(x.index)].size()) == x.elems.at(S));
      storage[b] = inputs[size_t(x.index)];
    } else {
      storage[b].assign(size_t(x.elems.at(S)), std::nanf(""));
    }
  }
  auto sized = [&](int b, int64_t n) -> std::vector<float> & {
    std::vector<float> &v = storage[at[size_t(b)]];
    REQUIRE(int64_t(v.size()) >= n);
    return v;
  };
  for (const ChainStep &s : plan.steps) {
    INFO(s.what);
    const int64_t N = s.seqs.at(S), C = s.chunks, Q = s.steps, H = s.heads,
                  PK = s.pk;
    switch (s.kind) {
    case ChainStep::Gemm: {
      const int64_t m = s.m.at(S), n = s.n.at(S), k = s.k.at(S),
                    lda = s.lda.at(S), ldb = s.ldb.at(S), ldc = s.ldc.at(S),
                    sA = s.strideA.at(S), sB = s.strideB.at(S),
                    sC = s.strideC.at(S), batch = s.batch.at(S);
      REQUIRE(lda >= (s.transA ? k : m));
      REQUIRE(ldb >= (s.transB ? n : k));
      REQUIRE(ldc >= m);
      auto &A = sized(s.in[0], (batch - 1) * sA + 1);
      auto &B = sized(s.in[1], (batch - 1) * sB + 1);
      auto &Cm = sized(s.out[0], (batch - 1) * sC + (n - 1) * ldc + m);
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) {
            double acc = 0;
            for (int64_t l = 0; l < k; ++l) {
              int64_t ai = b * sA + (s.transA ? l + i * lda : i + l * lda);
              int64_t bi = b * sB + (s.transB ? j + l * ldb : l + j * ldb);
              REQUIRE(ai < int64_t(A.size()));
              REQUIRE(bi < int64_t(B.size()));
              acc += double(A[size_t(ai)]) * double(B[size_t(bi)]);
            }
            Cm[size_t(b * sC + i + j * ldc)] = float(acc);
          }
      break;
    }
    case ChainStep::Direct: {
      einstruct_chain::DirectContract c{strided(s.outDims, S),
                                        strided(s.sumDims, S)};
      const int64_t n = einstruct_chain::stridedCount(c.out);
      auto &l = sized(s.in[0], reach(c.out, false) + reach(c.sum, false) - 1);
      auto &r = sized(s.in[1], reach(c.out, true) + reach(c.sum, true) - 1);
      auto &o = sized(s.out[0], n);
      for (int64_t i = 0; i < n; ++i)
        o[size_t(i)] = einstruct_chain::directElement(c, l.data(), r.data(), i);
      break;
    }
    case ChainStep::Remap: {
      einstruct_chain::Remap r{strided(s.outDims, S), s.base, {}, {}};
      for (int d = 0; d < r.p.rank; ++d) {
        r.lo[d] = s.lo[size_t(d)].at(S);
        r.hi[d] = s.hi[size_t(d)].at(S);
      }
      const int64_t n = einstruct_chain::stridedCount(r.p);
      auto &src = storage[at[size_t(s.in[0])]];
      auto &dst = sized(s.out[0], n);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t from = einstruct_chain::remapSource(r, i);
        REQUIRE(from >= -1);
        REQUIRE(from < int64_t(src.size()));
        dst[size_t(i)] = einstruct_chain::remapElement(r, src.data(), i);
      }
      break;
    }
    case ChainStep::Convert: {
      // bfloat16 buffers hold bfloat16 values: an input's convert is exact,
      // an output's rounds.
      const int64_t n = s.count.at(S);
      const bool toBf16 = plan.buffers[size_t(s.out[0])].bf16;
      REQUIRE(toBf16 != plan.buffers[size_t(s.in[0])].bf16);
      auto &o = sized(s.out[0], n);
      const auto &in = sized(s.in[0], n);
      for (int64_t i = 0; i < n; ++i) {
        REQUIRE((toBf16 || roundToBf16(in[size_t(i)]) == in[size_t(i)]));
        o[size_t(i)] = toBf16 ? roundToBf16(in[size_t(i)]) : in[size_t(i)];
      }
      break;
    }
    case ChainStep::Add:
    case ChainStep::Map:
    case ChainStep::Fill:
    case ChainStep::Copy: {
      const int64_t n = s.count.at(S);
      auto &o = sized(s.out[0], n);
      // As the emitted literals round them.
      const einstruct_chain::Map m{s.unary, float(s.scale), float(s.shift)};
      for (int64_t i = 0; i < n; ++i)
        o[size_t(i)] =
            s.kind == ChainStep::Fill   ? float(s.value)
            : s.kind == ChainStep::Copy ? sized(s.in[0], n)[size_t(i)]
            : s.kind == ChainStep::Map
                ? einstruct_chain::mapElement(m, sized(s.in[0], n)[size_t(i)])
                : sized(s.in[0], n)[size_t(i)] + sized(s.in[1], n)[size_t(i)];
      break;
    }
    case ChainStep::Decays: {
      const float *a = sized(s.in[0], N * C * Q * H).data();
      float *w = sized(s.out[0], N * H * C * Q * Q).data(),
            *e = sized(s.out[1], N * H * C * Q).data(),
            *f = sized(s.out[2], N * H * C * Q).data(),
            *g = sized(s.out[3], N * H * C).data();
      for (int64_t i = 0; i < N * H * C * Q; ++i)
        einstruct_chain::chunkDecaysElement(a, w, e, f, g, C, Q, H, i);
      break;
    }
    case ChainStep::DecaysGrad: {
      const float *a = sized(s.in[0], N * C * Q * H).data(),
                  *dW = sized(s.in[1], N * H * C * Q * Q).data(),
                  *dE = sized(s.in[2], N * H * C * Q).data(),
                  *dS = sized(s.in[3], N * H * C * Q).data(),
                  *dG = sized(s.in[4], N * H * C).data();
      float *da = sized(s.out[0], N * C * Q * H).data(),
            *scratch = sized(s.out[1], N * H * C * Q).data();
      for (int64_t seg = 0; seg < N * H * C; ++seg)
        einstruct_chain::chunkDecaysGradSegment(
            a, dW, dE, dS, dG, da, scratch + seg * Q, C, Q, H, seg);
      break;
    }
    case ChainStep::Scan:
      for (int64_t i = 0; i < N * H * PK; ++i)
        einstruct_chain::chunkScanElement(
            sized(s.in[0], N * C * H * PK).data(),
            sized(s.in[1], N * H * C).data(),
            sized(s.out[0], N * C * H * PK).data(), C, H, PK, i);
      break;
    case ChainStep::ScanGrad:
      for (int64_t i = 0; i < N * H * PK; ++i)
        einstruct_chain::chunkScanGradElement(
            sized(s.in[0], N * H * C).data(),
            sized(s.in[1], N * C * H * PK).data(),
            sized(s.out[0], N * C * H * PK).data(), C, H, PK, i);
      break;
    case ChainStep::ScanDecayGrad:
      for (int64_t i = 0; i < N * H * C; ++i)
        sized(s.out[0], N * H * C)[size_t(i)] =
            einstruct_chain::chunkScanDecayGrad(
                sized(s.in[0], N * C * H * PK).data(),
                sized(s.in[1], N * C * H * PK).data(), C, H, PK, i);
      break;
    }
  }
  Arrays out(size_t(plan.outputs));
  for (size_t b = 0; b < nb; ++b)
    if (plan.buffers[b].kind == ChainBuffer::Output)
      out[size_t(plan.buffers[b].index)] = storage[b];
  return out;
}

int countSteps(const ChainPlan &plan, ChainStep::Kind kind) {
  int n = 0;
  for (const auto &s : plan.steps)
    n += s.kind == kind;
  return n;
}

double maxRelative(const std::vector<float> &got,
                   const std::vector<double> &want) {
  REQUIRE(got.size() == want.size());
  double scale = 0, err = 0;
  for (size_t k = 0; k < want.size(); ++k) {
    scale = std::max(scale, std::abs(want[k]));
    err = std::max(err, std::abs(double(got[k]) - want[k]));
  }
  return err / std::max(scale, 1e-30);
}

std::vector<float> toFloat(const std::vector<double> &v) {
  return std::vector<float>(v.begin(), v.end());
}

// The chain plans of a planned module, by function name.
std::map<std::string, ChainPlan> chains(mlir::ModuleOp module,
                                        bool bf16Boundary = false) {
  auto libs = chainLibraries(module, bf16Boundary);
  INFO((libs ? "" : libs.error()));
  REQUIRE(libs);
  std::map<std::string, ChainPlan> out;
  for (auto &lib : *libs) {
    // The emitter takes every plan the tests run.
    REQUIRE(emitChain(lib.plan, lib.function));
    out[lib.function] = lib.plan;
  }
  return out;
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

// A mixer's planned module.
mlir::OwningOpRef<mlir::ModuleOp> mixerModule(mlir::MLIRContext &ctx,
                                              const std::string &spec,
                                              int64_t L, int64_t channels) {
  loadDialects(ctx);
  auto named = parseMixer(spec);
  REQUIRE(named);
  auto plan = planMixer(*named, L, channels);
  REQUIRE(plan);
  auto module = plannedMixer(ctx, *plan, "m");
  INFO((module ? "" : module.error()));
  REQUIRE(module);
  return std::move(*module);
}

// The training pair, @m_saving and @m_backward_saved, against @m and
// @m_backward on the same inputs (constants included) and dy: y to float
// rounding, and the gradients from the saved residuals as from recomputing
// the forward. The residuals' extents (S·L rows of a block's projections)
// are read off @m_saving. Returns how many residuals it keeps.
size_t checkSavingPair(const std::map<std::string, ChainPlan> &plans,
                       const Arrays &in, const std::vector<float> &dy,
                       int64_t S) {
  REQUIRE(plans.count("m_saving"));
  const ChainPlan &saving = plans.at("m_saving");
  auto y = execute(plans.at("m"), in, S);
  auto kept = execute(saving, in, S);
  // y, then the residuals (none where every contraction sums 4 products or
  // fewer: all recomputed).
  REQUIRE(!kept.empty());
  REQUIRE(kept[0].size() == y[0].size());
  for (size_t i = 0; i < y[0].size(); ++i)
    CHECK(std::abs(kept[0][i] - y[0][i]) <=
          1e-6f * std::max(1.0f, std::abs(y[0][i])));
  Arrays recomputeIn = in, savedIn = in;
  recomputeIn.push_back(dy);
  savedIn.insert(savedIn.end(), kept.begin() + 1, kept.end());
  savedIn.push_back(dy);
  auto want = execute(plans.at("m_backward"), recomputeIn, S);
  auto got = execute(plans.at("m_backward_saved"), savedIn, S);
  REQUIRE(got.size() == want.size());
  for (size_t k = 0; k < want.size(); ++k) {
    INFO("gradient " << k);
    REQUIRE(got[k].size() == want[k].size());
    double scale = 0, err = 0;
    for (size_t i = 0; i < want[k].size(); ++i) {
      scale = std::max(scale, double(std::abs(want[k][i])));
      err = std::max(err, double(std::abs(got[k][i] - want[k][i])));
    }
    CHECK(err <= 1e-5 * std::max(scale, 1e-6));
  }
  return kept.size() - 1;
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

TEST_CASE("CUDA unary: each einstruct.unary kind numbered as the dialect "
          "lists them",
          "[cuda][chain]") {
  const auto sigmoid = [](double z) { return 1 / (1 + std::exp(-z)); };
  const std::map<std::string, std::function<double(double)>> want = {
      {"identity", [](double z) { return z; }},
      {"exp", [](double z) { return std::exp(z); }},
      {"sigmoid", sigmoid},
      {"silu", [&](double z) { return z * sigmoid(z); }},
      {"softplus", [](double z) { return std::log1p(std::exp(z)); }},
      {"rsqrt", [](double z) { return 1 / std::sqrt(z); }},
      {"sin", [](double z) { return std::sin(z); }},
      {"cos", [](double z) { return std::cos(z); }},
      {"silu_grad",
       [&](double z) { return sigmoid(z) * (1 + z * (1 - sigmoid(z))); }},
      {"sigmoid_grad", [&](double z) { return sigmoid(z) * (1 - sigmoid(z)); }},
      {"rsqrt_grad", [](double z) { return -0.5 * std::pow(z, -1.5); }}};
  REQUIRE(unaryKinds().size() == want.size());
  for (size_t k = 0; k < unaryKinds().size(); ++k) {
    const std::string kind = unaryKinds()[k].str();
    INFO(kind);
    REQUIRE(want.count(kind));
    // rsqrt's argument positive; softplus far out on both sides.
    for (double z : {0.25, 0.5, 1.0, 3.0, 30.0}) {
      for (double sign : {1.0, -1.0}) {
        if (sign < 0 && kind.rfind("rsqrt", 0) == 0)
          continue;
        const double expect = want.at(kind)(sign * z);
        const double got =
            einstruct_chain::unaryElement(int(k), float(sign * z));
        CHECK(std::abs(got - expect) <= 2e-6 * std::max(1.0, std::abs(expect)));
      }
    }
    // f(scale·x + shift).
    const einstruct_chain::Map m{int(k), 0.5f, 0.25f};
    CHECK(einstruct_chain::mapElement(m, 1.5f) ==
          einstruct_chain::unaryElement(int(k), 1.0f));
  }
}

TEST_CASE("CUDA blocks: the chains equal the CPU's compiled block, forward "
          "and gradients",
          "[cuda][chain][mixer]") {
  {
    // At a width cuBLAS pays for, the projections (in_proj, out_proj and
    // their backward's two products each) are GEMMs on S·L rows.
    mlir::MLIRContext ctx;
    auto plans = chains(*mixerModule(
        ctx, "hydra-block(state=16, head_dim=16, chunk=16)", 64, 64));
    const ChainPlan &fwd = plans.at("m"), &bwd = plans.at("m_backward");
    CHECK(countSteps(fwd, ChainStep::Gemm) >= 2);
    CHECK(countSteps(bwd, ChainStep::Gemm) >= 6);
    bool rowsOfTokens = false;
    for (const auto &s : fwd.steps)
      rowsOfTokens |=
          s.kind == ChainStep::Gemm && s.n.power == 1 && s.n.value == 64;
    CHECK(rowsOfTokens);
  }
  struct Case {
    const char *spec;
    int64_t L, d;
  };
  // Hydra's block with a chunk that pads L and one that divides it, with
  // structured projections (layers of two weights: two contractions each);
  // M2's block both ways (its filter's decay and DFTs constant inputs).
  for (Case c :
       {Case{"hydra-block(state=4, conv=3, expand=2, head_dim=4, chunk=4)", 10,
             8},
        Case{"hydra-block(state=4, conv=3, expand=2, head_dim=4, chunk=4)", 8,
             8},
        Case{"hydra-block(state=4, conv=3, expand=2, head_dim=4, chunk=4, "
             "proj=monarch(blocks=2))",
             6, 8},
        Case{"m2-block(causal=true, order=4, l_max=16)", 8, 4},
        Case{"m2-block(causal=false, order=4, l_max=16)", 7, 4}}) {
    INFO(c.spec << " L = " << c.L);
    const int64_t S = 2;
    mlir::MLIRContext ctx;
    auto module = mixerModule(ctx, c.spec, c.L, c.d);
    auto plans = chains(*module);
    // The activations, gates and norm: maps.
    CHECK(countSteps(plans.at("m"), ChainStep::Map) >= 2);
    auto named = parseMixer(c.spec);
    REQUIRE(named);
    auto jit = JitMixer::compile(*named, c.L, c.d);
    REQUIRE(jit);
    auto plan = planMixer(*named, c.L, c.d);
    REQUIRE(plan);
    std::mt19937 rng(29);
    std::normal_distribution<float> normal;
    Arrays in;
    std::vector<const float *> ptrs;
    for (const auto &op : (*jit)->operands()) {
      int64_t n = op.perSequence ? S : 1;
      for (int64_t e : op.shape)
        n *= e;
      auto &v = in.emplace_back(size_t(n));
      for (float &e : v)
        e = 0.5f * normal(rng);
    }
    for (const auto &v : in)
      ptrs.push_back(v.data());
    Arrays chainIn = in;
    for (const auto &k : mixerConstants(*plan))
      chainIn.emplace_back(k.values.begin(), k.values.end());
    // Within float rounding of each other (the JIT's own against a
    // float64 transcription and finite differences: test_jit_mixer.cpp).
    auto close = [](const std::vector<float> &got,
                    const std::vector<float> &want, double tolerance) {
      REQUIRE(got.size() == want.size());
      double scale = 0, err = 0;
      for (size_t k = 0; k < want.size(); ++k) {
        scale = std::max(scale, double(std::abs(want[k])));
        err = std::max(err, double(std::abs(got[k] - want[k])));
      }
      INFO("max error " << err << " of max " << scale);
      CHECK(err <= tolerance * std::max(scale, 1e-6));
    };
    std::vector<float> y(size_t(S * c.L * c.d));
    REQUIRE((*jit)->forward(ptrs, S, y.data()));
    auto chainY = execute(plans.at("m"), chainIn, S);
    close(chainY[0], y, 1e-5);
    std::vector<float> dy(y.size());
    for (float &e : dy)
      e = normal(rng);
    Arrays grads;
    std::vector<float *> gradPtrs;
    for (const auto &v : in)
      gradPtrs.push_back(grads.emplace_back(v.size()).data());
    REQUIRE((*jit)->backward(ptrs, dy.data(), S, gradPtrs));
    // The projections (layers) are saved, never recomputed.
    CHECK(checkSavingPair(plans, chainIn, dy, S) >= 2);
    chainIn.push_back(dy);
    auto chainGrads = execute(plans.at("m_backward"), chainIn, S);
    REQUIRE(chainGrads.size() == grads.size());
    for (size_t k = 0; k < grads.size(); ++k) {
      INFO("the gradient of " << (*jit)->operands()[k].name);
      close(chainGrads[k], grads[k], 1e-4);
    }
  }
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
