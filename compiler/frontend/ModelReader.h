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

// The model's total MAC budget per token: `flops`, else `ratio` × the dense
// model's MACs, else the file's "budget"; an error naming `path` when none
// is given.
Result<int64_t> modelBudget(const ModelSpec &m, const std::string &path,
                            std::optional<int64_t> flops = std::nullopt,
                            std::optional<double> ratio = std::nullopt);
Result<ModelSpec> readModelJson(const std::string &text,
                                const std::string &source);

} // namespace einstruct
