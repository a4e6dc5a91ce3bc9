// The whole blocks, hydra-block and m2-block (Mixer.h): their sizes, their
// projections as the spec makes them, their analysis, plan and operands,
// which analyzeMixer, planMixer and mixerOperands hand them.
#include "Mixer.h"
#include "ModelSearch.h"

#include <algorithm>
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

namespace {

// `text` is a call of the projection search: search(...).
bool isSearch(const std::string &text) { return callName(text) == "search"; }

// `slot` as the named structure `text` ("dense" keeps torch's Linear).
Result<BlockProjection> namedProjection(const NamedSpec &spec,
                                        const std::string &key,
                                        const std::string &text,
                                        BlockProjection slot) {
  auto named = parseNamed(text);
  if (!named)
    return Error{fmt::format("{}: {} = '{}': {}", spec.family, key, text,
                             named.error())};
  if (named->family == "dense")
    return slot;
  auto layer = buildNamed(*named, slot.dIn, slot.dOut);
  if (!layer)
    return Error{fmt::format("{}: {} = '{}' as {} ({} -> {}): {}", spec.family,
                             key, text, slot.name, slot.dIn, slot.dOut,
                             layer.error())};
  if (layer->experts)
    return Error{fmt::format("{}: {} = '{}': a routed BTT-MoE cannot be a "
                             "block's projection",
                             spec.family, key, text)};
  // Its counts must fit in 64 bits (macs() and params() read them).
  if (auto a = analyze(*layer); !a)
    return Error{fmt::format("{}: {} = '{}' as {} ({} -> {}): {}", spec.family,
                             key, text, slot.name, slot.dIn, slot.dOut,
                             a.error())};
  slot.layer = std::move(*layer);
  return slot;
}

// The slots as the model search picks them under search(...)'s budget: the
// search's dense pick stays torch's Linear, as convert() leaves it.
Result<std::vector<BlockProjection>>
searchedProjections(const NamedSpec &spec, const std::string &text,
                    std::vector<BlockProjection> slots) {
  auto where = [&](const std::string &msg) {
    return Error{fmt::format("{}: proj = '{}': {}", spec.family, text, msg)};
  };
  auto call = parseCall(text, {{"search", {"max_flops_ratio", "max_flops"}}},
                        {}, "projection search");
  if (!call)
    return where(call.error());
  std::vector<ModelLayer> layers;
  for (const auto &s : slots)
    layers.push_back({s.name, s.dIn, s.dOut, 1});
  auto ratio = call->params.find("max_flops_ratio");
  auto flops = intParam(*call, "max_flops", int64_t(1) << 50);
  if (!flops)
    return where(flops.error());
  if ((ratio != call->params.end()) == flops->has_value())
    return where("give one budget: max_flops_ratio (a fraction of the dense "
                 "projections' MACs) or max_flops (MACs per token)");
  int64_t budget = flops->value_or(0);
  if (ratio != call->params.end()) {
    char *end = nullptr;
    double r = std::strtod(ratio->second.c_str(), &end);
    if (end == ratio->second.c_str() || *end || !std::isfinite(r) || r <= 0)
      return where(fmt::format("max_flops_ratio = '{}' must be a positive "
                               "number",
                               ratio->second));
    budget = budgetFromRatio(layers, r);
    if (budget < 1)
      return where(fmt::format("max_flops_ratio = {} of the dense "
                               "projections' {} MACs per token is under one",
                               ratio->second, budgetFromRatio(layers, 1)));
  }
  auto picked = searchModel(layers, budget, SearchSpace{}, Constraints{});
  if (!picked)
    return where(picked.error());
  for (size_t k = 0; k < slots.size(); ++k)
    if (picked->choices[k].pick.analysis.name != "dense")
      slots[k].layer = picked->choices[k].pick.layer;
  return slots;
}

} // namespace

Result<std::vector<BlockProjection>>
blockProjections(const NamedSpec &spec,
                 const std::vector<BlockProjection> &slots) {
  auto both = spec.params.find("proj");
  if (both != spec.params.end() && isSearch(both->second)) {
    for (const auto &s : slots)
      if (spec.params.count(s.name))
        return Error{fmt::format(
            "{}: {} = '{}' beside proj = '{}': the search chooses every "
            "projection; give one or the other",
            spec.family, s.name, spec.params.at(s.name), both->second)};
    return searchedProjections(spec, both->second, slots);
  }
  if (both != spec.params.end() &&
      std::all_of(slots.begin(), slots.end(),
                  [&](const auto &s) { return spec.params.count(s.name); })) {
    std::vector<std::string> names;
    for (const auto &s : slots)
      names.push_back(s.name);
    return Error{fmt::format("{}: proj = '{}' is unused: {} each give "
                             "their own structure",
                             spec.family, both->second,
                             fmt::join(names, " and "))};
  }
  std::vector<BlockProjection> out;
  for (const auto &s : slots) {
    auto own = spec.params.find(s.name);
    auto given = own != spec.params.end() ? own : both;
    if (given == spec.params.end()) {
      out.push_back(s);
      continue;
    }
    if (isSearch(given->second))
      return Error{fmt::format("{}: {} = '{}': the search chooses the "
                               "projections together; give it as proj = {}",
                               spec.family, given->first, given->second,
                               given->second)};
    auto p = namedProjection(spec, given->first, given->second, s);
    if (!p)
      return Error{p.error()};
    out.push_back(std::move(*p));
  }
  return out;
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
// The block's analysis: its mixer's (a) plus, on L tokens of d channels,
// `perToken` multiply-adds per token and `params` more, with its
// projections; refused past 2^62 (a structure's sizes can be huge).
Result<MixerAnalysis> blockAnalysis(MixerAnalysis a, int64_t L, int64_t d,
                                    long double perToken, long double params,
                                    std::vector<BlockProjection> projections) {
  const long double macs = (long double)a.macs + (long double)L * perToken;
  const long double quadratic =
      (long double)a.quadraticMacs + (long double)L * perToken;
  const long double allParams = (long double)a.params + params;
  const long double bytes = 4 * (2 * (long double)L * d + allParams);
  if (std::max({macs, quadratic, bytes}) > kMaxMixerCount)
    return Error{fmt::format("{}: its counts at L = {} and d_model = {} "
                             "exceed 2^62 (the projections: {} and {} "
                             "multiply-adds per token)",
                             a.family, L, d, projections[0].macs(),
                             projections[1].macs())};
  a.macs = int64_t(macs);
  a.quadraticMacs = int64_t(quadratic);
  a.params = int64_t(allParams);
  a.bytes = int64_t(bytes);
  a.projections = std::move(projections);
  return a;
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
    auto proj =
        blockProjections(spec, {{"in_proj", d, s->inProj(), std::nullopt},
                                {"out_proj", s->inner, d, std::nullopt}});
    if (!proj)
      return Error{proj.error()};
    const BlockProjection &in = (*proj)[0], &out = (*proj)[1];
    MixerAnalysis a = *m;
    a.family = f;
    a.channels = d;
    // Per token: the projections, the convolution, the gated norm.
    return blockAnalysis(a, L, d,
                         (long double)in.macs() + s->convChannels() * s->conv +
                             4 * s->inner + out.macs(),
                         (long double)in.params() +
                             s->convChannels() * (s->conv + 1) + s->inner +
                             out.params(),
                         std::move(*proj));
  }
  if (f == "m2-block") {
    auto s = m2BlockShape(spec, L, d);
    if (!s)
      return Error{s.error()};
    auto m = analyzeMixer(m2BlockConv(spec, s->order), L, d);
    if (!m)
      return Error{"m2-block: " + m.error()};
    auto proj = blockProjections(spec, {{"in_linear", d, 3 * d, std::nullopt},
                                        {"out_linear", d, d, std::nullopt}});
    if (!proj)
      return Error{proj.error()};
    const BlockProjection &in = (*proj)[0], &out = (*proj)[1];
    MixerAnalysis a = *m;
    a.family = f;
    // Per token: in_linear, the short convolution, out_linear.
    return blockAnalysis(a, L, d,
                         (long double)in.macs() +
                             3 * d * M2BlockShape::kShortTaps + out.macs(),
                         (long double)in.params() + 3 * d +
                             3 * d * (M2BlockShape::kShortTaps + 1) +
                             out.params() + d + 3 * (s->lMax - L),
                         std::move(*proj));
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
    appendProjection(ops, p.analysis.projections[0]);
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
    appendProjection(ops, p.analysis.projections[1]);
    ops.push_back({"out_linear.bias", {C}, false});
    return ops;
  }
  if (p.family == "hydra-block") { // named as blocks.Hydra's state_dict
    const HydraBlockShape &s = p.block;
    std::vector<MixerOperand> ops = {{"x", {L, C}}};
    appendProjection(ops, p.analysis.projections[0]);
    ops.insert(ops.end(),
               {{"conv1d.weight", {s.convChannels(), 1, s.conv}, false},
                {"conv1d.bias", {s.convChannels()}, false},
                {"dt_bias", {s.heads}, false},
                {"A_log", {s.heads}, false},
                {"D", {s.heads}, false},
                {"fc_D.weight", {s.heads, s.inner}, false},
                {"norm_weight", {s.inner}, false}});
    appendProjection(ops, p.analysis.projections[1]);
    return ops;
  }
  return {};
}

} // namespace einstruct
