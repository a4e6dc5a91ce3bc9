// Presenting analyses: the JSON object of `analyze --json` and the table.
#pragma once
#include "search/Layer.h"

#include <nlohmann/json.hpp>

namespace einstruct {

nlohmann::json analysisJson(const Layer &layer, const Analysis &a);

// A fixed-width table, one row per layer, then the einsum of each row.
std::string analysisTable(const std::vector<Layer> &layers,
                          const std::vector<Analysis> &analyses);

} // namespace einstruct
