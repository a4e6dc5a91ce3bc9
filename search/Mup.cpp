#include "Mup.h"
#include "Init.h"

namespace einstruct {

double denseLrMultiplier(int64_t dInBase, int64_t dIn) {
  return double(dInBase) / double(dIn);
}

Result<std::vector<double>> lrMultipliers(const Layer &layer,
                                          double denseMultiplier) {
  auto fans = coreFans(layer);
  if (!fans)
    return Error{fans.error()};
  std::vector<double> out;
  const double cores = double(fans->size());
  for (const CoreFan &f : *fans)
    out.push_back(denseMultiplier * (double(layer.dIn) / f.in) / cores);
  if (layer.experts > 0)
    out.push_back(denseMultiplier);
  if (layer.bias)
    out.push_back(1.0);
  return out;
}

} // namespace einstruct
