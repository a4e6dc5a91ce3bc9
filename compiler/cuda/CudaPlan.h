// What the CUDA emitter decides for one layer, before any text is written:
// the sizes and element strides each kernel configuration of
// kernels/einstruct_two_stage.cuh needs, and the tile chosen per shape.
// Kept apart from the text so tests can check the index arithmetic on the
// CPU (tests/unit/test_cuda_plan.cpp emulates the kernels with it).
#pragma once
#include "search/Layer.h"

#include <array>
#include <optional>
#include <string>

namespace einstruct {

// One `twoStage` configuration: class sizes and strides named by the roles of
// the forward pass (x[g,b,a], W1[f,d,r,g,a], W2[f,e,r,g,b], y[f,e,d]).
struct TwoStageConfig {
  int64_t G = 1, B = 1, A = 1, F = 1, D = 1, E = 1, R = 1;
  int64_t XT = 0, XG = 0, XB = 0, XA = 0, IN_LIMIT = 0;
  int64_t W1F = 0, W1D = 0, W1R = 0, W1G = 0, W1A = 0;
  int64_t W2F = 0, W2E = 0, W2R = 0, W2G = 0, W2B = 0;
  int64_t YT = 0, YF = 0, YE = 0, YD = 0, OUT_LIMIT = 0, OUT_FILL_FROM = 0;
  int64_t ZT = 0, ZF = 0, ZD = 0, ZR = 0, ZG = 0; // z as [t][f][d][r][g][b]
  int64_t TT = 1, FC = 1, K2P = 0;                 // the tile
  int64_t smemBytes = 0;
};

// One `weightGrad` configuration: grad[p][m][n] = Σ_{t,i} L·R.
struct WeightGradConfig {
  int64_t P = 1, M0 = 1, M1 = 1, M2 = 1, N0 = 1, N1 = 1, N2 = 1, I = 1;
  int64_t LT = 0, LP = 0, LI = 0, LM0 = 0, LM1 = 0, LM2 = 0, L_LIMIT = 0;
  int64_t RT = 0, RP = 0, RI = 0, RN0 = 0, RN1 = 0, RN2 = 0, R_LIMIT = 0;
  int64_t OP = 0, OM0 = 0, OM1 = 0, OM2 = 0, ON0 = 0, ON1 = 0, ON2 = 0;
};

enum class CudaDType { F32, BF16, F16 };
const char *dtypeName(CudaDType t);       // "f32", "bf16", "f16"
// The dtype named `name` (as dtypeName writes it), or none.
std::optional<CudaDType> dtypeFromName(const std::string &name);
const char *dtypeCType(CudaDType t);      // "float", "__nv_bfloat16", "__half"
int dtypeBytes(CudaDType t);

// The tile of the sm_90a kernel (kernels/einstruct_hopper.cuh): FC f-blocks
// per work item, NWG consumer warpgroups of 64 tokens, STAGES TMA ring
// slots, CL CTAs per cluster sharing each x tile by multicast.
struct HopperTile {
  int64_t FC = 0, NWG = 1, STAGES = 0, CL = 1;
  bool operator==(const HopperTile &o) const {
    return FC == o.FC && NWG == o.NWG && STAGES == o.STAGES && CL == o.CL;
  }
};

struct CudaTarget {
  std::string arch = "sm_90a"; // sm_80 or sm_90a: sets the shared-memory budget
  CudaDType dtype = CudaDType::BF16;
  int64_t smemBudget = 0; // bytes per block; 0 = the arch's default
  // sm_90a, 16-bit: use the wgmma/TMA kernel where a role qualifies.
  bool wgmma = true;
  // Forces this tile on every qualifying role (tuning); else the tuning
  // table's row for the sizes, else the analytic choice.
  std::optional<HopperTile> hopperTile;
};

// The sm_90a kernel's configuration of one role (forward or backward-input);
// tile.FC == 0 when the role runs on the portable twoStage kernel instead.
struct HopperConfig {
  HopperTile tile;
  int64_t smemBytes = 0;
  bool permuteWeights = false; // weights copied into the canonical layouts
  std::string why;             // where the tile came from, for the header
  bool enabled() const { return tile.FC > 0; }
};

// A weight gradient on the sm_90a kernel (weightGradHopper):
// partial[p][m'][n] = Σ_t Lhs(t, p·LB + m) · Rhs(t, p·RB + n), m' = (m % MF)·MR
// + m / MF; an operand is token-major (TA/TB = 1) or tokens-contiguous (0).
struct TmaGradConfig {
  int64_t P = 0, M = 0, N = 0, LB = 0, RB = 0, MF = 1, MR = 1, TA = 1, TB = 1;
};

struct CudaPlan {
  Layer layer;
  std::array<int64_t, 7> sizes{}; // a,b,g,d,e,f,r
  // Element stride of each class in x, W1, W2, y (0 where absent).
  std::array<std::array<int64_t, 7>, 4> strides{};
  int64_t paddedIn = 0, paddedOut = 0, zSize = 0, w1Size = 0, w2Size = 0;
  CudaTarget target;
  TwoStageConfig forward, backwardInput;
  HopperConfig hopperForward, hopperBackwardInput;
  // With both roles on the sm_90a kernel: the weight gradients read zT and
  // dzT (its stage 1, tokens contiguous) and x, dy through TMA.
  bool tmaGrads = false;
  TmaGradConfig tmaGradW1, tmaGradW2;
  WeightGradConfig gradW1, gradW2;
  std::string tileWhy; // how the tiles were chosen, for the header
  // BTT-MoE: the kernel configurations are one expert's rank-1 layer; expert
  // e's weights start e·expertW1 (e·expertW2) elements into W1 (W2).
  int64_t experts = 0, topK = 0, expertW1 = 0, expertW2 = 0;
};

constexpr int64_t kMaxCudaExperts = 64; // per-thread arrays in the router

// Shared-memory bytes of a twoStage block (mirrors twoStageSmem in the .cuh).
int64_t twoStageSmemBytes(const TwoStageConfig &c, CudaDType t);

// "FC:NWG:STAGES[:CL]" (positive integers) as a tile; the planner checks
// it against the layer.
Result<HopperTile> parseHopperTile(const std::string &text);

// A target from its settings as text (the compile command's flags,
// --einstruct-plan-cuda's options), checked; an error starts with the
// setting's name ("arch: unknown 'sm_70' ...").
Result<CudaTarget> cudaTargetFrom(const std::string &arch,
                                  const std::string &dtype, int64_t smemKb,
                                  bool wgmma, const std::string &hopperTile);

// The tuning table the planner reads (compiler/cuda/tuning.json as built in).
const char *hopperTuningTable();

// Shared-memory bytes of the sm_90a kernel for a role (mirrors
// hopper::Layout<H>::SMEM in kernels/einstruct_hopper.cuh).
int64_t hopperSmemBytes(const TwoStageConfig &c, const HopperTile &t);

// Why the sm_90a kernel cannot run role `c` (empty when it can): 16-bit,
// b = d = 1, whole 64-element boxes, x and y in their canonical layouts.
std::string hopperRefusal(const TwoStageConfig &c, const CudaTarget &target);

// Plans a single-term θ-space layer (every class at most one letter).
Result<CudaPlan> planCuda(const Layer &layer, const CudaTarget &target);

// The choices of one role as #einstruct.cuda_plan records them: the portable
// kernel's tile (K2P and the shared memory follow from it and the layer),
// and the sm_90a kernel's tile when the role runs that kernel.
struct RoleTiles {
  int64_t TT = 1, FC = 1, K2P = 0, smemBytes = 0;
  std::optional<HopperTile> hopper;
  int64_t hopperSmemBytes = 0;
  bool operator==(const RoleTiles &o) const {
    return TT == o.TT && FC == o.FC && K2P == o.K2P &&
           smemBytes == o.smemBytes && hopper == o.hopper &&
           (!hopper || hopperSmemBytes == o.hopperSmemBytes);
  }
};

struct PlanTiles {
  RoleTiles forward, backwardInput;
  bool tmaGrads = false;
  bool operator==(const PlanTiles &o) const {
    return forward == o.forward && backwardInput == o.backwardInput &&
           tmaGrads == o.tmaGrads;
  }
};

// The tiles `plan` chose.
PlanTiles planTiles(const CudaPlan &plan);

// `plan` with `tiles` in its place (an edited #einstruct.cuda_plan), each
// checked against the layer and target: a tile the kernels cannot run, or a
// derived value (K2P, shared memory, tma_grads) that does not follow, is an
// error naming the role and value. `plan` itself, unchanged, when the tiles
// are its own.
Result<CudaPlan> withTiles(CudaPlan plan, const PlanTiles &tiles);

} // namespace einstruct
