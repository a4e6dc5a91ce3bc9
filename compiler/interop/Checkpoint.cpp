#include "Checkpoint.h"
#include "compiler/frontend/JsonFile.h"
#include "compiler/frontend/Safetensors.h"
#include "compiler/frontend/WeightFiles.h"
#include "search/Named.h"

#include <algorithm>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace einstruct {

Result<CheckpointSource> parseCheckpointSource(const std::string &text) {
  if (text == "fly" || text == "m2")
    return CheckpointSource::Fly;
  if (text == "einsum-search")
    return CheckpointSource::EinsumSearch;
  return Error{fmt::format("unknown checkpoint source '{}'; known: fly, m2 "
                           "(fly's layers, which M2 vendors), einsum-search",
                           text)};
}

const char *sourceName(CheckpointSource s) {
  return s == CheckpointSource::Fly ? "fly" : "einsum-search";
}

Result<Tensors> readCheckpoint(const std::string &path) {
  static const std::string ext = ".safetensors";
  if (path.size() < ext.size() ||
      path.compare(path.size() - ext.size(), ext.size(), ext) != 0)
    return Error{fmt::format("{}: a checkpoint must be a .safetensors file "
                             "(save a .pt state_dict with "
                             "safetensors.torch.save_file)",
                             path)};
  auto bytes = readTextFile(path, SIZE_MAX);
  if (!bytes)
    return Error{bytes.error()};
  auto header = parseSafetensorsHeader(*bytes, path);
  if (!header)
    return Error{header.error()};
  Tensors t;
  for (const auto &e : header->tensors) {
    // Integer buffers (position ids, masks) are no layer's weights.
    if (e.dtype != "F32" && e.dtype != "F16" && e.dtype != "BF16" &&
        e.dtype != "F64")
      continue;
    auto a = parseSafetensor(*bytes, path, e.name);
    if (!a)
      return Error{a.error()};
    t[e.name] = std::move(*a);
  }
  return t;
}

Result<std::vector<ImportedLayer>> importCheckpoint(const Tensors &tensors,
                                                    CheckpointSource source,
                                                    const ImportOptions &o) {
  auto layers = source == CheckpointSource::Fly ? importFly(tensors, o)
                                                : importEinsumSearch(tensors, o);
  if (!layers)
    return layers;
  std::vector<ImportedLayer> kept;
  std::vector<std::string> names;
  for (auto &l : *layers) {
    names.push_back(l.name);
    if (o.only.empty() || l.name == o.only)
      kept.push_back(std::move(l));
  }
  if (kept.empty() && !names.empty())
    return Error{fmt::format("layer '{}' is not among the checkpoint's {} "
                             "layers: {}",
                             o.only, sourceName(source), fmt::join(names, ", "))};
  if (kept.empty()) {
    std::vector<std::string> held;
    for (const auto &[name, a] : tensors)
      if (held.size() < 8)
        held.push_back(fmt::format("{} {}", name, shapeString(a.shape)));
    return Error{fmt::format(
        "no {} structured layer in the checkpoint ({} floating tensors{}{})",
        sourceName(source), tensors.size(), held.empty() ? "" : ": ",
        fmt::join(held, ", "))};
  }
  // (With a θ, d_in/d_out are those of every layer of that θ.)
  if ((o.dIn || o.dOut) && o.theta.empty() && kept.size() > 1)
    return Error{fmt::format("d_in/d_out apply to one layer; the checkpoint "
                             "has {}: name one ({})",
                             kept.size(), fmt::join(names, ", "))};
  std::sort(kept.begin(), kept.end(),
            [](const auto &a, const auto &b) { return a.name < b.name; });
  return kept;
}

std::string importStem(const std::string &name) {
  if (name.empty())
    return "layer";
  std::string s = name;
  for (char &c : s)
    if (!std::isalnum((unsigned char)c) && c != '.' && c != '_' && c != '-')
      c = '_';
  return s[0] == '.' ? "_" + s : s;
}

std::string addImportFiles(const std::vector<ImportedLayer> &layers,
                           const std::string &dir, OutputFiles &out) {
  nlohmann::json manifest = nlohmann::json::array();
  for (const ImportedLayer &l : layers) {
    const std::string stem = importStem(l.name);
    std::vector<std::pair<std::string, NpyArray>> named;
    for (size_t k = 0; k < l.weights.size(); ++k)
      named.push_back({fmt::format("w{}", k + 1), l.weights[k]});
    if (l.router)
      named.push_back({"router", *l.router});
    if (l.bias)
      named.push_back({"bias", *l.bias});
    out.add(dir + "/" + stem + ".safetensors",
            encodeSafetensors(named, weightMetadata(l.layer)));
    nlohmann::json spec = {{"label", l.name.empty() ? stem : l.name},
                           {"d_in", l.layer.dIn},
                           {"d_out", l.layer.dOut}};
    if (l.theta.empty())
      spec["structure"] = l.structure;
    else
      spec.update({{"theta", l.theta}, {"sizing", "round"}});
    out.add(dir + "/" + stem + ".json", spec.dump(2) + "\n");
    manifest.push_back({{"name", l.name},
                        {"structure", l.theta.empty() ? l.structure : l.theta},
                        {"layout", l.layer.layout},
                        {"d_in", l.layer.dIn},
                        {"d_out", l.layer.dOut},
                        {"spec", stem + ".json"},
                        {"weights", stem + ".safetensors"},
                        {"num_weights", l.weights.size()},
                        {"router", bool(l.router)},
                        {"bias", bool(l.bias)},
                        {"notes", l.notes}});
  }
  std::string text = manifest.dump(2) + "\n";
  out.add(dir + "/manifest.json", text);
  return text;
}

Result<std::vector<std::pair<std::string, NpyArray>>>
exportLayer(const ImportedLayer &l, CheckpointSource source) {
  return source == CheckpointSource::Fly ? exportFly(l)
                                         : exportEinsumSearch(l);
}

Result<ImportedLayer> namedImport(const std::string &name,
                                  const std::string &spec, int64_t dIn,
                                  int64_t dOut) {
  auto named = parseNamed(spec);
  if (!named)
    return Error{named.error()};
  auto layer = buildNamed(*named, dIn, dOut);
  if (!layer)
    return Error{fmt::format("{}: {}", name, layer.error())};
  ImportedLayer l;
  l.name = name;
  l.structure = spec;
  l.layer = *layer;
  l.layer.label = name;
  return l;
}

bool hasSuffix(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string stateKey(const std::string &module, const char *tensor) {
  return module.empty() ? tensor : module + "." + tensor;
}

std::string shapeString(const std::vector<int64_t> &shape) {
  return fmt::format("({})", fmt::join(shape, ", "));
}

NpyArray reshaped(NpyArray a, std::vector<int64_t> shape) {
  a.shape = std::move(shape);
  return a;
}

NpyArray transposed(const NpyArray &a, const std::string &fromAxes,
                    const std::string &toAxes) {
  const size_t n = fromAxes.size();
  // Strides of `a` for each axis of the result.
  std::vector<int64_t> fromStride(n, 1), shape(n), stride(n);
  for (size_t k = n - 1; k-- > 0;)
    fromStride[k] = fromStride[k + 1] * a.shape[k + 1];
  for (size_t k = 0; k < n; ++k) {
    size_t src = fromAxes.find(toAxes[k]);
    shape[k] = a.shape[src];
    stride[k] = fromStride[src];
  }
  NpyArray out{shape, std::vector<float>(a.data.size())};
  std::vector<int64_t> index(n, 0);
  for (size_t i = 0; i < out.data.size(); ++i) {
    int64_t offset = 0;
    for (size_t k = 0; k < n; ++k)
      offset += index[k] * stride[k];
    out.data[i] = a.data[size_t(offset)];
    for (size_t k = n; k-- > 0;) {
      if (++index[k] < shape[k])
        break;
      index[k] = 0;
    }
  }
  return out;
}

} // namespace einstruct
