// `einstruct search`: enumerate structures for a layer shape (or every layer
// of a model under one budget), filter, rank, mark Pareto fronts; or rank
// sequence mixers for a length under a MAC budget.
#include "Cli.h"
#include "compiler/frontend/ModelReader.h"
#include "compiler/frontend/Report.h"
#include "search/Mixer.h"
#include "search/ModelSearch.h"
#include "search/Named.h"
#include "search/Search.h"

#include <chrono>
#include <cstdio>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

namespace einstruct::cli {
namespace {

struct SearchOptions {
  std::string model;
  std::optional<int64_t> dIn, dOut;
  int grid = 12;
  bool includeRounded = false;
  std::string moe;
  std::optional<int64_t> maxFlops, maxParams;
  std::optional<double> maxFlopsRatio, minPsi, maxOmega;
  std::string families;
  std::string objective = "paper", device = "h100-sxm";
  int64_t tokens = 16384;
  size_t top = 10;
  bool json = false;
  std::string output;
  // Mixers.
  std::string mixerFamilies;
  std::optional<int64_t> seqLen, dModel;
  bool causal = false;
};

// "8:2,16:2" -> {(8,2),(16,2)}
Result<std::vector<std::pair<int64_t, int64_t>>> parseMoe(const std::string &s) {
  std::vector<std::pair<int64_t, int64_t>> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t comma = s.find(',', pos);
    std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos
                                                                : comma - pos);
    long long e = 0, k = 0;
    char tail = 0;
    if (std::sscanf(item.c_str(), "%lld:%lld%c", &e, &k, &tail) != 2 ||
        e < 2 || e > 4096 || k < 1 || k > e)
      return Error{fmt::format("--moe: '{}' must be EXPERTS:TOP_K with 1 <= "
                               "TOP_K <= EXPERTS <= 4096",
                               item)};
    out.push_back({e, k});
    if (comma == std::string::npos)
      break;
    pos = comma + 1;
  }
  return out;
}

// The search space and constraints the flags describe (shape set later).
Result<std::pair<SearchSpace, Constraints>> searchSetup(const SearchOptions &o) {
  SearchSpace space;
  space.grid = o.grid;
  space.includeRounded = o.includeRounded;
  auto moe = parseMoe(o.moe);
  if (!moe)
    return Error{moe.error()};
  space.moe = *moe;
  // Long searches (a fine grid with rounded sizes runs for tens of seconds)
  // show their progress on a terminal.
  if (::isatty(STDERR_FILENO))
    space.progress = [last = std::chrono::steady_clock::now()](
                         int64_t done, int64_t total) mutable {
      auto now = std::chrono::steady_clock::now();
      if (now - last < std::chrono::milliseconds(500) && done < total)
        return;
      last = now;
      if (done >= total)
        std::fputs("\r\033[K", stderr); // the walk ended: clear the line
      else
        std::fprintf(stderr, "\rsearching: %3d%%", int(100 * done / total));
    };
  for (auto [flag, v] : {std::pair{"--max-flops", o.maxFlops},
                         std::pair{"--max-params", o.maxParams}})
    if (v && *v < 1)
      return Error{fmt::format("{} {} must be at least 1", flag, *v)};
  Constraints k;
  k.maxFlops = o.maxFlops;
  k.maxParams = o.maxParams;
  k.maxFlopsRatio = o.maxFlopsRatio;
  k.minPsi = o.minPsi;
  k.maxOmega = o.maxOmega;
  k.families = splitList(o.families);
  auto known = namedFamilies();
  known.push_back("generic");
  for (const auto &f : k.families)
    if (std::find(known.begin(), known.end(), f) == known.end())
      return Error{fmt::format("--family: unknown family '{}'; known: {}", f,
                               fmt::join(known, ", "))};
  return std::pair{space, k};
}

int runModelSearch(const SearchOptions &o, SearchSpace space, Constraints k) {
  auto m = readModelFile(o.model);
  if (!m)
    return fail(m.error());
  // The budget is a model total: per-layer flop caps do not apply.
  auto budget = modelBudget(*m, o.model, k.maxFlops, k.maxFlopsRatio);
  if (!budget)
    return fail(budget.error());
  k.maxFlopsRatio.reset();
  k.maxFlops.reset();
  auto r = searchModel(m->layers, *budget, space, k);
  if (!r)
    return fail(r.error());
  std::string text;
  if (o.json) {
    text = modelResultJson(*r, m->name).dump() + "\n";
  } else {
    text = modelTable(*r, m->name);
  }
  return emit(text, o.output);
}

// `--mixer-family`: the families' mixers for one length, budgeted, ranked.
int runMixerSearch(const SearchOptions &o) {
  if (o.dIn || o.dOut || !o.model.empty())
    return fail("--mixer-family ranks sequence mixers: give --seq-len and "
                "--d-model, not --d-in/--d-out/--model");
  if (!o.seqLen || !o.dModel)
    return fail("--mixer-family needs --seq-len L and --d-model D");
  std::vector<std::string> families = splitList(o.mixerFamilies);
  if (families.size() == 1 && families[0] == "all")
    families = searchedMixerFamilies();
  auto all = enumerateMixers(families, *o.seqLen, *o.dModel);
  if (!all)
    return fail("--mixer-family: " + all.error());
  const size_t total = all->size();
  MixerConstraints k;
  k.maxMacs = o.maxFlops;
  k.maxMacsRatio = o.maxFlopsRatio;
  k.causal = o.causal;
  auto ranked = rankMixers(std::move(*all), k,
                           o.objective == "paper" ? "matrix-mixer"
                                                  : o.objective,
                           *o.seqLen, *o.dModel);
  if (!ranked)
    return fail("--objective: " + ranked.error());
  if (ranked->empty())
    return fail("no mixer meets the constraints; loosen the budget");
  std::vector<std::string> labels;
  std::vector<MixerAnalysis> analyses;
  for (size_t i = 0; i < ranked->size() && i < o.top; ++i) {
    labels.push_back((*ranked)[i].spec);
    analyses.push_back((*ranked)[i].analysis);
  }
  std::string text;
  if (o.json) {
    for (size_t i = 0; i < labels.size(); ++i)
      text += mixerJson(labels[i], analyses[i]).dump() + "\n";
  } else {
    text = fmt::format("{} of {} mixers meet the budget; ranked {}\n\n",
                       ranked->size(), total,
                       o.objective == "macs"
                           ? "by MACs"
                           : "data-dependent first, then any length, then "
                             "fewest MACs") +
           mixerTable(labels, analyses);
  }
  return emit(text, o.output);
}

int runSearch(const SearchOptions &o) {
  if (!o.mixerFamilies.empty())
    return runMixerSearch(o);
  auto setup = searchSetup(o);
  if (!setup)
    return fail(setup.error());
  auto [space, k] = *setup;
  if (!o.model.empty()) {
    if (o.dIn || o.dOut)
      return fail("give --model or --d-in/--d-out, not both");
    return runModelSearch(o, space, k);
  }
  if (!o.dIn || !o.dOut)
    return fail("search needs --d-in and --d-out (or --model FILE)");
  space.dIn = *o.dIn;
  space.dOut = *o.dOut;
  auto objective = parseObjective(o.objective, o.device, o.tokens);
  if (!objective)
    return fail(objective.error());
  auto all = enumerate(space);
  if (!all)
    return fail(all.error());
  auto ranked = rank(std::move(*all), k, *objective);
  if (ranked.empty())
    return fail("no structure meets the constraints; loosen a budget");
  std::string text;
  if (o.json) {
    for (size_t i = 0; i < ranked.size() && i < o.top; ++i)
      text += candidateJson(ranked[i]).dump() + "\n";
  } else {
    text = candidateTable(ranked, o.top);
  }
  return emit(text, o.output);
}

} // namespace

Command addSearchCommand(CLI::App &app) {
  auto o = std::make_shared<SearchOptions>();
  auto *search = app.add_subcommand(
      "search", "Enumerate structures for a layer shape, filter by budget, "
                "rank by an objective, mark Pareto fronts");
  search->add_option("--d-in", o->dIn, "input dimension")
      ->check(kInt64);
  search->add_option("--d-out", o->dOut, "output dimension")
      ->check(kInt64);
  search->add_option("--model", o->model,
                     "model JSON: a structure per layer under a total budget");
  search->add_option("--grid", o->grid, "θ step is 1/GRID")
      ->check(kInt64)
      ->capture_default_str();
  search->add_flag("--include-rounded", o->includeRounded,
                   "also the reference's rounded (padded) sizes");
  search->add_option("--moe", o->moe,
                     "BTT-MoE options EXPERTS:TOP_K,..., e.g. 8:2,16:2");
  search->add_option("--max-flops", o->maxFlops,
                     "max multiply-adds per input vector")
      ->check(kInt64);
  search->add_option("--max-flops-ratio", o->maxFlopsRatio,
                     "max MACs as a fraction of dense d_in·d_out")
      ->check(kPositiveReal);
  search->add_option("--max-params", o->maxParams, "max parameters")
      ->check(kInt64);
  search->add_option("--min-psi", o->minPsi, "min rank exponent ψ")
      ->check(kUnitReal);
  search->add_option("--max-omega", o->maxOmega, "max parameter sharing ω")
      ->check(kUnitReal);
  search->add_option("--family", o->families,
                     "comma-separated families to keep, e.g. btt,monarch");
  search
      ->add_option("--objective", o->objective,
                   "paper (ω=0, ψ=1 first, then most params per MAC), flops "
                   "(fewest), params (most), params-per-flop, roofline")
      ->capture_default_str();
  search->add_option("--device", o->device, "GPU for --objective roofline")
      ->capture_default_str();
  search->add_option("--tokens", o->tokens, "tokens for the roofline estimate")
      ->check(kInt64)
      ->capture_default_str();
  search->add_option("--top", o->top, "rows to print")
      ->check(kCount)->capture_default_str();
  search->add_flag("--json", o->json, "one JSON object per candidate");
  search->add_option("-o,--output", o->output, "write here (atomically)");
  search->add_option("--mixer-family", o->mixerFamilies,
                     "rank sequence mixers instead: comma-separated families "
                     "(ssd, hydra, m2-conv, monarch-seq, dense-seq, toeplitz, "
                     "low-rank-seq) or all; --max-flops is then MACs per "
                     "sequence and --max-flops-ratio against dense-seq's L²·d");
  search->add_option("--seq-len", o->seqLen, "mixers: the sequence length")
      ->check(kInt64);
  search->add_option("--d-model", o->dModel, "mixers: channels per token")
      ->check(kInt64);
  search->add_flag("--causal", o->causal, "mixers: keep causal ones only");
  return {search, [o] { return runSearch(*o); }};
}

} // namespace einstruct::cli
