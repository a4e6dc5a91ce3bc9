// `einstruct run`: compile a spec for the CPU (MLIR pipeline and JIT), run
// it forward (and backward with --grad) on files or generated data, time it,
// check it against naive loops. With --mixer, a sequence mixer instead
// (RunMixer.cpp).
#include "Cli.h"
#include "RunMixer.h"
#include "Timing.h"
#include "compiler/cpu/JitLayer.h"
#include "compiler/cpu/MoeLayer.h"
#include "compiler/cpu/NaiveEinsum.h"
#include "compiler/frontend/Npy.h"
#include "compiler/frontend/Safetensors.h"
#include "compiler/frontend/WeightFiles.h"
#include "search/Checked.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fstream>
#include <random>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

namespace einstruct::cli {
namespace {

struct RunOptions {
  std::string file; // a JSON spec file holding one spec
  SpecArgs args;
  int64_t batch = 64;
  uint64_t seed = 0;
  std::string input, weights, output, grad, gradDir = ".";
  std::string router;      // BTT-MoE: Wg (d_in, E)
  std::string bias;        // b (d_out), added to y
  double auxWeight = 0.01; // BTT-MoE: the aux loss's weight in --grad
  bool check = false;
  int repeat = 5;
  int threads = 0; // 0: EINSTRUCT_NUM_THREADS, else the hardware's
  std::string mixer;  // a sequence mixer instead of a layer
  int64_t seqLen = 0; // its sequence length
  int64_t dModel = 0; // its channels (m2-conv, monarch-seq, hydra-block)
};

// `run --mixer`: the layer-only flags refused by name, the rest passed on.
int runMixerCommand(const RunOptions &o, bool batchGiven) {
  const std::pair<bool, const char *> layerOnly[] = {
      {!o.file.empty(), "a spec file"},
      {o.args.theta || o.args.einsum ||
           o.args.structure || o.args.sizes ||
           o.args.dIn.has_value() || o.args.dOut.has_value(),
       "--theta/--einsum/--structure/--sizes/--d-in/--d-out"},
      {!o.weights.empty(), "--weights"},
      {!o.router.empty(), "--router"},
      {!o.bias.empty(), "--bias"},
      {o.check, "--check"}};
  for (auto [given, what] : layerOnly)
    if (given)
      return fail(fmt::format("--mixer runs a sequence mixer; {} belongs to "
                              "a layer",
                              what));
  MixerRunOptions m;
  m.spec = o.mixer;
  m.seqLen = o.seqLen;
  m.dModel = o.dModel;
  m.batch = batchGiven ? o.batch : 1;
  m.seed = o.seed;
  m.input = o.input;
  m.output = o.output;
  m.grad = o.grad;
  m.gradDir = o.gradDir;
  m.repeat = o.repeat;
  m.threads = o.threads;
  return runMixer(m);
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

// y (rows, b.size()) += b on every row.
void addBias(std::vector<float> &y, const std::vector<float> &b) {
  for (size_t k = 0; k < y.size(); ++k)
    y[k] += b[k % b.size()];
}

// d<dy, y>/db: the column sums of dy.
NpyArray biasGradient(const NpyArray &dy) {
  const int64_t n = dy.shape[1];
  std::vector<double> sum(size_t(n), 0.0);
  for (size_t k = 0; k < dy.data.size(); ++k)
    sum[k % size_t(n)] += dy.data[k];
  return {{n}, std::vector<float>(sum.begin(), sum.end())};
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
           const std::optional<NpyArray> &bias, const NpyArray &dy,
           std::mt19937_64 &rng) {
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
              "entropy %.4f nats (uniform: %.4f), aux loss %s\n",
              fmt::format("{}", fmt::join(rt.counts, ", ")).c_str(),
              (long long)(batch * layer.topK), rt.entropy,
              std::log(double(E)),
              // Shortest text that reads back as the same double.
              fmt::format("{}", rt.auxLoss).c_str());
  if (bias)
    addBias(fwd->y, bias->data);
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
    out.add(o.gradDir + "/dx.npy", encodeNpy({{batch, layer.dIn}, g->dx}));
    // Each dW with the axes its weight was given with.
    for (size_t k = 0; k < 2; ++k)
      out.add(fmt::format("{}/dw{}.npy", o.gradDir, k + 1),
              encodeNpy({ws[k].shape, g->dw[k]}));
    out.add(o.gradDir + "/dwg.npy", encodeNpy({{layer.dIn, E}, g->dRouter}));
    if (bias)
      out.add(o.gradDir + "/db.npy", encodeNpy(biasGradient(dy)));
    notes += fmt::format("backward {:.3f} ms (aux weight {}): wrote {}/dx.npy, "
                         "dw1.npy, dw2.npy{} and dwg.npy\n",
                         bms, o.auxWeight, o.gradDir, bias ? ", db.npy" : "");
  }
  if (int rc = commit(out))
    return rc;
  std::fputs(notes.c_str(), stdout);
  if (o.check) {
    int64_t rows = std::min<int64_t>(batch, 16);
    auto ref = (*moe)->naiveReference(x.data.data(), rows, wg.data.data(), wp);
    if (bias)
      addBias(ref, bias->data);
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
    auto read = readLayerWeights(o.weights, *layer);
    if (!read)
      return fail(read.error());
    ws = std::move(*read);
  } else {
    for (auto &s : shapes)
      ws.push_back(uniformArray(s, rng));
  }
  std::optional<NpyArray> bias;
  if (!o.bias.empty()) {
    auto b = readArrayFile(o.bias);
    if (!b)
      return fail(b.error());
    // (d_out), size-1 axes allowed: one axis other than 1 at most.
    if (elementCount(b->shape) != layer->dOut ||
        std::count_if(b->shape.begin(), b->shape.end(),
                      [](int64_t d) { return d != 1; }) > 1)
      return fail(fmt::format("{}: shape {} must be (d_out = {})", o.bias,
                              shapeText(b->shape), layer->dOut));
    b->shape = {layer->dOut};
    bias = std::move(*b);
  } else if (layer->bias) { // the spec has one: drawn like the weights
    bias = uniformArray({layer->dOut}, rng);
  }
  if (layer->experts)
    return runMoe(o, *layer, *analysis, x, ws, bias, dy, rng);
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
  if (bias) // after the timed calls: the forward's time is the layer's
    addBias(y, bias->data);
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
    for (size_t k = 0; k < dw.size(); ++k) // with the axes of weight k's file
      out.add(fmt::format("{}/dw{}.npy", o.gradDir, k + 1),
              encodeNpy({ws[k].shape, dw[k]}));
    if (bias)
      out.add(o.gradDir + "/db.npy", encodeNpy(biasGradient(dy)));
    notes += fmt::format("backward batch {}: {:.3f} ms, median of {}: wrote "
                         "{}/dx.npy, dw1..dw{}.npy{}\n",
                         batch, btiming->medianMs, btiming->calls, o.gradDir,
                         dw.size(), bias ? " and db.npy" : "");
  }
  if (int rc = commit(out))
    return rc;
  std::fputs(notes.c_str(), stdout);
  if (o.check) {
    int64_t rows = std::min<int64_t>(batch, 16);
    auto ref = naiveForward(*layer, x.data.data(), rows, wp);
    if (bias)
      addBias(ref, bias->data);
    if (!reportCheck(y, ref, rows, "naive loops"))
      return 1;
  }
  return 0;
}

} // namespace

Command addRunCommand(CLI::App &app) {
  auto o = std::make_shared<RunOptions>();
  auto *run = app.add_subcommand(
      "run", "Compile a spec for the CPU (MLIR pipeline + JIT) and run it");
  addSpecOptions(run, o->file, o->args);
  auto *batch = run->add_option("--batch", o->batch,
                                "rows of generated input (--mixer: "
                                "sequences, default 1)")
                    ->check(kInt64)
                    ->capture_default_str();
  run->add_option("--seed", o->seed, "seed of the generated data")
      ->check(kCount)
      ->capture_default_str();
  run->add_option("--input", o->input,
                  "x.npy: float32 (N, d_in), C order (--mixer: a safetensors "
                  "file of the named operands, each (batch, ...))");
  run->add_option("--weights", o->weights,
                  "a.npy,b.npy,...: weights in structures.md layouts (size-1 "
                  "axes optional)");
  run->add_option("-o,--output", o->output, "y.npy: write the output here");
  run->add_option("--grad", o->grad,
                  "dy.npy (N, d_out): also run the backward pass and write "
                  "dx.npy, dw1.npy, ... (weight order of --weights; --mixer: "
                  "dy like y, writes d<operand>.npy)");
  run->add_option("--grad-dir", o->gradDir, "where --grad writes")
      ->capture_default_str();
  run->add_flag("--check", o->check,
                "compare with naive loops (first 16 rows); exit 1 above 1e-5");
  run->add_option("--repeat", o->repeat,
                  "timed forward calls, and backward with --grad (each after "
                  "one untimed warm-up call)")
      ->check(kInt64)
      ->capture_default_str();
  run->add_option("--threads", o->threads,
                  "threads a call may use (batch row chunks; default "
                  "EINSTRUCT_NUM_THREADS, else all)")
      ->check(CLI::Range(1, 4096));
  run->add_option("--router", o->router,
                  "BTT-MoE: router weight Wg.npy (d_in, experts); default "
                  "uniform(-1, 1) from --seed");
  run->add_option("--bias", o->bias,
                  "b.npy or FILE.safetensors:TENSOR (d_out): added to y; with "
                  "--grad also writes db.npy");
  run->add_option("--aux-weight", o->auxWeight,
                  "BTT-MoE: weight of the aux loss in --grad")
      ->check(kNonNegativeReal)
      ->capture_default_str();
  run->add_option("--mixer", o->mixer,
                  "run a sequence mixer instead: ssd(heads, head_dim, state, "
                  "chunk), hydra(...), m2-conv(causal), monarch-seq(blocks), "
                  "or Hydra's whole block hydra-block(state, conv, expand, "
                  "head_dim, chunk)");
  run->add_option("--seq-len", o->seqLen,
                  "--mixer: tokens per sequence (default: --input's)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 24));
  run->add_option("--d-model", o->dModel,
                  "--mixer m2-conv, monarch-seq or hydra-block: channels "
                  "per token (default: --input's)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  return {run, [o, batch] {
            return o->mixer.empty() ? runRun(*o)
                                    : runMixerCommand(*o, batch->count() > 0);
          }};
}

} // namespace einstruct::cli
