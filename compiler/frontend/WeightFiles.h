// Weight files that say which layer they belong to. Shape-compatible weights
// of another layer or layout compute wrong outputs silently (Monarch with
// the block index last in y has the very shapes of einstruct's), so what
// einstruct writes names its layer — in a safetensors file's __metadata__,
// beside .npy files in DIR/einstruct.json — and reading weights for a layer
// checks that name when the file has one.
#pragma once
#include "search/Layer.h"
#include "Npy.h"

#include <map>

namespace einstruct {

// The layer as weight files name it: each term's einsum and sizes (terms
// joined by " + "), d_in, d_out, and experts/top_k for BTT-MoE, e.g.
// "ga,fga,feg->fe a=8,e=8,f=8,g=8 d_in=64 d_out=64".
std::string layerSignature(const Layer &layer);

// The safetensors __metadata__ of weights written for `layer`.
std::map<std::string, std::string> weightMetadata(const Layer &layer);

// DIR/einstruct.json for .npy weights `files` (names within DIR).
constexpr const char *kWeightSidecar = "einstruct.json";
std::string weightSidecar(const Layer &layer,
                          const std::vector<std::string> &files);

// The array `spec` names (as readArrayFile), checked against what its file
// says it was written for, when it says: an error naming both layers, or a
// layout other than the layer's.
Result<NpyArray> readWeightFile(const std::string &spec, const Layer &layer);

} // namespace einstruct
