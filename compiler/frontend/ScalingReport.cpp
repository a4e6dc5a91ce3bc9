#include "ScalingReport.h"
#include "LogLogPlot.h"
#include "search/ScalingFit.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

namespace einstruct {

using nlohmann::json;

std::string badTrainingLine(const json &j) {
  for (const char *k : {"row", "key", "structure", "width", "lr", "seed",
                        "steps", "curve"})
    if (!j.contains(k))
      return fmt::format("{}: missing", k);
  if (!j["row"].is_number_unsigned())
    return "row: must be a whole number >= 0";
  for (const char *k : {"key", "structure"})
    if (!j[k].is_string())
      return fmt::format("{}: must be a string", k);
  for (const char *k : {"width", "steps"})
    if (!j[k].is_number_integer() || j[k].get<int64_t>() < 1)
      return fmt::format("{}: must be a whole number >= 1", k);
  if (!j["lr"].is_number() || !(j["lr"].get<double>() > 0) ||
      !std::isfinite(j["lr"].get<double>()))
    return "lr: must be a finite number > 0";
  if (!j["seed"].is_number_unsigned())
    return "seed: must be a whole number >= 0";
  auto finite = [](const json &v) {
    return v.is_number() && std::isfinite(v.get<double>());
  };
  for (const char *k : {"omega", "psi", "nu"})
    if (j.contains(k) && !finite(j[k]) && !j[k].is_null())
      return fmt::format("{}: must be a finite number or null", k);
  if (j.contains("theta") && !j["theta"].is_string() && !j["theta"].is_null())
    return "theta: must be a string or null";
  const json &c = j["curve"];
  if (!c.is_array())
    return "curve: must be an array of [step, compute, train loss, test loss]";
  for (size_t i = 0; i < c.size(); ++i) {
    const json &p = c[i];
    if (!p.is_array() || p.size() != 4 || !p[0].is_number_integer() ||
        !finite(p[1]) || !(finite(p[2]) || p[2].is_null()) ||
        !(finite(p[3]) || p[3].is_null()) || p[1].get<double>() < 0)
      return fmt::format("curve[{}]: must be [step, compute >= 0, train loss "
                         "or null, test loss or null], finite numbers",
                         i);
  }
  return "";
}

namespace {

// One (structure, width, lr) run, its seeds' curves averaged.
struct Run {
  int64_t width = 0, steps = 0;
  double lr = 0;
  size_t seeds = 0;
  std::vector<int64_t> step;
  std::vector<double> compute, loss; // loss NaN where a seed had none
  double final() const {
    for (size_t i = loss.size(); i-- > 0;)
      if (std::isfinite(loss[i]))
        return i + 1 == loss.size() ? loss[i] : INFINITY;
    return INFINITY;
  }
};

struct Structure {
  std::string label, theta;
  std::set<double> lrs; // the grid its runs used
  std::optional<double> omega, psi, nu;
  std::map<std::pair<int64_t, double>, Run> runs; // (width, lr)
  std::vector<const Run *> chosen;                // best lr per width
  std::vector<ScalingPoint> frontier;
  std::optional<PowerLawFit> fit;
  std::string fitError;
};

bool isDense(const Structure &s) {
  return s.label == "dense" ||
         (s.omega && s.psi && s.nu && *s.omega < 1e-9 && *s.psi > 1 - 1e-9 &&
          *s.nu > 1 - 1e-9);
}

// Table cells: '|' (θ text) escaped, line breaks as spaces.
std::string cell(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  for (size_t i = 0; (i = s.find('|', i)) != std::string::npos; i += 2)
    s.insert(i, "\\");
  return s;
}

std::string num(std::optional<double> v) {
  return v ? fmt::format("{:.3g}", *v) : std::string("–");
}

// Marker i: a circle, square, triangle or diamond.
std::string drawMarker(size_t i, double x, double y, const std::string &c,
                       bool filled) {
  std::string fill = filled ? c : "white";
  switch (i % 4) {
  case 0:
    return fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" "
                       "stroke=\"{}\" fill=\"{}\"/>",
                       x, y, c, fill);
  case 1:
    return fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"8\" "
                       "height=\"8\" stroke=\"{}\" fill=\"{}\"/>",
                       x - 4, y - 4, c, fill);
  case 2:
    return fmt::format("<polygon points=\"{:.1f},{:.1f} {:.1f},{:.1f} "
                       "{:.1f},{:.1f}\" stroke=\"{}\" fill=\"{}\"/>",
                       x, y - 5, x - 5, y + 4, x + 5, y + 4, c, fill);
  default:
    return fmt::format("<polygon points=\"{:.1f},{:.1f} {:.1f},{:.1f} "
                       "{:.1f},{:.1f} {:.1f},{:.1f}\" stroke=\"{}\" "
                       "fill=\"{}\"/>",
                       x, y - 5, x + 5, y, x, y + 5, x - 5, y, c, fill);
  }
}

} // namespace

Result<ReportFiles> scalingReport(const std::vector<json> &rows,
                                  const ScalingOptions &o) {
  std::vector<Structure> structures;
  std::map<std::string, size_t> byLabel;
  const int column = o.testLoss ? 3 : 2;
  for (const json &j : rows) {
    std::string label = j["structure"].get<std::string>();
    auto [it, fresh] = byLabel.emplace(label, structures.size());
    if (fresh) {
      Structure s;
      s.label = label;
      s.theta = j.value("theta", json()).is_string()
                    ? j["theta"].get<std::string>()
                    : std::string();
      for (auto [k, p] : {std::pair{"omega", &s.omega}, {"psi", &s.psi},
                          {"nu", &s.nu}})
        if (j.contains(k) && j[k].is_number())
          *p = j[k].get<double>();
      structures.push_back(s);
    }
    Structure &s = structures[it->second];
    Run &r = s.runs[{j["width"].get<int64_t>(), j["lr"].get<double>()}];
    s.lrs.insert(j["lr"].get<double>());
    r.width = j["width"].get<int64_t>();
    r.lr = j["lr"].get<double>();
    r.steps = j["steps"].get<int64_t>();
    const json &c = j["curve"];
    if (r.seeds == 0) {
      for (const auto &p : c) {
        r.step.push_back(p[0].get<int64_t>());
        r.compute.push_back(p[1].get<double>());
        r.loss.push_back(p[column].is_number() ? p[column].get<double>()
                                               : NAN);
      }
    } else {
      // Seeds average where their steps agree; a shorter (diverged) curve
      // leaves the rest NaN.
      for (size_t i = 0; i < r.step.size(); ++i) {
        double v = i < c.size() && c[i][0] == r.step[i] &&
                           c[i][column].is_number()
                       ? c[i][column].get<double>()
                       : NAN;
        r.loss[i] = (r.loss[i] * double(r.seeds) + v) / double(r.seeds + 1);
      }
    }
    ++r.seeds;
  }
  // Per structure: the best lr per width, the frontier, the fit.
  for (Structure &s : structures) {
    std::map<int64_t, const Run *> best;
    for (auto &[key, r] : s.runs)
      if (!best.count(r.width) || r.final() < best[r.width]->final())
        best[r.width] = &r;
    std::vector<ScalingPoint> points;
    for (auto &[w, r] : best) {
      s.chosen.push_back(r);
      for (size_t i = 0; i < r->step.size(); ++i)
        if (double(r->step[i]) >= o.minStepFraction * double(r->steps) &&
            std::isfinite(r->loss[i]) && r->loss[i] > o.lossFloor)
          points.push_back({r->compute[i], r->loss[i] - o.lossFloor,
                            size_t(w)});
    }
    s.frontier = scalingFrontier(points, o.tolerance);
    for (auto &p : s.frontier)
      p.loss += o.lossFloor;
    auto fit = fitPowerLaw(s.frontier, o.lossFloor, o.minCompute, o.maxCompute);
    if (fit)
      s.fit = *fit;
    else
      s.fitError = fit.error();
  }
  const Structure *dense = nullptr;
  for (const Structure &s : structures)
    if (isDense(s) && (!dense || s.label == "dense"))
      dense = &s;

  std::string md = "# einstruct training sweep report\n\n";
  md += fmt::format(
      "{} runs of {} structures. Compute is forward multiply-adds × tokens "
      "(the reference's count); loss is the {} loss ({} per logged interval); "
      "per structure and width the learning rate with the lowest final loss "
      "is kept, seeds averaged. The frontier is the lower convex hull of "
      "(compute, loss) in log–log space plus points within {:g} % of it; "
      "the fit is log(loss − {:g}) = −a·log(compute) + b over the frontier "
      "points past the first {:g} % of each run's steps, a's interval 95 % "
      "(Student's t).\n\n",
      rows.size(), structures.size(), o.testLoss ? "held-out" : "training",
      o.testLoss ? "at the end" : "averaged", o.tolerance * 100, o.lossFloor,
      o.minStepFraction * 100);
  md += "| structure | θ | ω | ψ | ν | widths (best lr) | final loss at the "
        "largest width | exponent a | 95 % interval | frontier points | r² "
        "|\n|---|---|---|---|---|---|---|---|---|---|---|\n";
  bool edges = false;
  for (const Structure &s : structures) {
    std::string widths;
    for (const Run *r : s.chosen) {
      // A best lr at the end of a grid of several may not be the best.
      bool edge = s.lrs.size() > 1 &&
                  (r->lr == *s.lrs.begin() || r->lr == *s.lrs.rbegin());
      edges |= edge;
      widths += fmt::format("{}{} ({:g}{})", widths.empty() ? "" : ", ",
                            r->width, r->lr, edge ? "*" : "");
    }
    double last = s.chosen.empty() ? NAN : s.chosen.back()->final();
    md += fmt::format(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        cell(s.label), s.theta.empty() ? "–" : cell(s.theta), num(s.omega), num(s.psi), num(s.nu),
        widths, std::isfinite(last) ? fmt::format("{:.4g}", last) : "diverged",
        s.fit ? fmt::format("{:.3f}", s.fit->exponent) : "–",
        s.fit ? fmt::format("[{:.3f}, {:.3f}]", s.fit->ciLow, s.fit->ciHigh)
              : s.fitError,
        s.frontier.size(), s.fit ? fmt::format("{:.3f}", s.fit->r2) : "–");
  }
  if (edges)
    md += "\n\\* the best learning rate is at an end of the grid: a wider "
          "grid may find a better one.\n";
  // Per compute budget: log-spaced over the frontiers' common range.
  double lo = 0, hi = INFINITY;
  for (const Structure &s : structures)
    if (!s.frontier.empty()) {
      lo = std::max(lo, s.frontier.front().compute);
      hi = std::min(hi, s.frontier.back().compute);
    }
  md += "\n## Best structure per compute budget\n\n";
  if (!(lo > 0 && hi >= lo)) {
    md += "The structures' frontiers share no compute range.\n";
  } else {
    md += fmt::format("Frontier losses interpolated in log–log space at five "
                      "budgets over the range every frontier covers; "
                      "relative to {}.\n\n| compute (MACs) | best | loss |",
                      dense ? "'" + dense->label + "'" : "dense (none in the "
                                                          "sweep)");
    for (const Structure &s : structures)
      md += " " + cell(s.label) + " |";
    md += "\n|---|---|---|";
    for (size_t i = 0; i < structures.size(); ++i)
      md += "---|";
    md += "\n";
    for (int k = 0; k < 5; ++k) {
      double c = lo * std::pow(hi / lo, k / 4.0);
      double denseLoss = dense ? frontierLossAt(dense->frontier, c) : NAN;
      const Structure *win = nullptr;
      double winLoss = INFINITY;
      std::string cells;
      for (const Structure &s : structures) {
        double l = frontierLossAt(s.frontier, c);
        if (l < winLoss)
          winLoss = l, win = &s;
        cells += std::isfinite(denseLoss)
                     ? fmt::format(" {:.4g} ({:.2f}×) |", l, l / denseLoss)
                     : fmt::format(" {:.4g} |", l);
      }
      md += fmt::format("| {:.3g} | {} | {:.4g} |{}\n", c,
                        win ? cell(win->label) : "–", winLoss, cells);
    }
  }
  // The plot: every kept run faint, frontiers bold, colour ω, filled ψ = 1.
  double xlo = INFINITY, xhi = 0, ylo = INFINITY, yhi = 0;
  for (const Structure &s : structures)
    for (const Run *r : s.chosen)
      for (size_t i = 0; i < r->step.size(); ++i)
        if (std::isfinite(r->loss[i]) && r->loss[i] > 0 && r->compute[i] > 0) {
          xlo = std::min(xlo, r->compute[i]), xhi = std::max(xhi, r->compute[i]);
          ylo = std::min(ylo, r->loss[i]), yhi = std::max(yhi, r->loss[i]);
        }
  if (!(xhi > 0))
    xlo = xhi = ylo = yhi = 1;
  LogLogPlot plot(xlo, xhi, ylo, yhi, 860, 560, 330);
  std::string svg =
      plot.begin(fmt::format("Loss against compute: {} structures, their "
                             "frontiers and fits",
                             structures.size()),
                 "compute (forward MACs × tokens)",
                 o.testLoss ? "held-out loss" : "training loss");
  for (size_t si = 0; si < structures.size(); ++si) {
    const Structure &s = structures[si];
    std::string colour = omegaColour(s.omega.value_or(0));
    bool full = s.psi && *s.psi > 1 - 1e-9;
    for (const Run *r : s.chosen) {
      std::string pts;
      for (size_t i = 0; i < r->step.size(); ++i)
        if (std::isfinite(r->loss[i]) && r->loss[i] > 0 && r->compute[i] > 0)
          pts += fmt::format("{:.1f},{:.1f} ", plot.px(r->compute[i]),
                             plot.py(r->loss[i]));
      svg += fmt::format("<polyline points=\"{}\" fill=\"none\" "
                         "stroke=\"{}\" stroke-opacity=\"0.3\" "
                         "stroke-width=\"1\"/>\n",
                         pts, colour);
    }
    std::string pts;
    for (const auto &p : s.frontier)
      pts += fmt::format("{:.1f},{:.1f} ", plot.px(p.compute), plot.py(p.loss));
    svg += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" "
                       "stroke-width=\"2.5\"{}/>\n",
                       pts, colour,
                       full ? "" : " stroke-dasharray=\"6,3\"");
    for (const auto &p : s.frontier)
      svg += drawMarker(si, plot.px(p.compute), plot.py(p.loss), colour, full) +
             "\n";
  }
  double lx = plot.legendX(), ly = plot.legendY();
  svg += fmt::format("<text x=\"{}\" y=\"{}\">frontier (exponent a ± "
                     "95 %)</text>\n",
                     lx, ly);
  for (size_t si = 0; si < structures.size(); ++si) {
    const Structure &s = structures[si];
    double y = ly + 22 + double(si) * 36;
    std::string colour = omegaColour(s.omega.value_or(0));
    svg += drawMarker(si, lx + 6, y, colour, s.psi && *s.psi > 1 - 1e-9);
    svg += fmt::format(
        "<text x=\"{}\" y=\"{}\" dominant-baseline=\"middle\">{}</text>"
        "<text x=\"{}\" y=\"{}\" dominant-baseline=\"middle\" "
        "fill=\"#555\">ω={} ψ={} ν={}{}</text>\n",
        lx + 18, y, xmlEscape(s.label), lx + 18, y + 15, num(s.omega),
        num(s.psi),
        num(s.nu),
        s.fit ? fmt::format(", a={:.3f}±{:.3f}", s.fit->exponent,
                            (s.fit->ciHigh - s.fit->ciLow) / 2)
              : std::string());
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#555\">colour: ω; open "
                     "markers, dashed: ψ &lt; 1</text>\n",
                     lx, ly + 30 + double(structures.size()) * 36);
  svg += "</svg>\n";
  md += "\n![Loss against compute](scaling.svg)\n";
  return ReportFiles{md, svg, "scaling.svg"};
}

} // namespace einstruct
