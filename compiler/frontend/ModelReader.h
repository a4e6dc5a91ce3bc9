// Reads a model description for model-level search:
// {"name": ..., "layers": [{"name", "d_in", "d_out", "count"}],
//  "budget": {"max_flops_ratio": R} or {"max_flops": N}}
#pragma once
#include "search/ModelSearch.h"

namespace einstruct {

struct ModelSpec {
  std::string name;
  std::vector<ModelLayer> layers;
  std::optional<int64_t> maxFlops;     // total MACs per token
  std::optional<double> maxFlopsRatio; // vs the dense model
};

Result<ModelSpec> readModelFile(const std::string &path);
Result<ModelSpec> readModelJson(const std::string &text,
                                const std::string &source);

} // namespace einstruct
