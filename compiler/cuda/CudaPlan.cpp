#include "compiler/cuda/CudaPlan.h"
#include "search/ClassStrides.h"

#include <algorithm>
#include <climits>
#include <map>

namespace einstruct {
namespace {

// Mirrors of the kernel's compile-time tile (einstruct_two_stage.cuh).
constexpr int64_t kMT = 64, kNT = 64, kKT = 64;

int64_t rowPad(CudaDType t) { return t == CudaDType::F32 ? 4 : 8; }
int64_t roundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }


enum Cls { a, b, g, d, e, f, r };

using Classes = std::array<int64_t, 7>;

// The twoStage configuration whose role k (a,b,g,d,e,f,r order) is played by
// class role[k]: sizes and strides are read through the map; `in`, `w1`,
// `w2`, `out` are the class strides of the operands in those roles. z is laid
// out [t][f][d][r][g][b] in the role names.
TwoStageConfig roleConfig(const std::array<int, 7> &role, const Classes &S,
                          const Classes &in, const Classes &w1,
                          const Classes &w2, const Classes &out, int64_t inDim,
                          int64_t outDim, int64_t structureOut) {
  auto of = [&](const Classes &v, int k) { return v[size_t(role[k])]; };
  TwoStageConfig c;
  c.G = of(S, g), c.B = of(S, b), c.A = of(S, a), c.F = of(S, f);
  c.D = of(S, d), c.E = of(S, e), c.R = of(S, r);
  c.XT = inDim, c.XG = of(in, g), c.XB = of(in, b), c.XA = of(in, a);
  c.IN_LIMIT = inDim;
  c.W1F = of(w1, f), c.W1D = of(w1, d), c.W1R = of(w1, r), c.W1G = of(w1, g);
  c.W1A = of(w1, a);
  c.W2F = of(w2, f), c.W2E = of(w2, e), c.W2R = of(w2, r), c.W2G = of(w2, g);
  c.W2B = of(w2, b);
  c.YT = outDim, c.YF = of(out, f), c.YE = of(out, e), c.YD = of(out, d);
  c.OUT_LIMIT = outDim;
  c.OUT_FILL_FROM = std::min(structureOut, outDim);
  c.ZG = c.B;
  c.ZR = c.G * c.B;
  c.ZD = c.R * c.ZR;
  c.ZF = c.D * c.ZD;
  c.ZT = c.F * c.ZF;
  return c;
}

// The tile: tokens per block TT (rows of both products ≤ kMT) and f-chunk FC
// (z tile fits the budget). Among the feasible (TT, FC), the one moving the
// fewest elements per token: x is re-read once per f-chunk, the weights once
// per token tile; padded product rows count as wasted work.
std::string chooseTile(TwoStageConfig &c, CudaDType dt, int64_t budget) {
  const int64_t bytes = dtypeBytes(dt);
  const int64_t k2 = c.R * c.G * c.B;
  // z rows: a reduction shorter than one k-chunk is read in 16-column steps
  // (the kernel's KE2), so it is padded to 16 only; longer ones to kKT.
  c.K2P = (k2 <= kKT ? roundUp(k2, 16) : roundUp(k2, kKT)) + rowPad(dt);
  const int64_t fixed = bytes * (kMT + kNT) * (kKT + rowPad(dt)) + 4 * 8 * 256;
  const int64_t perF = bytes * kMT * c.K2P;
  const int64_t ttMax = kMT / std::max(c.B, c.D);
  const int64_t fcMax = std::min(c.F, (budget - fixed) / perF);
  if (fcMax < 1) {
    c.FC = 0;
    return "no tile fits";
  }
  const int64_t weights = c.F * c.D * c.R * c.G * c.A + c.F * c.E * c.R * c.G * c.B;
  double best = -1;
  for (int64_t tt = ttMax; tt >= 1 && tt * 4 >= ttMax; tt /= 2) {
    const int64_t chunks = (c.F + fcMax - 1) / fcMax;
    const int64_t fc = (c.F + chunks - 1) / chunks;
    const double rows = double(tt * std::max(c.B, c.D)) / kMT;
    const double cost = (double(chunks) * c.XT + double(weights) / tt +
                         double(c.YT)) / rows;
    if (best < 0 || cost < best) {
      best = cost;
      c.TT = tt;
      c.FC = fc;
    }
  }
  c.smemBytes = twoStageSmemBytes(c, dt);
  return "TT=" + std::to_string(c.TT) + " tokens, FC=" + std::to_string(c.FC) +
         " of " + std::to_string(c.F) + " f-blocks (" +
         std::to_string((c.F + c.FC - 1) / c.FC) + " chunk(s)), " +
         std::to_string(c.smemBytes) + " B shared memory of a " +
         std::to_string(budget) + " B budget";
}

} // namespace

const char *dtypeName(CudaDType t) {
  return t == CudaDType::F32 ? "f32" : t == CudaDType::BF16 ? "bf16" : "f16";
}
const char *dtypeCType(CudaDType t) {
  return t == CudaDType::F32    ? "float"
         : t == CudaDType::BF16 ? "__nv_bfloat16"
                                : "__half";
}
std::optional<CudaDType> dtypeFromName(const std::string &name) {
  for (CudaDType t : {CudaDType::F32, CudaDType::BF16, CudaDType::F16})
    if (name == dtypeName(t))
      return t;
  return std::nullopt;
}

int dtypeBytes(CudaDType t) { return t == CudaDType::F32 ? 4 : 2; }

int64_t twoStageSmemBytes(const TwoStageConfig &c, CudaDType t) {
  return dtypeBytes(t) * (kMT + kNT) * (kKT + rowPad(t)) + 4 * 8 * 256 +
         dtypeBytes(t) * c.FC * kMT * c.K2P;
}

Result<CudaPlan> planCuda(const Layer &layer, const CudaTarget &target) {
  if (layer.terms.size() != 1)
    return Error{"the CUDA emitter takes one einsum term; '" + layer.name +
                 "' has " + std::to_string(layer.terms.size()) +
                 " (sums of terms such as DYAD are not emitted yet)"};
  const EinsumTerm &t = layer.terms[0];
  if (t.weights.size() != 2)
    return Error{"the CUDA emitter needs two weight tensors (structures.md "
                 "§1); '" + layer.name + "' has " +
                 std::to_string(t.weights.size())};
  auto cs = classStrides(t);
  if (!cs)
    return Error{cs.error()};
  if (layer.experts > 0) {
    if (cs->size[r] != layer.experts)
      return Error{"BTT-MoE: the rank class has size " +
                   std::to_string(cs->size[r]) + ", not experts = " +
                   std::to_string(layer.experts)};
    if (layer.experts > kMaxCudaExperts)
      return Error{"BTT-MoE: the CUDA kernels take at most " +
                   std::to_string(kMaxCudaExperts) + " experts, not " +
                   std::to_string(layer.experts)};
  }
  // A BTT-MoE's kernels run one expert (rank 1) with the full layer's
  // strides, pointed at that expert's slice.
  Classes S = cs->size;
  if (layer.experts > 0)
    S[r] = 1;
  const auto &X = cs->stride[0], &W1 = cs->stride[1], &W2 = cs->stride[2],
             &Y = cs->stride[3];
  for (int k : {b, d})
    if (S[k] > kMT)
      return Error{std::string("class ") + kClassNames[k] + " has size " +
                   std::to_string(S[k]) + "; the CUDA kernels take at most " +
                   std::to_string(kMT)};
  for (int64_t v : {S[e] * S[f], S[d] * S[r] * S[f], S[r] * S[g] * S[b],
                    S[a] * S[g] * S[b], S[a] * S[d], S[e] * S[b]})
    if (v > INT_MAX / 4)
      return Error{"a class product exceeds the kernels' 32-bit tile index"};

  CudaPlan p;
  p.layer = layer;
  p.target = target;
  p.sizes = cs->size;
  p.strides = cs->stride;
  p.experts = layer.experts;
  p.topK = layer.topK;
  p.expertW1 = W1[r];
  p.expertW2 = W2[r];
  p.paddedIn = t.inDim();
  p.paddedOut = t.outDim();
  p.w1Size = t.extent(t.weights[0]);
  p.w2Size = t.extent(t.weights[1]);
  int64_t budget = target.smemBudget;
  if (budget == 0) {
    if (target.arch == "sm_80")
      budget = 160 * 1024; // of 163 KB opt-in on A100
    else if (target.arch == "sm_90a" || target.arch == "sm_90")
      budget = 220 * 1024; // of 227 KB opt-in on H100/H200
    else
      return Error{"--arch: unknown '" + target.arch +
                   "' (known: sm_80, sm_90a)"};
  }

  // Forward: the roles are the classes themselves. Backward w.r.t. the
  // input: dy plays x, W2 plays W1 and dx plays y, with the classes swapped
  // g↔f, b↔d, a↔e.
  p.forward = roleConfig({a, b, g, d, e, f, r}, S, X, W1, W2, Y, layer.dIn,
                         layer.dOut, p.paddedOut);
  p.backwardInput = roleConfig({e, d, f, b, a, g, r}, S, Y, W2, W1, X,
                               layer.dOut, layer.dIn, p.paddedIn);
  TwoStageConfig &fw = p.forward, &bw = p.backwardInput;
  p.zSize = fw.ZT;

  p.tileWhy = "forward: " + chooseTile(fw, target.dtype, budget) +
              "; backward-input: " + chooseTile(bw, target.dtype, budget);
  if (fw.FC < 1 || bw.FC < 1 || fw.smemBytes > budget || bw.smemBytes > budget)
    return Error{"the z tile of one f-block (" +
                 std::to_string(dtypeBytes(target.dtype) * kMT * fw.K2P) +
                 " B) does not fit the shared-memory budget of " +
                 std::to_string(budget) + " B"};

  // dW1[f,d,r,g,a] = Σ_{t,b} dz[t,f,d,r,g,b]·x[t,g,b,a]; dz is the
  // backward-input stage 1, laid out [t][g][b][r][f][d].
  WeightGradConfig &w1 = p.gradW1;
  w1.P = S[g], w1.M0 = S[f], w1.M1 = S[d], w1.M2 = S[r], w1.N2 = S[a];
  w1.I = S[b];
  w1.LT = bw.ZT, w1.LP = bw.ZF, w1.LI = bw.ZD, w1.LM0 = bw.ZG, w1.LM1 = 1;
  w1.LM2 = bw.ZR, w1.L_LIMIT = bw.ZT;
  w1.RT = layer.dIn, w1.RP = X[g], w1.RI = X[b], w1.RN2 = X[a];
  w1.R_LIMIT = layer.dIn;
  w1.OP = W1[g], w1.OM0 = W1[f], w1.OM1 = W1[d], w1.OM2 = W1[r];
  w1.ON2 = W1[a];

  // dW2[f,e,r,g,b] = Σ_{t,d} dy[t,f,e,d]·z[t,f,d,r,g,b].
  WeightGradConfig &w2 = p.gradW2;
  w2.P = S[f], w2.M2 = S[e], w2.N0 = S[r], w2.N1 = S[g], w2.N2 = S[b];
  w2.I = S[d];
  w2.LT = layer.dOut, w2.LP = Y[f], w2.LI = Y[d], w2.LM2 = Y[e];
  w2.L_LIMIT = layer.dOut;
  w2.RT = fw.ZT, w2.RP = fw.ZF, w2.RI = fw.ZD, w2.RN0 = fw.ZR;
  w2.RN1 = fw.ZG, w2.RN2 = 1, w2.R_LIMIT = fw.ZT;
  w2.OP = W2[f], w2.OM2 = W2[e], w2.ON0 = W2[r], w2.ON1 = W2[g];
  w2.ON2 = W2[b];
  return p;
}

} // namespace einstruct
