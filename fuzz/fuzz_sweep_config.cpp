// Sweep configs: shapes × budgets × objectives, search space, shards. Only
// reading and row expansion; the search itself is fuzzed through specs.
#include "FuzzCheck.h"
#include "compiler/frontend/Sweep.h"

#include <set>

using namespace einstruct;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto c = readSweepJson(fuzzText(data, size), "fuzz.json");
  if (!c)
    return 0;
  auto rows = sweepRows(*c);
  FUZZ_CHECK(rows.size() ==
             c->shapes.size() * c->budgets.size() * c->objectives.size());
  std::set<std::string> keys;
  for (const auto &r : rows)
    FUZZ_CHECK(keys.insert(r.key).second); // row keys are unique
  return 0;
}
