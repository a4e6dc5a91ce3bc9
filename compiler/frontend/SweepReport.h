// `einstruct report`: a Markdown summary and an SVG plot of the Pareto fronts
// of sweep results (flops vs params relative to dense, coloured by ω, filled
// where ψ = 1).
#pragma once
#include "search/Result.h"

#include <string>
#include <vector>

namespace einstruct {

struct ReportFiles {
  std::string markdown, svg;
};

// Reads one or more results.jsonl files (e.g. the shards of one sweep).
Result<ReportFiles> buildReport(const std::vector<std::string> &paths,
                                const std::string &svgName);

} // namespace einstruct
