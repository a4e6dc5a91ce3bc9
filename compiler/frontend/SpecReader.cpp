#include "SpecReader.h"
#include "search/Named.h"

#include <fmt/format.h>
#include "JsonFile.h"
#include <nlohmann/json.hpp>
#include <set>

namespace einstruct {

using nlohmann::json;

static Result<Sizing> sizingMode(const std::string &s) {
  if (s == "round")
    return Sizing::Round;
  if (s == "exact")
    return Sizing::Exact;
  return Error{fmt::format("sizing '{}' must be 'round' or 'exact'", s)};
}

static std::optional<Error> needDims(const SpecArgs &a, const char *form) {
  if (!a.dIn || !a.dOut)
    return Error{fmt::format("a {} spec needs d_in and d_out", form)};
  return std::nullopt;
}

Result<Layer> layerFromArgs(const SpecArgs &a) {
  int forms = bool(a.theta) + bool(a.einsum) + bool(a.structure);
  if (forms != 1)
    return Error{forms ? "give only one of theta, einsum, structure"
                       : "no structure given: use theta, einsum or structure"};
  if (a.sizes && !a.einsum)
    return Error{"sizes belong to an einsum spec"};
  if (a.theta) {
    if (auto e = needDims(a, "θ"))
      return *e;
    auto t = parseTheta(*a.theta);
    if (!t)
      return Error{t.error()};
    auto mode = sizingMode(a.sizing);
    if (!mode)
      return Error{mode.error()};
    return layerFromTheta(*t, *a.dIn, *a.dOut, *mode);
  }
  if (a.einsum) {
    auto t = parseEinsum(*a.einsum, a.sizes.value_or(""));
    if (!t)
      return Error{t.error()};
    return layerFromTerms({*t}, a.dIn, a.dOut);
  }
  if (auto e = needDims(a, "named"))
    return *e;
  auto n = parseNamed(*a.structure);
  if (!n)
    return Error{n.error()};
  return buildNamed(*n, *a.dIn, *a.dOut);
}

namespace {

// Every field error reads "<source>[i].field: message".
struct Reader {
  std::string where;

  Error fail(const std::string &field, const std::string &msg) const {
    return Error{fmt::format("{}.{}: {}", where, field, msg)};
  }

  Result<int64_t> dim(const json &j, const std::string &field) const {
    const json &v = j.at(field);
    if (!v.is_number_integer())
      return fail(field, "must be an integer");
    bool ok = v.is_number_unsigned()
                  ? v.get<uint64_t>() >= 1 && v.get<uint64_t>() <= (1ull << 40)
                  : false; // a signed integer here is negative
    if (!ok)
      return fail(field, fmt::format("{} is outside [1, 2^40]", v.dump()));
    return v.get<int64_t>();
  }

  Result<std::string> str(const json &j, const std::string &field) const {
    if (!j.at(field).is_string())
      return fail(field, "must be a string");
    return j.at(field).get<std::string>();
  }

  // "sizes": {"a": 64} or "a=64,...".
  Result<std::string> sizes(const json &j) const {
    const json &v = j.at("sizes");
    if (v.is_string())
      return v.get<std::string>();
    if (!v.is_object())
      return fail("sizes", "must be an object {\"a\": 64, ...} or a string");
    std::string s;
    for (auto &[k, n] : v.items()) {
      if (!n.is_number_integer())
        return fail("sizes." + k, "must be an integer");
      s += fmt::format("{}{}={}", s.empty() ? "" : ",", k, n.dump());
    }
    return s;
  }

  // "structure": "btt(rank=8)" or {"family": "btt", "rank": 8}.
  Result<std::string> structure(const json &j) const {
    const json &v = j.at("structure");
    if (v.is_string())
      return v.get<std::string>();
    if (!v.is_object() || !v.contains("family") || !v["family"].is_string())
      return fail("structure",
                  "must be a string like \"btt(rank=8)\" or an object with a "
                  "string \"family\"");
    std::string args;
    for (auto &[k, p] : v.items()) {
      if (k == "family")
        continue;
      if (!p.is_number_integer() && !p.is_string())
        return fail("structure." + k, "must be an integer or a string");
      args += fmt::format("{}{}={}", args.empty() ? "" : ",", k,
                          p.is_string() ? p.get<std::string>() : p.dump());
    }
    return v["family"].get<std::string>() + "(" + args + ")";
  }

  Result<std::string> theta(const json &j) const {
    const json &v = j.at("theta");
    if (v.is_string())
      return v.get<std::string>();
    if (!v.is_array())
      return fail("theta", "must be \"(α|β|γ|δ|ε|φ|ρ)\" or an array of 7 "
                           "numbers");
    std::string s = "(";
    for (size_t k = 0; k < v.size(); ++k) {
      if (!v[k].is_number())
        return fail(fmt::format("theta[{}]", k), "must be a number");
      s += (k ? "|" : "") + fmt::format("{}", v[k].get<double>());
    }
    return s + ")";
  }

  Result<Layer> layer(const json &j) const {
    if (!j.is_object())
      return Error{fmt::format("{}: a spec must be a JSON object", where)};
    static const std::set<std::string> known = {
        "label", "d_in",  "d_out",     "theta", "sizing",
        "einsum", "sizes", "structure", "terms", "bias"};
    for (auto &[k, v] : j.items())
      if (!known.count(k))
        return fail(k, "unknown field (known: label, d_in, d_out, theta, "
                       "sizing, einsum, sizes, structure, terms, bias)");
    if (j.contains("bias") && !j["bias"].is_boolean())
      return fail("bias", "must be true or false");
    SpecArgs a;
    for (const char *f : {"d_in", "d_out"})
      if (j.contains(f)) {
        auto d = dim(j, f);
        if (!d)
          return Error{d.error()};
        (std::string(f) == "d_in" ? a.dIn : a.dOut) = *d;
      }
    std::string label;
    if (j.contains("label")) {
      auto l = str(j, "label");
      if (!l)
        return Error{l.error()};
      label = *l;
    }
    Result<Layer> out = Error{""};
    if (j.contains("terms")) {
      if (j.contains("theta") || j.contains("einsum") || j.contains("structure"))
        return fail("terms", "give terms alone, not with theta, einsum or "
                             "structure");
      out = terms(j, a);
    } else {
      if (j.contains("theta")) {
        auto t = theta(j);
        if (!t)
          return Error{t.error()};
        a.theta = *t;
      }
      if (j.contains("sizing")) {
        auto s = str(j, "sizing");
        if (!s)
          return Error{s.error()};
        a.sizing = *s;
      }
      if (j.contains("einsum")) {
        auto e = str(j, "einsum");
        if (!e)
          return Error{e.error()};
        a.einsum = *e;
      }
      if (j.contains("sizes")) {
        auto s = sizes(j);
        if (!s)
          return Error{s.error()};
        a.sizes = *s;
      }
      if (j.contains("structure")) {
        auto s = structure(j);
        if (!s)
          return Error{s.error()};
        a.structure = *s;
      }
      out = layerFromArgs(a);
      if (!out) {
        const char *field = a.theta ? "theta" : a.einsum ? "einsum" : "structure";
        if (!a.theta && !a.einsum && !a.structure)
          return Error{fmt::format("{}: {}", where, out.error())};
        return fail(field, out.error());
      }
    }
    if (out && !label.empty())
      out->label = label;
    if (out)
      out->bias = j.value("bias", false);
    return out;
  }

  Result<Layer> terms(const json &j, const SpecArgs &a) const {
    const json &v = j.at("terms");
    if (!v.is_array() || v.empty())
      return fail("terms", "must be a non-empty array of {einsum, sizes}");
    std::vector<EinsumTerm> ts;
    for (size_t k = 0; k < v.size(); ++k) {
      Reader sub{fmt::format("{}.terms[{}]", where, k)};
      const json &t = v[k];
      if (!t.is_object() || !t.contains("einsum") || !t.contains("sizes"))
        return Error{fmt::format("{}: must be an object with einsum and sizes",
                                 sub.where)};
      auto e = sub.str(t, "einsum");
      auto s = e ? sub.sizes(t) : Result<std::string>(Error{e.error()});
      if (!s)
        return Error{s.error()};
      auto term = parseEinsum(*e, *s);
      if (!term)
        return sub.fail("einsum", term.error());
      ts.push_back(*term);
    }
    auto l = layerFromTerms(ts, a.dIn, a.dOut);
    if (!l)
      return fail("terms", l.error());
    return l;
  }
};

} // namespace

Result<std::vector<Layer>> readSpecJson(const std::string &text,
                                        const std::string &source) {
  auto parsed = parseJson(text, source);
  if (!parsed)
    return Error{parsed.error()};
  json doc = std::move(*parsed);
  std::vector<Layer> layers;
  try {
    if (doc.is_array()) {
      if (doc.empty())
        return Error{fmt::format("{}: the spec array is empty", source)};
      for (size_t k = 0; k < doc.size(); ++k) {
        auto l = Reader{fmt::format("{}[{}]", source, k)}.layer(doc[k]);
        if (!l)
          return Error{l.error()};
        if (l->label.empty())
          l->label = fmt::format("{}[{}]", source, k);
        layers.push_back(*l);
      }
    } else {
      auto l = Reader{source}.layer(doc);
      if (!l)
        return Error{l.error()};
      if (l->label.empty())
        l->label = source;
      layers.push_back(*l);
    }
  } catch (const json::exception &e) {
    // Defensive: every access above checks types first.
    return Error{fmt::format("{}: {}", source, e.what())};
  }
  return layers;
}

Result<std::vector<Layer>> readSpecFile(const std::string &path) {
  auto text = readTextFile(path);
  if (!text)
    return Error{text.error()};
  return readSpecJson(*text, path);
}

} // namespace einstruct
