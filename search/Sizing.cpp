#include "Sizing.h"
#include "Checked.h"

#include <cmath>
#include <fmt/format.h>

namespace einstruct {

std::vector<int64_t> divisors(int64_t d) {
  std::vector<int64_t> lo, hi;
  for (int64_t k = 1; k * k <= d; ++k)
    if (d % k == 0) {
      lo.push_back(k);
      if (k != d / k)
        hi.push_back(d / k);
    }
  lo.insert(lo.end(), hi.rbegin(), hi.rend());
  return lo;
}

std::array<int64_t, 3> nearestFactorization(int64_t d,
                                            const std::array<double, 3> &theta) {
  double logd = std::log(double(d));
  std::array<int64_t, 3> best{d, 1, 1};
  double bestCost = INFINITY;
  auto ds = divisors(d);
  for (int64_t s0 : ds) {
    if (theta[0] == 0 && s0 != 1)
      continue;
    int64_t rest = d / s0;
    for (int64_t s1 : ds) {
      if (s1 > rest)
        break;
      if (rest % s1 || (theta[1] == 0 && s1 != 1))
        continue;
      int64_t s2 = rest / s1;
      if (theta[2] == 0 && s2 != 1)
        continue;
      double cost = 0;
      std::array<int64_t, 3> s{s0, s1, s2};
      for (int k = 0; k < 3; ++k) {
        double diff = std::log(double(s[k])) - theta[k] * logd;
        cost += diff * diff;
      }
      if (cost < bestCost - 1e-12) {
        bestCost = cost;
        best = s;
      }
    }
  }
  return best;
}

static int64_t roundPow(int64_t d, double e) {
  // Python's round() rounds half to even; nearbyint does the same by default.
  return std::max<int64_t>(1, int64_t(std::nearbyint(std::pow(double(d), e))));
}

Result<ClassSizes> sizesFromTheta(const Theta &t, int64_t dIn, int64_t dOut,
                                  Sizing mode) {
  if (dIn < 1 || dIn > kMaxDim)
    return Error{fmt::format("d_in = {} is outside [1, 2^40]", dIn)};
  if (dOut < 1 || dOut > kMaxDim)
    return Error{fmt::format("d_out = {} is outside [1, 2^40]", dOut)};
  ClassSizes s;
  s[kRho] = roundPow(std::min(dIn, dOut), t[kRho]);
  if (mode == Sizing::Exact) {
    auto in = nearestFactorization(dIn, {t[kAlpha], t[kBeta], t[kGamma]});
    auto out = nearestFactorization(dOut, {t[kDelta], t[kEpsilon], t[kPhi]});
    s[kAlpha] = in[0], s[kBeta] = in[1], s[kGamma] = in[2];
    s[kDelta] = out[0], s[kEpsilon] = out[1], s[kPhi] = out[2];
    return s;
  }
  for (int c : {kAlpha, kBeta, kGamma})
    s[c] = roundPow(dIn, t[c]);
  for (int c : {kDelta, kEpsilon, kPhi})
    s[c] = roundPow(dOut, t[c]);
  auto check = [&](int c0, int64_t d, const char *name) -> std::optional<Error> {
    long double p = (long double)s[c0] * s[c0 + 1] * s[c0 + 2];
    long double rel = std::fabs((double)(p - d)) / d;
    if (rel > kMaxRelativePadding)
      return Error{fmt::format(
          "rounding θ pads {} {} -> {:.0f} ({:.1f}%), above the reference's "
          "{:.0f}% limit; use exact sizing",
          name, d, (double)p, double(rel * 100), kMaxRelativePadding * 100)};
    return std::nullopt;
  };
  if (auto e = check(kAlpha, dIn, "d_in"))
    return *e;
  if (auto e = check(kDelta, dOut, "d_out"))
    return *e;
  return s;
}

EinsumTerm termFromClassSizes(const ClassSizes &s) {
  EinsumTerm t;
  auto keep = [&](const char *letters) {
    std::string out;
    for (const char *p = letters; *p; ++p) {
      int c = int(std::string_view(kClassLetters).find(*p));
      if (s[c] > 1)
        out += *p;
    }
    return out;
  };
  t.input = keep("gba");
  t.weights = {keep("fdrga"), keep("fergb")};
  t.output = keep("fed");
  for (int c = 0; c < kNumClasses; ++c)
    if (s[c] > 1)
      t.sizes[kClassLetters[c]] = s[c];
  return t;
}

Theta thetaFromSizes(const ClassSizes &s, int64_t dIn, int64_t dOut) {
  Theta t;
  for (int c = 0; c < kNumClasses; ++c) {
    int64_t D = c <= kGamma ? dIn : c <= kPhi ? dOut : std::min(dIn, dOut);
    t[c] = D > 1 ? std::log(double(s[c])) / std::log(double(D)) : 0;
  }
  return t;
}

} // namespace einstruct
