#include "TorchModule.h"
#include "compiler/frontend/SpecReader.h"
#include "search/Init.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace einstruct {

namespace {

const char *kTemplate =
#include "einstruct_module.py.inc"
    ;

// The spec the runtime compiles: the terms with their sizes (exact for every
// layer), or the named structure for BTT-MoE, whose experts and top-k the
// terms form cannot say.
nlohmann::json specOf(const Layer &layer) {
  nlohmann::json j = {{"d_in", layer.dIn}, {"d_out", layer.dOut}};
  if (layer.experts) {
    j["structure"] = fmt::format("btt-moe(experts={}, top_k={})",
                                 layer.experts, layer.topK);
    return j;
  }
  for (const auto &t : layer.terms) {
    nlohmann::json sizes = nlohmann::json::object();
    for (auto [c, n] : t.sizes)
      sizes[std::string(1, c)] = n;
    j["terms"].push_back({{"einsum", t.str()}, {"sizes", sizes}});
  }
  return j;
}

bool sameLayer(const Layer &a, const Layer &b) {
  if (a.dIn != b.dIn || a.dOut != b.dOut || a.experts != b.experts ||
      a.topK != b.topK || a.terms.size() != b.terms.size())
    return false;
  for (size_t k = 0; k < a.terms.size(); ++k)
    if (a.terms[k].str() != b.terms[k].str() ||
        a.terms[k].sizes != b.terms[k].sizes)
      return false;
  return true;
}

void replaceAll(std::string &text, const std::string &key,
                const std::string &value) {
  for (size_t at = text.find(key); at != std::string::npos;
       at = text.find(key, at + value.size()))
    text.replace(at, key.size(), value);
}

} // namespace

Result<std::string> emitTorchModule(const Layer &layer, const std::string &name,
                                    const std::string &runtime) {
  if (name.empty() || std::isdigit((unsigned char)name[0]) ||
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "0123456789_") != std::string::npos)
    return Error{fmt::format("--name: '{}' is not a Python identifier", name)};
  nlohmann::json spec = specOf(layer);
  // The runtime must rebuild exactly this layer from the spec.
  auto back = readSpecJson(spec.dump(), "spec");
  if (!back || back->size() != 1 || !sameLayer(back->front(), layer))
    return Error{fmt::format("{}: the layer does not round-trip through a "
                             "runtime spec ({})",
                             layer.label, back ? "it differs" : back.error())};
  auto stds = initStd(layer);
  if (!stds)
    return Error{stds.error()};
  nlohmann::json shapes = weightShapes(layer);
  if (layer.experts)
    shapes.push_back({layer.dIn, layer.experts});
  std::string stdText;
  for (double s : *stds)
    stdText += (stdText.empty() ? "" : ", ") + fmt::format("{:.17g}", s);
  std::string summary = fmt::format("{} {}->{}", layer.name, layer.dIn,
                                    layer.dOut);
  if (layer.experts)
    summary += fmt::format(", {} experts, top-{}", layer.experts, layer.topK);
  std::string text = kTemplate;
  replaceAll(text, "@NAME@", name);
  replaceAll(text, "@SUMMARY@", summary);
  // JSON text inside a raw triple-quoted string: json.loads reads it back.
  replaceAll(text, "@SPEC@", "json.loads(r\"\"\"" + spec.dump() + "\"\"\")");
  replaceAll(text, "@D_IN@", std::to_string(layer.dIn));
  replaceAll(text, "@D_OUT@", std::to_string(layer.dOut));
  replaceAll(text, "@EXPERTS@", std::to_string(layer.experts));
  replaceAll(text, "@SHAPES@", shapes.dump());
  replaceAll(text, "@STDS@", "[" + stdText + "]");
  replaceAll(text, "@RUNTIME@", nlohmann::json(runtime).dump());
  return text;
}

} // namespace einstruct
