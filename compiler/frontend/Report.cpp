#include "Report.h"

#include <cmath>
#include <fmt/format.h>

namespace einstruct {

using nlohmann::json;

// Rounds away float noise (0.6699999999999999 -> 0.67) at 12 decimals.
static double tidy(double v) { return std::round(v * 1e12) / 1e12; }

json analysisJson(const Layer &layer, const Analysis &a) {
  json j;
  j["label"] = layer.label;
  j["name"] = a.name;
  j["d_in"] = a.dIn;
  j["d_out"] = a.dOut;
  j["padded_in"] = a.paddedIn;
  j["padded_out"] = a.paddedOut;
  if (a.classSizes) {
    json s;
    for (int c = 0; c < kNumClasses; ++c)
      s[std::string(1, kClassLetters[c])] = (*a.classSizes)[c];
    j["sizes"] = s;
  } else {
    j["sizes"] = nullptr;
  }
  j["theta"] = a.theta ? json(a.theta->v) : json(nullptr);
  j["sizing"] = layer.sizing;
  j["layout"] = layer.layout;
  j["bias"] = layer.bias;
  j["params"] = a.params;
  j["flops"] = a.flops;
  j["flops_unit"] = "multiply-adds per input vector (x2 for floating point "
                    "operations)";
  for (auto [key, v] :
       {std::pair{"omega", a.metrics ? a.metrics->omega : NAN},
        std::pair{"psi", a.metrics ? a.metrics->psi : NAN},
        std::pair{"nu", a.metrics ? a.metrics->nu : NAN}})
    j[key] = a.metrics ? json(tidy(v)) : json(nullptr);
  j["metrics_from"] = a.metricsFrom.empty() ? json(nullptr) : json(a.metricsFrom);
  j["rank_bound"] = a.rankBound;
  j["valid"] = a.validity.empty();
  j["validity"] = a.validity.empty() ? json(nullptr) : json(a.validity);
  json terms = json::array();
  for (const auto &t : layer.terms) {
    json sizes = json::object();
    for (auto [c, n] : t.sizes)
      sizes[std::string(1, c)] = n;
    terms.push_back({{"einsum", t.str()}, {"sizes", sizes}});
  }
  j["terms"] = terms;
  if (layer.experts) {
    j["experts"] = layer.experts;
    j["top_k"] = layer.topK;
    j["flops_all_experts"] = a.flopsAllExperts;
    j["router_params"] = a.routerParams;
  }
  return j;
}

json candidateJson(const Candidate &c) {
  json j = analysisJson(c.layer, c.analysis);
  j["grid_theta"] = c.gridTheta.v;
  j["score"] = c.score;
  j["pareto"] = {{"flops_params", c.paretoParams}, {"flops_psi", c.paretoPsi}};
  j["why"] = c.why;
  return j;
}

static std::string grouped(int64_t n) {
  std::string s = std::to_string(n), out;
  for (size_t k = 0; k < s.size(); ++k) {
    if (k && (s.size() - k) % 3 == 0)
      out += ',';
    out += s[k];
  }
  return out;
}

static std::string metric(const Analysis &a, double Taxonomy::*m) {
  if (!a.metrics)
    return "-";
  double v = (*a.metrics).*m;
  return fmt::format("{:.3g}", std::fabs(v) < 5e-13 ? 0.0 : v);
}

// Renders rows as aligned columns; the first `leftCols` and the last are
// left-aligned, the rest (numbers) right-aligned.
static std::string alignedTable(const std::vector<std::vector<std::string>> &rows,
                                size_t leftCols) {
  // Column widths in displayed characters (UTF-8 aware for the Greek headers).
  auto width = [](const std::string &s) {
    size_t w = 0;
    for (unsigned char c : s)
      w += (c & 0xC0) != 0x80;
    return w;
  };
  std::vector<size_t> w(rows[0].size(), 0);
  for (auto &r : rows)
    for (size_t c = 0; c < r.size(); ++c)
      w[c] = std::max(w[c], width(r[c]));
  std::string out;
  for (auto &r : rows) {
    for (size_t c = 0; c < r.size(); ++c) {
      bool left = c < leftCols || c + 1 == r.size();
      std::string pad(w[c] - width(r[c]), ' ');
      out += (c ? "  " : "") + (left ? r[c] + pad : pad + r[c]);
    }
    while (!out.empty() && out.back() == ' ')
      out.pop_back();
    out += '\n';
  }
  return out;
}

static std::string sizesText(const Candidate &c) {
  std::string sizes;
  for (int i = 0; i < kNumClasses; ++i)
    sizes += (i ? "," : "") + std::to_string((*c.analysis.classSizes)[i]);
  if (c.layer.experts)
    sizes += fmt::format(" E{}k{}", c.layer.experts, c.layer.topK);
  return sizes;
}

std::string candidateTable(const std::vector<Candidate> &cs, size_t top) {
  std::vector<std::vector<std::string>> rows = {
      {"#", "family", "sizes a,b,g,d,e,f,r", "params", "MACs/vector", "ω", "ψ",
       "ν", "pareto", "why"}};
  for (size_t k = 0; k < cs.size() && k < top; ++k) {
    const Candidate &c = cs[k];
    const Analysis &a = c.analysis;
    std::string sizes = sizesText(c);
    std::string pareto = std::string(c.paretoParams ? "P" : "-") +
                         (c.paretoPsi ? "ψ" : "-");
    rows.push_back({std::to_string(k + 1), a.name, sizes, grouped(a.params),
                    grouped(a.flops), metric(a, &Taxonomy::omega),
                    metric(a, &Taxonomy::psi), metric(a, &Taxonomy::nu), pareto,
                    c.why});
  }
  std::string out = alignedTable(rows, 3);
  out += fmt::format("\n{} candidates meet the constraints. pareto: P = on the "
                     "(fewest MACs, most params) front, ψ = on the (fewest "
                     "MACs, highest ψ) front. MACs are multiply-adds per input "
                     "vector.\n",
                     cs.size());
  return out;
}

std::string modelTable(const ModelResult &r, const std::string &name) {
  std::vector<std::vector<std::string>> rows = {
      {"layer", "d_in->d_out", "count", "family", "sizes a,b,g,d,e,f,r",
       "params", "MACs/vector", "ω", "ψ", "ν"}};
  for (const auto &c : r.choices) {
    const Analysis &a = c.pick.analysis;
    rows.push_back({c.layer.name, fmt::format("{}->{}", c.layer.dIn, c.layer.dOut),
                    std::to_string(c.layer.count), a.name, sizesText(c.pick),
                    grouped(a.params), grouped(a.flops),
                    metric(a, &Taxonomy::omega), metric(a, &Taxonomy::psi),
                    metric(a, &Taxonomy::nu)});
  }
  std::string out = name.empty() ? "" : name + "\n";
  out += alignedTable(rows, 2);
  out += fmt::format(
      "\ntotal MACs per token {} of budget {} ({:.3g}% of dense {}); total "
      "params {} ({:.3g}% of dense {}).\n",
      grouped(r.totalFlops), grouped(r.budgetFlops),
      100.0 * double(r.totalFlops) / double(r.denseFlops),
      grouped(r.denseFlops), grouped(r.totalParams),
      100.0 * double(r.totalParams) / double(r.denseParams),
      grouped(r.denseParams));
  return out;
}

std::string analysisTable(const std::vector<Layer> &layers,
                          const std::vector<Analysis> &analyses) {
  std::vector<std::vector<std::string>> rows = {
      {"label", "family", "d_in->d_out", "padded", "params", "MACs/vector",
       "ω", "ψ", "ν", "rank≤", "valid"}};
  for (size_t k = 0; k < layers.size(); ++k) {
    const Analysis &a = analyses[k];
    bool padded = a.paddedIn != a.dIn || a.paddedOut != a.dOut;
    rows.push_back(
        {layers[k].label, a.name, fmt::format("{}->{}", a.dIn, a.dOut),
         padded ? fmt::format("{}->{}", a.paddedIn, a.paddedOut) : "-",
         grouped(a.params), grouped(a.flops), metric(a, &Taxonomy::omega),
         metric(a, &Taxonomy::psi), metric(a, &Taxonomy::nu),
         grouped(a.rankBound), a.validity.empty() ? "yes" : "no"});
  }
  std::string out = alignedTable(rows, 4);
  out += "\nMACs/vector: multiply-adds per input vector (x2 = floating point "
         "operations).\n";
  for (size_t k = 0; k < layers.size(); ++k) {
    const Analysis &a = analyses[k];
    for (const auto &t : layers[k].terms)
      out += fmt::format("{}: {}  [{}]{}\n", layers[k].label, t.str(),
                         t.sizesStr(),
                         a.theta ? "  θ " + a.theta->str() : std::string());
    if (layers[k].layout != "einstruct")
      out += fmt::format("{}: weights in {}'s layout (the einsum above spells "
                         "its axis orders)\n",
                         layers[k].label, layers[k].layout);
    if (!a.validity.empty())
      out += fmt::format("{}: not a valid θ structure: {}\n", layers[k].label,
                         a.validity);
    if (layers[k].experts)
      out += fmt::format("{}: {} experts, top-{}: {} MACs with all experts "
                         "(the reference's way), router {} params\n",
                         layers[k].label, layers[k].experts, layers[k].topK,
                         grouped(a.flopsAllExperts), grouped(a.routerParams));
  }
  return out;
}

json modelResultJson(const ModelResult &r, const std::string &name) {
  json j;
  j["model"] = name;
  j["budget_flops"] = r.budgetFlops;
  j["total_flops"] = r.totalFlops;
  j["total_params"] = r.totalParams;
  j["dense_flops"] = r.denseFlops;
  j["dense_params"] = r.denseParams;
  j["layers"] = json::array();
  for (auto &c : r.choices) {
    auto cj = candidateJson(c.pick);
    cj["layer"] = c.layer.name;
    cj["count"] = c.layer.count;
    j["layers"].push_back(cj);
  }
  return j;
}

json mixerJson(const std::string &label, const MixerAnalysis &a) {
  json j = {{"label", label},
            {"mixer", a.family},
            {"seq_len", a.seqLen},
            {"channels", a.channels},
            {"macs", a.macs},
            {"macs_unit", "multiply-adds per sequence"},
            {"quadratic_macs", a.quadraticMacs},
            {"params", a.params},
            {"bytes", a.bytes},
            {"causal", a.causal},
            {"data_dependent", a.dataDependent},
            {"extendable", a.extendable},
            {"growth", a.growth}};
  j["chunk"] = a.chunk ? json(a.chunk) : json(nullptr);
  j["chunk_chosen"] = a.chunkChosen;
  j["fft_size"] = a.fftSize ? json(a.fftSize) : json(nullptr);
  j["blocks"] = a.blocks ? json(a.blocks) : json(nullptr);
  if (!a.projections.empty()) {
    json projections = json::array();
    for (const auto &p : a.projections) {
      json pj = {{"projection", p.name}, {"d_in", p.dIn},
                 {"d_out", p.dOut},      {"macs_per_token", p.macs()},
                 {"params", p.params()}, {"structure", "dense"},
                 {"layer", nullptr}};
      if (p.layer)
        if (auto la = analyze(*p.layer)) {
          pj["structure"] = la->name;
          pj["layer"] = analysisJson(*p.layer, *la);
        }
      projections.push_back(pj);
    }
    j["projections"] = projections;
  }
  return j;
}

std::string mixerTable(const std::vector<std::string> &labels,
                       const std::vector<MixerAnalysis> &analyses) {
  std::vector<std::vector<std::string>> rows = {
      {"mixer", "L", "channels", "chunk/n/blocks", "MACs/sequence",
       "materialised",
       "params", "bytes", "direction", "M", "lengths", "order"}};
  for (size_t k = 0; k < analyses.size(); ++k) {
    const MixerAnalysis &a = analyses[k];
    rows.push_back(
        {labels[k], grouped(a.seqLen), grouped(a.channels),
         a.chunk    ? grouped(a.chunk) + (a.chunkChosen ? " (chosen)" : "")
         : a.fftSize ? "n = " + grouped(a.fftSize)
         : a.blocks  ? grouped(a.blocks) + " blocks"
                     : "-",
         grouped(a.macs), grouped(a.quadraticMacs), grouped(a.params),
         grouped(a.bytes), a.causal ? "causal" : "bidirectional",
         a.dataDependent ? "data-dependent" : "learned",
         a.extendable ? "any" : "fixed", a.growth});
  }
  std::string projections;
  for (size_t k = 0; k < analyses.size(); ++k)
    for (const auto &p : analyses[k].projections) {
      std::string how = "dense";
      if (p.layer) {
        auto la = analyze(*p.layer);
        how = (la ? la->name : std::string("structured")) + ":";
        for (size_t t = 0; t < p.layer->terms.size(); ++t)
          how +=
              fmt::format("{} {} [{}]", t ? " +" : "", p.layer->terms[t].str(),
                          p.layer->terms[t].sizesStr());
      }
      projections += fmt::format("{}: {} {}->{} {}; {} MACs/token, {} params\n",
                                 labels[k], p.name, p.dIn, p.dOut, how,
                                 grouped(p.macs()), grouped(p.params()));
    }
  return alignedTable(rows, 4) + projections +
         "\nMACs/sequence: multiply-adds of the mixer's contractions for one "
         "sequence (elementwise work not counted); materialised: the L×L "
         "form's; bytes: float32 inputs, outputs and params read or written "
         "once; chunk (chosen): of those of at least " +
         std::to_string(kMinChosenChunk) +
         " tokens (or L), the one with the fewest MACs; n: m2-conv's "
         "Monarch DFT size; blocks: monarch-seq's per factor.\n";
}

} // namespace einstruct
