// The Hopper (sm_90a) path of the fused two-stage kernel, for 16-bit layers
// whose operands have the canonical layouts below (Monarch, BTT of any rank
// and θ-space layers with b = d = 1, every size a multiple of 64 where it is
// a reduction or an output block). Same arithmetic as `twoStage` in
// einstruct_two_stage.cuh (stage 1 per γ-block g, stage 2 per φ-block f, z
// kept in shared memory, fp32 accumulation); what differs is how it runs:
//
// - a persistent grid: each CTA walks work items (token tile, f-chunk),
//   consecutive CTAs on the same token tile so x is read from HBM once;
// - one producer warp issues TMA tile loads (cp.async.bulk.tensor, 128-byte
//   swizzle) into a ring of STAGES slots guarded by mbarriers; one slot
//   holds a whole step's operands (stage 1: the x and W1 tiles of one g;
//   stage 2: the W2 tile of one (f, e-chunk));
// - optionally a cluster of CL CTAs shares each token tile, one f-chunk
//   each: every CTA loads 1/CL of each x tile and multicasts it to all, so x
//   crosses L2 once per tile instead of once per chunk; a slot is reused
//   only when the consumers of every CTA have released it (correct, but
//   measured 2-11x slower on an H200: the cluster runs in lock step);
// - NWG consumer warpgroups, each owning 64 tokens of the tile, run wgmma
//   (m64nNk16, accumulators in registers) and issue step s+1 before
//   finishing step s, on two accumulator sets;
// - stage 1 writes z with stmatrix.trans straight from the accumulators,
//   tokens contiguous, so stage 2 reads it as an M-major A operand; each
//   f-block's token chunks (16 bytes, 8 tokens) are rotated by fl to keep
//   those stores free of bank conflicts (stage 2 undoes the rotation when
//   it writes y);
// - y leaves through a swizzled staging tile and a TMA store.
// For the weight gradients the same kernel runs stage 1 alone and writes
// zT (kZOut), and weightGradHopper reduces dy·zT and dzT·x over tokens on
// wgmma.
//
// Canonical layouts (the emitter permutes weights into them when a role's
// weights are laid out otherwise, e.g. for the backward pass):
//   x  [n][G][A]      W1 [F][R][G][A]      W2 [F][E][R][G]      y [n][F][E]
// with z[t][f][r][g] in the forward's role names.
//
// Copied into a generated .cu after einstruct_sm90.cuh (its building
// blocks); the weight gradients are in einstruct_hopper_grad.cuh.
#ifndef EINSTRUCT_HOPPER_CUH
#define EINSTRUCT_HOPPER_CUH

namespace einstruct_cuda {
namespace hopper {

// ---- the kernel -------------------------------------------------------------

// Shared-memory plan of configuration H (G, A, F, E, R sizes; FC f-blocks
// per item; NWG consumer warpgroups of 64 tokens; STAGES ring slots).
template <class H> struct Layout {
  static constexpr int KA = H::A / 64;       // stage-1 k-chunks (one box each)
  static constexpr int K2 = H::R * H::G;     // stage-2 reduction (r, g)
  static constexpr int KC = K2 / 64;         // its k-chunks
  static constexpr int EC = H::E / 64;       // stage-2 output chunks per f
  static constexpr int N1 = H::FC * H::R;    // stage-1 columns (f, r)
  static constexpr int ROWS = 64 * H::NWG;   // tokens per item
  static constexpr int CHUNKS = (H::F + H::FC - 1) / H::FC;
  // A cluster of CL CTAs works on one token tile, CTA r on f-chunks
  // r, r + CL, ...; each loads ROWS/CL rows of every x tile for all of them.
  static constexpr int GROUPS = CHUNKS / H::CL;
  static constexpr int PIECE_ROWS = ROWS / H::CL;
  static constexpr int X_BYTES = ROWS * 128, W1_BYTES = N1 * 128;
  static constexpr int W2_BYTES = 64 * 128;
  static constexpr int STEP1 = KA * (X_BYTES + W1_BYTES);
  static constexpr int STEP2 = KC * W2_BYTES;
  static constexpr int SLOT = ((STEP1 > STEP2 ? STEP1 : STEP2) + 1023) / 1024 * 1024;
  static constexpr int Z_BYTES = H::FC * K2 * 128; // per consumer warpgroup
  static constexpr int Y_BYTES = 64 * 128;         // one staging tile
  static constexpr size_t ZOFF = (size_t)SLOT * H::STAGES;
  static constexpr size_t YOFF = ZOFF + (size_t)Z_BYTES * H::NWG;
  static constexpr size_t BAROFF = YOFF + (size_t)Y_BYTES * 2 * H::NWG;
  static constexpr size_t SMEM = BAROFF + 16 * H::STAGES + 1024; // + alignment
  static constexpr int THREADS = 128 * (H::NWG + 1);
  static_assert(H::A % 64 == 0 && K2 % 64 == 0 && H::E % 64 == 0,
                "reductions and output blocks are whole 64-element boxes");
  static_assert(N1 == 8 || N1 == 16 || N1 == 32 || N1 == 64 || N1 == 128,
                "stage-1 width FC*R must be a wgmma N this file wraps");
  static_assert(H::FC <= 256 && H::R <= 256 && ROWS <= 256, "TMA box extent");
  static_assert(H::STAGES >= 2 && (H::NWG == 1 || H::NWG == 2), "pipeline");
  static_assert(H::CL >= 1 && H::CL <= 8 && CHUNKS % H::CL == 0 &&
                    (H::CL == 1 || H::F % H::FC == 0) && PIECE_ROWS % 8 == 0,
                "a cluster splits whole chunks and whole 8-row swizzle atoms");
};

// Runs steps 0..count-1 with two accumulator sets: step s+1's wgmma is
// issued before step s is finished, so the tensor cores work while the
// previous step's results are stored. issue(s, acc) waits for the step's
// operands and commits one wgmma group; finish(s, acc) sees it complete.
template <int NR, class Issue, class Finish>
__device__ __forceinline__ void pipelined(int count, Issue issue,
                                          Finish finish) {
  float a0[NR], a1[NR];
  if (count <= 0)
    return;
  issue(0, a0);
  int s = 0;
  for (; s + 2 < count; s += 2) {
    issue(s + 1, a1);
    wgmmaWait<1>();
    pin(a0);
    finish(s, a0);
    issue(s + 2, a0);
    wgmmaWait<1>();
    pin(a1);
    finish(s + 1, a1);
  }
  if (s + 1 < count) {
    issue(s + 1, a1);
    wgmmaWait<1>();
    pin(a0);
    finish(s, a0);
    wgmmaWait<0>();
    pin(a1);
    finish(s + 1, a1);
  } else {
    wgmmaWait<0>();
    pin(a0);
    finish(s, a0);
  }
}

// kZOut: stage 1 only, z written to HBM instead of y (tmY then maps zT
// [f][r][g][t], tokens contiguous, rows padded): what the weight gradients
// read. Its z tiles are not rotated (no stage 2 to undo it), so its stores
// take 8-way bank conflicts, a small cost beside the HBM write.
template <class H, class T, bool kZOut = false>
__global__ void __launch_bounds__(Layout<H>::THREADS, 1)
    twoStageHopper(const __grid_constant__ CUtensorMap tmX,
                   const __grid_constant__ CUtensorMap tmW1,
                   const __grid_constant__ CUtensorMap tmW2,
                   const __grid_constant__ CUtensorMap tmY, long long n) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  using L = Layout<H>;
  extern __shared__ unsigned char smemRaw[];
  unsigned char *smem =
      smemRaw + ((1024 - (smemAddr(smemRaw) & 1023)) & 1023); // 1 KiB aligned
  unsigned char *ring = smem;
  uint64_t *full = reinterpret_cast<uint64_t *>(smem + L::BAROFF);
  uint64_t *empty = full + H::STAGES;
  const int wg = threadIdx.x / 128, tid = threadIdx.x % 128;
  if (threadIdx.x == 0) {
    for (int s = 0; s < H::STAGES; ++s) {
      barInit(&full[s], 1);
      // lane 0 of every consumer warp of every CTA in the cluster
      barInit(&empty[s], 4 * H::NWG * H::CL);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  uint32_t rank = 0, first = blockIdx.x, stride = gridDim.x;
  if constexpr (H::CL > 1) {
    rank = clusterRank(), first = clusterIndex(), stride = clusterCount();
    clusterSync(); // every barrier of the cluster initialised
  } else {
    __syncthreads();
  }
  // Items of this CTA: (token tile, chunk group); its chunk in the group is
  // its rank.
  const long long items = (n + L::ROWS - 1) / L::ROWS * L::GROUPS;
  auto chunkOf = [&](long long item) {
    return (int)(item % L::GROUPS) * H::CL + (int)rank;
  };

  if (wg == 0) { // producer: one thread issues every load
    if (tid == 0) {
      uint32_t it = 0;
      for (long long item = first; item < items; item += stride) {
        const int f0 = chunkOf(item) * H::FC;
        const int fHere = H::F - f0 < H::FC ? H::F - f0 : H::FC;
        const int t0 = (int)(item / L::GROUPS * L::ROWS);
        for (int g = 0; g < H::G; ++g, ++it) {
          const int slot = it % H::STAGES;
          barWait(&empty[slot], ((it / H::STAGES) & 1) ^ 1);
          unsigned char *dst = ring + (size_t)slot * L::SLOT;
          barExpect(&full[slot], L::STEP1);
          for (int ka = 0; ka < L::KA; ++ka) {
            if constexpr (H::CL > 1)
              tmaLoad2Multicast(dst + ka * L::X_BYTES + rank * L::PIECE_ROWS * 128,
                                &tmX, &full[slot], g * H::A + ka * 64,
                                t0 + (int)rank * L::PIECE_ROWS,
                                (uint16_t)((1u << H::CL) - 1));
            else
              tmaLoad2(dst + ka * L::X_BYTES, &tmX, &full[slot],
                       g * H::A + ka * 64, t0);
          }
          for (int ka = 0; ka < L::KA; ++ka)
            tmaLoad2(dst + L::KA * L::X_BYTES + ka * L::W1_BYTES, &tmW1,
                     &full[slot], g * H::A + ka * 64, f0 * H::R);
        }
        for (int s = 0; s < (kZOut ? 0 : fHere * L::EC); ++s, ++it) {
          const int fl = s / L::EC, ec = s % L::EC;
          const int slot = it % H::STAGES;
          barWait(&empty[slot], ((it / H::STAGES) & 1) ^ 1);
          unsigned char *dst = ring + (size_t)slot * L::SLOT;
          barExpect(&full[slot], L::STEP2);
          for (int kc = 0; kc < L::KC; ++kc)
            tmaLoad2(dst + kc * L::W2_BYTES, &tmW2, &full[slot], kc * 64,
                     (f0 + fl) * H::E + ec * 64);
        }
      }
    }
  } else {
    // Consumer warpgroup c: tokens [64c, 64c + 64) of each item.
    const int c = wg - 1, warp = tid / 32, lane = tid % 32;
    // A slot read by this warp is free again, in every CTA that multicast
    // into it (all of the cluster).
    auto release = [&](uint64_t *bar) {
      if constexpr (H::CL > 1) {
#pragma unroll
        for (int cta = 0; cta < H::CL; ++cta)
          barArriveRemote(bar, cta);
      } else {
        barArrive(bar);
      }
    };
    const int i8 = lane & 7, h = (lane >> 3) & 1; // stmatrix row, matrix
    const uint32_t zBase = smemAddr(smem + L::ZOFF + (size_t)c * L::Z_BYTES);
    const uint32_t yBase = smemAddr(smem + L::YOFF + (size_t)c * 2 * L::Y_BYTES);
    const uint32_t ringBase = smemAddr(ring);
    uint32_t it = 0, stores = 0;
    for (long long item = first; item < items; item += stride) {
      const int f0 = chunkOf(item) * H::FC;
      const int fHere = H::F - f0 < H::FC ? H::F - f0 : H::FC;
      const int t0 = (int)(item / L::GROUPS * L::ROWS) + 64 * c;

      // Stage 1, step g: z[t][f][r][g] for the chunk's f, r.
      auto issue1 = [&](int g, float(&acc)[L::N1 / 2]) {
        const uint32_t step = it + g, slot = step % H::STAGES;
        barWait(&full[slot], (step / H::STAGES) & 1);
        const uint32_t s = ringBase + slot * L::SLOT;
        wgmmaFence();
  #pragma unroll
        for (int ka = 0; ka < L::KA; ++ka)
  #pragma unroll
          for (int ks = 0; ks < 4; ++ks)
            Wgmma<L::N1, T, 0>::run(
                acc, sw128(s + ka * L::X_BYTES + c * 8192 + 32 * ks),
                sw128(s + L::KA * L::X_BYTES + ka * L::W1_BYTES + 32 * ks),
                ka | ks);
        wgmmaCommit();
      };
      auto finish1 = [&](int g, float(&acc)[L::N1 / 2]) {
        if (lane == 0)
          release(&empty[(it + g) % H::STAGES]);
        // Columns n = fl·R + r; rows are tokens 16·warp + 8·h + (0..7).
        // Row k = r·G + g of f-block fl's tile gets those 8 tokens as one
        // 16-byte chunk: chunk (2·warp + h + fl) mod 8, swizzled with k.
  #pragma unroll
        for (int j = 0; j < L::N1 / 8; ++j) {
          const int nn = 8 * j + i8, r = nn % H::R, fl = nn / H::R;
          const int k = r * H::G + g;
          const int chunk = ((2 * warp + h + (kZOut ? 0 : fl)) & 7) ^ (k & 7);
          stmatrix2<true>(zBase + fl * (L::K2 * 128) + k * 128 + chunk * 16,
                          pack2<T>(acc[4 * j], acc[4 * j + 1]),
                          pack2<T>(acc[4 * j + 2], acc[4 * j + 3]));
        }
      };
      if (kZOut) { // the previous item's z stores have left shared memory
        if (tid == 0)
          tmaStoreReadWait<0>();
        groupSync(1 + c);
      }
      pipelined<L::N1 / 2>(H::G, issue1, finish1);
      it += H::G;
      fenceAsyncShared();
      groupSync(1 + c);
      if (kZOut) {
        if (tid == 0)
          for (int fl = 0; fl < fHere; ++fl)
            for (int kc = 0; kc < L::KC; ++kc)
              tmaStore2(&tmY,
                        smem + L::ZOFF + (size_t)c * L::Z_BYTES +
                            (size_t)(fl * L::K2 + kc * 64) * 128,
                        t0, (f0 + fl) * L::K2 + kc * 64);
        continue;
      }

      // Stage 2, step (fl, ec): y[t][f0 + fl][64·ec ..] = z_fl · W2ᵀ.
      auto issue2 = [&](int s, float(&acc)[32]) {
        const int fl = s / L::EC;
        const uint32_t step = it + s, slot = step % H::STAGES;
        barWait(&full[slot], (step / H::STAGES) & 1);
        const uint32_t w = ringBase + slot * L::SLOT;
        const uint32_t zf = zBase + fl * (L::K2 * 128);
        wgmmaFence();
  #pragma unroll
        for (int kc = 0; kc < L::KC; ++kc)
  #pragma unroll
          for (int ks = 0; ks < 4; ++ks)
            Wgmma<64, T, 1>::run(acc, sw128(zf + (kc * 64 + ks * 16) * 128),
                                 sw128(w + kc * L::W2_BYTES + 32 * ks),
                                 kc | ks);
        wgmmaCommit();
      };
      auto finish2 = [&](int s, float(&acc)[32]) {
        const int fl = s / L::EC, ec = s % L::EC;
        if (lane == 0)
          release(&empty[(it + s) % H::STAGES]);
        const uint32_t yb = yBase + (stores & 1) * L::Y_BYTES;
        if (tid == 0)
          tmaStoreReadWait<1>(); // the store that last read yb is done
        groupSync(1 + c);
        // Accumulator row p holds token chunk (p/8 - fl) mod 8 (the rotation).
        const int t = (((2 * warp + h) - fl) & 7) * 8 + i8;
  #pragma unroll
        for (int j = 0; j < 8; ++j)
          stmatrix2<false>(yb + t * 128 + ((j ^ (t & 7)) << 4),
                           pack2<T>(acc[4 * j], acc[4 * j + 1]),
                           pack2<T>(acc[4 * j + 2], acc[4 * j + 3]));
        fenceAsyncShared();
        groupSync(1 + c);
        if (tid == 0)
          tmaStore2(&tmY, smem + (yb - smemAddr(smem)), (f0 + fl) * H::E + ec * 64,
                    t0);
        ++stores;
      };
      pipelined<32>(fHere * L::EC, issue2, finish2);
      it += fHere * L::EC;
    }
    if (tid == 0)
      tmaStoreWait();
  }
  if constexpr (H::CL > 1)
    clusterSync(); // no CTA leaves while others may still signal it
#endif
}

// y = layer(x) with canonical operands (see the top of this file); or, when
// zRow > 0, y is zT [F·R·G][zRow] (tokens contiguous, zRow ≥ n a multiple
// of 8) and only stage 1 runs. Returns 0 or a status (EINSTRUCT_ERR_* of the
// generated header, or a cudaError_t); n ≤ INT_MAX (TMA coordinates).
template <class H, class T>
int launch(const T *x, const T *w1, const T *w2, T *y, long long n,
           cudaStream_t stream, long long zRow = 0) {
  using L = Layout<H>;
  if (n > 0x7fffffffLL)
    return EINSTRUCT_ERR_INVALID_ARGUMENT;
  auto kernel = zRow ? twoStageHopper<H, T, true> : twoStageHopper<H, T, false>;
  int device = 0;
  DeviceLimits lim;
  cudaError_t e = cudaGetDevice(&device);
  if (e == cudaSuccess)
    e = deviceLimits(device, lim);
  if (e != cudaSuccess)
    return (int)e;
  if ((size_t)lim.optin < L::SMEM)
    return EINSTRUCT_ERR_SHARED_MEMORY;
  e = zRow ? sizeKernel<twoStageHopper<H, T, true>>(device, L::SMEM)
           : sizeKernel<twoStageHopper<H, T, false>>(device, L::SMEM);
  if (e != cudaSuccess)
    return (int)e;
  const cuuint64_t din = (cuuint64_t)H::G * H::A, dout = (cuuint64_t)H::F * H::E;
  thread_local CachedMap mx, mw1, mw2, my, mz;
  const bool mapped =
      cachedTensorMap<T>(mx, device, x, din, (cuuint64_t)n, L::PIECE_ROWS) &&
      cachedTensorMap<T>(mw1, device, w1, din, (cuuint64_t)H::F * H::R, L::N1) &&
      (zRow ? cachedTensorMap<T>(mz, device, y, (cuuint64_t)zRow,
                                 (cuuint64_t)H::F * L::K2, 64)
            : cachedTensorMap<T>(mw2, device, w2, L::K2, dout, 64) &&
                  cachedTensorMap<T>(my, device, y, dout, (cuuint64_t)n, 64));
  if (!mapped)
    return (int)cudaErrorInvalidValue;
  // A persistent grid: one CTA per multiprocessor, or as many clusters of
  // CL as the device holds at once.
  const long long items = (n + L::ROWS - 1) / L::ROWS * L::GROUPS;
  cudaLaunchConfig_t cfg = {};
  cudaLaunchAttribute attr[1];
  cfg.blockDim = dim3(L::THREADS);
  cfg.dynamicSmemBytes = L::SMEM;
  cfg.stream = stream;
  long long slots = lim.sms;
  if constexpr (H::CL > 1) {
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = H::CL;
    attr[0].val.clusterDim.y = attr[0].val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    static int clusters[64] = {}; // per device, asked once
    int here = device >= 0 && device < 64 ? clusters[device] : 0;
    if (here == 0) {
      cfg.gridDim = dim3((unsigned)(lim.sms / H::CL * H::CL));
      e = cudaOccupancyMaxActiveClusters(&here, kernel, &cfg);
      if (e != cudaSuccess)
        return (int)e;
      if (here < 1)
        return EINSTRUCT_ERR_SHARED_MEMORY;
      if (device >= 0 && device < 64)
        clusters[device] = here;
    }
    slots = here;
  }
  cfg.gridDim = dim3((unsigned)((items < slots ? items : slots) * H::CL));
  e = zRow ? cudaLaunchKernelEx(&cfg, kernel, mx.map, mw1.map, mw1.map, mz.map, n)
           : cudaLaunchKernelEx(&cfg, kernel, mx.map, mw1.map, mw2.map, my.map, n);
  return (int)(e != cudaSuccess ? e : cudaGetLastError());
}

// Weights of configuration C (a TwoStageConfig, b = d = 1) copied into the
// canonical layouts W1 [F][R][G][A] and W2 [F][E][R][G].
template <class C, class T>
__global__ void canonicalWeights(const T *__restrict__ w1,
                                 const T *__restrict__ w2, T *__restrict__ o1,
                                 T *__restrict__ o2) {
  constexpr long long n1 = (long long)C::F * C::R * C::G * C::A;
  constexpr long long n2 = (long long)C::F * C::E * C::R * C::G;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
       i < n1 + n2; i += (long long)gridDim.x * blockDim.x) {
    if (i < n1) {
      const long long a = i % C::A, g = i / C::A % C::G,
                      r = i / ((long long)C::A * C::G) % C::R,
                      f = i / ((long long)C::A * C::G * C::R);
      o1[i] = w1[f * C::W1F + r * C::W1R + g * C::W1G + a * C::W1A];
    } else {
      const long long j = i - n1, g = j % C::G, r = j / C::G % C::R,
                      e = j / ((long long)C::G * C::R) % C::E,
                      f = j / ((long long)C::G * C::R * C::E);
      o2[j] = w2[f * C::W2F + e * C::W2E + r * C::W2R + g * C::W2G];
    }
  }
}

// Whether configuration C's weights already have the canonical layouts.
// (A stride of a size-1 class is never used.)
constexpr bool strideIs(long long size, long long stride, long long want) {
  return size == 1 || stride == want;
}
template <class C> constexpr bool weightsCanonical() {
  return strideIs(C::A, C::W1A, 1) && strideIs(C::G, C::W1G, C::A) &&
         strideIs(C::R, C::W1R, (long long)C::G * C::A) &&
         strideIs(C::F, C::W1F, (long long)C::R * C::G * C::A) &&
         strideIs(C::G, C::W2G, 1) && strideIs(C::R, C::W2R, C::G) &&
         strideIs(C::E, C::W2E, (long long)C::R * C::G) &&
         strideIs(C::F, C::W2F, (long long)C::E * C::R * C::G);
}

// launch() for a layer whose weights may need the canonical copy, made in
// stream-ordered scratch memory (freed on the stream after the kernel).
template <class H, class C, class T>
int launchLayer(const T *x, const T *w1, const T *w2, T *y, long long n,
                cudaStream_t stream, long long zRow = 0) {
  if constexpr (weightsCanonical<C>()) {
    return launch<H, T>(x, w1, w2, y, n, stream, zRow);
  } else {
    constexpr long long n1 = (long long)C::F * C::R * C::G * C::A;
    constexpr long long n2 = (long long)C::F * C::E * C::R * C::G;
    void *scratch = nullptr;
    cudaError_t e = cudaMallocAsync(&scratch, sizeof(T) * (size_t)(n1 + n2 + 8), stream);
    if (e != cudaSuccess)
      return (int)e;
    T *o1 = static_cast<T *>(scratch);
    T *o2 = o1 + (n1 + 7) / 8 * 8; // 16-byte aligned
    canonicalWeights<C, T><<<264, 256, 0, stream>>>(w1, w2, o1, o2);
    int rc = (int)cudaGetLastError();
    if (!rc)
      rc = launch<H, T>(x, o1, o2, y, n, stream, zRow);
    const cudaError_t f = cudaFreeAsync(scratch, stream);
    return rc ? rc : (int)f;
  }
}

} // namespace hopper
} // namespace einstruct_cuda
#endif // EINSTRUCT_HOPPER_CUH
