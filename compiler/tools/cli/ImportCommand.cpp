// `einstruct import`: a checkpoint of fly/M2 or einsum-search layers as
// einstruct layers: per layer a spec (NAME.json) and its weights
// (NAME.safetensors: w1, w2, ..., router, bias, marked with the layer and
// its layout), and manifest.json listing them.
#include "Cli.h"
#include "compiler/interop/Checkpoint.h"

#include <cstdio>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace einstruct::cli {
namespace {

struct ImportOptionsCli {
  std::string from, checkpoint, dir, layer;
  int64_t dIn = 0, dOut = 0, topK = 2;
  std::string theta;
  bool normalised = false;
};

int runImport(const ImportOptionsCli &o) {
  auto source = parseCheckpointSource(o.from);
  if (!source)
    return fail("--from: " + source.error());
  auto tensors = readCheckpoint(o.checkpoint);
  if (!tensors)
    return fail(tensors.error());
  ImportOptions io;
  io.only = o.layer;
  if (o.dIn)
    io.dIn = o.dIn;
  if (o.dOut)
    io.dOut = o.dOut;
  io.topK = o.topK;
  io.theta = o.theta;
  io.normalised = o.normalised;
  auto layers = importCheckpoint(*tensors, *source, io);
  if (!layers)
    return fail(fmt::format("{}: {}", o.checkpoint, layers.error()));
  if (int rc = makeOutputDirectory(o.dir))
    return rc;
  OutputFiles out;
  addImportFiles(*layers, o.dir, out);
  std::string report;
  for (const ImportedLayer &l : *layers) {
    const std::string stem = o.dir + "/" + importStem(l.name);
    const std::string weights = stem + ".safetensors";
    std::vector<std::string> weightArgs;
    for (size_t k = 0; k < l.weights.size(); ++k)
      weightArgs.push_back(fmt::format("{}:w{}", weights, k + 1));
    report += fmt::format("imported {} {} {}->{}: {}{}{}\n",
                          l.name.empty() ? "(root)" : l.name,
                          l.theta.empty() ? l.structure : "θ " + l.theta,
                          l.layer.dIn, l.layer.dOut,
                          fmt::join(weightArgs, ","),
                          l.router ? " + router" : "", l.bias ? " + bias" : "");
    for (const auto &n : l.notes)
      report += "         " + n + "\n";
    report += fmt::format("         run: einstruct run {}.json --weights {}{}{}\n",
                          stem, fmt::join(weightArgs, ","),
                          l.router ? " --router " + weights + ":router" : "",
                          l.bias ? " --bias " + weights + ":bias" : "");
  }
  if (int rc = commit(out))
    return rc;
  std::fputs(report.c_str(), stdout);
  std::printf("wrote    %s/manifest.json (%zu layer%s from %s's layout)\n",
              o.dir.c_str(), layers->size(), layers->size() == 1 ? "" : "s",
              sourceName(*source));
  return 0;
}

} // namespace

Command addImportCommand(CLI::App &app) {
  auto o = std::make_shared<ImportOptionsCli>();
  auto *cmd = app.add_subcommand(
      "import", "Read a checkpoint's structured layers (fly/M2 Monarch and "
                "block-diagonal, einsum-search BTT and BTT-MoE) as einstruct "
                "specs and weights");
  cmd->add_option("--from", o->from, "fly, m2 or einsum-search")->required();
  cmd->add_option("checkpoint", o->checkpoint, "CHECKPOINT.safetensors")
      ->required();
  cmd->add_option("-o,--output", o->dir,
                  "output directory: NAME.json, NAME.safetensors per layer "
                  "and manifest.json")
      ->required();
  cmd->add_option("--layer", o->layer, "import only this module path");
  cmd->add_option("--d-in", o->dIn,
                  "fly/M2: the layer's unpadded input features (the "
                  "checkpoint stores only the padded size); with --theta: "
                  "the generic layers' d_in")
      ->check(kInt64 & CLI::PositiveNumber);
  cmd->add_option("--d-out", o->dOut,
                  "fly/M2: the unpadded output features (default: the "
                  "bias's length); with --theta: the generic layers' d_out")
      ->check(kInt64 & CLI::PositiveNumber);
  cmd->add_option("--top-k", o->topK,
                  "BTT-MoE: experts per token (a constructor argument, not "
                  "in the checkpoint)")
      ->check(kInt64 & CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--theta", o->theta,
                  "einsum-search: the θ its generic `einsum` layers were "
                  "built from (round sizing); layers whose cores have its "
                  "shapes are imported as it");
  cmd->add_flag("--normalized", o->normalised,
                "einsum-search: the generic layers normalise (einsum_norm): "
                "fold it in");
  return {cmd, [o] { return runImport(*o); }};
}

} // namespace einstruct::cli
