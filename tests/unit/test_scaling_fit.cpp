// Scaling fits (search/ScalingFit.h): the frontier is the lower hull in
// log–log space within a tolerance, the power-law fit recovers a known
// exponent from noisy curves, and its interval covers it.
#include "search/ScalingFit.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>

using namespace einstruct;

TEST_CASE("the frontier is the lower hull, near points, loss falling",
          "[scaling]") {
  std::vector<ScalingPoint> pts = {
      {1, 10, 0},    {10, 3, 0},  {100, 1, 1}, // the hull
      {10, 8, 1},                              // far above it
      {100, 1.04, 2},                          // within 5 % of it
      {31.6227766, 1.85, 2},                   // above the hull's √3 there
      {1000, 1.5, 2}};                         // a hull vertex, loss rising
  auto f = scalingFrontier(pts, 0.05);
  // Hull: (1,10), (10,3), (100,1), (1000,1.5); (100,1.04) joins it at the
  // same compute but does not fall below (100,1); (31.6,1.85) is 6.8 %
  // above the hull's 1.732 there; the rising last point is dropped.
  REQUIRE(f.size() == 3);
  CHECK(f[0].compute == 1);
  CHECK(f[1].compute == 10);
  CHECK(f[2].compute == 100);
  CHECK(f[2].loss == 1);
  // With a 10 % tolerance the point at 31.6 joins.
  auto g = scalingFrontier(pts, 0.10);
  REQUIRE(g.size() == 4);
  CHECK(g[2].loss == 1.85);
  // Log–log interpolation: halfway in log compute, the geometric mean.
  CHECK(frontierLossAt(f, std::sqrt(10.0)) == Approx(std::sqrt(30.0)));
  CHECK(std::isnan(frontierLossAt(f, 0.5)));
  CHECK(std::isnan(frontierLossAt(f, 101)));
}

TEST_CASE("an exact power law is fitted exactly", "[scaling]") {
  std::vector<ScalingPoint> pts;
  for (int i = 0; i < 8; ++i) {
    double c = std::pow(10.0, 6 + i * 0.5);
    pts.push_back({c, 0.2 + 3.0 * std::pow(c, -0.35)});
  }
  auto fit = fitPowerLaw(pts, 0.2, 0, 1e300);
  REQUIRE(fit);
  CHECK(fit->exponent == Approx(0.35).epsilon(1e-9));
  CHECK(fit->intercept == Approx(std::log(3.0)).epsilon(1e-9));
  CHECK(fit->stdError == Approx(0).margin(1e-7));
  CHECK(fit->r2 == Approx(1));
  CHECK(fit->n == 8);
  // The compute window keeps what is inside it.
  auto part = fitPowerLaw(pts, 0.2, 1e7, 1e8);
  REQUIRE(part);
  CHECK(part->n == 3);
  CHECK(!fitPowerLaw(pts, 0.2, 1e7, 2e7)); // two points: no fit
}

TEST_CASE("noisy runs: the frontier's fit recovers the exponent", "[scaling]") {
  // Runs of growing size: loss = A·C^-a (the compute-optimal envelope) plus
  // a size-limited floor, with 2 % multiplicative noise. The frontier
  // follows the envelope; the fitted exponent lands near a.
  const double a = 0.3, A = 40;
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0, 0.02);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<ScalingPoint> pts;
    for (int run = 0; run < 6; ++run) {
      double size = std::pow(4.0, run);
      for (int k = 1; k <= 40; ++k) {
        double c = size * 1e6 * k;
        // Envelope at the run's optimal point, a plateau beyond it.
        double envelope = A * std::pow(c, -a);
        double floor = A * std::pow(size * 1e6 * 20, -a);
        double loss = std::max(envelope, floor) *
                      (1 + 0.5 * std::exp(-k / 3.0)) * (1 + noise(rng));
        pts.push_back({c, loss, size_t(run)});
      }
    }
    auto f = scalingFrontier(pts, 0.02);
    auto fit = fitPowerLaw(f, 0, 2e7, 1e300);
    REQUIRE(fit);
    CHECK(fit->exponent == Approx(a).margin(0.03));
  }
}

TEST_CASE("the exponent's 95 % interval covers the truth ~95 % of the time",
          "[scaling]") {
  // Independent log-normal noise around one power law: what least squares'
  // interval assumes. 200 trials of 12 points: ~190 expected to cover.
  std::mt19937_64 rng(3);
  std::normal_distribution<double> noise(0, 0.05);
  int covered = 0;
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<ScalingPoint> pts;
    for (int i = 0; i < 12; ++i) {
      double c = std::pow(10.0, 8 + 0.25 * i);
      pts.push_back({c, 7 * std::pow(c, -0.25) * std::exp(noise(rng))});
    }
    auto fit = fitPowerLaw(pts, 0, 0, 1e300);
    REQUIRE(fit);
    covered += fit->ciLow <= 0.25 && 0.25 <= fit->ciHigh;
  }
  CHECK(covered >= 180);
  CHECK(covered <= 199);
}

TEST_CASE("Student's t quantiles", "[scaling]") {
  CHECK(studentT975(1) == Approx(12.706));
  CHECK(studentT975(10) == Approx(2.228));
  CHECK(studentT975(30) == Approx(2.042));
  CHECK(studentT975(40) == Approx(2.021));
  CHECK(studentT975(50) == Approx(2.009).margin(0.002));
  CHECK(studentT975(100000) == Approx(1.96).margin(0.001));
}
