#include "ScalingFit.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <limits>

namespace einstruct {

namespace {

double cross(const ScalingPoint &o, const ScalingPoint &a,
             const ScalingPoint &b) {
  return (std::log(a.compute) - std::log(o.compute)) *
             (std::log(b.loss) - std::log(o.loss)) -
         (std::log(a.loss) - std::log(o.loss)) *
             (std::log(b.compute) - std::log(o.compute));
}

bool byCompute(const ScalingPoint &a, const ScalingPoint &b) {
  return a.compute != b.compute ? a.compute < b.compute : a.loss < b.loss;
}

} // namespace

std::vector<ScalingPoint> scalingFrontier(std::vector<ScalingPoint> points,
                                          double tolerance) {
  points.erase(std::remove_if(points.begin(), points.end(),
                              [](const ScalingPoint &p) {
                                return !(p.compute > 0) || !(p.loss > 0) ||
                                       !std::isfinite(p.compute) ||
                                       !std::isfinite(p.loss);
                              }),
               points.end());
  std::sort(points.begin(), points.end(), byCompute);
  // Andrew's monotone chain, lower half, in log–log space.
  std::vector<ScalingPoint> hull;
  for (const auto &p : points) {
    if (!hull.empty() && hull.back().compute == p.compute)
      continue; // the lower loss at this compute came first
    while (hull.size() >= 2 && cross(hull[hull.size() - 2], hull.back(), p) <= 0)
      hull.pop_back();
    hull.push_back(p);
  }
  if (hull.empty())
    return hull;
  // Points within the tolerance of the hull join it.
  std::vector<ScalingPoint> near;
  for (const auto &p : points) {
    double onHull = frontierLossAt(hull, p.compute);
    if (std::isfinite(onHull) && p.loss / onHull - 1 <= tolerance)
      near.push_back(p);
  }
  // Kept where the loss falls from the point before (the reference's
  // improve_pareto_front), the first point always.
  std::vector<ScalingPoint> front;
  for (size_t i = 0; i < near.size(); ++i)
    if (i == 0 || (near[i].loss < near[i - 1].loss &&
                   near[i].compute > near[i - 1].compute))
      front.push_back(near[i]);
  return front;
}

double frontierLossAt(const std::vector<ScalingPoint> &f, double compute) {
  if (f.empty() || compute < f.front().compute || compute > f.back().compute)
    return std::numeric_limits<double>::quiet_NaN();
  auto hi = std::lower_bound(f.begin(), f.end(), compute,
                             [](const ScalingPoint &p, double c) {
                               return p.compute < c;
                             });
  if (hi->compute == compute || hi == f.begin())
    return hi->loss;
  auto lo = hi - 1;
  double t = (std::log(compute) - std::log(lo->compute)) /
             (std::log(hi->compute) - std::log(lo->compute));
  return std::exp(std::log(lo->loss) +
                  t * (std::log(hi->loss) - std::log(lo->loss)));
}

double studentT975(size_t df) {
  static const double table[] = {
      0,      12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306,
      2.262,  2.228,  2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110,
      2.101,  2.093,  2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
      2.052,  2.048,  2.045, 2.042};
  if (df == 0)
    return std::numeric_limits<double>::infinity();
  if (df <= 30)
    return table[df];
  // 40: 2.021, 60: 2.000, 120: 1.980, ∞: 1.960 — linear in 1/df between.
  const double knots[][2] = {{30, 2.042}, {40, 2.021}, {60, 2.000},
                             {120, 1.980}, {1e300, 1.960}};
  for (int i = 0; i < 4; ++i)
    if (double(df) <= knots[i + 1][0]) {
      double u = (1 / knots[i][0] - 1 / double(df)) /
                 (1 / knots[i][0] - 1 / knots[i + 1][0]);
      return knots[i][1] + u * (knots[i + 1][1] - knots[i][1]);
    }
  return 1.960;
}

Result<PowerLawFit> fitPowerLaw(const std::vector<ScalingPoint> &points,
                                double lossFloor, double minCompute,
                                double maxCompute) {
  std::vector<double> xs, ys;
  for (const auto &p : points)
    if (p.compute >= minCompute && p.compute <= maxCompute &&
        p.loss > lossFloor && p.compute > 0 && std::isfinite(p.loss)) {
      xs.push_back(std::log(p.compute));
      ys.push_back(std::log(p.loss - lossFloor));
    }
  const size_t n = xs.size();
  if (n < 3)
    return Error{fmt::format("{} frontier points in the compute window; a fit "
                             "needs at least 3",
                             n)};
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i)
    mx += xs[i], my += ys[i];
  mx /= double(n), my /= double(n);
  double sxx = 0, sxy = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxx += (xs[i] - mx) * (xs[i] - mx);
    sxy += (xs[i] - mx) * (ys[i] - my);
    syy += (ys[i] - my) * (ys[i] - my);
  }
  if (sxx <= 0)
    return Error{"the frontier points in the compute window all have the "
                 "same compute"};
  double slope = sxy / sxx;
  double ssr = std::max(0.0, syy - slope * sxy);
  PowerLawFit f;
  f.n = n;
  f.exponent = -slope;
  f.intercept = my - slope * mx;
  f.stdError = std::sqrt(ssr / double(n - 2) / sxx);
  double t = studentT975(n - 2);
  f.ciLow = f.exponent - t * f.stdError;
  f.ciHigh = f.exponent + t * f.stdError;
  f.r2 = syy > 0 ? 1 - ssr / syy : 1;
  return f;
}

} // namespace einstruct
