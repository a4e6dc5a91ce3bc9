// einsum-search's BTT layers (AndPotap/einsum-search): CoLALayer over
// OptBlockTT (nn/cola_nn.py build_opt_btt, ops/operators.py, mm/btt_mvm.py)
// and BTTMoELayer (build_btt_norm_moe_parallel). State-dict keys:
// NAME.matrix_params.0 = A (γ, α, φ·ρ), NAME.matrix_params.1 = B (φ, γ·ρ, ε),
// with NAME.matrix_params.2 and .3 the learned scalars γ0, γ1 of a
// normalised layer, NAME.b the bias; a MoE layer holds that BTT under
// NAME.btt_layer (ρ = E experts) and its router NAME.moe_gate.weight (E, d_in).
// A normalised layer multiplies by γ·W / max(1, rms(W)/max_rms) on every
// call; that is a function of the stored tensors, folded in here.
// Generic θ layers (EinOpVec2, build_einsum) store A (φ, δ, ρ, γ, α) and
// B (φ, ε, ρ, γ, β), size-1 axes squeezed: einstruct's own layout, sized by
// round(d^θ) as einstruct's sizing=round; the θ is not stored, so the user
// names it.
#include "Checkpoint.h"
#include "search/Named.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

namespace einstruct {
namespace {

// OptBlockTT._rmatmat's rms and bound for a core of fan-in dIn, fan-out dOut.
double rms(const NpyArray &w, double eps = 1e-8) {
  double s = 0;
  for (float v : w.data)
    s += double(v) * v;
  return std::sqrt(s / double(w.data.size()) + eps);
}
double maxRms(double dIn, double dOut) {
  return std::sqrt(std::min(dIn, dOut) * dOut / (dOut * dIn * dIn));
}

// The weight a normalised core applies: γ·W / max(1, rms(W)/max_rms)
// (EinOpVec2 has no γ and adds 1e-6 inside its rms).
NpyArray folded(NpyArray w, double gamma, double bound, double eps = 1e-8) {
  const double scale = gamma / std::max(1.0, rms(w, eps) / bound);
  for (float &v : w.data)
    v = float(v * scale);
  return w;
}

// A stored scalar (γ0, γ1), or 1 when absent.
Result<double> scalar(const Tensors &t, const std::string &name) {
  auto it = t.find(name);
  if (it == t.end())
    return 1.0;
  if (it->second.data.size() != 1)
    return Error{fmt::format("{}: shape {} must be a scalar", name,
                             shapeString(it->second.shape))};
  return double(it->second.data[0]);
}

// Module `m`'s cores A, B as the generic θ layer o.theta builds (round
// sizing, o.dIn -> o.dOut), or nothing when their shapes are another's.
Result<std::optional<ImportedLayer>> genericLayer(const Tensors &t,
                                                  const std::string &m,
                                                  const NpyArray &a,
                                                  const NpyArray &b,
                                                  const ImportOptions &o) {
  if (!o.dIn || !o.dOut)
    return Error{"a generic θ layer needs d_in and d_out with its θ"};
  auto theta = parseTheta(o.theta);
  if (!theta)
    return Error{fmt::format("θ: {}", theta.error())};
  auto layer = layerFromTheta(*theta, *o.dIn, *o.dOut, Sizing::Round);
  if (!layer)
    return Error{layer.error()};
  const auto shapes = weightShapes(*layer);
  if (shapes.size() != 2 || a.shape != shapes[0] || b.shape != shapes[1])
    return std::optional<ImportedLayer>{};
  ImportedLayer l;
  l.name = m;
  l.theta = o.theta;
  l.layer = *layer;
  l.layer.label = m;
  l.weights = {a, b};
  if (o.normalised) {
    // Fan-ins and fan-outs as do_bmm0_init sets them (learning/fns.py
    // get_core_bmm_dims): A α -> δ·φ·ρ, B β·γ·ρ -> ε.
    const ClassSizes s = *classify(layer->terms[0]);
    const double a0 = double(s[kAlpha]),
                 a1 = double(s[kDelta] * s[kPhi] * s[kRho]),
                 b0 = double(s[kBeta] * s[kGamma] * s[kRho]),
                 b1 = double(s[kEpsilon]);
    l.weights = {folded(a, 1.0, maxRms(a0, a1), 1e-6),
                 folded(b, 1.0, maxRms(b0, b1), 1e-6)};
    l.notes.push_back("RMS normalisation folded (einsum_norm)");
  }
  l.notes.push_back("generic θ " + o.theta + " with round sizing, as "
                    "build_einsum; cores in einstruct's layout already");
  // CoLALayer adds its bias (of the padded d_out) before cutting or
  // zero-padding y to d_out: the bias y sees is that one cut or padded.
  auto bias = t.find(stateKey(m, "b"));
  if (bias != t.end()) {
    const int64_t padded = layer->terms[0].outDim();
    if (bias->second.shape != std::vector<int64_t>{padded})
      return Error{fmt::format("{}: shape {} must be (d_out = {}, as padded)",
                               bias->first, shapeString(bias->second.shape),
                               padded)};
    NpyArray cut{{*o.dOut}, std::vector<float>(size_t(*o.dOut), 0.0f)};
    std::copy_n(bias->second.data.begin(), std::min(padded, *o.dOut),
                cut.data.begin());
    l.bias = std::move(cut);
  }
  return std::optional<ImportedLayer>{std::move(l)};
}

} // namespace

Result<std::vector<ImportedLayer>> importEinsumSearch(const Tensors &t,
                                                      const ImportOptions &o) {
  std::vector<ImportedLayer> out;
  for (const auto &[name, a] : t) {
    if (!hasSuffix("." + name, ".matrix_params.0"))
      continue;
    const std::string m =
        name.size() == 15 ? "" : name.substr(0, name.size() - 16);
    auto bIt = t.find(stateKey(m, "matrix_params.1"));
    if (bIt == t.end())
      continue; // one core: a low-rank or dense CoLA layer
    if (!o.theta.empty()) {
      auto l = genericLayer(t, m, a, bIt->second, o);
      if (!l)
        return Error{l.error()};
      if (*l) { // the cores have the θ's shapes
        out.push_back(std::move(**l));
        continue;
      }
    }
    if (a.shape.size() != 3 || bIt->second.shape.size() != 3)
      continue; // not an OptBlockTT
    const NpyArray &b = bIt->second;
    const int64_t gamma = a.shape[0], alpha = a.shape[1], phi = b.shape[0],
                  eps = b.shape[2];
    const int64_t rank = gamma > 0 ? b.shape[1] / gamma : 0;
    if (rank < 1 || b.shape[1] != gamma * rank || a.shape[2] != phi * rank)
      return Error{fmt::format(
          "{}: A {} and B {} are not OptBlockTT cores (γ, α, φ·ρ) and "
          "(φ, γ·ρ, ε)",
          m, shapeString(a.shape), shapeString(b.shape))};
    // A MoE layer: NAME.btt_layer beside NAME.moe_gate.weight.
    const bool moe = hasSuffix("." + m, ".btt_layer");
    const std::string layerName =
        moe ? (m.size() == 9 ? "" : m.substr(0, m.size() - 10)) : m;
    const NpyArray *router = nullptr;
    if (moe) {
      auto r = t.find(stateKey(layerName, "moe_gate.weight"));
      if (r == t.end())
        return Error{fmt::format("{}: a btt_layer without {} beside it", m,
                                 stateKey(layerName, "moe_gate.weight"))};
      router = &r->second;
      if (router->shape != std::vector<int64_t>{rank, gamma * alpha})
        return Error{fmt::format("{}: shape {} must be (experts = {}, d_in = "
                                 "{})",
                                 r->first, shapeString(router->shape), rank,
                                 gamma * alpha)};
      if (o.topK > rank)
        return Error{fmt::format("{}: top_k = {} exceeds its {} experts",
                                 layerName, o.topK, rank)};
    }
    const std::string spec =
        moe ? fmt::format("btt-moe(experts={}, top_k={}, in_blocks={}, "
                          "out_blocks={})",
                          rank, o.topK, gamma, phi)
            : fmt::format("btt(rank={}, in_blocks={}, out_blocks={})", rank,
                          gamma, phi);
    auto imported = namedImport(layerName, spec, gamma * alpha, phi * eps);
    if (!imported)
      return Error{imported.error()};
    ImportedLayer &l = *imported;

    // Normalised when it holds γ0, γ1 (btt_norm, every MoE layer).
    const bool normalised = moe || t.count(stateKey(m, "matrix_params.2"));
    NpyArray w1 = a, w2 = b;
    if (normalised) {
      auto g0 = scalar(t, stateKey(m, "matrix_params.2"));
      auto g1 = scalar(t, stateKey(m, "matrix_params.3"));
      if (!g0)
        return Error{g0.error()};
      if (!g1)
        return Error{g1.error()};
      // Fan-ins and fan-outs as build_opt_btt sets them; the parallel MoE
      // counts one expert's share of ρ.
      const double r = double(moe ? 1 : rank);
      w1 = folded(a, *g0, maxRms(double(alpha), double(phi) * r));
      w2 = folded(b, *g1, maxRms(double(gamma) * r, double(eps)));
      l.notes.push_back(fmt::format("RMS normalisation folded (γ0 = {:.6g}, "
                                    "γ1 = {:.6g})",
                                    *g0, *g1));
    }
    // A (γ, α, φ, ρ) -> W1 (φ, ρ, γ, α); B (φ, γ, ρ, ε) -> W2 (φ, ε, ρ, γ).
    auto shapes = weightShapes(l.layer);
    l.weights = {
        reshaped(transposed(reshaped(w1, {gamma, alpha, phi, rank}), "gafr",
                            "frga"),
                 shapes[0]),
        reshaped(transposed(reshaped(w2, {phi, gamma, rank, eps}), "fgre",
                            "ferg"),
                 shapes[1])};
    l.notes.push_back("cores transposed from (γ, α, φ·ρ), (φ, γ·ρ, ε) to "
                      "einstruct's W1 (φ, ρ, γ, α), W2 (φ, ε, ρ, γ)");
    if (router) {
      l.router = transposed(*router, "ed", "de");
      l.notes.push_back("router transposed from (E, d_in) to (d_in, E); top_k "
                        "is not stored: " +
                        std::to_string(o.topK));
    }
    auto bias = t.find(stateKey(m, "b"));
    if (bias != t.end()) {
      if (bias->second.shape != std::vector<int64_t>{phi * eps})
        return Error{fmt::format("{}: shape {} must be (d_out = {})",
                                 bias->first, shapeString(bias->second.shape),
                                 phi * eps)};
      l.bias = bias->second;
    }
    out.push_back(std::move(l));
  }
  return out;
}

Result<std::vector<std::pair<std::string, NpyArray>>>
exportEinsumSearch(const ImportedLayer &l) {
  const Layer &layer = l.layer;
  const std::optional<ClassSizes> s =
      layer.terms.size() == 1 ? classify(layer.terms[0]) : std::nullopt;
  if (layer.layout != "einstruct" || !s || (*s)[kBeta] != 1 ||
      (*s)[kDelta] != 1 ||
      termFromClassSizes(*s).str() != layer.terms[0].str())
    return Error{fmt::format(
        "{}: einsum-search's OptBlockTT stores BTT layers (btt, monarch, "
        "btt-moe: θ with β = δ = 1) in einstruct's layout; this layer is "
        "'{}' ({}) in the '{}' layout",
        layer.label, layer.name, layer.terms[0].str(), layer.layout)};
  const int64_t alpha = (*s)[kAlpha], gamma = (*s)[kGamma], phi = (*s)[kPhi],
                eps = (*s)[kEpsilon], rank = (*s)[kRho];
  NpyArray a = reshaped(
      transposed(reshaped(l.weights[0], {phi, rank, gamma, alpha}), "frga",
                 "gafr"),
      {gamma, alpha, phi * rank});
  NpyArray b = reshaped(
      transposed(reshaped(l.weights[1], {phi, eps, rank, gamma}), "ferg",
                 "fgre"),
      {phi, gamma * rank, eps});
  std::vector<std::pair<std::string, NpyArray>> out;
  const bool moe = layer.experts > 0;
  const std::string m = moe ? stateKey(l.name, "btt_layer") : l.name;
  if (moe) {
    // BTTMoELayer always normalises: γ = max(1, rms/max_rms) makes the
    // normalised weight equal the stored one.
    const double g0 = std::max(1.0, rms(a) / maxRms(double(alpha), double(phi)));
    const double g1 = std::max(1.0, rms(b) / maxRms(double(gamma), double(eps)));
    out.push_back({stateKey(m, "matrix_params.0"), a});
    out.push_back({stateKey(m, "matrix_params.1"), b});
    out.push_back({stateKey(m, "matrix_params.2"), NpyArray{{}, {float(g0)}}});
    out.push_back({stateKey(m, "matrix_params.3"), NpyArray{{}, {float(g1)}}});
    if (!l.router)
      return Error{fmt::format("{}: a btt-moe layer needs its router",
                               layer.label)};
    out.push_back({stateKey(l.name, "moe_gate.weight"),
                   transposed(*l.router, "de", "ed")});
  } else {
    out.push_back({stateKey(m, "matrix_params.0"), a});
    out.push_back({stateKey(m, "matrix_params.1"), b});
  }
  if (l.bias) {
    out.push_back({stateKey(m, "b"), *l.bias});
    if (moe) // BTTMoELayer registers the same bias as its own b too
      out.push_back({stateKey(l.name, "b"), *l.bias});
  }
  return out;
}

} // namespace einstruct
