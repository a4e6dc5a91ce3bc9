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

TEST_CASE("layouts of the public code: fly's Monarch, einsum-search's BTT",
          "[named][layout]") {
  auto layer = [](const char *spec, int64_t dIn, int64_t dOut) {
    auto l = testing::namedLayer(spec, dIn, dOut);
    return std::pair{l, l.terms[0].str() + " " + l.terms[0].sizesStr()};
  };
  // fly's MonarchLinear(nblocks): nblocks square blocks per factor; with
  // nblocks = √n its reshape is the plain transpose (m2's spelling).
  auto [sq, sqText] = layer("monarch(nblocks=8, layout=fly)", 64, 64);
  CHECK(sq.layout == "fly");
  CHECK(sqText == "ga,gfa,feg->ef a=8,e=8,f=8,g=8");
  CHECK(analyze(sq)->params == 2 * 8 * 8 * 8);
  // nblocks = 4 on 64: blocks of 16×16, the middle index split (h, l).
  auto [four, fourText] = layer("monarch(nblocks=4, layout=m2)", 64, 64);
  CHECK(four.layout == "fly");
  CHECK(fourText == "ga,grfa,fegr->ef a=16,e=16,f=4,g=4,r=4");
  CHECK(analyze(four)->params == 2 * 4 * 16 * 16);
  // nblocks = 16 on 64: blocks of 4×4, the block index split (kh, kl).
  CHECK(layer("monarch(nblocks=16, layout=fly)", 64, 64).second ==
        "gka,gkfa,kfeg->ekf a=4,e=4,f=4,g=4,k=4");
  // Padding as fly pads: 62 -> 70 computed as 64 -> 72.
  auto [pad, padText] = layer("monarch(4, layout=fly)", 62, 70);
  CHECK(pad.terms[0].inDim() == 64);
  CHECK(pad.terms[0].outDim() == 72);
  CHECK(padText == "ga,grfa,fegr->ef a=16,e=18,f=4,g=4,r=4");
  auto [bd, bdText] = layer("block-diagonal(4, layout=fly)", 62, 90);
  CHECK(bdText == "ki,koi->ko i=16,k=4,o=23");
  CHECK(bd.dIn == 62);
  // einsum-search's factorize(d, 2): primes to the smaller part, ascending;
  // x (γ, α) with γ the larger, y (φ, ε) with φ the smaller. 512 -> 512 is
  // (α, γ, φ, ε) = (16, 32, 16, 32) there; 360 = 2³·3²·5 gives (12, 30).
  CHECK(layer("btt(layout=einsum-search)", 512, 512).second ==
        "ga,gaf,fge->fe a=16,e=32,f=16,g=32");
  CHECK(layer("btt(rank=2, layout=einsum-search)", 360, 768).second ==
        "ga,gafr,fgre->fe a=12,e=48,f=16,g=30,r=2");
  CHECK(layer("btt(rank=2, in_blocks=8, out_blocks=4, layout=einsum-search)",
              64, 64)
            .second == "ga,gafr,fgre->fe a=8,e=16,f=4,g=8,r=2");
  // The einstruct layout stays the default.
  CHECK(layer("btt(rank=2)", 64, 64).first.layout == "einstruct");
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
      {"monarch(nblocks=4)", 16, 16, "nblocks is fly's count of square blocks"},
      {"monarch(4, layout=jax)", 16, 16,
       "layout = 'jax' must be one of: einstruct, fly"},
      {"btt(layout=fly)", 16, 16, "must be one of: einstruct, einsum-search"},
      {"monarch(blocks=4, nblocks=4, layout=fly)", 16, 16,
       "give nblocks or blocks, not both"},
      {"monarch(nblocks=3, layout=fly)", 1000, 1024,
       "middle block size 334 and nblocks do not divide one another"},
      {"monarch(nblocks=64, layout=fly)", 16, 16, "exceeds max(d_in, d_out)"},
      {"btt(sizing=round, layout=einsum-search)", 16, 16, "drop sizing"},
      {"btt(in_blocks=5, layout=einsum-search)", 16, 16,
       "in_blocks = 5 does not divide d_in = 16"},
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
