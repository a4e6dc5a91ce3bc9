// Presenting analyses: the JSON object of `analyze --json` and the table.
#pragma once
#include "search/ModelSearch.h"

#include "search/Mixer.h"

#include <nlohmann/json.hpp>

namespace einstruct {

nlohmann::json analysisJson(const Layer &layer, const Analysis &a);

// The analysis plus theta, score, pareto marks and the reason for the rank.
nlohmann::json candidateJson(const Candidate &c);

// A ranked table of search results, best first.
std::string candidateTable(const std::vector<Candidate> &cs, size_t top);

// The per-layer picks of a model search with totals against dense.
std::string modelTable(const ModelResult &r, const std::string &name);
// `search --model --json`: the totals and each layer's pick.
nlohmann::json modelResultJson(const ModelResult &r, const std::string &name);

// A fixed-width table, one row per layer, then the einsum of each row.
std::string analysisTable(const std::vector<Layer> &layers,
                          const std::vector<Analysis> &analyses);

// `analyze --mixer`: one object per mixer, and the table.
nlohmann::json mixerJson(const std::string &label, const MixerAnalysis &a);
std::string mixerTable(const std::vector<std::string> &labels,
                       const std::vector<MixerAnalysis> &analyses);

} // namespace einstruct
