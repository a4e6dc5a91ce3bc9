// JSON spec files: every form, sums of terms, and errors naming the field.
#include "compiler/frontend/SpecReader.h"

#include <catch2/catch.hpp>

using namespace einstruct;

TEST_CASE("JSON specs in every form", "[spec]") {
  auto ls = readSpecJson(R"J([
    {"label": "m", "theta": "(0.5|0|0.5|0|0.5|0.5|0)", "d_in": 4096, "d_out": 4096},
    {"theta": [0.5, 0, 0.5, 0, 0.5, 0.5, 0.25], "d_in": 4096, "d_out": 4096},
    {"einsum": "gba,fdrga,fergb->fed",
     "sizes": {"g": 8, "b": 8, "a": 64, "f": 8, "d": 8, "e": 64, "r": 1}},
    {"structure": "btt(rank=8)", "d_in": 4096, "d_out": 4096},
    {"structure": {"family": "dyad", "blocks": 4, "variant": "OT"},
     "d_in": 64, "d_out": 64},
    {"terms": [{"einsum": "ki,koi->ko", "sizes": "k=4,i=16,o=16"},
               {"einsum": "ik,koi->ok", "sizes": {"k": 4, "i": 16, "o": 16}}]},
    {"theta": "(0.33|0|0.67|0|0.67|0.33|0)", "sizing": "exact",
     "d_in": 768, "d_out": 3072}
  ])J",
                         "specs.json");
  REQUIRE(ls);
  REQUIRE(ls->size() == 7);
  CHECK((*ls)[0].label == "m");
  CHECK((*ls)[1].label == "specs.json[1]");
  std::vector<int64_t> params;
  for (auto &l : *ls)
    params.push_back(analyze(l)->params);
  CHECK(params[0] == 524288);
  CHECK(params[1] == 4194304);
  CHECK(params[2] == 65536); // the worked "generic" row
  CHECK(params[3] == 4194304);
  CHECK(params[4] == 2 * 64 * 64 / 4);
  CHECK(params[5] == 2 * 64 * 64 / 4);
  CHECK((*ls)[6].terms[0].inDim() == 768);
  CHECK((*ls)[6].sizing == "exact");
}

TEST_CASE("JSON spec errors name the field or byte", "[spec][errors]") {
  struct Bad {
    const char *json, *expect;
  } bad[] = {
      {R"J({"theta": "(0.5|0|0.5|0|0.5|0.5|0)", "d_in": 4096)J",
       "s.json: invalid JSON at byte"},
      {R"J({"theta": "(0.5|0|0.5|0|0.5|0.5)", "d_in": 16, "d_out": 16})J",
       "s.json.theta: θ has 6 fields"},
      {R"J({"theta": "(0.5|0|0.5|0|0.5|0.5|0)", "d_in": 16})J",
       "needs d_in and d_out"},
      {R"J({"theta": "(0.5|0|0.5|0|0.5|0.5|0)", "d_in": 0, "d_out": 16})J",
       "s.json.d_in: 0 is outside [1, 2^40]"},
      {R"J({"theta": "(0.5|0|0.5|0|0.5|0.5|0)", "d_in": -4, "d_out": 16})J",
       "s.json.d_in: -4 is outside"},
      {R"J({"theta": "(0.5|0|0.5|0|0.5|0.5|0)", "d_in": 1.5, "d_out": 16})J",
       "s.json.d_in: must be an integer"},
      {R"J({"theta": [0.5, "x"], "d_in": 16, "d_out": 16})J",
       "s.json.theta[1]: must be a number"},
      {R"J({"einsum": "ga,fga,feg->fe", "sizes": {"g": "2"}})J",
       "s.json.sizes.g: must be an integer"},
      {R"J({"structure": "wavelet", "d_in": 16, "d_out": 16})J",
       "s.json.structure: unknown structure 'wavelet'"},
      {R"J({"structure": {"rank": 2}, "d_in": 16, "d_out": 16})J",
       "s.json.structure: must be a string"},
      {R"J({"thetta": "(1|0|0|0|0|1|0)"})J", "s.json.thetta: unknown field"},
      {R"J({"theta": "(1|0|0|0|0|1|0)", "structure": "dense", "d_in": 4,
           "d_out": 4})J",
       "give only one of"},
      {R"J({"d_in": 4, "d_out": 4})J", "no structure given"},
      {R"J([])J", "the spec array is empty"},
      {R"J([{"structure": "dense", "d_in": 4, "d_out": 4}, 7])J",
       "s.json[1]: a spec must be a JSON object"},
      {R"J({"terms": [{"einsum": "ki,koi->ko", "sizes": "k=4,i=16,o=16"},
                     {"einsum": "ki,koi->ko", "sizes": "k=4,i=8,o=16"}]})J",
       "s.json.terms: term 2 maps 32 -> 64 but term 1 maps 64 -> 64"},
      {R"J({"terms": [{"einsum": "ki,koi->kk", "sizes": "k=4,i=16,o=16"}]})J",
       "s.json.terms[0].einsum: einsum: output index 'k' repeated"},
  };
  for (auto &b : bad) {
    INFO(b.json);
    auto ls = readSpecJson(b.json, "s.json");
    REQUIRE_FALSE(ls);
    CHECK_THAT(ls.error(), Catch::Contains(b.expect));
  }
}
