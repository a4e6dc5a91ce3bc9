// The einstruct command line: `einstruct analyze` costs structure specs.
#include "compiler/frontend/Report.h"
#include "compiler/frontend/SpecReader.h"
#include "compiler/ir/EmitLayer.h"
#include "search/Named.h"

#include "mlir/IR/Verifier.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <unistd.h>

using namespace einstruct;

namespace {

constexpr int kUsageError = 2;

int fail(const std::string &msg) {
  std::fprintf(stderr, "einstruct: error: %s\n", msg.c_str());
  return kUsageError;
}

// Writes to stdout, or to `path` through a temporary file renamed into place
// so that a failure never leaves a partial output.
int emit(const std::string &text, const std::string &path) {
  if (path.empty() || path == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
  }
  std::string tmp = fmt::format("{}.tmp.{}", path, getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      return fail(fmt::format("{}: cannot write the output", path));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return fail(fmt::format("{}: cannot write the output", path));
  }
  return 0;
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
    for (size_t k = 0; k < layers.size(); ++k)
      emitLayer(module, layers[k],
                layers.size() == 1 ? "layer" : fmt::format("layer{}", k));
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

} // namespace

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
  analyze->add_option("--d-in", a.args.dIn, "input dimension");
  analyze->add_option("--d-out", a.args.dOut, "output dimension");
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp &e) {
    return app.exit(e);
  } catch (const CLI::ParseError &e) {
    return fail(e.what());
  }
  if (analyze->parsed())
    return runAnalyze(a);
  return fail("unknown command");
}
