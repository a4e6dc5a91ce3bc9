// The runtime's CUDA path on a GPU: layers created with
// einstruct_layer_create_cuda (nvcc + cache + dlopen) give the results of
// the same runtime's CPU layers, in f32 through the plain synchronous calls
// and in bf16 through the stream calls on a stream of this program's own
// CUDA runtime (as PyTorch's would be); host pointers are refused. Fused
// two-factor layers, BTT-MoE, and the cuBLAS one-weight layers.
//   runtime_check   (exit 0 = all agree)
#include <einstruct/einstruct.h>

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include "cuda_ok.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace {

int failures = 0;

#define EI_OK(call)                                                            \
  do {                                                                         \
    if (int s_ = (call)) {                                                     \
      std::printf("FAIL %s:%d %s: status %d: %s\n", __FILE__, __LINE__, #call, \
                  s_, einstruct_last_error());                                 \
      std::exit(1);                                                            \
    }                                                                          \
  } while (0)

// max |got - want| / max |want|.
double relError(const std::vector<float> &got, const std::vector<float> &want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num = std::fmax(num, std::fabs(double(got[i]) - want[i]));
    den = std::fmax(den, std::fabs(double(want[i])));
  }
  return num / (den > 0 ? den : 1);
}

void expectClose(const char *what, const std::string &layer,
                 const std::vector<float> &got, const std::vector<float> &want,
                 double tol) {
  double e = relError(got, want);
  bool ok = e <= tol;
  std::printf("%s %-28s %-4s rel. error %.2e (tolerance %.0e)\n",
              ok ? "ok  " : "FAIL", layer.c_str(), what, e, tol);
  failures += !ok;
}

// Device copies in f32 or bf16 (rounded), and back to float.
void *toDevice(const std::vector<float> &h, bool bf16) {
  void *d = nullptr;
  if (!bf16) {
    CUDA_OK(cudaMalloc(&d, h.size() * 4));
    CUDA_OK(cudaMemcpy(d, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
    return d;
  }
  std::vector<__nv_bfloat16> b(h.size());
  for (size_t i = 0; i < h.size(); ++i)
    b[i] = __float2bfloat16(h[i]);
  CUDA_OK(cudaMalloc(&d, b.size() * 2));
  CUDA_OK(cudaMemcpy(d, b.data(), b.size() * 2, cudaMemcpyHostToDevice));
  return d;
}
std::vector<float> toHost(const void *d, size_t n, bool bf16) {
  std::vector<float> h(n);
  if (!bf16) {
    CUDA_OK(cudaMemcpy(h.data(), d, n * 4, cudaMemcpyDeviceToHost));
    return h;
  }
  std::vector<__nv_bfloat16> b(n);
  CUDA_OK(cudaMemcpy(b.data(), d, n * 2, cudaMemcpyDeviceToHost));
  for (size_t i = 0; i < n; ++i)
    h[i] = __bfloat162float(b[i]);
  return h;
}
// Host values as bf16 would store them (so both paths see the same input).
std::vector<float> rounded(std::vector<float> v, bool bf16) {
  if (bf16)
    for (float &f : v)
      f = __bfloat162float(__float2bfloat16(f));
  return v;
}

int64_t elements(const einstruct_layer *l, int k) {
  int64_t dims[16], n = 1;
  int rank = einstruct_layer_weight_shape(l, k, dims, 16);
  for (int i = 0; i < rank; ++i)
    n *= dims[i];
  return n;
}

void check(const std::string &spec, const std::string &dtype, int64_t batch,
           double tol) {
  const bool bf16 = dtype == "bf16";
  einstruct_layer *cpu = nullptr, *gpu = nullptr;
  EI_OK(einstruct_layer_create_cpu(spec.c_str(), &cpu));
  EI_OK(einstruct_layer_create_cuda(spec.c_str(), dtype.c_str(), 0, &gpu));
  const std::string name = spec.substr(15, spec.find('"', 15) - 15) + " " + dtype;
  const int nw = einstruct_layer_num_weights(cpu);
  const int64_t dIn = einstruct_layer_d_in(cpu), dOut = einstruct_layer_d_out(cpu);
  const bool moe = einstruct_layer_experts(cpu) > 0;

  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  auto draw = [&](int64_t n, float scale) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float &f : v)
      f = scale * normal(rng);
    return rounded(v, bf16);
  };
  std::vector<std::vector<float>> w;
  for (int k = 0; k < nw; ++k)
    w.push_back(draw(elements(cpu, k), 0.3f)); // a nonzero router too
  auto x = draw(batch * dIn, 1.0f), dy = draw(batch * dOut, 1.0f);

  // The CPU reference.
  std::vector<const float *> wp;
  for (auto &v : w)
    wp.push_back(v.data());
  std::vector<float> y(size_t(batch * dOut)), dx(x.size());
  std::vector<std::vector<float>> dw;
  std::vector<float *> dwp;
  for (auto &v : w)
    dw.emplace_back(v.size());
  for (auto &v : dw)
    dwp.push_back(v.data());
  EI_OK(einstruct_layer_forward(cpu, x.data(), batch, wp.data(), y.data()));
  EI_OK(einstruct_layer_backward(cpu, x.data(), dy.data(), batch, wp.data(),
                                 dx.data(), dwp.data()));

  // The CUDA layer.
  std::vector<void *> dW, dDW;
  for (int k = 0; k < nw; ++k) {
    dW.push_back(toDevice(w[size_t(k)], bf16));
    dDW.push_back(toDevice(dw[size_t(k)], bf16)); // overwritten
  }
  void *dX = toDevice(x, bf16), *dDY = toDevice(dy, bf16);
  void *dY = toDevice(y, bf16), *dDX = toDevice(dx, bf16);
  std::vector<const void *> cw(dW.begin(), dW.end());
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreate(&stream));
  if (moe)
    EI_OK(einstruct_layer_set_routing_stats(gpu, 1));
  if (bf16) {
    EI_OK(einstruct_layer_forward_stream(gpu, dX, batch, cw.data(), dY, stream));
    EI_OK(einstruct_layer_backward_stream(gpu, dX, dDY, batch, cw.data(), dDX,
                                          dDW.data(), stream));
    CUDA_OK(cudaStreamSynchronize(stream));
  } else {
    auto fw = reinterpret_cast<const float *const *>(cw.data());
    EI_OK(einstruct_layer_forward(gpu, (const float *)dX, batch, fw, (float *)dY));
    EI_OK(einstruct_layer_backward(gpu, (const float *)dX, (const float *)dDY,
                                   batch, fw, (float *)dDX,
                                   reinterpret_cast<float *const *>(dDW.data())));
  }
  expectClose("y", name, toHost(dY, y.size(), bf16), y, tol);
  expectClose("dx", name, toHost(dDX, dx.size(), bf16), dx, tol);
  for (int k = 0; k < nw; ++k)
    expectClose(("dw" + std::to_string(k + 1)).c_str(), name,
                toHost(dDW[size_t(k)], dw[size_t(k)].size(), bf16),
                dw[size_t(k)], tol);
  if (moe) {
    int64_t counts[64], sum = 0;
    EI_OK(einstruct_layer_routing(gpu, counts, nullptr, nullptr));
    for (int64_t e = 0; e < einstruct_layer_experts(gpu); ++e)
      sum += counts[e];
    bool ok = sum == batch * 2; // top_k = 2
    std::printf("%s %-28s routed %lld token-slots\n", ok ? "ok  " : "FAIL",
                name.c_str(), (long long)sum);
    failures += !ok;
  }

  // Host memory is refused, with the argument named.
  int rc = einstruct_layer_forward_stream(gpu, x.data(), batch, cw.data(), dY,
                                          stream);
  bool refused = rc == EINSTRUCT_ERR_ARGUMENT &&
                 std::string(einstruct_last_error()).find("x is host memory") !=
                     std::string::npos;
  std::printf("%s %-28s host x refused: %s\n", refused ? "ok  " : "FAIL",
              name.c_str(), einstruct_last_error());
  failures += !refused;

  for (void *p : dW)
    cudaFree(p);
  for (void *p : dDW)
    cudaFree(p);
  for (void *p : {dX, dDY, dY, dDX})
    cudaFree(p);
  cudaStreamDestroy(stream);
  einstruct_layer_destroy(cpu);
  einstruct_layer_destroy(gpu);
}

} // namespace

int main() {
  const char *specs[] = {
      R"J({"structure": "monarch(4)", "d_in": 64, "d_out": 48})J",
      R"J({"structure": "btt(rank=2)", "d_in": 96, "d_out": 200})J",
      R"J({"structure": "btt-moe(experts=4, top_k=2)", "d_in": 64, "d_out": 64})J",
      // One weight per term: cuBLAS (a sum of terms for DYAD).
      R"J({"structure": "dense", "d_in": 96, "d_out": 80})J",
      R"J({"structure": "block-diagonal(4)", "d_in": 64, "d_out": 96})J",
      R"J({"structure": "dyad(blocks=4, variant=DT)", "d_in": 64, "d_out": 96})J",
      // A bias, the last weight: the glue's kernels against the CPU's loops.
      R"J({"structure": "monarch(8)", "d_in": 64, "d_out": 64, "bias": true})J",
      R"J({"structure": "btt-moe(experts=4, top_k=2)", "d_in": 64, "d_out": 64, "bias": true})J"};
  for (const char *s : specs) {
    check(s, "f32", 37, 1e-4);
    check(s, "bf16", 300, 3e-2);
  }
  std::printf("runtime CUDA checks: %d failure(s)\n", failures);
  return failures ? 1 : 0;
}
