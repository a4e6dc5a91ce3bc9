// The einstruct command line: `einstruct analyze` costs structure specs.
#include "compiler/cpu/JitLayer.h"
#include "compiler/cpu/MoeLayer.h"
#include "compiler/cuda/CudaEmitter.h"
#include "compiler/cpu/ObjectCache.h"
#include "compiler/cuda/CudaLayer.h"
#include "compiler/cuda/GemmEmitter.h"
#include "compiler/cpu/NaiveEinsum.h"
#include "compiler/frontend/OutputFiles.h"
#include "compiler/frontend/Safetensors.h"
#include "compiler/project/Projection.h"
#include "compiler/torch/TorchModule.h"
#include "compiler/frontend/Report.h"
#include "compiler/frontend/ModelReader.h"
#include "compiler/frontend/SpecReader.h"
#include "compiler/frontend/Sweep.h"
#include "compiler/frontend/SweepReport.h"
#include "compiler/ir/EmitLayer.h"
#include "search/Checked.h"
#include "search/Named.h"
#include "search/Search.h"

#include "mlir/IR/Verifier.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <random>
#include <cstdio>
#include <cstring>
#include <map>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fstream>
#include <iostream>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

using namespace einstruct;

namespace {

constexpr int kUsageError = 2;

// Numeric flags are checked as text before CLI11 converts them: on its own it
// saturates integers beyond 64 bits, wraps negatives into unsigned options
// and takes inf/nan for reals.
// An integer flag's text in [min, 2^63).
CLI::Validator integerFrom(int64_t min, const char *range, const char *name) {
  return CLI::Validator(
      [=](std::string &v) -> std::string {
        int64_t x;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
        if (ec != std::errc() || end != v.data() + v.size() || x < min)
          return fmt::format("'{}' is not an integer in {}", v, range);
        return "";
      },
      name);
}
const CLI::Validator kInt64 = integerFrom(INT64_MIN, "[-2^63, 2^63)", "INT64");
const CLI::Validator kCount = integerFrom(0, "[0, 2^63)", "COUNT");
// A real flag's text: finite and in [min, max], or above min when `open`.
CLI::Validator realIn(double min, double max, bool open, const char *what,
                      const char *name) {
  return CLI::Validator(
      [=](std::string &v) -> std::string {
        char *end = nullptr;
        double x = std::strtod(v.c_str(), &end);
        if (v.empty() || *end || !std::isfinite(x) || x < min || x > max ||
            (open && x == min))
          return fmt::format("'{}' is not {}", v, what);
        return "";
      },
      name);
}
const CLI::Validator kPositiveReal =
    realIn(0, HUGE_VAL, true, "a finite number above 0", "REAL>0");
const CLI::Validator kNonNegativeReal =
    realIn(0, HUGE_VAL, false, "a finite number >= 0", "REAL>=0");
const CLI::Validator kUnitReal =
    realIn(0, 1, false, "a number in [0, 1]", "[0,1]");

int fail(const std::string &msg) {
  std::fprintf(stderr, "einstruct: error: %s\n", msg.c_str());
  return kUsageError;
}

// What this process may allocate: physical memory, or less under an
// address-space limit or a cgroup's memory.max.
uint64_t memoryLimitBytes() {
  uint64_t limit = uint64_t(sysconf(_SC_PHYS_PAGES)) * uint64_t(sysconf(_SC_PAGE_SIZE));
  struct rlimit r;
  if (getrlimit(RLIMIT_AS, &r) == 0 && r.rlim_cur != RLIM_INFINITY)
    limit = std::min<uint64_t>(limit, r.rlim_cur);
  std::ifstream cg("/sys/fs/cgroup/memory.max");
  uint64_t v = 0;
  if (cg >> v && v > 0)
    limit = std::min(limit, v);
  return limit;
}

// Writes every file of `out` or none (compiler/frontend/OutputFiles.h).
int commit(OutputFiles &out) {
  auto r = out.commit();
  return r ? 0 : fail(r.error());
}

// One output: stdout for "" or "-", else `path`, through a temporary file
// renamed into place so that a failure never leaves a partial output.
int emit(const std::string &text, const std::string &path) {
  OutputFiles out;
  out.add(path, text);
  return commit(out);
}

struct AnalyzeOptions {
  std::vector<std::string> files;
  SpecArgs args;
  std::string output;
  bool json = false, emitMlir = false;
};

int runAnalyze(const AnalyzeOptions &o) {
  std::vector<Layer> layers;
  bool inline_ = o.args.theta || o.args.einsum || o.args.structure;
  if (!inline_ && o.files.empty())
    return fail("give spec files or one inline spec (--theta, --einsum or "
                "--structure); see einstruct analyze --help");
  if (inline_ && !o.files.empty())
    return fail("give spec files or an inline spec, not both");
  if (inline_) {
    auto l = layerFromArgs(o.args);
    if (!l)
      return fail(l.error());
    if (l->label.empty())
      l->label = o.args.theta       ? *o.args.theta
                 : o.args.structure ? *o.args.structure
                                    : *o.args.einsum;
    layers.push_back(*l);
  }
  for (const auto &f : o.files) {
    auto ls = readSpecFile(f);
    if (!ls)
      return fail(ls.error());
    layers.insert(layers.end(), ls->begin(), ls->end());
  }
  std::vector<Analysis> analyses;
  for (const auto &l : layers) {
    auto a = analyze(l);
    if (!a)
      return fail(fmt::format("{}: {}", l.label, a.error()));
    analyses.push_back(*a);
  }
  std::string text;
  if (o.emitMlir) {
    mlir::MLIRContext ctx;
    loadDialects(ctx);
    auto module = mlir::ModuleOp::create(mlir::UnknownLoc::get(&ctx));
    for (size_t k = 0; k < layers.size(); ++k) {
      std::string fn = layers.size() == 1 ? "layer" : fmt::format("layer{}", k);
      if (layers[k].experts)
        emitMoeLayer(module, layers[k], fn);
      else
        emitLayer(module, layers[k], fn);
    }
    if (mlir::failed(mlir::verify(module)))
      return fail("internal: the emitted IR does not verify");
    llvm::raw_string_ostream os(text);
    module.print(os);
    module.erase();
  } else if (o.json) {
    for (size_t k = 0; k < layers.size(); ++k)
      text += analysisJson(layers[k], analyses[k]).dump() + "\n";
  } else {
    text = analysisTable(layers, analyses);
  }
  return emit(text, o.output);
}

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

std::vector<std::string> splitList(const std::string &s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size() && !s.empty()) {
    size_t comma = s.find(',', pos);
    out.push_back(s.substr(pos, comma == std::string::npos ? std::string::npos
                                                           : comma - pos));
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
  auto ratio = k.maxFlopsRatio ? k.maxFlopsRatio : m->maxFlopsRatio;
  auto flops = k.maxFlops ? k.maxFlops : m->maxFlops;
  k.maxFlopsRatio.reset();
  k.maxFlops.reset();
  int64_t dense = 0;
  for (auto &l : m->layers)
    dense += l.dIn * l.dOut * l.count;
  if (!ratio && !flops)
    return fail(fmt::format("{}: no budget: give --max-flops-ratio or "
                            "--max-flops, or \"budget\" in the file",
                            o.model));
  int64_t budget = flops ? *flops : int64_t(*ratio * double(dense));
  auto r = searchModel(m->layers, budget, space, k);
  if (!r)
    return fail(r.error());
  std::string text;
  if (o.json) {
    nlohmann::json j;
    j["model"] = m->name;
    j["budget_flops"] = r->budgetFlops;
    j["total_flops"] = r->totalFlops;
    j["total_params"] = r->totalParams;
    j["dense_flops"] = r->denseFlops;
    j["dense_params"] = r->denseParams;
    j["layers"] = nlohmann::json::array();
    for (auto &c : r->choices) {
      auto cj = candidateJson(c.pick);
      cj["layer"] = c.layer.name;
      cj["count"] = c.layer.count;
      j["layers"].push_back(cj);
    }
    text = j.dump() + "\n";
  } else {
    text = modelTable(*r, m->name);
  }
  return emit(text, o.output);
}

int runSearch(const SearchOptions &o) {
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

struct SweepOptions {
  std::string config, output, shard;
  size_t shards = 0;
  bool quiet = false;
};

int runSweepCommand(const SweepOptions &o) {
  auto config = readSweepConfig(o.config);
  if (!config)
    return fail(config.error());
  std::map<std::string, std::string> env;
  for (char **e = environ; *e; ++e) {
    std::string kv = *e;
    size_t eq = kv.find('=');
    if (eq != std::string::npos)
      env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  auto shard = shardFromEnvironment(o.shard, o.shards, env);
  if (!shard)
    return fail(shard.error());
  auto st = runSweep(*config, o.output, *shard, o.quiet ? nullptr : stderr);
  if (!st)
    return fail(st.error());
  if (!o.quiet)
    std::fprintf(stderr,
                 "sweep: shard %zu/%zu: %zu rows, %zu written, %zu already "
                 "done -> %s\n",
                 shard->index, shard->count, st->rows, st->written,
                 st->skipped, o.output.c_str());
  return 0;
}

struct ReportOptions {
  std::vector<std::string> inputs;
  std::string dir = "report";
};

int runReport(const ReportOptions &o) {
  auto r = buildReport(o.inputs, "pareto.svg");
  if (!r)
    return fail(r.error());
  if (mkdir(o.dir.c_str(), 0755) != 0 && errno != EEXIST)
    return fail(fmt::format("{}: cannot create the directory", o.dir));
  OutputFiles out;
  out.add(o.dir + "/pareto.svg", r->svg);
  out.add(o.dir + "/report.md", r->markdown);
  if (int rc = commit(out))
    return rc;
  std::printf("wrote %s/report.md and %s/pareto.svg\n", o.dir.c_str(),
              o.dir.c_str());
  return 0;
}

struct RunOptions {
  std::string file; // a JSON spec file holding one spec
  SpecArgs args;
  int64_t batch = 64;
  uint64_t seed = 0;
  std::string input, weights, output, grad, gradDir = ".";
  std::string router;      // BTT-MoE: Wg (d_in, E)
  double auxWeight = 0.01; // BTT-MoE: the aux loss's weight in --grad
  bool check = false;
  int repeat = 5;
  int threads = 0; // 0: EINSTRUCT_NUM_THREADS, else the hardware's
};

// The one layer of `run` and `compile`: from the inline flags or a one-spec
// file.
Result<Layer> singleLayer(const std::string &file, const SpecArgs &args,
                          const char *command) {
  bool inline_ = args.theta || args.einsum || args.structure;
  if (inline_ == !file.empty())
    return Error{"give one spec: a JSON file or --theta/--einsum/--structure"};
  if (inline_)
    return layerFromArgs(args);
  auto ls = readSpecFile(file);
  if (!ls)
    return Error{ls.error()};
  if (ls->size() != 1)
    return Error{fmt::format("{}: holds {} specs; {} takes one", file,
                             ls->size(), command)};
  return ls->front();
}

// The spec flags of a one-spec command.
void addSpecOptions(CLI::App *cmd, std::string &file, SpecArgs &args) {
  cmd->add_option("file", file, "JSON spec file holding one spec");
  cmd->add_option("--theta", args.theta, "θ text (α|β|γ|δ|ε|φ|ρ)");
  cmd->add_option("--einsum", args.einsum, "einsum 'x,W1,W2->y'");
  cmd->add_option("--sizes", args.sizes, "index sizes for --einsum");
  cmd->add_option("--structure", args.structure, "named structure");
  cmd->add_option("--d-in", args.dIn, "input dimension")
      ->check(kInt64);
  cmd->add_option("--d-out", args.dOut, "output dimension")
      ->check(kInt64);
  cmd->add_option("--sizing", args.sizing, "θ → sizes: round or exact")
      ->capture_default_str();
}

// Shapes equal once size-1 axes are dropped from both.
bool sameShape(std::vector<int64_t> a, std::vector<int64_t> b) {
  a.erase(std::remove(a.begin(), a.end(), 1), a.end());
  b.erase(std::remove(b.begin(), b.end(), 1), b.end());
  return a == b;
}

std::string shapeText(const std::vector<int64_t> &s) {
  return fmt::format("({})", fmt::join(s, ", "));
}

// --seed's generated data: uniform(-1, 1) values of `shape` (sizes already
// bounded by the caller).
NpyArray uniformArray(std::vector<int64_t> shape, std::mt19937_64 &rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  const int64_t n = elementCount(shape);
  NpyArray a{std::move(shape), std::vector<float>(size_t(n))};
  for (auto &v : a.data)
    v = uniform(rng);
  return a;
}

using Clock = std::chrono::steady_clock;
double msSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// One untimed call (the pool's first allocations, cold caches), then
// `repeat` timed ones: the untimed call's ms and the timed calls' median.
struct Timing {
  double warmUpMs = 0, medianMs = 0;
  size_t calls = 0;
};
template <class Call> Result<Timing> timedCalls(int repeat, Call &&call) {
  Timing t;
  std::vector<double> times;
  for (int r = -1; r < repeat; ++r) {
    auto s = Clock::now();
    if (auto ok = call(); !ok)
      return Error{ok.error()};
    (r < 0 ? t.warmUpMs : times.emplace_back()) = msSince(s);
  }
  std::sort(times.begin(), times.end());
  t.medianMs = times[times.size() / 2];
  t.calls = times.size();
  return t;
}

// Relative max error of `got` against `ref`, printed as run's check line.
bool reportCheck(const std::vector<float> &got, const std::vector<float> &ref,
                 int64_t rows, const char *against) {
  double maxErr = 0, maxRef = 0;
  for (size_t k = 0; k < ref.size(); ++k) {
    maxErr = std::max(maxErr, double(std::fabs(got[k] - ref[k])));
    maxRef = std::max(maxRef, double(std::fabs(ref[k])));
  }
  double rel = maxRef > 0 ? maxErr / maxRef : maxErr;
  bool ok = rel <= 1e-5;
  std::printf("check    max relative error %.3g vs %s on %lld row(s): %s\n",
              rel, against, (long long)rows,
              ok ? "ok" : "FAILED (tolerance 1e-5)");
  return ok;
}

// What `einstruct run`'s compile time covers.
const char *compileNote(bool fromCache) {
  return fromCache ? "MLIR CPU pipeline, object code loaded from the JIT "
                     "cache, one untimed call"
                   : "MLIR CPU pipeline, LLVM -O3 code generation, one "
                     "untimed call";
}

// `run` for BTT-MoE: routed experts only, the routing statistics, and with
// --grad the gradients of <dy, y> + aux_weight·aux (dWg too).
int runMoe(const RunOptions &o, const Layer &layer, const Analysis &analysis,
           const NpyArray &x, const std::vector<NpyArray> &ws,
           const NpyArray &dy, std::mt19937_64 &rng) {
  const int64_t batch = x.shape[0], E = layer.experts;
  NpyArray wg;
  if (!o.router.empty()) {
    auto r = readArrayFile(o.router);
    if (!r)
      return fail(r.error());
    if (r->shape != std::vector<int64_t>{layer.dIn, E})
      return fail(fmt::format("{}: shape {} must be (d_in = {}, experts = {})",
                              o.router, shapeText(r->shape), layer.dIn, E));
    wg = std::move(*r);
  } else {
    wg = uniformArray({layer.dIn, E}, rng);
  }
  auto t0 = Clock::now();
  auto moe = MoeLayer::compile(layer);
  if (!moe)
    return fail(moe.error());
  if (o.threads)
    (*moe)->setThreads(o.threads);
  double compileMs = msSince(t0);
  std::vector<const float *> wp = {ws[0].data.data(), ws[1].data.data()};
  std::optional<MoeLayer::Forward> fwd;
  auto timing = timedCalls(o.repeat, [&]() -> Result<bool> {
    auto out = (*moe)->forward(x.data.data(), batch, wg.data.data(), wp);
    if (!out)
      return Error{out.error()};
    fwd = std::move(*out);
    return true;
  });
  if (!timing)
    return fail(timing.error());
  compileMs += timing->warmUpMs; // the untimed call counts as compile time
  const double ms = timing->medianMs;
  const Routing &rt = fwd->routing;
  std::printf("layer    btt-moe %lld->%lld, %lld experts, top-%lld: %s\n",
              (long long)layer.dIn, (long long)layer.dOut, (long long)E,
              (long long)layer.topK, layer.terms[0].str().c_str());
  std::printf("compile  %.0f ms (the rank-1 expert BTT and the router: %s)\n",
              compileMs, compileNote((*moe)->fromCache()));
  std::printf("forward  batch %lld: %.3f ms, median of %zu (%.2f GFLOP/s on "
              "the selected experts)\n",
              (long long)batch, ms, timing->calls,
              2.0 * double(analysis.flops) * double(batch) / (ms * 1e6));
  std::printf("routing  tokens per expert [%s] (of %lld slots), router "
              "entropy %.4f nats (uniform: %.4f), aux loss %.6g\n",
              fmt::format("{}", fmt::join(rt.counts, ", ")).c_str(),
              (long long)(batch * layer.topK), rt.entropy,
              std::log(double(E)), rt.auxLoss);
  // y and the gradients are written together once all are computed.
  OutputFiles out;
  std::string notes;
  if (!o.output.empty()) {
    out.add(o.output, encodeNpy({{batch, layer.dOut}, fwd->y}));
    notes += fmt::format("output   {} ({}, {})\n", o.output, batch, layer.dOut);
  }
  if (!o.grad.empty()) {
    auto s = Clock::now();
    auto g = (*moe)->backward(x.data.data(), dy.data.data(), batch,
                              wg.data.data(), wp, o.auxWeight);
    if (!g)
      return fail(g.error());
    const double bms = msSince(s);
    const auto shapes = weightShapes(layer);
    out.add(o.gradDir + "/dx.npy", encodeNpy({{batch, layer.dIn}, g->dx}));
    for (size_t k = 0; k < 2; ++k)
      out.add(fmt::format("{}/dw{}.npy", o.gradDir, k + 1),
              encodeNpy({shapes[k], g->dw[k]}));
    out.add(o.gradDir + "/dwg.npy", encodeNpy({{layer.dIn, E}, g->dRouter}));
    notes += fmt::format("backward {:.3f} ms (aux weight {}): wrote {}/dx.npy, "
                         "dw1.npy, dw2.npy and dwg.npy\n",
                         bms, o.auxWeight, o.gradDir);
  }
  if (int rc = commit(out))
    return rc;
  std::fputs(notes.c_str(), stdout);
  if (o.check) {
    int64_t rows = std::min<int64_t>(batch, 16);
    auto ref = (*moe)->naiveReference(x.data.data(), rows, wg.data.data(), wp);
    if (!reportCheck(fwd->y, ref, rows,
                     "naive loops over all experts, z gated"))
      return 1;
  }
  return 0;
}

int runRun(const RunOptions &o) {
  auto layer = singleLayer(o.file, o.args, "run");
  if (!layer)
    return fail(layer.error());
  auto analysis = analyze(*layer);
  if (!analysis)
    return fail(analysis.error());
  // Inputs: files, or deterministic uniform(-1, 1) values from --seed.
  std::mt19937_64 rng(o.seed);
  NpyArray x;
  int64_t batch = o.batch;
  if (!o.input.empty()) {
    auto in = readArrayFile(o.input);
    if (!in)
      return fail(in.error());
    if (in->shape.size() != 2 || in->shape[1] != layer->dIn)
      return fail(fmt::format("{}: shape {} must be (N, d_in = {})", o.input,
                              shapeText(in->shape), layer->dIn));
    if (in->shape[0] < 1)
      return fail(fmt::format("{}: holds no rows", o.input));
    x = *in;
    batch = x.shape[0];
  } else {
    if (batch < 1 || batch > (int64_t(1) << 24))
      return fail(fmt::format("--batch {} must be in [1, 2^24]", batch));
    auto elems = checkedMul(batch, layer->dIn);
    if (!elems || *elems > (int64_t(1) << 32))
      return fail(fmt::format("--batch {} × d_in {} is too large to generate",
                              batch, layer->dIn));
    x = uniformArray({batch, layer->dIn}, rng);
  }
  // Everything run allocates is bounded up front: a clear error instead of
  // an allocation failure halfway through.
  constexpr int64_t kMaxElements = int64_t(1) << 32;
  auto yElems = checkedMul(batch, layer->dOut);
  if (!yElems || *yElems > kMaxElements)
    return fail(fmt::format("batch {} × d_out {} output elements exceed 2^32",
                            batch, layer->dOut));
  if (o.repeat < 1 || o.repeat > 1000)
    return fail(fmt::format("--repeat {} must be in [1, 1000]", o.repeat));
  auto shapes = weightShapes(*layer);
  for (size_t k = 0; k < shapes.size(); ++k) {
    std::optional<int64_t> n = 1;
    for (int64_t d : shapes[k])
      n = n ? checkedMul(*n, d) : n;
    if (!n || *n > kMaxElements)
      return fail(fmt::format("weight {} {} has more than 2^32 elements", k + 1,
                              shapeText(shapes[k])));
  }
  // And in total against what this process may use (a 16 GiB weight under
  // a 4 GiB limit is an error up front, not std::bad_alloc later).
  {
    double elems = double(batch) * double(layer->dIn + layer->dOut);
    for (const auto &shape : shapes)
      elems += double(elementCount(shape)) * (o.grad.empty() ? 1 : 2);
    if (!o.grad.empty())
      elems += double(batch) * double(layer->dIn + layer->dOut); // dx, dy
    const double need = 4.0 * elems, limit = double(memoryLimitBytes());
    if (need > limit)
      return fail(fmt::format("the arrays need {:.1f} GiB, more than the "
                              "{:.1f} GiB this process may use",
                              need / double(1 << 30), limit / double(1 << 30)));
  }
  // The gradient input is read before anything runs or is written, so that
  // a bad file leaves no outputs behind.
  NpyArray dy;
  if (!o.grad.empty()) {
    auto g = readArrayFile(o.grad);
    if (!g)
      return fail(g.error());
    if (g->shape != std::vector<int64_t>{batch, layer->dOut})
      return fail(fmt::format("{}: shape {} must be (N = {}, d_out = {})",
                              o.grad, shapeText(g->shape), batch,
                              layer->dOut));
    dy = std::move(*g);
    struct stat st;
    if (stat(o.gradDir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return fail(fmt::format("--grad-dir {}: not a directory", o.gradDir));
  }
  std::vector<NpyArray> ws;
  if (!o.weights.empty()) {
    auto files = splitList(o.weights);
    if (files.size() != shapes.size())
      return fail(fmt::format("--weights: {} files for {} weight tensors",
                              files.size(), shapes.size()));
    for (size_t k = 0; k < files.size(); ++k) {
      auto w = readArrayFile(files[k]);
      if (!w)
        return fail(w.error());
      if (!sameShape(w->shape, shapes[k]))
        return fail(fmt::format("{}: shape {} but weight {} is {}", files[k],
                                shapeText(w->shape), k + 1,
                                shapeText(shapes[k])));
      ws.push_back(*w);
    }
  } else {
    for (auto &s : shapes)
      ws.push_back(uniformArray(s, rng));
  }
  if (layer->experts)
    return runMoe(o, *layer, *analysis, x, ws, dy, rng);
  auto t0 = Clock::now();
  auto jit = JitLayer::compile(*layer);
  if (!jit)
    return fail(jit.error());
  if (o.threads)
    (*jit)->setThreads(o.threads);
  double compileMs = msSince(t0);
  std::vector<const float *> wp;
  for (auto &w : ws)
    wp.push_back(w.data.data());
  // y allocated once: a fresh large vector per call would time the page
  // faults of its allocation (~5 µs each on a VM), not the layer.
  std::vector<float> y(static_cast<size_t>(*yElems));
  auto timing = timedCalls(o.repeat, [&] {
    return (*jit)->forwardInto(x.data.data(), batch, wp, y.data());
  });
  if (!timing)
    return fail(timing.error());
  compileMs += timing->warmUpMs; // as for BTT-MoE above
  const double ms = timing->medianMs;
  std::printf("layer    %s %lld->%lld, %zu weight tensor(s):", analysis->name.c_str(),
              (long long)layer->dIn, (long long)layer->dOut, shapes.size());
  for (const auto &t : layer->terms)
    std::printf(" %s", t.str().c_str());
  std::printf("\ncompile  %.0f ms (%s)\n", compileMs,
              compileNote((*jit)->fromCache()));
  std::printf("forward  batch %lld: %.3f ms, median of %zu (%.2f GFLOP/s, "
              "2 FLOPs per multiply-add)\n",
              (long long)batch, ms, timing->calls,
              2.0 * double(analysis->flops) * double(batch) / (ms * 1e6));
  // y and the gradients are written together once all are computed.
  OutputFiles out;
  std::string notes;
  if (!o.output.empty()) {
    out.add(o.output, encodeNpy({{batch, layer->dOut}, y}));
    notes += fmt::format("output   {} ({}, {})\n", o.output, batch,
                         layer->dOut);
  }
  if (!o.grad.empty()) {
    // Into arrays allocated once, like y.
    std::vector<float> dx(static_cast<size_t>(batch * layer->dIn));
    std::vector<std::vector<float>> dw;
    std::vector<float *> dwp;
    for (const auto &shape : shapes)
      dwp.push_back(dw.emplace_back(size_t(elementCount(shape))).data());
    auto btiming = timedCalls(o.repeat, [&] {
      return (*jit)->backwardInto(x.data.data(), dy.data.data(), batch, wp,
                                  dx.data(), dwp);
    });
    if (!btiming)
      return fail(btiming.error());
    out.add(o.gradDir + "/dx.npy", encodeNpy({{batch, layer->dIn}, dx}));
    for (size_t k = 0; k < dw.size(); ++k)
      out.add(fmt::format("{}/dw{}.npy", o.gradDir, k + 1),
              encodeNpy({shapes[k], dw[k]}));
    notes += fmt::format("backward batch {}: {:.3f} ms, median of {}: wrote "
                         "{}/dx.npy and dw1..dw{}.npy\n",
                         batch, btiming->medianMs, btiming->calls, o.gradDir,
                         dw.size());
  }
  if (int rc = commit(out))
    return rc;
  std::fputs(notes.c_str(), stdout);
  if (o.check) {
    int64_t rows = std::min<int64_t>(batch, 16);
    auto ref = naiveForward(*layer, x.data.data(), rows, wp);
    if (!reportCheck(y, ref, rows, "naive loops"))
      return 1;
  }
  return 0;
}

} // namespace

struct CompileOptions {
  std::string file;
  SpecArgs args;
  std::string emit = "kernels", target, dtype = "bf16", arch = "sm_90a", name,
                                 dir;
  int64_t smemKb = 0;
  bool prebuild = false, noWgmma = false;
  std::string hopperTile;
};

// The name the layer's files and symbols get: --name, or einstruct_ + family.
std::string layerName(const CompileOptions &o, const Layer &layer) {
  if (!o.name.empty())
    return o.name;
  std::string name = "einstruct_";
  for (char c : layer.name)
    name += std::isalnum((unsigned char)c) ? c : '_';
  return name;
}

bool makeDirectory(const std::string &dir) {
  struct stat st;
  return stat(dir.c_str(), &st) == 0 || mkdir(dir.c_str(), 0777) == 0;
}

// The runtime library next to this binary: bin/../lib in the build tree and
// in an install.
std::string runtimeLibrary() {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  std::string dir = n > 0 ? std::string(self, size_t(n)) : "einstruct";
  dir = dir.substr(0, dir.find_last_of('/') + 1) + "../lib";
  if (char *real = realpath(dir.c_str(), nullptr)) {
    dir = real;
    std::free(real);
  }
  return dir + "/libeinstruct_runtime.so";
}

int runCompileTorch(const CompileOptions &o) {
  if (!o.target.empty() && o.target != "cpu")
    return fail(fmt::format("--emit torch: --target '{}' does not apply: the "
                            "module runs on the tensors' device (CPU: the "
                            "JIT; CUDA: the generated kernels, built on "
                            "first use)",
                            o.target));
  auto layer = singleLayer(o.file, o.args, "compile");
  if (!layer)
    return fail(layer.error());
  std::string name = layerName(o, *layer);
  std::string runtime = runtimeLibrary();
  auto text = emitTorchModule(*layer, name, runtime);
  if (!text)
    return fail(text.error());
  if (!makeDirectory(o.dir))
    return fail(fmt::format("{}: cannot create the directory", o.dir));
  if (int rc = emit(*text, o.dir + "/" + name + ".py"))
    return rc;
  std::printf("wrote %s/%s.py (torch.nn.Module %s; runtime %s)\n",
              o.dir.c_str(), name.c_str(), name.c_str(), runtime.c_str());
  return 0;
}

int runCompile(const CompileOptions &o) {
  if (o.emit == "torch")
    return runCompileTorch(o);
  if (o.emit != "kernels")
    return fail(fmt::format("--emit: unknown '{}' (known: kernels, torch)",
                            o.emit));
  if (!o.target.empty() && o.target != "cuda")
    return fail(fmt::format("--target: unknown '{}' (known: cuda)", o.target));
  CudaTarget target;
  target.arch = o.arch;
  if (auto known = dtypeFromName(o.dtype))
    target.dtype = *known;
  else
    return fail(fmt::format("--dtype: unknown '{}' (known: f32, bf16, f16)",
                            o.dtype));
  if (o.smemKb < 0 || o.smemKb > 1024)
    return fail(fmt::format("--smem-kb {} must be in [0, 1024]", o.smemKb));
  target.smemBudget = o.smemKb * 1024;
  target.wgmma = !o.noWgmma;
  if (!o.hopperTile.empty()) {
    auto tile = parseHopperTile(o.hopperTile);
    if (!tile)
      return fail("--hopper-tile: " + tile.error());
    target.hopperTile = *tile;
  }
  auto layer = singleLayer(o.file, o.args, "compile");
  if (!layer)
    return fail(layer.error());
  // One-weight terms (dense, block-diagonal, DYAD) run through cuBLAS; the
  // two-factor layers through the fused kernels.
  const std::string what = layer->label.empty() ? layer->name : layer->label;
  std::string name = layerName(o, *layer), why;
  Result<CudaSources> src = Error{""};
  if (isGemmLayer(*layer)) {
    auto plan = planGemm(*layer, target);
    if (!plan)
      return fail(fmt::format("{}: {}", what, plan.error()));
    src = emitGemmCuda(*plan, name);
    why = "cuBLAS: " + plan->why;
  } else {
    auto plan = planCuda(*layer, target);
    if (!plan)
      return fail(fmt::format("{}: {}", what, plan.error()));
    src = emitCuda(*plan, name);
    why = plan->tileWhy;
  }
  if (!src)
    return fail(src.error());
  // --prebuild: the runtime's library of this layer into the cache first,
  // so that a failure leaves no files behind.
  std::string prebuilt;
  if (o.prebuild) {
    if (o.smemKb)
      return fail("--prebuild: leave out --smem-kb (the runtime plans with "
                  "the arch's own budget, so it would not find this entry)");
    if (!objectcache::directory())
      return fail("--prebuild: the cache is off (EINSTRUCT_CACHE_DIR=off): "
                  "there is nowhere to keep the library");
    auto lib = CudaLayer::load(*layer, target);
    if (!lib)
      return fail(fmt::format("--prebuild: {}", lib.error()));
    prebuilt = fmt::format("prebuilt {} ({})\n", (*lib)->libraryPath(),
                           (*lib)->fromCache() ? "found in the cache" : "nvcc");
  }
  if (!makeDirectory(o.dir))
    return fail(fmt::format("{}: cannot create the directory", o.dir));
  OutputFiles out;
  out.add(o.dir + "/" + name + ".h", src->header);
  out.add(o.dir + "/" + name + ".cu", src->source);
  if (int rc = commit(out))
    return rc;
  std::printf("wrote %s/%s.h and %s/%s.cu (%s, %s; %s)\n%s", o.dir.c_str(),
              name.c_str(), o.dir.c_str(), name.c_str(), o.dtype.c_str(),
              o.arch.c_str(), why.c_str(), prebuilt.c_str());
  return 0;
}

struct ProjectOptions {
  std::string file;
  SpecArgs args;
  std::string weight, dir;
  bool inOut = false;
};

int runProject(const ProjectOptions &o) {
  auto layer = singleLayer(o.file, o.args, "project");
  if (!layer)
    return fail(layer.error());
  auto w = readArrayFile(o.weight);
  if (!w)
    return fail(w.error());
  if (w->shape.size() != 2)
    return fail(fmt::format("{}: shape {} is not a matrix", o.weight,
                            shapeText(w->shape)));
  if (o.inOut) { // (d_in, d_out) as stored by JAX/Flax: transpose
    NpyArray t{{w->shape[1], w->shape[0]}, std::vector<float>(w->data.size())};
    for (int64_t i = 0; i < w->shape[0]; ++i)
      for (int64_t j = 0; j < w->shape[1]; ++j)
        t.data[size_t(j * w->shape[0] + i)] = w->data[size_t(i * w->shape[1] + j)];
    *w = std::move(t);
  }
  if (w->shape != std::vector<int64_t>{layer->dOut, layer->dIn})
    return fail(fmt::format(
        "{}: shape {} but the layer needs (d_out = {}, d_in = {}){}", o.weight,
        shapeText(w->shape), layer->dOut, layer->dIn,
        !o.inOut && w->shape == std::vector<int64_t>{layer->dIn, layer->dOut}
            ? "; for a (d_in, d_out) file give --in-out"
            : ""));
  auto p = projectDense(*layer, *w);
  if (!p)
    return fail(fmt::format("{}: {}", layer->label, p.error()));
  std::vector<std::string> written;
  OutputFiles out;
  const std::string ext = ".safetensors";
  if (o.dir.size() > ext.size() &&
      o.dir.compare(o.dir.size() - ext.size(), ext.size(), ext) == 0) {
    // One safetensors file holding w1, w2, ... as float32.
    std::vector<std::pair<std::string, NpyArray>> named;
    for (size_t k = 0; k < p->weights.size(); ++k)
      named.push_back({fmt::format("w{}", k + 1), p->weights[k]});
    out.add(o.dir, encodeSafetensors(named));
    for (auto &[name, w] : named)
      written.push_back(o.dir + ":" + name);
  } else {
    struct stat st;
    if (stat(o.dir.c_str(), &st) != 0 && mkdir(o.dir.c_str(), 0777) != 0)
      return fail(fmt::format("{}: cannot create the directory", o.dir));
    for (size_t k = 0; k < p->weights.size(); ++k) {
      std::string path = fmt::format("{}/w{}.npy", o.dir, k + 1);
      out.add(path, encodeNpy(p->weights[k]));
      written.push_back(path);
    }
  }
  if (int rc = commit(out))
    return rc;
  std::printf("projected %s (%lld x %lld) onto %s: relative Frobenius error "
              "%.6g (SVD bound %.6g)\n",
              o.weight.c_str(), (long long)layer->dOut, (long long)layer->dIn,
              layer->name.c_str(), p->relativeError, p->svdBound);
  for (size_t k = 0; k < written.size(); ++k)
    std::printf("wrote    %s %s\n", written[k].c_str(),
                shapeText(p->weights[k].shape).c_str());
  return 0;
}

int main(int argc, char **argv) {
  CLI::App app{"einstruct: a compiler for structured linear layers"};
  app.require_subcommand(1);
  AnalyzeOptions a;
  auto *analyze = app.add_subcommand(
      "analyze",
      "Cost structure specs: params, FLOPs (multiply-adds per input vector; "
      "x2 for floating point operations), ω, ψ, ν, sizes, padding");
  analyze->add_option("files", a.files, "JSON spec files (object or array)");
  analyze->add_option("--theta", a.args.theta,
                      "θ text (α|β|γ|δ|ε|φ|ρ), e.g. '(0.5|0|0.5|0|0.5|0.5|0)'");
  analyze->add_option("--einsum", a.args.einsum,
                      "einsum 'x,W1,W2->y', e.g. 'gba,fdrga,fergb->fed'");
  analyze->add_option("--sizes", a.args.sizes,
                      "index sizes for --einsum, e.g. 'g=64,a=64,f=64,e=64'");
  analyze->add_option("--structure", a.args.structure,
                      fmt::format("named structure with parameters, e.g. "
                                  "'btt(rank=8)', 'monarch(64)'; one of: {}",
                                  fmt::join(namedFamilies(), ", ")));
  analyze->add_option("--d-in", a.args.dIn, "input dimension")
      ->check(kInt64);
  analyze->add_option("--d-out", a.args.dOut, "output dimension")
      ->check(kInt64);
  analyze
      ->add_option("--sizing", a.args.sizing,
                   "θ → sizes: 'round' (the reference's, pads ≤ 15%) or "
                   "'exact' (integer factorisation, no padding)")
      ->capture_default_str();
  analyze->add_flag("--json", a.json,
                    "one JSON object per spec, one per line (flops are "
                    "multiply-adds)");
  analyze->add_flag("--emit-mlir", a.emitMlir,
                    "print the einstruct dialect IR instead");
  analyze->add_option("-o,--output", a.output,
                      "write here (atomically) instead of stdout");
  SearchOptions so;
  auto *search = app.add_subcommand(
      "search", "Enumerate structures for a layer shape, filter by budget, "
                "rank by an objective, mark Pareto fronts");
  search->add_option("--d-in", so.dIn, "input dimension")
      ->check(kInt64);
  search->add_option("--d-out", so.dOut, "output dimension")
      ->check(kInt64);
  search->add_option("--model", so.model,
                     "model JSON: a structure per layer under a total budget");
  search->add_option("--grid", so.grid, "θ step is 1/GRID")
      ->check(kInt64)
      ->capture_default_str();
  search->add_flag("--include-rounded", so.includeRounded,
                   "also the reference's rounded (padded) sizes");
  search->add_option("--moe", so.moe,
                     "BTT-MoE options EXPERTS:TOP_K,..., e.g. 8:2,16:2");
  search->add_option("--max-flops", so.maxFlops,
                     "max multiply-adds per input vector")
      ->check(kInt64);
  search->add_option("--max-flops-ratio", so.maxFlopsRatio,
                     "max MACs as a fraction of dense d_in·d_out")
      ->check(kPositiveReal);
  search->add_option("--max-params", so.maxParams, "max parameters")
      ->check(kInt64);
  search->add_option("--min-psi", so.minPsi, "min rank exponent ψ")
      ->check(kUnitReal);
  search->add_option("--max-omega", so.maxOmega, "max parameter sharing ω")
      ->check(kUnitReal);
  search->add_option("--family", so.families,
                     "comma-separated families to keep, e.g. btt,monarch");
  search
      ->add_option("--objective", so.objective,
                   "paper (ω=0, ψ=1 first, then most params per MAC), flops "
                   "(fewest), params (most), params-per-flop, roofline")
      ->capture_default_str();
  search->add_option("--device", so.device, "GPU for --objective roofline")
      ->capture_default_str();
  search->add_option("--tokens", so.tokens, "tokens for the roofline estimate")
      ->check(kInt64)
      ->capture_default_str();
  search->add_option("--top", so.top, "rows to print")
      ->check(kCount)->capture_default_str();
  search->add_flag("--json", so.json, "one JSON object per candidate");
  search->add_option("-o,--output", so.output, "write here (atomically)");

  SweepOptions sw;
  auto *sweep = app.add_subcommand(
      "sweep", "Search many shapes × budgets × objectives; JSON lines out, "
               "resumable, shardable (Slurm arrays, Kubernetes Indexed Jobs)");
  sweep->add_option("config", sw.config, "sweep config JSON")->required();
  sweep->add_option("-o,--output", sw.output, "results file (JSON lines)")
      ->required();
  sweep->add_option("--shard", sw.shard,
                    "I/N: run rows with index % N == I (else taken from "
                    "SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX)");
  sweep->add_option("--shards", sw.shards,
                    "shard count for JOB_COMPLETION_INDEX (Kubernetes)")
      ->check(kCount);
  sweep->add_flag("-q,--quiet", sw.quiet, "no progress on stderr");

  ReportOptions ro;
  auto *report = app.add_subcommand(
      "report", "Markdown summary and SVG Pareto plot of sweep results");
  report->add_option("results", ro.inputs, "results JSON-lines file(s)")
      ->required();
  report->add_option("-o,--output", ro.dir, "output directory")
      ->capture_default_str();

  RunOptions ru;
  auto *run = app.add_subcommand(
      "run", "Compile a spec for the CPU (MLIR pipeline + JIT) and run it");
  addSpecOptions(run, ru.file, ru.args);
  run->add_option("--batch", ru.batch, "rows of generated input")
      ->check(kInt64)
      ->capture_default_str();
  run->add_option("--seed", ru.seed, "seed of the generated data")
      ->check(kCount)
      ->capture_default_str();
  run->add_option("--input", ru.input, "x.npy: float32 (N, d_in), C order");
  run->add_option("--weights", ru.weights,
                  "a.npy,b.npy,...: weights in structures.md layouts (size-1 "
                  "axes optional)");
  run->add_option("-o,--output", ru.output, "y.npy: write the output here");
  run->add_option("--grad", ru.grad,
                  "dy.npy (N, d_out): also run the backward pass and write "
                  "dx.npy, dw1.npy, ... (weight order of --weights)");
  run->add_option("--grad-dir", ru.gradDir, "where --grad writes")
      ->capture_default_str();
  run->add_flag("--check", ru.check,
                "compare with naive loops (first 16 rows); exit 1 above 1e-5");
  run->add_option("--repeat", ru.repeat,
                  "timed forward calls, and backward with --grad (each after "
                  "one untimed warm-up call)")
      ->check(kInt64)
      ->capture_default_str();
  run->add_option("--threads", ru.threads,
                  "threads a call may use (batch row chunks; default "
                  "EINSTRUCT_NUM_THREADS, else all)")
      ->check(CLI::Range(1, 4096));
  run->add_option("--router", ru.router,
                  "BTT-MoE: router weight Wg.npy (d_in, experts); default "
                  "uniform(-1, 1) from --seed");
  run->add_option("--aux-weight", ru.auxWeight,
                  "BTT-MoE: weight of the aux loss in --grad")
      ->check(kNonNegativeReal)
      ->capture_default_str();

  CompileOptions co;
  auto *compile = app.add_subcommand(
      "compile", "Emit fused CUDA kernels for a spec: DIR/NAME.h (C ABI) and "
                 "DIR/NAME.cu; or, with --emit torch, DIR/NAME.py: a "
                 "torch.nn.Module running the layer through the runtime (the "
                 "CPU JIT, or the CUDA kernels for CUDA tensors)");
  addSpecOptions(compile, co.file, co.args);
  compile->add_option("--emit", co.emit,
                      "kernels (CUDA .h/.cu) or torch (a PyTorch module)")
      ->capture_default_str();
  compile->add_option("--target", co.target,
                      "cuda (the default) for kernels; --emit torch takes "
                      "none (the module follows its tensors' device)");
  compile->add_option("--dtype", co.dtype, "f32, bf16 or f16")
      ->capture_default_str();
  compile->add_option("--arch", co.arch,
                      "sm_80 or sm_90a (sets the shared-memory budget)")
      ->capture_default_str();
  compile->add_option("--smem-kb", co.smemKb,
                      "shared-memory budget per block in KiB (0: the arch's)")
      ->check(kInt64)
      ->capture_default_str();
  compile->add_flag("--no-wgmma", co.noWgmma,
                    "sm_90a: keep every role on the portable WMMA kernel");
  compile->add_option("--hopper-tile", co.hopperTile,
                      "sm_90a tile FC:NWG:STAGES for the wgmma kernel "
                      "(tuning; default: the tuning table, else analytic)");
  compile->add_option("--name", co.name,
                      "symbol prefix and file name (default: einstruct_ + "
                      "the family)");
  compile->add_flag("--prebuild", co.prebuild,
                    "also build the runtime's library of the layer for "
                    "--arch and --dtype into the cache (nvcc), where "
                    "einstruct_layer_create_cuda on such a GPU finds it");
  compile->add_option("-o,--output", co.dir, "output directory")->required();

  ProjectOptions po;
  auto *project = app.add_subcommand(
      "project", "Project a dense weight onto a structure (per-block SVD): "
                 "writes DIR/w1.npy, ... and prints the relative error");
  addSpecOptions(project, po.file, po.args);
  project
      ->add_option("--weight", po.weight,
                   "dense W.npy or W.safetensors:TENSOR, (d_out, d_in) as "
                   "torch.nn.Linear.weight")
      ->required();
  project->add_flag("--in-out", po.inOut,
                    "the file is (d_in, d_out), as a JAX/Flax kernel");
  project
      ->add_option("-o,--output", po.dir,
                    "output directory (w1.npy, ...), or FILE.safetensors "
                    "(tensors w1, ...)")
      ->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp &e) {
    return app.exit(e);
  } catch (const CLI::ParseError &e) {
    return fail(e.what());
  }
  int rc;
  try {
    rc = analyze->parsed()   ? runAnalyze(a)
         : search->parsed()  ? runSearch(so)
         : run->parsed()     ? runRun(ru)
         : compile->parsed() ? runCompile(co)
         : project->parsed() ? runProject(po)
         : sweep->parsed()   ? runSweepCommand(sw)
         : report->parsed()  ? runReport(ro)
                             : fail("unknown command");
  } catch (const std::bad_alloc &) {
    // What the up-front bounds did not foresee: a message, not an abort.
    return fail("out of memory (a smaller batch or layer may fit)");
  }
  // Results printed to standard output are output too: a full disk or a
  // closed pipe is an error, not a silent exit 0.
  if (std::fflush(stdout) != 0 || std::ferror(stdout))
    return fail(std::string("writing standard output failed: ") +
                std::strerror(errno));
  return rc;
}
