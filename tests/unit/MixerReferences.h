// Mixers in double by brute force, from their published semantics (see
// test_jit_mixer.cpp and test_cuda_chain.cpp): the semiseparable matrix
// (SSD), Hydra's two flipped SSD passes, M2's fftconv_ref as direct sums,
// fly's Monarch reference.
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

// Flips the token axis of a [L, width] array.
inline std::vector<double> flipped(const double *v, int64_t L, int64_t width) {
  std::vector<double> out(size_t(L * width));
  for (int64_t l = 0; l < L; ++l)
    for (int64_t k = 0; k < width; ++k)
      out[size_t(l * width + k)] = v[(L - 1 - l) * width + k];
  return out;
}

// x ⊙ dt for one sequence: x [L, H, P], dt read at dt[l * stride + h].
inline std::vector<double> scaled(const double *x, const double *dt,
                                  int64_t stride, int64_t L, int64_t H,
                                  int64_t P) {
  std::vector<double> out(size_t(L * H * P));
  for (int64_t l = 0; l < L; ++l)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t p = 0; p < P; ++p)
        out[size_t((l * H + h) * P + p)] =
            x[(l * H + h) * P + p] * dt[l * stride + h];
  return out;
}

// Hydra's quasiseparable mixer as goombalab/hydra's forward reads, one
// sequence: x [L, H, P], dt, a [L, 2, H], B, C [L, 2, N] (the forward
// pass's half, then the backward pass's on the flipped sequence), d [L, H].
inline std::vector<double> hydraReference(const double *x, const double *dt,
                                          const double *a, const double *B,
                                          const double *C, const double *d,
                                          int64_t L, int64_t H, int64_t P,
                                          int64_t N) {
  const int64_t HP = H * P;
  std::vector<double> yb;
  auto xf = scaled(x, dt, 2 * H, L, H, P);
  auto fw = ssdReference(xf.data(), a, 2 * H, B, C, 2 * N, L, H, P, N);
  // The backward pass runs on the flipped sequence with the second
  // halves of dt, a (dt·A) and BC.
  std::vector<double> dtb(size_t(L * H)), ab(size_t(L * H)), Bb(size_t(L * N)),
      Cb(size_t(L * N));
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t h = 0; h < H; ++h) {
      dtb[size_t(l * H + h)] = dt[(L - 1 - l) * 2 * H + H + h];
      ab[size_t(l * H + h)] = a[(L - 1 - l) * 2 * H + H + h];
    }
    for (int64_t n = 0; n < N; ++n) {
      Bb[size_t(l * N + n)] = B[(L - 1 - l) * 2 * N + N + n];
      Cb[size_t(l * N + n)] = C[(L - 1 - l) * 2 * N + N + n];
    }
  }
  auto xb = flipped(x, L, HP);
  auto xbs = scaled(xb.data(), dtb.data(), H, L, H, P);
  auto bw = ssdReference(xbs.data(), ab.data(), H, Bb.data(), Cb.data(), N, L,
                         H, P, N);
  // torch.roll(y, 1, dims=1); y[:, 0] = 0, then the backward one flipped.
  auto roll = [&](const std::vector<double> &v) {
    std::vector<double> r(v.size(), 0.0);
    for (int64_t l = 1; l < L; ++l)
      for (int64_t k = 0; k < HP; ++k)
        r[size_t(l * HP + k)] = v[size_t((l - 1) * HP + k)];
    return r;
  };
  auto yf = roll(fw);
  auto rb = roll(bw);
  auto yb2 = flipped(rb.data(), L, HP);
  yb.resize(size_t(L * HP));
  for (int64_t l = 0; l < L; ++l)
    for (int64_t k = 0; k < HP; ++k)
      yb[size_t(l * HP + k)] = yf[size_t(l * HP + k)] +
                               yb2[size_t(l * HP + k)] +
                               x[l * HP + k] * d[l * H + k / P];
  return yb;
}

// hydraReference on S sequences one after another (the operands stacked).
inline std::vector<double>
hydraSequences(const std::vector<std::vector<double>> &v, int64_t S, int64_t L,
               int64_t H, int64_t P, int64_t N) {
  std::vector<double> y;
  for (int64_t b = 0; b < S; ++b) {
    auto yb = hydraReference(
        v[0].data() + b * L * H * P, v[1].data() + b * L * 2 * H,
        v[2].data() + b * L * 2 * H, v[3].data() + b * L * 2 * N,
        v[4].data() + b * L * 2 * N, v[5].data() + b * L * H, L, H, P, N);
    y.insert(y.end(), yb.begin(), yb.end());
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

// The SSD mixer on S sequences one after another: x [S, L, H, P], dt and
// a [S, L, H], B and C [S, L, N]; the SSD of x ⊙ dt.
inline std::vector<double>
ssdSequences(const std::vector<std::vector<double>> &v, int64_t S, int64_t L,
             int64_t H, int64_t P, int64_t N) {
  std::vector<double> y;
  for (int64_t b = 0; b < S; ++b) {
    auto u = scaled(v[0].data() + b * L * H * P, v[1].data() + b * L * H, H, L,
                    H, P);
    auto yb = ssdReference(u.data(), v[2].data() + b * L * H, H,
                           v[3].data() + b * L * N, v[4].data() + b * L * N, N,
                           L, H, P, N);
    y.insert(y.end(), yb.begin(), yb.end());
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
