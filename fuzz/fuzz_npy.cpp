// .npy files; an accepted array must encode and parse back bit for bit.
#include "FuzzCheck.h"
#include "compiler/frontend/Npy.h"


using namespace einstruct;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto a = parseNpy(fuzzText(data, size), "fuzz.npy");
  if (!a)
    return 0;
  int64_t count = 1;
  for (int64_t d : a->shape)
    count *= d;
  FUZZ_CHECK(size_t(count) == a->data.size());
  auto b = parseNpy(encodeNpy(*a), "again.npy");
  FUZZ_CHECK(b && b->shape == a->shape && sameBits(b->data, a->data));
  return 0;
}
