// Einsum string and sizes ("gba,fdrga,fergb->fed" newline "g=64,a=64,..."),
// then the layer's analysis and the CUDA plan. Accepted terms must survive a
// print/parse round trip unchanged.
#include "FuzzCheck.h"
#include "compiler/cuda/CudaPlan.h"
#include "search/Layer.h"

using namespace einstruct;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto [spec, sizes] = fuzzSplit(fuzzText(data, size));
  auto t = parseEinsum(spec, sizes);
  if (!t)
    return 0;
  auto again = parseEinsum(t->str(), t->sizesStr());
  FUZZ_CHECK(again && again->str() == t->str() && again->sizes == t->sizes);
  auto cost = termCost(*t);
  if (cost)
    FUZZ_CHECK(cost->params > 0 && cost->flops > 0 &&
               cost->order.size() == t->weights.size());
  FUZZ_CHECK(rankBound(*t) >= 0);
  auto layer = layerFromTerms({*t});
  if (!layer)
    return 0;
  auto a = analyze(*layer);
  if (!a)
    return 0;
  FUZZ_CHECK(a->rankBound <= std::min(a->dIn, a->dOut));
  CudaTarget target;
  auto plan = planCuda(*layer, target);
  if (plan)
    FUZZ_CHECK(plan->forward.smemBytes > 0 &&
               plan->forward.smemBytes <= 220 * 1024);
  return 0;
}
