// The CUDA emitter's index arithmetic, checked on the CPU: the kernels of
// compiler/cuda/kernels/einstruct_two_stage.cuh are emulated tile by tile
// with the plan's sizes, strides, tiles and limits (same token tiles, f
// chunks, z tile layout and bounds), and the results compared with the CPU
// path (the MLIR JIT, forward and backward) on layers covering every class,
// padding, permuted letters and odd sizes.
#include "compiler/cpu/JitLayer.h"
#include "compiler/cuda/CudaPlan.h"
#include "compiler/frontend/SpecReader.h"
#include "tests/unit/CompiledLayer.h"
#include "tests/unit/RelativeError.h"
#include "tests/unit/SpecArgsFor.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>

using namespace einstruct;
using einstruct::testing::randomValues;
using einstruct::testing::relErr;
using einstruct::testing::einsumArgs;
using einstruct::testing::namedArgs;
using einstruct::testing::thetaArgs;

namespace {

constexpr int64_t kMT = 64; // the kernels' block-product rows

// twoStage for all tokens: x [n, XT] → y [n, YT], z written to zOut.
void emulateTwoStage(const TwoStageConfig &c, const std::vector<float> &x,
                     const std::vector<float> &w1, const std::vector<float> &w2,
                     std::vector<float> &y, std::vector<float> &zOut,
                     int64_t n) {
  REQUIRE(c.TT * c.B <= kMT);
  REQUIRE(c.TT * c.D <= kMT);
  REQUIRE(c.K2P >= c.R * c.G * c.B);
  y.assign(size_t(n * c.YT), NAN);
  zOut.assign(size_t(n * c.ZT), NAN);
  for (int64_t t0 = 0; t0 < n; t0 += c.TT)
    for (int64_t f0 = 0; f0 < c.F; f0 += c.FC) {
      std::vector<float> zs(size_t(c.FC * kMT * c.K2P), 0.0f);
      for (int64_t g = 0; g < c.G; ++g)
        for (int64_t m = 0; m < c.TT * c.B; ++m)
          for (int64_t col = 0; col < c.FC * c.D * c.R; ++col) {
            int64_t tt = m / c.B, b = m % c.B, r = col % c.R,
                    d = col / c.R % c.D, fl = col / c.R / c.D, t = t0 + tt,
                    f = f0 + fl;
            if (t >= n || f >= c.F)
              continue;
            double acc = 0;
            for (int64_t a = 0; a < c.A; ++a) {
              int64_t off = g * c.XG + b * c.XB + a * c.XA;
              if (off < c.IN_LIMIT)
                acc += double(x[size_t(t * c.XT + off)]) *
                       w1[size_t(f * c.W1F + d * c.W1D + r * c.W1R +
                                 g * c.W1G + a * c.W1A)];
            }
            size_t zi = size_t((fl * kMT + tt * c.D + d) * c.K2P +
                               (r * c.G + g) * c.B + b);
            REQUIRE(zi < zs.size());
            zs[zi] = float(acc);
            zOut[size_t(t * c.ZT + f * c.ZF + d * c.ZD + r * c.ZR + g * c.ZG +
                        b)] = float(acc);
          }
      for (int64_t fl = 0; fl < c.FC && f0 + fl < c.F; ++fl)
        for (int64_t m = 0; m < c.TT * c.D; ++m)
          for (int64_t e = 0; e < c.E; ++e) {
            int64_t tt = m / c.D, d = m % c.D, t = t0 + tt, f = f0 + fl;
            double acc = 0;
            for (int64_t k = 0; k < c.R * c.G * c.B; ++k) {
              int64_t b = k % c.B, g = k / c.B % c.G, r = k / c.B / c.G;
              acc += double(zs[size_t((fl * kMT + m) * c.K2P + k)]) *
                     w2[size_t(f * c.W2F + e * c.W2E + r * c.W2R + g * c.W2G +
                               b * c.W2B)];
            }
            int64_t off = f * c.YF + e * c.YE + d * c.YD;
            if (t < n && off < c.OUT_LIMIT)
              y[size_t(t * c.YT + off)] = float(acc);
          }
      for (int64_t tt = 0; f0 == 0 && tt < c.TT && t0 + tt < n; ++tt)
        for (int64_t j = c.OUT_FILL_FROM; j < c.OUT_LIMIT; ++j)
          y[size_t((t0 + tt) * c.YT + j)] = 0.0f;
    }
}

// weightGrad + reduceSplits: grad scattered by the output strides.
void emulateWeightGrad(const WeightGradConfig &w, const std::vector<float> &L,
                       const std::vector<float> &R, std::vector<float> &grad,
                       int64_t n) {
  std::fill(grad.begin(), grad.end(), NAN);
  for (int64_t p = 0; p < w.P; ++p)
    for (int64_t m = 0; m < w.M0 * w.M1 * w.M2; ++m)
      for (int64_t c = 0; c < w.N0 * w.N1 * w.N2; ++c) {
        int64_t m2 = m % w.M2, m1 = m / w.M2 % w.M1, m0 = m / w.M2 / w.M1;
        int64_t c2 = c % w.N2, c1 = c / w.N2 % w.N1, c0 = c / w.N2 / w.N1;
        double acc = 0;
        for (int64_t t = 0; t < n; ++t)
          for (int64_t i = 0; i < w.I; ++i) {
            int64_t lo = p * w.LP + i * w.LI + m0 * w.LM0 + m1 * w.LM1 +
                         m2 * w.LM2;
            int64_t ro = p * w.RP + i * w.RI + c0 * w.RN0 + c1 * w.RN1 +
                         c2 * w.RN2;
            if (lo < w.L_LIMIT && ro < w.R_LIMIT)
              acc += double(L[size_t(t * w.LT + lo)]) * R[size_t(t * w.RT + ro)];
          }
        size_t o = size_t(p * w.OP + m0 * w.OM0 + m1 * w.OM1 + m2 * w.OM2 +
                          c0 * w.ON0 + c1 * w.ON1 + c2 * w.ON2);
        REQUIRE(o < grad.size());
        grad[o] = float(acc);
      }
}

// The plan's kernels, emulated on n tokens, against the JIT.
void checkRuns(const Layer &layer, const CudaPlan *plan, int64_t n) {
  INFO(layer.terms[0].str()
       << " " << layer.terms[0].sizesStr() << " " << plan->tileWhy);
  std::mt19937 rng(7);
  auto randomVec = [&](int64_t count) { return randomValues(count, rng); };
  auto x = randomVec(n * layer.dIn), dy = randomVec(n * layer.dOut);
  auto w1 = randomVec(plan->w1Size), w2 = randomVec(plan->w2Size);

  auto jit = JitLayer::compile(layer);
  REQUIRE(jit);
  auto yRef = (*jit)->forward(x.data(), n, {w1.data(), w2.data()});
  REQUIRE(yRef);
  auto gRef = (*jit)->backward(x.data(), dy.data(), n, {w1.data(), w2.data()});
  REQUIRE(gRef);

  std::vector<float> y, z, dx, dz;
  emulateTwoStage(plan->forward, x, w1, w2, y, z, n);
  CHECK(relErr(y, *yRef) < 1e-5);
  // The backward-input configuration takes W2 as its first factor.
  emulateTwoStage(plan->backwardInput, dy, w2, w1, dx, dz, n);
  CHECK(relErr(dx, gRef->dx) < 1e-5);
  std::vector<float> dw1(size_t(plan->w1Size)), dw2(size_t(plan->w2Size));
  emulateWeightGrad(plan->gradW1, dz, x, dw1, n);
  emulateWeightGrad(plan->gradW2, dy, z, dw2, n);
  CHECK(relErr(dw1, gRef->dw[0]) < 1e-5);
  CHECK(relErr(dw2, gRef->dw[1]) < 1e-5);
}

void checkPlan(const SpecArgs &args, int64_t n, CudaDType dt) {
  auto layer = layerFromArgs(args);
  REQUIRE(layer);
  CudaTarget target;
  target.dtype = dt;
  auto plan = planCuda(*layer, target);
  REQUIRE(plan);
  checkRuns(*layer, &*plan, n);
}

} // namespace

TEST_CASE("CUDA plan: Monarch and BTT emulate to the CPU path", "[cuda]") {
  checkPlan(namedArgs("monarch(8)", 64, 64), 70, CudaDType::BF16);
  checkPlan(namedArgs("monarch(16)", 256, 256), 3, CudaDType::F32);
  checkPlan(einsumArgs("gba,fdrga,fergb->fed", "g=4,b=1,a=6,f=5,d=1,r=3,e=7"), 65,
            CudaDType::BF16);
}

TEST_CASE("CUDA plan: padding and odd sizes", "[cuda]") {
  // 774 → 3038 structure on a 768 → 3072 layer (structures.md row 7).
  checkPlan(thetaArgs("(0.33|0|0.67|0|0.67|0.33|0)", 768, 3072), 2,
            CudaDType::BF16);
  checkPlan(thetaArgs("(0.5|0|0.5|0|0.5|0.5|0)", 100, 150, "exact"), 9,
            CudaDType::F32);
}

TEST_CASE("CUDA plan: every class, permuted letters, other families",
          "[cuda]") {
  checkPlan(einsumArgs("gba,fdrga,fergb->fed",
                   "g=2,b=3,a=4,f=3,d=2,r=2,e=3"), 11, CudaDType::F32);
  checkPlan(einsumArgs("bga,gardf,bgref->efd", // layouts permuted
                   "g=2,b=3,a=4,f=3,d=2,r=2,e=3"), 5, CudaDType::BF16);
  checkPlan(einsumArgs("kp,kqp,qsk->qs", "k=4,p=5,q=6,s=3"), 7, CudaDType::F32);
  checkPlan(namedArgs("low-rank(rank=5)", 40, 30), 4, CudaDType::F32);
  checkPlan(namedArgs("kronecker", 64, 64), 3, CudaDType::BF16);
}

TEST_CASE("CUDA plan: refusals name the reason", "[cuda]") {
  CudaTarget target;
  auto dyad = layerFromArgs(namedArgs("dyad(blocks=4,variant=IT)", 16, 16));
  REQUIRE(dyad);
  auto p = planCuda(*dyad, target);
  REQUIRE(!p);
  CHECK_THAT(p.error(), Catch::Contains("one einsum term"));
  auto big = layerFromArgs(einsumArgs("gba,fdrga,fergb->fed",
                                  "g=1,b=128,a=2,f=1,d=1,r=1,e=2"));
  REQUIRE(big);
  p = planCuda(*big, target);
  REQUIRE(!p);
  CHECK_THAT(p.error(), Catch::Contains("class β has size 128"));
  target.arch = "sm_70";
  auto m = layerFromArgs(namedArgs("monarch(8)", 64, 64));
  p = planCuda(*m, target);
  REQUIRE(!p);
  CHECK_THAT(p.error(), Catch::Contains("sm_70"));
}

TEST_CASE("CUDA plan: a BTT-MoE plans one expert's rank-1 layer", "[cuda][moe]") {
  // ga,frga,ferg->fe with g=4, a=6, f=5, e=6 and r = 3 experts.
  auto layer = layerFromArgs(
      namedArgs("btt-moe(experts=3, top_k=1, in_blocks=4, out_blocks=5)", 24, 30));
  REQUIRE(layer);
  REQUIRE(layer->terms[0].str() == "ga,frga,ferg->fe");
  CudaTarget target;
  auto plan = planCuda(*layer, target);
  REQUIRE(plan);
  const TwoStageConfig &c = plan->forward;
  CHECK(c.R == 1);
  CHECK(plan->experts == 3);
  CHECK(plan->expertW1 == 4 * 6); // W1[f, r, g, a]: r steps over g·a
  CHECK(plan->expertW2 == 4);     // W2[f, e, r, g]: r steps over g
  // K2 = R·G·B = 4 < one k-chunk: z rows padded to 16 (+ 8 for banks).
  CHECK(c.K2P == 16 + 8);
  CHECK(c.FC == c.F);
  // Expert e through the plan == the rank-1 BTT of its weight slice.
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1, 1);
  const int64_t n = 67;
  std::vector<float> x(size_t(n * 24)), w1(size_t(plan->w1Size)),
      w2(size_t(plan->w2Size));
  for (auto *v : {&x, &w1, &w2})
    for (auto &e : *v)
      e = u(rng);
  for (int64_t ex = 0; ex < 3; ++ex) {
    std::vector<float> s1(w1.begin() + ex * plan->expertW1, w1.end()),
        s2(w2.begin() + ex * plan->expertW2, w2.end()), y, z;
    emulateTwoStage(c, x, s1, s2, y, z, n);
    double err = 0;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t f = 0; f < 5; ++f)
        for (int64_t e = 0; e < 6; ++e) {
          double acc = 0;
          for (int64_t g = 0; g < 4; ++g) {
            double zv = 0;
            for (int64_t a = 0; a < 6; ++a)
              zv += double(x[size_t(t * 24 + g * 6 + a)]) *
                    w1[size_t(((f * 3 + ex) * 4 + g) * 6 + a)];
            acc += zv * w2[size_t(((f * 6 + e) * 3 + ex) * 4 + g)];
          }
          err = std::max(err, std::fabs(acc - y[size_t(t * 30 + f * 6 + e)]));
        }
    INFO("expert " << ex);
    CHECK(err < 1e-4);
  }
}

TEST_CASE("CUDA plan: tiles from an edited #einstruct.cuda_plan", "[cuda]") {
  auto layer = layerFromArgs(namedArgs("monarch(8)", 64, 64));
  REQUIRE(layer);
  CudaTarget target; // sm_90a, bf16: b = d = 1 but a = 8, so no wgmma
  auto plan = planCuda(*layer, target);
  REQUIRE(plan);
  const PlanTiles own = planTiles(*plan);
  CHECK(own.forward.TT == plan->forward.TT);
  CHECK(own.forward.K2P == plan->forward.K2P);
  CHECK_FALSE(own.forward.hopper);

  // Its own tiles give the plan back unchanged, header text included.
  auto same = withTiles(*plan, own);
  REQUIRE(same);
  CHECK(same->tileWhy == plan->tileWhy);

  // Other tiles run: fewer tokens per block and one f-block per chunk (so
  // eight chunks), emulated against the JIT on a ragged token count.
  PlanTiles edited = own;
  edited.forward.TT = 3;
  edited.forward.FC = 1;
  TwoStageConfig c = plan->forward;
  c.FC = 1;
  edited.forward.smemBytes = twoStageSmemBytes(c, target.dtype);
  edited.backwardInput.FC = 5;
  c = plan->backwardInput;
  c.FC = 5;
  edited.backwardInput.smemBytes = twoStageSmemBytes(c, target.dtype);
  auto run = withTiles(*plan, edited);
  REQUIRE(run);
  CHECK(run->forward.TT == 3);
  CHECK(run->forward.FC == 1);
  CHECK(run->backwardInput.FC == 5);
  CHECK(run->tileWhy.find("from #einstruct.cuda_plan") != std::string::npos);
  checkRuns(*layer, &*run, 23);

  // What the kernels cannot take, or a derived value that does not follow,
  // names the role and the value.
  auto refused = [&](PlanTiles t, const std::string &want) {
    auto r = withTiles(*plan, t);
    REQUIRE_FALSE(r);
    INFO(r.error());
    CHECK(r.error().find(want) != std::string::npos);
  };
  PlanTiles t = own;
  t.forward.K2P += 8;
  refused(t, "forward: K2P = ");
  t = own;
  t.forward.TT = 65;
  refused(t, "forward: TT = 65 is not in [1, 64]");
  t = own;
  t.backwardInput.FC = 9;
  refused(t, "backward_input: FC = 9 is not in [1, f = 8]");
  t = own;
  t.forward.smemBytes += 1;
  refused(t, "forward: shared memory");
  t = own;
  t.forward.hopper = HopperTile{8, 1, 4, 1};
  refused(t, "hopper_forward: the role cannot run the sm_90a kernel: a, r·g "
             "and e must be multiples of 64");
  t = own;
  t.tmaGrads = true;
  refused(t, "tma_grads = true");
}
