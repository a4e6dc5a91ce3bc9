// `einstruct export`: an einstruct layer's weights as the tensors the public
// code's module holds (fly's MonarchLinear/BlockdiagLinear, einsum-search's
// CoLALayer/BTTMoELayer), in one safetensors file for load_state_dict.
#include "Cli.h"
#include "compiler/frontend/Safetensors.h"
#include "compiler/interop/Checkpoint.h"

#include <cstdio>
#include <fmt/format.h>

namespace einstruct::cli {
namespace {

struct ExportOptions {
  std::string file, to, weights, router, bias, name, output;
  SpecArgs args;
};

Result<NpyArray> vectorFile(const std::string &path, int64_t n) {
  auto b = readArrayFile(path);
  if (!b)
    return b;
  if (elementCount(b->shape) != n || b->shape.size() > 2)
    return Error{fmt::format("{}: shape {} must be (d_out = {})", path,
                             shapeText(b->shape), n)};
  b->shape = {n};
  return b;
}

int runExport(const ExportOptions &o) {
  auto source = parseCheckpointSource(o.to);
  if (!source)
    return fail("--to: " + source.error());
  auto layer = singleLayer(o.file, o.args, "export");
  if (!layer)
    return fail(layer.error());
  ImportedLayer l;
  l.name = o.name;
  l.layer = *layer;
  auto weights = readLayerWeights(o.weights, *layer);
  if (!weights)
    return fail(weights.error());
  auto shapes = weightShapes(*layer);
  for (size_t k = 0; k < shapes.size(); ++k)
    l.weights.push_back(reshaped(std::move((*weights)[k]), shapes[k]));
  if (layer->experts) {
    if (o.router.empty())
      return fail("--router: a btt-moe layer needs its router (d_in, experts)");
    auto r = readArrayFile(o.router);
    if (!r)
      return fail(r.error());
    if (r->shape != std::vector<int64_t>{layer->dIn, layer->experts})
      return fail(fmt::format("{}: shape {} must be (d_in = {}, experts = {})",
                              o.router, shapeText(r->shape), layer->dIn,
                              layer->experts));
    l.router = *r;
  }
  if (!o.bias.empty()) {
    auto b = vectorFile(o.bias, layer->dOut);
    if (!b)
      return fail(b.error());
    l.bias = *b;
  }
  auto tensors = exportLayer(l, *source);
  if (!tensors)
    return fail(tensors.error());
  OutputFiles out;
  out.add(o.output, encodeSafetensors(*tensors));
  if (int rc = commit(out))
    return rc;
  for (const auto &[name, a] : *tensors)
    std::printf("wrote    %s:%s %s\n", o.output.c_str(), name.c_str(),
                shapeText(a.shape).c_str());
  return 0;
}

} // namespace

Command addExportCommand(CLI::App &app) {
  auto o = std::make_shared<ExportOptions>();
  auto *cmd = app.add_subcommand(
      "export", "Write a layer's weights as fly's or einsum-search's module "
                "holds them (one .safetensors for load_state_dict)");
  addSpecOptions(cmd, o->file, o->args);
  cmd->add_option("--to", o->to, "fly, m2 or einsum-search")->required();
  cmd->add_option("--weights", o->weights,
                  "w1,w2,...: the layer's weights (.npy or "
                  "FILE.safetensors:TENSOR)")
      ->required();
  cmd->add_option("--router", o->router, "BTT-MoE: the router (d_in, E)");
  cmd->add_option("--bias", o->bias, "the bias (d_out)");
  cmd->add_option("--name", o->name,
                  "the module path the tensors are keyed under (\"mlp.fc1\" "
                  "writes mlp.fc1.blkdiag1, ...)");
  cmd->add_option("-o,--output", o->output, "OUT.safetensors")->required();
  return {cmd, [o] { return runExport(*o); }};
}

} // namespace einstruct::cli
