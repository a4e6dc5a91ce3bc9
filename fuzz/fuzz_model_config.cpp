// Model descriptions for model-level search.
#include "FuzzCheck.h"
#include "compiler/frontend/ModelReader.h"

using namespace einstruct;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto m = readModelJson(fuzzText(data, size), "fuzz.json");
  if (!m)
    return 0;
  FUZZ_CHECK(!m->layers.empty());
  for (const auto &l : m->layers)
    FUZZ_CHECK(l.dIn > 0 && l.dOut > 0 && l.count > 0);
  return 0;
}
