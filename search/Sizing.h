// θ → integer index sizes: the reference's rounding (with its padding rule) and
// an exact mode that factorises d_in and d_out with no padding at all.
#pragma once
#include "Einsum.h"
#include "Theta.h"

namespace einstruct {

using ClassSizes = std::array<int64_t, kNumClasses>; // a b g d e f r

enum class Sizing { Round, Exact };

// The reference refuses a relative padding |prod - d| / d above this.
constexpr double kMaxRelativePadding = 0.15;

Result<ClassSizes> sizesFromTheta(const Theta &t, int64_t dIn, int64_t dOut,
                                  Sizing mode);

// The factorisation d = s0·s1·s2 nearest (in log space) to the exponents
// `theta` (a zero exponent forces size 1). Ties go to the lexicographically
// smallest triple, so results are reproducible.
std::array<int64_t, 3> nearestFactorization(int64_t d,
                                            const std::array<double, 3> &theta);

// Divisors of d in increasing order (d <= 2^40).
std::vector<int64_t> divisors(int64_t d);

// The 2-factor einsum x[g,b,a]·A[f,d,r,g,a]·B[f,e,r,g,b] → y[f,e,d] for these
// sizes, with size-1 indices dropped as the reference does.
EinsumTerm termFromClassSizes(const ClassSizes &s);

// θ read back from integer sizes: θc = ln(s_c) / ln(D_c).
Theta thetaFromSizes(const ClassSizes &s, int64_t dIn, int64_t dOut);

} // namespace einstruct
