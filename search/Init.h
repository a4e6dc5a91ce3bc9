// Reference initialisation (structures.md §4, µP-style): each core is a
// matrix with fan-in n_in and fan-out n_out — A maps a → d·f·r, B maps
// b·g·r → e — and is drawn with std = sqrt(min(n_in, n_out) / n_in²). A
// one-weight layer (dense, block-diagonal) is one such matrix per block.
#pragma once
#include "Layer.h"

namespace einstruct {

struct CoreFan {
  double in = 1, out = 1;
};

// The fan-in and fan-out of each core, in weightShapes() order (the router
// and bias, which are not cores, excluded).
Result<std::vector<CoreFan>> coreFans(const Layer &layer);

// The std of each weight of the layer, in weightShapes() order.
Result<std::vector<double>> initStd(const Layer &layer);

} // namespace einstruct
