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
};

int runReport(const ReportOptions &o) {
  auto r = buildReport(o.inputs, "pareto.svg");
  if (!r)
    return fail(r.error());
  if (int rc = makeOutputDirectory(o.dir))
    return rc;
  OutputFiles out;
  out.add(o.dir + "/pareto.svg", r->svg);
  out.add(o.dir + "/report.md", r->markdown);
  if (int rc = commit(out))
    return rc;
  std::printf("wrote %s/report.md and %s/pareto.svg\n", o.dir.c_str(),
              o.dir.c_str());
  return 0;
}

} // namespace

Command addReportCommand(CLI::App &app) {
  auto o = std::make_shared<ReportOptions>();
  auto *report = app.add_subcommand(
      "report", "Markdown summary and SVG Pareto plot of sweep results");
  report->add_option("results", o->inputs, "results JSON-lines file(s)")
      ->required();
  report->add_option("-o,--output", o->dir, "output directory")
      ->capture_default_str();
  return {report, [o] { return runReport(*o); }};
}

} // namespace einstruct::cli
