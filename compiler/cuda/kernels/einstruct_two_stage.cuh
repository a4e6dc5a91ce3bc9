// The fused kernels behind every generated CUDA layer (the emitter copies this
// file into each generated .cu, so the output directory stands alone).
//
// A θ-space layer (structures.md §1) is two batched products:
//   stage 1, per γ-block g:  z[(t,b), (f,d,r)] = Σ_a x[t,g,b,a] · W1[f,d,r,g,a]
//   stage 2, per φ-block f:  y[(t,d), e]      = Σ_{r,g,b} z[t,f,d,r,g,b] · W2[f,e,r,g,b]
// `twoStage` does both in one kernel: a block owns a tile of tokens and a chunk
// of f, keeps its z tile in shared memory, and applies the (g,f) permutation
// by where stage 1 writes z. The backward pass w.r.t. the input is the same
// computation with the roles of the classes swapped (g↔f, b↔d, a↔e, W1↔W2);
// the emitter writes a second configuration with those strides. Weight
// gradients are reductions over tokens (`weightGrad` + `reduceSplits`),
// split over a fixed number of token ranges and summed in a fixed order, so
// results are deterministic.
//
// A configuration C supplies compile-time sizes (G,B,A,F,D,E,R), the strides
// of every operand in elements, the tile (TT tokens, FC blocks of f) and the
// column limits that implement zero padding / truncation of x and y.
#ifndef EINSTRUCT_TWO_STAGE_CUH
#define EINSTRUCT_TWO_STAGE_CUH
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>
#include <stdint.h>
#include <type_traits>

namespace einstruct_cuda {

constexpr int kThreads = 256; // 8 warps
constexpr int kMT = 64;       // rows of a block product
constexpr int kNT = 64;       // columns of a block product
constexpr int kKT = 64;       // reduction chunk staged in shared memory

// Row padding in elements: rows stay 16-byte aligned (vector stores, WMMA)
// and successive rows start on different banks.
template <class T> struct RowPad { static constexpr int value = 8; };
template <> struct RowPad<float> { static constexpr int value = 4; };

__device__ __forceinline__ float toFloat(float v) { return v; }
__device__ __forceinline__ float toFloat(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
__device__ __forceinline__ float toFloat(__half v) { return __half2float(v); }
template <class T> __device__ __forceinline__ T fromFloat(float v);
template <> __device__ __forceinline__ float fromFloat<float>(float v) {
  return v;
}
template <> __device__ __forceinline__ __nv_bfloat16 fromFloat(float v) {
  return __float2bfloat16(v);
}
template <> __device__ __forceinline__ __half fromFloat(float v) {
  return __float2half(v);
}

// A kMT×kNT accumulator C[m][n] += Σ_k As[m][k]·Bs[n][k] with both operands in
// shared memory, k contiguous. 16-bit types use the tensor cores through WMMA
// (fp32 accumulation); float uses the SIMT units.
template <class T> struct BlockAcc {
  // Warp w owns row tile (w & 3) and column tiles 2·(w>>2) and 2·(w>>2)+1.
  nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> acc[2];

  __device__ void zero() {
    nvcuda::wmma::fill_fragment(acc[0], 0.0f);
    nvcuda::wmma::fill_fragment(acc[1], 0.0f);
  }
  // KE: the k columns that can be non-zero (a multiple of 16, ≤ kKT).
  template <int KE = kKT>
  __device__ void mma(const T *As, int lda, const T *Bs, int ldb) {
    using namespace nvcuda;
    const int w = threadIdx.x >> 5, mt = w & 3, nt = (w >> 2) * 2;
#pragma unroll
    for (int k = 0; k < KE; k += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
      wmma::load_matrix_sync(a, As + mt * 16 * lda + k, lda);
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
        wmma::load_matrix_sync(b, Bs + (nt + i) * 16 * ldb + k, ldb);
        wmma::mma_sync(acc[i], a, b, acc[i]);
      }
    }
  }
  // Calls f(m, n, value) for each element this thread holds; `scratch` is
  // 8·256 floats of shared memory (one 16×16 tile per warp).
  template <class Fn> __device__ void forEach(float *scratch, Fn f) {
    using namespace nvcuda;
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int mt = w & 3, nt = (w >> 2) * 2;
    float *s = scratch + w * 256;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      wmma::store_matrix_sync(s, acc[i], 16, wmma::mem_row_major);
      __syncwarp();
      for (int e = lane; e < 256; e += 32)
        f(mt * 16 + e / 16, (nt + i) * 16 + e % 16, s[e]);
      __syncwarp();
    }
  }
};

template <> struct BlockAcc<float> {
  // Thread (ty, tx) = (tid/16, tid%16) owns rows ty+16i and columns tx+16j.
  float acc[4][4];

  __device__ void zero() {
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j)
        acc[i][j] = 0.0f;
  }
  template <int KE = kKT>
  __device__ void mma(const float *As, int lda, const float *Bs, int ldb) {
    const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
#pragma unroll 4
    for (int k = 0; k < KE; ++k) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        a[i] = As[(ty + 16 * i) * lda + k];
        b[i] = Bs[(tx + 16 * i) * ldb + k];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
          acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
  }
  template <class Fn> __device__ void forEach(float *, Fn f) {
    const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j)
        f(ty + 16 * i, tx + 16 * j, acc[i][j]);
  }
};

template <class T> __host__ __device__ constexpr int rowLen() { return kKT + RowPad<T>::value; }

// Elements of one staged tile each thread moves: 64 rows × kKT.
constexpr int kPer = kMT * kKT / kThreads;

// Where element (or vector of V elements) j of this thread's share of a tile
// goes: row and k. With kFast, consecutive threads take consecutive k
// (coalesced when k has unit stride in memory); otherwise consecutive rows.
template <bool kFast, int V>
__device__ __forceinline__ void tilePos(int j, int &row, int &k) {
  const int idx = threadIdx.x + j * kThreads;
  if constexpr (kFast) {
    row = idx / (kKT / V);
    k = idx % (kKT / V) * V;
  } else {
    static_assert(V == 1, "row-fast tiles load single elements");
    row = idx % kMT;
    k = idx / kMT;
  }
}

// 16-byte vector of `V` elements, or the element itself.
template <class T, int V> struct Chunk { using type = uint4; };
template <class T> struct Chunk<T, 1> { using type = T; };

// The block-product loop shared by every kernel: `steps` staged chunks, each
// an A tile (rows × kKT) and a B tile, accumulated over kSteps consecutive
// chunks and then handed to `epi(step, acc)`. A chunk's global loads are
// issued into registers before the previous chunk's product runs, so the
// memory latency overlaps the tensor-core work. fetchA(s, row, k) and
// fetchB(s, row, k) return AV (BV) elements starting at k, zero outside the
// operands: a 16-byte vector when AV > 1, else one element. When `aShared`
// is given (fetchA is nullptr), A comes from shared memory instead:
// aShared(s) points at the chunk, with leading dimension lda. KE < kKT
// when every chunk's k columns past KE are zero (a short reduction): the
// products skip them.
template <class T, bool AkFast, bool BkFast, int AV, int BV, int KE = kKT,
          class FA, class FB, class AS, class Epi>
__device__ __forceinline__ void blockProducts(int steps, int kSteps, FA fetchA,
                                              FB fetchB, AS aShared, int lda,
                                              T *As, T *Bs, float *scratch,
                                              Epi epi) {
  constexpr int lk = rowLen<T>();
  constexpr bool fromShared = std::is_same<FA, std::nullptr_t>::value;
  using CA = typename Chunk<T, AV>::type;
  using CB = typename Chunk<T, BV>::type;
  CA ra[kPer / AV];
  CB rb[kPer / BV];
  auto load = [&](int s) {
    if constexpr (!fromShared) {
#pragma unroll
      for (int j = 0; j < kPer / AV; ++j) {
        int row, k;
        tilePos<AkFast, AV>(j, row, k);
        ra[j] = fetchA(s, row, k);
      }
    }
#pragma unroll
    for (int j = 0; j < kPer / BV; ++j) {
      int row, k;
      tilePos<BkFast, BV>(j, row, k);
      rb[j] = fetchB(s, row, k);
    }
  };
  BlockAcc<T> acc;
  if (steps > 0)
    load(0);
  for (int s = 0; s < steps; ++s) {
    if constexpr (!fromShared) {
#pragma unroll
      for (int j = 0; j < kPer / AV; ++j) {
        int row, k;
        tilePos<AkFast, AV>(j, row, k);
        *reinterpret_cast<CA *>(&As[row * lk + k]) = ra[j];
      }
    }
#pragma unroll
    for (int j = 0; j < kPer / BV; ++j) {
      int row, k;
      tilePos<BkFast, BV>(j, row, k);
      *reinterpret_cast<CB *>(&Bs[row * lk + k]) = rb[j];
    }
    __syncthreads();
    if (s + 1 < steps)
      load(s + 1);
    if (s % kSteps == 0)
      acc.zero();
    if constexpr (fromShared)
      acc.template mma<KE>(aShared(s), lda, Bs, lk);
    else
      acc.template mma<KE>(As, lk, Bs, lk);
    if (s % kSteps == kSteps - 1)
      epi(s, acc);
    __syncthreads();
  }
}

// 16 bytes at p (aligned), read through the read-only cache.
__device__ __forceinline__ uint4 load16(const void *p) {
  return __ldg(reinterpret_cast<const uint4 *>(p));
}

// Shared memory of `twoStage` for configuration C, in bytes.
template <class C, class T> __host__ __device__ constexpr size_t twoStageSmem() {
  return sizeof(T) * (size_t)(kMT + kNT) * rowLen<T>() +
         sizeof(float) * 8 * 256 +
         sizeof(T) * (size_t)C::FC * kMT * C::K2P;
}

// x: [n, XT] (columns ≥ IN_LIMIT read as zero); w1, w2: the two factors;
// y: [n, YT] or null (then only stage 1 runs); zOut: [n, ZT] or null (z in
// the layout [t][f][d][r][g][b] of this configuration's roles).
// One block's work: token tile `tile`, f-chunk `fChunk` (the kernels below
// say which). With `xRows`, token t's input is row xRows[t] of x (a gather
// fused into the loads).
template <class C, class T>
__device__ __forceinline__ void
twoStageTile(const T *__restrict__ x, const T *__restrict__ w1,
             const T *__restrict__ w2, T *__restrict__ y,
             T *__restrict__ zOut, long long n, long long tile, int fChunk,
             const int *__restrict__ xRows = nullptr) {
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int lk = rowLen<T>();
  T *As = reinterpret_cast<T *>(smem);
  T *Bs = As + kMT * lk;
  float *scratch = reinterpret_cast<float *>(Bs + kNT * lk);
  T *zs = reinterpret_cast<T *>(scratch + 8 * 256); // [FC][kMT][K2P]
  const int tid = threadIdx.x;
  const long long t0 = tile * C::TT;
  const int f0 = fChunk * C::FC;
  const T zero = fromFloat<T>(0.0f);

  // Rows and columns that stage 1 does not write must read as zero.
  for (int i = tid; i < C::FC * kMT * C::K2P; i += kThreads)
    zs[i] = zero;
  __syncthreads();

  // Stage 1: steps run over (g, column chunk, k chunk).
  constexpr int N1 = C::FC * C::D * C::R; // columns (f,d,r)
  constexpr int nChunks1 = (N1 + kNT - 1) / kNT, kChunks1 = (C::A + kKT - 1) / kKT;
  auto decode1 = [](int s, int &g, int &n0, int &k0) {
    k0 = (s % kChunks1) * kKT;
    n0 = (s / kChunks1 % nChunks1) * kNT;
    g = s / (kChunks1 * nChunks1);
  };
  // 16-byte loads where a whole vector is either inside the operand or not:
  // unit stride along a, every other stride and limit a multiple of V.
  constexpr int V = 16 / sizeof(T);
  constexpr int XV = C::XA == 1 && C::A % V == 0 && C::XT % V == 0 &&
                             C::XG % V == 0 && C::XB % V == 0 &&
                             C::IN_LIMIT % V == 0
                         ? V
                         : 1;
  constexpr int W1V = C::W1A == 1 && C::A % V == 0 && C::W1F % V == 0 &&
                              C::W1D % V == 0 && C::W1R % V == 0 &&
                              C::W1G % V == 0
                          ? V
                          : 1;
  auto fetchX = [&](int s, int m, int k) {
    using R = typename Chunk<T, XV>::type;
    int g, n0, k0;
    decode1(s, g, n0, k0);
    const int a = k0 + k;
    const int tt = m / C::B, b = m % C::B;
    const long long t = t0 + tt;
    const long long off =
        (long long)g * C::XG + (long long)b * C::XB + (long long)a * C::XA;
    const bool in = m < C::TT * C::B && a < C::A && t < n && off < C::IN_LIMIT;
    const long long row = in && xRows ? (long long)xRows[t] : t;
    if constexpr (XV > 1)
      return in ? load16(x + row * C::XT + off) : R{0, 0, 0, 0};
    else
      return in ? x[row * C::XT + off] : zero;
  };
  auto fetchW1 = [&](int s, int nn, int k) {
    using R = typename Chunk<T, W1V>::type;
    int g, n0, k0;
    decode1(s, g, n0, k0);
    const int a = k0 + k, col = n0 + nn;
    const int r = col % C::R, fd = col / C::R;
    const int d = fd % C::D, f = f0 + fd / C::D;
    const bool in = col < N1 && a < C::A && f < C::F;
    const long long off = (long long)f * C::W1F + (long long)d * C::W1D +
                          (long long)r * C::W1R + (long long)g * C::W1G +
                          (long long)a * C::W1A;
    if constexpr (W1V > 1)
      return in ? load16(w1 + off) : R{0, 0, 0, 0};
    else
      return in ? w1[off] : zero;
  };
  auto epi1 = [&](int s, BlockAcc<T> &acc) {
    int g, n0, k0;
    decode1(s, g, n0, k0);
    acc.forEach(scratch, [&](int m, int nn, float v) {
      const int col = n0 + nn;
      if (m >= C::TT * C::B || col >= N1)
        return;
      const int tt = m / C::B, b = m % C::B;
      const int r = col % C::R, fd = col / C::R;
      const int d = fd % C::D, fl = fd / C::D;
      const T zv = fromFloat<T>(v);
      zs[(fl * kMT + tt * C::D + d) * C::K2P + (r * C::G + g) * C::B + b] = zv;
      const long long t = t0 + tt;
      const int f = f0 + fl;
      if (zOut && t < n && f < C::F)
        zOut[t * C::ZT + (long long)f * C::ZF + (long long)d * C::ZD +
             (long long)r * C::ZR + (long long)g * C::ZG + b] = zv;
    });
  };
  blockProducts<T, C::XA == 1, C::W1A == 1, XV, W1V>(
      C::G * nChunks1 * kChunks1, kChunks1, fetchX, fetchW1, nullptr, 0, As,
      Bs, scratch, epi1);
  if (!y)
    return;

  // Stage 2: steps run over (f in the chunk, e chunk, k chunk); A is z.
  constexpr int K2 = C::R * C::G * C::B; // reduction (r,g,b)
  constexpr int eChunks = (C::E + kNT - 1) / kNT, kChunks2 = (K2 + kKT - 1) / kKT;
  const int fHere = C::F - f0 < C::FC ? C::F - f0 : C::FC;
  auto decode2 = [](int s, int &fl, int &e0, int &k0) {
    k0 = (s % kChunks2) * kKT;
    e0 = (s / kChunks2 % eChunks) * kNT;
    fl = s / (kChunks2 * eChunks);
  };
  // (r,g,b) contiguous in W2 (b fastest) allows 16-byte loads along k.
  constexpr bool w2Contiguous = (C::B == 1 || C::W2B == 1) &&
                                (C::G == 1 || C::W2G == C::B) &&
                                (C::R == 1 || C::W2R == C::G * C::B);
  constexpr int W2V = w2Contiguous && K2 % V == 0 && C::W2F % V == 0 &&
                              C::W2E % V == 0
                          ? V
                          : 1;
  auto fetchW2 = [&](int s, int nn, int k) {
    using R = typename Chunk<T, W2V>::type;
    int fl, e0, k0;
    decode2(s, fl, e0, k0);
    const int e = e0 + nn, kk = k0 + k;
    const int b = kk % C::B, rg = kk / C::B;
    const int g = rg % C::G, r = rg / C::G;
    const bool in = e < C::E && kk < K2;
    const long long off = (long long)(f0 + fl) * C::W2F +
                          (long long)e * C::W2E + (long long)r * C::W2R +
                          (long long)g * C::W2G + (long long)b * C::W2B;
    if constexpr (W2V > 1)
      return in ? load16(w2 + off) : R{0, 0, 0, 0};
    else
      return in ? w2[off] : zero;
  };
  auto zChunk = [&](int s) -> const T * {
    int fl, e0, k0;
    decode2(s, fl, e0, k0);
    return zs + fl * kMT * C::K2P + k0;
  };
  auto epi2 = [&](int s, BlockAcc<T> &acc) {
    int fl, e0, k0;
    decode2(s, fl, e0, k0);
    const int f = f0 + fl;
    acc.forEach(scratch, [&](int m, int nn, float v) {
      const int e = e0 + nn;
      if (m >= C::TT * C::D || e >= C::E)
        return;
      const int tt = m / C::D, d = m % C::D;
      const long long t = t0 + tt;
      const long long off = (long long)f * C::YF + (long long)e * C::YE +
                            (long long)d * C::YD;
      if (t < n && off < C::OUT_LIMIT)
        y[t * C::YT + off] = fromFloat<T>(v);
    });
  };
  // A reduction shorter than one chunk runs only its 16-column steps (z rows
  // are then K2 rounded to 16, not to kKT: see K2P in CudaPlan).
  constexpr int KE2 = kChunks2 == 1 ? (K2 + 15) / 16 * 16 : kKT;
  blockProducts<T, true, w2Contiguous, 1, W2V, KE2>(
      fHere * eChunks * kChunks2, kChunks2, nullptr, fetchW2, zChunk, C::K2P,
      As, Bs, scratch, epi2);
  // Output columns past the structure's extent (a padded layer) are zero.
  if constexpr (C::OUT_FILL_FROM < C::OUT_LIMIT) {
    constexpr int tail = (int)(C::OUT_LIMIT - C::OUT_FILL_FROM);
    if (fChunk == 0)
      for (int i = tid; i < C::TT * tail; i += kThreads) {
        const long long t = t0 + i / tail;
        if (t < n)
          y[t * C::YT + C::OUT_FILL_FROM + i % tail] = zero;
      }
  }
}

template <class C, class T>
__global__ void __launch_bounds__(kThreads)
    twoStage(const T *__restrict__ x, const T *__restrict__ w1,
             const T *__restrict__ w2, T *__restrict__ y,
             T *__restrict__ zOut, long long n) {
  twoStageTile<C, T>(x, w1, w2, y, zOut, n, blockIdx.x, blockIdx.y);
}

// Every expert of a BTT-MoE in one launch (no host round trip for the
// counts): blockIdx.x walks the token tiles of expert 0, then of expert 1,
// ...; expert e owns rows [offsets[e], offsets[e+1]) of y and zOut, and of x
// — or, with `xRows`, row xRows[r] of x for row r (the gather fused in). Its
// weights start e·w1Stride (e·w2Stride) elements in. Blocks past the last
// tile exit at once.
template <class C, class T, int NE>
__global__ void __launch_bounds__(kThreads)
    twoStageGrouped(const T *__restrict__ x, const T *__restrict__ w1,
                    const T *__restrict__ w2, T *__restrict__ y,
                    T *__restrict__ zOut, const int *__restrict__ offsets,
                    const int *__restrict__ xRows, long long w1Stride,
                    long long w2Stride) {
  long long tile = blockIdx.x;
  int e = 0;
  for (; e < NE; ++e) {
    const long long tiles = (offsets[e + 1] - offsets[e] + C::TT - 1) / C::TT;
    if (tile < tiles)
      break;
    tile -= tiles;
  }
  if (e == NE)
    return;
  const long long off = offsets[e];
  twoStageTile<C, T>(xRows ? x : x + off * C::XT, w1 + e * w1Stride,
                     w2 + e * w2Stride, y ? y + off * C::YT : nullptr,
                     zOut ? zOut + off * C::ZT : nullptr, offsets[e + 1] - off,
                     tile, blockIdx.y, xRows ? xRows + off : nullptr);
}

// Offset of compound index i = (i0, i1, i2) over sizes (·, n1, n2), i2
// fastest, given a stride per factor.
__host__ __device__ __forceinline__ long long
compoundOffset(long long i, int n1, int n2, long long s0, long long s1,
               long long s2) {
  const long long i01 = i / n2;
  return (i01 / n1) * s0 + (i01 % n1) * s1 + (i % n2) * s2;
}

// out[p][m][n] = Σ_{t,i} L(t,p,i,m) · R(t,p,i,n), the reduction over tokens t
// and one inner class i of a weight gradient. M = M0·M1·M2 and N = N0·N1·N2
// are compound indices with a stride per factor in L (resp. R); the token
// range is cut into gridDim.z splits, each written to `partial`
// [split][P][M][N] (fp32).
template <class W, class T>
__device__ __forceinline__ void
weightGradTile(const T *__restrict__ L, const T *__restrict__ R,
               float *__restrict__ partial, long long n, int split,
               int splits) {
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int lk = rowLen<T>();
  T *As = reinterpret_cast<T *>(smem);
  T *Bs = As + kMT * lk;
  float *scratch = reinterpret_cast<float *>(Bs + kNT * lk);
  constexpr int M = W::M0 * W::M1 * W::M2, N = W::N0 * W::N1 * W::N2;
  constexpr int mTiles = (M + kMT - 1) / kMT;
  const int m0 = (blockIdx.x % mTiles) * kMT, n0 = (blockIdx.x / mTiles) * kNT;
  const int p = blockIdx.y;
  const long long perSplit = (n + splits - 1) / splits;
  const long long tBegin = split * perSplit;
  const long long tEnd = tBegin + perSplit < n ? tBegin + perSplit : n;
  const long long kEnd = (tEnd > tBegin ? tEnd - tBegin : 0) * W::I;
  const T zero = fromFloat<T>(0.0f);

  // Consecutive threads take consecutive m (n): the factors' fastest
  // indices in the activations' layouts.
  auto fetchL = [&](int s, int mm, int k) -> T {
    const int m = m0 + mm;
    const long long kk = (long long)s * kKT + k;
    if (m >= M || kk >= kEnd)
      return zero;
    const long long t = tBegin + kk / W::I;
    const int in = (int)(kk % W::I);
    const long long off =
        (long long)p * W::LP + (long long)in * W::LI +
        compoundOffset(m, W::M1, W::M2, W::LM0, W::LM1, W::LM2);
    return off < W::L_LIMIT ? L[t * W::LT + off] : zero;
  };
  auto fetchR = [&](int s, int nn, int k) -> T {
    const int c = n0 + nn;
    const long long kk = (long long)s * kKT + k;
    if (c >= N || kk >= kEnd)
      return zero;
    const long long t = tBegin + kk / W::I;
    const int in = (int)(kk % W::I);
    const long long off =
        (long long)p * W::RP + (long long)in * W::RI +
        compoundOffset(c, W::N1, W::N2, W::RN0, W::RN1, W::RN2);
    return off < W::R_LIMIT ? R[t * W::RT + off] : zero;
  };
  float *out = partial + ((long long)split * W::P + p) * M * N;
  const int steps = (int)((kEnd + kKT - 1) / kKT);
  auto epi = [&](int, BlockAcc<T> &acc) {
    acc.forEach(scratch, [&](int mm, int nn, float v) {
      const int m = m0 + mm, c = n0 + nn;
      if (m < M && c < N)
        out[(long long)m * N + c] = v;
    });
  };
  if (steps == 0) { // an empty split still writes its zeros
    BlockAcc<T> acc;
    acc.zero();
    epi(0, acc);
    return;
  }
  blockProducts<T, false, false, 1, 1>(steps, steps, fetchL, fetchR, nullptr,
                                       0, As, Bs, scratch, epi);
}

template <class W, class T>
__global__ void __launch_bounds__(kThreads)
    weightGrad(const T *__restrict__ L, const T *__restrict__ R,
               float *__restrict__ partial, long long n) {
  weightGradTile<W, T>(L, R, partial, n, blockIdx.z, gridDim.z);
}

// Elements of one weight gradient: P·M·N.
template <class W> __host__ __device__ constexpr long long gradElems() {
  return (long long)W::P * W::M0 * W::M1 * W::M2 * W::N0 * W::N1 * W::N2;
}

// The weight gradient of every expert of a BTT-MoE in one launch:
// blockIdx.z = expert·splits + split; expert e's tokens are rows
// [offsets[e], offsets[e+1]) of L and R, its partial sums go to
// partial + e·splits·gradElems.
template <class W, class T, int NE>
__global__ void __launch_bounds__(kThreads)
    weightGradGrouped(const T *__restrict__ L, const T *__restrict__ R,
                      float *__restrict__ partial,
                      const int *__restrict__ offsets, int splits) {
  const int e = blockIdx.z / splits, split = blockIdx.z % splits;
  const long long off = offsets[e];
  weightGradTile<W, T>(L + off * W::LT, R + off * W::RT,
                       partial + (long long)e * splits * gradElems<W>(),
                       offsets[e + 1] - off, split, splits);
}

template <class W, class T> __host__ __device__ constexpr size_t weightGradSmem() {
  return sizeof(T) * (size_t)(kMT + kNT) * rowLen<T>() + sizeof(float) * 8 * 256;
}

// grad[P][M][N] (scattered by the factor strides OP, OM*, ON*) = Σ_split
// partial[split], summed in split order.
// Where element i of the [P][M][N] order lands in the gradient.
template <class W> __device__ __forceinline__ long long gradOffset(long long i) {
  constexpr long long M = W::M0 * W::M1 * W::M2, N = W::N0 * W::N1 * W::N2;
  const long long c = i % N, m = (i / N) % M, p = i / (N * M);
  return p * W::OP + compoundOffset(m, W::M1, W::M2, W::OM0, W::OM1, W::OM2) +
         compoundOffset(c, W::N1, W::N2, W::ON0, W::ON1, W::ON2);
}

template <class W, class T>
__global__ void reduceSplits(const float *__restrict__ partial,
                             T *__restrict__ grad, int splits) {
  constexpr long long total = gradElems<W>();
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    float s = 0.0f;
    for (int k = 0; k < splits; ++k)
      s += partial[k * total + i];
    grad[gradOffset<W>(i)] = fromFloat<T>(s);
  }
}

// reduceSplits for weightGradGrouped: expert e's gradient starts
// e·expertStride elements into grad.
template <class W, class T, int NE>
__global__ void reduceSplitsGrouped(const float *__restrict__ partial,
                                    T *__restrict__ grad, int splits,
                                    long long expertStride) {
  constexpr long long total = gradElems<W>();
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
       i < NE * total; i += (long long)gridDim.x * blockDim.x) {
    const long long e = i / total, j = i % total;
    float s = 0.0f;
    for (int k = 0; k < splits; ++k)
      s += partial[(e * splits + k) * total + j];
    grad[e * expertStride + gradOffset<W>(j)] = fromFloat<T>(s);
  }
}

} // namespace einstruct_cuda
#endif // EINSTRUCT_TWO_STAGE_CUH
