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
#ifndef EINSTRUCT_HOPPER_CUH
#define EINSTRUCT_HOPPER_CUH
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

// ---- weight gradients -------------------------------------------------------

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
