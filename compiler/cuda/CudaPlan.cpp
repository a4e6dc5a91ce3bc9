#include "compiler/cuda/CudaPlan.h"
#include "search/ClassStrides.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <climits>
#include <map>
#include <vector>

namespace einstruct {
namespace {

// Mirrors of the kernel's compile-time tile (einstruct_two_stage.cuh).
constexpr int64_t kMT = 64, kNT = 64, kKT = 64;

int64_t rowPad(CudaDType t) { return t == CudaDType::F32 ? 4 : 8; }
int64_t roundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }


enum Cls { a, b, g, d, e, f, r };

using Classes = std::array<int64_t, 7>;

// The twoStage configuration of a term with class sizes S and the class
// strides of its x, W1, W2 and y (`in`, `w1`, `w2`, `out`); a backward role
// passes the transposed term's. z is laid out [t][f][d][r][g][b].
TwoStageConfig roleConfig(const Classes &S, const Classes &in,
                          const Classes &w1, const Classes &w2,
                          const Classes &out, int64_t inDim, int64_t outDim,
                          int64_t structureOut) {
  auto of = [](const Classes &v, int k) { return v[size_t(k)]; };
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

// The portable kernel's tile of role c, for the header and messages.
std::string tileDescription(const TwoStageConfig &c, int64_t budget) {
  if (c.FC < 1)
    return "no tile fits";
  return "TT=" + std::to_string(c.TT) + " tokens, FC=" + std::to_string(c.FC) +
         " of " + std::to_string(c.F) + " f-blocks (" +
         std::to_string((c.F + c.FC - 1) / c.FC) + " chunk(s)), " +
         std::to_string(c.smemBytes) + " B shared memory of a " +
         std::to_string(budget) + " B budget";
}

// The tile: tokens per block TT (rows of both products ≤ kMT) and f-chunk FC
// (z tile fits the budget). Among the feasible (TT, FC), the one moving the
// fewest elements per token: x is re-read once per f-chunk, the weights once
// per token tile; padded product rows count as wasted work.
void chooseTile(TwoStageConfig &c, CudaDType dt, int64_t budget) {
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
    return;
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
}

// The measured tiles (compiler/cuda/tuning.json, embedded at build time).
const char *kTuningTable =
#include "tuning.json.inc"
    ;

// The table's tile for role `c`, if it has a row for the target and sizes.
std::optional<HopperTile> tunedTile(const TwoStageConfig &c,
                                    const CudaTarget &target) {
  static const nlohmann::json table =
      nlohmann::json::parse(kTuningTable, nullptr, /*allow_exceptions=*/false);
  if (!table.is_object() || !table.contains("rows") || !table["rows"].is_array())
    return std::nullopt;
  for (const auto &row : table["rows"]) {
    try {
      const auto &z = row.at("sizes");
      if (row.at("arch") != target.arch ||
          row.at("dtype") != dtypeName(target.dtype) ||
          row.at("tokens") != "large" || z.at("G") != c.G || z.at("A") != c.A ||
          z.at("F") != c.F || z.at("E") != c.E || z.at("R") != c.R)
        continue;
      const auto &t = row.at("tile");
      return HopperTile{t.at("FC").get<int64_t>(), t.at("NWG").get<int64_t>(),
                        t.at("STAGES").get<int64_t>(),
                        t.value("CL", int64_t(1))};
    } catch (const nlohmann::json::exception &) {
      continue; // a malformed row is skipped (tests/unit checks the file)
    }
  }
  return std::nullopt;
}

bool wgmmaWidth(int64_t n1) {
  return n1 == 8 || n1 == 16 || n1 == 32 || n1 == 64 || n1 == 128;
}

// Why tile t cannot run role c within `budget` bytes (empty when it can).
std::string badHopperTile(const TwoStageConfig &c, const HopperTile &t,
                          int64_t budget) {
  if (t.FC < 1 || t.FC > c.F)
    return "FC = " + std::to_string(t.FC) + " is not in [1, f = " +
           std::to_string(c.F) + "]";
  if (!wgmmaWidth(t.FC * c.R))
    return "FC·R = " + std::to_string(t.FC * c.R) +
           " is not a wgmma width the kernel wraps (8, 16, 32, 64, 128)";
  if (t.NWG != 1 && t.NWG != 2)
    return "NWG must be 1 or 2";
  if (t.STAGES < 2 || t.STAGES > 16)
    return "STAGES must be in [2, 16]";
  const int64_t chunks = (c.F + t.FC - 1) / t.FC;
  if (t.CL != 1 && t.CL != 2 && t.CL != 4 && t.CL != 8)
    return "CL must be 1, 2, 4 or 8";
  if (t.CL > 1 && (c.F % t.FC || chunks % t.CL))
    return "a cluster of " + std::to_string(t.CL) + " needs f = " +
           std::to_string(c.F) + " cut into whole chunks of FC, a multiple of "
           "CL of them";
  if (hopperSmemBytes(c, t) > budget)
    return std::to_string(hopperSmemBytes(c, t)) +
           " B of shared memory exceed the budget of " + std::to_string(budget);
  return "";
}

// The analytic tile: fewest elements through L2 per token (x once per
// f-chunk, the weights once per item of 64·NWG tokens), then more stages.
std::optional<HopperTile> analyticTile(const TwoStageConfig &c,
                                       int64_t budget) {
  std::optional<HopperTile> best;
  double bestCost = 0;
  const double weights = double(c.F * c.R * c.G * c.A + c.F * c.E * c.R * c.G);
  // Only FC with FC·R a wgmma width can run: at most five per NWG, however
  // large f is (a loop over every FC in [1, f] timed out on f = 10^9).
  for (int64_t nwg : {1, 2})
    for (int64_t width : {8, 16, 32, 64, 128}) {
      if (width % c.R || width / c.R > c.F)
        continue;
      const int64_t fc = width / c.R;
      HopperTile t{fc, nwg, 8, 1};
      while (t.STAGES > 3 && !badHopperTile(c, t, budget).empty())
        --t.STAGES;
      if (!badHopperTile(c, t, budget).empty())
        continue;
      const int64_t chunks = (c.F + fc - 1) / fc;
      const double cost = double(chunks * c.G * c.A) + weights / (64.0 * nwg);
      if (!best || cost < bestCost ||
          (cost == bestCost && t.STAGES > best->STAGES)) {
        best = t;
        bestCost = cost;
      }
    }
  return best;
}

// The sm_90a kernel's configuration of role c with tile t (checked by
// badHopperTile); `source` says where the tile came from.
HopperConfig hopperConfig(const TwoStageConfig &c, const HopperTile &t,
                          const std::string &source) {
  HopperConfig h;
  h.tile = t;
  h.smemBytes = hopperSmemBytes(c, t);
  // (a stride of a size-1 class is never used)
  auto is = [](int64_t size, int64_t stride, int64_t want) {
    return size == 1 || stride == want;
  };
  h.permuteWeights =
      !(is(c.A, c.W1A, 1) && is(c.G, c.W1G, c.A) && is(c.R, c.W1R, c.G * c.A) &&
        is(c.F, c.W1F, c.R * c.G * c.A) && is(c.G, c.W2G, 1) &&
        is(c.R, c.W2R, c.G) && is(c.E, c.W2E, c.R * c.G) &&
        is(c.F, c.W2F, c.E * c.R * c.G));
  h.why = "wgmma/TMA, FC=" + std::to_string(t.FC) +
          " NWG=" + std::to_string(t.NWG) +
          " STAGES=" + std::to_string(t.STAGES) +
          " CL=" + std::to_string(t.CL) + " (" + source + "), " +
          std::to_string(h.smemBytes) + " B shared memory" +
          (h.permuteWeights ? ", weights copied to the kernel's layout" : "");
  return h;
}

HopperConfig planHopper(const TwoStageConfig &c, const CudaTarget &target,
                        int64_t budget) {
  HopperConfig h;
  if (!target.wgmma || !hopperRefusal(c, target).empty())
    return h;
  std::optional<HopperTile> t;
  if (target.hopperTile) {
    t = target.hopperTile;
    h.why = "tile forced";
  } else if ((t = tunedTile(c, target)) &&
             badHopperTile(c, *t, budget).empty()) {
    h.why = "tile from the tuning table";
  } else {
    t = analyticTile(c, budget);
    h.why = "analytic tile";
  }
  if (!t || !badHopperTile(c, *t, budget).empty())
    return h;
  return hopperConfig(c, *t, h.why);
}

// The shared-memory bytes per block a target allows: its own budget, else
// its arch's; 0 for an unknown arch.
int64_t smemBudget(const CudaTarget &target) {
  if (target.smemBudget)
    return target.smemBudget;
  if (target.arch == "sm_80")
    return 160 * 1024; // of 163 KB opt-in on A100
  if (target.arch == "sm_90a" || target.arch == "sm_90")
    return 220 * 1024; // of 227 KB opt-in on H100/H200
  return 0;
}

// With both roles on the sm_90a kernel, the weight gradients read zT and dzT
// (its stage 1, tokens contiguous) and x, dy through TMA.
void planTmaGrads(CudaPlan &p) {
  p.tmaGrads = p.hopperForward.enabled() && p.hopperBackwardInput.enabled();
  if (!p.tmaGrads)
    return;
  // dW1[g][(f,r)][a] from dzT [g][r][f][t] and x [t][g][a]; dW2[f][e][(r,g)]
  // from dy [t][f][e] and zT [f][r][g][t].
  const TwoStageConfig &c = p.forward;
  p.tmaGradW1 = {c.G, c.R * c.F, c.A, c.R * c.F, c.A, c.F, c.R, 0, 1};
  p.tmaGradW2 = {c.F, c.E, c.R * c.G, c.E, c.R * c.G, c.E, 1, 1, 0};
}

// How the plan's tiles run, for the header and messages.
std::string tilesWhy(const CudaPlan &p, int64_t budget) {
  const std::string fwWhy = tileDescription(p.forward, budget);
  const std::string bwWhy = tileDescription(p.backwardInput, budget);
  return "forward: " +
         (p.hopperForward.enabled() ? p.hopperForward.why : fwWhy) +
         "; backward-input: " +
         (p.hopperBackwardInput.enabled() ? p.hopperBackwardInput.why : bwWhy) +
         (p.tmaGrads
              ? "; weight gradients: wgmma over tokens, z and dz from the "
                "sm_90a stage 1"
          : p.hopperForward.enabled() || p.hopperBackwardInput.enabled()
              ? "; z and dz for the weight gradients: portable kernel (" +
                    fwWhy + "; " + bwWhy + ")"
              : std::string());
}

} // namespace

const char *hopperTuningTable() { return kTuningTable; }

Result<CudaTarget> cudaTargetFrom(const std::string &arch,
                                  const std::string &dtype, int64_t smemKb,
                                  bool wgmma, const std::string &hopperTile) {
  CudaTarget t;
  if (arch != "sm_80" && arch != "sm_90a")
    return Error{"arch: unknown '" + arch + "' (known: sm_80, sm_90a)"};
  t.arch = arch;
  auto d = dtypeFromName(dtype);
  if (!d)
    return Error{"dtype: unknown '" + dtype + "' (known: f32, bf16, f16)"};
  t.dtype = *d;
  if (smemKb < 0 || smemKb > 1024)
    return Error{"smem-kb: " + std::to_string(smemKb) +
                 " must be in [0, 1024]"};
  t.smemBudget = smemKb * 1024;
  t.wgmma = wgmma;
  if (!hopperTile.empty()) {
    auto tile = parseHopperTile(hopperTile);
    if (!tile)
      return Error{"hopper-tile: " + tile.error()};
    t.hopperTile = *tile;
  }
  return t;
}

Result<HopperTile> parseHopperTile(const std::string &text) {
  std::vector<int64_t> v;
  size_t pos = 0;
  while (true) {
    size_t end = pos;
    while (end < text.size() && std::isdigit((unsigned char)text[end]) &&
           end - pos < 4)
      ++end;
    if (end == pos || (end < text.size() && text[end] != ':') || v.size() == 4)
      return Error{"'" + text + "': expected FC:NWG:STAGES[:CL], integers "
                   "below 10000 (column " + std::to_string(end + 1) + ")"};
    v.push_back(std::stoll(text.substr(pos, end - pos)));
    if (end == text.size())
      break;
    pos = end + 1;
  }
  if (v.size() < 3)
    return Error{"'" + text + "': expected FC:NWG:STAGES[:CL] (" +
                 std::to_string(v.size()) + " number(s) given)"};
  return HopperTile{v[0], v[1], v[2], v.size() == 4 ? v[3] : 1};
}

int64_t hopperSmemBytes(const TwoStageConfig &c, const HopperTile &t) {
  const int64_t ka = c.A / 64, k2 = c.R * c.G, kc = k2 / 64;
  const int64_t step1 = ka * (64 * t.NWG * 128 + t.FC * c.R * 128);
  const int64_t step2 = kc * 64 * 128;
  const int64_t slot = (std::max(step1, step2) + 1023) / 1024 * 1024;
  return slot * t.STAGES + t.FC * k2 * 128 * t.NWG + 64 * 128 * 2 * t.NWG +
         16 * t.STAGES + 1024;
}

std::string hopperRefusal(const TwoStageConfig &c, const CudaTarget &target) {
  if (target.arch != "sm_90a")
    return "wgmma needs sm_90a";
  if (target.dtype == CudaDType::F32)
    return "wgmma here takes 16-bit inputs";
  if (c.B != 1 || c.D != 1)
    return "b and d must be 1";
  if (c.A % 64 || (c.R * c.G) % 64 || c.E % 64)
    return "a, r·g and e must be multiples of 64";
  if (c.XA != 1 || c.XG != c.A || c.XT != c.G * c.A || c.IN_LIMIT != c.XT)
    return "x must be [n][g][a] with nothing padded";
  if (c.YE != 1 || c.YF != c.E || c.YT != c.F * c.E || c.OUT_LIMIT != c.YT ||
      c.OUT_FILL_FROM != c.YT)
    return "y must be [n][f][e] with nothing padded";
  if (c.F * c.E > INT_MAX || c.G * c.A > INT_MAX)
    return "widths past the 32-bit TMA coordinates";
  return "";
}

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
  const int64_t budget = smemBudget(target);
  if (budget == 0)
    return Error{"arch: unknown '" + target.arch + "' (known: sm_80, sm_90a)"};

  // Forward: the term's classes. Backward w.r.t. the input: the forward
  // of the transposed term (autodiff's dx: dy in x's place, W2 first), whose
  // classes are the forward's with g↔f, b↔d, a↔e.
  auto back = classStrides(transposedTerm(t));
  if (!back)
    return Error{back.error()};
  Classes SB = back->size;
  if (layer.experts > 0)
    SB[r] = 1;
  p.forward = roleConfig(S, X, W1, W2, Y, layer.dIn, layer.dOut, p.paddedOut);
  p.backwardInput =
      roleConfig(SB, back->stride[0], back->stride[1], back->stride[2],
                 back->stride[3], layer.dOut, layer.dIn, p.paddedIn);
  TwoStageConfig &fw = p.forward, &bw = p.backwardInput;
  p.zSize = fw.ZT;

  chooseTile(fw, target.dtype, budget);
  chooseTile(bw, target.dtype, budget);
  if (target.hopperTile) {
    std::string why = hopperRefusal(fw, target);
    if (why.empty())
      why = badHopperTile(fw, *target.hopperTile, budget);
    if (!why.empty())
      return Error{"hopper tile " + std::to_string(target.hopperTile->FC) +
                   ":" + std::to_string(target.hopperTile->NWG) + ":" +
                   std::to_string(target.hopperTile->STAGES) + ":" +
                   std::to_string(target.hopperTile->CL) +
                   ": the forward cannot run the sm_90a kernel: " + why};
  }
  // The sm_90a kernel where a role qualifies (not for a BTT-MoE, whose
  // grouped expert launch is the portable kernel's); the portable kernel
  // stays the fallback.
  if (layer.experts == 0) {
    p.hopperForward = planHopper(fw, target, budget);
    p.hopperBackwardInput = planHopper(bw, target, budget);
  }
  planTmaGrads(p);
  if (fw.FC < 1 || bw.FC < 1 || fw.smemBytes > budget || bw.smemBytes > budget)
    return Error{"the z tile of one f-block (" +
                 std::to_string(dtypeBytes(target.dtype) * kMT * fw.K2P) +
                 " B) does not fit the shared-memory budget of " +
                 std::to_string(budget) + " B"};
  p.tileWhy = tilesWhy(p, budget);

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

PlanTiles planTiles(const CudaPlan &plan) {
  auto role = [](const TwoStageConfig &c, const HopperConfig &h) {
    RoleTiles t{c.TT, c.FC, c.K2P, c.smemBytes, std::nullopt, 0};
    if (h.enabled()) {
      t.hopper = h.tile;
      t.hopperSmemBytes = h.smemBytes;
    }
    return t;
  };
  return {role(plan.forward, plan.hopperForward),
          role(plan.backwardInput, plan.hopperBackwardInput), plan.tmaGrads};
}

Result<CudaPlan> withTiles(CudaPlan p, const PlanTiles &tiles) {
  if (planTiles(p) == tiles)
    return p;
  const int64_t budget = smemBudget(p.target);
  auto role = [&](const char *name, const char *hopperName, TwoStageConfig &c,
                  HopperConfig &h, const RoleTiles &t) -> std::string {
    const std::string at = std::string(name) + ": ";
    if (t.K2P != c.K2P)
      return at + "K2P = " + std::to_string(t.K2P) +
             ", but the layer's stage-2 reduction pads to " +
             std::to_string(c.K2P);
    const int64_t rows = std::max(c.B, c.D);
    if (t.TT < 1 || t.TT > kMT / rows)
      return at + "TT = " + std::to_string(t.TT) + " is not in [1, " +
             std::to_string(kMT / rows) + "]: a tile holds " +
             std::to_string(kMT) + " product rows, " + std::to_string(rows) +
             " per token";
    if (t.FC < 1 || t.FC > c.F)
      return at + "FC = " + std::to_string(t.FC) +
             " is not in [1, f = " + std::to_string(c.F) + "]";
    c.TT = t.TT;
    c.FC = t.FC;
    c.smemBytes = twoStageSmemBytes(c, p.target.dtype);
    if (c.smemBytes > budget)
      return at + "the tile needs " + std::to_string(c.smemBytes) +
             " B of shared memory, past the budget of " +
             std::to_string(budget) + " B";
    if (t.smemBytes != c.smemBytes)
      return at + "shared memory " + std::to_string(t.smemBytes) +
             " B recorded, but the tile needs " + std::to_string(c.smemBytes) +
             " B";
    h = HopperConfig{};
    if (!t.hopper)
      return "";
    const std::string hat = std::string(hopperName) + ": ";
    if (p.experts > 0)
      return hat + "a BTT-MoE runs the grouped portable kernel only";
    if (auto why = hopperRefusal(c, p.target); !why.empty())
      return hat + "the role cannot run the sm_90a kernel: " + why;
    if (auto why = badHopperTile(c, *t.hopper, budget); !why.empty())
      return hat + why;
    h = hopperConfig(c, *t.hopper, "tile from #einstruct.cuda_plan");
    if (t.hopperSmemBytes != h.smemBytes)
      return hat + "shared memory " + std::to_string(t.hopperSmemBytes) +
             " B recorded, but the tile needs " + std::to_string(h.smemBytes) +
             " B";
    return "";
  };
  if (auto why = role("forward", "hopper_forward", p.forward, p.hopperForward,
                      tiles.forward);
      !why.empty())
    return Error{why};
  if (auto why =
          role("backward_input", "hopper_backward_input", p.backwardInput,
               p.hopperBackwardInput, tiles.backwardInput);
      !why.empty())
    return Error{why};
  planTmaGrads(p);
  if (tiles.tmaGrads != p.tmaGrads)
    return Error{std::string("tma_grads = ") +
                 (tiles.tmaGrads ? "true" : "false") + ", but " +
                 (p.tmaGrads ? "both roles run" : "not both roles run") +
                 " the sm_90a kernel"};
  p.tileWhy = tilesWhy(p, budget) + " (tiles from #einstruct.cuda_plan)";
  return p;
}

} // namespace einstruct
