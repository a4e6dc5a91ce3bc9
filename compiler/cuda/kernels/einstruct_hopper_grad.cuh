// The weight gradients of the sm_90a path (see einstruct_hopper.cuh): a
// reduction over tokens on wgmma, both operands read as TMA tiles. Copied
// into a generated .cu after einstruct_sm90.cuh and einstruct_hopper.cuh.
#ifndef EINSTRUCT_HOPPER_GRAD_CUH
#define EINSTRUCT_HOPPER_GRAD_CUH

namespace einstruct_cuda {
namespace hopper {

// partial[split][p][m'][n] = Σ_{t in split} Lhs(t, p·LB + m) · Rhs(t, p·RB + n)
// for p < P, m < M, n < N (multiples of 64), with m' = (m % MF)·MR + m / MF
// (MR = 1: m' = m). An operand is stored either token-major ([t][column],
// TA/TB = 1: an M- or N-major wgmma operand) or token-contiguous
// ([column][t], TA/TB = 0: K-major), and read as 64 × 64 TMA tiles, so the
// reduction over tokens runs on wgmma with the accumulator in registers.
// Token splits are whole 64-token tiles (a function of n and the split
// count only), summed later in split order by reduceSplits: deterministic.
template <class W> struct GradLayout {
  static constexpr int STAGES = 6, SLOT = 2 * 64 * 128;
  static constexpr size_t SMEM = (size_t)STAGES * SLOT + 16 * STAGES + 1024;
  static constexpr int MT = W::M / 64, NT = W::N / 64;
  static_assert(W::M % 64 == 0 && W::N % 64 == 0, "whole 64-column boxes");
};

template <class W, class T>
__global__ void __launch_bounds__(256, 1)
    weightGradHopper(const __grid_constant__ CUtensorMap tmL,
                     const __grid_constant__ CUtensorMap tmR,
                     float *__restrict__ partial, long long n, int splits) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  using L = GradLayout<W>;
  extern __shared__ unsigned char smemRaw[];
  unsigned char *smem =
      smemRaw + ((1024 - (smemAddr(smemRaw) & 1023)) & 1023);
  uint64_t *full = reinterpret_cast<uint64_t *>(smem + (size_t)L::STAGES * L::SLOT);
  uint64_t *empty = full + L::STAGES;
  const int mc = blockIdx.x % L::MT, nc = blockIdx.x / L::MT, p = blockIdx.y;
  const int split = blockIdx.z;
  const long long tiles = (n + 63) / 64, per = (tiles + splits - 1) / splits;
  const long long tBegin = split * per;
  const long long tEnd = tBegin + per < tiles ? tBegin + per : tiles;
  const int count = tEnd > tBegin ? (int)(tEnd - tBegin) : 0;
  if (threadIdx.x == 0) {
    for (int s = 0; s < L::STAGES; ++s) {
      barInit(&full[s], 1);
      barInit(&empty[s], 4);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  if (threadIdx.x < 128) { // producer
    if (threadIdx.x == 0)
      for (int i = 0; i < count; ++i) {
        const int slot = i % L::STAGES;
        barWait(&empty[slot], ((i / L::STAGES) & 1) ^ 1);
        unsigned char *dst = smem + (size_t)slot * L::SLOT;
        barExpect(&full[slot], L::SLOT);
        const int t = (int)((tBegin + i) * 64);
        const int lc = p * W::LB + mc * 64, rc = p * W::RB + nc * 64;
        tmaLoad2(dst, &tmL, &full[slot], W::TA ? lc : t, W::TA ? t : lc);
        tmaLoad2(dst + 8192, &tmR, &full[slot], W::TB ? rc : t, W::TB ? t : rc);
      }
    return;
  }
  const int tid = threadIdx.x - 128, warp = tid / 32, lane = tid % 32;
  float acc[32];
#pragma unroll
  for (int i = 0; i < 32; ++i)
    acc[i] = 0.0f;
  const uint32_t base = smemAddr(smem);
  for (int i = 0; i < count; ++i) {
    const int slot = i % L::STAGES;
    barWait(&full[slot], (i / L::STAGES) & 1);
    const uint32_t s = base + slot * L::SLOT;
    wgmmaFence();
#pragma unroll
    for (int ks = 0; ks < 4; ++ks) // 16 tokens: 16 rows, or 32 bytes of each
      Wgmma<64, T, W::TA, W::TB>::run(acc, sw128(s + ks * (W::TA ? 2048 : 32)),
                                      sw128(s + 8192 + ks * (W::TB ? 2048 : 32)),
                                      1);
    wgmmaCommit();
    wgmmaWait<1>();
    pin(acc);
    if (i > 0 && lane == 0)
      barArrive(&empty[(i - 1) % L::STAGES]);
  }
  wgmmaWait<0>();
  pin(acc);
  float *out = partial + ((long long)split * W::P + p) * W::M * W::N;
#pragma unroll
  for (int j = 0; j < 8; ++j)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int m = mc * 64 + 16 * warp + 8 * hh + lane / 4;
      const int mOut = (m % W::MF) * W::MR + m / W::MF;
      const int col = nc * 64 + 8 * j + 2 * (lane % 4);
      *reinterpret_cast<float2 *>(out + (long long)mOut * W::N + col) =
          make_float2(acc[4 * j + 2 * hh], acc[4 * j + 2 * hh + 1]);
    }
#endif
}

// Launches weightGradHopper for W over Lhs and Rhs, row-major matrices of
// (rows, width) elements (tokens are the rows of a TA/TB = 1 operand, the
// columns otherwise), into `partial` with `splits` token splits.
template <class W, class T>
int launchWeightGrad(const T *lhs, long long lRows, long long lWidth,
                     const T *rhs, long long rRows, long long rWidth,
                     float *partial, long long n, int splits,
                     cudaStream_t stream) {
  using L = GradLayout<W>;
  if (n > 0x7fffffffLL)
    return EINSTRUCT_ERR_INVALID_ARGUMENT;
  int device = 0;
  DeviceLimits lim;
  cudaError_t e = cudaGetDevice(&device);
  if (e == cudaSuccess)
    e = deviceLimits(device, lim);
  if (e == cudaSuccess)
    e = sizeKernel<weightGradHopper<W, T>>(device, L::SMEM);
  if (e != cudaSuccess)
    return (int)e;
  thread_local CachedMap ml, mr;
  if (!cachedTensorMap<T>(ml, device, lhs, (cuuint64_t)lWidth, (cuuint64_t)lRows, 64) ||
      !cachedTensorMap<T>(mr, device, rhs, (cuuint64_t)rWidth, (cuuint64_t)rRows, 64))
    return (int)cudaErrorInvalidValue;
  const dim3 grid((unsigned)(L::MT * L::NT), (unsigned)W::P, (unsigned)splits);
  weightGradHopper<W, T><<<grid, 256, L::SMEM, stream>>>(ml.map, mr.map, partial,
                                                        n, splits);
  return (int)cudaGetLastError();
}
} // namespace hopper
} // namespace einstruct_cuda
#endif // EINSTRUCT_HOPPER_GRAD_CUH
