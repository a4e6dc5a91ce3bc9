// `einstruct report`: a Markdown summary and an SVG Pareto plot of sweep
// results.
#include "Cli.h"
#include "compiler/frontend/SweepReport.h"

#include <cstdio>
#include <fmt/format.h>

namespace einstruct::cli {
namespace {

struct ReportOptions {
  std::vector<std::string> inputs;
  std::string dir = "report";
  ScalingOptions scaling;
};

int runReport(const ReportOptions &o) {
  auto r = buildReport(o.inputs, o.scaling);
  if (!r)
    return fail(r.error());
  if (int rc = makeOutputDirectory(o.dir))
    return rc;
  OutputFiles out;
  out.add(o.dir + "/" + r->svgName, r->svg);
  out.add(o.dir + "/report.md", r->markdown);
  if (int rc = commit(out))
    return rc;
  std::printf("wrote %s/report.md and %s/%s\n", o.dir.c_str(), o.dir.c_str(),
              r->svgName.c_str());
  return 0;
}

} // namespace

Command addReportCommand(CLI::App &app) {
  auto o = std::make_shared<ReportOptions>();
  auto *report = app.add_subcommand(
      "report", "Markdown summary and SVG plot of sweep results: Pareto "
                "fronts (formula sweeps) or scaling curves, frontiers and "
                "fitted exponents (training sweeps)");
  report->add_option("results", o->inputs, "results JSON-lines file(s)")
      ->required();
  report->add_option("-o,--output", o->dir, "output directory")
      ->capture_default_str();
  auto &sc = o->scaling;
  report->add_option("--frontier-tolerance", sc.tolerance,
                     "training sweeps: relative distance above the lower "
                     "hull still on the frontier")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  report->add_option("--loss-floor", sc.lossFloor,
                     "training sweeps: L0 in log(loss - L0)")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  report->add_option("--fit-min-compute", sc.minCompute,
                     "training sweeps: the fit's compute window, low end")
      ->check(CLI::Range(0.0, 1e300));
  report->add_option("--fit-max-compute", sc.maxCompute,
                     "training sweeps: the fit's compute window, high end")
      ->check(CLI::Range(0.0, 1e300));
  report->add_option("--skip-steps", sc.minStepFraction,
                     "training sweeps: share of each run's first steps left "
                     "out of the fit")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  report->add_flag("--test-loss", sc.testLoss,
                   "training sweeps: fit the held-out loss");
  return {report, [o] { return runReport(*o); }};
}

} // namespace einstruct::cli
