#include "compiler/cuda/MoeSource.h"

#include <fmt/format.h>

namespace einstruct {

std::string moeHeaderNote(const CudaPlan &plan) {
  return fmt::format(
      "\n * BTT-MoE   {} experts (the rank letter of w1/w2), top-{} per token;"
      "\n *           router wg, dwg [{}, {}] in the layer dtype, 16-byte aligned. Only the"
      "\n *           selected experts run: tokens are grouped by expert and each"
      "\n *           expert's rank-1 BTT runs on its rows alone. Top-k ties go to"
      "\n *           the lower expert index; gates = softmax of the selected"
      "\n *           logits + 1e-6 (the reference's semantics).",
      plan.experts, plan.topK, plan.layer.dIn, plan.experts);
}

std::string moeDecls(const std::string &N) {
  return fmt::format(R"(#ifndef EINSTRUCT_MOE_STATS_DEFINED
#define EINSTRUCT_MOE_STATS_DEFINED
typedef struct einstruct_moe_stats {{
  double aux_loss; /* E·Σ p̂·f̂ + 0.1·mean(logsumexp²) */
  double entropy;  /* mean router entropy, nats */
  int64_t experts;
  int64_t counts[64]; /* tokens routed to each expert */
}} einstruct_moe_stats;
#endif

/* Bytes of device workspace for n tokens (forward and backward). */
size_t {N}_moe_workspace(int64_t n);
/* y = Σ over the top-k experts e of x·wg: gate_e · expert_e(x). Leaves the
 * routing and the expert outputs in `workspace` for {N}_moe_backward.
 * Asynchronous when `stats` is NULL; otherwise it waits for the stream and
 * fills `stats` (host memory) with the counts, router entropy and aux loss. */
int {N}_moe_forward(const void *x, const void *wg, const void *w1,
                    const void *w2, void *y, int64_t n, void *workspace,
                    size_t workspace_bytes, einstruct_moe_stats *stats,
                    cudaStream_t stream);
/* Gradients of <dy, y> + aux_weight·aux w.r.t. x, wg, w1 and w2
 * (overwritten). `workspace` must be as {N}_moe_forward left it for the
 * same x, wg, w1, w2 and n. Asynchronous. */
int {N}_moe_backward(const void *x, const void *wg, const void *w1,
                     const void *w2, const void *dy, float aux_weight,
                     void *dx, void *dwg, void *dw1, void *dw2, int64_t n,
                     void *workspace, size_t workspace_bytes,
                     cudaStream_t stream);
)",
                     fmt::arg("N", N));
}

std::string moeApi(const CudaPlan &plan, const std::string &N) {
  return fmt::format(R"(namespace {{
constexpr int kE = {E}, kK = {K};
constexpr int kDIn = {din}, kDOut = {dout};
constexpr long long kExpertW1 = {ew1}, kExpertW2 = {ew2};

// The workspace, carved in a fixed order; with base 0 it only measures.
struct MoeWorkspace {{
  float *probs, *lse, *topGate, *rowGate, *stats, *rowDgate, *dlogits,
      *routerPartial, *partial;
  int *topIdx, *slotRow, *rowToken, *chunkCounts, *counts, *offsets;
  T *xs, *ys, *dys, *dxs, *z, *dz;
  size_t bytes;
}};

// Token splits of each expert's weight gradients: a function of n only
// (the average rows per expert), so results never depend on the routing's
// counts or the device.
int gradSplits(long long n) {{
  const long long a = splitsFor(n * kK / kE, tilesOf<GradW1>());
  const long long b = splitsFor(n * kK / kE, tilesOf<GradW2>());
  return (int)(a > b ? a : b);
}}
constexpr long long kGradElems = gradElems<GradW1>() > gradElems<GradW2>()
                                     ? gradElems<GradW1>()
                                     : gradElems<GradW2>();

int routerSplits(long long n) {{
  const long long s = n / 256;
  return (int)(s < 1 ? 1 : s > 64 ? 64 : s);
}}

MoeWorkspace carve(uintptr_t base, long long n) {{
  MoeWorkspace w;
  size_t at = 0;
  auto take = [&](size_t bytes) {{
    uintptr_t p = base + at;
    at += align256(bytes);
    return p;
  }};
  const size_t rows = (size_t)n * kK, chunks = ((size_t)n + 31) / 32;
  w.probs = (float *)take(4 * (size_t)n * kE);
  w.lse = (float *)take(4 * (size_t)n);
  w.topIdx = (int *)take(4 * rows);
  w.topGate = (float *)take(4 * rows);
  w.slotRow = (int *)take(4 * rows);
  w.rowToken = (int *)take(4 * rows);
  w.rowGate = (float *)take(4 * rows);
  w.chunkCounts = (int *)take(4 * chunks * kE);
  w.counts = (int *)take(4 * kE);
  w.offsets = (int *)take(4 * (kE + 1));
  w.stats = (float *)take(4 * (kE + 2));
  w.xs = (T *)take(sizeof(T) * rows * kDIn);
  w.ys = (T *)take(sizeof(T) * rows * kDOut);
  w.dys = (T *)take(sizeof(T) * rows * kDOut);
  w.dxs = (T *)take(sizeof(T) * rows * kDIn);
  w.rowDgate = (float *)take(4 * rows);
  w.dlogits = (float *)take(4 * (size_t)n * kE);
  w.routerPartial = (float *)take(4 * (size_t)routerSplits(n) * kDIn * kE);
  w.z = (T *)take(sizeof(T) * rows * kZ);
  w.dz = (T *)take(sizeof(T) * rows * kZ);
  w.partial = (float *)take(4 * (size_t)kE * gradSplits(n) * kGradElems);
  w.bytes = at;
  return w;
}}

unsigned gridFor(long long work, int threads) {{
  const long long b = (work + threads - 1) / threads;
  return (unsigned)(b < 1 ? 1 : b > 4096 ? 4096 : b);
}}

// Elements per thread in the row copies: a 16-byte vector where the width
// keeps every row aligned.
constexpr int kVec = 16 / (int)sizeof(T);
constexpr int kVIn = kDIn % kVec == 0 ? kVec : 1;
constexpr int kVOut = kDOut % kVec == 0 ? kVec : 1;

bool badMoeTokens(int64_t n) {{
  return badTokens(n) || n > 0x7fffffffLL / kK;
}}

// Every expert's rows through configuration C in one launch (rows: n·K).
// xRows: each row's source row of x (a fused gather), or null.
template <class C>
int launchGrouped(const T *x, const int *xRows, const T *w1, const T *w2,
                  T *y, T *z, const int *offsets, long long rows,
                  long long w1Stride, long long w2Stride,
                  cudaStream_t stream) {{
  const size_t smem = twoStageSmem<C, T>();
  if (int rc = prepare(twoStageGrouped<C, T, kE>, smem))
    return rc;
  const dim3 grid((unsigned)((rows + C::TT - 1) / C::TT + kE),
                  (unsigned)((C::F + C::FC - 1) / C::FC));
  twoStageGrouped<C, T, kE><<<grid, kThreads, smem, stream>>>(
      x, w1, w2, y, z, offsets, xRows, w1Stride, w2Stride);
  return (int)cudaGetLastError();
}}

// A weight gradient of every expert in one launch, then its split sums.
template <class W>
int launchWeightGradGrouped(const T *l, const T *r, float *partial, T *grad,
                            const int *offsets, int splits,
                            long long expertStride, cudaStream_t stream) {{
  const size_t smem = weightGradSmem<W, T>();
  if (int rc = prepare(weightGradGrouped<W, T, kE>, smem))
    return rc;
  const dim3 grid((unsigned)(tilesOf<W>() / W::P), W::P,
                  (unsigned)(kE * splits));
  weightGradGrouped<W, T, kE><<<grid, kThreads, smem, stream>>>(
      l, r, partial, offsets, splits);
  if (cudaError_t e = cudaGetLastError())
    return (int)e;
  reduceSplitsGrouped<W, T, kE><<<264, 256, 0, stream>>>(partial, grad, splits,
                                                         expertStride);
  return (int)cudaGetLastError();
}}

// The routing and the counting sort, all on the device.
int routeAndGroup(const T *x, const T *wg, long long n, MoeWorkspace &w,
                  cudaStream_t stream) {{
  const long long chunks = (n + 31) / 32;
  moeRoute<T, kE, kK><<<(unsigned)((n + 7) / 8), 256, 0, stream>>>(
      x, wg, n, kDIn, w.probs, w.lse, w.topIdx, w.topGate);
  moeCount<kE, kK><<<(unsigned)((chunks + 7) / 8), 256, 0, stream>>>(
      w.topIdx, n, w.chunkCounts, chunks);
  moeScan<kE><<<1, 64, 0, stream>>>(w.chunkCounts, chunks, w.counts,
                                    w.offsets);
  moePlace<kE, kK><<<(unsigned)((chunks + 7) / 8), 256, 0, stream>>>(
      w.topIdx, w.topGate, n, w.chunkCounts, w.offsets, w.slotRow, w.rowToken,
      w.rowGate, chunks);
  return (int)cudaGetLastError();
}}

}} // namespace

extern "C" size_t {N}_moe_workspace(int64_t n) {{
  if (badMoeTokens(n))
    return 0;
  return carve(0, n).bytes;
}}

extern "C" int {N}_moe_forward(const void *x, const void *wg, const void *w1,
                              const void *w2, void *y, int64_t n,
                              void *workspace, size_t workspace_bytes,
                              einstruct_moe_stats *stats,
                              cudaStream_t stream) {{
  if (badMoeTokens(n) ||
      (n > 0 && (bad(x) || bad(wg) || bad(w1) || bad(w2) || bad(y) ||
                 bad(workspace))))
    return EINSTRUCT_ERR_INVALID_ARGUMENT;
  if (workspace_bytes < {N}_moe_workspace(n))
    return EINSTRUCT_ERR_WORKSPACE_TOO_SMALL;
  if (stats) {{
    stats->aux_loss = stats->entropy = 0;
    stats->experts = kE;
    for (int e = 0; e < 64; ++e)
      stats->counts[e] = 0;
  }}
  if (n == 0)
    return EINSTRUCT_OK;
  MoeWorkspace w = carve((uintptr_t)workspace, n);
  if (int rc = routeAndGroup((const T *)x, (const T *)wg, n, w, stream))
    return rc;
  const long long rows = n * kK;
  if (int rc = launchGrouped<Fwd>((const T *)x, w.rowToken, (const T *)w1,
                                  (const T *)w2, w.ys, nullptr, w.offsets,
                                  rows, kExpertW1, kExpertW2, stream))
    return rc;
  moeCombine<T, kK, kVOut>
      <<<gridFor(n * kDOut / kVOut, 256), 256, 0, stream>>>(
          w.ys, w.slotRow, w.topGate, (T *)y, n, kDOut);
  if (cudaError_t e = cudaGetLastError())
    return (int)e;
  if (!stats)
    return EINSTRUCT_OK;
  moeStats<kE><<<1, 128, 0, stream>>>(w.probs, w.lse, n, w.stats);
  int counts[kE];
  float s[kE + 2];
  cudaError_t e = cudaMemcpyAsync(s, w.stats, sizeof(s),
                                  cudaMemcpyDeviceToHost, stream);
  if (e == cudaSuccess)
    e = cudaMemcpyAsync(counts, w.counts, sizeof(counts),
                        cudaMemcpyDeviceToHost, stream);
  if (e == cudaSuccess)
    e = cudaStreamSynchronize(stream);
  if (e != cudaSuccess)
    return (int)e;
  double balance = 0;
  for (int k = 0; k < kE; ++k) {{
    stats->counts[k] = counts[k];
    balance += (double)s[k] / n * ((double)counts[k] / ((double)n * kK));
  }}
  stats->aux_loss = kE * balance + 0.1 * s[kE] / n;
  stats->entropy = (double)s[kE + 1] / n;
  return EINSTRUCT_OK;
}}

extern "C" int {N}_moe_backward(const void *x, const void *wg, const void *w1,
                               const void *w2, const void *dy,
                               float aux_weight, void *dx, void *dwg,
                               void *dw1, void *dw2, int64_t n,
                               void *workspace, size_t workspace_bytes,
                               cudaStream_t stream) {{
  if (badMoeTokens(n) || bad(dw1) || bad(dw2) || bad(dwg) ||
      (n > 0 && (bad(x) || bad(wg) || bad(w1) || bad(w2) || bad(dy) || bad(dx) ||
                 bad(workspace))))
    return EINSTRUCT_ERR_INVALID_ARGUMENT;
  if (workspace_bytes < {N}_moe_workspace(n))
    return EINSTRUCT_ERR_WORKSPACE_TOO_SMALL;
  // Zero first (what n = 0 returns); below, the grouped reductions overwrite
  // every expert's slice, idle experts with sums of nothing.
  cudaError_t err = cudaMemsetAsync(dw1, 0, sizeof(T) * kW1, stream);
  if (err == cudaSuccess)
    err = cudaMemsetAsync(dw2, 0, sizeof(T) * kW2, stream);
  if (err == cudaSuccess)
    err = cudaMemsetAsync(dwg, 0, sizeof(T) * (size_t)kDIn * kE, stream);
  if (err != cudaSuccess || n == 0)
    return (int)err;
  MoeWorkspace w = carve((uintptr_t)workspace, n);
  const long long rows = n * kK;
  // xs: x per row (for dW1); dys = gate·dy per row; dgate = <dy, expert
  // output> per row.
  moeGather<T, kVIn><<<gridFor(rows * kDIn / kVIn, 256), 256, 0, stream>>>(
      (const T *)x, w.rowToken, nullptr, w.xs, rows, kDIn);
  moeGather<T, kVOut><<<gridFor(rows * kDOut / kVOut, 256), 256, 0, stream>>>(
      (const T *)dy, w.rowToken, w.rowGate, w.dys, rows, kDOut);
  moeGateGrad<T><<<(unsigned)((rows + 7) / 8), 256, 0, stream>>>(
      (const T *)dy, w.ys, w.rowToken, rows, kDOut, w.rowDgate);
  // dx and dz of every row in one launch (dz is its stage 1), then z.
  int rc = launchGrouped<Bwd>(w.dys, nullptr, (const T *)w2, (const T *)w1,
                              w.dxs, w.dz, w.offsets, rows, kExpertW2,
                              kExpertW1, stream);
  if (!rc)
    rc = launchGrouped<Fwd>(w.xs, nullptr, (const T *)w1, (const T *)w2,
                            nullptr, w.z, w.offsets, rows, kExpertW1,
                            kExpertW2, stream);
  // Weight gradients: each expert's reduction over its own rows, every
  // expert in one launch.
  const int gSplits = gradSplits(n);
  if (!rc)
    rc = launchWeightGradGrouped<GradW1>(w.dz, w.xs, w.partial, (T *)dw1,
                                         w.offsets, gSplits, kExpertW1, stream);
  if (!rc)
    rc = launchWeightGradGrouped<GradW2>(w.dys, w.z, w.partial, (T *)dw2,
                                         w.offsets, gSplits, kExpertW2, stream);
  if (rc)
    return rc;
  moeRouterGrad<kE, kK><<<(unsigned)((n + 255) / 256), 256, 0, stream>>>(
      w.probs, w.lse, w.topIdx, w.slotRow, w.rowDgate, w.counts, aux_weight,
      n, w.dlogits);
  const int splits = routerSplits(n);
  const long long perSplit = (n + splits - 1) / splits;
  moeRouterWeightGrad<T, kE>
      <<<dim3((unsigned)((kDIn + 127) / 128), (unsigned)splits), 128, 0,
         stream>>>((const T *)x, w.dlogits, n, kDIn, perSplit,
                   w.routerPartial);
  reduceRouterSplits<T><<<gridFor((long long)kDIn * kE, 256), 256, 0, stream>>>(
      w.routerPartial, (long long)kDIn * kE, splits, (T *)dwg);
  moeInputGrad<T, kE, kK><<<gridFor(n * kDIn, 256), 256, 0, stream>>>(
      w.dxs, w.slotRow, w.dlogits, (const T *)wg, (T *)dx, n, kDIn);
  return (int)cudaGetLastError();
}}
)",
                     fmt::arg("N", N), fmt::arg("E", plan.experts),
                     fmt::arg("K", plan.topK), fmt::arg("din", plan.layer.dIn),
                     fmt::arg("dout", plan.layer.dOut),
                     fmt::arg("ew1", plan.expertW1),
                     fmt::arg("ew2", plan.expertW2));
}

} // namespace einstruct
