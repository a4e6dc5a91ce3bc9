// Reference initialisation (structures.md §4, µP-style): each core is a
// matrix with fan-in n_in and fan-out n_out — A maps a → d·f·r, B maps
// b·g·r → e — and is drawn with std = sqrt(min(n_in, n_out) / n_in²). A
// one-weight layer (dense, block-diagonal) is one such matrix per block.
#pragma once
#include "Layer.h"

namespace einstruct {

// The std of each weight of the layer, in weightShapes() order.
Result<std::vector<double>> initStd(const Layer &layer);

} // namespace einstruct
