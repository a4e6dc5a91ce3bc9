// `einstruct analyze`: params, MACs, ω, ψ, ν and sizes of structure specs
// (a table, JSON lines, or the dialect's IR).
#include "Cli.h"
#include "compiler/frontend/Report.h"
#include "compiler/ir/EmitLayer.h"
#include "search/Mixer.h"
#include "search/Named.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace einstruct::cli {
namespace {

struct AnalyzeOptions {
  std::vector<std::string> files;
  SpecArgs args;
  std::string output;
  bool json = false, emitMlir = false;
  std::vector<std::string> mixers;
  int64_t seqLen = 0, dModel = 0;
};

// `analyze --mixer`: sequence mixers, costed per sequence.
int runAnalyzeMixers(const AnalyzeOptions &o) {
  if (!o.files.empty() || o.args.theta || o.args.einsum || o.args.structure ||
      o.emitMlir)
    return fail("--mixer analyses mixers only: give no layer spec or "
                "--emit-mlir with it");
  if (o.seqLen < 1)
    return fail("--mixer needs --seq-len L (the sequence length)");
  std::vector<MixerAnalysis> analyses;
  for (const auto &text : o.mixers) {
    auto spec = parseMixer(text);
    if (!spec)
      return fail("--mixer: " + spec.error());
    const bool perChannel = spec->family != "ssd" && spec->family != "hydra";
    if (perChannel && o.dModel < 1)
      return fail(fmt::format("--mixer {}: needs --d-model (its channels)",
                              spec->family));
    auto a = analyzeMixer(*spec, o.seqLen, perChannel ? o.dModel : 1);
    if (!a)
      return fail(fmt::format("--mixer {}: {}", text, a.error()));
    analyses.push_back(*a);
  }
  std::string text;
  if (o.json) {
    for (size_t k = 0; k < analyses.size(); ++k)
      text += mixerJson(o.mixers[k], analyses[k]).dump() + "\n";
  } else {
    text = mixerTable(o.mixers, analyses);
  }
  return emit(text, o.output);
}

int runAnalyze(const AnalyzeOptions &o) {
  if (!o.mixers.empty())
    return runAnalyzeMixers(o);
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
    auto module = layerModule(ctx, layers);
    if (!module)
      return fail("internal: the emitted IR does not verify");
    llvm::raw_string_ostream os(text);
    module->print(os);
  } else if (o.json) {
    for (size_t k = 0; k < layers.size(); ++k)
      text += analysisJson(layers[k], analyses[k]).dump() + "\n";
  } else {
    text = analysisTable(layers, analyses);
  }
  return emit(text, o.output);
}

} // namespace

Command addAnalyzeCommand(CLI::App &app) {
  auto o = std::make_shared<AnalyzeOptions>();
  auto *analyze = app.add_subcommand(
      "analyze",
      "Cost structure specs: params, FLOPs (multiply-adds per input vector; "
      "x2 for floating point operations), ω, ψ, ν, sizes, padding");
  analyze->add_option("files", o->files, "JSON spec files (object or array)");
  analyze->add_option("--theta", o->args.theta,
                      "θ text (α|β|γ|δ|ε|φ|ρ), e.g. '(0.5|0|0.5|0|0.5|0.5|0)'");
  analyze->add_option("--einsum", o->args.einsum,
                      "einsum 'x,W1,W2->y', e.g. 'gba,fdrga,fergb->fed'");
  analyze->add_option("--sizes", o->args.sizes,
                      "index sizes for --einsum, e.g. 'g=64,a=64,f=64,e=64'");
  analyze->add_option("--structure", o->args.structure,
                      fmt::format("named structure with parameters, e.g. "
                                  "'btt(rank=8)', 'monarch(64)'; one of: {}",
                                  fmt::join(namedFamilies(), ", ")));
  analyze->add_option("--d-in", o->args.dIn, "input dimension")
      ->check(kInt64);
  analyze->add_option("--d-out", o->args.dOut, "output dimension")
      ->check(kInt64);
  analyze
      ->add_option("--sizing", o->args.sizing,
                   "θ → sizes: 'round' (the reference's, pads ≤ 15%) or "
                   "'exact' (integer factorisation, no padding)")
      ->capture_default_str();
  analyze->add_option("--mixer", o->mixers,
                      fmt::format("a sequence mixer, e.g. 'hydra(heads=12, "
                                  "head_dim=64, state=64)' (repeatable); one "
                                  "of: {}",
                                  fmt::join(mixerFamilies(), ", ")));
  analyze->add_option("--seq-len", o->seqLen, "--mixer: the sequence length L")
      ->check(kInt64);
  analyze->add_option("--d-model", o->dModel,
                      "--mixer: the channels of dense-seq, toeplitz and "
                      "low-rank-seq")
      ->check(kInt64);
  analyze->add_flag("--json", o->json,
                    "one JSON object per spec, one per line (flops are "
                    "multiply-adds)");
  analyze->add_flag("--emit-mlir", o->emitMlir,
                    "print the einstruct dialect IR instead");
  analyze->add_option("-o,--output", o->output,
                      "write here (atomically) instead of stdout");
  return {analyze, [o] { return runAnalyze(*o); }};
}

} // namespace einstruct::cli
