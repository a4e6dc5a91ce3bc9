// Sequence mixers (search/Mixer.h): the chunked SSD whose multiply-adds
// ssdMacs counts, written here as loops that count as they go, computes the
// materialised semiseparable matrix M[i, j] = C_iᵀB_j·exp(Σ_{t=j+1..i} a_t)
// (float64, brute force) and does not leak the future; its count equals
// ssdMacs for chunks that do and do not divide L; the chosen chunk is the
// brute-force argmin; specs are parsed with located errors.
#include "search/Mixer.h"

#include <catch2/catch.hpp>
#include <cmath>
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
  // The chunk with the fewest multiply-adds: the brute-force argmin of the
  // counting implementation above (the larger chunk on a tie).
  auto s = randomSsd(37, 3, 4, 5, 1);
  int64_t best = 0, bestMacs = 0;
  for (int64_t q = 1; q <= 37; ++q) {
    int64_t macs = 0;
    chunked(s, q, macs);
    if (!best || macs <= bestMacs)
      best = q, bestMacs = macs;
  }
  auto ssd = analysis("ssd(heads=3, head_dim=4, state=5)", 37, 1);
  CHECK(ssd.chunk == best);
  CHECK(ssd.chunkChosen);
  CHECK(ssd.macs == bestMacs);
  CHECK(ssd.quadraticMacs == 37 * 37 * 5 + 3 * 37 * 37 * 4);
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

TEST_CASE("mixer spec errors", "[mixer][errors]") {
  struct Bad {
    const char *spec;
    int64_t L;
    const char *expect;
  } bad[] = {
      {"mamba", 16, "unknown mixer 'mamba'; known: ssd, hydra"},
      {"ssd(heads=4, head_dim=8)", 16, "parameter 'state' is required"},
      {"ssd(4, 8, 16, chunk=32)", 16, "chunk = 32 exceeds the sequence length 16"},
      {"ssd(0, 8, 16)", 16, "ssd: parameter heads = '0' must be a positive integer"},
      {"ssd(2000000, 8, 16)", 16, "parameter heads = 2000000 exceeds 1048576"},
      {"hydra(4, 8, 16, size=2)", 16, "unknown parameter 'size' at column 17"},
      {"low-rank-seq(rank=32)", 16, "rank = 32 exceeds the sequence length 16"},
      {"dense-seq(4)", 16, "takes 0 parameters"},
      {"ssd(4, 8, 16)", 0, "sequence length = 0 is outside [1, 2^24]"},
      {"ssd(1024, 1024, 1024)", 1 << 24, "exceed 2^62"},
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
}
