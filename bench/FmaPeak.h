// This core's single-precision FMA peak, measured: 16 independent FMA chains
// (enough to cover FMA latency × throughput on current x86 cores) of the
// widest vectors the CPU has. What the "% of peak" columns divide by.
#pragma once
#include <chrono>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace einstruct::bench {

#if defined(__x86_64__)
// Sixteen accumulators as named variables (an array would live in memory).
#define EINSTRUCT_16(M)                                                        \
  M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13)   \
      M(14) M(15)
#define EINSTRUCT_FMA_PEAK(NAME, TARGET, VEC, SET1, FMA, LANES)                \
  __attribute__((target(TARGET))) inline double NAME(long iterations) {        \
    VEC x = SET1(1.0000001f), y = SET1(0.999999f);                             \
    EINSTRUCT_16(EINSTRUCT_DECLARE)                                            \
    auto start = std::chrono::steady_clock::now();                             \
    for (long k = 0; k < iterations; ++k) {                                    \
      EINSTRUCT_16(EINSTRUCT_STEP)                                             \
      __asm__ volatile("");                                                    \
    }                                                                          \
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - \
                                             start)                            \
                   .count();                                                   \
    volatile float sink = 0;                                                   \
    EINSTRUCT_16(EINSTRUCT_SINK)                                               \
    return 2.0 * LANES * 16 * double(iterations) / s / 1e9;                    \
  }
#define EINSTRUCT_SINK(i) sink = sink + reinterpret_cast<float *>(&a##i)[0];
#define EINSTRUCT_DECLARE(i) auto a##i = SET1(float(i));
#define EINSTRUCT_STEP(i) a##i = FMA(a##i, x, y);
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
EINSTRUCT_FMA_PEAK(fmaPeakAvx512, "avx512f", __m512, SET1, FMA, 16)
#undef SET1
#undef FMA
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
EINSTRUCT_FMA_PEAK(fmaPeakAvx2, "avx2,fma", __m256, SET1, FMA, 8)
#undef SET1
#undef FMA
#undef EINSTRUCT_FMA_PEAK
#undef EINSTRUCT_16
#undef EINSTRUCT_SINK
#undef EINSTRUCT_DECLARE
#undef EINSTRUCT_STEP
#endif

// GFLOP/s (2 per FMA lane), best of three 0.1 s runs; 0 where unknown.
inline double fmaPeakGflops() {
#if defined(__x86_64__)
  double best = 0;
  for (int run = 0; run < 3; ++run) {
    double g = __builtin_cpu_supports("avx512f") ? fmaPeakAvx512(1 << 21)
               : __builtin_cpu_supports("fma")   ? fmaPeakAvx2(1 << 21)
                                                 : 0;
    best = g > best ? g : best;
  }
  return best;
#else
  return 0;
#endif
}

} // namespace einstruct::bench
