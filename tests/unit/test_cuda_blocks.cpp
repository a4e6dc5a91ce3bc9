// Whole blocks' CUDA libraries (hydra-block, m2-block), executed on the CPU
// as the emitted code runs them (ChainExecution.h), against the CPU's
// compiled block (JitMixer, itself checked against a float64 transcription
// and finite differences in test_jit_mixer.cpp); and the elementwise kernel
// their activations, gates and norm run, against float64 formulas.
#include "compiler/cpu/JitMixer.h"
#include "dialects/EinstructDialect.h"
#include "tests/unit/ChainExecution.h"

#include <catch2/catch.hpp>
#include <functional>
#include <random>

using namespace einstruct;
using namespace einstruct::testing;

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
