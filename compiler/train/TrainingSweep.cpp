// Training sweep configs: read, checked before any row runs, expanded into
// rows (the rows themselves run in TrainingRun.cpp).
#include "TrainingSweep.h"
#include "compiler/frontend/JsonFile.h"
#include "search/Named.h"
#include "search/Search.h"

#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

namespace einstruct {

using nlohmann::json;

namespace {

Error at(const std::string &where, const std::string &msg) {
  return Error{fmt::format("{}: {}", where, msg)};
}

// Checks `obj`'s keys against `known` (listed in the error).
std::optional<Error> onlyKnown(const json &obj, const std::string &where,
                               const std::vector<std::string> &known) {
  for (auto &[k, v] : obj.items())
    if (std::find(known.begin(), known.end(), k) == known.end())
      return at(where + "." + k,
                fmt::format("unknown field (known: {})", fmt::join(known, ", ")));
  return std::nullopt;
}

Result<int64_t> positive(const json &v, const std::string &where,
                         int64_t most = int64_t(1) << 40) {
  if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > most)
    return at(where, fmt::format("must be a whole number in [1, {}]", most));
  return v.get<int64_t>();
}

// The optional whole-number fields of `obj` in [1, most], each into its
// target.
struct CountField {
  const char *key;
  int64_t *target;
  int64_t most;
};
std::optional<Error> readCounts(const json &obj, const std::string &where,
                                std::initializer_list<CountField> fields) {
  for (const CountField &f : fields)
    if (obj.contains(f.key)) {
      auto n = positive(obj[f.key], where + "." + f.key, f.most);
      if (!n)
        return Error{n.error()};
      *f.target = *n;
    }
  return std::nullopt;
}

Result<double> number(const json &v, const std::string &where, double lo,
                      double hi, bool openLow) {
  if (!v.is_number() || !std::isfinite(v.get<double>()) ||
      (openLow ? v.get<double>() <= lo : v.get<double>() < lo) ||
      v.get<double>() > hi)
    return at(where, fmt::format("must be a number in {}{}, {}]",
                                 openLow ? "(" : "[", lo, hi));
  return v.get<double>();
}

// The (ω, ψ, ν) class of an analysis, to two decimals.
std::string classOf(const Analysis &a) {
  if (!a.metrics)
    return "none";
  return fmt::format("{:.2f}|{:.2f}|{:.2f}", a.metrics->omega, a.metrics->psi,
                     a.metrics->nu);
}

Result<TrainStructure> structureEntry(const json &v, const std::string &where,
                                      const std::string &sizing) {
  TrainStructure s;
  s.spec.sizing = sizing;
  auto set = [&](const std::string &text) {
    s.text = text;
    if (!text.empty() && text[0] == '(')
      s.spec.theta = text;
    else
      s.spec.structure = text;
  };
  if (v.is_string()) {
    set(v.get<std::string>());
    s.label = s.text;
  } else if (v.is_object()) {
    if (auto e = onlyKnown(v, where, {"label", "theta", "structure", "sizing"}))
      return *e;
    int forms = v.contains("theta") + v.contains("structure");
    if (forms != 1)
      return at(where, "give exactly one of theta, structure");
    const char *k = v.contains("theta") ? "theta" : "structure";
    if (!v[k].is_string())
      return at(where + "." + k, "must be a string");
    set(v[k].get<std::string>());
    if (v.contains("theta") && s.text.rfind("(", 0) != 0)
      return at(where + ".theta", "θ text starts with '('");
    if (v.contains("sizing")) {
      if (!v["sizing"].is_string() ||
          (v["sizing"] != "round" && v["sizing"] != "exact"))
        return at(where + ".sizing", "must be \"round\" or \"exact\"");
      s.spec.sizing = v["sizing"].get<std::string>();
    }
    s.label = s.text;
    if (v.contains("label")) {
      if (!v["label"].is_string() || v["label"].get<std::string>().empty())
        return at(where + ".label", "must be a non-empty string");
      s.label = v["label"].get<std::string>();
    }
  } else {
    return at(where, "must be a structure (θ text or a named structure) or "
                     "{\"label\", \"theta\"|\"structure\", \"sizing\"}");
  }
  return s;
}

// "search": per budget, the enumerator's best structures of each class at
// the smallest width's block shape (both of its linears within the budget),
// taken across widths by their θ.
Result<std::vector<TrainStructure>> searchStructures(const json &v,
                                                     const std::string &where,
                                                     int64_t width,
                                                     int64_t expansion) {
  if (!v.is_object())
    return at(where, "must be an object");
  if (auto e = onlyKnown(v, where, {"budgets", "per_class", "max_classes",
                                    "grid", "include_dense"}))
    return *e;
  if (!v.contains("budgets") || !v["budgets"].is_array() ||
      v["budgets"].empty())
    return at(where + ".budgets", "must be a non-empty array of budgets");
  int64_t perClass = 1, maxClasses = 4;
  SearchSpace space;
  space.dIn = width;
  space.dOut = expansion * width;
  space.grid = 4;
  bool dense = true;
  if (v.contains("per_class")) {
    auto n = positive(v["per_class"], where + ".per_class", 10);
    if (!n)
      return Error{n.error()};
    perClass = *n;
  }
  if (v.contains("max_classes")) {
    auto n = positive(v["max_classes"], where + ".max_classes", 50);
    if (!n)
      return Error{n.error()};
    maxClasses = *n;
  }
  if (v.contains("grid")) {
    auto n = positive(v["grid"], where + ".grid", 48);
    if (!n)
      return Error{n.error()};
    space.grid = int(*n);
  }
  if (v.contains("include_dense")) {
    if (!v["include_dense"].is_boolean())
      return at(where + ".include_dense", "must be true or false");
    dense = v["include_dense"].get<bool>();
  }
  auto all = enumerate(space);
  if (!all)
    return at(where, all.error());
  std::vector<TrainStructure> out;
  std::set<std::string> seen;
  if (dense) {
    TrainStructure d;
    d.label = d.text = "dense";
    d.spec.structure = "dense";
    out.push_back(d);
    seen.insert("dense");
  }
  auto objective = *parseObjective("paper", "h100-sxm", 16384);
  for (size_t b = 0; b < v["budgets"].size(); ++b) {
    std::string w = fmt::format("{}.budgets[{}]", where, b);
    auto budget = readSweepBudget(v["budgets"][b], w);
    if (!budget)
      return Error{budget.error()};
    auto ranked = rank(*all, budget->constraints, objective);
    std::map<std::string, int64_t> taken;
    for (const auto &c : ranked) {
      if (!c.analysis.theta || c.analysis.name == "dense")
        continue;
      std::string cls = classOf(c.analysis);
      if (!taken.count(cls) && int64_t(taken.size()) >= maxClasses)
        continue;
      if (taken[cls] >= perClass)
        continue;
      std::string theta = c.analysis.theta->str();
      if (seen.count(theta))
        continue;
      // The block's second linear (expansion·w → w) takes the same θ: it
      // must meet the budget too (its family may read differently).
      Constraints back = budget->constraints;
      back.families.clear();
      auto l2 = layerFromTheta(*c.analysis.theta, space.dOut, space.dIn,
                               Sizing::Exact);
      auto a2 = l2 ? analyze(*l2) : Result<Analysis>(Error{l2.error()});
      if (!a2)
        continue;
      Candidate second;
      second.layer = *l2;
      second.analysis = *a2;
      if (!violation(second, back, space.dOut, space.dIn).empty())
        continue;
      seen.insert(theta);
      ++taken[cls];
      TrainStructure s;
      s.text = theta;
      s.spec.theta = theta;
      s.spec.sizing = "exact"; // the enumerator's sizes are exact ones
      s.label = fmt::format("{} {} ({})", c.analysis.name, theta,
                            budget->label);
      out.push_back(s);
    }
    if (taken.empty())
      return at(w, fmt::format("no structure of the {}×{} block layer fits "
                               "this budget",
                               space.dIn, space.dOut));
  }
  return out;
}

} // namespace

bool isTrainingSweep(const std::string &text) {
  json j = jsonTooDeep(text) ? json(json::value_t::discarded)
                             : json::parse(text, nullptr, false);
  return j.is_object() && j.contains("train");
}

Result<Layer> trainLayer(const TrainStructure &s, int64_t dIn, int64_t dOut) {
  SpecArgs a = s.spec;
  a.dIn = dIn;
  a.dOut = dOut;
  auto l = layerFromArgs(a);
  if (!l)
    return l;
  if (l->bias)
    return Error{"a trained structure takes the model's bias; leave "
                 "bias out of it"};
  return l;
}

Result<TrainingSweep> readTrainingSweep(const std::string &text,
                                        const std::string &source) {
  auto parsed = parseJson(text, source);
  if (!parsed)
    return Error{parsed.error()};
  const json &doc = *parsed;
  if (!doc.is_object())
    return at(source, "a sweep config must be a JSON object");
  if (auto e = onlyKnown(doc, source, {"train"}))
    return *e;
  if (!doc.contains("train"))
    return at(source + ".train", "missing");
  const json &t = doc["train"];
  const std::string W = source + ".train";
  if (!t.is_object())
    return at(W, "must be an object");
  if (auto e = onlyKnown(t, W, {"task", "model", "structures", "optimizer",
                               "steps", "batch", "test_rows", "seeds",
                               "log_every", "checkpoint_every", "threads",
                               "aux_weight", "sizing"}))
    return *e;
  TrainingSweep s;
  s.source = source;
  for (const char *k : {"task", "model", "structures", "optimizer"})
    if (!t.contains(k))
      return at(W + "." + k, "missing");
  // Task.
  {
    const json &task = t["task"];
    std::string w = W + ".task";
    if (!task.is_object() || task.size() != 1 ||
        !(task.contains("teacher") || task.contains("data")))
      return at(w, "must be {\"teacher\": {...}} or {\"data\": {...}}");
    if (task.contains("teacher")) {
      const json &v = task["teacher"];
      w += ".teacher";
      if (!v.is_object())
        return at(w, "must be an object");
      if (auto e = onlyKnown(v, w, {"input_dim", "output_dim", "width",
                                    "depth", "seed"}))
        return *e;
      if (auto e = readCounts(v, w,
                              {{"input_dim", &s.teacherSpec.inputDim, 1 << 16},
                               {"output_dim", &s.teacherSpec.outputDim, 1 << 16},
                               {"width", &s.teacherSpec.width, 1 << 16},
                               {"depth", &s.teacherSpec.depth, 64}}))
        return *e;
      if (v.contains("seed")) {
        if (!v["seed"].is_number_unsigned())
          return at(w + ".seed", "must be a whole number >= 0");
        s.teacherSpec.seed = v["seed"].get<uint64_t>();
      }
    } else {
      s.teacher = false;
      const json &v = task["data"];
      w += ".data";
      if (!v.is_object())
        return at(w, "must be an object");
      if (auto e = onlyKnown(v, w, {"x", "y", "classification",
                                    "test_fraction"}))
        return *e;
      std::string dir = source.find('/') == std::string::npos
                            ? ""
                            : source.substr(0, source.rfind('/') + 1);
      for (const char *k : {"x", "y"}) {
        if (!v.contains(k) || !v[k].is_string() ||
            v[k].get<std::string>().empty())
          return at(w + "." + k, "must be the path of a .npy file");
        std::string p = v[k].get<std::string>();
        (k == std::string("x") ? s.data.x : s.data.y) =
            p[0] == '/' ? p : dir + p;
      }
      if (v.contains("classification")) {
        if (!v["classification"].is_boolean())
          return at(w + ".classification", "must be true or false");
        s.data.classification = v["classification"].get<bool>();
      }
      if (v.contains("test_fraction")) {
        auto f = number(v["test_fraction"], w + ".test_fraction", 0, 0.9,
                        false);
        if (!f)
          return Error{f.error()};
        s.data.testFraction = *f;
      }
    }
  }
  // Model.
  {
    const json &m = t["model"];
    std::string w = W + ".model";
    if (!m.is_object())
      return at(w, "must be an object");
    if (auto e = onlyKnown(m, w, {"widths", "depth", "expansion",
                                  "base_width", "bias", "structured"}))
      return *e;
    if (!m.contains("widths") || !m["widths"].is_array() ||
        m["widths"].empty())
      return at(w + ".widths", "must be a non-empty array of widths");
    for (size_t i = 0; i < m["widths"].size(); ++i) {
      auto n = positive(m["widths"][i], fmt::format("{}.widths[{}]", w, i),
                        1 << 16);
      if (!n)
        return Error{n.error()};
      if (std::count(s.widths.begin(), s.widths.end(), *n))
        return at(fmt::format("{}.widths[{}]", w, i),
                  fmt::format("width {} is listed twice", *n));
      s.widths.push_back(*n);
    }
    if (auto e = readCounts(m, w,
                            {{"depth", &s.shape.depth, 64},
                             {"expansion", &s.shape.expansion, 64},
                             {"base_width", &s.shape.baseWidth, 1 << 16}}))
      return *e;
    if (m.contains("bias")) {
      if (!m["bias"].is_boolean())
        return at(w + ".bias", "must be true or false");
      s.shape.bias = m["bias"].get<bool>();
    }
    if (m.contains("structured")) {
      if (m["structured"] != "intermediate" &&
          m["structured"] != "all_but_last")
        return at(w + ".structured",
                  "must be \"intermediate\" (the block linears) or "
                  "\"all_but_last\" (the input linear too)");
      s.shape.structuredInput = m["structured"] == "all_but_last";
    }
  }
  std::string sizing = "round";
  if (t.contains("sizing")) {
    if (t["sizing"] != "round" && t["sizing"] != "exact")
      return at(W + ".sizing", "must be \"round\" or \"exact\"");
    sizing = t["sizing"].get<std::string>();
  }
  // Structures.
  {
    const json &v = t["structures"];
    std::string w = W + ".structures";
    if (v.is_object() && v.contains("search")) {
      if (v.size() != 1)
        return at(w, "holds only \"search\"");
      auto found = searchStructures(
          v["search"], w + ".search",
          *std::min_element(s.widths.begin(), s.widths.end()),
          s.shape.expansion);
      if (!found)
        return Error{found.error()};
      s.structures = std::move(*found);
    } else if (v.is_array() && !v.empty()) {
      for (size_t i = 0; i < v.size(); ++i) {
        auto e = structureEntry(v[i], fmt::format("{}[{}]", w, i), sizing);
        if (!e)
          return Error{e.error()};
        for (const auto &o : s.structures)
          if (o.label == e->label)
            return at(fmt::format("{}[{}]", w, i),
                      fmt::format("label '{}' is used twice", e->label));
        s.structures.push_back(std::move(*e));
      }
    } else {
      return at(w, "must be a non-empty array of structures or "
                   "{\"search\": {...}}");
    }
  }
  // Optimiser.
  {
    const json &o = t["optimizer"];
    std::string w = W + ".optimizer";
    if (!o.is_object())
      return at(w, "must be an object");
    if (auto e = onlyKnown(o, w, {"lr", "weight_decay", "betas", "eps",
                                  "schedule", "warmup"}))
      return *e;
    if (!o.contains("lr"))
      return at(w + ".lr", "missing (a base learning rate or a grid of them)");
    json lrs = o["lr"].is_array() ? o["lr"] : json::array({o["lr"]});
    if (lrs.empty())
      return at(w + ".lr", "is empty");
    for (size_t i = 0; i < lrs.size(); ++i) {
      auto lr = number(lrs[i],
                       o["lr"].is_array() ? fmt::format("{}.lr[{}]", w, i)
                                          : w + ".lr",
                       0, 10, true);
      if (!lr)
        return Error{lr.error()};
      s.lrs.push_back(*lr);
    }
    if (o.contains("weight_decay")) {
      auto d = number(o["weight_decay"], w + ".weight_decay", 0, 10, false);
      if (!d)
        return Error{d.error()};
      s.adam.weightDecay = *d;
    }
    if (o.contains("betas")) {
      const json &b = o["betas"];
      if (!b.is_array() || b.size() != 2)
        return at(w + ".betas", "must be [beta1, beta2]");
      for (int i = 0; i < 2; ++i) {
        auto x = number(b[size_t(i)], fmt::format("{}.betas[{}]", w, i), 0,
                        0.99999, false);
        if (!x)
          return Error{x.error()};
        (i ? s.adam.beta2 : s.adam.beta1) = *x;
      }
    }
    if (o.contains("eps")) {
      auto x = number(o["eps"], w + ".eps", 0, 1, true);
      if (!x)
        return Error{x.error()};
      s.adam.eps = *x;
    }
    if (o.contains("schedule")) {
      if (o["schedule"] != "cosine" && o["schedule"] != "constant")
        return at(w + ".schedule", "must be \"cosine\" or \"constant\"");
      s.cosine = o["schedule"] == "cosine";
    }
    if (o.contains("warmup")) {
      if (!o["warmup"].is_number_integer() || o["warmup"].get<int64_t>() < 0)
        return at(w + ".warmup", "must be a whole number of steps >= 0");
      s.warmup = o["warmup"].get<int64_t>();
    }
  }
  // Run lengths.
  if (auto e = readCounts(t, W,
                          {{"steps", &s.steps, int64_t(1) << 32},
                           {"batch", &s.batch, 1 << 20},
                           {"test_rows", &s.testRows, 1 << 20},
                           {"log_every", &s.logEvery, 1 << 20}}))
    return *e;
  if (s.logEvery > s.steps)
    return at(W + ".log_every",
              fmt::format("{} is more than the {} steps", s.logEvery, s.steps));
  if (s.warmup >= s.steps)
    return at(W + ".optimizer.warmup",
              fmt::format("{} steps of warm-up leave none of the {} steps",
                          s.warmup, s.steps));
  if (t.contains("checkpoint_every")) {
    const json &c = t["checkpoint_every"];
    if (!c.is_number_integer() || c.get<int64_t>() < 0 ||
        c.get<int64_t>() % s.logEvery != 0)
      return at(W + ".checkpoint_every",
                fmt::format("must be 0 (none) or a multiple of log_every "
                            "({}) steps",
                            s.logEvery));
    s.checkpointEvery = c.get<int64_t>();
  }
  if (t.contains("seeds")) {
    const json &v = t["seeds"];
    if (!v.is_array() || v.empty())
      return at(W + ".seeds", "must be a non-empty array of whole numbers");
    s.seeds.clear();
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_number_unsigned())
        return at(fmt::format("{}.seeds[{}]", W, i),
                  "must be a whole number >= 0");
      s.seeds.push_back(v[i].get<uint64_t>());
    }
  }
  if (t.contains("threads")) {
    if (!t["threads"].is_number_integer() || t["threads"].get<int64_t>() < 0 ||
        t["threads"].get<int64_t>() > 1024)
      return at(W + ".threads", "must be a whole number in [0, 1024]");
    s.threads = t["threads"].get<int>();
  }
  if (t.contains("aux_weight")) {
    auto a = number(t["aux_weight"], W + ".aux_weight", 0, 10, false);
    if (!a)
      return Error{a.error()};
    s.auxWeight = *a;
  }
  double rows = double(s.structures.size()) * double(s.widths.size()) *
                double(s.lrs.size()) * double(s.seeds.size());
  if (rows > 1e6)
    return at(W, fmt::format("{:.0f} rows (structures × widths × lrs × seeds) "
                             "exceed the 1,000,000 a config may hold; split it",
                             rows));
  // The task's shapes (and files) before any row.
  int64_t dIn = s.teacherSpec.inputDim, dOut = s.teacherSpec.outputDim;
  if (!s.teacher) {
    auto task = dataTask(s.data);
    if (!task)
      return at(W + ".task.data", task.error());
    dIn = (*task)->inputDim();
    dOut = (*task)->outputDim();
  }
  s.shape.dIn = dIn;
  s.shape.dOut = dOut;
  // Every structure at every width builds.
  for (size_t i = 0; i < s.structures.size(); ++i)
    for (int64_t width : s.widths) {
      std::vector<std::pair<int64_t, int64_t>> shapes = {
          {width, s.shape.expansion * width},
          {s.shape.expansion * width, width}};
      if (s.shape.structuredInput)
        shapes.push_back({dIn, width});
      for (auto [in, out] : shapes) {
        auto l = trainLayer(s.structures[i], in, out);
        if (!l)
          return at(fmt::format("{}.structures[{}] ('{}')", W, i,
                                s.structures[i].label),
                    fmt::format("does not fit width {} (its {}×{} layer): {}",
                                width, in, out, l.error()));
        if (auto a = analyze(*l); !a)
          return at(fmt::format("{}.structures[{}] ('{}')", W, i,
                                s.structures[i].label),
                    fmt::format("width {} ({}×{}): {}", width, in, out,
                                a.error()));
      }
    }
  return s;
}

std::vector<TrainingRow> trainingRows(const TrainingSweep &s) {
  std::vector<TrainingRow> rows;
  for (size_t st = 0; st < s.structures.size(); ++st)
    for (size_t w = 0; w < s.widths.size(); ++w)
      for (size_t l = 0; l < s.lrs.size(); ++l)
        for (size_t sd = 0; sd < s.seeds.size(); ++sd)
          rows.push_back({rows.size(),
                          fmt::format("{}|w={}|lr={}|seed={}",
                                      s.structures[st].label, s.widths[w],
                                      s.lrs[l], s.seeds[sd]),
                          st, w, l, sd});
  return rows;
}

} // namespace einstruct
