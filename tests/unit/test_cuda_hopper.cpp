// The sm_90a kernel's plan and index arithmetic, checked on the CPU. The
// kernels of compiler/cuda/kernels/einstruct_hopper.cuh are emulated item by
// item with the plan's tiles: weights copied to the canonical layouts, z in
// the shared-memory tile as stage 1 writes it (row r·G + g of f-block fl,
// 16-byte token chunks rotated by fl and swizzled with the row), read back
// by stage 2 as an M-major operand and un-rotated into y; the z-only mode's
// zT rows; the TMA weight gradients' operand views, token splits, row
// permutation and split sum. Results are compared with the CPU path (the
// MLIR JIT) forward and backward. The arithmetic the GPU does with these
// layouts was checked on an H200 (tests/gpu, BENCHMARKS.md).
#include "compiler/cpu/JitLayer.h"
#include "compiler/cuda/CudaPlan.h"
#include "compiler/frontend/SpecReader.h"
#include "tests/unit/CompiledLayer.h"
#include "tests/unit/RelativeError.h"
#include "tests/unit/SpecArgsFor.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <random>

using namespace einstruct;
using einstruct::testing::einsumArgs;
using einstruct::testing::namedArgs;
using einstruct::testing::randomValues;
using einstruct::testing::relErr;
using einstruct::testing::thetaArgs;

namespace {

// W1 [F][R][G][A] and W2 [F][E][R][G] from a role's strides (canonicalWeights).
void canonical(const TwoStageConfig &c, const std::vector<float> &w1,
               const std::vector<float> &w2, std::vector<float> &o1,
               std::vector<float> &o2) {
  o1.resize(size_t(c.F * c.R * c.G * c.A));
  o2.resize(size_t(c.F * c.E * c.R * c.G));
  for (int64_t f = 0; f < c.F; ++f)
    for (int64_t r = 0; r < c.R; ++r)
      for (int64_t g = 0; g < c.G; ++g) {
        for (int64_t a = 0; a < c.A; ++a)
          o1[size_t(((f * c.R + r) * c.G + g) * c.A + a)] =
              w1[size_t(f * c.W1F + r * c.W1R + g * c.W1G + a * c.W1A)];
        for (int64_t e = 0; e < c.E; ++e)
          o2[size_t(((f * c.E + e) * c.R + r) * c.G + g)] =
              w2[size_t(f * c.W2F + e * c.W2E + r * c.W2R + g * c.W2G)];
      }
}

// twoStageHopper over all items: y [n][F·E], or (zRow > 0) zT [F·K2][zRow].
void emulateHopper(const TwoStageConfig &c, const HopperTile &tile,
                   const std::vector<float> &x, const std::vector<float> &w1,
                   const std::vector<float> &w2, int64_t n,
                   std::vector<float> &out, int64_t zRow = 0) {
  std::vector<float> W1, W2;
  canonical(c, w1, w2, W1, W2);
  const int64_t K2 = c.R * c.G, N1 = tile.FC * c.R, rows = 64 * tile.NWG;
  const int64_t chunks = (c.F + tile.FC - 1) / tile.FC;
  REQUIRE(chunks % tile.CL == 0);
  const int64_t groups = chunks / tile.CL, din = c.G * c.A, dout = c.F * c.E;
  out.assign(size_t(zRow ? c.F * K2 * zRow : n * dout), NAN);
  const int64_t items = (n + rows - 1) / rows * groups;
  for (int64_t item = 0; item < items; ++item)
    for (int64_t rank = 0; rank < tile.CL; ++rank)
      for (int64_t wg = 0; wg < tile.NWG; ++wg) {
        const int64_t f0 = ((item % groups) * tile.CL + rank) * tile.FC;
        const int64_t fHere = std::min(tile.FC, c.F - f0);
        const int64_t t0 = item / groups * rows + 64 * wg;
        std::vector<float> zs(size_t(tile.FC * K2 * 64), NAN);
        auto at = [&](int64_t fl, int64_t k, int64_t chunk, int64_t e) {
          return size_t(fl * K2 * 64 + k * 64 + chunk * 8 + e);
        };
        for (int64_t g = 0; g < c.G; ++g)
          for (int64_t t = 0; t < 64; ++t)
            for (int64_t nn = 0; nn < N1; ++nn) {
              double acc = 0;
              const int64_t row = f0 * c.R + nn; // W1 row (f, r), OOB zero
              for (int64_t a = 0; a < c.A && t0 + t < n && row < c.F * c.R; ++a)
                acc += double(x[size_t((t0 + t) * din + g * c.A + a)]) *
                       W1[size_t(row * din + g * c.A + a)];
              const int64_t r = nn % c.R, fl = nn / c.R, k = r * c.G + g;
              const int64_t rot = zRow ? 0 : fl;
              zs[at(fl, k, ((t / 8 + rot) & 7) ^ (k & 7), t % 8)] = float(acc);
            }
        for (int64_t fl = 0; fl < fHere; ++fl)
          if (zRow) { // TMA store of the tile: logical chunk c at c ^ (k & 7)
            for (int64_t k = 0; k < K2; ++k)
              for (int64_t t = 0; t < 64 && t0 + t < zRow; ++t)
                out[size_t(((f0 + fl) * K2 + k) * zRow + t0 + t)] =
                    zs[at(fl, k, (t / 8) ^ (k & 7), t % 8)];
          } else { // stage 2: A(p, k) M-major, position p holds a rotated token
            for (int64_t p = 0; p < 64; ++p)
              for (int64_t e = 0; e < c.E; ++e) {
                double acc = 0;
                for (int64_t k = 0; k < K2; ++k)
                  acc += double(zs[at(fl, k, (p / 8) ^ (k & 7), p % 8)]) *
                         W2[size_t(((f0 + fl) * c.E + e) * K2 + k)];
                const int64_t t = (((p / 8) - fl) & 7) * 8 + p % 8;
                if (t0 + t < n)
                  out[size_t((t0 + t) * dout + (f0 + fl) * c.E + e)] = float(acc);
              }
          }
      }
}

// The generated code's token splits of a weight gradient.
int64_t splitsFor(int64_t n, const WeightGradConfig &w) {
  const int64_t tiles = (w.M0 * w.M1 * w.M2 + 63) / 64 *
                        ((w.N0 * w.N1 * w.N2 + 63) / 64) * w.P;
  const int64_t s = std::min((264 + tiles - 1) / tiles, std::max<int64_t>(n / 64, 1));
  return std::clamp<int64_t>(s, 1, 64);
}

// weightGradHopper + reduceSplits. An operand is (rows, width) row-major;
// token-major ones have tokens as rows.
void emulateTmaGrad(const TmaGradConfig &h, const WeightGradConfig &w,
                    const std::vector<float> &L, int64_t lRows, int64_t lWidth,
                    const std::vector<float> &R, int64_t rRows, int64_t rWidth,
                    int64_t n, std::vector<float> &grad) {
  auto val = [](const std::vector<float> &v, bool tokenMajor, int64_t rows,
                int64_t width, int64_t t, int64_t col) -> double {
    if (tokenMajor)
      return t < rows ? v[size_t(t * width + col)] : 0.0;
    return t < width ? v[size_t(col * width + t)] : 0.0;
  };
  const int64_t splits = splitsFor(n, w), tiles = (n + 63) / 64;
  const int64_t per = (tiles + splits - 1) / splits;
  std::vector<double> sum(size_t(h.P * h.M * h.N), 0.0);
  for (int64_t s = 0; s < splits; ++s) {
    const int64_t begin = s * per, end = std::min(begin + per, tiles);
    for (int64_t p = 0; p < h.P; ++p)
      for (int64_t m = 0; m < h.M; ++m)
        for (int64_t nn = 0; nn < h.N; ++nn) {
          double acc = 0;
          for (int64_t t = begin * 64; t < end * 64; ++t)
            acc += val(L, h.TA, lRows, lWidth, t, p * h.LB + m) *
                   val(R, h.TB, rRows, rWidth, t, p * h.RB + nn);
          const int64_t mOut = (m % h.MF) * h.MR + m / h.MF;
          sum[size_t((p * h.M + mOut) * h.N + nn)] += float(acc); // fp32 partials
        }
  }
  // reduceSplits: element i of [P][M][N] lands at the gradient's strides.
  std::fill(grad.begin(), grad.end(), NAN);
  for (int64_t i = 0; i < h.P * h.M * h.N; ++i) {
    const int64_t c = i % h.N, m = i / h.N % h.M, p = i / (h.N * h.M);
    const int64_t m2 = m % w.M2, m1 = m / w.M2 % w.M1, m0 = m / w.M2 / w.M1;
    const int64_t c2 = c % w.N2, c1 = c / w.N2 % w.N1, c0 = c / w.N2 / w.N1;
    const size_t o = size_t(p * w.OP + m0 * w.OM0 + m1 * w.OM1 + m2 * w.OM2 +
                            c0 * w.ON0 + c1 * w.ON1 + c2 * w.ON2);
    REQUIRE(o < grad.size());
    grad[o] = float(sum[size_t(i)]);
  }
}

CudaPlan hopperPlan(const SpecArgs &args, std::optional<HopperTile> tile = {}) {
  auto layer = layerFromArgs(args);
  REQUIRE(layer);
  CudaTarget target; // sm_90a, bf16
  target.hopperTile = tile;
  auto plan = planCuda(*layer, target);
  REQUIRE(plan);
  return *plan;
}

// Forward, backward-input and both weight gradients through the sm_90a
// kernels' layouts against the JIT.
void checkHopper(const SpecArgs &args, int64_t n,
                 std::optional<HopperTile> tile = {}) {
  const CudaPlan plan = hopperPlan(args, tile);
  INFO(plan.layer.terms[0].str() << " " << plan.layer.terms[0].sizesStr()
                                 << " " << plan.tileWhy);
  REQUIRE(plan.hopperForward.enabled());
  REQUIRE(plan.hopperBackwardInput.enabled());
  REQUIRE(plan.tmaGrads);
  std::mt19937 rng(11);
  auto x = randomValues(n * plan.layer.dIn, rng);
  auto dy = randomValues(n * plan.layer.dOut, rng);
  auto w1 = randomValues(plan.w1Size, rng), w2 = randomValues(plan.w2Size, rng);
  auto jit = JitLayer::compile(plan.layer);
  REQUIRE(jit);
  auto yRef = (*jit)->forward(x.data(), n, {w1.data(), w2.data()});
  REQUIRE(yRef);
  auto gRef = (*jit)->backward(x.data(), dy.data(), n, {w1.data(), w2.data()});
  REQUIRE(gRef);

  const TwoStageConfig &fw = plan.forward, &bw = plan.backwardInput;
  std::vector<float> y, dx, zT, dzT;
  emulateHopper(fw, plan.hopperForward.tile, x, w1, w2, n, y);
  CHECK(relErr(y, *yRef) < 1e-5);
  emulateHopper(bw, plan.hopperBackwardInput.tile, dy, w2, w1, n, dx);
  CHECK(relErr(dx, gRef->dx) < 1e-5);
  const int64_t zRow = (n + 63) / 64 * 64;
  emulateHopper(fw, plan.hopperForward.tile, x, w1, w2, n, zT, zRow);
  emulateHopper(bw, plan.hopperBackwardInput.tile, dy, w2, w1, n, dzT, zRow);
  std::vector<float> dw1(size_t(plan.w1Size)), dw2(size_t(plan.w2Size));
  emulateTmaGrad(plan.tmaGradW1, plan.gradW1, dzT, bw.ZT, zRow, x, n, fw.XT, n,
                 dw1);
  emulateTmaGrad(plan.tmaGradW2, plan.gradW2, dy, n, fw.YT, zT, fw.ZT, zRow, n,
                 dw2);
  CHECK(relErr(dw1, gRef->dw[0]) < 1e-5);
  CHECK(relErr(dw2, gRef->dw[1]) < 1e-5);
}

} // namespace

TEST_CASE("CUDA sm_90a: the kernels' layouts compute the layer", "[cuda]") {
  // BTT rank 4 at d = 1024 (r·g = r·f = 64): the backward role permutes
  // its weights; 70 tokens leave a partial tile.
  checkHopper(einsumArgs("gba,fdrga,fergb->fed", "g=16,b=1,a=64,f=16,d=1,r=4,e=64"),
              70);
  // Monarch-64, the table's tile and two consumer warpgroups; clusters of 4
  // (rank r takes chunks r, r+4, ...); more tokens than one split.
  checkHopper(namedArgs("monarch(64)", 4096, 4096), 65);
  checkHopper(namedArgs("monarch(64)", 4096, 4096), 130, HopperTile{8, 2, 3, 1});
  checkHopper(namedArgs("monarch(64)", 4096, 4096), 3, HopperTile{8, 1, 3, 4});
}

TEST_CASE("CUDA sm_90a: tiles come from the tuning table, else analytic",
          "[cuda]") {
  // The measured rows (compiler/cuda/tuning.json) for bf16 on an H200.
  CudaPlan m = hopperPlan(namedArgs("monarch(64)", 4096, 4096));
  CHECK(m.hopperForward.tile == HopperTile{16, 1, 7, 1});
  CHECK_THAT(m.hopperForward.why, Catch::Contains("tuning table"));
  CHECK(m.hopperBackwardInput.tile == HopperTile{16, 1, 7, 1});
  CHECK(!m.hopperForward.permuteWeights);   // Monarch's W1/W2 are canonical
  CHECK(m.hopperBackwardInput.permuteWeights); // its roles swap them
  // 10240 B a slot (x 8 KiB + W1 2 KiB) × 7 + z 16·64·128 + y 2 × 8 KiB +
  // 7 × 16 B of barriers + 1 KiB of alignment.
  CHECK(m.hopperForward.smemBytes == 10240 * 7 + 131072 + 16384 + 112 + 1024);
  CudaPlan b = hopperPlan(
      einsumArgs("gba,fdrga,fergb->fed", "g=64,b=1,a=64,f=64,d=1,r=4,e=64"));
  CHECK(b.hopperForward.tile == HopperTile{2, 1, 4, 1});
  // f16 has no row: the analytic tile, the same one here.
  auto layer = layerFromArgs(namedArgs("monarch(64)", 4096, 4096));
  REQUIRE(layer);
  CudaTarget f16;
  f16.dtype = CudaDType::F16;
  auto p = planCuda(*layer, f16);
  REQUIRE(p);
  CHECK(p->hopperForward.tile == HopperTile{16, 1, 7, 1});
  CHECK_THAT(p->hopperForward.why, Catch::Contains("analytic"));
}

TEST_CASE("CUDA sm_90a: roles that cannot run it keep the portable kernel",
          "[cuda]") {
  auto monarch = layerFromArgs(namedArgs("monarch(64)", 4096, 4096));
  REQUIRE(monarch);
  CudaTarget t;
  t.dtype = CudaDType::F32;
  CHECK(hopperRefusal(planCuda(*monarch, t)->forward, t) ==
        "wgmma here takes 16-bit inputs");
  CHECK(!planCuda(*monarch, t)->hopperForward.enabled());
  t = CudaTarget();
  t.arch = "sm_80";
  CHECK(!planCuda(*monarch, t)->hopperForward.enabled());
  t = CudaTarget();
  t.wgmma = false; // --no-wgmma
  auto off = planCuda(*monarch, t);
  CHECK(!off->hopperForward.enabled());
  CHECK(!off->tmaGrads);
  // 768 → 3072 (blocks of 24 and 48): the portable kernel, with the reason.
  auto padded = layerFromArgs(thetaArgs("(0.33|0|0.67|0|0.67|0.33|0)", 768, 3072));
  REQUIRE(padded);
  auto pp = planCuda(*padded, CudaTarget());
  REQUIRE(pp);
  CHECK(!pp->hopperForward.enabled());
  CHECK_THAT(hopperRefusal(pp->forward, CudaTarget()),
             Catch::Contains("multiples of 64"));
  // x or y padded (a limit short of the row): refused by name.
  TwoStageConfig c = planCuda(*monarch, CudaTarget())->forward;
  CHECK(hopperRefusal(c, CudaTarget()).empty());
  c.IN_LIMIT -= 64;
  CHECK_THAT(hopperRefusal(c, CudaTarget()), Catch::Contains("x must be"));
  c = planCuda(*monarch, CudaTarget())->forward;
  c.OUT_FILL_FROM -= 64;
  CHECK_THAT(hopperRefusal(c, CudaTarget()), Catch::Contains("y must be"));
  // a = 128 forward, but the backward's r·g = 32: only the forward runs it.
  auto wide = layerFromArgs(einsumArgs("ga,fga,feg->fe", "g=64,a=128,f=32,e=64"));
  REQUIRE(wide);
  auto pw = planCuda(*wide, CudaTarget());
  REQUIRE(pw);
  CHECK(pw->hopperForward.enabled());
  CHECK(!pw->hopperBackwardInput.enabled());
  CHECK(!pw->tmaGrads);
}

TEST_CASE("CUDA sm_90a: forced tiles are checked against the layer", "[cuda]") {
  auto monarch = layerFromArgs(namedArgs("monarch(64)", 4096, 4096));
  REQUIRE(monarch);
  auto plan = [&](HopperTile tile) {
    CudaTarget t;
    t.hopperTile = tile;
    return planCuda(*monarch, t);
  };
  CHECK(bool(plan({16, 1, 7, 1})));
  auto p = plan({32, 1, 2, 1}); // z alone is 256 KiB
  REQUIRE(!p);
  CHECK_THAT(p.error(), Catch::Contains("exceed the budget"));
  p = plan({12, 1, 3, 1});
  REQUIRE(!p);
  CHECK_THAT(p.error(), Catch::Contains("wgmma width"));
  p = plan({16, 1, 3, 8}); // 4 chunks cannot split over 8 CTAs
  REQUIRE(!p);
  CHECK_THAT(p.error(), Catch::Contains("cluster of 8"));
  p = plan({16, 3, 3, 1});
  REQUIRE(!p);
  CHECK_THAT(p.error(), Catch::Contains("NWG"));
}

TEST_CASE("CUDA sm_90a: --hopper-tile text", "[cuda]") {
  CHECK(*parseHopperTile("16:1:7") == HopperTile{16, 1, 7, 1});
  CHECK(*parseHopperTile("8:2:3:4") == HopperTile{8, 2, 3, 4});
  for (const char *bad : {"", "16", "16:1", "16:1:7:4:2", "a:1:7", "16::7",
                          "16:1:7:", "-1:1:7", "99999:1:1", " 16:1:7"}) {
    INFO(bad);
    auto t = parseHopperTile(bad);
    REQUIRE(!t);
    CHECK_THAT(t.error(), Catch::Contains("FC:NWG:STAGES"));
  }
}

TEST_CASE("CUDA sm_90a: every tuning-table row is a tile its sizes can run",
          "[cuda]") {
  const auto table = nlohmann::json::parse(hopperTuningTable());
  REQUIRE(table.at("rows").size() >= 2);
  for (const auto &row : table.at("rows")) {
    const auto &z = row.at("sizes");
    const int64_t G = z.at("G"), A = z.at("A"), F = z.at("F"), E = z.at("E"),
                  R = z.at("R");
    INFO(row.dump());
    CHECK(row.at("arch") == "sm_90a");
    CHECK(row.at("tokens") == "large");
    const std::string sizes = "g=" + std::to_string(G) + ",b=1,a=" +
                              std::to_string(A) + ",f=" + std::to_string(F) +
                              ",d=1,r=" + std::to_string(R) +
                              ",e=" + std::to_string(E);
    auto layer = layerFromArgs(einsumArgs("gba,fdrga,fergb->fed", sizes.c_str()));
    REQUIRE(layer);
    CudaTarget t;
    t.dtype = *dtypeFromName(row.at("dtype").get<std::string>());
    auto p = planCuda(*layer, t);
    REQUIRE(p);
    const auto &tile = row.at("tile");
    CHECK(p->hopperForward.tile ==
          HopperTile{tile.at("FC").get<int64_t>(), tile.at("NWG").get<int64_t>(),
                     tile.at("STAGES").get<int64_t>(), tile.value("CL", int64_t(1))});
    CHECK_THAT(p->hopperForward.why, Catch::Contains("tuning table"));
  }
}
