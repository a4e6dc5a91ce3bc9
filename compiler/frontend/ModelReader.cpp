#include "ModelReader.h"

#include <fmt/format.h>
#include "JsonFile.h"
#include <nlohmann/json.hpp>

namespace einstruct {

using nlohmann::json;

namespace {
Result<int64_t> positive(const json &j, const std::string &field,
                         const std::string &where, int64_t max) {
  if (!j.contains(field))
    return Error{fmt::format("{}.{}: missing", where, field)};
  const json &v = j.at(field);
  if (!v.is_number_unsigned() || v.get<uint64_t>() < 1 ||
      v.get<uint64_t>() > uint64_t(max))
    return Error{fmt::format("{}.{}: must be an integer in [1, {}]", where,
                             field, max)};
  return v.get<int64_t>();
}
} // namespace

Result<ModelSpec> readModelJson(const std::string &text,
                                const std::string &source) {
  auto parsed = parseJson(text, source);
  if (!parsed)
    return Error{parsed.error()};
  json doc = std::move(*parsed);
  if (!doc.is_object())
    return Error{fmt::format("{}: a model must be a JSON object", source)};
  for (auto &[k, v] : doc.items())
    if (k != "name" && k != "layers" && k != "budget")
      return Error{fmt::format("{}.{}: unknown field (known: name, layers, "
                               "budget)",
                               source, k)};
  ModelSpec m;
  if (doc.contains("name")) {
    if (!doc["name"].is_string())
      return Error{fmt::format("{}.name: must be a string", source)};
    m.name = doc["name"].get<std::string>();
  }
  if (!doc.contains("layers") || !doc["layers"].is_array() ||
      doc["layers"].empty())
    return Error{fmt::format("{}.layers: must be a non-empty array", source)};
  for (size_t i = 0; i < doc["layers"].size(); ++i) {
    const json &l = doc["layers"][i];
    std::string where = fmt::format("{}.layers[{}]", source, i);
    if (!l.is_object())
      return Error{fmt::format("{}: must be an object", where)};
    ModelLayer ml;
    if (!l.contains("name") || !l["name"].is_string())
      return Error{fmt::format("{}.name: must be a string", where)};
    ml.name = l["name"].get<std::string>();
    auto dIn = positive(l, "d_in", where, int64_t(1) << 24);
    auto dOut = positive(l, "d_out", where, int64_t(1) << 24);
    if (!dIn)
      return Error{dIn.error()};
    if (!dOut)
      return Error{dOut.error()};
    ml.dIn = *dIn;
    ml.dOut = *dOut;
    if (l.contains("count")) {
      auto c = positive(l, "count", where, 1 << 20);
      if (!c)
        return Error{c.error()};
      ml.count = *c;
    }
    for (auto &[k, v] : l.items())
      if (k != "name" && k != "d_in" && k != "d_out" && k != "count")
        return Error{fmt::format("{}.{}: unknown field (known: name, d_in, "
                                 "d_out, count)",
                                 where, k)};
    m.layers.push_back(ml);
  }
  if (doc.contains("budget")) {
    const json &b = doc["budget"];
    std::string where = source + ".budget";
    if (!b.is_object())
      return Error{fmt::format("{}: must be an object", where)};
    for (auto &[k, v] : b.items()) {
      if (k == "max_flops") {
        auto f = positive(b, k, where, INT64_MAX);
        if (!f)
          return Error{f.error()};
        m.maxFlops = *f;
      } else if (k == "max_flops_ratio") {
        if (!v.is_number() || v.get<double>() <= 0 || v.get<double>() > 1)
          return Error{fmt::format("{}.max_flops_ratio: must be a number in "
                                   "(0, 1]",
                                   where)};
        m.maxFlopsRatio = v.get<double>();
      } else {
        return Error{fmt::format("{}.{}: unknown field (known: max_flops, "
                                 "max_flops_ratio)",
                                 where, k)};
      }
    }
  }
  return m;
}

Result<ModelSpec> readModelFile(const std::string &path) {
  auto text = readTextFile(path);
  if (!text)
    return Error{text.error()};
  return readModelJson(*text, path);
}

Result<int64_t> modelBudget(const ModelSpec &m, const std::string &path,
                            std::optional<int64_t> flops,
                            std::optional<double> ratio) {
  if (!flops && !ratio) {
    flops = m.maxFlops;
    ratio = m.maxFlopsRatio;
  }
  if (flops)
    return *flops;
  if (!ratio)
    return Error{path + ": no budget: give --max-flops-ratio or --max-flops, "
                        "or \"budget\" in the file"};
  return budgetFromRatio(m.layers, *ratio);
}

} // namespace einstruct
