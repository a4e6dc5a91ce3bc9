#include "Mixer.h"
#include "Checked.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <set>
#include <tuple>

namespace einstruct {
namespace {

const std::vector<CallForm> &forms() {
  static const std::vector<CallForm> f = {
      {"ssd", {"heads", "head_dim", "state", "chunk"}},
      {"hydra", {"heads", "head_dim", "state", "chunk"}},
      {"m2-conv", {"causal", "order", "pad"}},
      {"monarch-seq", {"blocks"}},
      {"dense-seq", {}},
      {"toeplitz", {}},
      {"low-rank-seq", {"rank"}},
      {"hydra-block", {"state", "conv", "expand", "head_dim", "chunk", "proj"}},
      {"m2-block", {"causal", "order", "l_max", "w_mod", "proj"}},
  };
  return f;
}

// Sizes are bounded so that every count fits 64 bits with room to spare.
constexpr int64_t kMaxSeqLen = int64_t(1) << 24;
constexpr int64_t kMaxSize = int64_t(1) << 20;
constexpr long double kMaxCount = 4.6e18; // 2^62

} // namespace

const std::vector<std::string> &mixerFamilies() {
  static const std::vector<std::string> names = formNames(forms());
  return names;
}

const std::vector<std::string> &searchedMixerFamilies() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n = mixerFamilies();
    for (const char *block : {"hydra-block", "m2-block"})
      n.erase(std::remove(n.begin(), n.end(), block), n.end());
    return n;
  }();
  return names;
}

Result<NamedSpec> parseMixer(std::string_view text) {
  static const std::map<std::string, std::string> aliases = {
      {"dense_seq", "dense-seq"},
      {"low_rank_seq", "low-rank-seq"},
      {"m2_conv", "m2-conv"},
      {"monarch_seq", "monarch-seq"},
      {"quasiseparable", "hydra"}};
  return parseCall(text, forms(), aliases, "mixer");
}

namespace {
// In long double first: sizes within bounds may still give counts past 2^63.
long double ssdCount(long double L, long double H, long double P,
                     long double N, int64_t Q) {
  const long double T = (long double)ceilDiv(int64_t(L), Q), q = Q;
  return T * q * q * N + H * T * q * q * P + 2 * H * T * q * N * P +
         H * T * N * P;
}
} // namespace

int64_t ssdMacs(int64_t L, int64_t H, int64_t P, int64_t N, int64_t Q) {
  return int64_t(ssdCount(L, H, P, N, Q));
}

int64_t monarchDftMacs(int64_t b) { return 4 * b * b * (2 * b + 1); }

int64_t hyenaFilterParams(int64_t L, int64_t d, int64_t order) {
  const int64_t o = order;
  return d + o + 3 * L + 4 * o + 2 * (o * o + o) + o * d;
}

int64_t hyenaFilterMacs(int64_t L, int64_t d, int64_t order) {
  const int64_t o = order;
  return L * (3 * o + 2 * o * o + o * d);
}

namespace {

// A yes/no parameter: true/false (or 1/0, yes/no); `fallback` when absent.
Result<bool> boolParam(const NamedSpec &spec, const std::string &key,
                       bool fallback) {
  auto it = spec.params.find(key);
  if (it == spec.params.end())
    return fallback;
  std::string v = it->second;
  for (auto &c : v)
    c = char(std::tolower((unsigned char)c));
  if (v == "true" || v == "1" || v == "yes")
    return true;
  if (v == "false" || v == "0" || v == "no")
    return false;
  return Error{fmt::format("{}: parameter {} = '{}' must be true or false",
                           spec.family, key, it->second)};
}

// The divisor of n nearest √n (the smaller on a tie).
int64_t divisorNearSqrt(int64_t n) {
  int64_t best = 1;
  for (int64_t k = 1; k * k <= n; ++k)
    if (n % k == 0)
      best = k;
  const int64_t other = n / best;
  return std::llabs(other * other - n) < std::llabs(best * best - n) ? other
                                                                      : best;
}

// monarch-seq's blocks per factor on L tokens: given, or the divisor of L
// nearest √L; one that does not divide L is an error.
Result<int64_t> monarchSeqBlocks(const NamedSpec &spec, int64_t L) {
  auto blocks = intParam(spec, "blocks", kMaxSeqLen);
  if (!blocks)
    return Error{blocks.error()};
  const int64_t nb = blocks->value_or(divisorNearSqrt(L));
  if (L % nb != 0)
    return Error{fmt::format("monarch-seq: blocks = {} does not divide the "
                             "sequence length {}",
                             nb, L)};
  return nb;
}

} // namespace

Result<bool> runsOnCpu(const NamedSpec &spec) {
  const std::string &f = spec.family;
  if (f == "ssd" || f == "hydra" || f == "m2-conv" || f == "monarch-seq" ||
      f == "hydra-block" || f == "m2-block")
    return true;
  return Error{fmt::format("{} is costed by analyze and search; the CPU "
                           "runs ssd, hydra, m2-conv, monarch-seq, "
                           "hydra-block and m2-block",
                           f)};
}

int64_t BlockProjection::macs() const {
  if (!layer)
    return dIn * dOut;
  auto a = analyze(*layer);
  return a ? a->flops : 0;
}

int64_t BlockProjection::params() const {
  if (!layer)
    return dIn * dOut;
  int64_t n = 0;
  for (const auto &shape : weightShapes(*layer))
    n += elementCount(shape);
  return n;
}

Result<BlockProjection> blockProjection(const NamedSpec &spec,
                                        const std::string &name, int64_t dIn,
                                        int64_t dOut) {
  BlockProjection p{name, dIn, dOut, std::nullopt};
  auto it = spec.params.find("proj");
  if (it == spec.params.end() || it->second == "dense")
    return p;
  auto named = parseNamed(it->second);
  if (!named)
    return Error{fmt::format("{}: proj = '{}': {}", spec.family, it->second,
                             named.error())};
  auto layer = buildNamed(*named, dIn, dOut);
  if (!layer)
    return Error{fmt::format("{}: proj = '{}' as {} ({} -> {}): {}",
                             spec.family, it->second, name, dIn, dOut,
                             layer.error())};
  if (layer->experts)
    return Error{fmt::format("{}: proj = '{}': a routed BTT-MoE cannot be a "
                             "block's projection",
                             spec.family, it->second)};
  p.layer = std::move(*layer);
  return p;
}

Result<M2BlockShape> m2BlockShape(const NamedSpec &spec, int64_t L,
                                  int64_t dModel) {
  M2BlockShape s;
  s.dModel = dModel;
  if (dModel < 1 || dModel > kMaxSize)
    return Error{
        fmt::format("m2-block: d_model = {} must be in [1, 2^20]", dModel)};
  auto order = intParam(spec, "order", 4096);
  auto lMax = intParam(spec, "l_max", kMaxSeqLen);
  if (!order)
    return Error{order.error()};
  if (!lMax)
    return Error{lMax.error()};
  s.order = order->value_or(16);
  s.lMax = lMax->value_or(L);
  if (s.lMax < L)
    return Error{fmt::format("m2-block: l_max = {} is shorter than the "
                             "sequence length {} (the filters' positional "
                             "embedding has l_max rows)",
                             s.lMax, L)};
  if (auto it = spec.params.find("w_mod"); it != spec.params.end()) {
    char *end = nullptr;
    s.wMod = std::strtod(it->second.c_str(), &end);
    if (end == it->second.c_str() || *end || !std::isfinite(s.wMod))
      return Error{fmt::format("m2-block: parameter w_mod = '{}' must be a "
                               "finite number",
                               it->second)};
  }
  return s;
}

Result<HydraBlockShape> hydraBlockShape(const NamedSpec &spec, int64_t dModel) {
  HydraBlockShape s;
  s.dModel = dModel;
  if (dModel < 1 || dModel > kMaxSize)
    return Error{
        fmt::format("hydra-block: d_model = {} must be in [1, 2^20]", dModel)};
  // The reference's defaults: d_state 64, d_conv 7, expand 2, headdim 64.
  int64_t expand = 2;
  for (auto [key, into, fallback] : {std::tuple{"state", &s.state, int64_t(64)},
                                     {"conv", &s.conv, int64_t(7)},
                                     {"expand", &expand, int64_t(2)},
                                     {"head_dim", &s.headDim, int64_t(64)}}) {
    auto v = intParam(spec, key, kMaxSize);
    if (!v)
      return Error{v.error()};
    *into = v->value_or(fallback);
  }
  if (s.conv % 2 == 0)
    return Error{fmt::format("hydra-block: conv = {} must be odd (the "
                             "reference pads conv // 2 on each side, which "
                             "keeps L tokens only for odd widths)",
                             s.conv)};
  if (expand * dModel > kMaxSize)
    return Error{fmt::format("hydra-block: expand × d_model = {} exceeds 2^20",
                             expand * dModel)};
  s.inner = expand * dModel;
  if (s.inner % s.headDim != 0)
    return Error{fmt::format("hydra-block: head_dim = {} does not divide "
                             "expand × d_model = {}",
                             s.headDim, s.inner)};
  s.heads = s.inner / s.headDim;
  return s;
}

Result<M2ConvShape> m2ConvShape(const NamedSpec &spec, int64_t L) {
  auto causal = boolParam(spec, "causal", true);
  auto pad = boolParam(spec, "pad", true);
  if (!causal)
    return Error{causal.error()};
  if (!pad)
    return Error{pad.error()};
  if (L < 1 || L > kMaxSeqLen)
    return Error{fmt::format("sequence length = {} is outside [1, 2^24]", L)};
  // Both directions as the reference's fftconv_ref: a DFT of 2L points at
  // least, so that nothing wraps around; n = b² (Monarch-factored).
  const int64_t need = 2 * L;
  int64_t b = int64_t(std::sqrt(double(need)));
  while (b * b < need)
    ++b;
  while (b > 1 && (b - 1) * (b - 1) >= need)
    --b;
  if (b * b != need && !*pad)
    return Error{fmt::format(
        "m2-conv: the DFT size 2L = {} is not a square b² and pad=false; "
        "give a length with 2L = b² or allow padding",
        need)};
  M2ConvShape s;
  s.causal = *causal;
  s.length = L;
  s.b = b;
  s.rows = ceilDiv(L, b);
  s.kernelRows = s.causal ? s.rows : b;
  return s;
}

long double m2ConvCount(const M2ConvShape &s, int64_t d, int64_t sequences) {
  const long double b = s.b, J = s.rows, Jk = s.kernelRows, L = s.length;
  // Per sequence: x's DFT (real rows J, twiddles, the second stage), the
  // product, the inverse (stage, twiddles, the real rows J it keeps), the
  // skip on the L tokens. Per call: the kernel's DFT and its 2×2 real form.
  const long double perSequence = 2 * b * b * J + 4 * b * b + 4 * b * b * b +
                                  4 * b * b + 4 * b * b * b + 4 * b * b +
                                  2 * b * b * J + L;
  const long double kernel =
      2 * b * b * Jk + 4 * b * b + 4 * b * b * b + 8 * b * b;
  return (long double)d * ((long double)sequences * perSequence + kernel);
}

Result<EinsumTerm> monarchSeqTerm(const NamedSpec &spec, int64_t L) {
  if (L < 1 || L > kMaxSeqLen)
    return Error{fmt::format("sequence length = {} is outside [1, 2^24]", L)};
  auto nb = monarchSeqBlocks(spec, L);
  if (!nb)
    return Error{nb.error()};
  NamedSpec fly{"monarch",
                {{"nblocks", std::to_string(*nb)}, {"layout", "fly"}}};
  auto layer = buildNamed(fly, L, L);
  if (!layer)
    return Error{"monarch-seq: " + layer.error()};
  return layer->terms.at(0);
}

Result<bool> runsOnCuda(const MixerPlan &p) {
  if (p.isBlock())
    return Error{p.family +
                 " runs on the CPU only for now: the CUDA chain "
                 "kernels have no elementwise step for its einstruct.unary "
                 "ops (SiLU, softplus, sine, the norm's rsqrt); --emit mlir "
                 "gives its IR"};
  return true;
}

namespace {
// A block projection's weights as operands (BlockProjection's names).
void appendProjection(std::vector<MixerOperand> &ops,
                      const BlockProjection &p) {
  if (!p.layer) {
    ops.push_back({p.name + ".weight", {p.dOut, p.dIn}, false});
    return;
  }
  auto shapes = weightShapes(*p.layer);
  for (size_t k = 0; k < shapes.size(); ++k)
    ops.push_back({p.name + ".weights." + std::to_string(k), shapes[k], false});
}
} // namespace

std::vector<MixerOperand> mixerOperands(const MixerPlan &p) {
  const int64_t L = p.length, C = p.channels;
  if (p.family == "m2-block") { // named as blocks.M2's state_dict
    const int64_t o = p.m2.order, K = M2BlockShape::kShortTaps;
    std::vector<MixerOperand> ops = {{"x", {L, C}}};
    appendProjection(ops, p.projections[0]);
    ops.insert(ops.end(), {{"in_linear.bias", {3 * C}, false},
                           {"short_filter.weight", {3 * C, 1, K}, false},
                           {"short_filter.bias", {3 * C}, false},
                           {"filter_fn.z", {1, p.m2.lMax, 3}, false},
                           {"filter_fn.freq", {1, o}, false}});
    // filter_rev shares z and freq with filter_fn, as the reference's.
    for (const char *filter :
         p.conv.causal ? std::vector<const char *>{"filter_fn"}
                       : std::vector<const char *>{"filter_fn", "filter_rev"}) {
      const std::string at = std::string(filter) + ".layers.";
      ops.push_back({at + "0.weight", {o, 3}, false});
      ops.push_back({at + "0.bias", {o}, false});
      ops.push_back({at + "1.weight", {o, o}, false});
      ops.push_back({at + "1.bias", {o}, false});
      ops.push_back({at + "2.weight", {o, o}, false});
      ops.push_back({at + "2.bias", {o}, false});
      ops.push_back({at + "3.weight", {C, o}, false});
    }
    ops.push_back({"bias", {C}, false});
    appendProjection(ops, p.projections[1]);
    ops.push_back({"out_linear.bias", {C}, false});
    return ops;
  }
  if (p.isBlock()) { // named as blocks.Hydra's state_dict
    const HydraBlockShape &s = p.block;
    std::vector<MixerOperand> ops = {{"x", {L, C}}};
    appendProjection(ops, p.projections[0]);
    ops.insert(ops.end(),
               {{"conv1d.weight", {s.convChannels(), 1, s.conv}, false},
                {"conv1d.bias", {s.convChannels()}, false},
                {"dt_bias", {s.heads}, false},
                {"A_log", {s.heads}, false},
                {"D", {s.heads}, false},
                {"fc_D.weight", {s.heads, s.inner}, false},
                {"norm_weight", {s.inner}, false}});
    appendProjection(ops, p.projections[1]);
    return ops;
  }
  if (p.chunkedSsd()) {
    const int64_t H = p.ssd.heads, P = p.ssd.headDim, N = p.ssd.state;
    if (p.family == "ssd")
      return {{"x", {L, H, P}},
              {"dt", {L, H}},
              {"a", {L, H}},
              {"B", {L, N}},
              {"C", {L, N}}};
    return {{"x", {L, H, P}}, {"dt", {L, 2, H}}, {"a", {L, 2, H}},
            {"B", {L, 2, N}}, {"C", {L, 2, N}},  {"d", {L, H}}};
  }
  if (p.family == "m2-conv") {
    std::vector<MixerOperand> ops = {{"x", {L, C}}, {"k", {L, C}, false}};
    if (!p.conv.causal)
      ops.push_back({"k_rev", {L, C}, false});
    ops.push_back({"D", {C}, false});
    return ops;
  }
  const int64_t nb = p.analysis.blocks, m = L / nb;
  return {{"x", {L, C}}, {"w1", {nb, m, m}, false}, {"w2", {nb, m, m}, false}};
}

std::vector<int64_t> mixerOutputShape(const MixerPlan &p) {
  if (p.chunkedSsd())
    return {p.length, p.ssd.heads, p.ssd.headDim};
  return {p.length, p.channels};
}

Result<MixerPlan> planMixer(const NamedSpec &spec, int64_t L,
                            int64_t channels) {
  if (auto ok = runsOnCpu(spec); !ok)
    return Error{ok.error()};
  MixerPlan p;
  p.family = spec.family;
  p.length = L;
  if (p.family == "m2-block") {
    auto shape = m2BlockShape(spec, L, channels);
    if (!shape)
      return Error{shape.error()};
    NamedSpec conv{"m2-conv", {}};
    if (auto c = spec.params.find("causal"); c != spec.params.end())
      conv.params["causal"] = c->second;
    auto convShape = m2ConvShape(conv, L);
    if (!convShape)
      return Error{"m2-block: " + convShape.error()};
    auto a = analyzeMixer(spec, L, channels);
    if (!a)
      return Error{a.error()};
    p.m2 = *shape;
    p.conv = *convShape;
    p.channels = channels;
    // Checked by analyzeMixer above.
    p.projections = {
        *blockProjection(spec, "in_linear", channels, 3 * channels),
        *blockProjection(spec, "out_linear", channels, channels)};
    p.analysis = std::move(*a);
    return p;
  }
  if (p.isBlock()) {
    auto shape = hydraBlockShape(spec, channels);
    if (!shape)
      return Error{shape.error()};
    auto a = analyzeMixer(spec, L, channels);
    if (!a)
      return Error{a.error()};
    p.block = *shape;
    p.channels = channels;
    p.projections = {
        *blockProjection(spec, "in_proj", channels, shape->inProj()),
        *blockProjection(spec, "out_proj", shape->inner, channels)};
    p.ssd = {shape->heads, shape->headDim, shape->state, a->chunk,
             ceilDiv(L, a->chunk) * a->chunk};
    p.analysis = std::move(*a);
    return p;
  }
  if (p.chunkedSsd()) {
    SsdShape &s = p.ssd;
    for (auto [key, into] : {std::pair{"heads", &s.heads},
                             {"head_dim", &s.headDim},
                             {"state", &s.state}}) {
      auto v = requiredInt(spec, key, kMaxSize);
      if (!v)
        return Error{v.error()};
      *into = *v;
    }
    auto a = analyzeMixer(spec, L, s.heads * s.headDim);
    if (!a)
      return Error{a.error()};
    if (channels != 0 && channels != s.heads * s.headDim)
      return Error{fmt::format("d_model = {} but {} has heads · head_dim = {}",
                               channels, spec.family, s.heads * s.headDim)};
    s.chunk = a->chunk;
    s.length = ceilDiv(L, s.chunk) * s.chunk;
    p.channels = s.heads * s.headDim;
    p.analysis = std::move(*a);
    return p;
  }
  if (channels < 1 || channels > kMaxSize)
    return Error{fmt::format("{} mixes each of d_model channels: d_model = {} "
                             "must be in [1, 2^20]",
                             spec.family, channels)};
  p.channels = channels;
  // Blocks of 32 channels (fewer, rounded up to 8, the vector width the
  // micro-kernel needs; the padding channels are zeros): the calls' unit
  // of work between threads, and every contraction's innermost index.
  p.channelBlock = std::min<int64_t>((channels + 7) / 8 * 8, 32);
  if (p.family == "m2-conv") {
    auto shape = m2ConvShape(spec, L);
    if (!shape)
      return Error{shape.error()};
    p.conv = *shape;
  } else {
    auto term = monarchSeqTerm(spec, L);
    if (!term)
      return Error{term.error()};
    p.monarch = *term;
  }
  auto a = analyzeMixer(spec, L, channels);
  if (!a)
    return Error{a.error()};
  p.analysis = std::move(*a);
  return p;
}

Result<MixerAnalysis> analyzeMixer(const NamedSpec &spec, int64_t L,
                                   int64_t d) {
  if (L < 1 || L > kMaxSeqLen)
    return Error{fmt::format("sequence length = {} is outside [1, 2^24]", L)};
  if (d < 1 || d > kMaxSize)
    return Error{fmt::format("d_model = {} is outside [1, 2^20]", d)};
  MixerAnalysis a;
  a.family = spec.family;
  a.seqLen = L;
  const std::string &f = spec.family;
  if (f == "hydra-block") {
    auto s = hydraBlockShape(spec, d);
    if (!s)
      return Error{s.error()};
    NamedSpec mixer{"hydra",
                    {{"heads", std::to_string(s->heads)},
                     {"head_dim", std::to_string(s->headDim)},
                     {"state", std::to_string(s->state)}}};
    if (auto q = spec.params.find("chunk"); q != spec.params.end())
      mixer.params["chunk"] = q->second;
    auto m = analyzeMixer(mixer, L, s->inner);
    if (!m)
      return Error{"hydra-block: " + m.error()};
    auto in = blockProjection(spec, "in_proj", d, s->inProj());
    auto out = blockProjection(spec, "out_proj", s->inner, d);
    for (auto *p : {&in, &out})
      if (!*p)
        return Error{p->error()};
    // Per token: the projections, the convolution, the gated norm.
    const int64_t perToken =
        in->macs() + s->convChannels() * s->conv + 4 * s->inner + out->macs();
    a = *m;
    a.family = f;
    a.channels = d;
    a.macs += L * perToken;
    a.quadraticMacs += L * perToken;
    a.params += in->params() + s->convChannels() * (s->conv + 1) + s->inner +
                out->params();
    a.bytes = 4 * (2 * L * d + a.params);
    return a;
  }
  if (f == "m2-block") {
    auto s = m2BlockShape(spec, L, d);
    if (!s)
      return Error{s.error()};
    NamedSpec conv{"m2-conv", {{"order", std::to_string(s->order)}}};
    if (auto c = spec.params.find("causal"); c != spec.params.end())
      conv.params["causal"] = c->second;
    auto m = analyzeMixer(conv, L, d);
    if (!m)
      return Error{"m2-block: " + m.error()};
    auto in = blockProjection(spec, "in_linear", d, 3 * d);
    auto out = blockProjection(spec, "out_linear", d, d);
    for (auto *p : {&in, &out})
      if (!*p)
        return Error{p->error()};
    // Per token: in_linear, the short convolution, out_linear.
    const int64_t perToken =
        in->macs() + 3 * d * M2BlockShape::kShortTaps + out->macs();
    a = *m;
    a.family = f;
    a.macs += L * perToken;
    a.quadraticMacs += L * perToken;
    a.params += in->params() + 3 * d + 3 * d * (M2BlockShape::kShortTaps + 1) +
                out->params() + d + 3 * (s->lMax - L);
    a.bytes = 4 * (2 * L * d + a.params);
    return a;
  }
  if (f == "ssd" || f == "hydra") {
    auto H = requiredInt(spec, "heads", kMaxSize);
    auto P = requiredInt(spec, "head_dim", kMaxSize);
    auto N = requiredInt(spec, "state", kMaxSize);
    auto Q = intParam(spec, "chunk", kMaxSize);
    for (auto *v : {&H, &P, &N})
      if (!*v)
        return Error{v->error()};
    if (!Q)
      return Error{Q.error()};
    if (*H * *P > kMaxSize)
      return Error{fmt::format("{}: heads × head_dim = {} exceeds 2^20", f,
                               *H * *P)};
    a.channels = *H * *P;
    if (*Q) {
      if (**Q > L)
        return Error{fmt::format("{}: chunk = {} exceeds the sequence length "
                                 "{}",
                                 f, **Q, L)};
      a.chunk = **Q;
    } else { // the fewest multiply-adds of the chunks the CPU runs well
      a.chunkChosen = true;
      long double best = 0;
      for (int64_t q = std::min(kMinChosenChunk, L); q <= L; ++q) {
        const long double c = ssdCount(L, *H, *P, *N, q);
        if (!a.chunk || c <= best)
          a.chunk = q, best = c;
      }
    }
    const long double H_ = *H, P_ = *P, N_ = *N, L_ = L;
    if (2 * L_ * L_ * (N_ + H_ * P_) + 2 * L_ * H_ * P_ * H_ > kMaxCount ||
        2 * ssdCount(L, *H, *P, *N, a.chunk) > kMaxCount)
      return Error{fmt::format("{}: the multiply-adds at L = {} exceed 2^62", f,
                               L)};
    const int64_t ssd = ssdMacs(L, *H, *P, *N, a.chunk);
    const int64_t quadratic = L * L * *N + *H * L * L * *P;
    const int64_t x = L * *H * *P;
    if (f == "ssd") {
      a.macs = ssd;
      a.quadraticMacs = quadratic;
      a.params = 3 * *H;
      a.bytes = 4 * (2 * x + 2 * L * *N + L * *H + a.params);
      a.causal = true;
    } else {
      a.macs = 2 * ssd + x * *H + x;
      a.quadraticMacs = 2 * quadratic + x * *H + x;
      a.params = 3 * *H + *H * *P * *H;
      a.bytes = 4 * (2 * x + 4 * L * *N + 2 * L * *H + a.params);
    }
    a.dataDependent = a.extendable = true;
    a.growth = "L";
    return a;
  }
  a.channels = d;
  if (f == "m2-conv") {
    auto shape = m2ConvShape(spec, L);
    auto order = intParam(spec, "order", 4096);
    if (!shape)
      return Error{shape.error()};
    if (!order)
      return Error{order.error()};
    const int64_t o = order->value_or(16);
    const bool causal = shape->causal;
    const long double count =
        m2ConvCount(*shape, d, 1) + 2.0L * L * d +
        (causal ? 1 : 2) * (long double)hyenaFilterMacs(L, d, o);
    if (count > kMaxCount || (long double)L * L * d > kMaxCount)
      return Error{fmt::format("m2-conv: the multiply-adds at L = {}, "
                               "d_model = {} exceed 2^62",
                               L, d)};
    a.macs = int64_t(count);
    a.quadraticMacs = L * L * d;
    a.params = (causal ? 1 : 2) * hyenaFilterParams(L, d, o) -
               (causal ? 0 : 3 * L + o + d); // one z, Sin and bias shared
    a.fftSize = shape->b * shape->b;
    a.causal = causal;
    a.extendable = true;
    a.growth = "L^1.5";
    a.bytes = 4 * (4 * L * d + a.params);
    return a;
  }
  if (f == "monarch-seq") {
    auto blocks = monarchSeqBlocks(spec, L);
    if (!blocks)
      return Error{blocks.error()};
    const int64_t nb = *blocks, m = L / nb; // m: block size
    if ((long double)2 * L * m * d > kMaxCount ||
        (long double)L * L * d > kMaxCount)
      return Error{fmt::format("monarch-seq: the multiply-adds at L = {}, "
                               "d_model = {} exceed 2^62",
                               L, d)};
    a.blocks = nb;
    a.macs = 2 * L * m * d;
    a.quadraticMacs = L * L * d;
    a.params = 2 * L * m;
    a.growth = "L^2";
    a.bytes = 4 * (2 * L * d + a.params);
    return a;
  }
  if ((long double)L * L * d > kMaxCount)
    return Error{fmt::format("{}: the multiply-adds at L = {}, d_model = {} "
                             "exceed 2^62",
                             f, L, d)};
  if (f == "dense-seq" || f == "toeplitz") {
    a.macs = a.quadraticMacs = L * L * d;
    a.params = f == "dense-seq" ? L * L : d * (2 * L - 1);
    a.growth = "L^2";
  } else { // low-rank-seq
    auto r = requiredInt(spec, "rank", kMaxSize);
    if (!r)
      return Error{r.error()};
    if (*r > L)
      return Error{fmt::format("low-rank-seq: rank = {} exceeds the sequence "
                               "length {}",
                               *r, L)};
    a.macs = 2 * L * *r * d;
    a.quadraticMacs = L * L * d;
    a.params = 2 * L * *r;
    a.growth = "L";
  }
  a.bytes = 4 * (2 * L * d + a.params);
  return a;
}

Result<std::vector<MixerCandidate>>
enumerateMixers(const std::vector<std::string> &families, int64_t L,
                int64_t d) {
  std::vector<std::string> specs;
  for (const auto &f : families) {
    const auto &known = mixerFamilies();
    if (std::find(known.begin(), known.end(), f) == known.end())
      return Error{fmt::format("unknown mixer family '{}'; known: {}", f,
                               fmt::join(known, ", "))};
    if (f == "hydra-block" || f == "m2-block")
      return Error{fmt::format("{} is a whole block (its projections "
                               "included); search ranks the mixers inside "
                               "blocks",
                               f)};
    if (f == "ssd" || f == "hydra") {
      for (int64_t p : {32, 64, 128})
        if (d % p == 0)
          for (int64_t n : {16, 32, 64, 128})
            specs.push_back(fmt::format("{}(heads={}, head_dim={}, state={})",
                                        f, d / p, p, n));
    } else if (f == "m2-conv") {
      specs.push_back("m2-conv(causal=true, order=16)");
      specs.push_back("m2-conv(causal=false, order=16)");
    } else if (f == "monarch-seq") {
      std::set<int64_t> blocks = {divisorNearSqrt(L)};
      for (int64_t b = 2; b <= L / 2; b *= 2)
        if (L % b == 0)
          blocks.insert(b);
      for (int64_t b : blocks)
        if (b > 1 && b < L)
          specs.push_back(fmt::format("monarch-seq(blocks={})", b));
    } else if (f == "low-rank-seq") {
      for (int64_t r = 1; r < L; r *= 2)
        specs.push_back(fmt::format("low-rank-seq(rank={})", r));
    } else {
      specs.push_back(f);
    }
  }
  std::vector<MixerCandidate> out;
  for (const auto &text : specs) {
    auto spec = parseMixer(text);
    if (!spec)
      return Error{spec.error()};
    auto a = analyzeMixer(*spec, L, d);
    if (!a) // sizes this length cannot take (e.g. a count past 2^62)
      continue;
    out.push_back({text, *a});
  }
  return out;
}

Result<std::vector<MixerCandidate>>
rankMixers(std::vector<MixerCandidate> all, const MixerConstraints &k,
           const std::string &objective, int64_t L, int64_t d) {
  if (objective != "matrix-mixer" && objective != "macs")
    return Error{fmt::format("unknown mixer objective '{}' (known: "
                             "matrix-mixer, macs)",
                             objective)};
  const long double dense = (long double)L * L * d;
  all.erase(std::remove_if(all.begin(), all.end(),
                           [&](const MixerCandidate &c) {
                             const MixerAnalysis &a = c.analysis;
                             return (k.maxMacs && a.macs > *k.maxMacs) ||
                                    (k.maxMacsRatio &&
                                     a.macs > *k.maxMacsRatio * dense) ||
                                    (k.causal && !a.causal);
                           }),
            all.end());
  const bool mixer = objective == "matrix-mixer";
  std::stable_sort(all.begin(), all.end(), [&](const MixerCandidate &x,
                                               const MixerCandidate &y) {
    const MixerAnalysis &a = x.analysis, &b = y.analysis;
    if (mixer && a.dataDependent != b.dataDependent)
      return a.dataDependent;
    if (mixer && a.extendable != b.extendable)
      return a.extendable;
    return std::tie(a.macs, a.params, x.spec) <
           std::tie(b.macs, b.params, y.spec);
  });
  return all;
}

} // namespace einstruct
