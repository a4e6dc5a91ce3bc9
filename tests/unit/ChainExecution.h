// Runs a contraction chain's plan (compiler/cuda/ChainPlan.h) on the CPU
// step by step as the emitted code runs it: cuBLAS's strided batched GEMM
// with its column-major semantics, and einstruct_chain.cuh's element
// functions (the kernels' arithmetic, compiled here without nvcc), with
// every index checked against its buffer and scratch in its shared
// workspace slots; and the helpers test_cuda_chain.cpp and
// test_cuda_blocks.cpp share around it.
#pragma once
#include "compiler/cuda/ChainEmitter.h"
#include "compiler/cuda/kernels/einstruct_chain.cuh"
#include "compiler/ir/EmitLayer.h"
#include "compiler/passes/CudaPipeline.h"
#include "search/Mixer.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <map>

namespace einstruct::testing {

using Arrays = std::vector<std::vector<float>>;
using Doubles = std::vector<std::vector<double>>;

// The offsets [first, last] a strided walk of operand a or b reaches
// (strides may be negative: a reversal read in place).
struct Span {
  int64_t first = 0, last = 0;
};
inline Span span(const einstruct_chain::Strided &s, bool b) {
  Span r;
  for (int d = 0; d < s.rank; ++d) {
    const int64_t far = (s.dims[d] - 1) * (b ? s.b[d] : s.a[d]);
    (far < 0 ? r.first : r.last) += far;
  }
  return r;
}

inline einstruct_chain::Strided strided(const ChainStep::Dims &d, int64_t S) {
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

// __float2bfloat16_rn: the nearest bfloat16 (the upper 16 bits), ties to
// even; finite values only.
inline float roundToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  u &= 0xFFFF0000u;
  std::memcpy(&f, &u, 4);
  return f;
}

// Runs `plan` on S sequences; returns its outputs.
inline Arrays execute(const ChainPlan &plan, const Arrays &inputs, int64_t S) {
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
  // A Direct's or Remap's summed term (its last input), or null.
  auto accumulated = [&](const ChainStep &s, int64_t n) -> const float * {
    if (!s.accumulate)
      return nullptr;
    REQUIRE(s.in.size() == (s.kind == ChainStep::Direct ? 3u : 2u));
    return sized(s.in.back(), n).data();
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
      // Each operand's walk from its base stays inside its buffer.
      auto operand = [&](int b, int64_t base, bool rhs) -> const float * {
        const Span o = span(c.out, rhs), m = span(c.sum, rhs);
        REQUIRE(base + o.first + m.first >= 0);
        return sized(b, base + o.last + m.last + 1).data() + base;
      };
      const float *l = operand(s.in[0], s.baseA, false);
      const float *r = operand(s.in[1], s.baseB, true);
      const float *acc = accumulated(s, n);
      auto &o = sized(s.out[0], n);
      for (int64_t i = 0; i < n; ++i)
        o[size_t(i)] = einstruct_chain::accumulated(
            einstruct_chain::directElement(c, l, r, i), acc, i);
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
      const float *acc = accumulated(s, n);
      auto &dst = sized(s.out[0], n);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t from = einstruct_chain::remapSource(r, i);
        REQUIRE(from >= -1);
        REQUIRE(from < int64_t(src.size()));
        dst[size_t(i)] = einstruct_chain::accumulated(
            einstruct_chain::remapElement(r, src.data(), i), acc, i);
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

inline int countSteps(const ChainPlan &plan, ChainStep::Kind kind) {
  int n = 0;
  for (const auto &s : plan.steps)
    n += s.kind == kind;
  return n;
}

inline double maxRelative(const std::vector<float> &got,
                          const std::vector<double> &want) {
  REQUIRE(got.size() == want.size());
  double scale = 0, err = 0;
  for (size_t k = 0; k < want.size(); ++k) {
    scale = std::max(scale, std::abs(want[k]));
    err = std::max(err, std::abs(double(got[k]) - want[k]));
  }
  return err / std::max(scale, 1e-30);
}

inline std::vector<float> toFloat(const std::vector<double> &v) {
  return std::vector<float>(v.begin(), v.end());
}

// The chain plans of a planned module, by function name.
inline std::map<std::string, ChainPlan> chains(mlir::ModuleOp module,
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

// A mixer's planned module.
inline mlir::OwningOpRef<mlir::ModuleOp> mixerModule(mlir::MLIRContext &ctx,
                                                     const std::string &spec,
                                                     int64_t L,
                                                     int64_t channels) {
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
inline size_t checkSavingPair(const std::map<std::string, ChainPlan> &plans,
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

} // namespace einstruct::testing
