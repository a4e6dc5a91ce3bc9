// The 7-index θ-space of structures.md §1-2: exponents, their text form,
// validity, and the ω/ψ/ν taxonomy.
#pragma once
#include "Result.h"
#include <array>
#include <string>
#include <string_view>

namespace einstruct {

// Index classes in the reference's order; letters a b g d e f r.
enum IndexClass { kAlpha, kBeta, kGamma, kDelta, kEpsilon, kPhi, kRho };
constexpr int kNumClasses = 7;
constexpr char kClassLetters[kNumClasses + 1] = "abgdefr";
extern const char *const kClassNames[kNumClasses]; // "α", "β", ...

// Tolerance of the reference on θα+θβ+θγ = 1 and θδ+θε+θφ = 1.
constexpr double kThetaSumTolerance = 1e-2;

struct Theta {
  std::array<double, kNumClasses> v{};
  double operator[](int c) const { return v[c]; }
  double &operator[](int c) { return v[c]; }
  std::string str() const; // "(0.5|0|0.5|0|0.5|0.5|0)"
};

struct Taxonomy {
  double omega; // parameter sharing
  double psi;   // rank exponent
  double nu;    // compute exponent
};

Taxonomy taxonomy(const Theta &t);

// Empty when valid; otherwise why the reference discards it.
std::string validityProblem(const Theta &t);

// Parses "(α|β|γ|δ|ε|φ|ρ)"; fields may be decimals or fractions like 1/3.
// Errors name the field and its 1-based column.
Result<Theta> parseTheta(std::string_view text);

// Checks ranges and the two sum constraints of a θ built in code.
Result<Theta> checkTheta(const Theta &t);

} // namespace einstruct
