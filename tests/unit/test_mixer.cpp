// Sequence mixers (search/Mixer.h): the chunked SSD whose multiply-adds
// ssdMacs counts, written here as loops that count as they go, computes the
// materialised semiseparable matrix M[i, j] = C_iᵀB_j·exp(Σ_{t=j+1..i} a_t)
// (float64, brute force) and does not leak the future; its count equals
// ssdMacs for chunks that do and do not divide L; the chosen chunk is the
// brute-force argmin over chunks of at least kMinChosenChunk; specs are
// parsed with located errors.
#include "search/Mixer.h"
#include "search/Search.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <complex>
#include <random>

using namespace einstruct;

namespace {

struct Ssd {
  int64_t L, H, P, N;
  std::vector<double> x, a, b, c; // x [L][H][P], a [L][H], B, C [L][N]
};

Ssd randomSsd(int64_t L, int64_t H, int64_t P, int64_t N, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1), decay(-0.5, -0.01);
  Ssd s{L, H, P, N, {}, {}, {}, {}};
  for (int64_t k = 0; k < L * H * P; ++k)
    s.x.push_back(u(rng));
  for (int64_t k = 0; k < L * H; ++k)
    s.a.push_back(decay(rng));
  for (int64_t k = 0; k < L * N; ++k) {
    s.b.push_back(u(rng));
    s.c.push_back(u(rng));
  }
  return s;
}

// y [L][H][P] from M materialised, by definition.
std::vector<double> materialised(const Ssd &s) {
  std::vector<double> y(size_t(s.L * s.H * s.P), 0.0);
  for (int64_t h = 0; h < s.H; ++h)
    for (int64_t i = 0; i < s.L; ++i)
      for (int64_t j = 0; j <= i; ++j) {
        double cb = 0, sum = 0;
        for (int64_t n = 0; n < s.N; ++n)
          cb += s.c[size_t(i * s.N + n)] * s.b[size_t(j * s.N + n)];
        for (int64_t t = j + 1; t <= i; ++t)
          sum += s.a[size_t(t * s.H + h)];
        const double m = cb * std::exp(sum);
        for (int64_t p = 0; p < s.P; ++p)
          y[size_t((i * s.H + h) * s.P + p)] +=
              m * s.x[size_t((j * s.H + h) * s.P + p)];
      }
  return y;
}

// The chunked algorithm with chunk Q (L zero-padded to T·Q), counting the
// multiply-adds of its contractions in `macs`.
std::vector<double> chunked(const Ssd &s, int64_t Q, int64_t &macs) {
  const int64_t T = (s.L + Q - 1) / Q, H = s.H, P = s.P, N = s.N;
  auto at = [&](const std::vector<double> &v, int64_t t, int64_t k,
                int64_t width) { return t < s.L ? v[size_t(t * width + k)] : 0.0; };
  std::vector<double> y(size_t(s.L * H * P), 0.0);
  std::vector<double> state(size_t(H * P * N), 0.0); // carried across chunks
  macs = 0;
  for (int64_t ch = 0; ch < T; ++ch) {
    const int64_t t0 = ch * Q;
    // C·Bᵀ within the chunk (shared by the heads).
    std::vector<double> cb(size_t(Q * Q), 0.0);
    for (int64_t l = 0; l < Q; ++l)
      for (int64_t r = 0; r < Q; ++r)
        for (int64_t n = 0; n < N; ++n, ++macs)
          cb[size_t(l * Q + r)] += at(s.c, t0 + l, n, N) * at(s.b, t0 + r, n, N);
    for (int64_t h = 0; h < H; ++h) {
      std::vector<double> cum(static_cast<size_t>(Q));
      double run = 0;
      for (int64_t l = 0; l < Q; ++l)
        cum[size_t(l)] = run += at(s.a, t0 + l, h, H);
      std::vector<double> yc(size_t(Q * P), 0.0);
      // The diagonal block: (C·Bᵀ ∘ decay mask)·X, the full Q×Q product.
      for (int64_t l = 0; l < Q; ++l)
        for (int64_t r = 0; r < Q; ++r) {
          const double m = r <= l ? cb[size_t(l * Q + r)] *
                                        std::exp(cum[size_t(l)] - cum[size_t(r)])
                                  : 0.0;
          for (int64_t p = 0; p < P; ++p, ++macs)
            yc[size_t(l * P + p)] += m * at(s.x, t0 + r, h * P + p, H * P);
        }
      // The carried state read out: C·state, decayed into the chunk.
      for (int64_t l = 0; l < Q; ++l)
        for (int64_t p = 0; p < P; ++p)
          for (int64_t n = 0; n < N; ++n, ++macs)
            yc[size_t(l * P + p)] += at(s.c, t0 + l, n, N) *
                                     state[size_t((h * P + p) * N + n)] *
                                     std::exp(cum[size_t(l)]);
      // This chunk's state, and the scan step.
      std::vector<double> st(size_t(P * N), 0.0);
      for (int64_t l = 0; l < Q; ++l)
        for (int64_t p = 0; p < P; ++p)
          for (int64_t n = 0; n < N; ++n, ++macs)
            st[size_t(p * N + n)] += at(s.b, t0 + l, n, N) *
                                     std::exp(cum[size_t(Q - 1)] - cum[size_t(l)]) *
                                     at(s.x, t0 + l, h * P + p, H * P);
      for (int64_t k = 0; k < P * N; ++k, ++macs)
        state[size_t(h * P * N + k)] =
            std::exp(cum[size_t(Q - 1)]) * state[size_t(h * P * N + k)] + st[size_t(k)];
      for (int64_t l = 0; l < Q && t0 + l < s.L; ++l)
        for (int64_t p = 0; p < P; ++p)
          y[size_t(((t0 + l) * H + h) * P + p)] = yc[size_t(l * P + p)];
    }
  }
  return y;
}

double maxRelative(const std::vector<double> &got, const std::vector<double> &ref) {
  double err = 0, scale = 0;
  for (size_t k = 0; k < ref.size(); ++k) {
    err = std::max(err, std::fabs(got[k] - ref[k]));
    scale = std::max(scale, std::fabs(ref[k]));
  }
  return err / std::max(scale, 1e-300);
}

} // namespace

TEST_CASE("chunked SSD equals the materialised semiseparable matrix, and its "
          "multiply-adds are ssdMacs",
          "[mixer]") {
  struct Case {
    int64_t L, H, P, N, Q;
  } cases[] = {{12, 2, 3, 4, 4}, {13, 2, 3, 4, 4}, {13, 1, 5, 1, 5},
               {1, 1, 1, 1, 1},  {9, 3, 2, 2, 9},  {10, 2, 2, 3, 1},
               {37, 3, 4, 5, 6}};
  for (auto c : cases) {
    INFO("L=" << c.L << " H=" << c.H << " P=" << c.P << " N=" << c.N
              << " Q=" << c.Q);
    auto s = randomSsd(c.L, c.H, c.P, c.N, unsigned(c.L * 7 + c.Q));
    int64_t macs = 0;
    auto y = chunked(s, c.Q, macs);
    CHECK(maxRelative(y, materialised(s)) < 1e-12);
    CHECK(macs == ssdMacs(c.L, c.H, c.P, c.N, c.Q));
  }
}

TEST_CASE("chunked SSD does not leak the future", "[mixer]") {
  auto s = randomSsd(20, 2, 3, 4, 3);
  int64_t macs = 0;
  auto y = chunked(s, 6, macs);
  for (int64_t t : {0, 5, 6, 13, 19}) {
    Ssd moved = s;
    for (int64_t k = 0; k < s.H * s.P; ++k)
      moved.x[size_t(t * s.H * s.P + k)] += 1.0;
    moved.b[size_t(t * s.N)] -= 0.5;
    auto y2 = chunked(moved, 6, macs);
    for (int64_t i = 0; i < t * s.H * s.P; ++i)
      REQUIRE(y2[size_t(i)] == y[size_t(i)]); // bit for bit before t
    CHECK(y2[size_t(t * s.H * s.P)] != y[size_t(t * s.H * s.P)]);
  }
}

TEST_CASE("mixer analysis: counts, the chosen chunk, properties", "[mixer]") {
  auto analysis = [](const char *text, int64_t L, int64_t d) {
    auto spec = parseMixer(text);
    REQUIRE(spec);
    auto a = analyzeMixer(*spec, L, d);
    REQUIRE(a);
    return *a;
  };
  // Without a chunk: the brute-force argmin of the counting implementation
  // above over the chunks of at least kMinChosenChunk tokens (the larger on
  // a tie), though smaller chunks count fewer multiply-adds; a sequence
  // shorter than that is one chunk.
  auto argmin = [&](int64_t L, int64_t from, int64_t &bestMacs) {
    auto s = randomSsd(L, 3, 4, 5, 1);
    int64_t best = 0;
    for (int64_t q = from; q <= L; ++q) {
      int64_t macs = 0;
      chunked(s, q, macs);
      if (!best || macs <= bestMacs)
        best = q, bestMacs = macs;
    }
    return best;
  };
  int64_t bestMacs = 0, anyMacs = 0;
  const int64_t best = argmin(150, kMinChosenChunk, bestMacs);
  CHECK(argmin(150, 1, anyMacs) < kMinChosenChunk);
  CHECK(anyMacs < bestMacs);
  auto ssd = analysis("ssd(heads=3, head_dim=4, state=5)", 150, 1);
  CHECK(ssd.chunk == best);
  CHECK(ssd.chunkChosen);
  CHECK(ssd.macs == bestMacs);
  CHECK(ssd.quadraticMacs == 150 * 150 * 5 + 3 * 150 * 150 * 4);
  auto shorter = analysis("ssd(heads=3, head_dim=4, state=5)", 37, 1);
  CHECK(shorter.chunk == 37);
  CHECK(shorter.chunkChosen);
  CHECK(ssd.params == 9); // A_log, dt_bias, D per head
  CHECK(ssd.causal);
  CHECK(ssd.dataDependent);
  CHECK(ssd.extendable);
  CHECK(ssd.growth == "L");
  // Hydra: two SSD passes, fc_D (H·P -> H) and the skip product.
  auto hydra = analysis("hydra(12, 64, 64, 64)", 4096, 768);
  CHECK(hydra.chunk == 64);
  CHECK_FALSE(hydra.chunkChosen);
  CHECK(hydra.macs == 2 * ssdMacs(4096, 12, 64, 64, 64) + 4096 * 768 * 12 +
                          4096 * 768);
  CHECK(hydra.params == 3 * 12 + 768 * 12);
  CHECK_FALSE(hydra.causal);
  CHECK(hydra.channels == 768);
  // The learned sequence matrices at L = 4096, d = 768.
  auto dense = analysis("dense-seq", 4096, 768);
  CHECK(dense.macs == int64_t(4096) * 4096 * 768);
  CHECK(dense.params == 4096 * 4096);
  CHECK_FALSE(dense.extendable);
  CHECK(dense.growth == "L^2");
  auto toeplitz = analysis("toeplitz", 4096, 768);
  CHECK(toeplitz.params == 768 * (2 * 4096 - 1));
  auto lowRank = analysis("low-rank-seq(rank=64)", 4096, 768);
  CHECK(lowRank.macs == 2 * 4096 * 64 * 768);
  CHECK(lowRank.params == 2 * 4096 * 64);
  // The materialised form costs L²·(N + H·P), the chunked one about
  // L·Q·(N + H·P) + 2·H·L·N·P: at 12 heads of 64 with state 64 (Q = 8) the
  // crossover is near L = Q + 2·H·N·P/(N + H·P) ≈ 126.
  auto shortSsd = analysis("ssd(12, 64, 64)", 64, 1);
  CHECK(shortSsd.macs > shortSsd.quadraticMacs);
  auto longSsd = analysis("ssd(12, 64, 64)", 256, 1);
  CHECK(longSsd.macs < longSsd.quadraticMacs);
}

TEST_CASE("hydra-block analysis: its mixer plus projections, convolution and "
          "norm",
          "[mixer]") {
  auto a = analyzeMixer(
      *parseMixer("hydra-block(state=4, conv=3, expand=2, head_dim=4, "
                  "chunk=4)"),
      8, 8);
  REQUIRE(a);
  // d_inner 16 = 4 heads of 4, state 4, L = 8 in 2 chunks of 4. The mixer
  // (hydra): two SSDs of T·Q²·N + H·T·Q²·P + 2·H·T·Q·N·P + H·T·N·P = 128 +
  // 512 + 1024 + 128 = 1792, fc_D L·16·4 = 512, the skip 128: 4224. Per
  // token: in_proj 8·56 (56 = 2·16 + 4·4 + 2·4), the convolution 32·3,
  // the norm 4·16, out_proj 16·8: 736, ·8 tokens = 5888.
  CHECK(a->macs == 4224 + 5888);
  // A_log, dt_bias, D (12) and fc_D (64); in_proj 448, the convolution's
  // weights and biases 32·4, norm_weight 16, out_proj 128.
  CHECK(a->params == 76 + 448 + 128 + 16 + 128);
  CHECK(a->chunk == 4);
  CHECK_FALSE(a->causal);
  CHECK(a->dataDependent);
  CHECK(a->growth == "L");
}

TEST_CASE("m2-block analysis: its m2-conv plus projections and short "
          "convolution",
          "[mixer]") {
  auto conv =
      analyzeMixer(*parseMixer("m2-conv(causal=false, order=16)"), 8, 4);
  auto block = analyzeMixer(
      *parseMixer("m2-block(causal=false, order=16, l_max=10)"), 8, 4);
  REQUIRE(conv);
  REQUIRE(block);
  // Per token: in_linear 4·12, the short convolution 12 channels × 3 taps,
  // out_linear 4·4: 48 + 36 + 16 = 100, ·8 tokens.
  CHECK(block->macs == conv->macs + 800);
  // in_linear 48 + 12, the short convolution 12·(3 + 1), out_linear 16 + 4,
  // and the positional embedding's 2 rows past L (3 each).
  CHECK(block->params == conv->params + 60 + 48 + 20 + 6);
  CHECK(block->fftSize == conv->fftSize);
  CHECK_FALSE(block->causal);
}

TEST_CASE("block projections: proj=STRUCTURE (a nested call) replaces the "
          "dense ones in the counts",
          "[mixer]") {
  auto spec =
      parseMixer("hydra-block(proj=monarch(blocks=2, layout=einstruct), "
                 "state=4, conv=3, head_dim=4, chunk=4)");
  REQUIRE(spec);
  CHECK(spec->params.at("proj") == "monarch(blocks=2, layout=einstruct)");
  CHECK(spec->params.at("state") == "4");
  auto dense = analyzeMixer(
      *parseMixer("hydra-block(state=4, conv=3, head_dim=4, chunk=4)"), 8, 8);
  auto structured = analyzeMixer(*spec, 8, 8);
  REQUIRE(dense);
  REQUIRE(structured);
  // in_proj 8 → 56 and out_proj 16 → 8 as Monarch with 2 blocks: their
  // multiply-adds per token and parameters from the layer analysis.
  auto layerCost = [](int64_t dIn, int64_t dOut) {
    auto layer = buildNamed(*parseNamed("monarch(blocks=2)"), dIn, dOut);
    REQUIRE(layer);
    auto a = analyze(*layer);
    REQUIRE(a);
    return std::pair{a->flops, a->params};
  };
  auto [inMacs, inParams] = layerCost(8, 56);
  auto [outMacs, outParams] = layerCost(16, 8);
  CHECK(structured->macs ==
        dense->macs - 8 * (8 * 56 + 16 * 8) + 8 * (inMacs + outMacs));
  CHECK(structured->params ==
        dense->params - (8 * 56 + 16 * 8) + inParams + outParams);
  CHECK(inParams < 8 * 56);
  auto bad =
      analyzeMixer(*parseMixer("m2-block(proj=btt-moe(experts=4))"), 8, 8);
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error(), Catch::Contains("proj = 'btt-moe(experts=4)'"));
}

TEST_CASE("block projections: one structure each (in_proj=, out_proj=) "
          "over proj=",
          "[mixer]") {
  auto a = analyzeMixer(*parseMixer("hydra-block(state=4, conv=3, "
                                    "head_dim=4, chunk=4, "
                                    "proj=monarch(blocks=2), "
                                    "in_proj=low-rank(rank=2))"),
                        8, 8);
  REQUIRE(a);
  REQUIRE(a->projections.size() == 2);
  // in_proj its own low-rank 8 → 2 → 56; out_proj the proj= default.
  CHECK(a->projections[0].name == "in_proj");
  CHECK(a->projections[0].macs() == 8 * 2 + 2 * 56);
  CHECK(a->projections[1].name == "out_proj");
  auto monarch = buildNamed(*parseNamed("monarch(blocks=2)"), 16, 8);
  REQUIRE(monarch);
  CHECK(a->projections[1].params() == analyze(*monarch)->params);
  auto m2 = analyzeMixer(*parseMixer("m2-block(out_linear=dense, "
                                     "in_linear=low-rank(rank=1))"),
                         8, 4);
  REQUIRE(m2);
  CHECK(m2->projections[0].params() == 4 + 12);
  CHECK_FALSE(m2->projections[1].layer);
}

TEST_CASE("block projections: proj=search(ratio) finds the most params "
          "under the budget (brute force over both projections)",
          "[mixer]") {
  auto a = analyzeMixer(*parseMixer("hydra-block(state=4, conv=3, "
                                    "head_dim=4, chunk=4, proj=search(0.75))"),
                        8, 8);
  REQUIRE(a);
  // Every pair of the paper's class (ω = 0, ψ = 1) for 8 → 56 and 16 → 8,
  // the most params whose MACs fit 3/4 of the dense 8·56 + 16·8 (half is
  // below the cheapest such pair at these sizes).
  auto options = [](int64_t dIn, int64_t dOut) {
    SearchSpace s;
    s.dIn = dIn;
    s.dOut = dOut;
    auto all = enumerate(s);
    REQUIRE(all);
    std::vector<Analysis> keep;
    for (auto &c : *all)
      if (isPreferred(c.analysis))
        keep.push_back(c.analysis);
    REQUIRE_FALSE(keep.empty());
    return keep;
  };
  const int64_t budget = (8 * 56 + 16 * 8) * 3 / 4;
  int64_t best = -1;
  for (auto &in : options(8, 56))
    for (auto &out : options(16, 8))
      if (in.flops + out.flops <= budget)
        best = std::max(best, in.params + out.params);
  REQUIRE(best > 0);
  const auto &p = a->projections;
  CHECK(p[0].macs() + p[1].macs() <= budget);
  CHECK(p[0].params() + p[1].params() == best);
  // The counts include them: max_flops in MACs per token gives the same.
  auto same = analyzeMixer(
      *parseMixer(fmt::format("hydra-block(state=4, conv=3, head_dim=4, "
                              "chunk=4, proj=search(max_flops={}))",
                              budget)),
      8, 8);
  REQUIRE(same);
  CHECK(same->macs == a->macs);
  CHECK(same->params == a->params);
}

TEST_CASE("mixer spec errors", "[mixer][errors]") {
  struct Bad {
    const char *spec;
    int64_t L;
    const char *expect;
  } bad[] = {
      {"mamba", 16, "unknown mixer 'mamba'; known: ssd, hydra"},
      {"ssd(heads=4, head_dim=8)", 16, "parameter 'state' is required"},
      {"ssd(4, 8, 16, chunk=32)", 16,
       "chunk = 32 exceeds the sequence length 16"},
      {"ssd(0, 8, 16)", 16,
       "ssd: parameter heads = '0' must be a positive integer"},
      {"ssd(2000000, 8, 16)", 16, "parameter heads = 2000000 exceeds 1048576"},
      {"hydra(4, 8, 16, size=2)", 16, "unknown parameter 'size' at column 17"},
      {"low-rank-seq(rank=32)", 16, "rank = 32 exceeds the sequence length 16"},
      {"dense-seq(4)", 16, "takes 0 parameters"},
      {"ssd(4, 8, 16)", 0, "sequence length = 0 is outside [1, 2^24]"},
      {"ssd(1024, 1024, 1024)", 1 << 24, "exceed 2^62"},
      {"hydra-block(proj=search(0.5), out_proj=dense)", 16,
       "out_proj = 'dense' beside proj = 'search(0.5)': the search chooses "
       "every projection"},
      {"m2-block(in_linear=search(0.5))", 16,
       "in_linear = 'search(0.5)': the search chooses the projections "
       "together; give it as proj = search(0.5)"},
      {"m2-block(proj=search(max_flops=64, max_flops_ratio=0.5))", 16,
       "give one budget"},
      {"m2-block(proj=search(0))", 16,
       "max_flops_ratio = '0' must be a "
       "positive number"},
      {"m2-block(proj=search(max_flops=3))", 16,
       "proj = 'search(max_flops=3)': no combination fits 3 MACs"},
      {"hydra-block(out_proj=tt(rank=0))", 16,
       "hydra-block: out_proj = 'tt(rank=0)'"},
      {"hydra-block(9, 9, 9, 9, 92, btt(24294967296))", 1 << 24,
       "hydra-block: its counts at L = 16777216 and d_model = 64 exceed "
       "2^62"},
      {"m2-block(proj=monarch(2), in_linear=dense, out_linear=dense)", 16,
       "m2-block: proj = 'monarch(2)' is unused: in_linear and out_linear "
       "each give their own structure"},
  };
  for (auto &b : bad) {
    INFO(b.spec);
    auto spec = parseMixer(b.spec);
    std::string error;
    if (!spec) {
      error = spec.error();
    } else {
      auto a = analyzeMixer(*spec, b.L, 64);
      REQUIRE_FALSE(a);
      error = a.error();
    }
    CHECK_THAT(error, Catch::Contains(b.expect));
  }
  // A projection whose weights' element count overflows 64 bits is refused
  // by name (a fuzz find: params() multiplied past 2^63 before any check).
  auto huge = parseMixer("hydra-block(137,3,36,2,3,btt(42194967296))");
  REQUIRE(huge);
  auto a = analyzeMixer(*huge, 29225, 28196);
  REQUIRE_FALSE(a);
  CHECK_THAT(a.error(),
             Catch::Contains("hydra-block: proj = 'btt(42194967296)' as "
                             "in_proj (28196 -> 3045716): parameter count "
                             "overflows 64 bits"));
}

namespace {

using cd = std::complex<double>;

// A DFT of n = b² points, Monarch-factored as M2 and FlashFFTConv run it:
// x viewed as [b][b] (index j1·b + j2), b DFTs of size b over j1 (one
// block-diagonal stage), twiddles ω_n^(j2·k1), b DFTs of size b over j2 (the
// second stage), the output read transposed (k2·b + k1). Counts its complex
// multiply-adds.
std::vector<cd> monarchDft(const std::vector<cd> &x, int64_t b,
                           int64_t &cmacs) {
  const int64_t n = b * b;
  const double pi = std::acos(-1.0);
  auto w = [&](int64_t k, int64_t m) {
    return std::polar(1.0, -2 * pi * double(k) / double(m));
  };
  const size_t count = static_cast<size_t>(n);
  std::vector<cd> z(count), y(count);
  for (int64_t j2 = 0; j2 < b; ++j2)
    for (int64_t k1 = 0; k1 < b; ++k1) {
      cd s = 0;
      for (int64_t j1 = 0; j1 < b; ++j1, ++cmacs)
        s += w(j1 * k1, b) * x[size_t(j1 * b + j2)];
      z[size_t(k1 * b + j2)] = s * w(j2 * k1, n);
      ++cmacs; // the twiddle
    }
  for (int64_t k1 = 0; k1 < b; ++k1)
    for (int64_t k2 = 0; k2 < b; ++k2) {
      cd s = 0;
      for (int64_t j2 = 0; j2 < b; ++j2, ++cmacs)
        s += w(j2 * k2, b) * z[size_t(k1 * b + j2)];
      y[size_t(k2 * b + k1)] = s;
    }
  return y;
}

std::vector<cd> naiveDft(const std::vector<cd> &x, bool inverse) {
  const size_t n = x.size();
  const double pi = std::acos(-1.0), sign = inverse ? 1 : -1;
  std::vector<cd> y(n);
  for (size_t k = 0; k < n; ++k)
    for (size_t j = 0; j < n; ++j)
      y[k] += std::polar(1.0, sign * 2 * pi * double(j * k) / double(n)) *
              x[j];
  return y;
}

} // namespace

TEST_CASE("the Monarch-factored DFT is the DFT, at the counted cost",
          "[mixer]") {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(-1, 1);
  for (int64_t b : {1, 2, 3, 4, 8}) {
    const int64_t n = b * b;
    std::vector<cd> x;
    for (int64_t i = 0; i < n; ++i)
      x.push_back({u(rng), u(rng)});
    int64_t cmacs = 0;
    auto y = monarchDft(x, b, cmacs);
    auto want = naiveDft(x, false);
    for (int64_t k = 0; k < n; ++k)
      CHECK(std::abs(y[size_t(k)] - want[size_t(k)]) < 1e-9);
    CHECK(4 * cmacs == monarchDftMacs(b));
  }
}

TEST_CASE("m2-conv: causal by zero-padding to 2L, counted as the DFTs",
          "[mixer]") {
  // A causal convolution of x and k (length L) through DFTs of n = b² >=
  // 2L points (x and k zero-padded) equals the direct sum y[i] =
  // Σ_{j<=i} k[i-j]·x[j]: nothing wraps around.
  std::mt19937 rng(9);
  std::uniform_real_distribution<double> u(-1, 1);
  const int64_t L = 8, b = 4; // n = 16 = 2L
  std::vector<cd> x(16), k(16);
  for (int64_t i = 0; i < L; ++i)
    x[size_t(i)] = u(rng), k[size_t(i)] = u(rng);
  int64_t cmacs = 0;
  auto X = monarchDft(x, b, cmacs), K = monarchDft(k, b, cmacs);
  std::vector<cd> prod(16);
  for (size_t i = 0; i < 16; ++i)
    prod[i] = X[i] * K[i];
  auto y = naiveDft(prod, true);
  for (int64_t i = 0; i < L; ++i) {
    double direct = 0;
    for (int64_t j = 0; j <= i; ++j)
      direct += k[size_t(i - j)].real() * x[size_t(j)].real();
    CHECK(y[size_t(i)].real() / 16 == Approx(direct).margin(1e-12));
  }
  // The analysis counts the compiled contractions (compiler/ir/
  // EmitMixer.cpp, emitM2Conv), each the product of its extents: b = 64,
  // J = 32 rows of x, y (and the causal kernel) on the grid, complex parts 2.
  auto spec = parseMixer("m2-conv(causal=true, order=16)");
  REQUIRE(spec);
  auto a = analyzeMixer(*spec, 2048, 768);
  REQUIRE(a);
  CHECK(a->fftSize == 4096); // 2L = 4096 = 64²
  const int64_t B = 64, J = 32;
  const int64_t xSide = B * B * J * 2       // "sjad,jkc->skacd"
                        + B * B * 2 * 2     // "skacd,kace->skaed"
                        + B * B * B * 2 * 2 // "skacd,acme->skmed"
                        + B * B * 2 * 2     // "skmcd,kmced->skmed"
                        + B * B * B * 2 * 2 // "skmcd,mcue->skued"
                        + B * B * 2 * 2     // "skucd,kuce->skued"
                        + J * B * B * 2     // "skucd,kcv->svud"
                        + 2048;             // "sld,d->sld"
  auto kSide = [&](int64_t rows) {
    return B * B * rows * 2 + B * B * 2 * 2 + B * B * B * 2 * 2 +
           B * B * 2 * 2 * 2; // ... "kmgd,gce->kmced"
  };
  CHECK(a->macs == 768 * (xSide + kSide(J)) + 2 * 2048 * 768 +
                       hyenaFilterMacs(2048, 768, 16));
  CHECK(a->params == hyenaFilterParams(2048, 768, 16));
  CHECK(hyenaFilterParams(2048, 768, 16) ==
        768 + 16 + 3 * 2048 + 4 * 16 + 2 * (16 * 16 + 16) + 16 * 768);
  CHECK(a->causal);
  CHECK(!a->dataDependent);
  CHECK(a->growth == "L^1.5");
  // Bidirectional, as the reference's fftconv_ref: also at 2L, k_rev in the
  // kernel's end (all 64 rows of its DFT), two filters.
  auto bi = analyzeMixer(*parseMixer("m2-conv(causal=false)"), 2048, 64);
  REQUIRE(bi);
  CHECK(bi->fftSize == 4096);
  CHECK(!bi->causal);
  CHECK(bi->macs == 64 * (xSide + kSide(B)) + 2 * 2048 * 64 +
                        2 * hyenaFilterMacs(2048, 64, 16));
  // A length whose DFT is not square: padded, or refused with pad=false.
  auto padded = analyzeMixer(*parseMixer("m2-conv"), 4096, 64);
  REQUIRE(padded);
  CHECK(padded->fftSize == 91 * 91); // 8192 -> 8281
  auto refused = analyzeMixer(*parseMixer("m2-conv(pad=false)"), 4096, 64);
  REQUIRE(!refused);
  CHECK_THAT(refused.error(),
             Catch::Contains("the DFT size 2L = 8192 is not a square"));
  auto bad = analyzeMixer(*parseMixer("m2-conv(causal=maybe)"), 64, 8);
  REQUIRE(!bad);
  CHECK_THAT(bad.error(), Catch::Contains("parameter causal = 'maybe' must be "
                                          "true or false"));
}

TEST_CASE("monarch-seq: two block-diagonal factors along the sequence",
          "[mixer]") {
  auto a = analyzeMixer(*parseMixer("monarch-seq(blocks=64)"), 4096, 768);
  REQUIRE(a);
  CHECK(a->blocks == 64);
  CHECK(a->macs == 2 * 4096 * 64 * 768);
  CHECK(a->params == 2 * 4096 * 64);
  CHECK(a->quadraticMacs == int64_t(4096) * 4096 * 768);
  CHECK(!a->causal);
  CHECK(!a->extendable);
  // Blocks default to the divisor of L nearest √L.
  auto d = analyzeMixer(*parseMixer("monarch-seq"), 1000, 8);
  REQUIRE(d);
  CHECK(d->blocks == 25); // 1000 = 25 · 40; √1000 ≈ 31.6: 25 is 6.6 away, 40 is 8.4
  auto e = analyzeMixer(*parseMixer("monarch-seq(blocks=7)"), 4096, 8);
  REQUIRE(!e);
  CHECK_THAT(e.error(), Catch::Contains("blocks = 7 does not divide the "
                                        "sequence length 4096"));
}

TEST_CASE("mixer search: every family's candidates, filtered and ranked",
          "[mixer]") {
  const int64_t L = 4096, d = 768;
  auto all = enumerateMixers(searchedMixerFamilies(), L, d);
  REQUIRE(all);
  size_t ssd = 0, m2 = 0;
  for (const auto &c : *all) {
    ssd += c.analysis.family == "ssd";
    m2 += c.analysis.family == "m2-conv";
    // Each candidate's analysis is its spec's.
    auto again = analyzeMixer(*parseMixer(c.spec), L, d);
    REQUIRE(again);
    CHECK(again->macs == c.analysis.macs);
  }
  CHECK(ssd == 3 * 4); // head_dim 32, 64, 128 divide 768; 4 states
  CHECK(m2 == 2);
  MixerConstraints k;
  k.maxMacsRatio = 0.05;
  k.causal = true;
  auto ranked = rankMixers(*all, k, "matrix-mixer", L, d);
  REQUIRE(ranked);
  REQUIRE(!ranked->empty());
  // Exactly the candidates meeting the constraints are kept.
  size_t meeting = 0;
  for (const auto &c : *all)
    meeting += c.analysis.causal &&
               c.analysis.macs <= 0.05 * double(L) * double(L) * double(d);
  CHECK(ranked->size() == meeting);
  // Data-dependent first (the SSDs), then the rest; MACs rising within.
  bool seenStatic = false;
  for (size_t i = 0; i < ranked->size(); ++i) {
    const auto &a = (*ranked)[i].analysis;
    CHECK(a.causal);
    if (!a.dataDependent)
      seenStatic = true;
    else
      CHECK(!seenStatic);
    if (i > 0 && a.dataDependent == (*ranked)[i - 1].analysis.dataDependent)
      CHECK(a.macs >= (*ranked)[i - 1].analysis.macs);
  }
  CHECK((*ranked)[0].analysis.family == "ssd");
  auto byMacs = rankMixers(*all, {}, "macs", L, d);
  REQUIRE(byMacs);
  CHECK(byMacs->size() == all->size());
  for (size_t i = 1; i < byMacs->size(); ++i)
    CHECK((*byMacs)[i].analysis.macs >= (*byMacs)[i - 1].analysis.macs);
  CHECK(!rankMixers(*all, {}, "fast", L, d));
  CHECK(!enumerateMixers({"mamba"}, L, d));
}
