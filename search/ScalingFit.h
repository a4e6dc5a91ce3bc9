// Scaling-law fits as the einsum-search reference makes them (structures.md
// §6; their figures/scaling_laws_mlp.ipynb): the compute-optimal frontier of
// a structure's runs is the lower convex hull of (compute, loss) in log–log
// space plus the points within a tolerance of it, kept where the loss still
// falls; log(loss − L0) = −a·log(compute) + b is fitted to it by least
// squares inside a compute window, a being the scaling exponent.
#pragma once
#include "Result.h"

#include <cstddef>
#include <vector>

namespace einstruct {

struct ScalingPoint {
  double compute = 0, loss = 0;
  size_t run = 0; // which run it came from (for plotting)
};

// The frontier of `points` (compute and loss > 0), sorted by compute.
// `tolerance`: relative distance above the hull still counted on it.
std::vector<ScalingPoint> scalingFrontier(std::vector<ScalingPoint> points,
                                          double tolerance);

struct PowerLawFit {
  double exponent = 0;  // a
  double intercept = 0; // b
  double stdError = 0;  // of a
  double ciLow = 0, ciHigh = 0; // 95 % confidence interval of a
  double r2 = 0;
  size_t n = 0;         // points fitted
};

// Fits the points with minCompute <= compute <= maxCompute and loss > L0;
// an error when fewer than three remain.
Result<PowerLawFit> fitPowerLaw(const std::vector<ScalingPoint> &points,
                                double lossFloor, double minCompute,
                                double maxCompute);

// The frontier's loss at `compute`, interpolated linearly in log–log space;
// NaN outside its compute range.
double frontierLossAt(const std::vector<ScalingPoint> &frontier,
                      double compute);

// The two-sided 95 % quantile of Student's t with `df` degrees of freedom.
double studentT975(size_t df);

} // namespace einstruct
