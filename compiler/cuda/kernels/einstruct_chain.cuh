// What a generated contraction chain (a sequence mixer's function and its
// backward, compiler/cuda/ChainPlan.h) runs besides cuBLAS: strided
// contractions too small for a GEMM and transposes, the chunked SSD's own
// ops, elementwise functions, sums, fills and copies. Each kernel computes one
// element per thread through an EINSTRUCT_HD function; without nvcc only those
// functions are compiled, so tests/unit/test_cuda_chain.cpp runs the kernels'
// arithmetic on the CPU. The emitter copies this file into each generated .cu.
// float32 (a library's bfloat16 inputs and outputs are converted by
// convertKernel).
#ifndef EINSTRUCT_CHAIN_CUH
#define EINSTRUCT_CHAIN_CUH
#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#define EINSTRUCT_HD __host__ __device__ inline
#else
#include <cmath>
#define EINSTRUCT_HD inline
#endif

namespace einstruct_chain {

constexpr int kMaxRank = 8;

// Dimensions (outermost first) and, per dimension, the element strides of
// two operands (0: the operand lacks it).
struct Strided {
  int rank;
  long long dims[kMaxRank];
  long long a[kMaxRank];
  long long b[kMaxRank];
};

EINSTRUCT_HD long long stridedCount(const Strided &s) {
  long long n = 1;
  for (int d = 0; d < s.rank; ++d)
    n *= s.dims[d];
  return n;
}

// The operands' offsets of the i-th element in row-major order of s.dims.
EINSTRUCT_HD void stridedOffsets(const Strided &s, long long i, long long *a,
                                 long long *b) {
  *a = 0;
  *b = 0;
  for (int d = s.rank - 1; d >= 0; --d) {
    const long long at = i % s.dims[d];
    i /= s.dims[d];
    *a += at * s.a[d];
    *b += at * s.b[d];
  }
}

// out[i] = Σ over `sum` of lhs·rhs, out packed row-major over `out.dims`.
struct DirectContract {
  Strided out; // a: lhs strides, b: rhs strides
  Strided sum;
};

EINSTRUCT_HD float directElement(const DirectContract &c, const float *lhs,
                                 const float *rhs, long long i) {
  long long lo, ro;
  stridedOffsets(c.out, i, &lo, &ro);
  const long long n = stridedCount(c.sum);
  float acc = 0.0f;
  for (long long j = 0; j < n; ++j) {
    long long ls, rs;
    stridedOffsets(c.sum, j, &ls, &rs);
    acc += lhs[lo + ls] * rhs[ro + rs];
  }
  return acc;
}

// v + acc[i] (a sum's other term, fused into the step that writes v), or v
// when there is none.
EINSTRUCT_HD float accumulated(float v, const float *acc, long long i) {
  return acc ? v + acc[i] : v;
}

// dst packed over p.dims, each element read from src or zero: a
// transpose, Hydra's flip (a negative stride), a slice or a zero pad.
struct Remap {
  Strided p;      // a: src strides per dst dimension (b unused)
  long long base; // src offset of dst index 0 (negative under a pad)
  // Per dst dimension, the indices [lo, hi) that have a source element.
  long long lo[kMaxRank];
  long long hi[kMaxRank];
};

// src's offset of dst element i, or -1 where it is a zero.
EINSTRUCT_HD long long remapSource(const Remap &r, long long i) {
  long long at = r.base;
  for (int d = r.p.rank - 1; d >= 0; --d) {
    const long long k = i % r.p.dims[d];
    i /= r.p.dims[d];
    if (k < r.lo[d] || k >= r.hi[d])
      return -1;
    at += k * r.p.a[d];
  }
  return at;
}

EINSTRUCT_HD float remapElement(const Remap &r, const float *src, long long i) {
  const long long at = remapSource(r, i);
  return at < 0 ? 0.0f : src[at];
}

// einstruct.unary's f, numbered as unaryKinds() (dialects/
// EinstructDialect.h) lists them, computed as UnaryFunctions.cpp has the
// CPU compute them.
enum UnaryKind {
  kIdentity,
  kExp,
  kSigmoid,
  kSilu,
  kSoftplus,
  kRsqrt,
  kSin,
  kCos,
  kSiluGrad,
  kSigmoidGrad,
  kRsqrtGrad
};

// 1 / (1 + e^−z): e^−z overflows to inf for z < −88, giving 0.
EINSTRUCT_HD float sigmoidOf(float z) { return 1.0f / (1.0f + expf(-z)); }

EINSTRUCT_HD float unaryElement(int kind, float z) {
  switch (kind) {
  case kExp:
    return expf(z);
  case kSigmoid:
    return sigmoidOf(z);
  case kSilu:
    return z * sigmoidOf(z);
  case kSoftplus: // max(z, 0) + log1p(e^−|z|): no overflow
    return fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z)));
  case kRsqrt:
    return 1.0f / sqrtf(z);
  case kSin:
    return sinf(z);
  case kCos:
    return cosf(z);
  case kSiluGrad: { // σ(z)·(1 + z·(1 − σ(z)))
    const float s = sigmoidOf(z);
    return s * (1.0f + z * (1.0f - s));
  }
  case kSigmoidGrad: {
    const float s = sigmoidOf(z);
    return s * (1.0f - s);
  }
  case kRsqrtGrad: { // −z^(−3/2) / 2
    const float r = 1.0f / sqrtf(z);
    return -0.5f * (r * (r * r));
  }
  default:
    return z;
  }
}

// einstruct.unary: f(scale·x + shift).
struct Map {
  int kind;
  float scale, shift;
};

EINSTRUCT_HD float mapElement(const Map &m, float x) {
  return unaryElement(m.kind, m.scale * x + m.shift);
}

// einstruct.chunk_decays for a[n, c, q, h], one (n, h, c, l) per call: row
// l of within[n, h, c, l, :], to_end[n, h, c, l], from_start[n, h, c, l]
// and, at l = 0, chunk[n, h, c]. Exponentials of in-chunk differences of
// the prefix sums, as --einstruct-lower-ssd computes them.
EINSTRUCT_HD void chunkDecaysElement(const float *a, float *within,
                                     float *toEnd, float *fromStart,
                                     float *chunk, long long C, long long Q,
                                     long long H, long long i) {
  const long long l = i % Q, c = (i / Q) % C, h = (i / (Q * C)) % H,
                  n = i / (Q * C * H);
  const float *seg = a + (n * C + c) * Q * H + h; // step t at seg[t·H]
  float cumL = 0.0f, cumEnd = 0.0f;
  for (long long t = 0; t < Q; ++t) {
    cumEnd += seg[t * H];
    if (t == l)
      cumL = cumEnd;
  }
  float *row = within + i * Q;
  float cumS = 0.0f;
  for (long long s = 0; s < Q; ++s) {
    cumS += seg[s * H];
    row[s] = l >= s ? expf(cumL - cumS) : 0.0f;
  }
  toEnd[i] = expf(cumEnd - cumL);
  fromStart[i] = expf(cumL);
  if (l == 0)
    chunk[i / Q] = expf(cumEnd);
}

// einstruct.chunk_decays_grad, one segment (n, h, c) per call: da[n, c, :,
// h] for the cotangents dW[n, h, c, l, s], dE and dS [n, h, c, l], dG[n, h,
// c] (--einstruct-lower-ssd's decaysGrad: through the prefix sums cum,
// da_t = Σ_{l ≥ t} dcum_l). cum holds Q floats of scratch.
EINSTRUCT_HD void chunkDecaysGradSegment(const float *a, const float *dW,
                                         const float *dE, const float *dS,
                                         const float *dG, float *da, float *cum,
                                         long long C, long long Q, long long H,
                                         long long seg) {
  const long long c = seg % C, h = (seg / C) % H, n = seg / (C * H);
  const float *as = a + (n * C + c) * Q * H + h;
  float *das = da + (n * C + c) * Q * H + h;
  float run = 0.0f;
  for (long long t = 0; t < Q; ++t)
    cum[t] = run += as[t * H];
  const float *w = dW + seg * Q * Q, *e = dE + seg * Q, *s = dS + seg * Q;
  const float end = cum[Q - 1];
  float endSum = 0.0f;
  for (long long t = 0; t < Q; ++t)
    endSum += e[t] * expf(end - cum[t]);
  const float chunkGrad = dG[seg] * expf(end);
  // dcum_l, summed from the last step down into da.
  float suffix = 0.0f;
  for (long long l = Q - 1; l >= 0; --l) {
    float row = 0.0f, col = 0.0f;
    for (long long k = 0; k <= l; ++k) // within[l, k], k ≤ l
      row += w[l * Q + k] * expf(cum[l] - cum[k]);
    for (long long k = l; k < Q; ++k) // within[k, l], k ≥ l
      col += w[k * Q + l] * expf(cum[k] - cum[l]);
    float d = row - col + s[l] * expf(cum[l]) - e[l] * expf(end - cum[l]);
    if (l == Q - 1)
      d += endSum + chunkGrad;
    suffix += d;
    das[l * H] = suffix;
  }
}

// einstruct.chunk_scan for states[n, c, h, p, k] and decay[n, h, c], one
// (n, h, p·k) per call, i = (n·H + h)·PK + pk: entering[n, 0] = 0,
// entering[n, z] = decay[z−1]·entering[z−1] + states[z−1].
EINSTRUCT_HD void chunkScanElement(const float *states, const float *decay,
                                   float *entering, long long C, long long H,
                                   long long PK, long long i) {
  const long long e = i % (H * PK), n = i / (H * PK), h = e / PK;
  const long long row = H * PK; // one chunk's states
  float carry = 0.0f;
  for (long long z = 0; z < C; ++z) {
    const long long at = (n * C + z) * row + e;
    entering[at] = carry;
    carry = decay[(n * H + h) * C + z] * carry + states[at];
  }
}

// The scan backwards for one (n, h, p, k): R_{C−1} = dE[C−1],
// R_z = dE[z] + decay[z]·R_{z+1}; dstates[z] = R_{z+1}, 0 for the last
// chunk (ddecay then comes from chunkScanDecayGrad).
EINSTRUCT_HD void chunkScanGradElement(const float *decay, const float *dE,
                                       float *dStates, long long C, long long H,
                                       long long PK, long long i) {
  const long long e = i % (H * PK), n = i / (H * PK), h = e / PK;
  const long long row = H * PK;
  float r = 0.0f; // R_{z+1}
  for (long long z = C - 1; z >= 0; --z) {
    const long long at = (n * C + z) * row + e;
    dStates[at] = r;
    r = dE[at] + decay[(n * H + h) * C + z] * r;
  }
}

// ddecay[n, h, z] = <dstates[n, z, h], entering[n, z, h]> over p, k.
EINSTRUCT_HD float chunkScanDecayGrad(const float *dStates,
                                      const float *entering, long long C,
                                      long long H, long long PK, long long i) {
  const long long z = i % C, h = (i / C) % H, n = i / (C * H);
  const long long at = ((n * C + z) * H + h) * PK;
  float acc = 0.0f;
  for (long long e = 0; e < PK; ++e)
    acc += dStates[at + e] * entering[at + e];
  return acc;
}

#ifdef __CUDACC__
// Templates on the element type (float here): their symbols are weak, so a
// program links several generated chains, and a chain's unused kernels cost
// nothing.
constexpr int kThreads = 256;

inline unsigned blocksFor(long long total) {
  const long long b = (total + kThreads - 1) / kThreads;
  return (unsigned)(b < 1 ? 1 : b > 65535 ? 65535 : b);
}

#define EINSTRUCT_FOR_EACH(i, total)                                           \
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;         \
       i < (total); i += (long long)gridDim.x * blockDim.x)

// A direct contraction's and a remap's `acc`: a sum's other term, added as
// the element is written (null: none). Templates, as every kernel here: a
// header each library includes, linked side by side.
template <class T>
__global__ void directKernel(DirectContract c, const T *lhs, const T *rhs,
                             const float *acc, T *out) {
  EINSTRUCT_FOR_EACH(i, stridedCount(c.out))
  out[i] = accumulated(directElement(c, lhs, rhs, i), acc, i);
}
template <class T>
__global__ void remapKernel(Remap r, const T *src, const float *acc, T *dst) {
  EINSTRUCT_FOR_EACH(i, stridedCount(r.p))
  dst[i] = accumulated(remapElement(r, src, i), acc, i);
}
template <class T>
__global__ void addKernel(const T *x, const T *y, T *out, long long n) {
  EINSTRUCT_FOR_EACH(i, n) out[i] = x[i] + y[i];
}
template <class T>
__global__ void mapKernel(Map m, const T *x, T *out, long long n) {
  EINSTRUCT_FOR_EACH(i, n) out[i] = mapElement(m, x[i]);
}
template <class T> __global__ void fillKernel(T value, T *out, long long n) {
  EINSTRUCT_FOR_EACH(i, n) out[i] = value;
}
template <class T>
__global__ void chunkDecaysKernel(const T *a, T *within, T *toEnd, T *fromStart,
                                  T *chunk, long long N, long long C,
                                  long long Q, long long H) {
  EINSTRUCT_FOR_EACH(i, N * H * C * Q)
  chunkDecaysElement(a, within, toEnd, fromStart, chunk, C, Q, H, i);
}
template <class T>
__global__ void chunkDecaysGradKernel(const T *a, const T *dW, const T *dE,
                                      const T *dS, const T *dG, T *da,
                                      T *scratch, long long N, long long C,
                                      long long Q, long long H) {
  EINSTRUCT_FOR_EACH(seg, N * H * C)
  chunkDecaysGradSegment(a, dW, dE, dS, dG, da, scratch + seg * Q, C, Q, H,
                         seg);
}
template <class T>
__global__ void chunkScanKernel(const T *states, const T *decay, T *entering,
                                long long N, long long C, long long H,
                                long long PK) {
  EINSTRUCT_FOR_EACH(i, N * H * PK)
  chunkScanElement(states, decay, entering, C, H, PK, i);
}
template <class T>
__global__ void chunkScanGradKernel(const T *decay, const T *dE, T *dStates,
                                    long long N, long long C, long long H,
                                    long long PK) {
  EINSTRUCT_FOR_EACH(i, N * H * PK)
  chunkScanGradElement(decay, dE, dStates, C, H, PK, i);
}
template <class T>
__global__ void chunkScanDecayGradKernel(const T *dStates, const T *entering,
                                         T *dDecay, long long N, long long C,
                                         long long H, long long PK) {
  EINSTRUCT_FOR_EACH(i, N * H * C)
  dDecay[i] = chunkScanDecayGrad(dStates, entering, C, H, PK, i);
}
// A library's boundary: bfloat16 inputs to float32, float32 results to
// bfloat16 (round to nearest even). A template: a forward's and a
// backward's library linked into one program each hold a copy.
__device__ inline void convertOne(__nv_bfloat16 in, float &out) {
  out = __bfloat162float(in);
}
__device__ inline void convertOne(float in, __nv_bfloat16 &out) {
  out = __float2bfloat16_rn(in);
}
template <class In, class Out>
__global__ void convertKernel(const In *in, Out *out, long long n) {
  EINSTRUCT_FOR_EACH(i, n) convertOne(in[i], out[i]);
}
#undef EINSTRUCT_FOR_EACH

// Each launch's status: 0 or the CUDA error.
inline int launched() { return (int)cudaGetLastError(); }
#endif

} // namespace einstruct_chain
#endif
