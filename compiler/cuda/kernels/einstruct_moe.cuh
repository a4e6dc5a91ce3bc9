// The routing and grouping kernels of a BTT-MoE layer (structures.md §3),
// copied into each generated MoE .cu after einstruct_two_stage.cuh. The
// experts themselves run as rank-1 layers on the rows routed to them, all in
// one `twoStageGrouped` launch; these kernels do everything around that:
//   moeRoute      logits = x·Wg, softmax, top-k (ties to the lower index),
//                 gates = softmax of the selected + 1e-6
//   moeCount / moeScan / moePlace
//                 a stable counting sort of the (token, slot) pairs by
//                 expert: rows of one expert are contiguous, in token order
//   moeGather     rows[row] = src[token of row] (the backward's x and gated
//                 dy rows; the forward's expert kernel gathers x itself)
//   moeCombine    y[t] = Σ_s gate[t,s]·ys[row of (t,s)]
//   moeStats      router entropy and the sums behind the aux loss
// and for the backward pass moeGateGrad, moeRouterGrad,
// moeRouterWeightGrad (+ reduceRouterSplits) and moeInputGrad. No atomics:
// every sum runs in a fixed order, so results are deterministic.
#ifndef EINSTRUCT_MOE_CUH
#define EINSTRUCT_MOE_CUH

namespace einstruct_cuda {

template <class T> __device__ __forceinline__ float toFloat(T v) {
  return static_cast<float>(v);
}

// Butterfly sum over a warp: every lane ends with the same total, added in
// the same order.
__device__ __forceinline__ float warpSum(float v) {
  for (int o = 16; o > 0; o /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// V consecutive elements moved as one 16-byte vector when V > 1.
template <class T, int V> struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

// Elements of a router row Wg[i, :] read per vector load: the largest power
// of two dividing E that fits 16 bytes (rows then stay aligned).
template <class T, int E> __host__ __device__ constexpr int routerVec() {
  int v = 16 / (int)sizeof(T);
  while (E % v)
    v /= 2;
  return v;
}

// acc[e] += xi · Wg[i, e] for every e, with vector loads of the row.
template <class T, int E>
__device__ __forceinline__ void addRouterRow(float (&acc)[E], float xi,
                                             const T *__restrict__ wg, int i) {
  constexpr int WV = routerVec<T, E>();
  for (int e0 = 0; e0 < E; e0 += WV) {
    const Pack<T, WV> w =
        *reinterpret_cast<const Pack<T, WV> *>(wg + (long long)i * E + e0);
    for (int k = 0; k < WV; ++k)
      acc[e0 + k] += xi * toFloat(w.v[k]);
  }
}

// One warp per token. probs/lse are kept for the aux loss and its gradient.
template <class T, int E, int K>
__global__ void moeRoute(const T *__restrict__ x, const T *__restrict__ wg,
                         long long n, int dIn, float *__restrict__ probs,
                         float *__restrict__ lse, int *__restrict__ topIdx,
                         float *__restrict__ topGate) {
  const long long t = blockIdx.x * (long long)(blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (t >= n)
    return;
  float acc[E];
  for (int e = 0; e < E; ++e)
    acc[e] = 0.0f;
  // Lane-strided columns: a warp reads 32 consecutive Wg rows at once (one
  // contiguous span; a lane walking its own run of rows would touch 32
  // cache lines per load).
#pragma unroll 4
  for (int i = lane; i < dIn; i += 32)
    addRouterRow<T, E>(acc, toFloat(x[t * dIn + i]), wg, i);
  for (int e = 0; e < E; ++e)
    acc[e] = warpSum(acc[e]);
  if (lane != 0)
    return;
  // The top-k below indexes by expert; a copy keeps `acc` in registers
  // (an array indexed at run time lives in local memory).
  float l[E];
  for (int e = 0; e < E; ++e)
    l[e] = acc[e];
  float mx = l[0];
  for (int e = 1; e < E; ++e)
    mx = fmaxf(mx, l[e]);
  float sum = 0.0f;
  for (int e = 0; e < E; ++e)
    sum += expf(l[e] - mx);
  const float logSum = mx + logf(sum);
  lse[t] = logSum;
  for (int e = 0; e < E; ++e)
    probs[t * E + e] = expf(l[e] - logSum);
  // Top-k by repeated arg-max; strict '>' keeps the lower index on ties.
  unsigned long long taken = 0;
  int sel[K];
  float selSum = 0.0f;
  for (int s = 0; s < K; ++s) {
    int best = -1;
    for (int e = 0; e < E; ++e)
      if (!(taken >> e & 1ull) && (best < 0 || l[e] > l[best]))
        best = e;
    taken |= 1ull << best;
    sel[s] = best;
    selSum += expf(l[best] - mx);
  }
  for (int s = 0; s < K; ++s) {
    topIdx[t * K + s] = sel[s];
    topGate[t * K + s] = expf(l[sel[s]] - mx) / selSum + 1e-6f;
  }
}

// Tokens of one 32-token chunk choosing expert e, as a lane mask.
template <int K>
__device__ __forceinline__ unsigned chunkMask(const int *__restrict__ topIdx,
                                              long long t, long long n, int e) {
  bool hit = false;
  if (t < n)
    for (int s = 0; s < K; ++s)
      hit |= topIdx[t * K + s] == e;
  return __ballot_sync(0xffffffffu, hit);
}

// counts[chunk][e]: one warp per 32-token chunk.
template <int E, int K>
__global__ void moeCount(const int *__restrict__ topIdx, long long n,
                         int *__restrict__ chunkCounts, long long chunks) {
  const long long c = blockIdx.x * (long long)(blockDim.x / 32) + threadIdx.x / 32;
  if (c >= chunks)
    return;
  const long long t = c * 32 + threadIdx.x % 32;
  for (int e = 0; e < E; ++e) {
    const unsigned m = chunkMask<K>(topIdx, t, n, e);
    if (threadIdx.x % 32 == 0)
      chunkCounts[c * E + e] = __popc(m);
  }
}

// Exclusive offsets in (expert, chunk) order: one block, one thread per
// expert walking its chunks, then the expert bases. offsets[E] = n·K.
template <int E>
__global__ void moeScan(int *__restrict__ chunkCounts, long long chunks,
                        int *__restrict__ counts, int *__restrict__ offsets) {
  __shared__ int total[E];
  const int e = threadIdx.x;
  if (e < E) {
    int run = 0;
    for (long long c = 0; c < chunks; ++c) {
      const int v = chunkCounts[c * E + e];
      chunkCounts[c * E + e] = run; // now the offset within the expert
      run += v;
    }
    total[e] = run;
    counts[e] = run;
  }
  __syncthreads();
  if (e == 0) {
    int base = 0;
    for (int k = 0; k < E; ++k) {
      offsets[k] = base;
      base += total[k];
    }
    offsets[E] = base;
  }
}

// Each (token, slot) gets its row: expert base + chunk offset + rank among
// the chunk's earlier tokens choosing the same expert.
template <int E, int K>
__global__ void moePlace(const int *__restrict__ topIdx,
                         const float *__restrict__ topGate, long long n,
                         const int *__restrict__ chunkOffsets,
                         const int *__restrict__ offsets,
                         int *__restrict__ slotRow, int *__restrict__ rowToken,
                         float *__restrict__ rowGate, long long chunks) {
  const long long c = blockIdx.x * (long long)(blockDim.x / 32) + threadIdx.x / 32;
  if (c >= chunks)
    return;
  const int lane = threadIdx.x % 32;
  const long long t = c * 32 + lane;
  for (int e = 0; e < E; ++e) {
    const unsigned m = chunkMask<K>(topIdx, t, n, e);
    if (!(m >> lane & 1u))
      continue;
    const int row = offsets[e] + chunkOffsets[c * E + e] +
                    __popc(m & ((1u << lane) - 1u));
    for (int s = 0; s < K; ++s)
      if (topIdx[t * K + s] == e) {
        slotRow[t * K + s] = row;
        rowToken[row] = (int)t;
        rowGate[row] = topGate[t * K + s];
      }
  }
}

// dst[row] = src[token of row] (·scale[row] when given), `width` columns;
// each thread moves V elements (16 bytes when width allows).
template <class T, int V>
__global__ void moeGather(const T *__restrict__ src, const int *__restrict__ rowToken,
                          const float *__restrict__ scale, T *__restrict__ dst,
                          long long rows, int width) {
  const int packs = width / V;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
       i < rows * packs; i += (long long)gridDim.x * blockDim.x) {
    const long long row = i / packs;
    const int j = (int)(i % packs) * V;
    Pack<T, V> p = *reinterpret_cast<const Pack<T, V> *>(
        src + (long long)rowToken[row] * width + j);
    if (scale)
      for (int k = 0; k < V; ++k)
        p.v[k] = fromFloat<T>(toFloat(p.v[k]) * scale[row]);
    *reinterpret_cast<Pack<T, V> *>(dst + row * width + j) = p;
  }
}

// y[t] = Σ_s gate[t,s]·ys[row(t,s)], slots in order; V elements a thread.
template <class T, int K, int V>
__global__ void moeCombine(const T *__restrict__ ys, const int *__restrict__ slotRow,
                           const float *__restrict__ topGate, T *__restrict__ y,
                           long long n, int width) {
  const int packs = width / V;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
       i < n * packs; i += (long long)gridDim.x * blockDim.x) {
    const long long t = i / packs;
    const int j = (int)(i % packs) * V;
    float acc[V];
    for (int k = 0; k < V; ++k)
      acc[k] = 0.0f;
    for (int s = 0; s < K; ++s) {
      const Pack<T, V> p = *reinterpret_cast<const Pack<T, V> *>(
          ys + (long long)slotRow[t * K + s] * width + j);
      const float g = topGate[t * K + s];
      for (int k = 0; k < V; ++k)
        acc[k] += g * toFloat(p.v[k]);
    }
    Pack<T, V> out;
    for (int k = 0; k < V; ++k)
      out.v[k] = fromFloat<T>(acc[k]);
    *reinterpret_cast<Pack<T, V> *>(y + t * width + j) = out;
  }
}

// stats[0..E) = Σ_t p[t,e], stats[E] = Σ_t lse², stats[E+1] = Σ_t entropy:
// one block of 128 threads, strided partial sums, then a fixed tree.
template <int E>
__global__ void moeStats(const float *__restrict__ probs,
                         const float *__restrict__ lse, long long n,
                         float *__restrict__ stats) {
  __shared__ float part[128][E + 2];
  float acc[E + 2];
  for (int k = 0; k < E + 2; ++k)
    acc[k] = 0.0f;
  for (long long t = threadIdx.x; t < n; t += 128) {
    for (int e = 0; e < E; ++e) {
      const float p = probs[t * E + e];
      acc[e] += p;
      if (p > 0.0f)
        acc[E + 1] -= p * logf(p);
    }
    acc[E] += lse[t] * lse[t];
  }
  for (int k = 0; k < E + 2; ++k)
    part[threadIdx.x][k] = acc[k];
  __syncthreads();
  for (int w = 64; w > 0; w /= 2) {
    if ((int)threadIdx.x < w)
      for (int k = 0; k < E + 2; ++k)
        part[threadIdx.x][k] += part[threadIdx.x + w][k];
    __syncthreads();
  }
  if (threadIdx.x == 0)
    for (int k = 0; k < E + 2; ++k)
      stats[k] = part[0][k];
}

// dgate of each row: <dy[token], ys[row]>, one warp per row.
template <class T>
__global__ void moeGateGrad(const T *__restrict__ dy, const T *__restrict__ ys,
                            const int *__restrict__ rowToken, long long rows,
                            int width, float *__restrict__ rowDgate) {
  const long long row = blockIdx.x * (long long)(blockDim.x / 32) + threadIdx.x / 32;
  if (row >= rows)
    return;
  const int lane = threadIdx.x % 32;
  const T *d = dy + (long long)rowToken[row] * width;
  const T *v = ys + row * width;
  float acc = 0.0f;
  for (int j = lane; j < width; j += 32)
    acc += toFloat(d[j]) * toFloat(v[j]);
  acc = warpSum(acc);
  if (lane == 0)
    rowDgate[row] = acc;
}

// dlogits[t] (search/Routing.cpp's routeBackward): the gates' softmax over
// the selected, plus auxWeight·∂aux/∂logits with f̂ from the counts.
template <int E, int K>
__global__ void moeRouterGrad(const float *__restrict__ probs,
                              const float *__restrict__ lse,
                              const int *__restrict__ topIdx,
                              const int *__restrict__ slotRow,
                              const float *__restrict__ rowDgate,
                              const int *__restrict__ counts, float auxWeight,
                              long long n, float *__restrict__ dlogits) {
  const long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (t >= n)
    return;
  const float *p = probs + t * E;
  float acc[E];
  for (int e = 0; e < E; ++e)
    acc[e] = 0.0f;
  float selSum = 0.0f, sdg = 0.0f;
  for (int s = 0; s < K; ++s)
    selSum += p[topIdx[t * K + s]];
  for (int s = 0; s < K; ++s)
    sdg += p[topIdx[t * K + s]] / selSum * rowDgate[slotRow[t * K + s]];
  for (int s = 0; s < K; ++s) {
    const int e = topIdx[t * K + s];
    acc[e] += p[e] / selSum * (rowDgate[slotRow[t * K + s]] - sdg);
  }
  if (auxWeight != 0.0f) {
    const float T = (float)n, inv = 1.0f / (T * K);
    float fp = 0.0f;
    for (int e = 0; e < E; ++e)
      fp += counts[e] * inv * p[e];
    for (int e = 0; e < E; ++e)
      acc[e] += auxWeight * ((float)E / T * p[e] * (counts[e] * inv - fp) +
                             0.2f / T * lse[t] * p[e]);
  }
  for (int e = 0; e < E; ++e)
    dlogits[t * E + e] = acc[e];
}

// partial[split][i][e] = Σ_{t in split} x[t,i]·dlogits[t,e]: a thread per i,
// blockIdx.y the token split.
template <class T, int E>
__global__ void moeRouterWeightGrad(const T *__restrict__ x,
                                    const float *__restrict__ dlogits,
                                    long long n, int dIn, long long perSplit,
                                    float *__restrict__ partial) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const long long t0 = blockIdx.y * perSplit;
  const long long t1 = t0 + perSplit < n ? t0 + perSplit : n;
  if (i >= dIn)
    return;
  float acc[E];
  for (int e = 0; e < E; ++e)
    acc[e] = 0.0f;
  for (long long t = t0; t < t1; ++t) {
    const float xi = toFloat(x[t * dIn + i]);
    for (int e = 0; e < E; ++e)
      acc[e] += xi * dlogits[t * E + e];
  }
  for (int e = 0; e < E; ++e)
    partial[((long long)blockIdx.y * dIn + i) * E + e] = acc[e];
}

template <class T>
__global__ void reduceRouterSplits(const float *__restrict__ partial,
                                   long long total, int splits,
                                   T *__restrict__ dwg) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    float s = 0.0f;
    for (int k = 0; k < splits; ++k)
      s += partial[k * total + i];
    dwg[i] = fromFloat<T>(s);
  }
}

// dx[t,i] = Σ_s dxs[row(t,s), i] + Σ_e dlogits[t,e]·Wg[i,e]: a thread per
// (t, i), i fastest, so a warp reads 32 consecutive Wg rows.
template <class T, int E, int K>
__global__ void moeInputGrad(const T *__restrict__ dxs,
                             const int *__restrict__ slotRow,
                             const float *__restrict__ dlogits,
                             const T *__restrict__ wg, T *__restrict__ dx,
                             long long n, int dIn) {
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x;
       k < n * dIn; k += (long long)gridDim.x * blockDim.x) {
    const long long t = k / dIn;
    const int i = (int)(k % dIn);
    float acc = 0.0f;
    for (int s = 0; s < K; ++s)
      acc += toFloat(dxs[(long long)slotRow[t * K + s] * dIn + i]);
    float r[E];
    for (int e = 0; e < E; ++e)
      r[e] = 0.0f;
    addRouterRow<T, E>(r, 1.0f, wg, i);
    for (int e = 0; e < E; ++e)
      acc += dlogits[t * E + e] * r[e];
    dx[k] = fromFloat<T>(acc);
  }
}

} // namespace einstruct_cuda
#endif // EINSTRUCT_MOE_CUH
