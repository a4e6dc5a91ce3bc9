// The whole blocks, hydra-block and m2-block (Mixer.h): their sizes, the
// projections proj= makes structured, their analysis, plan and operands,
// which analyzeMixer, planMixer and mixerOperands hand them.
#include "Mixer.h"

#include <cmath>
#include <cstdlib>
#include <fmt/format.h>
#include <tuple>

namespace einstruct {

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
  if (dModel < 1 || dModel > kMaxMixerSize)
    return Error{
        fmt::format("m2-block: d_model = {} must be in [1, 2^20]", dModel)};
  auto order = intParam(spec, "order", 4096);
  auto lMax = intParam(spec, "l_max", kMaxMixerSeqLen);
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
  if (dModel < 1 || dModel > kMaxMixerSize)
    return Error{
        fmt::format("hydra-block: d_model = {} must be in [1, 2^20]", dModel)};
  // The reference's defaults: d_state 64, d_conv 7, expand 2, headdim 64.
  int64_t expand = 2;
  for (auto [key, into, fallback] : {std::tuple{"state", &s.state, int64_t(64)},
                                     {"conv", &s.conv, int64_t(7)},
                                     {"expand", &expand, int64_t(2)},
                                     {"head_dim", &s.headDim, int64_t(64)}}) {
    auto v = intParam(spec, key, kMaxMixerSize);
    if (!v)
      return Error{v.error()};
    *into = v->value_or(fallback);
  }
  if (s.conv % 2 == 0)
    return Error{fmt::format("hydra-block: conv = {} must be odd (the "
                             "reference pads conv // 2 on each side, which "
                             "keeps L tokens only for odd widths)",
                             s.conv)};
  if (expand * dModel > kMaxMixerSize)
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

namespace {

// The m2-conv inside an m2-block: its causal parameter and filter order.
NamedSpec m2BlockConv(const NamedSpec &spec, int64_t order) {
  NamedSpec conv{"m2-conv", {{"order", std::to_string(order)}}};
  if (auto c = spec.params.find("causal"); c != spec.params.end())
    conv.params["causal"] = c->second;
  return conv;
}

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

Result<MixerAnalysis> analyzeBlock(const NamedSpec &spec, int64_t L,
                                   int64_t d) {
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
    MixerAnalysis a = *m;
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
    auto m = analyzeMixer(m2BlockConv(spec, s->order), L, d);
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
    MixerAnalysis a = *m;
    a.family = f;
    a.macs += L * perToken;
    a.quadraticMacs += L * perToken;
    a.params += in->params() + 3 * d + 3 * d * (M2BlockShape::kShortTaps + 1) +
                out->params() + d + 3 * (s->lMax - L);
    a.bytes = 4 * (2 * L * d + a.params);
    return a;
  }
  return Error{fmt::format("{} is not a block", f)};
}

Result<MixerPlan> planBlock(const NamedSpec &spec, MixerPlan p,
                            int64_t channels) {
  const int64_t L = p.length;
  if (p.family == "m2-block") {
    auto shape = m2BlockShape(spec, L, channels);
    if (!shape)
      return Error{shape.error()};
    auto convShape = m2ConvShape(m2BlockConv(spec, shape->order), L);
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
  if (p.family == "hydra-block") {
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
  return Error{fmt::format("{} is not a block", p.family)};
}

std::vector<MixerOperand> blockOperands(const MixerPlan &p) {
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
  if (p.family == "hydra-block") { // named as blocks.Hydra's state_dict
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
  return {};
}

} // namespace einstruct
