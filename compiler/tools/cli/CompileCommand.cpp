// `einstruct compile`: fused CUDA kernels (or cuBLAS calls) for a spec as a
// .h/.cu pair, optionally prebuilt into the runtime's cache; or a PyTorch
// module running the layer through the runtime; or, stopping earlier, the
// layer's IR before or after --einstruct-plan-cuda.
#include "Cli.h"
#include "compiler/cpu/ObjectCache.h"
#include "compiler/cuda/CudaLayer.h"
#include "compiler/cuda/LayerSources.h"
#include "compiler/frontend/ModelReader.h"
#include "compiler/frontend/Report.h"
#include "compiler/ir/EmitLayer.h"
#include "compiler/passes/Passes.h"
#include "compiler/torch/TorchModule.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"

#include <cstdio>
#include <cstdlib>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

namespace einstruct::cli {
namespace {

struct CompileOptions {
  std::string file;
  SpecArgs args;
  std::string emit = "kernels", target, dtype = "bf16", arch = "sm_90a", name,
                                 dir;
  int64_t smemKb = 0;
  bool prebuild = false, noWgmma = false;
  std::string hopperTile;
  std::string model; // a model file: every layer searched and compiled
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

// The flags' CUDA target, checked.
Result<CudaTarget> cudaTarget(const CompileOptions &o) {
  CudaTarget target;
  if (o.arch != "sm_80" && o.arch != "sm_90a")
    return Error{fmt::format("--arch: unknown '{}' (known: sm_80, sm_90a)",
                             o.arch)};
  target.arch = o.arch;
  if (auto known = dtypeFromName(o.dtype))
    target.dtype = *known;
  else
    return Error{fmt::format("--dtype: unknown '{}' (known: f32, bf16, f16)",
                             o.dtype)};
  if (o.smemKb < 0 || o.smemKb > 1024)
    return Error{fmt::format("--smem-kb {} must be in [0, 1024]", o.smemKb)};
  target.smemBudget = o.smemKb * 1024;
  target.wgmma = !o.noWgmma;
  if (!o.hopperTile.empty()) {
    auto tile = parseHopperTile(o.hopperTile);
    if (!tile)
      return Error{"--hopper-tile: " + tile.error()};
    target.hopperTile = *tile;
  }
  return target;
}

// `layers` as einstruct IR (functions named `names`), after
// --einstruct-plan-cuda with the flags' target when `planned`; an error
// names the layer the planner refused.
Result<mlir::OwningOpRef<mlir::ModuleOp>>
layersIr(mlir::MLIRContext &ctx, const CompileOptions &o,
         const std::vector<Layer> &layers,
         const std::vector<std::string> &names, bool planned) {
  auto module = layerModule(ctx, layers, names);
  if (!module)
    return Error{"internal: the emitted IR does not verify"};
  if (!planned)
    return module;
  // Each op is located at its function's name, so that an error names the
  // layer (of several, for a model).
  module->walk([&](mlir::func::FuncOp f) {
    auto at = mlir::NameLoc::get(f.getSymNameAttr());
    f.walk([&](mlir::Operation *op) { op->setLoc(at); });
  });
  std::string error;
  mlir::ScopedDiagnosticHandler collect(&ctx, [&](mlir::Diagnostic &d) {
    if (d.getSeverity() != mlir::DiagnosticSeverity::Error || !error.empty())
      return mlir::success();
    if (auto at = mlir::dyn_cast<mlir::NameLoc>(d.getLocation());
        at && layers.size() > 1)
      error = "@" + at.getName().str() + ": ";
    error += d.str();
    return mlir::success();
  });
  PlanCudaOptions plan;
  plan.arch = o.arch;
  plan.dtype = o.dtype;
  plan.smemKb = o.smemKb;
  plan.wgmma = !o.noWgmma;
  plan.hopperTile = o.hopperTile;
  mlir::PassManager pm(&ctx);
  pm.addPass(createPlanCuda(plan));
  if (mlir::failed(pm.run(*module)))
    return Error{error};
  return module;
}

std::string printed(mlir::Operation *op) {
  std::string text;
  llvm::raw_string_ostream os(text);
  op->print(os);
  return text;
}

// The layer's kernels, an error prefixed by the layer's label or family.
Result<LayerSources> layerKernels(const Layer &layer, const CudaTarget &target,
                                  const std::string &name) {
  auto src = layerSources(layer, target, name);
  if (!src)
    return Error{fmt::format(
        "{}: {}", layer.label.empty() ? layer.name : layer.label, src.error())};
  return src;
}

// A model layer's name as a C identifier: "attn.qkv" -> "attn_qkv".
std::string identifier(const std::string &text) {
  std::string id;
  for (char c : text)
    id += std::isalnum((unsigned char)c) ? c : '_';
  if (id.empty() || std::isdigit((unsigned char)id[0]))
    id = "l" + id;
  return id;
}

// compile --model: the structure model search picks one structure per layer
// under the file's budget (as `search --model` does), then every layer goes
// through the same planning and emission as a single spec: DIR/MODEL.mlir
// (--emit mlir|planned), or each layer's .h/.cu and DIR/manifest.json
// (layer -> structure, MACs, params, its #einstruct.cuda_plan, files).
int runCompileModel(const CompileOptions &o, const CudaTarget &target) {
  auto m = readModelFile(o.model);
  if (!m)
    return fail(m.error());
  auto budget = modelBudget(*m, o.model);
  if (!budget)
    return fail(budget.error());
  auto r = searchModel(m->layers, *budget, SearchSpace{}, Constraints{});
  if (!r)
    return fail(r.error());
  const std::string prefix = o.name.empty() ? "einstruct" : o.name;
  std::vector<Layer> layers;
  std::vector<std::string> names;
  for (const auto &c : r->choices) {
    layers.push_back(c.pick.layer);
    names.push_back(prefix + "_" + identifier(c.layer.name));
  }
  mlir::MLIRContext ctx;
  auto module = layersIr(ctx, o, layers, names, o.emit != "mlir");
  if (!module)
    return fail(fmt::format("{}: {}", o.model, module.error()));
  if (!makeDirectory(o.dir))
    return fail(fmt::format("{}: cannot create the directory", o.dir));
  OutputFiles out;
  if (o.emit == "mlir" || o.emit == "planned") {
    const std::string path = o.dir + "/" + prefix + ".mlir";
    out.add(path, printed(**module));
    if (int rc = commit(out))
      return rc;
    std::printf("wrote %s (%zu layers of %s)\n", path.c_str(), layers.size(),
                m->name.c_str());
    return 0;
  }
  // Each function's plan attribute, in the order of the layers.
  std::vector<std::string> plans;
  (*module)->walk([&](mlir::Operation *op) {
    if (auto a = op->getAttr("einstruct.cuda_plan")) {
      std::string text;
      llvm::raw_string_ostream os(text);
      a.print(os);
      plans.push_back(text);
    }
  });
  nlohmann::json manifest = {{"model", m->name},
                             {"arch", o.arch},
                             {"dtype", o.dtype},
                             {"budget_flops", r->budgetFlops},
                             {"total_flops", r->totalFlops},
                             {"total_params", r->totalParams},
                             {"dense_flops", r->denseFlops},
                             {"dense_params", r->denseParams},
                             {"layers", nlohmann::json::array()}};
  for (size_t k = 0; k < layers.size(); ++k) {
    auto kernels = layerKernels(layers[k], target, names[k]);
    if (!kernels)
      return fail(fmt::format("{}: layer '{}': {}", o.model,
                              r->choices[k].layer.name, kernels.error()));
    out.add(o.dir + "/" + names[k] + ".h", kernels->sources.header);
    out.add(o.dir + "/" + names[k] + ".cu", kernels->sources.source);
    auto entry = candidateJson(r->choices[k].pick);
    entry["layer"] = r->choices[k].layer.name;
    entry["count"] = r->choices[k].layer.count;
    entry["files"] = {names[k] + ".h", names[k] + ".cu"};
    entry["cuda_plan"] = k < plans.size() ? plans[k] : "";
    entry["kernels"] = kernels->why;
    manifest["layers"].push_back(entry);
  }
  out.add(o.dir + "/manifest.json", manifest.dump(2) + "\n");
  if (int rc = commit(out))
    return rc;
  std::printf("wrote %zu layers of %s to %s (%s, %s): %.1f%% of the dense "
              "model's MACs, %.1f%% of its params; manifest.json lists them\n",
              layers.size(), m->name.c_str(), o.dir.c_str(), o.dtype.c_str(),
              o.arch.c_str(), 100.0 * double(r->totalFlops) / double(r->denseFlops),
              100.0 * double(r->totalParams) / double(r->denseParams));
  return 0;
}

int runCompile(const CompileOptions &o) {
  if (o.emit == "torch")
    return runCompileTorch(o);
  if (o.emit != "kernels" && o.emit != "mlir" && o.emit != "planned")
    return fail(fmt::format("--emit: unknown '{}' (known: mlir, planned, "
                            "kernels, torch)",
                            o.emit));
  if (!o.target.empty() && o.target != "cuda")
    return fail(fmt::format("--target: unknown '{}' (known: cuda)", o.target));
  auto target = cudaTarget(o);
  if (!target)
    return fail(target.error());
  if (!o.model.empty()) {
    if (!o.file.empty() || o.args.theta || o.args.einsum || o.args.structure)
      return fail("give --model or one spec, not both");
    if (o.prebuild)
      return fail("--prebuild takes one spec, not --model");
    return runCompileModel(o, *target);
  }
  auto layer = singleLayer(o.file, o.args, "compile");
  if (!layer)
    return fail(layer.error());
  const std::string name = layerName(o, *layer);
  if (o.emit == "mlir" || o.emit == "planned") {
    mlir::MLIRContext ctx;
    auto module = layersIr(ctx, o, {*layer}, {}, o.emit == "planned");
    if (!module)
      return fail(fmt::format(
          "{}: {}", layer->label.empty() ? layer->name : layer->label,
          module.error()));
    if (!makeDirectory(o.dir))
      return fail(fmt::format("{}: cannot create the directory", o.dir));
    const std::string path = o.dir + "/" + name + ".mlir";
    if (int rc = emit(printed(**module), path))
      return rc;
    std::printf("wrote %s (%s)\n", path.c_str(),
                o.emit == "planned" ? "einstruct IR with #einstruct.cuda_plan"
                                    : "einstruct IR");
    return 0;
  }
  auto kernels = layerKernels(*layer, *target, name);
  if (!kernels)
    return fail(kernels.error());
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
    auto lib = CudaLayer::load(*layer, *target);
    if (!lib)
      return fail(fmt::format("--prebuild: {}", lib.error()));
    prebuilt = fmt::format("prebuilt {} ({})\n", (*lib)->libraryPath(),
                           (*lib)->fromCache() ? "found in the cache" : "nvcc");
  }
  if (!makeDirectory(o.dir))
    return fail(fmt::format("{}: cannot create the directory", o.dir));
  OutputFiles out;
  out.add(o.dir + "/" + name + ".h", kernels->sources.header);
  out.add(o.dir + "/" + name + ".cu", kernels->sources.source);
  if (int rc = commit(out))
    return rc;
  std::printf("wrote %s/%s.h and %s/%s.cu (%s, %s; %s)\n%s", o.dir.c_str(),
              name.c_str(), o.dir.c_str(), name.c_str(), o.dtype.c_str(),
              o.arch.c_str(), kernels->why.c_str(), prebuilt.c_str());
  return 0;
}

} // namespace

Command addCompileCommand(CLI::App &app) {
  auto o = std::make_shared<CompileOptions>();
  auto *compile = app.add_subcommand(
      "compile", "Emit fused CUDA kernels for a spec: DIR/NAME.h (C ABI) and "
                 "DIR/NAME.cu; or, with --emit torch, DIR/NAME.py: a "
                 "torch.nn.Module running the layer through the runtime (the "
                 "CPU JIT, or the CUDA kernels for CUDA tensors)");
  addSpecOptions(compile, o->file, o->args);
  compile->add_option("--emit", o->emit,
                      "how far to go: mlir (the layer's einstruct IR), "
                      "planned (the IR with its #einstruct.cuda_plan), "
                      "kernels (CUDA .h/.cu) or torch (a PyTorch module)")
      ->capture_default_str();
  compile->add_option("--target", o->target,
                      "cuda (the default) for kernels; --emit torch takes "
                      "none (the module follows its tensors' device)");
  compile->add_option("--dtype", o->dtype, "f32, bf16 or f16")
      ->capture_default_str();
  compile->add_option("--arch", o->arch,
                      "sm_80 or sm_90a (sets the shared-memory budget)")
      ->capture_default_str();
  compile->add_option("--smem-kb", o->smemKb,
                      "shared-memory budget per block in KiB (0: the arch's)")
      ->check(kInt64)
      ->capture_default_str();
  compile->add_flag("--no-wgmma", o->noWgmma,
                    "sm_90a: keep every role on the portable WMMA kernel");
  compile->add_option("--hopper-tile", o->hopperTile,
                      "sm_90a tile FC:NWG:STAGES for the wgmma kernel "
                      "(tuning; default: the tuning table, else analytic)");
  compile->add_option("--name", o->name,
                      "symbol prefix and file name (default: einstruct_ + "
                      "the family)");
  compile->add_flag("--prebuild", o->prebuild,
                    "also build the runtime's library of the layer for "
                    "--arch and --dtype into the cache (nvcc), where "
                    "einstruct_layer_create_cuda on such a GPU finds it");
  compile->add_option("--model", o->model,
                      "model JSON: every layer gets the structure `search "
                      "--model` picks under the file's budget, then its "
                      "kernels; writes DIR/manifest.json too");
  compile->add_option("-o,--output", o->dir, "output directory")->required();
  return {compile, [o] { return runCompile(*o); }};
}

} // namespace einstruct::cli
