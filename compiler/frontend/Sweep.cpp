#include "Sweep.h"
#include "Report.h"
#include "search/Named.h"

#include <fmt/format.h>
#include "JsonFile.h"
#include <nlohmann/json.hpp>
#include <set>
#include <unistd.h>

namespace einstruct {

using nlohmann::json;

namespace {

Error at(const std::string &where, const std::string &msg) {
  return Error{fmt::format("{}: {}", where, msg)};
}

Result<int64_t> dimension(const json &v, const std::string &where) {
  if (!v.is_number_unsigned() || v.get<uint64_t>() < 2 ||
      v.get<uint64_t>() > (uint64_t(1) << 24))
    return at(where, "must be an integer in [2, 2^24]");
  return v.get<int64_t>();
}

} // namespace

Result<SweepBudget> readSweepBudget(const json &b, const std::string &where) {
  if (!b.is_object())
    return at(where, "a budget must be an object");
  SweepBudget out;
  json echo = json::object();
  for (auto &[k, v] : b.items()) {
    std::string w = where + "." + k;
    if (k == "label") {
      if (!v.is_string())
        return at(w, "must be a string");
      out.label = v.get<std::string>();
      continue;
    }
    echo[k] = v;
    if (k == "max_flops" || k == "max_params") {
      if (!v.is_number_unsigned() || v.get<uint64_t>() < 1 ||
          v.get<uint64_t>() > uint64_t(INT64_MAX))
        return at(w, "must be a positive integer");
      (k == "max_flops" ? out.constraints.maxFlops
                        : out.constraints.maxParams) = v.get<int64_t>();
    } else if (k == "max_flops_ratio" || k == "min_psi" || k == "max_omega") {
      if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 2)
        return at(w, "must be a number in [0, 2]");
      double x = v.get<double>();
      (k == "max_flops_ratio" ? out.constraints.maxFlopsRatio
       : k == "min_psi"       ? out.constraints.minPsi
                              : out.constraints.maxOmega) = x;
    } else if (k == "families") {
      if (!v.is_array())
        return at(w, "must be an array of family names");
      for (auto &f : v) {
        if (!f.is_string())
          return at(w, "must be an array of family names");
        auto known = namedFamilies();
        known.push_back("generic");
        if (std::find(known.begin(), known.end(), f.get<std::string>()) ==
            known.end())
          return at(w, fmt::format("unknown family '{}'", f.get<std::string>()));
        out.constraints.families.push_back(f.get<std::string>());
      }
    } else {
      return at(w, "unknown field (known: label, max_flops, max_flops_ratio, "
                   "max_params, min_psi, max_omega, families)");
    }
  }
  out.json = echo.dump();
  if (out.label.empty())
    out.label = out.json;
  return out;
}

Result<SweepConfig> readSweepJson(const std::string &text,
                                  const std::string &source) {
  auto parsed = parseJson(text, source);
  if (!parsed)
    return Error{parsed.error()};
  json doc = std::move(*parsed);
  if (!doc.is_object())
    return at(source, "a sweep config must be a JSON object");
  static const std::set<std::string> known = {
      "shapes", "budgets", "objectives", "device", "tokens",
      "grid",   "include_rounded", "moe", "top"};
  for (auto &[k, v] : doc.items())
    if (!known.count(k))
      return at(source + "." + k,
                "unknown field (known: shapes, budgets, objectives, device, "
                "tokens, grid, include_rounded, moe, top)");
  SweepConfig c;
  // Shapes: [[d_in, d_out], ...] or {"d_in": [...], "d_out": [...]} (crossed).
  if (!doc.contains("shapes"))
    return at(source + ".shapes", "missing");
  const json &s = doc["shapes"];
  if (s.is_array()) {
    for (size_t i = 0; i < s.size(); ++i) {
      std::string w = fmt::format("{}.shapes[{}]", source, i);
      if (!s[i].is_array() || s[i].size() != 2)
        return at(w, "must be [d_in, d_out]");
      auto a = dimension(s[i][0], w + "[0]");
      auto b = dimension(s[i][1], w + "[1]");
      if (!a)
        return Error{a.error()};
      if (!b)
        return Error{b.error()};
      c.shapes.push_back({*a, *b});
    }
  } else if (s.is_object() && s.contains("d_in") && s.contains("d_out") &&
             s["d_in"].is_array() && s["d_out"].is_array() && s.size() == 2) {
    if (s["d_in"].size() * s["d_out"].size() > kMaxSweepRows)
      return at(source + ".shapes",
                fmt::format("{} × {} shapes exceed the {} rows a config may "
                            "hold; split it into several configs",
                            s["d_in"].size(), s["d_out"].size(),
                            kMaxSweepRows));
    for (size_t i = 0; i < s["d_in"].size(); ++i)
      for (size_t j = 0; j < s["d_out"].size(); ++j) {
        auto a = dimension(s["d_in"][i], fmt::format("{}.shapes.d_in[{}]",
                                                     source, i));
        auto b = dimension(s["d_out"][j], fmt::format("{}.shapes.d_out[{}]",
                                                      source, j));
        if (!a)
          return Error{a.error()};
        if (!b)
          return Error{b.error()};
        c.shapes.push_back({*a, *b});
      }
  } else {
    return at(source + ".shapes", "must be [[d_in, d_out], ...] or "
                                  "{\"d_in\": [...], \"d_out\": [...]}");
  }
  if (c.shapes.empty())
    return at(source + ".shapes", "is empty");
  if (doc.contains("budgets")) {
    if (!doc["budgets"].is_array() || doc["budgets"].empty())
      return at(source + ".budgets", "must be a non-empty array of objects");
    for (size_t i = 0; i < doc["budgets"].size(); ++i) {
      auto b = readSweepBudget(doc["budgets"][i],
                      fmt::format("{}.budgets[{}]", source, i));
      if (!b)
        return Error{b.error()};
      c.budgets.push_back(*b);
    }
  } else {
    c.budgets.push_back(*readSweepBudget(json::object(), source));
  }
  if (doc.contains("device")) {
    if (!doc["device"].is_string())
      return at(source + ".device", "must be a string");
    c.device = doc["device"].get<std::string>();
  }
  if (doc.contains("tokens")) {
    if (!doc["tokens"].is_number_unsigned() || doc["tokens"].get<uint64_t>() < 1)
      return at(source + ".tokens", "must be a positive integer");
    c.tokens = doc["tokens"].get<int64_t>();
  }
  if (doc.contains("objectives")) {
    if (!doc["objectives"].is_array() || doc["objectives"].empty())
      return at(source + ".objectives", "must be a non-empty array of names");
    for (size_t i = 0; i < doc["objectives"].size(); ++i) {
      const json &o = doc["objectives"][i];
      std::string w = fmt::format("{}.objectives[{}]", source, i);
      if (!o.is_string())
        return at(w, "must be a string");
      auto parsed = parseObjective(o.get<std::string>(), c.device, c.tokens);
      if (!parsed)
        return at(w, parsed.error());
      c.objectives.push_back(o.get<std::string>());
    }
  } else {
    c.objectives.push_back("paper");
  }
  if (!findDevice(c.device))
    return at(source + ".device", findDevice(c.device).error());
  if (doc.contains("grid")) {
    if (!doc["grid"].is_number_unsigned() || doc["grid"].get<uint64_t>() < 1 ||
        doc["grid"].get<uint64_t>() > 48)
      return at(source + ".grid", "must be an integer in [1, 48]");
    c.space.grid = doc["grid"].get<int>();
  }
  if (doc.contains("include_rounded")) {
    if (!doc["include_rounded"].is_boolean())
      return at(source + ".include_rounded", "must be true or false");
    c.space.includeRounded = doc["include_rounded"].get<bool>();
  }
  if (doc.contains("moe")) {
    const json &m = doc["moe"];
    if (!m.is_array())
      return at(source + ".moe", "must be [[experts, top_k], ...]");
    for (size_t i = 0; i < m.size(); ++i) {
      std::string w = fmt::format("{}.moe[{}]", source, i);
      if (!m[i].is_array() || m[i].size() != 2 ||
          !m[i][0].is_number_unsigned() || !m[i][1].is_number_unsigned())
        return at(w, "must be [experts, top_k]");
      int64_t e = m[i][0].get<int64_t>(), k = m[i][1].get<int64_t>();
      if (e < 2 || e > 4096 || k < 1 || k > e)
        return at(w, "needs 1 <= top_k <= experts <= 4096, experts >= 2");
      c.space.moe.push_back({e, k});
    }
  }
  if (doc.contains("top")) {
    if (!doc["top"].is_number_unsigned() || doc["top"].get<uint64_t>() < 1 ||
        doc["top"].get<uint64_t>() > 1000)
      return at(source + ".top", "must be an integer in [1, 1000]");
    c.top = doc["top"].get<size_t>();
  }
  size_t rows = 0;
  if (__builtin_mul_overflow(c.shapes.size(), c.budgets.size(), &rows) ||
      __builtin_mul_overflow(rows, c.objectives.size(), &rows) ||
      rows > kMaxSweepRows)
    return at(source, fmt::format("{} shapes × {} budgets × {} objectives "
                                  "exceed the {} rows a config may hold; "
                                  "split it into several configs",
                                  c.shapes.size(), c.budgets.size(),
                                  c.objectives.size(), kMaxSweepRows));
  std::set<std::string> keys;
  for (auto &r : sweepRows(c))
    if (!keys.insert(r.key).second)
      return at(source, fmt::format("row '{}' appears twice; shapes, budgets "
                                    "and objectives must be distinct",
                                    r.key));
  return c;
}

Result<SweepConfig> readSweepConfig(const std::string &path) {
  auto text = readTextFile(path);
  if (!text)
    return Error{text.error()};
  return readSweepJson(*text, path);
}

std::vector<SweepRow> sweepRows(const SweepConfig &c) {
  std::vector<SweepRow> rows;
  for (size_t s = 0; s < c.shapes.size(); ++s)
    for (size_t b = 0; b < c.budgets.size(); ++b)
      for (size_t o = 0; o < c.objectives.size(); ++o)
        rows.push_back({rows.size(),
                        fmt::format("{}x{}|{}|{}", c.shapes[s].first,
                                    c.shapes[s].second, c.budgets[b].label,
                                    c.objectives[o]),
                        s, b, o});
  return rows;
}

Result<Shard> shardFromEnvironment(
    const std::string &flag, size_t shards,
    const std::map<std::string, std::string> &env) {
  auto number = [](const std::string &s, const std::string &what)
      -> Result<size_t> {
    if (s.empty() || s.size() > 9 ||
        s.find_first_not_of("0123456789") != std::string::npos)
      return Error{fmt::format("{} = '{}' is not a non-negative integer", what,
                               s)};
    return size_t(std::stoul(s));
  };
  auto get = [&](const char *k) {
    auto it = env.find(k);
    return it == env.end() ? std::string() : it->second;
  };
  Shard sh;
  if (!flag.empty()) {
    size_t slash = flag.find('/');
    if (slash == std::string::npos)
      return Error{fmt::format("--shard '{}' must be I/N", flag)};
    auto i = number(flag.substr(0, slash), "--shard index");
    auto n = number(flag.substr(slash + 1), "--shard count");
    if (!i)
      return Error{i.error()};
    if (!n)
      return Error{n.error()};
    sh = {*i, *n};
  } else if (!get("SLURM_ARRAY_TASK_ID").empty()) {
    auto id = number(get("SLURM_ARRAY_TASK_ID"), "SLURM_ARRAY_TASK_ID");
    auto n = number(get("SLURM_ARRAY_TASK_COUNT"), "SLURM_ARRAY_TASK_COUNT");
    std::string minText = get("SLURM_ARRAY_TASK_MIN");
    auto lo = number(minText.empty() ? "0" : minText, "SLURM_ARRAY_TASK_MIN");
    if (!id)
      return Error{id.error()};
    if (!n)
      return Error{n.error()};
    if (!lo)
      return Error{lo.error()};
    if (*id < *lo)
      return Error{"SLURM_ARRAY_TASK_ID is below SLURM_ARRAY_TASK_MIN"};
    sh = {*id - *lo, *n};
  } else if (!get("JOB_COMPLETION_INDEX").empty()) {
    auto id = number(get("JOB_COMPLETION_INDEX"), "JOB_COMPLETION_INDEX");
    if (!id)
      return Error{id.error()};
    size_t n = shards;
    if (!n && !get("EINSTRUCT_SHARDS").empty()) {
      auto e = number(get("EINSTRUCT_SHARDS"), "EINSTRUCT_SHARDS");
      if (!e)
        return Error{e.error()};
      n = *e;
    }
    if (!n)
      return Error{"JOB_COMPLETION_INDEX is set but the shard count is not: "
                   "pass --shards N (the Job's completions) or set "
                   "EINSTRUCT_SHARDS"};
    sh = {*id, n};
  }
  if (sh.count < 1 || sh.index >= sh.count)
    return Error{fmt::format("shard {}/{}: the index must be below the count "
                             "and the count at least 1",
                             sh.index, sh.count)};
  return sh;
}

namespace {

// Reads the keys of complete rows already in `path`, cutting a torn last line.
Result<std::set<std::string>> finishedRows(const std::string &path,
                                           const std::set<std::string> &known) {
  std::set<std::string> done;
  if (access(path.c_str(), F_OK) != 0)
    return done; // a fresh sweep
  auto read = readTextFile(path);
  if (!read)
    return Error{read.error()};
  const std::string &text = *read;
  size_t complete = text.rfind('\n');
  complete = complete == std::string::npos ? 0 : complete + 1;
  size_t lineNo = 0;
  for (size_t pos = 0; pos < complete;) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl - pos);
    ++lineNo;
    pos = nl + 1;
    json j = jsonTooDeep(line) ? json(json::value_t::discarded)
                               : json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("key") ||
        !j["key"].is_string())
      return Error{fmt::format("{}:{}: not a sweep result line; refusing to "
                               "append to it",
                               path, lineNo)};
    std::string key = j["key"].get<std::string>();
    if (!known.count(key))
      return Error{fmt::format("{}:{}: row '{}' is not in this sweep's "
                               "config; write to another file",
                               path, lineNo, key)};
    done.insert(key);
  }
  if (complete < text.size() && truncate(path.c_str(), off_t(complete)) != 0)
    return Error{fmt::format("{}: cannot cut the torn last line", path)};
  return done;
}

json frontJson(const Candidate &c) {
  const Analysis &a = c.analysis;
  json j = {{"name", a.name},
            {"params", a.params},
            {"flops", a.flops},
            {"omega", a.metrics ? json(a.metrics->omega) : json(nullptr)},
            {"psi", a.metrics ? json(a.metrics->psi) : json(nullptr)},
            {"nu", a.metrics ? json(a.metrics->nu) : json(nullptr)},
            {"sizes", *a.classSizes}};
  if (c.layer.experts)
    j["experts"] = c.layer.experts;
  return j;
}

} // namespace

std::string sweepRowJson(const SweepConfig &c, const SweepRow &r,
                         const std::vector<Candidate> &all) {
  auto [dIn, dOut] = c.shapes[r.shape];
  auto objective =
      parseObjective(c.objectives[r.objective], c.device, c.tokens);
  auto ranked = rank(all, c.budgets[r.budget].constraints, *objective);
  json j;
  j["row"] = r.index;
  j["key"] = r.key;
  j["d_in"] = dIn;
  j["d_out"] = dOut;
  j["budget"] = json::parse(c.budgets[r.budget].json);
  j["budget_label"] = c.budgets[r.budget].label;
  j["objective"] = c.objectives[r.objective];
  j["feasible"] = ranked.size();
  j["top"] = json::array();
  for (size_t k = 0; k < ranked.size() && k < c.top; ++k)
    j["top"].push_back(candidateJson(ranked[k]));
  std::vector<const Candidate *> front;
  for (auto &cand : ranked)
    if (cand.paretoParams)
      front.push_back(&cand);
  std::sort(front.begin(), front.end(), [](auto *x, auto *y) {
    return std::pair{x->analysis.flops, -x->analysis.params} <
           std::pair{y->analysis.flops, -y->analysis.params};
  });
  j["front"] = json::array();
  for (auto *f : front)
    j["front"].push_back(frontJson(*f));
  return j.dump();
}

SweepProgress::SweepProgress(std::FILE *out, size_t rows, double totalCost)
    : out_(out), tty_(out && isatty(fileno(out))), rows_(rows),
      totalCost_(totalCost), start_(std::chrono::steady_clock::now()),
      lastDraw_(start_) {}

std::string SweepProgress::eta(double doneCost) const {
  double ran = doneCost - resumedCost_;
  double elapsed = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - start_)
                       .count();
  if (ran <= 0 || elapsed < 1)
    return "ETA --";
  double left = elapsed / ran * std::max(0.0, totalCost_ - doneCost);
  if (left >= 3600)
    return fmt::format("ETA {}h{:02}m", int(left / 3600),
                       int(left / 60) % 60);
  return fmt::format("ETA {}m{:02}s", int(left / 60), int(left) % 60);
}

void SweepProgress::startRow(const std::string &key, double cost) {
  key_ = key;
  rowCost_ = cost;
  update(0, "");
}

void SweepProgress::update(double rowFraction, const std::string &status) {
  status_ = status;
  if (!out_ || !tty_)
    return;
  auto now = std::chrono::steady_clock::now();
  if (rowFraction > 0 && now - lastDraw_ < std::chrono::milliseconds(200))
    return;
  lastDraw_ = now;
  std::fprintf(out_, "\r\033[Ksweep: %zu/%zu rows done, %zu left (%zu "
                     "resumed), %s | %s %s",
               done_, rows_, rows_ - done_, resumed_,
               eta(doneCost_ + rowFraction * rowCost_).c_str(), key_.c_str(),
               status.c_str());
  std::fflush(out_);
}

void SweepProgress::finishRow() {
  ++done_;
  doneCost_ += rowCost_;
  const std::string summary = status_;
  if (!out_)
    return;
  if (tty_) {
    update(0, summary);
  } else if (done_ == rows_ || done_ % std::max<size_t>(1, rows_ / 20) == 0) {
    std::fprintf(out_, "sweep: %zu/%zu rows (%zu resumed), %s: %s%s%s\n",
                 done_, rows_, resumed_, eta(doneCost_).c_str(), key_.c_str(),
                 summary.empty() ? "" : " ", summary.c_str());
    std::fflush(out_);
  }
}

void SweepProgress::skipRow(double cost) {
  ++done_, ++resumed_;
  doneCost_ += cost;
  resumedCost_ += cost;
}

void SweepProgress::finish() {
  if (out_ && tty_)
    std::fprintf(out_, "\n");
}

Result<SweepStats> runRows(const std::vector<std::string> &keys,
                           const std::vector<double> &cost,
                           const std::string &outPath, Shard shard,
                           std::FILE *progress, const RowRunner &run) {
  std::set<std::string> known(keys.begin(), keys.end());
  auto done = finishedRows(outPath, known);
  if (!done)
    return Error{done.error()};
  std::FILE *out = std::fopen(outPath.c_str(), "ab");
  if (!out)
    return Error{fmt::format("{}: cannot open for appending", outPath)};
  auto weight = [&](size_t i) { return cost.empty() ? 1.0 : cost[i]; };
  size_t mine = 0;
  double total = 0;
  for (size_t i = 0; i < keys.size(); ++i)
    if (i % shard.count == shard.index)
      ++mine, total += weight(i);
  SweepProgress bar(progress, mine, total);
  SweepStats st;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i % shard.count != shard.index)
      continue;
    ++st.rows;
    if (done->count(keys[i])) {
      ++st.skipped;
      bar.skipRow(weight(i));
      continue;
    }
    bar.startRow(keys[i], weight(i));
    auto line = run(i, bar);
    if (!line) {
      bar.finish();
      std::fclose(out);
      return Error{fmt::format("row '{}': {}", keys[i], line.error())};
    }
    *line += "\n";
    if (std::fwrite(line->data(), 1, line->size(), out) != line->size() ||
        std::fflush(out) != 0) {
      bar.finish();
      std::fclose(out);
      return Error{fmt::format("{}: write failed", outPath)};
    }
    ++st.written;
    bar.finishRow();
  }
  bar.finish();
  if (std::fclose(out) != 0)
    return Error{fmt::format("{}: write failed", outPath)};
  return st;
}

Result<SweepStats> runSweep(const SweepConfig &c, const std::string &outPath,
                            Shard shard, std::FILE *progress) {
  auto rows = sweepRows(c);
  std::vector<std::string> keys;
  for (auto &r : rows)
    keys.push_back(r.key);
  size_t cachedShape = SIZE_MAX;
  std::vector<Candidate> all;
  return runRows(keys, {}, outPath, shard, progress,
                 [&](size_t i, SweepProgress &) -> Result<std::string> {
                   const SweepRow &r = rows[i];
                   if (cachedShape != r.shape) {
                     SearchSpace s = c.space;
                     std::tie(s.dIn, s.dOut) = c.shapes[r.shape];
                     auto e = enumerate(s);
                     if (!e)
                       return Error{e.error()};
                     all = std::move(*e);
                     cachedShape = r.shape;
                   }
                   return sweepRowJson(c, r, all);
                 });
}

} // namespace einstruct
