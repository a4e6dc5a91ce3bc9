// The report of a training sweep (structures.md §6): per structure, the
// compute-optimal frontier of its runs (the best learning rate per width,
// seeds averaged), the fitted scaling exponent with its 95 % interval, and
// per compute budget the best structure and its loss relative to dense; an
// SVG of loss against compute, log–log, one colour per (ω, ψ) class.
#pragma once
#include "SweepReport.h"

#include <limits>
#include <nlohmann/json_fwd.hpp>

namespace einstruct {

// What is wrong with a training result line, as "field: problem" (empty
// when nothing is).
std::string badTrainingLine(const nlohmann::json &j);

// From checked training lines (badTrainingLine empty for each).
Result<ReportFiles> scalingReport(const std::vector<nlohmann::json> &rows,
                                  const ScalingOptions &o);

} // namespace einstruct
