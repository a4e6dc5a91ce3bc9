// `einstruct project`: the structured weights nearest a dense one (per-block
// SVD), written as .npy files or one safetensors file.
#include "Cli.h"
#include "compiler/frontend/Npy.h"
#include "compiler/frontend/Safetensors.h"
#include "compiler/frontend/WeightFiles.h"
#include "compiler/project/Projection.h"

#include <cstdio>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace einstruct::cli {
namespace {

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
    out.add(o.dir, encodeSafetensors(named, weightMetadata(*layer)));
    for (auto &[name, w] : named)
      written.push_back(o.dir + ":" + name);
  } else {
    if (int rc = makeOutputDirectory(o.dir))
      return rc;
    std::vector<std::string> names;
    for (size_t k = 0; k < p->weights.size(); ++k) {
      names.push_back(fmt::format("w{}.npy", k + 1));
      out.add(o.dir + "/" + names.back(), encodeNpy(p->weights[k]));
      written.push_back(o.dir + "/" + names.back());
    }
    // Which layer they are for, so that run refuses them for another.
    out.add(o.dir + "/" + kWeightSidecar, weightSidecar(*layer, names));
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

} // namespace

Command addProjectCommand(CLI::App &app) {
  auto o = std::make_shared<ProjectOptions>();
  auto *project = app.add_subcommand(
      "project", "Project a dense weight onto a structure (per-block SVD): "
                 "writes DIR/w1.npy, ... and prints the relative error");
  addSpecOptions(project, o->file, o->args);
  project
      ->add_option("--weight", o->weight,
                   "dense W.npy or W.safetensors:TENSOR, (d_out, d_in) as "
                   "torch.nn.Linear.weight")
      ->required();
  project->add_flag("--in-out", o->inOut,
                    "the file is (d_in, d_out), as a JAX/Flax kernel");
  project
      ->add_option("-o,--output", o->dir,
                    "output directory (w1.npy, ...), or FILE.safetensors "
                    "(tensors w1, ...)")
      ->required();
  return {project, [o] { return runProject(*o); }};
}

} // namespace einstruct::cli
