#include "Theta.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fmt/format.h>

namespace einstruct {

const char *const kClassNames[kNumClasses] = {"α", "β", "γ", "δ",
                                              "ε", "φ", "ρ"};

std::string Theta::str() const {
  std::string s = "(";
  for (int c = 0; c < kNumClasses; ++c) {
    if (c)
      s += '|';
    s += fmt::format("{:g}", v[c]);
  }
  return s + ")";
}

Taxonomy taxonomy(const Theta &t) {
  double minAE = std::min(t[kAlpha], t[kEpsilon]);
  Taxonomy x;
  x.omega = std::min(t[kAlpha] + t[kDelta], t[kBeta] + t[kEpsilon]) - minAE;
  x.psi = 1 + std::min(0.0, 1 + t[kRho] - t[kAlpha] - t[kEpsilon]);
  x.nu = 1 + t[kRho] - minAE;
  return x;
}

std::string validityProblem(const Theta &t) {
  constexpr double eps = 1e-9;
  double minAE = std::min(t[kAlpha], t[kEpsilon]);
  if (minAE + eps < std::min(t[kBeta], t[kDelta]))
    return "redundant: min(θα, θε) < min(θβ, θδ)";
  if (t[kRho] > minAE + eps)
    return "degenerate: θρ > min(θα, θε)";
  return "";
}

Result<Theta> checkTheta(const Theta &t) {
  for (int c = 0; c < kNumClasses; ++c) {
    if (!std::isfinite(t[c]))
      return Error{fmt::format("θ{} is not a finite number", kClassNames[c])};
    if (t[c] < 0 || t[c] > 1)
      return Error{fmt::format("θ{} = {:g} is outside [0, 1]", kClassNames[c],
                               t[c])};
  }
  double in = t[kAlpha] + t[kBeta] + t[kGamma];
  double out = t[kDelta] + t[kEpsilon] + t[kPhi];
  // A hair of slack so that 0.33+0.66 (= 0.99 in decimal) is inside.
  constexpr double slack = 1e-12;
  if (std::fabs(in - 1) > kThetaSumTolerance + slack)
    return Error{fmt::format("θα+θβ+θγ = {:g}, must be 1 (±{:g})", in,
                             kThetaSumTolerance)};
  if (std::fabs(out - 1) > kThetaSumTolerance + slack)
    return Error{fmt::format("θδ+θε+θφ = {:g}, must be 1 (±{:g})", out,
                             kThetaSumTolerance)};
  return t;
}

// Parses one field: a decimal number or "p/q". Returns nullopt-like error text.
static Result<double> parseField(std::string_view s) {
  auto number = [](std::string_view part) -> Result<double> {
    std::string buf(part);
    if (buf.empty())
      return Error{"empty number"};
    const char *begin = buf.c_str();
    char *end = nullptr;
    double v = std::strtod(begin, &end);
    if (end != begin + buf.size())
      return Error{fmt::format("'{}' is not a number", buf)};
    return v;
  };
  size_t slash = s.find('/');
  if (slash == std::string_view::npos)
    return number(s);
  auto p = number(s.substr(0, slash));
  auto q = number(s.substr(slash + 1));
  if (!p)
    return p;
  if (!q)
    return q;
  if (*q == 0)
    return Error{"division by zero"};
  return *p / *q;
}

Result<Theta> parseTheta(std::string_view text) {
  // Trim outer whitespace, then optional parentheses.
  size_t lo = text.find_first_not_of(" \t\n");
  size_t hi = text.find_last_not_of(" \t\n");
  if (lo == std::string_view::npos)
    return Error{"θ text is empty; expected (α|β|γ|δ|ε|φ|ρ)"};
  bool open = text[lo] == '(', close = text[hi] == ')';
  if (open != close)
    return Error{fmt::format("unbalanced parenthesis at column {}",
                             open ? lo + 1 : hi + 1)};
  if (open) {
    ++lo;
    --hi;
  }
  Theta t;
  int field = 0;
  size_t start = lo;
  for (size_t i = lo; i <= hi + 1; ++i) {
    if (i <= hi && text[i] != '|')
      continue;
    if (field == kNumClasses)
      return Error{fmt::format("θ has more than 7 fields (extra '|' at column "
                               "{}); expected (α|β|γ|δ|ε|φ|ρ)",
                               start)};
    std::string_view raw = text.substr(start, i - start);
    size_t a = raw.find_first_not_of(" \t"), b = raw.find_last_not_of(" \t");
    std::string_view f =
        a == std::string_view::npos ? "" : raw.substr(a, b - a + 1);
    auto v = parseField(f);
    if (!v)
      return Error{fmt::format("θ{} (field {}, column {}): {}",
                               kClassNames[field], field + 1, start + 1,
                               v.error())};
    t[field++] = *v;
    start = i + 1;
  }
  if (field != kNumClasses)
    return Error{fmt::format("θ has {} field{}, expected 7: (α|β|γ|δ|ε|φ|ρ)",
                             field, field == 1 ? "" : "s")};
  return checkTheta(t);
}

} // namespace einstruct
