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
  std::string svgName; // pareto.svg (formula sweeps) or scaling.svg
};

// How a training sweep's scaling fits are made (ScalingReport.h).
struct ScalingOptions {
  // Relative distance above the lower hull still on the frontier
  // (structures.md §6: 5 %; the reference's notebook defaults to 2 %).
  double tolerance = 0.05;
  double lossFloor = 0; // L0 (0 for MSE)
  // The fit's compute window; points of a run's first minStepFraction of
  // steps (the warm-up transient) are left out of the fit.
  double minCompute = 0, maxCompute = 1e300, minStepFraction = 0.1;
  bool testLoss = false; // fit the held-out loss instead of the training loss
};

// Reads one or more results.jsonl files (e.g. the shards of one sweep): the
// lines of a formula sweep or of a training sweep, not both.
Result<ReportFiles> buildReport(const std::vector<std::string> &paths,
                                const ScalingOptions &scaling = {});

// The same from the files' text: (name for errors, contents) pairs.
Result<ReportFiles>
buildReportFromText(const std::vector<std::pair<std::string, std::string>> &files,
                    const ScalingOptions &scaling = {});

} // namespace einstruct
