// What a generated one-weight layer (dense, block-diagonal, DYAD) runs
// besides cuBLAS: block-major gather/scatter kernels for operands that are
// not laid out block-major or are padded, a fill for padded output columns,
// and one strided batched GEMM call per step (compiler/cuda/GemmPlan.h says
// which). The emitter copies this file into each generated .cu.
#ifndef EINSTRUCT_GEMM_CUH
#define EINSTRUCT_GEMM_CUH
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace einstruct_gemm {

__device__ __forceinline__ float toF(float v) { return v; }
__device__ __forceinline__ float toF(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float toF(__half v) { return __half2float(v); }
template <class T> __device__ __forceinline__ T fromF(float v);
template <> __device__ __forceinline__ float fromF<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 fromF<__nv_bfloat16>(float v) {
  return __float2bfloat16(v);
}
template <> __device__ __forceinline__ __half fromF<__half>(float v) {
  return __float2half(v);
}

template <class T> constexpr cudaDataType_t cudaType();
template <> constexpr cudaDataType_t cudaType<float>() { return CUDA_R_32F; }
template <> constexpr cudaDataType_t cudaType<__nv_bfloat16>() { return CUDA_R_16BF; }
template <> constexpr cudaDataType_t cudaType<__half>() { return CUDA_R_16F; }

constexpr int kCopyThreads = 256;

// packed[t][k][e] = off < limit ? strided[t·row + off] : 0, off = k·sK + e·sE.
template <class T>
__global__ void gatherBlocks(const T *__restrict__ strided, T *__restrict__ packed,
                             long long n, int K, int M, long long sK,
                             long long sE, long long row, long long limit) {
  const long long per = (long long)K * M, total = n * per;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
       i < total; i += (long long)gridDim.x * blockDim.x) {
    const long long t = i / per, rem = i % per;
    const long long off = (rem / M) * sK + (rem % M) * sE;
    packed[i] = off < limit ? strided[t * row + off] : fromF<T>(0.0f);
  }
}

// strided[t·row + off] (+)= packed[t][k][e] where off < limit. Each strided
// element has one source, so no two threads write the same element.
template <class T>
__global__ void scatterBlocks(const T *__restrict__ packed, T *__restrict__ strided,
                              long long n, int K, int M, long long sK,
                              long long sE, long long row, long long limit,
                              bool accumulate) {
  const long long per = (long long)K * M, total = n * per;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
       i < total; i += (long long)gridDim.x * blockDim.x) {
    const long long t = i / per, rem = i % per;
    const long long off = (rem / M) * sK + (rem % M) * sE;
    if (off >= limit)
      continue;
    T &d = strided[t * row + off];
    d = accumulate ? fromF<T>(toF(d) + toF(packed[i])) : packed[i];
  }
}

// Columns [from, row) of every row set to zero.
template <class T>
__global__ void fillColumns(T *__restrict__ a, long long n, long long from,
                            long long row) {
  const long long width = row - from, total = n * width;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
       i < total; i += (long long)gridDim.x * blockDim.x)
    a[(i / width) * row + from + i % width] = fromF<T>(0.0f);
}

inline unsigned copyBlocks(long long total) {
  const long long b = (total + kCopyThreads - 1) / kCopyThreads;
  return (unsigned)(b < 1 ? 1 : b > 4096 ? 4096 : b);
}

// Status of a cuBLAS failure: EINSTRUCT_ERR_CUBLAS - cublasStatus_t.
inline int cublasFailure(cublasStatus_t s) { return -1000 - (int)s; }

// This thread's cuBLAS handle for the current device, bound to `stream`.
// Handles live as long as the thread (cuBLAS's advice: one per thread and
// device, not one per call).
inline int handleFor(cudaStream_t stream, cublasHandle_t *h) {
  constexpr int kDevices = 64;
  thread_local cublasHandle_t handles[kDevices] = {};
  int device = 0;
  if (cudaError_t e = cudaGetDevice(&device))
    return (int)e;
  if (device >= kDevices)
    return -1;
  if (!handles[device])
    if (cublasStatus_t s = cublasCreate(&handles[device]))
      return cublasFailure(s);
  if (cublasStatus_t s = cublasSetStream(handles[device], stream))
    return cublasFailure(s);
  *h = handles[device];
  return 0;
}

// C = op(A)·op(B) (+ C), column-major, batched with element strides, fp32
// accumulation.
template <class T>
int gemm(cudaStream_t stream, bool transA, bool transB, long long m,
         long long n, long long k, const T *A, long long lda, long long sA,
         const T *B, long long ldb, long long sB, T *C, long long ldc,
         long long sC, long long batch, bool accumulate) {
  cublasHandle_t h;
  if (int rc = handleFor(stream, &h))
    return rc;
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  cublasStatus_t s = cublasGemmStridedBatchedEx(
      h, transA ? CUBLAS_OP_T : CUBLAS_OP_N, transB ? CUBLAS_OP_T : CUBLAS_OP_N,
      (int)m, (int)n, (int)k, &one, A, cudaType<T>(), (int)lda, sA, B,
      cudaType<T>(), (int)ldb, sB, &beta, C, cudaType<T>(), (int)ldc, sC,
      (int)batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  return s == CUBLAS_STATUS_SUCCESS ? 0 : cublasFailure(s);
}

template <class T>
int gather(cudaStream_t stream, const T *strided, T *packed, long long n,
           int K, int M, long long sK, long long sE, long long row,
           long long limit) {
  gatherBlocks<T><<<copyBlocks(n * K * M), kCopyThreads, 0, stream>>>(
      strided, packed, n, K, M, sK, sE, row, limit);
  return (int)cudaGetLastError();
}

template <class T>
int scatter(cudaStream_t stream, const T *packed, T *strided, long long n,
            int K, int M, long long sK, long long sE, long long row,
            long long limit, bool accumulate) {
  scatterBlocks<T><<<copyBlocks(n * K * M), kCopyThreads, 0, stream>>>(
      packed, strided, n, K, M, sK, sE, row, limit, accumulate);
  return (int)cudaGetLastError();
}

template <class T>
int fill(cudaStream_t stream, T *a, long long n, long long from,
         long long row) {
  fillColumns<T><<<copyBlocks(n * (row - from)), kCopyThreads, 0, stream>>>(
      a, n, from, row);
  return (int)cudaGetLastError();
}

} // namespace einstruct_gemm
#endif
