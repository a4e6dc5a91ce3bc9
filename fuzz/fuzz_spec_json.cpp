// JSON spec files (one spec object or an array of them, every form), then
// the analysis of each layer read.
#include "FuzzCheck.h"
#include "compiler/frontend/SpecReader.h"

using namespace einstruct;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto layers = readSpecJson(fuzzText(data, size), "fuzz.json");
  if (!layers) {
    FUZZ_CHECK(!layers.error().empty());
    return 0;
  }
  for (const auto &l : *layers) {
    FUZZ_CHECK(!l.terms.empty());
    auto a = analyze(l);
    if (a)
      FUZZ_CHECK(a->params > 0 && a->flops > 0);
  }
  return 0;
}
