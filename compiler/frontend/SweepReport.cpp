#include "SweepReport.h"
#include "JsonFile.h"
#include "LogLogPlot.h"
#include "ScalingReport.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

namespace einstruct {

using nlohmann::json;

namespace {

struct Point {
  double x, y; // flops and params relative to dense
  double omega;
  bool fullRank;
};

bool isCount(const json &v) { return v.is_number_integer() && v.get<int64_t>() >= 0; }

// What is wrong with the fields of a result line the report reads, as
// "field: problem" (empty when nothing is).
std::string badResultLine(const json &j) {
  for (const char *k : {"row", "front", "top"})
    if (!j.contains(k))
      return fmt::format("{}: missing", k);
  if (!j["row"].is_number_unsigned())
    return "row: must be a whole number >= 0";
  for (const char *k : {"d_in", "d_out"})
    if (j.contains(k) && !(j[k].is_number_integer() && j[k].get<int64_t>() > 0))
      return fmt::format("{}: must be a positive whole number", k);
  if (j.contains("feasible") && !isCount(j["feasible"]))
    return "feasible: must be a whole number >= 0";
  for (const char *k : {"budget_label", "objective"})
    if (j.contains(k) && !j[k].is_string())
      return fmt::format("{}: must be a string", k);
  auto badCandidate = [](const json &c, const std::string &where) {
    if (!c.is_object())
      return where + ": must be an object";
    for (const char *k : {"params", "flops"})
      if (c.contains(k) && !isCount(c[k]))
        return fmt::format("{}.{}: must be a whole number >= 0", where, k);
    for (const char *k : {"omega", "psi", "nu"})
      if (c.contains(k) && !c[k].is_number() && !c[k].is_null())
        return fmt::format("{}.{}: must be a number or null", where, k);
    if (c.contains("name") && !c["name"].is_string())
      return where + ".name: must be a string";
    // Sizes a, b, g, d, e, f, r: by name (top), as 7 numbers (front), or
    // null outside the θ-space.
    if (c.contains("sizes") && !c["sizes"].is_null()) {
      const json &z = c["sizes"];
      if (z.is_array()) {
        if (z.size() != 7)
          return where + ".sizes: must hold 7 sizes (a, b, g, d, e, f, r)";
        for (size_t i = 0; i < 7; ++i)
          if (!z[i].is_number_integer() && !z[i].is_null())
            return fmt::format("{}.sizes[{}]: must be a whole number or null",
                               where, i);
      } else if (z.is_object()) {
        for (const char *k : {"a", "b", "g", "d", "e", "f", "r"})
          if (!z.contains(k) || !(z[k].is_number_integer() || z[k].is_null()))
            return fmt::format("{}.sizes.{}: must be a whole number or null",
                               where, k);
      } else {
        return where + ".sizes: must be an object, 7 numbers or null";
      }
    }
    return std::string();
  };
  for (const char *k : {"front", "top"}) {
    if (!j[k].is_array())
      return fmt::format("{}: must be an array", k);
    for (size_t i = 0; i < j[k].size(); ++i)
      if (std::string bad = badCandidate(j[k][i], fmt::format("{}[{}]", k, i));
          !bad.empty())
        return bad;
  }
  return "";
}

} // namespace

Result<ReportFiles> buildReport(const std::vector<std::string> &paths,
                                const ScalingOptions &scaling) {
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto &p : paths) {
    auto text = readTextFile(p);
    if (!text)
      return Error{text.error()};
    files.emplace_back(p, std::move(*text));
  }
  return buildReportFromText(files, scaling);
}

Result<ReportFiles>
buildReportFromText(const std::vector<std::pair<std::string, std::string>> &files,
                    const ScalingOptions &scaling) {
  const std::string svgName = "pareto.svg";
  std::map<int64_t, json> rows; // by row index: shards merge in order
  size_t training = 0, formula = 0; // lines of each kind
  for (const auto &[p, text] : files) {
    // Whole lines only: a torn last line (a killed sweep's) is left out, as
    // sweep itself cuts it before resuming.
    const size_t complete = text.rfind('\n');
    size_t n = 0;
    for (size_t pos = 0; complete != std::string::npos && pos <= complete;) {
      const size_t nl = text.find('\n', pos);
      const std::string line = text.substr(pos, nl - pos);
      pos = nl + 1;
      ++n;
      if (line.empty())
        continue;
      if (auto deep = jsonTooDeep(line))
        return Error{fmt::format("{}:{}: nested deeper than {} levels at "
                                 "byte {} of the line",
                                 p, n, kMaxJsonDepth, *deep + 1)};
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object())
        return Error{fmt::format("{}:{}: not a sweep result line", p, n)};
      bool train = j.contains("kind") && j["kind"] == "train";
      std::string bad = train ? badTrainingLine(j) : badResultLine(j);
      if (!bad.empty())
        return Error{fmt::format("{}:{}: {}", p, n, bad)};
      if (train ? formula > 0 : training > 0)
        return Error{fmt::format("{}:{}: a {} sweep's line among a {} "
                                 "sweep's; report them apart",
                                 p, n, train ? "training" : "formula",
                                 train ? "formula" : "training")};
      (train ? training : formula) += 1;
      rows[j["row"].get<int64_t>()] = j;
    }
  }
  if (rows.empty())
    return Error{"no sweep results to report"};
  if (training) {
    std::vector<json> lines;
    for (auto &[i, j] : rows)
      lines.push_back(std::move(j));
    return scalingReport(lines, scaling);
  }
  std::string md = "# einstruct sweep report\n\n";
  md += fmt::format("{} rows. MACs are multiply-adds per input vector; "
                    "ratios are against the dense d_in×d_out layer.\n\n",
                    rows.size());
  md += "| shape | budget | objective | feasible | best | sizes a,b,g,d,e,f,r "
        "| params | MACs | MACs/dense | ω | ψ | ν |\n";
  md += "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  std::vector<std::vector<Point>> fronts;
  std::set<std::string> seenFronts;
  for (auto &[idx, j] : rows) {
    double dense = double(j.value("d_in", 1)) * double(j.value("d_out", 1));
    std::string shape =
        fmt::format("{}×{}", j.value("d_in", 0), j.value("d_out", 0));
    std::string budget = j.value("budget_label", std::string("{}"));
    if (j["top"].empty()) {
      md += fmt::format("| {} | {} | {} | 0 | — | | | | | | | |\n", shape,
                        budget, j.value("objective", ""));
    } else {
      const json &b = j["top"][0];
      std::string sizes;
      const json none;
      const json &z = b.contains("sizes") ? b["sizes"] : none;
      int i = 0;
      for (const char *k : {"a", "b", "g", "d", "e", "f", "r"})
        sizes += (sizes.empty() ? "" : ",") +
                 (z.is_object()  ? z[k].dump()
                  : z.is_array() ? z[size_t(i++)].dump()
                                 : std::string("—"));
      auto num = [](const json &v) {
        return v.is_number() ? fmt::format("{:.3g}", v.get<double>())
                             : std::string("—");
      };
      md += fmt::format(
          "| {} | {} | {} | {} | {} | {} | {} | {} | {:.3g} | {} | {} | {} |\n",
          shape, budget, j.value("objective", ""), j.value("feasible", 0),
          b.value("name", ""), sizes, b.value("params", int64_t(0)),
          b.value("flops", int64_t(0)),
          double(b.value("flops", int64_t(0))) / dense,
          num(b.value("omega", json())), num(b.value("psi", json())),
          num(b.value("nu", json())));
    }
    // One front per (shape, budget): objectives do not change it.
    if (!seenFronts.insert(shape + "|" + budget).second)
      continue;
    std::vector<Point> f;
    for (auto &p : j["front"]) {
      double x = double(p.value("flops", int64_t(1))) / dense;
      double y = double(p.value("params", int64_t(1))) / dense;
      const json omegaV = p.value("omega", json()), psiV = p.value("psi", json());
      double omega = omegaV.is_number() ? omegaV.get<double>() : 0;
      bool full = psiV.is_number() && psiV.get<double>() > 1 - 1e-9;
      if (x > 0 && y > 0)
        f.push_back({x, y, omega, full});
    }
    if (!f.empty())
      fronts.push_back(f);
  }
  // Log-log axes spanning every point.
  double xlo = 1, xhi = 1, ylo = 1, yhi = 1;
  for (auto &f : fronts)
    for (auto &p : f) {
      xlo = std::min(xlo, p.x), xhi = std::max(xhi, p.x);
      ylo = std::min(ylo, p.y), yhi = std::max(yhi, p.y);
    }
  LogLogPlot plot(xlo, xhi, ylo, yhi);
  auto px = [&](double x) { return plot.px(x); };
  auto py = [&](double y) { return plot.py(y); };
  std::string svg = plot.begin(
      fmt::format("Pareto fronts: MACs vs params (relative to dense), {} "
                  "fronts",
                  fronts.size()),
      "MACs / dense MACs", "params / dense params");
  for (auto &f : fronts) {
    std::string pts;
    for (auto &p : f)
      pts += fmt::format("{:.1f},{:.1f} ", px(p.x), py(p.y));
    svg += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"#999\" "
                       "stroke-width=\"1\"/>\n",
                       pts);
    for (auto &p : f) {
      std::string c = omegaColour(p.omega);
      svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" "
                         "stroke=\"{}\" fill=\"{}\"/>\n",
                         px(p.x), py(p.y), c, p.fullRank ? c : "white");
    }
  }
  // Legend: ω colours, ψ fill.
  const double lx = plot.legendX(), T = plot.legendY() - 10;
  svg += fmt::format("<text x=\"{}\" y=\"{}\">ω (sharing)</text>\n", lx, T + 10);
  for (int k = 0; k <= 4; ++k) {
    double om = k / 4.0;
    svg += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"5\" fill=\"{}\"/>"
                       "<text x=\"{}\" y=\"{}\" dominant-baseline=\"middle\">"
                       "{:g}</text>\n",
                       lx + 6, T + 30 + k * 18, omegaColour(om), lx + 18,
                       T + 30 + k * 18, om);
  }
  svg += fmt::format("<circle cx=\"{0}\" cy=\"{1}\" r=\"5\" fill=\"#555\"/>"
                     "<text x=\"{2}\" y=\"{1}\" dominant-baseline=\"middle\">"
                     "ψ = 1 (full rank)</text>\n"
                     "<circle cx=\"{0}\" cy=\"{3}\" r=\"5\" fill=\"white\" "
                     "stroke=\"#555\"/><text x=\"{2}\" y=\"{3}\" "
                     "dominant-baseline=\"middle\">ψ &lt; 1</text>\n",
                     lx + 6, T + 140, lx + 18, T + 160);
  svg += "</svg>\n";
  md += fmt::format("\n![Pareto fronts]({})\n\nEach line is the (fewest MACs, "
                    "most params) front of one shape and budget; colour is ω, "
                    "a filled marker means ψ = 1.\n",
                    svgName);
  return ReportFiles{md, svg, svgName};
}

} // namespace einstruct
