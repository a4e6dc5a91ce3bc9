// µP learning-rate multipliers of the einsum-search reference (structures.md
// §6; their nn/cola_nn.py, AdamW branch). A dense weight of a model scaled
// from a base model gets d_in_base / d_in; a structured layer's core gets
// that times (d_in_layer / fan_in_core) / (number of cores); vectors (bias,
// norm gains) get 1.
#pragma once
#include "Layer.h"

namespace einstruct {

// The dense factor: d_in of the layer in the base model over its d_in here.
double denseLrMultiplier(int64_t dInBase, int64_t dIn);

// The multiplier of each weight of `layer` (weightShapes() order: the cores,
// then BTT-MoE's router, then the bias), the layer standing where a dense
// weight with multiplier `denseMultiplier` stood. The router is a matrix of
// the dense layer's fan-in (denseMultiplier); the bias is a vector (1).
Result<std::vector<double>> lrMultipliers(const Layer &layer,
                                          double denseMultiplier);

} // namespace einstruct
