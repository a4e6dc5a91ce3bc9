// A mixer's CUDA libraries (`einstruct compile --mixer`: MIXER and
// MIXER_backward, whose headers are -include'd) on the GPU against
// references in double (tests/unit/MixerReferences.h): the forward on S
// sequences, and the backward's gradients against central differences of
// <dy, reference> at sampled entries of every non-constant input.
//   NAME.check ssd H P N L S | hydra H P N L S |
//              m2 L C CAUSAL(1|0) S CONSTANTS | monarch L C nb S
#include "cuda_ok.h"
#include "tests/unit/MixerReferences.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define FN(x) CAT(MIXER, CAT(_, x))
#define BACKWARD(x) CAT(MIXER, CAT(_backward_, x))

using Doubles = std::vector<std::vector<double>>;
using Reference = std::function<std::vector<double>(const Doubles &)>;

namespace {

// Tensor `name` of a safetensors file (float32), by its data_offsets.
std::vector<double> safetensor(const std::string &path,
                               const std::string &name) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream all;
  all << f.rdbuf();
  const std::string bytes = all.str();
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  const std::string header = bytes.substr(8, n);
  size_t at = header.find("\"" + name + "\"");
  at = header.find("\"data_offsets\":[", at);
  if (at == std::string::npos) {
    std::printf("FAIL %s has no tensor %s\n", path.c_str(), name.c_str());
    std::exit(1);
  }
  uint64_t from = 0, to = 0;
  std::sscanf(header.c_str() + at + 16, "%lu,%lu", &from, &to);
  std::vector<double> v((to - from) / 4);
  for (size_t i = 0; i < v.size(); ++i) {
    float e;
    std::memcpy(&e, bytes.data() + 8 + n + from + 4 * i, 4);
    v[i] = e;
  }
  return v;
}

std::vector<double> random(std::mt19937 &rng, size_t n, double lo, double hi) {
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(n);
  for (auto &e : v)
    e = double(float(u(rng)));
  return v;
}

// Device copies of `in` (and room for `outs` results); runs `fn`.
template <class Fn>
std::vector<std::vector<float>> onDevice(const Doubles &in,
                                         const std::vector<size_t> &outs,
                                         int64_t S, size_t workspace, Fn fn) {
  std::vector<float *> dIn, dOut;
  for (const auto &v : in) {
    std::vector<float> f(v.begin(), v.end());
    float *d;
    CUDA_OK(cudaMalloc(&d, f.size() * 4));
    CUDA_OK(cudaMemcpy(d, f.data(), f.size() * 4, cudaMemcpyHostToDevice));
    dIn.push_back(d);
  }
  for (size_t n : outs) {
    float *d;
    CUDA_OK(cudaMalloc(&d, n * 4));
    dOut.push_back(d);
  }
  void *ws = nullptr;
  if (workspace)
    CUDA_OK(cudaMalloc(&ws, workspace));
  std::vector<const float *> cin(dIn.begin(), dIn.end());
  int rc = fn(cin.data(), dOut.data(), S, ws, workspace, cudaStream_t(0));
  if (rc) {
    std::printf("FAIL the library returned %d\n", rc);
    std::exit(1);
  }
  CUDA_OK(cudaDeviceSynchronize());
  std::vector<std::vector<float>> result;
  for (size_t k = 0; k < outs.size(); ++k) {
    result.emplace_back(outs[k]);
    CUDA_OK(cudaMemcpy(result.back().data(), dOut[k], outs[k] * 4,
                       cudaMemcpyDeviceToHost));
  }
  for (float *d : dIn)
    CUDA_OK(cudaFree(d));
  for (float *d : dOut)
    CUDA_OK(cudaFree(d));
  if (ws)
    CUDA_OK(cudaFree(ws));
  return result;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2)
    return 2;
  const std::string family = argv[1];
  auto arg = [&](int k) { return int64_t(std::atoll(argv[k])); };
  std::mt19937 rng(7);
  Doubles in;
  std::vector<bool> constant;
  int64_t S = 0;
  Reference reference;
  if (family == "ssd") {
    const int64_t H = arg(2), P = arg(3), N = arg(4), L = arg(5);
    S = arg(6);
    in = {random(rng, S * L * H * P, -1, 1), random(rng, S * L * H, 0.1, 1),
          random(rng, S * L * H, -0.5, -0.05), random(rng, S * L * N, -1, 1),
          random(rng, S * L * N, -1, 1)};
    reference = [=](const Doubles &v) {
      return einstruct::testing::ssdSequences(v, S, L, H, P, N);
    };
  } else if (family == "hydra") {
    const int64_t H = arg(2), P = arg(3), N = arg(4), L = arg(5);
    S = arg(6);
    in = {random(rng, S * L * H * P, -1, 1),
          random(rng, S * L * 2 * H, 0.1, 1),
          random(rng, S * L * 2 * H, -0.5, -0.05),
          random(rng, S * L * 2 * N, -1, 1),
          random(rng, S * L * 2 * N, -1, 1),
          random(rng, S * L * H, -1, 1)};
    reference = [=](const Doubles &v) {
      return einstruct::testing::hydraSequences(v, S, L, H, P, N);
    };
  } else if (family == "m2") {
    const int64_t L = arg(2), C = arg(3);
    const bool causal = arg(4) != 0;
    S = arg(5);
    in = {random(rng, S * L * C, -1, 1), random(rng, L * C, -1, 1)};
    if (!causal)
      in.push_back(random(rng, L * C, -1, 1));
    in.push_back(random(rng, C, -1, 1));
    const size_t params = in.size();
    for (size_t k = params; k < params + 8; ++k)
      in.push_back(safetensor(argv[6], "input" + std::to_string(k)));
    reference = [=](const Doubles &v) {
      return einstruct::testing::convReference(v[0].data(), v[1].data(),
                                               causal ? nullptr : v[2].data(),
                                               v[params - 1].data(), S, L, C);
    };
  } else if (family == "monarch") {
    const int64_t L = arg(2), C = arg(3), nb = arg(4), m = L / nb;
    S = arg(5);
    in = {random(rng, S * L * C, -1, 1), random(rng, nb * m * m, -1, 1),
          random(rng, nb * m * m, -1, 1)};
    reference = [=](const Doubles &v) {
      return einstruct::testing::monarchReference(v[0].data(), v[1].data(),
                                                  v[2].data(), S, L, C, nb);
    };
  } else {
    std::printf("FAIL unknown family %s\n", family.c_str());
    return 2;
  }
  constant.assign(in.size(), false);
  // m2-conv's last 8 inputs: its DFT matrices and twiddles.
  for (size_t k = in.size() - 8; family == "m2" && k < in.size(); ++k)
    constant[k] = true;
  int failures = 0;
  auto want = reference(in);
  auto y = onDevice(in, {want.size()}, S, FN(workspace_bytes)(S),
                    [](auto... a) { return MIXER(a...); })[0];
  double scale = 0, err = 0;
  for (size_t k = 0; k < want.size(); ++k) {
    scale = std::max(scale, std::abs(want[k]));
    err = std::max(err, std::abs(double(y[k]) - want[k]));
  }
  const bool fwdOk = err <= 1e-4 * std::max(scale, 1.0);
  failures += !fwdOk;
  std::printf("%s %s forward: max error %.3g of max %.3g\n",
              fwdOk ? "ok  " : "FAIL", family.c_str(), err, scale);
  // Backward: dy random; the gradients of the non-constant inputs.
  std::vector<double> dy = random(rng, want.size(), -1, 1);
  Doubles bin = in;
  bin.push_back(dy);
  std::vector<size_t> sizes;
  for (size_t k = 0; k < in.size(); ++k)
    if (!constant[k])
      sizes.push_back(in[k].size());
  auto grads = onDevice(bin, sizes, S, BACKWARD(workspace_bytes)(S),
                        [](auto... a) { return CAT(MIXER, _backward)(a...); });
  size_t g = 0;
  for (size_t op = 0; op < in.size(); ++op) {
    if (constant[op])
      continue;
    const auto &got = grads[g++];
    double gScale = 0, gErr = 0;
    for (int t = 0; t < 16; ++t) {
      const size_t k = size_t(rng()) % got.size();
      const double fd =
          einstruct::testing::centralDifference(reference, in, op, k, dy);
      gScale = std::max(gScale, std::abs(fd));
      gErr = std::max(gErr, std::abs(fd - double(got[k])));
    }
    const bool ok = gErr <= 1e-3 * std::max(gScale, 1.0);
    failures += !ok;
    std::printf("%s %s d(input %zu): max error %.3g of max %.3g (16 entries)\n",
                ok ? "ok  " : "FAIL", family.c_str(), op, gErr, gScale);
  }
  return failures ? 1 : 0;
}
