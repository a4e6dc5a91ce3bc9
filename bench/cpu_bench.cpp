// CPU forward of BTT/Monarch layers, side by side in one process, one thread:
//   einstruct   the MLIR pipeline + ExecutionEngine JIT (compiler/cpu),
//               writing into the caller's y like the other two
//   openblas    what a user would write: per-block SGEMM, a transpose of z
//               through memory, per-block SGEMM (OpenBLAS, 1 thread)
//   naive       the same two stages as plain loops
// Then dense layers against one SGEMM, and the backward pass (dx and the
// weight gradients) of einstruct against
// the same per-block SGEMMs, and both again on all cores. Prints medians and ratios; results are
// cross-checked against each other.
#include "bench/BenchTiming.h"
#include "bench/FmaPeak.h"
#include "compiler/cpu/JitLayer.h"
#include "search/Named.h"

#include <algorithm>
#include <cblas.h>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

extern "C" void openblas_set_num_threads(int);

using namespace einstruct;
using einstruct::bench::maxRelDiff;
using einstruct::bench::medianMs;

namespace {

struct Btt {
  int64_t g, a, f, e, r; // x[g,a] → y[f,e]; A[f,r,g,a], B[f,e,r,g]
};

// z[n, g, f, r] = Σ_a x[n, g, a] A[f, r, g, a]; then zt[n, f, r, g];
// y[n, f, e] = Σ_{r,g} zt[n, f, r, g] B[f, e, r, g].
void blasForward(const Btt &s, int64_t n, const float *x, const float *A,
                 const float *B, float *z, float *zt, float *y) {
  int64_t fr = s.f * s.r, rg = s.r * s.g;
  for (int64_t g = 0; g < s.g; ++g)
    // Z_g[n, (f r)] = X_g[n, a] · A_g[(f r), a]ᵀ, A_g rows strided by g·a.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(fr),
                int(s.a), 1.0f, x + g * s.a, int(s.g * s.a), A + g * s.a,
                int(s.g * s.a), 0.0f, z + g * fr, int(s.g * fr));
  for (int64_t i = 0; i < n; ++i) // the transpose in memory (g ↔ f r)
    for (int64_t g = 0; g < s.g; ++g)
      for (int64_t k = 0; k < fr; ++k)
        zt[(i * fr + k) * s.g + g] = z[(i * s.g + g) * fr + k];
  for (int64_t f = 0; f < s.f; ++f)
    // Y_f[n, e] = Zt_f[n, (r g)] · B_f[e, (r g)]ᵀ.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(s.e),
                int(rg), 1.0f, zt + f * rg, int(s.f * rg), B + f * s.e * rg,
                int(rg), 0.0f, y + f * s.e, int(s.f * s.e));
}

// The gradients of <dy, y> the same way: z recomputed, then per-block SGEMMs
// for dB, dzt, (transpose back) dA and dx.
void blasBackward(const Btt &s, int64_t n, const float *x, const float *A,
                  const float *B, const float *dy, float *z, float *zt,
                  float *dx, float *dA, float *dB) {
  int64_t fr = s.f * s.r, rg = s.r * s.g;
  for (int64_t g = 0; g < s.g; ++g)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(fr),
                int(s.a), 1.0f, x + g * s.a, int(s.g * s.a), A + g * s.a,
                int(s.g * s.a), 0.0f, z + g * fr, int(s.g * fr));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t g = 0; g < s.g; ++g)
      for (int64_t k = 0; k < fr; ++k)
        zt[(i * fr + k) * s.g + g] = z[(i * s.g + g) * fr + k];
  for (int64_t f = 0; f < s.f; ++f) {
    // dB_f[e, (r g)] = dY_fᵀ · Zt_f; dZt_f[n, (r g)] = dY_f · B_f (into zt).
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(s.e), int(rg),
                int(n), 1.0f, dy + f * s.e, int(s.f * s.e), zt + f * rg,
                int(s.f * rg), 0.0f, dB + f * s.e * rg, int(rg));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(rg),
                int(s.e), 1.0f, dy + f * s.e, int(s.f * s.e),
                B + f * s.e * rg, int(rg), 0.0f, zt + f * rg, int(s.f * rg));
  }
  for (int64_t i = 0; i < n; ++i) // dz: the transpose back (into z)
    for (int64_t g = 0; g < s.g; ++g)
      for (int64_t k = 0; k < fr; ++k)
        z[(i * s.g + g) * fr + k] = zt[(i * fr + k) * s.g + g];
  for (int64_t g = 0; g < s.g; ++g) {
    // dA_g[(f r), a] = dZ_gᵀ · X_g; dX_g[n, a] = dZ_g · A_g.
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(fr), int(s.a),
                int(n), 1.0f, z + g * fr, int(s.g * fr), x + g * s.a,
                int(s.g * s.a), 0.0f, dA + g * s.a, int(s.g * s.a));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(s.a),
                int(fr), 1.0f, z + g * fr, int(s.g * fr), A + g * s.a,
                int(s.g * s.a), 0.0f, dx + g * s.a, int(s.g * s.a));
  }
}

void naiveForward(const Btt &s, int64_t n, const float *x, const float *A,
                  const float *B, float *z, float *y) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t f = 0; f < s.f; ++f)
      for (int64_t r = 0; r < s.r; ++r)
        for (int64_t g = 0; g < s.g; ++g) {
          float acc = 0;
          for (int64_t a = 0; a < s.a; ++a)
            acc += x[i * s.g * s.a + g * s.a + a] *
                   A[((f * s.r + r) * s.g + g) * s.a + a];
          z[((i * s.f + f) * s.r + r) * s.g + g] = acc;
        }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t f = 0; f < s.f; ++f)
      for (int64_t e = 0; e < s.e; ++e) {
        float acc = 0;
        for (int64_t k = 0; k < s.r * s.g; ++k)
          acc += z[(i * s.f + f) * s.r * s.g + k] *
                 B[(f * s.e + e) * s.r * s.g + k];
        y[(i * s.f + f) * s.e + e] = acc;
      }
}

} // namespace

// Dense d × d forward: einstruct's JIT (cache-blocked for weights past L2)
// against one SGEMM, one thread, cross-checked.
bool denseTable(int64_t batch, int reps, std::mt19937 &rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  std::printf("\nCPU dense forward, batch %lld, 1 thread, median of %d\n",
              (long long)batch, reps);
  std::printf("%-14s %6s %12s %12s %10s %9s\n", "structure", "d",
              "einstruct ms", "openblas ms", "vs blas", "GFLOP/s");
  for (int64_t d : {1024, 2048, 4096}) {
    auto layer = buildNamed(*parseNamed("dense"), d, d);
    std::vector<float> x(size_t(batch * d)), W(size_t(d * d)),
        yJit(x.size()), yBlas(x.size());
    for (auto *v : {&x, &W})
      for (auto &e : *v)
        e = u(rng);
    auto jit = JitLayer::compile(*layer);
    if (!jit) {
      std::fprintf(stderr, "%s\n", jit.error().c_str());
      return false;
    }
    (*jit)->setThreads(1);
    double tJit = medianMs(
        [&] { (*jit)->forwardInto(x.data(), batch, {W.data()}, yJit.data()); },
        reps, 1);
    // W is [d_out][d_in] (structures.md's dense layout): y = x · Wᵀ.
    double tBlas = medianMs(
        [&] {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(batch),
                      int(d), int(d), 1.0f, x.data(), int(d), W.data(),
                      int(d), 0.0f, yBlas.data(), int(d));
        },
        reps, 1);
    if (double e = maxRelDiff(yJit, yBlas); e > 1e-4) {
      std::fprintf(stderr, "dense results differ: %.3g\n", e);
      return false;
    }
    std::printf("%-14s %6lld %12.2f %12.2f %9.2fx %9.2f\n", "dense",
                (long long)d, tJit, tBlas, tBlas / tJit,
                2.0 * double(batch) * double(d) * double(d) / (tJit * 1e6));
  }
  return true;
}

int main(int argc, char **argv) {
  openblas_set_num_threads(1);
  int64_t batch = argc > 1 ? std::atoll(argv[1]) : 256;
  int reps = argc > 2 ? std::atoi(argv[2]) : 5;
  struct Case {
    const char *spec;
    int64_t d;
  } cases[] = {{"monarch(64)", 4096}, {"btt(rank=2)", 4096},
               {"monarch(32)", 1024}};
  std::printf("CPU forward, batch %lld, 1 thread, median of %d; MACs counted "
              "once (GFLOP/s = 2·MACs/s)\n",
              (long long)batch, reps);
  const double peak = einstruct::bench::fmaPeakGflops();
  std::printf("single-core FMA peak (measured): %.0f GFLOP/s\n", peak);
  std::printf("%-14s %6s %12s %12s %12s %10s %10s %9s %7s\n", "structure",
              "d", "einstruct ms", "openblas ms", "naive ms", "vs blas",
              "vs naive", "GFLOP/s", "% peak");
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<std::string> backwardRows, threadRows;
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  for (auto &c : cases) {
    auto layer = buildNamed(*parseNamed(c.spec), c.d, c.d);
    auto an = analyze(*layer);
    const auto &cs = *an->classSizes;
    Btt s{cs[kGamma] == 1 ? 1 : cs[kGamma], cs[kAlpha], cs[kPhi], cs[kEpsilon],
          cs[kRho]};
    std::vector<float> x(size_t(batch * c.d)), A(size_t(s.f * s.r * s.g * s.a)),
        B(size_t(s.f * s.e * s.r * s.g)), dy(x.size());
    for (auto *v : {&x, &A, &B, &dy})
      for (auto &e : *v)
        e = u(rng);
    auto jit = JitLayer::compile(*layer);
    if (!jit) {
      std::fprintf(stderr, "%s\n", jit.error().c_str());
      return 1;
    }
    (*jit)->setThreads(1); // against single-threaded OpenBLAS
    std::vector<float> yJit(size_t(batch * c.d)), yBlas(yJit.size()),
        yNaive(yJit.size());
    std::vector<float> z(size_t(batch * s.g * s.f * s.r)), zt(z.size());
    std::vector<float> dxJit(x.size()), dAJit(A.size()), dBJit(B.size()),
        dxBlas(x.size()), dABlas(A.size()), dBBlas(B.size());
    auto jitForward = [&] {
      (*jit)->forwardInto(x.data(), batch, {A.data(), B.data()}, yJit.data());
    };
    auto blasFwd = [&] {
      blasForward(s, batch, x.data(), A.data(), B.data(), z.data(), zt.data(),
                  yBlas.data());
    };
    auto jitBackward = [&] {
      (*jit)->backwardInto(x.data(), dy.data(), batch, {A.data(), B.data()},
                           dxJit.data(), {dAJit.data(), dBJit.data()});
    };
    auto blasBwd = [&] {
      blasBackward(s, batch, x.data(), A.data(), B.data(), dy.data(), z.data(),
                   zt.data(), dxBlas.data(), dABlas.data(), dBBlas.data());
    };
    double tJit = medianMs(jitForward, reps);
    double tBlas = medianMs(blasFwd, reps);
    double tNaive = medianMs(
        [&] {
          naiveForward(s, batch, x.data(), A.data(), B.data(), z.data(),
                       yNaive.data());
        },
        std::max(1, reps / 2));
    double gflops = 2.0 * double(an->flops) * double(batch) / (tJit * 1e6);
    std::printf("%-14s %6lld %12.2f %12.2f %12.2f %9.2fx %9.2fx %9.2f %6.0f%%\n",
                c.spec, (long long)c.d, tJit, tBlas, tNaive, tBlas / tJit,
                tNaive / tJit, gflops, peak > 0 ? 100 * gflops / peak : 0.0);
    double e1 = maxRelDiff(yJit, yBlas), e2 = maxRelDiff(yNaive, yBlas);
    if (e1 > 1e-4 || e2 > 1e-4) {
      std::fprintf(stderr, "results differ: jit %.3g naive %.3g\n", e1, e2);
      return 1;
    }
    // Backward: dx, dA, dB into the caller's arrays, one warm-up call each
    // (cold caches and the pool's first allocations).
    double tJitB = medianMs(jitBackward, reps, 1);
    double tBlasB = medianMs(blasBwd, reps, 1);
    for (auto [mine, ref] : {std::pair{&dxJit, &dxBlas}, {&dAJit, &dABlas},
                             {&dBJit, &dBBlas}})
      if (double e = maxRelDiff(*mine, *ref); e > 1e-4) {
        std::fprintf(stderr, "gradients differ: %.3g\n", e);
        return 1;
      }
    char row[160];
    std::snprintf(row, sizeof row, "%-14s %6lld %12.2f %12.2f %9.2fx %12.2f",
                  c.spec, (long long)c.d, tJitB, tBlasB, tBlasB / tJitB,
                  tJitB / tJit);
    backwardRows.push_back(row);
    // All cores, OpenBLAS given as many threads.
    if (cores > 1) {
      (*jit)->setThreads(cores);
      openblas_set_num_threads(cores);
      double fJit = medianMs(jitForward, reps, 1);
      double fBlas = medianMs(blasFwd, reps, 1);
      double bJit = medianMs(jitBackward, reps, 1);
      double bBlas = medianMs(blasBwd, reps, 1);
      openblas_set_num_threads(1);
      if (maxRelDiff(yJit, yBlas) > 1e-4 || maxRelDiff(dAJit, dABlas) > 1e-4) {
        std::fprintf(stderr, "%d-thread results differ\n", cores);
        return 1;
      }
      std::snprintf(row, sizeof row,
                    "%-14s %6lld %10.2f %10.2f %8.2fx %10.2f %10.2f %8.2fx "
                    "%8.2fx",
                    c.spec, (long long)c.d, fJit, fBlas, fBlas / fJit, bJit,
                    bBlas, bBlas / bJit, tJit / fJit);
      threadRows.push_back(row);
    }
  }
  if (!denseTable(batch, reps, rng))
    return 1;
  std::printf("\nCPU backward (dx and both weight gradients, z recomputed), "
              "batch %lld, median of %d\n",
              (long long)batch, reps);
  std::printf("%-14s %6s %12s %12s %10s %12s\n", "structure", "d",
              "einstruct ms", "openblas ms", "vs blas", "bwd / fwd");
  for (const auto &row : backwardRows)
    std::printf("%s\n", row.c_str());
  if (!threadRows.empty()) {
    std::printf("\n%d threads (einstruct's batch chunks; OpenBLAS with %d "
                "threads), batch %lld, median of %d\n",
                cores, cores, (long long)batch, reps);
    std::printf("%-14s %6s %10s %10s %9s %10s %10s %9s %9s\n", "structure",
                "d", "fwd ms", "blas fwd", "vs blas", "bwd ms", "blas bwd",
                "vs blas", "vs 1 thr");
    for (const auto &row : threadRows)
      std::printf("%s\n", row.c_str());
  }
  std::printf("(vs blas / vs naive: time of the other ÷ einstruct's; > 1 "
              "means einstruct is faster)\n");
  return 0;
}
