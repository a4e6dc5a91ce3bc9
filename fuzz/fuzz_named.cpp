// Named structures with parameters ("btt(rank=8)", "dyad(blocks=4,
// variant=IT)") built for d_in/d_out read from the line after them; and
// sequence mixers ("ssd(4, 8, 16)") costed for a sequence length and d_model
// read the same way.
#include "FuzzCheck.h"
#include "search/Mixer.h"
#include "search/Named.h"

using namespace einstruct;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto [text, dims] = fuzzSplit(fuzzText(data, size));
  if (auto mixer = parseMixer(text)) {
    auto [seqLen, dModel] = fuzzDims(dims, 1024, 4096);
    if (auto a = analyzeMixer(*mixer, seqLen, dModel))
      FUZZ_CHECK(a->macs > 0 && a->params > 0 && a->bytes > 0);
    return 0;
  }
  auto spec = parseNamed(text);
  if (!spec)
    return 0;
  auto [dIn, dOut] = fuzzDims(dims, 1024, 4096);
  auto layer = buildNamed(*spec, dIn, dOut);
  if (!layer)
    return 0;
  auto a = analyze(*layer);
  if (a)
    FUZZ_CHECK(a->params > 0 && a->flops > 0);
  return 0;
}
