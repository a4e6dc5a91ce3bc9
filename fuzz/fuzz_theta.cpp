// θ text "(α|β|γ|δ|ε|φ|ρ)", then sizing for d_in/d_out read from the line
// after it, then the cost analysis.
#include "FuzzCheck.h"
#include "search/Layer.h"

#include <cmath>
#include <cstdlib>

using namespace einstruct;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto [text, dims] = fuzzSplit(fuzzText(data, size));
  auto t = parseTheta(text);
  if (!t)
    return 0;
  for (int c = 0; c < kNumClasses; ++c)
    FUZZ_CHECK(std::isfinite((*t)[c]) && (*t)[c] >= 0 && (*t)[c] <= 1);
  auto tax = taxonomy(*t);
  FUZZ_CHECK(std::isfinite(tax.omega) && std::isfinite(tax.psi) &&
             std::isfinite(tax.nu));
  auto [dIn, dOut] = fuzzDims(dims, 768, 3072);
  for (Sizing mode : {Sizing::Round, Sizing::Exact}) {
    auto layer = layerFromTheta(*t, dIn, dOut, mode);
    if (!layer)
      continue;
    auto a = analyze(*layer);
    if (!a)
      continue;
    FUZZ_CHECK(a->params > 0 && a->flops > 0);
    // Rounding may pad or cut by at most the reference's 15% (structures.md).
    FUZZ_CHECK(std::abs(a->paddedIn - dIn) <= 0.15 * double(dIn) + 1e-9);
    FUZZ_CHECK(std::abs(a->paddedOut - dOut) <= 0.15 * double(dOut) + 1e-9);
    if (mode == Sizing::Exact)
      FUZZ_CHECK(a->paddedIn == dIn && a->paddedOut == dOut);
  }
  return 0;
}
