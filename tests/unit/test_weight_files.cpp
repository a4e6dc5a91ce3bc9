// Weight files name the layer they were written for, and reading them for
// another layer — even one whose weights have the same shapes — fails with
// both named (issue: shape-compatible checkpoints were taken silently).
#include "compiler/frontend/Safetensors.h"
#include "compiler/frontend/WeightFiles.h"
#include "search/Named.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace einstruct;

namespace {

Layer einsumLayer(const char *spec, const char *sizes) {
  auto t = parseEinsum(spec, sizes);
  REQUIRE(t);
  auto l = layerFromTerms({*t});
  REQUIRE(l);
  return *l;
}

std::string tempPath(const std::string &name) {
  return "/tmp/einstruct-weights-" + std::to_string(::getpid()) + "-" + name;
}

void put(const std::string &path, const std::string &bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

} // namespace

TEST_CASE("weight files: the layer signature", "[weights]") {
  // Monarch as einstruct writes it and as m2 does (block index last in y):
  // the same weight shapes, different layers.
  Layer ours = einsumLayer("ga,fga,feg->fe", "g=8,a=8,f=8,e=8");
  Layer m2 = einsumLayer("ga,fga,feg->ef", "g=8,a=8,f=8,e=8");
  CHECK(weightShapes(ours) == weightShapes(m2));
  CHECK(layerSignature(ours) ==
        "ga,fga,feg->fe a=8,e=8,f=8,g=8 d_in=64 d_out=64");
  CHECK(layerSignature(m2) != layerSignature(ours));
}

TEST_CASE("weight files: safetensors metadata is checked", "[weights]") {
  Layer ours = einsumLayer("ga,fga,feg->fe", "g=8,a=8,f=8,e=8");
  Layer m2 = einsumLayer("ga,fga,feg->ef", "g=8,a=8,f=8,e=8");
  NpyArray w{{8, 8, 8}, std::vector<float>(512, 0.5f)};
  const std::string path = tempPath("w.safetensors");
  put(path, encodeSafetensors({{"w1", w}}, weightMetadata(ours)));
  CHECK(readWeightFile(path + ":w1", ours));
  auto wrong = readWeightFile(path + ":w1", m2);
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error() ==
        path + ": written for the layer 'ga,fga,feg->fe a=8,e=8,f=8,g=8 "
               "d_in=64 d_out=64' (its __metadata__), but this layer is "
               "'ga,fga,feg->ef a=8,e=8,f=8,g=8 d_in=64 d_out=64'; give the "
               "spec the weights were written for");
  // Another layout is refused by name; a file without einstruct's keys is
  // read as it is (nothing to check).
  put(path, encodeSafetensors({{"w1", w}}, {{"einstruct.layout", "fly"}}));
  CHECK_THAT(readWeightFile(path, ours).error(),
             Catch::Contains("weights in the 'fly' layout"));
  put(path, encodeSafetensors({{"w1", w}}, {{"format", "pt"}}));
  CHECK(readWeightFile(path, m2));
  std::remove(path.c_str());
}

TEST_CASE("weight files: .npy files are checked through einstruct.json",
          "[weights]") {
  Layer ours = einsumLayer("ga,fga,feg->fe", "g=8,a=8,f=8,e=8");
  Layer m2 = einsumLayer("ga,fga,feg->ef", "g=8,a=8,f=8,e=8");
  const std::string dir = tempPath("dir");
  REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
  NpyArray w{{8, 8, 8}, std::vector<float>(512, 0.5f)};
  put(dir + "/w1.npy", encodeNpy(w));
  put(dir + "/other.npy", encodeNpy(w));
  put(dir + "/" + kWeightSidecar, weightSidecar(ours, {"w1.npy"}));
  CHECK(readWeightFile(dir + "/w1.npy", ours));
  CHECK_THAT(readWeightFile(dir + "/w1.npy", m2).error(),
             Catch::Contains("w1.npy: written for the layer "
                             "'ga,fga,feg->fe") &&
                 Catch::Contains("(" + dir + "/einstruct.json)"));
  // A file the sidecar does not list is not vouched for.
  CHECK(readWeightFile(dir + "/other.npy", m2));
  put(dir + "/" + kWeightSidecar, "[1, 2]");
  CHECK_THAT(readWeightFile(dir + "/w1.npy", ours).error(),
             Catch::Contains("einstruct.json: must be a JSON object"));
  for (const char *f : {"/w1.npy", "/other.npy", "/einstruct.json"})
    std::remove((dir + f).c_str());
  ::rmdir(dir.c_str());
}
