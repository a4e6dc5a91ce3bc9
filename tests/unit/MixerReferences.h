// Mixers in double by brute force, from their published semantics (see
// test_jit_mixer.cpp and test_cuda_chain.cpp): the semiseparable matrix
// (SSD), M2's fftconv_ref as direct sums, fly's Monarch reference.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

namespace einstruct::testing {

// The semiseparable matrix applied by brute force: x [b, L, H, P],
// a [b, L, H], B, C [b, L, N] (their strides per token given, so that the
// Hydra reference can read one direction's half).
inline std::vector<double> ssdReference(const double *x, const double *a,
                                        int64_t aStride, const double *B,
                                        const double *C, int64_t bcStride,
                                        int64_t L, int64_t H, int64_t P,
                                        int64_t N) {
  std::vector<double> y(size_t(L * H * P), 0.0);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t l = 0; l < L; ++l)
      for (int64_t s = 0; s <= l; ++s) {
        double cb = 0, decay = 0;
        for (int64_t n = 0; n < N; ++n)
          cb += C[l * bcStride + n] * B[s * bcStride + n];
        for (int64_t t = s + 1; t <= l; ++t)
          decay += a[t * aStride + h];
        const double m = cb * std::exp(decay);
        for (int64_t p = 0; p < P; ++p)
          y[size_t((l * H + h) * P + p)] += m * x[(s * H + h) * P + p];
      }
  return y;
}

// M2's fftconv_ref by direct sums per channel: y_i = Σ_{j ≤ i} k_{i−j} x_j
// (+ Σ_{j > i} k_rev_{j−i−1} x_j) + D x_i; x, y [batch, L, C], k and k_rev
// [L, C] (null when causal), D [C].
inline std::vector<double> convReference(const double *x, const double *k,
                                         const double *kRev, const double *D,
                                         int64_t batch, int64_t L, int64_t C) {
  std::vector<double> y(size_t(batch * L * C), 0.0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < L; ++i)
      for (int64_t c = 0; c < C; ++c) {
        const double *xs = x + b * L * C;
        double v = D[c] * xs[i * C + c];
        for (int64_t j = 0; j < L; ++j)
          if (j <= i)
            v += k[(i - j) * C + c] * xs[j * C + c];
          else if (kRev)
            v += kRev[(j - i - 1) * C + c] * xs[j * C + c];
        y[size_t((b * L + i) * C + c)] = v;
      }
  return y;
}

// fly's blockdiag_butterfly_multiply_reference (version 2) on each
// channel's column: x (k, p) times w1 (k, q, p) gives (k, q); flattened and
// read as (r, l); times w2 (l, s, r) gives (l, s); y at s·l_count + l.
inline std::vector<double> monarchReference(const double *x, const double *w1,
                                            const double *w2, int64_t batch,
                                            int64_t L, int64_t C, int64_t nb) {
  const int64_t m = L / nb;
  std::vector<double> y(size_t(batch * L * C), 0.0), z(static_cast<size_t>(L));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t c = 0; c < C; ++c) {
      auto xs = [&](int64_t t) { return x[(b * L + t) * C + c]; };
      for (int64_t k = 0; k < nb; ++k)
        for (int64_t q = 0; q < m; ++q) {
          double v = 0;
          for (int64_t p = 0; p < m; ++p)
            v += w1[(k * m + q) * m + p] * xs(k * m + p);
          z[size_t(k * m + q)] = v;
        }
      for (int64_t l = 0; l < nb; ++l)
        for (int64_t s = 0; s < m; ++s) {
          double v = 0;
          for (int64_t r = 0; r < m; ++r)
            v += w2[(l * m + s) * m + r] * z[size_t(r * nb + l)];
          y[size_t((b * L + s * nb + l) * C + c)] = v;
        }
    }
  return y;
}

// The SSD core on S sequences one after another: x [S, L, H, P], a [S, L,
// H], B and C [S, L, N].
inline std::vector<double> ssdSequences(const std::vector<double> &x,
                                        const std::vector<double> &a,
                                        const std::vector<double> &B,
                                        const std::vector<double> &C, int64_t S,
                                        int64_t L, int64_t H, int64_t P,
                                        int64_t N) {
  std::vector<double> y;
  for (int64_t b = 0; b < S; ++b) {
    auto yb = ssdReference(x.data() + b * L * H * P, a.data() + b * L * H, H,
                           B.data() + b * L * N, C.data() + b * L * N, N, L, H,
                           P, N);
    y.insert(y.end(), yb.begin(), yb.end());
  }
  return y;
}

// What emitM2Conv's function computes (compiler/ir/EmitMixer.h): per
// channel, y_i = Σ_j k_{(i − j) mod n} x_j + D x_i over the DFT grid's
// first J·b points, n = b², x [S, J·b, C] zero past them, k [Jk·b, C].
inline std::vector<double> circularConvReference(const double *x,
                                                 const double *k,
                                                 const double *D, int64_t S,
                                                 int64_t J, int64_t b,
                                                 int64_t Jk, int64_t C) {
  const int64_t n = b * b, rows = J * b;
  std::vector<double> y(size_t(S * rows * C), 0.0);
  for (int64_t s = 0; s < S; ++s)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t c = 0; c < C; ++c) {
        double acc = D[c] * x[(s * rows + i) * C + c];
        for (int64_t j = 0; j < rows; ++j) {
          const int64_t lag = ((i - j) % n + n) % n;
          if (lag < Jk * b)
            acc += k[lag * C + c] * x[(s * rows + j) * C + c];
        }
        y[size_t((s * rows + i) * C + c)] = acc;
      }
  return y;
}

// ∂<dy, reference(in)>/∂in[op][k] by central differences (step 1e-5).
inline double centralDifference(
    const std::function<std::vector<double>(
        const std::vector<std::vector<double>> &)> &reference,
    const std::vector<std::vector<double>> &in, size_t op, size_t k,
    const std::vector<double> &dy) {
  const double h = 1e-5;
  auto plus = in, minus = in;
  plus[op][k] += h;
  minus[op][k] -= h;
  auto yp = reference(plus), ym = reference(minus);
  double fd = 0;
  for (size_t j = 0; j < dy.size(); ++j)
    fd += dy[j] * (yp[j] - ym[j]) / (2 * h);
  return fd;
}

} // namespace einstruct::testing
