// safetensors files: the header, then every tensor as float32; F32 tensors
// must encode and parse back bit for bit.
#include "FuzzCheck.h"
#include "compiler/frontend/Safetensors.h"


using namespace einstruct;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string bytes = fuzzText(data, size);
  auto h = parseSafetensorsHeader(bytes, "fuzz.safetensors");
  if (!h)
    return 0;
  size_t covered = 0;
  for (const auto &e : h->tensors) {
    FUZZ_CHECK(e.begin <= e.end && h->dataStart + e.end <= bytes.size());
    covered += e.end - e.begin;
    auto a = parseSafetensor(bytes, "fuzz.safetensors", e.name);
    if (!a)
      continue;
    size_t count = 1;
    for (int64_t d : a->shape)
      count *= size_t(d);
    FUZZ_CHECK(count == a->data.size());
    if (e.dtype != "F32")
      continue;
    auto again = parseSafetensor(encodeSafetensors({{e.name, *a}}), "again",
                                 e.name);
    FUZZ_CHECK(again && again->shape == a->shape &&
               sameBits(again->data, a->data));
  }
  FUZZ_CHECK(h->dataStart + covered == bytes.size());
  return 0;
}
