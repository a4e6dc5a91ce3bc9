#include "WeightFiles.h"
#include "JsonFile.h"
#include "Safetensors.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

namespace einstruct {
namespace {

constexpr const char *kLayerKey = "einstruct.layer";
constexpr const char *kLayoutKey = "einstruct.layout";

// What a file recorded against `layer`; empty when they agree.
std::string mismatch(const std::string &file, const std::string &where,
                     const std::string &layout, const std::string &written,
                     const Layer &layer) {
  if (!layout.empty() && layout != layer.layout)
    return fmt::format("{}: weights in the '{}' layout ({}), but this layer's "
                       "layout is '{}'{}",
                       file, layout, where, layer.layout,
                       layer.layout == "einstruct"
                           ? fmt::format("; give the spec with layout={}",
                                         layout)
                           : "");
  const std::string want = layerSignature(layer);
  if (!written.empty() && written != want)
    return fmt::format("{}: written for the layer '{}' ({}), but this layer "
                       "is '{}'; give the spec the weights were written for",
                       file, written, where, want);
  return "";
}

} // namespace

std::string layerSignature(const Layer &layer) {
  std::string s;
  for (const auto &t : layer.terms)
    s += (s.empty() ? "" : " + ") + t.str() + " " + t.sizesStr();
  s += fmt::format(" d_in={} d_out={}", layer.dIn, layer.dOut);
  if (layer.experts)
    s += fmt::format(" experts={} top_k={}", layer.experts, layer.topK);
  return s;
}

std::map<std::string, std::string> weightMetadata(const Layer &layer) {
  return {{kLayerKey, layerSignature(layer)}, {kLayoutKey, layer.layout}};
}

std::string weightSidecar(const Layer &layer,
                          const std::vector<std::string> &files) {
  nlohmann::json j = {{"layer", layerSignature(layer)},
                      {"layout", layer.layout},
                      {"files", files}};
  return j.dump(2) + "\n";
}

Result<NpyArray> readWeightFile(const std::string &spec, const Layer &layer) {
  std::map<std::string, std::string> metadata;
  auto a = readArrayFile(spec, &metadata);
  if (!a)
    return a;
  const std::string file = spec.substr(0, spec.rfind(".safetensors:") ==
                                                  std::string::npos
                                              ? spec.size()
                                              : spec.rfind(":"));
  if (!metadata.empty()) {
    auto why = mismatch(file, "its __metadata__", metadata[kLayoutKey],
                        metadata[kLayerKey], layer);
    if (!why.empty())
      return Error{why};
    return a;
  }
  // A .npy file: DIR/einstruct.json, when there is one and it lists it.
  const size_t slash = file.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : file.substr(0, slash);
  const std::string name = file.substr(slash == std::string::npos ? 0 : slash + 1);
  const std::string sidecar = dir + "/" + kWeightSidecar;
  struct stat st;
  if (::stat(sidecar.c_str(), &st) != 0)
    return a;
  auto bytes = readTextFile(sidecar);
  if (!bytes)
    return Error{bytes.error()};
  auto j = parseJson(*bytes, sidecar);
  if (!j)
    return Error{j.error()};
  if (!j->is_object())
    return Error{sidecar + ": must be a JSON object"};
  const auto &files = j->value("files", nlohmann::json::array());
  bool listed = false;
  for (const auto &f : files)
    listed |= f.is_string() && f.get<std::string>() == name;
  if (!listed)
    return a;
  auto text = [&](const char *key) {
    return j->contains(key) && (*j)[key].is_string()
               ? (*j)[key].get<std::string>()
               : std::string();
  };
  auto why = mismatch(file, sidecar, text("layout"), text("layer"), layer);
  if (!why.empty())
    return Error{why};
  return a;
}

} // namespace einstruct
