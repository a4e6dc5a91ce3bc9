// Reads structure specs — θ text, einsum strings with sizes, named structures,
// sums of terms — from command-line values or JSON files into Layers.
#pragma once
#include "search/Layer.h"

namespace einstruct {

// One spec as given on the command line; exactly one form must be set.
struct SpecArgs {
  std::optional<std::string> theta, einsum, sizes, structure;
  std::optional<int64_t> dIn, dOut;
  std::string sizing = "round"; // for θ: "round" (reference) or "exact"
};

Result<Layer> layerFromArgs(const SpecArgs &args);

// A JSON file holding one spec object or an array of them. Errors name the
// file, the spec's index and the field (or the byte offset of a syntax error).
Result<std::vector<Layer>> readSpecFile(const std::string &path);

// The same, from JSON text; `source` names it in errors.
Result<std::vector<Layer>> readSpecJson(const std::string &text,
                                        const std::string &source);

} // namespace einstruct
