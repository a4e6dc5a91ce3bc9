// `einstruct report`: a Markdown summary and an SVG plot of the Pareto fronts
// of sweep results (flops vs params relative to dense, coloured by ω, filled
// where ψ = 1).
#pragma once
#include "search/Result.h"

#include <string>
#include <utility>
#include <vector>

namespace einstruct {

struct ReportFiles {
  std::string markdown, svg;
};

// Reads one or more results.jsonl files (e.g. the shards of one sweep).
Result<ReportFiles> buildReport(const std::vector<std::string> &paths,
                                const std::string &svgName);

// The same from the files' text: (name for errors, contents) pairs.
Result<ReportFiles>
buildReportFromText(const std::vector<std::pair<std::string, std::string>> &files,
                    const std::string &svgName);

} // namespace einstruct
