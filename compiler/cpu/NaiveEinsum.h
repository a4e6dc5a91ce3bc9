// The slow, obviously correct evaluation of a layer: for every batch row, a
// loop over every combination of index values. `run --check` compares the JIT
// against it; nothing here is shared with the compiled path.
#pragma once
#include "search/Layer.h"

namespace einstruct {

// y[batch, d_out] for x[batch, d_in] (zero-padded or cut to the indices'
// extent, as the layer op specifies), weights in term order.
std::vector<float> naiveForward(const Layer &layer, const float *x,
                                int64_t batch,
                                const std::vector<const float *> &weights);

} // namespace einstruct
