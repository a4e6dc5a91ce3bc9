// The sm_90a building blocks of einstruct_hopper.cuh and
// einstruct_hopper_grad.cuh: PTX wrappers (mbarriers, TMA loads, multicast
// and stores, clusters, stmatrix, wgmma) and the host side of TMA (tensor
// maps encoded through the driver the CUDA runtime loaded, cached per
// operand; device limits and kernel attributes read once). The emitter
// copies it into a generated .cu ahead of the kernels that use it.
#ifndef EINSTRUCT_SM90_CUH
#define EINSTRUCT_SM90_CUH
#include <cuda.h> // CUtensorMap and its enums (no driver call is linked)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <type_traits>

namespace einstruct_cuda {
namespace hopper {

// ---- PTX wrappers ---------------------------------------------------------

__device__ __forceinline__ uint32_t smemAddr(const void *p) {
  return (uint32_t)__cvta_generic_to_shared(p);
}
__device__ __forceinline__ void barInit(uint64_t *b, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smemAddr(b)),
               "r"(count));
}
__device__ __forceinline__ void barExpect(uint64_t *b, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(
                   smemAddr(b)),
               "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void barArrive(uint64_t *b) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smemAddr(b))
               : "memory");
}
__device__ __forceinline__ void barWait(uint64_t *b, uint32_t parity) {
  uint32_t done;
  do {
    asm volatile("{\n.reg .pred p;\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                 "selp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done)
                 : "r"(smemAddr(b)), "r"(parity)
                 : "memory");
  } while (!done);
}
// Barriers of one warpgroup (ids 1.. ; 0 is __syncthreads).
__device__ __forceinline__ void groupSync(int id) {
  asm volatile("bar.sync %0, 128;" ::"r"(id) : "memory");
}
// Generic-proxy shared-memory writes made visible to TMA and wgmma.
__device__ __forceinline__ void fenceAsyncShared() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}
__device__ __forceinline__ void tmaLoad2(void *dst, const CUtensorMap *map,
                                         uint64_t *bar, int c0, int c1) {
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::"
               "complete_tx::bytes [%0], [%1, {%3, %4}], [%2];" ::"r"(
                   smemAddr(dst)),
               "l"((uint64_t)map), "r"(smemAddr(bar)), "r"(c0), "r"(c1)
               : "memory");
}
// Arrives on the barrier at the same offset in CTA `cta` of the cluster.
__device__ __forceinline__ void barArriveRemote(uint64_t *b, uint32_t cta) {
  asm volatile("{\n.reg .b32 remote;\n"
               "mapa.shared::cluster.u32 remote, %0, %1;\n"
               "mbarrier.arrive.release.cluster.shared::cluster.b64 _, [remote];\n}\n"
               ::"r"(smemAddr(b)), "r"(cta)
               : "memory");
}
// A tile load delivered to the same offset of every CTA in `mask`, each
// CTA's barrier at the same offset receiving its bytes.
__device__ __forceinline__ void tmaLoad2Multicast(void *dst,
                                                  const CUtensorMap *map,
                                                  uint64_t *bar, int c0, int c1,
                                                  uint16_t mask) {
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::"
               "complete_tx::bytes.multicast::cluster [%0], [%1, {%3, %4}], "
               "[%2], %5;" ::"r"(smemAddr(dst)),
               "l"((uint64_t)map), "r"(smemAddr(bar)), "r"(c0), "r"(c1),
               "h"(mask)
               : "memory");
}
__device__ __forceinline__ void clusterSync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\n"
               "barrier.cluster.wait.acquire.aligned;" ::: "memory");
}
__device__ __forceinline__ uint32_t clusterRank() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}
__device__ __forceinline__ uint32_t clusterIndex() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%clusterid.x;" : "=r"(r));
  return r;
}
__device__ __forceinline__ uint32_t clusterCount() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%nclusterid.x;" : "=r"(r));
  return r;
}
__device__ __forceinline__ void tmaStore2(const CUtensorMap *map,
                                          const void *src, int c0, int c1) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group "
               "[%0, {%2, %3}], [%1];" ::"l"((uint64_t)map),
               "r"(smemAddr(src)), "r"(c0), "r"(c1)
               : "memory");
  asm volatile("cp.async.bulk.commit_group;" ::: "memory");
}
// Waits until at most N bulk stores of this thread still read shared memory.
template <int N> __device__ __forceinline__ void tmaStoreReadWait() {
  asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(N) : "memory");
}
__device__ __forceinline__ void tmaStoreWait() {
  asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
}
// 8x8 16-bit matrices from registers to shared memory: lanes 0-7 give the
// row addresses of matrix 0, lanes 8-15 those of matrix 1.
template <bool kTrans>
__device__ __forceinline__ void stmatrix2(uint32_t addr, uint32_t r0,
                                          uint32_t r1) {
  if constexpr (kTrans)
    asm volatile(
        "stmatrix.sync.aligned.m8n8.x2.trans.shared.b16 [%0], {%1, %2};" ::"r"(
            addr),
        "r"(r0), "r"(r1)
        : "memory");
  else
    asm volatile("stmatrix.sync.aligned.m8n8.x2.shared.b16 [%0], {%1, %2};" ::
                     "r"(addr),
                 "r"(r0), "r"(r1)
                 : "memory");
}
template <class T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t *>(&v);
}
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t *>(&v);
}

__device__ __forceinline__ void wgmmaFence() {
  asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
}
__device__ __forceinline__ void wgmmaCommit() {
  asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}
template <int N> __device__ __forceinline__ void wgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
// Keeps the compiler from moving accumulator reads across a wgmma wait.
template <int R> __device__ __forceinline__ void pin(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i)
    asm volatile("" : "+f"(d[i])::"memory");
}

// Shared-memory matrix descriptor of a tile stored with the 128-byte
// swizzle, 1 KiB per 8 rows of 128 bytes (what TMA writes for a box whose
// inner extent is 64 16-bit elements). K-major tiles ignore the leading
// byte offset; an M-major A of 64 rows has a single atom along M, so
// whichever of the two offsets the unit reads as the K-atom stride is 1 KiB.
__device__ __forceinline__ uint64_t sw128(uint32_t addr) {
  return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)(1024 >> 4) << 16) |
         ((uint64_t)(1024 >> 4) << 32) | (1ull << 62);
}

// ---- wgmma wrappers (generated by scripts/gen_wgmma.py) --------------------
template <int N, class T, int TA, int TB = 0> struct Wgmma;
template <int TA, int TB> struct Wgmma<8, __nv_bfloat16, TA, TB> {
  __device__ __forceinline__ static void run(float (&d)[4], uint64_t a, uint64_t b, int accumulate) {
    asm volatile("{\n.reg .pred p;\n"
                 "setp.ne.b32 p, %6, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16 "
                 "{%0, %1, %2, %3}, "
                 "%4, %5, p, 1, 1, %7, %8;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "l"(a), "l"(b), "r"(accumulate), "n"(TA), "n"(TB));
  }
};
template <int TA, int TB> struct Wgmma<8, __half, TA, TB> {
  __device__ __forceinline__ static void run(float (&d)[4], uint64_t a, uint64_t b, int accumulate) {
    asm volatile("{\n.reg .pred p;\n"
                 "setp.ne.b32 p, %6, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n8k16.f32.f16.f16 "
                 "{%0, %1, %2, %3}, "
                 "%4, %5, p, 1, 1, %7, %8;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "l"(a), "l"(b), "r"(accumulate), "n"(TA), "n"(TB));
  }
};
template <int TA, int TB> struct Wgmma<16, __nv_bfloat16, TA, TB> {
  __device__ __forceinline__ static void run(float (&d)[8], uint64_t a, uint64_t b, int accumulate) {
    asm volatile("{\n.reg .pred p;\n"
                 "setp.ne.b32 p, %10, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7}, "
                 "%8, %9, p, 1, 1, %11, %12;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
                 : "l"(a), "l"(b), "r"(accumulate), "n"(TA), "n"(TB));
  }
};
template <int TA, int TB> struct Wgmma<16, __half, TA, TB> {
  __device__ __forceinline__ static void run(float (&d)[8], uint64_t a, uint64_t b, int accumulate) {
    asm volatile("{\n.reg .pred p;\n"
                 "setp.ne.b32 p, %10, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n16k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7}, "
                 "%8, %9, p, 1, 1, %11, %12;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
                 : "l"(a), "l"(b), "r"(accumulate), "n"(TA), "n"(TB));
  }
};
template <int TA, int TB> struct Wgmma<32, __nv_bfloat16, TA, TB> {
  __device__ __forceinline__ static void run(float (&d)[16], uint64_t a, uint64_t b, int accumulate) {
    asm volatile("{\n.reg .pred p;\n"
                 "setp.ne.b32 p, %18, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, "
                 "%16, %17, p, 1, 1, %19, %20;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
                 : "l"(a), "l"(b), "r"(accumulate), "n"(TA), "n"(TB));
  }
};
template <int TA, int TB> struct Wgmma<32, __half, TA, TB> {
  __device__ __forceinline__ static void run(float (&d)[16], uint64_t a, uint64_t b, int accumulate) {
    asm volatile("{\n.reg .pred p;\n"
                 "setp.ne.b32 p, %18, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, "
                 "%16, %17, p, 1, 1, %19, %20;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
                 : "l"(a), "l"(b), "r"(accumulate), "n"(TA), "n"(TB));
  }
};
template <int TA, int TB> struct Wgmma<64, __nv_bfloat16, TA, TB> {
  __device__ __forceinline__ static void run(float (&d)[32], uint64_t a, uint64_t b, int accumulate) {
    asm volatile("{\n.reg .pred p;\n"
                 "setp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
                 "%32, %33, p, 1, 1, %35, %36;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "l"(a), "l"(b), "r"(accumulate), "n"(TA), "n"(TB));
  }
};
template <int TA, int TB> struct Wgmma<64, __half, TA, TB> {
  __device__ __forceinline__ static void run(float (&d)[32], uint64_t a, uint64_t b, int accumulate) {
    asm volatile("{\n.reg .pred p;\n"
                 "setp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
                 "%32, %33, p, 1, 1, %35, %36;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "l"(a), "l"(b), "r"(accumulate), "n"(TA), "n"(TB));
  }
};
template <int TA, int TB> struct Wgmma<128, __nv_bfloat16, TA, TB> {
  __device__ __forceinline__ static void run(float (&d)[64], uint64_t a, uint64_t b, int accumulate) {
    asm volatile("{\n.reg .pred p;\n"
                 "setp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
                 "%64, %65, p, 1, 1, %67, %68;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "l"(a), "l"(b), "r"(accumulate), "n"(TA), "n"(TB));
  }
};
template <int TA, int TB> struct Wgmma<128, __half, TA, TB> {
  __device__ __forceinline__ static void run(float (&d)[64], uint64_t a, uint64_t b, int accumulate) {
    asm volatile("{\n.reg .pred p;\n"
                 "setp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
                 "%64, %65, p, 1, 1, %67, %68;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "l"(a), "l"(b), "r"(accumulate), "n"(TA), "n"(TB));
  }
};

// ---- host side --------------------------------------------------------------

using TensorMapEncode = CUresult (*)(CUtensorMap *, CUtensorMapDataType,
                                     cuuint32_t, void *, const cuuint64_t *,
                                     const cuuint64_t *, const cuuint32_t *,
                                     const cuuint32_t *, CUtensorMapInterleave,
                                     CUtensorMapSwizzle, CUtensorMapL2promotion,
                                     CUtensorMapFloatOOBfill);

// cuTensorMapEncodeTiled from the driver the CUDA runtime already loaded
// (nothing links libcuda).
inline TensorMapEncode tensorMapEncoder() {
  static TensorMapEncode fn = [] {
    void *p = nullptr;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000,
                                         cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      return (TensorMapEncode) nullptr;
    return (TensorMapEncode)p;
  }();
  return fn;
}

// A tensor map of 16-bit elements with the 128-byte swizzle: dims innermost
// first, byte strides of dims 1.., box extents. Out-of-bounds reads are 0.
template <class T>
bool tensorMap(CUtensorMap *m, const void *base, cuuint32_t rank,
               const cuuint64_t *dims, const cuuint64_t *strides,
               const cuuint32_t *box) {
  TensorMapEncode fn = tensorMapEncoder();
  const cuuint32_t unit[3] = {1, 1, 1};
  return fn &&
         fn(m,
            std::is_same<T, __half>::value ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                           : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
            rank, const_cast<void *>(base), dims, strides, box, unit,
            CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
            CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// A tensor map remembered for the last (pointer, rows) it was encoded for:
// small calls are dominated by host work, and a layer's weights and
// buffers rarely move between calls. One per thread and operand role.
struct CachedMap {
  const void *base = nullptr;
  cuuint64_t rows = 0;
  int device = -1;
  CUtensorMap map;
};

template <class T>
bool cachedTensorMap(CachedMap &c, int device, const void *base,
                     cuuint64_t inner, cuuint64_t rows, cuuint32_t boxRows) {
  if (c.base == base && c.rows == rows && c.device == device)
    return true;
  const cuuint64_t dims[2] = {inner, rows}, strides[1] = {inner * 2};
  const cuuint32_t box[2] = {64, boxRows};
  c.base = nullptr;
  if (!tensorMap<T>(&c.map, base, 2, dims, strides, box))
    return false;
  c.base = base, c.rows = rows, c.device = device;
  return true;
}

// The device's multiprocessor count and shared-memory opt-in, read once.
struct DeviceLimits {
  int sms = 0, optin = 0;
};
inline cudaError_t deviceLimits(int device, DeviceLimits &out) {
  static DeviceLimits known[64];
  if (device >= 0 && device < 64 && known[device].sms > 0) {
    out = known[device];
    return cudaSuccess;
  }
  cudaError_t e =
      cudaDeviceGetAttribute(&out.sms, cudaDevAttrMultiProcessorCount, device);
  if (e == cudaSuccess)
    e = cudaDeviceGetAttribute(&out.optin,
                               cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (e == cudaSuccess && device >= 0 && device < 64)
    known[device] = out;
  return e;
}

// Raises kernel K's dynamic shared-memory limit, once per device.
template <auto kernel> cudaError_t sizeKernel(int device, size_t smem) {
  static bool done[64] = {}; // one array per kernel
  if (device >= 0 && device < 64 && done[device])
    return cudaSuccess;
  const cudaError_t e = cudaFuncSetAttribute(
      kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  if (e == cudaSuccess && device >= 0 && device < 64)
    done[device] = true;
  return e;
}

} // namespace hopper
} // namespace einstruct_cuda
#endif // EINSTRUCT_SM90_CUH
