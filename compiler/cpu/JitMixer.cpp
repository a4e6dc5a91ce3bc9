#include "JitMixer.h"
#include "BufferPool.h"
#include "JitModule.h"
#include "WorkerPool.h"
#include "compiler/passes/Passes.h"
#include "search/Mixer.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>

namespace einstruct {

JitMixer::~JitMixer() = default;

namespace {

// Copies `rows` rows of `width` floats from `src` to `dst`, row r of dst
// taken from row r (or rows − 1 − r with `flip`) of src; the strides are in
// floats.
void copyRows(const float *src, int64_t srcStride, float *dst,
              int64_t dstStride, int64_t rows, int64_t width, bool flip) {
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * dstStride,
                src + (flip ? rows - 1 - r : r) * srcStride,
                size_t(width) * sizeof(float));
}

// Uninitialised floats from the buffer pool: Hydra's doubled batch and its
// gradients are tens of MB per call, whose pages would otherwise be faulted
// in (and zeroed) on every call.
class Scratch {
public:
  explicit Scratch(int64_t n)
      : p_(static_cast<float *>(bufferpool::allocate(size_t(n) * 4))) {}
  ~Scratch() { bufferpool::release(p_); }
  Scratch(const Scratch &) = delete;
  Scratch &operator=(const Scratch &) = delete;
  float *data() const { return p_; }
  explicit operator bool() const { return p_ != nullptr; }

private:
  float *p_;
};

Error outOfMemory() { return Error{"out of memory for the mixer's buffers"}; }

} // namespace

Result<std::unique_ptr<JitMixer>> JitMixer::compile(const NamedSpec &spec,
                                                    int64_t length,
                                                    int64_t channels,
                                                    VectorUnits units) {
  auto plan = planMixer(spec, length, channels);
  if (!plan)
    return Error{plan.error()};
  std::unique_ptr<JitMixer> jit(new JitMixer());
  jit->plan_ = std::move(*plan);
  jit->threads_ = workers::defaultThreads();
  const MixerPlan &p = jit->plan_;
  const int64_t L = length, C = p.channels;
  if (p.chunkedSsd()) {
    const int64_t H = p.ssd.heads, P = p.ssd.headDim, N = p.ssd.state;
    if (p.family == "ssd")
      jit->operands_ = {{"x", {L, H, P}},
                        {"dt", {L, H}},
                        {"a", {L, H}},
                        {"B", {L, N}},
                        {"C", {L, N}}};
    else
      jit->operands_ = {{"x", {L, H, P}}, {"dt", {L, 2, H}}, {"a", {L, 2, H}},
                        {"B", {L, 2, N}}, {"C", {L, 2, N}},  {"d", {L, H}}};
  } else if (p.family == "m2-conv") {
    jit->constants_ = m2ConvConstants(p.conv);
    jit->operands_ = {{"x", {L, C}}, {"k", {L, C}, false}};
    if (!p.conv.causal)
      jit->operands_.push_back({"k_rev", {L, C}, false});
    jit->operands_.push_back({"D", {C}, false});
  } else {
    const int64_t nb = p.analysis.blocks, m = L / nb;
    jit->operands_ = {
        {"x", {L, C}}, {"w1", {nb, m, m}, false}, {"w2", {nb, m, m}, false}};
  }
  auto module = JitModule::compile(
      [&](mlir::ModuleOp m) { emitMixer(m, p, "mixer"); },
      [](mlir::OpPassManager &pm) { pm.addPass(createAutodiff()); },
      {"mixer", "mixer_backward"}, units);
  if (!module)
    return Error{module.error()};
  jit->module_ = std::move(*module);
  return jit;
}

void JitMixer::setThreads(int threads) { threads_ = std::max(1, threads); }

Result<bool> JitMixer::check(const std::vector<const float *> &in,
                             int64_t batch) const {
  if (batch < 1)
    return Error{fmt::format("batch = {} must be positive", batch)};
  if (in.size() != operands_.size())
    return Error{fmt::format("{} operands given, {} takes {}", in.size(),
                             plan_.family, operands_.size())};
  return true;
}

Result<bool> JitMixer::ssdRows(const float *const in[4], const float *dy,
                               int64_t batch, float *y,
                               float *const grads[4]) const {
  const int64_t Lp = plan_.ssd.length, H = plan_.ssd.heads,
                P = plan_.ssd.headDim, N = plan_.ssd.state;
  const std::vector<int64_t> shapes[5] = {{batch, Lp, H, P}, {batch, Lp, H},
                                          {batch, Lp, N}, {batch, Lp, N},
                                          {batch, Lp, H, P}};
  std::vector<Descriptor> operands;
  for (int k = 0; k < 4; ++k)
    operands.emplace_back(in[k], shapes[k]);
  std::vector<const void *> inputs(in, in + 4);
  if (!dy) {
    Descriptor result(4);
    callPacked(module_->entry(0), result.ptr(), operands);
    takeResult(result.words.data(), 4, inputs, y);
    return true;
  }
  operands.emplace_back(dy, shapes[4]);
  inputs.push_back(dy);
  std::vector<int64_t> results;
  for (int k = 0; k < 4; ++k)
    results.resize(results.size() + descriptorWords(shapes[k].size()));
  callPacked(module_->entry(1), results.data(), operands);
  const int64_t *d = results.data();
  for (int k = 0; k < 4; ++k) {
    takeResult(d, shapes[k].size(), inputs, grads[k]);
    d += descriptorWords(shapes[k].size());
  }
  return true;
}

Result<bool> JitMixer::ssdRun(const float *const in[4], const float *dy,
                              int64_t batch, float *const outs[4]) const {
  const int64_t L = plan_.length, Lp = plan_.ssd.length;
  // Per token: x and dy H·P floats, a H, B and C N.
  const int64_t width[5] = {plan_.ssd.heads * plan_.ssd.headDim,
                            plan_.ssd.heads, plan_.ssd.state, plan_.ssd.state,
                            plan_.ssd.heads * plan_.ssd.headDim};
  // One sequence per compiled call: its intermediates (the masked C·Bᵀ
  // per head and chunk, 12.6 MB at L = 4096, H = 12, Q = 64) stay few and
  // are reused from the buffer pool call after call.
  auto cs = workers::chunks(batch, threads_, 1);
  return workers::runAll(cs.size(), [&](size_t c) -> Result<bool> {
    std::vector<float> padded[5], result[4];
    for (int64_t b = cs[c].start; b < cs[c].start + cs[c].rows; ++b) {
      const float *ins[5];
      float *into[4];
      for (int k = 0; k < 5; ++k) {
        const float *base = k < 4 ? in[k] : dy;
        ins[k] = base ? base + b * L * width[k] : nullptr;
      }
      for (int k = 0; k < (dy ? 4 : 1); ++k)
        into[k] = outs[k] + b * L * width[dy ? k : 0];
      if (Lp == L) {
        if (auto ok = ssdRows(ins, ins[4], 1, into[0], into); !ok)
          return ok;
        continue;
      }
      // Zero-padded to the chunk: copies in, and the first L tokens back.
      const float *pins[5] = {};
      float *pouts[4] = {};
      for (int k = 0; k < 5; ++k) {
        if (!ins[k])
          continue;
        padded[k].assign(size_t(Lp * width[k]), 0.f);
        std::memcpy(padded[k].data(), ins[k], size_t(L * width[k]) * 4);
        pins[k] = padded[k].data();
      }
      for (int k = 0; k < (dy ? 4 : 1); ++k) {
        result[k].resize(size_t(Lp * width[dy ? k : 0]));
        pouts[k] = result[k].data();
      }
      if (auto ok = ssdRows(pins, pins[4], 1, pouts[0], pouts); !ok)
        return ok;
      for (int k = 0; k < (dy ? 4 : 1); ++k)
        std::memcpy(into[k], result[k].data(),
                    size_t(L * width[dy ? k : 0]) * 4);
    }
    return true;
  });
}

// The compiled SSD's operands for both directions (one for ssd), stacked
// on the batch (sequence dir·batch + b): x ⊙ dt, a, B and C, the second
// direction on the flipped sequence, as Hydra's reference concatenates them.
struct JitMixer::Core {
  int dirs;
  Scratch x, a, B, C;
  Core(int dirs, int64_t batch, int64_t L, int64_t H, int64_t P, int64_t N)
      : dirs(dirs), x(dirs * batch * L * H * P),
        a(dirs * batch * L * H), B(dirs * batch * L * N),
        C(dirs * batch * L * N) {}
  bool ok() const { return x && a && B && C; }
  const float *in[4] = {};
};

Result<bool> JitMixer::gather(const std::vector<const float *> &in,
                              int64_t batch, Core &core) const {
  if (!core.ok())
    return outOfMemory();
  const int64_t L = plan_.length, H = plan_.ssd.heads, P = plan_.ssd.headDim,
                N = plan_.ssd.state, HP = H * P, D = core.dirs;
  for (int64_t b = 0; b < batch; ++b)
    for (int dir = 0; dir < D; ++dir) {
      const int64_t row = dir * batch + b;
      for (int64_t l = 0; l < L; ++l) {
        const int64_t src = dir == 1 ? L - 1 - l : l;
        const float *x = in[0] + (b * L + src) * HP,
                    *dt = in[1] + ((b * L + src) * D + dir) * H;
        float *xs = core.x.data() + (row * L + l) * HP;
        for (int64_t h = 0; h < H; ++h)
          for (int64_t p = 0; p < P; ++p)
            xs[h * P + p] = x[h * P + p] * dt[h];
        std::memcpy(core.a.data() + (row * L + l) * H,
                    in[2] + ((b * L + src) * D + dir) * H, size_t(H) * 4);
        std::memcpy(core.B.data() + (row * L + l) * N,
                    in[3] + ((b * L + src) * D + dir) * N, size_t(N) * 4);
        std::memcpy(core.C.data() + (row * L + l) * N,
                    in[4] + ((b * L + src) * D + dir) * N, size_t(N) * 4);
      }
    }
  core.in[0] = core.x.data();
  core.in[1] = core.a.data();
  core.in[2] = core.B.data();
  core.in[3] = core.C.data();
  return true;
}

Result<bool> JitMixer::forward(const std::vector<const float *> &in,
                               int64_t batch, float *y) const {
  if (auto ok = check(in, batch); !ok)
    return ok;
  if (!plan_.chunkedSsd())
    return linearRun(in, nullptr, batch, y, {});
  const int64_t L = plan_.length, H = plan_.ssd.heads, P = plan_.ssd.headDim,
                N = plan_.ssd.state, HP = H * P;
  const bool hydra = plan_.family == "hydra";
  Core core(hydra ? 2 : 1, batch, L, H, P, N);
  if (auto ok = gather(in, batch, core); !ok)
    return ok;
  if (!hydra) {
    float *out = y;
    return ssdRun(core.in, nullptr, batch, &out);
  }
  // Hydra: both passes shifted by one token, the backward one flipped
  // back, plus d ⊙ x.
  Scratch both(2 * batch * L * HP);
  if (!both)
    return outOfMemory();
  float *out = both.data();
  if (auto ok = ssdRun(core.in, nullptr, 2 * batch, &out); !ok)
    return ok;
  for (int64_t b = 0; b < batch; ++b) {
    const float *fw = both.data() + b * L * HP,
                *bw = both.data() + (batch + b) * L * HP;
    const float *x = in[0] + b * L * HP, *d = in[5] + b * L * H;
    float *yb = y + b * L * HP;
    for (int64_t l = 0; l < L; ++l)
      for (int64_t i = 0; i < HP; ++i) {
        float v = d[l * H + i / P] * x[l * HP + i];
        if (l >= 1)
          v += fw[(l - 1) * HP + i];
        if (l + 2 <= L)
          v += bw[(L - 2 - l) * HP + i];
        yb[l * HP + i] = v;
      }
  }
  return true;
}

Result<bool> JitMixer::backward(const std::vector<const float *> &in,
                                const float *dy, int64_t batch,
                                const std::vector<float *> &grads) const {
  if (auto ok = check(in, batch); !ok)
    return ok;
  if (grads.size() != operands_.size())
    return Error{fmt::format("{} gradients given, {} has {} operands",
                             grads.size(), plan_.family, operands_.size())};
  if (!plan_.chunkedSsd())
    return linearRun(in, dy, batch, nullptr, grads);
  const int64_t L = plan_.length, H = plan_.ssd.heads, P = plan_.ssd.headDim,
                N = plan_.ssd.state, HP = H * P;
  const bool hydra = plan_.family == "hydra";
  const int D = hydra ? 2 : 1;
  Core core(D, batch, L, H, P, N);
  if (auto ok = gather(in, batch, core); !ok)
    return ok;
  // The SSD's output cotangents: dy itself, or for Hydra where y took each
  // pass's token m (the forward's at m + 1, the backward's at L − 2 − m).
  Scratch dys(hydra ? 2 * batch * L * HP : 0), dxs(D * batch * L * HP),
      das(D * batch * L * H), dBs(D * batch * L * N), dCs(D * batch * L * N);
  if ((hydra && !dys) || !dxs || !das || !dBs || !dCs)
    return outOfMemory();
  if (hydra)
    for (int64_t b = 0; b < batch; ++b)
      for (int dir = 0; dir < 2; ++dir) {
        float *to = dys.data() + (dir * batch + b) * L * HP;
        copyRows(dy + b * L * HP + (dir == 0 ? HP : 0), HP, to, HP, L - 1, HP,
                 dir == 1);
        std::fill_n(to + (L - 1) * HP, HP, 0.f);
      }
  float *ssdGrads[4] = {dxs.data(), das.data(), dBs.data(), dCs.data()};
  if (auto ok = ssdRun(core.in, hydra ? dys.data() : dy, D * batch, ssdGrads);
      !ok)
    return ok;
  // Back through the gathering: x ⊙ dt and the flips.
  for (int64_t b = 0; b < batch; ++b) {
    const float *x = in[0] + b * L * HP, *g = dy + b * L * HP;
    float *dx = grads[0] + b * L * HP;
    for (int64_t l = 0; l < L; ++l)
      for (int64_t i = 0; i < HP; ++i)
        dx[l * HP + i] = hydra ? in[5][(b * L + l) * H + i / P] * g[l * HP + i]
                               : 0.f;
    for (int dir = 0; dir < D; ++dir) {
      const int64_t row = dir * batch + b;
      for (int64_t l = 0; l < L; ++l) {
        const int64_t at = dir == 1 ? L - 1 - l : l; // token l in the pass
        const float *gx = dxs.data() + (row * L + at) * HP;
        const int64_t t = (b * L + l) * D + dir; // (b, l, dir) of dt, a, B, C
        const float *dt = in[1] + t * H;
        float *ddt = grads[1] + t * H;
        for (int64_t h = 0; h < H; ++h) {
          float sum = 0;
          for (int64_t p = 0; p < P; ++p) {
            dx[l * HP + h * P + p] += gx[h * P + p] * dt[h];
            sum += gx[h * P + p] * x[l * HP + h * P + p];
          }
          ddt[h] = sum;
        }
        std::memcpy(grads[2] + t * H, das.data() + (row * L + at) * H,
                    size_t(H) * 4);
        std::memcpy(grads[3] + t * N, dBs.data() + (row * L + at) * N,
                    size_t(N) * 4);
        std::memcpy(grads[4] + t * N, dCs.data() + (row * L + at) * N,
                    size_t(N) * 4);
      }
    }
    if (hydra) {
      float *dd = grads[5] + b * L * H;
      for (int64_t l = 0; l < L; ++l)
        for (int64_t h = 0; h < H; ++h) {
          float sum = 0;
          for (int64_t p = 0; p < P; ++p)
            sum += g[l * HP + h * P + p] * x[l * HP + h * P + p];
          dd[l * H + h] = sum;
        }
    }
  }
  return true;
}

} // namespace einstruct
