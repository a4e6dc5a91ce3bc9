#include "compiler/cuda/CudaEmitter.h"
#include "compiler/cuda/CudaText.h"
#include "compiler/cuda/MoeSource.h"

#include <fmt/format.h>

namespace einstruct {
namespace {

// The kernel templates, embedded at build time (CMake writes this file from
// kernels/einstruct_two_stage.cuh).
const char *kKernelSource =
#include "einstruct_two_stage.cuh.inc"
    ;
const char *kMoeKernelSource =
#include "einstruct_moe.cuh.inc"
    ;
const char *kSm90Source =
#include "einstruct_sm90.cuh.inc"
    ;
const char *kHopperKernelSource =
#include "einstruct_hopper.cuh.inc"
    ;
const char *kHopperGradSource =
#include "einstruct_hopper_grad.cuh.inc"
    ;

// A weight gradient through the sm_90a kernel, then the split sum.
const char *kGradTma = R"(template <class H, class W>
int launchGradTma(const T *l, long long lRows, long long lWidth, const T *r,
                  long long rRows, long long rWidth, float *partial, T *grad,
                  long long n, cudaStream_t stream) {
  const int splits = splitsFor(n, tilesOf<W>());
  if (int rc = hopper::launchWeightGrad<H, T>(l, lRows, lWidth, r, rRows,
                                              rWidth, partial, n, splits,
                                              stream))
    return rc;
  reduceSplits<W, T><<<264, 256, 0, stream>>>(partial, grad, splits);
  return (int)cudaGetLastError();
}
)";

// The sm_90a kernel's configuration of one role.
std::string hopperStruct(const char *name, const TwoStageConfig &c,
                         const HopperConfig &h) {
  return fmt::format("struct {} {{\n"
                     "  static constexpr int G = {}, A = {}, F = {}, E = {}, "
                     "R = {};\n"
                     "  static constexpr int FC = {}, NWG = {}, STAGES = {}, "
                     "CL = {};\n"
                     "}};\n",
                     name, c.G, c.A, c.F, c.E, c.R, h.tile.FC, h.tile.NWG,
                     h.tile.STAGES, h.tile.CL);
}

std::string twoStageStruct(const char *name, const TwoStageConfig &c) {
  return fmt::format(
      "struct {} {{\n"
      "  static constexpr int G = {}, B = {}, A = {}, F = {}, D = {}, E = {}, "
      "R = {};\n"
      "  static constexpr int TT = {}, FC = {}, K2P = {};\n"
      "  static constexpr long long XT = {}, XG = {}, XB = {}, XA = {}, "
      "IN_LIMIT = {};\n"
      "  static constexpr long long W1F = {}, W1D = {}, W1R = {}, W1G = {}, "
      "W1A = {};\n"
      "  static constexpr long long W2F = {}, W2E = {}, W2R = {}, W2G = {}, "
      "W2B = {};\n"
      "  static constexpr long long YT = {}, YF = {}, YE = {}, YD = {}, "
      "OUT_LIMIT = {}, OUT_FILL_FROM = {};\n"
      "  static constexpr long long ZT = {}, ZF = {}, ZD = {}, ZR = {}, "
      "ZG = {};\n"
      "}};\n",
      name, c.G, c.B, c.A, c.F, c.D, c.E, c.R, c.TT, c.FC, c.K2P, c.XT, c.XG,
      c.XB, c.XA, c.IN_LIMIT, c.W1F, c.W1D, c.W1R, c.W1G, c.W1A, c.W2F, c.W2E,
      c.W2R, c.W2G, c.W2B, c.YT, c.YF, c.YE, c.YD, c.OUT_LIMIT,
      c.OUT_FILL_FROM, c.ZT, c.ZF, c.ZD, c.ZR, c.ZG);
}

std::string weightGradStruct(const char *name, const WeightGradConfig &w) {
  return fmt::format(
      "struct {} {{\n"
      "  static constexpr int P = {}, M0 = {}, M1 = {}, M2 = {}, N0 = {}, "
      "N1 = {}, N2 = {}, I = {};\n"
      "  static constexpr long long LT = {}, LP = {}, LI = {}, LM0 = {}, "
      "LM1 = {}, LM2 = {}, L_LIMIT = {};\n"
      "  static constexpr long long RT = {}, RP = {}, RI = {}, RN0 = {}, "
      "RN1 = {}, RN2 = {}, R_LIMIT = {};\n"
      "  static constexpr long long OP = {}, OM0 = {}, OM1 = {}, OM2 = {}, "
      "ON0 = {}, ON1 = {}, ON2 = {};\n"
      "}};\n",
      name, w.P, w.M0, w.M1, w.M2, w.N0, w.N1, w.N2, w.I, w.LT, w.LP, w.LI,
      w.LM0, w.LM1, w.LM2, w.L_LIMIT, w.RT, w.RP, w.RI, w.RN0, w.RN1, w.RN2,
      w.R_LIMIT, w.OP, w.OM0, w.OM1, w.OM2, w.ON0, w.ON1, w.ON2);
}

std::string array7(const std::array<int64_t, 7> &v) {
  return fmt::format("{{{}, {}, {}, {}, {}, {}, {}}}", v[0], v[1], v[2], v[3],
                     v[4], v[5], v[6]);
}

// The C ABI of a plain layer: declarations and definitions.
const char *kLayerDecls = R"(/* y = layer(x) */
int {N}_forward(const void *x, const void *w1, const void *w2, void *y,
                int64_t n, cudaStream_t stream);
/* dx = dy · ∂y/∂x */
int {N}_backward_input(const void *dy, const void *w1, const void *w2,
                       void *dx, int64_t n, cudaStream_t stream);
/* Bytes of device workspace backward_weights needs for n tokens. */
size_t {N}_backward_weights_workspace(int64_t n);
/* dw1, dw2 = gradients of <dy, layer(x)> (overwritten, not accumulated). */
int {N}_backward_weights(const void *x, const void *dy, const void *w1,
                         const void *w2, void *dw1, void *dw2, int64_t n,
                         void *workspace, size_t workspace_bytes,
                         cudaStream_t stream);

)";

const char *kLayerApi = R"(namespace {{
size_t partialBytes(int64_t n) {{
  const size_t a = (size_t)splitsFor(n, tilesOf<GradW1>()) * kW1;
  const size_t b = (size_t)splitsFor(n, tilesOf<GradW2>()) * kW2;
  return sizeof(float) * (a > b ? a : b);
}}
{gradTma}}} // namespace

extern "C" int {N}_forward(const void *x, const void *w1, const void *w2,
                          void *y, int64_t n, cudaStream_t stream) {{
  if (badTokens(n) || (n > 0 && (bad(x) || bad(w1) || bad(w2) || bad(y))))
    return EINSTRUCT_ERR_INVALID_ARGUMENT;
  if (n == 0)
    return EINSTRUCT_OK;
  return {fwdCall};
}}

extern "C" int {N}_backward_input(const void *dy, const void *w1,
                                 const void *w2, void *dx, int64_t n,
                                 cudaStream_t stream) {{
  if (badTokens(n) || (n > 0 && (bad(dy) || bad(w1) || bad(w2) || bad(dx))))
    return EINSTRUCT_ERR_INVALID_ARGUMENT;
  if (n == 0)
    return EINSTRUCT_OK;
  // Bwd's W1 is the forward's w2 and its W2 the forward's w1.
  return {bwdCall};
}}

extern "C" size_t {N}_backward_weights_workspace(int64_t n) {{
  if (badTokens(n))
    return 0;
  return 2 * align256(sizeof(T) * (size_t)zRows(n) * kZ) +
         align256(partialBytes(n));
}}

extern "C" int {N}_backward_weights(const void *x, const void *dy,
                                   const void *w1, const void *w2, void *dw1,
                                   void *dw2, int64_t n, void *workspace,
                                   size_t workspace_bytes,
                                   cudaStream_t stream) {{
  if (badTokens(n) || bad(dw1) || bad(dw2) ||
      (n > 0 && (bad(x) || bad(dy) || bad(w1) || bad(w2) || bad(workspace))))
    return EINSTRUCT_ERR_INVALID_ARGUMENT;
  if (workspace_bytes < {N}_backward_weights_workspace(n))
    return EINSTRUCT_ERR_WORKSPACE_TOO_SMALL;
  if (n == 0) {{
    cudaError_t e = cudaMemsetAsync(dw1, 0, sizeof(T) * kW1, stream);
    if (e == cudaSuccess)
      e = cudaMemsetAsync(dw2, 0, sizeof(T) * kW2, stream);
    return (int)e;
  }}
  char *ws = (char *)workspace;
  T *z = (T *)ws;
  T *dz = (T *)(ws + align256(sizeof(T) * (size_t)zRows(n) * kZ));
  float *partial =
      (float *)(ws + 2 * align256(sizeof(T) * (size_t)zRows(n) * kZ));
{zCalls}
{gradCalls}
  return rc;
}}
)";

} // namespace

Result<CudaSources> emitCuda(const CudaPlan &plan, const std::string &name) {
  if (!isCIdentifier(name))
    return Error{"--name: '" + name + "' is not a C identifier"};
  const EinsumTerm &t = plan.layer.terms[0];
  const auto shapes = weightShapes(plan.layer);
  const std::string N = name;
  const std::string dt = dtypeName(plan.target.dtype);
  const std::string ctype = dtypeCType(plan.target.dtype);
  const bool moe = plan.experts > 0;

  // Each role runs the sm_90a kernel where the plan chose it (never for a
  // BTT-MoE: its grouped launch is the portable kernel's).
  const HopperConfig &hf = plan.hopperForward, &hb = plan.hopperBackwardInput;
  const bool hopper = hf.enabled() || hb.enabled();
  std::string hopperStructs;
  if (hf.enabled())
    hopperStructs += "// The forward on the sm_90a kernel (einstruct_hopper.cuh).\n" +
                     hopperStruct("HFwd", plan.forward, hf);
  if (hb.enabled())
    hopperStructs += "// The backward-input on the sm_90a kernel.\n" +
                     hopperStruct("HBwd", plan.backwardInput, hb);
  const std::string fwdCall =
      hf.enabled()
          ? "hopper::launchLayer<HFwd, Fwd, T>((const T *)x, (const T *)w1, "
            "(const T *)w2, (T *)y, n, stream)"
          : "launchTwoStage<Fwd>((const T *)x, (const T *)w1, (const T *)w2, "
            "(T *)y, nullptr, n, stream)";
  const std::string bwdCall =
      hb.enabled()
          ? "hopper::launchLayer<HBwd, Bwd, T>((const T *)dy, (const T *)w2, "
            "(const T *)w1, (T *)dx, n, stream)"
          : "launchTwoStage<Bwd>((const T *)dy, (const T *)w2, (const T *)w1, "
            "(T *)dx, nullptr, n, stream)";

  // With both roles on the sm_90a kernel the weight gradients are too.
  const bool tmaGrads = plan.tmaGrads;
  auto gradStruct = [](const char *name, const TmaGradConfig &g) {
    return fmt::format("struct {} {{\n  static constexpr int P = {}, M = {}, "
                       "N = {}, LB = {}, RB = {}, MF = {}, MR = {}, TA = {}, "
                       "TB = {};\n}};\n",
                       name, g.P, g.M, g.N, g.LB, g.RB, g.MF, g.MR, g.TA, g.TB);
  };
  if (tmaGrads)
    hopperStructs += "// Weight gradients on the sm_90a kernel: dW1 from dzT "
                     "[g][r][f][t] and x, dW2 from dy and zT [f][r][g][t].\n" +
                     gradStruct("HGradW1", plan.tmaGradW1) +
                     gradStruct("HGradW2", plan.tmaGradW2);
  // z and dz: [n][...] from the portable kernel, or, for the TMA weight
  // gradients, zT and dzT (tokens contiguous, rows of zRows(n)) from the
  // sm_90a kernel's stage 1.
  const std::string zCalls =
      tmaGrads
          ? "  int rc = hopper::launchLayer<HFwd, Fwd, T>((const T *)x, "
            "(const T *)w1, (const T *)w2, z, n, stream, zRows(n));\n"
            "  if (!rc)\n"
            "    rc = hopper::launchLayer<HBwd, Bwd, T>((const T *)dy, "
            "(const T *)w2, (const T *)w1, dz, n, stream, zRows(n));"
          : "  int rc = launchTwoStage<Fwd>((const T *)x, (const T *)w1, "
            "(const T *)w2,\n                               nullptr, z, n, "
            "stream);\n"
            "  if (!rc)\n"
            "    rc = launchTwoStage<Bwd>((const T *)dy, (const T *)w2, "
            "(const T *)w1,\n                             nullptr, dz, n, "
            "stream);";
  const std::string gradCalls =
      tmaGrads
          ? "  if (!rc)\n"
            "    rc = launchGradTma<HGradW1, GradW1>(dz, Bwd::ZT, zRows(n), "
            "(const T *)x, n, Fwd::XT, partial, (T *)dw1, n, stream);\n"
            "  if (!rc)\n"
            "    rc = launchGradTma<HGradW2, GradW2>((const T *)dy, n, Fwd::YT, "
            "z, Fwd::ZT, zRows(n), partial, (T *)dw2, n, stream);"
          : "  if (!rc)\n"
            "    rc = launchWeightGrad<GradW1>(dz, (const T *)x, partial, "
            "(T *)dw1, n,\n                                  stream);\n"
            "  if (!rc)\n"
            "    rc = launchWeightGrad<GradW2>((const T *)dy, z, partial, "
            "(T *)dw2, n,\n                                  stream);";

  CudaSources out;
  out.header = fmt::format(
      R"(/* {N}.h: generated by einstruct; do not edit.
 *
 * Layer     {family} '{label}', einsum {einsum} with {sizes}
 * d_in      {din} (the structure covers {pin}: missing input columns read as
 *           zero, extra ones are ignored)
 * d_out     {dout} (the structure produces {pout}: columns past it are written
 *           as zero, extra ones are dropped)
 * dtype     {dt}: storage {ctype}, fp32 accumulation{tc}
 * Target    {arch}; tiles: {why}{moe}
 *
 * Layouts, all dense row-major (C order), no strides to pass:
 *   x, dx   [n, {din}]      y, dy   [n, {dout}]
 *   w1, dw1 {w1shape}  letters '{w1}' (A of structures.md §1)
 *   w2, dw2 {w2shape}  letters '{w2}' (B)
 * Pointers are device pointers, 16-byte aligned. Every function is asynchronous on `stream`
 * and returns a status: 0 (EINSTRUCT_OK), a negative EINSTRUCT_ERR_* code for
 * bad arguments, or a positive cudaError_t from the launch. n = 0 is a no-op.
 * Results are deterministic: no atomics; weight gradients sum fixed token
 * ranges in a fixed order.
 */
{body})",
      fmt::arg("N", N), fmt::arg("family", cText(plan.layer.name)),
      fmt::arg("label", cText(plan.layer.label)), fmt::arg("einsum", t.str()),
      fmt::arg("sizes", t.sizesStr()), fmt::arg("din", plan.layer.dIn),
      fmt::arg("pin", plan.paddedIn), fmt::arg("dout", plan.layer.dOut),
      fmt::arg("pout", plan.paddedOut), fmt::arg("dt", dt),
      fmt::arg("ctype", ctype),
      fmt::arg("tc", plan.target.dtype == CudaDType::F32
                         ? " on the SIMT units"
                         : hopper ? " on the tensor cores (wgmma and TMA where "
                                    "the tiles say so, WMMA elsewhere)"
                                  : " on the tensor cores (WMMA)"),
      fmt::arg("arch", plan.target.arch), fmt::arg("why", plan.tileWhy),
      fmt::arg("w1shape", shapeText(shapes[0])),
      fmt::arg("w2shape", shapeText(shapes[1])),
      fmt::arg("w1", t.weights[0]), fmt::arg("w2", t.weights[1]),
      fmt::arg("moe", moe ? moeHeaderNote(plan) : std::string()),
      fmt::arg("body",
               headerBody(N, moe ? moeDecls(N)
                                 : fmt::format(fmt::runtime(kLayerDecls),
                                               fmt::arg("N", N)))));

  out.source = fmt::format(
      R"(// {N}.cu: generated by einstruct; do not edit. See {N}.h.
#include "{N}.h"

{kernels}
namespace {{
using T = {ctype};
using namespace einstruct_cuda;

// Forward pass.
{fwd}
// Backward w.r.t. the input: classes swapped g<->f, b<->d, a<->e.
{bwd}{hop}// dW1 = sum over tokens and b of dz x.
{gw1}
// dW2 = sum over tokens and d of dy z.
{gw2}
constexpr long long kZ = {zsize};
constexpr long long kW1 = {w1size}, kW2 = {w2size};

size_t align256(size_t v) {{ return (v + 255) / 256 * 256; }}
// Rows of z and dz in the weight-gradient workspace: n, or n rounded up to
// whole 64-token tiles where they are stored tokens-contiguous (TMA).
[[maybe_unused]] long long zRows(long long n) {{ return {zRowsExpr}; }}

// Token splits of a weight gradient: enough blocks for two waves of a
// 132-SM GPU, at least 64 tokens each; a function of n and the plan only, so
// results never depend on the device.
int splitsFor(long long n, long long tiles) {{
  long long s = (264 + tiles - 1) / tiles;
  const long long cap = n / 64 > 1 ? n / 64 : 1;
  s = s < cap ? s : cap;
  return (int)(s < 1 ? 1 : s > 64 ? 64 : s);
}}
template <class W> long long tilesOf() {{
  return (long long)((W::M0 * W::M1 * W::M2 + kMT - 1) / kMT) *
         ((W::N0 * W::N1 * W::N2 + kNT - 1) / kNT) * W::P;
}}

template <class K> int prepare(K kernel, size_t smem) {{
  int device = 0, optin = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e == cudaSuccess)
    e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                               device);
  if (e != cudaSuccess)
    return (int)e;
  if ((size_t)optin < smem)
    return EINSTRUCT_ERR_SHARED_MEMORY;
  return (int)cudaFuncSetAttribute(
      kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
}}

template <class C>
int launchTwoStage(const T *x, const T *w1, const T *w2, T *y, T *z,
                   long long n, cudaStream_t stream) {{
  const size_t smem = twoStageSmem<C, T>();
  if (int rc = prepare(twoStage<C, T>, smem))
    return rc;
  const dim3 grid((unsigned)((n + C::TT - 1) / C::TT),
                  (unsigned)((C::F + C::FC - 1) / C::FC));
  twoStage<C, T><<<grid, kThreads, smem, stream>>>(x, w1, w2, y, z, n);
  return (int)cudaGetLastError();
}}

template <class W>
int launchWeightGrad(const T *l, const T *r, float *partial, T *grad,
                     long long n, cudaStream_t stream) {{
  const size_t smem = weightGradSmem<W, T>();
  if (int rc = prepare(weightGrad<W, T>, smem))
    return rc;
  const int splits = splitsFor(n, tilesOf<W>());
  const dim3 grid((unsigned)(tilesOf<W>() / W::P), W::P, splits);
  weightGrad<W, T><<<grid, kThreads, smem, stream>>>(l, r, partial, n);
  if (cudaError_t e = cudaGetLastError())
    return (int)e;
  reduceSplits<W, T><<<264, 256, 0, stream>>>(partial, grad, splits);
  return (int)cudaGetLastError();
}}

// Null or not 16-byte aligned (the kernels load 16-byte vectors).
bool bad(const void *p) {{ return !p || (uintptr_t)p % 16 != 0; }}

bool badTokens(int64_t n) {{
  return n < 0 || n / Fwd::TT >= 0x7fffffffLL || n / Bwd::TT >= 0x7fffffffLL;
}}

const einstruct_layer_info kInfo = {{
    "{N}", "{family}", "{einsum}", "{dt}", {din}, {dout}, {pin}, {pout},
    {sizes7}, {xs}, {w1s}, {w2s}, {ys}, kW1, kW2, (int)sizeof(T),
    {fwdSmem}, {bwdSmem}}};
}} // namespace

extern "C" const einstruct_layer_info *{N}_info(void) {{ return &kInfo; }}

extern "C" const char *{N}_status_string(int status) {{
  switch (status) {{
  case EINSTRUCT_OK:
    return "ok";
  case EINSTRUCT_ERR_INVALID_ARGUMENT:
    return "invalid argument: a null or not 16-byte aligned pointer, or n "
           "negative or too large";
  case EINSTRUCT_ERR_WORKSPACE_TOO_SMALL:
    return "workspace too small: see {N}_backward_weights_workspace";
  case EINSTRUCT_ERR_SHARED_MEMORY:
    return "the device has less shared memory per block than the plan "
           "needs: emit again for this device's --arch";
{fallback}
}}

{api})",
      fmt::arg("N", N),
      // With the sm_90a kernel the portable one's configurations (and some
      // of its constants) stay unused: nvcc is told not to warn about them.
      fmt::arg("kernels", std::string(hopper ? "#pragma nv_diag_suppress 177\n"
                                             : "") +
                              kKernelSource +
                              (moe ? kMoeKernelSource : "") +
                              (hopper ? std::string(kSm90Source) +
                                            kHopperKernelSource
                                      : std::string()) +
                              (tmaGrads ? kHopperGradSource : "")),
      fmt::arg("api", moe ? moeApi(plan, N)
                          : fmt::format(fmt::runtime(kLayerApi), fmt::arg("N", N),
                                        fmt::arg("fwdCall", fwdCall),
                                        fmt::arg("bwdCall", bwdCall),
                                        fmt::arg("gradTma", tmaGrads ? kGradTma : ""),
                                        fmt::arg("zCalls", zCalls),
                                        fmt::arg("gradCalls", gradCalls))),
      fmt::arg("ctype", ctype),
      fmt::arg("fwd", twoStageStruct("Fwd", plan.forward)),
      fmt::arg("bwd", twoStageStruct("Bwd", plan.backwardInput)),
      fmt::arg("hop", hopperStructs),
      fmt::arg("gw1", weightGradStruct("GradW1", plan.gradW1)),
      fmt::arg("gw2", weightGradStruct("GradW2", plan.gradW2)),
      fmt::arg("zRowsExpr", tmaGrads ? "(n + 63) / 64 * 64" : "n"),
      fmt::arg("zsize", plan.zSize), fmt::arg("w1size", plan.w1Size),
      fmt::arg("w2size", plan.w2Size),
      fmt::arg("family", cText(plan.layer.name)),
      fmt::arg("einsum", t.str()), fmt::arg("dt", dt),
      fmt::arg("din", plan.layer.dIn), fmt::arg("dout", plan.layer.dOut),
      fmt::arg("pin", plan.paddedIn), fmt::arg("pout", plan.paddedOut),
      fmt::arg("sizes7", array7(plan.sizes)),
      fmt::arg("xs", array7(plan.strides[0])),
      fmt::arg("w1s", array7(plan.strides[1])),
      fmt::arg("w2s", array7(plan.strides[2])),
      fmt::arg("ys", array7(plan.strides[3])),
      fmt::arg("fwdSmem", hf.enabled() ? "hopper::Layout<HFwd>::SMEM"
                                        : "twoStageSmem<Fwd, T>()"),
      fmt::arg("bwdSmem", hb.enabled() ? "hopper::Layout<HBwd>::SMEM"
                                        : "twoStageSmem<Bwd, T>()"),
      fmt::arg("fallback", statusFallback()));
  return out;
}

} // namespace einstruct
