// Checks one generated CUDA layer against a float64 CPU reference written
// here from structures.md §1 (plain loops over the seven classes; nothing is
// shared with the emitter's plan). Built per layer with
//   nvcc -include DIR/NAME.h -DLAYER=NAME layer_check.cu DIR/NAME.cu
// Usage: layer_check N [N ...]  (token counts). Exit 0 pass, 1 fail,
// 77 no CUDA device (a skip for CTest).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check_common.h"

namespace {


std::vector<float> randomVector(size_t n, std::mt19937 &rng, float scale) {
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (auto &x : v)
    x = roundTo(u(rng));
  return v;
}

struct Reference {
  std::vector<double> y, dx, dw1, dw2;
};

// structures.md §1 with the flat-index padding rule: x columns past d_in read
// as 0; y keeps the first d_out of the structure's outputs, zero-filled.
Reference reference(const std::vector<float> &x, const std::vector<float> &w1,
                    const std::vector<float> &w2, const std::vector<float> &dy,
                    long long n) {
  const int64_t *s = info->sizes, *xs = info->x_strides,
                *w1s = info->w1_strides, *w2s = info->w2_strides,
                *ys = info->y_strides;
  const int64_t A = s[0], B = s[1], G = s[2], D = s[3], E = s[4], F = s[5],
                R = s[6];
  const int64_t din = info->d_in, dout = info->d_out;
  Reference ref;
  ref.y.assign(n * dout, 0.0);
  ref.dx.assign(n * din, 0.0);
  ref.dw1.assign(info->w1_elems, 0.0);
  ref.dw2.assign(info->w2_elems, 0.0);
  auto W1 = [&](int64_t f, int64_t d, int64_t r, int64_t g, int64_t a) {
    return f * w1s[5] + d * w1s[3] + r * w1s[6] + g * w1s[2] + a * w1s[0];
  };
  auto W2 = [&](int64_t f, int64_t e, int64_t r, int64_t g, int64_t b) {
    return f * w2s[5] + e * w2s[4] + r * w2s[6] + g * w2s[2] + b * w2s[1];
  };
  std::vector<double> z(F * D * R * G * B), dz(z.size());
  auto Z = [&](int64_t f, int64_t d, int64_t r, int64_t g, int64_t b) {
    return (((f * D + d) * R + r) * G + g) * B + b;
  };
  for (long long t = 0; t < n; ++t) {
    auto X = [&](int64_t g, int64_t b, int64_t a) -> double {
      int64_t i = g * xs[2] + b * xs[1] + a * xs[0];
      return i < din ? x[t * din + i] : 0.0;
    };
    auto DY = [&](int64_t f, int64_t e, int64_t d) -> double {
      int64_t j = f * ys[5] + e * ys[4] + d * ys[3];
      return j < dout ? dy[t * dout + j] : 0.0;
    };
    for (int64_t f = 0; f < F; ++f)
      for (int64_t d = 0; d < D; ++d)
        for (int64_t r = 0; r < R; ++r)
          for (int64_t g = 0; g < G; ++g)
            for (int64_t b = 0; b < B; ++b) {
              double acc = 0, dacc = 0;
              for (int64_t a = 0; a < A; ++a)
                acc += w1[W1(f, d, r, g, a)] * X(g, b, a);
              for (int64_t e = 0; e < E; ++e)
                dacc += w2[W2(f, e, r, g, b)] * DY(f, e, d);
              z[Z(f, d, r, g, b)] = roundTo((float)acc); // z is stored
              dz[Z(f, d, r, g, b)] = roundTo((float)dacc);
            }
    for (int64_t f = 0; f < F; ++f)
      for (int64_t e = 0; e < E; ++e)
        for (int64_t d = 0; d < D; ++d) {
          int64_t j = f * ys[5] + e * ys[4] + d * ys[3];
          double acc = 0;
          for (int64_t r = 0; r < R; ++r)
            for (int64_t g = 0; g < G; ++g)
              for (int64_t b = 0; b < B; ++b) {
                acc += w2[W2(f, e, r, g, b)] * z[Z(f, d, r, g, b)];
                ref.dw2[W2(f, e, r, g, b)] += DY(f, e, d) * z[Z(f, d, r, g, b)];
              }
          if (j < dout)
            ref.y[t * dout + j] = acc;
        }
    for (int64_t g = 0; g < G; ++g)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t a = 0; a < A; ++a) {
          int64_t i = g * xs[2] + b * xs[1] + a * xs[0];
          double acc = 0;
          for (int64_t f = 0; f < F; ++f)
            for (int64_t d = 0; d < D; ++d)
              for (int64_t r = 0; r < R; ++r) {
                acc += w1[W1(f, d, r, g, a)] * dz[Z(f, d, r, g, b)];
                ref.dw1[W1(f, d, r, g, a)] += dz[Z(f, d, r, g, b)] * X(g, b, a);
              }
          if (i < din)
            ref.dx[t * din + i] = acc;
        }
  }
  return ref;
}

void compare(const char *what, long long n, const std::vector<double> &got,
             const std::vector<double> &want, double tol) {
  double num = 0, den = 0;
  size_t nan = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) {
      ++nan;
      continue;
    }
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  double rel = std::sqrt(num / (den > 0 ? den : 1));
  bool ok = nan == 0 && rel <= tol;
  std::printf("%s %-18s n=%-6lld rel err %.2e (tol %.1e)%s\n",
              ok ? "ok  " : "FAIL", what, n, rel, tol,
              nan ? " NON-FINITE/UNWRITTEN OUTPUT" : "");
  if (!ok)
    ++failures;
}

struct Device {
  void *p = nullptr;
  size_t bytes = 0;
  explicit Device(size_t b) : bytes(b) {
    CUDA_OK(cudaMalloc(&p, b ? b : 1));
    CUDA_OK(cudaMemset(p, 0xff, b)); // NaN poison: unwritten outputs show
  }
  Device(const std::vector<unsigned char> &h) : Device(h.size()) {
    CUDA_OK(cudaMemcpy(p, h.data(), h.size(), cudaMemcpyHostToDevice));
  }
  ~Device() { cudaFree(p); }
  std::vector<unsigned char> get() const {
    std::vector<unsigned char> h(bytes);
    CUDA_OK(cudaMemcpy(h.data(), p, bytes, cudaMemcpyDeviceToHost));
    return h;
  }
};

void expectStatus(const char *what, int got, int want) {
  bool ok = got == want;
  std::printf("%s status %-28s %d (%s)\n", ok ? "ok  " : "FAIL", what, got,
              FN(status_string)(got));
  if (!ok)
    ++failures;
}

void check(long long n, unsigned seed) {
  std::mt19937 rng(seed);
  const size_t eb = info->dtype_bytes;
  auto x = randomVector(n * info->d_in, rng, 1.0f);
  auto w1 = randomVector(info->w1_elems, rng, 0.25f);
  auto w2 = randomVector(info->w2_elems, rng, 0.25f);
  auto dy = randomVector(n * info->d_out, rng, 1.0f);
  Reference ref = reference(x, w1, w2, dy, n);
  Device dX(bits(x)), dW1(bits(w1)), dW2(bits(w2)), dDY(bits(dy));
  Device dYo(n * info->d_out * eb), dDX(n * info->d_in * eb);
  Device dG1(info->w1_elems * eb), dG2(info->w1_elems ? info->w2_elems * eb : 0);
  size_t wsBytes = FN(backward_weights_workspace)(n);
  Device ws(wsBytes);
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreate(&stream));
  expectStatus("forward", FN(forward)(dX.p, dW1.p, dW2.p, dYo.p, n, stream), 0);
  expectStatus("backward_input",
               FN(backward_input)(dDY.p, dW1.p, dW2.p, dDX.p, n, stream), 0);
  expectStatus("backward_weights",
               FN(backward_weights)(dX.p, dDY.p, dW1.p, dW2.p, dG1.p, dG2.p, n,
                                    ws.p, wsBytes, stream),
               0);
  CUDA_OK(cudaStreamSynchronize(stream));
  CUDA_OK(cudaGetLastError());
  std::string dt = info->dtype;
  // bf16 keeps 8 mantissa bits, f16 11; z is rounded to storage once.
  double tol = dt == "bf16" ? 1.5e-2 : dt == "f16" ? 3e-3 : 2e-5;
  compare("forward", n, values(dYo.get()), ref.y, tol);
  compare("backward_input", n, values(dDX.get()), ref.dx, tol);
  auto g1 = dG1.get(), g2 = dG2.get();
  compare("backward_w1", n, values(g1), ref.dw1, tol);
  compare("backward_w2", n, values(g2), ref.dw2, tol);
  // Deterministic: the same call gives the same bits.
  CUDA_OK(cudaMemset(dG1.p, 0xff, dG1.bytes));
  FN(backward_weights)(dX.p, dDY.p, dW1.p, dW2.p, dG1.p, dG2.p, n, ws.p,
                       wsBytes, stream);
  CUDA_OK(cudaStreamSynchronize(stream));
  bool same = dG1.get() == g1;
  std::printf("%s backward_w1 bitwise repeatable n=%lld\n",
              same ? "ok  " : "FAIL", n);
  failures += !same;
  // Bad arguments come back as statuses.
  expectStatus("null x", FN(forward)(nullptr, dW1.p, dW2.p, dYo.p, n, stream),
               EINSTRUCT_ERR_INVALID_ARGUMENT);
  expectStatus("negative n", FN(forward)(dX.p, dW1.p, dW2.p, dYo.p, -1, stream),
               EINSTRUCT_ERR_INVALID_ARGUMENT);
  expectStatus("small workspace",
               FN(backward_weights)(dX.p, dDY.p, dW1.p, dW2.p, dG1.p, dG2.p,
                                    n, ws.p, wsBytes - 1, stream),
               EINSTRUCT_ERR_WORKSPACE_TOO_SMALL);
  CUDA_OK(cudaStreamDestroy(stream));
}

} // namespace

int main(int argc, char **argv) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("SKIP: no CUDA device\n");
    return 77;
  }
  info = FN(info)();
  cudaDeviceProp prop;
  CUDA_OK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s (%s, %s) on %s\n", info->name, info->einsum, info->dtype,
              prop.name);
  for (int i = 1; i < argc; ++i)
    check(std::atoll(argv[i]), 1234 + i);
  std::printf("%s: %d failure(s)\n", info->name, failures);
  return failures ? 1 : 0;
}
