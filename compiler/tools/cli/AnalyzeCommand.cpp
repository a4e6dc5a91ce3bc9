// `einstruct analyze`: params, MACs, ω, ψ, ν and sizes of structure specs
// (a table, JSON lines, or the dialect's IR).
#include "Cli.h"
#include "compiler/frontend/Report.h"
#include "compiler/ir/EmitLayer.h"
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
