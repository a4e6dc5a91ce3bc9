// Named structures of structures.md §3: costs from their definitions.
#include "search/Init.h"
#include "search/Named.h"
#include "tests/unit/NamedLayer.h"

#include <catch2/catch.hpp>

using namespace einstruct;

namespace {
Analysis costOf(const char *spec, int64_t dIn, int64_t dOut) {
  auto a = analyze(testing::namedLayer(spec, dIn, dOut));
  REQUIRE(a);
  return *a;
}
} // namespace

TEST_CASE("named structures cost what their definitions say", "[named]") {
  // Dense: exactly d_in·d_out, as the reference counts it.
  auto dense = costOf("dense", 768, 3072);
  CHECK(dense.params == 768 * 3072);
  CHECK(dense.flops == 768 * 3072);
  CHECK(dense.metrics->nu == Approx(1));
  CHECK(dense.metrics->omega == Approx(0).margin(1e-12));
  // Monarch with 64 blocks at 4096: two block-diagonal factors of 64 64×64.
  auto m = costOf("monarch(blocks=64)", 4096, 4096);
  CHECK(m.params == 2 * 64 * 64 * 64);
  CHECK(m.flops == 524288);
  CHECK(m.name == "monarch");
  // Low-rank r: r·(d_in + d_out).
  auto lr = costOf("low-rank(rank=64)", 4096, 1024);
  CHECK(lr.params == 64 * (4096 + 1024));
  CHECK(lr.rankBound == 64);
  // Block-diagonal: d_in·d_out / blocks.
  auto bd = costOf("block-diagonal(8)", 1024, 2048);
  CHECK(bd.params == 1024 * 2048 / 8);
  CHECK(bd.rankBound == 1024);
  // DYAD: 2·n_in·n_out/D (the first author's count).
  for (const char *v : {"dyad(4, IT)", "dyad(4, OT)", "dyad(blocks=4)"}) {
    auto dy = costOf(v, 256, 512);
    CHECK(dy.params == 2 * 256 * 512 / 4);
    CHECK(dy.flops == 2 * 256 * 512 / 4);
  }
  // Kronecker of two 64×64 factors: 2·64² params, 2·64³ MACs.
  auto kr = costOf("kronecker", 4096, 4096);
  CHECK(kr.params == 8192);
  CHECK(kr.flops == 524288);
  auto tt = costOf("tt(rank=4)", 4096, 4096);
  CHECK(tt.params == 4 * 8192);
  CHECK(tt.name == "tt");
  // BTT rank 8 matches the worked row; BTT with explicit blocks.
  CHECK(costOf("btt(rank=8)", 4096, 4096).params == 4194304);
  auto bb = costOf("btt(rank=1, in_blocks=16, out_blocks=32)", 4096, 4096);
  CHECK(*bb.classSizes == ClassSizes{256, 1, 16, 1, 128, 32, 1});
  // BTT with the reference's rounding reproduces the padded worked row.
  auto rb = costOf("btt(sizing=round)", 4096, 4096);
  CHECK(rb.params == 524288);
}

TEST_CASE("BTT-MoE counts only the selected experts", "[named][moe]") {
  auto moe = costOf("btt-moe(experts=8, top_k=2)", 4096, 4096);
  // All experts: a BTT of rank 8 (4,194,304 MACs); top-2 runs 2/8 of it.
  CHECK(moe.flopsAllExperts == 4194304 + 4096 * 8);
  CHECK(moe.flops == 4194304 / 4 + 4096 * 8);
  CHECK(moe.params == 4194304 + 4096 * 8);
  CHECK(moe.routerParams == 4096 * 8);
}

TEST_CASE("named structure errors", "[named][errors]") {
  struct Bad {
    const char *spec;
    int64_t dIn, dOut;
    const char *expect;
  } bad[] = {
      {"circulant", 16, 16, "unknown structure 'circulant'; known: dense"},
      {"low-rank", 16, 16, "parameter 'rank' is required"},
      {"low-rank(rank=32)", 16, 16, "exceeds min(d_in, d_out) = 16"},
      {"low-rank(rank=0)", 16, 16, "must be a positive integer"},
      {"low-rank(rank=x)", 16, 16, "must be a positive integer"},
      {"low-rank(4, 5)", 16, 16, "extra argument '5' at column 13"},
      {"low-rank(size=4)", 16, 16, "unknown parameter 'size' at column 10"},
      {"low-rank(rank=4, rank=4)", 16, 16, "given twice"},
      {"monarch(5)", 16, 16, "blocks = 5 does not divide d_in = 16"},
      {"dyad(4, XT)", 16, 16, "must be IT, OT or DT"},
      {"block-diagonal(3)", 12, 16, "does not divide d_out = 16"},
      {"btt-moe(experts=2, top_k=4)", 16, 16, "top_k = 4 exceeds experts = 2"},
      {"btt(sizing=fancy)", 16, 16, "must be 'exact' or 'round'"},
      {"btt(rank=1", 16, 16, "missing ')'"},
      {"dense", 0, 16, "d_in = 0 is outside"},
  };
  for (auto &b : bad) {
    INFO(b.spec);
    auto n = parseNamed(b.spec);
    std::string error;
    if (!n) {
      error = n.error();
    } else {
      auto l = buildNamed(*n, b.dIn, b.dOut);
      REQUIRE_FALSE(l);
      error = l.error();
    }
    CHECK_THAT(error, Catch::Contains(b.expect));
  }
}

TEST_CASE("reference init std follows structures.md §4", "[init]") {
  // Monarch 64 with 8 blocks: A maps a=8 → d·f·r = 8, B maps b·g·r = 8 →
  // e = 8: std = sqrt(8 / 64) for both.
  auto m = buildNamed(*parseNamed("monarch(8)"), 64, 64);
  REQUIRE(m);
  auto s = initStd(*m);
  REQUIRE(s);
  REQUIRE(s->size() == 2);
  CHECK((*s)[0] == Approx(std::sqrt(8.0 / 64.0)));
  CHECK((*s)[1] == Approx(std::sqrt(8.0 / 64.0)));
  // Dense 100 → 30: one core, std = sqrt(30 / 100²).
  auto d = buildNamed(*parseNamed("dense"), 100, 30);
  REQUIRE(d);
  CHECK((*initStd(*d))[0] == Approx(std::sqrt(30.0) / 100.0));
  // Low-rank 4 at 64 → 32: A maps a=64 → r=4, B maps r=4 → e=32.
  auto lr = buildNamed(*parseNamed("low-rank(4)"), 64, 32);
  REQUIRE(lr);
  auto ls = initStd(*lr);
  REQUIRE(ls);
  CHECK((*ls)[0] == Approx(std::sqrt(4.0) / 64.0));
  CHECK((*ls)[1] == Approx(std::sqrt(4.0) / 4.0));
}
