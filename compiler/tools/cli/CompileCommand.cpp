// `einstruct compile`: fused CUDA kernels (or cuBLAS calls) for a spec as a
// .h/.cu pair, optionally prebuilt into the runtime's cache; or a PyTorch
// module running the layer through the runtime; or, stopping earlier, the
// layer's IR before or after --einstruct-plan-cuda.
#include "CompileCommand.h"
#include "compiler/cpu/ObjectCache.h"
#include "compiler/cuda/CudaLayer.h"
#include "compiler/cuda/LayerSources.h"
#include "compiler/frontend/JsonFile.h"
#include "compiler/frontend/ModelReader.h"
#include "compiler/frontend/Report.h"
#include "compiler/frontend/TextNesting.h"
#include "compiler/frontend/WeightFiles.h"
#include "compiler/ir/EmitLayer.h"
#include "compiler/ir/ParseModule.h"
#include "compiler/passes/CudaPipeline.h"
#include "compiler/passes/FirstError.h"
#include "compiler/passes/LayerOfOp.h"
#include "compiler/passes/Passes.h"
#include "compiler/torch/TorchModule.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Parser/Parser.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"

#include <cstdio>
#include <cstdlib>
#include <fmt/format.h>
#include <unistd.h>

namespace einstruct::cli {

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

std::string printed(mlir::Operation *op) {
  std::string text;
  llvm::raw_string_ostream os(text);
  op->print(os);
  return text;
}

namespace {

// The name the layer's files and symbols get: --name, or einstruct_ + family.
std::string layerName(const CompileOptions &o, const Layer &layer) {
  if (!o.name.empty())
    return o.name;
  std::string name = "einstruct_";
  for (char c : layer.name)
    name += std::isalnum((unsigned char)c) ? c : '_';
  return name;
}

int runCompileTorch(const CompileOptions &o) {
  if (!o.target.empty() && o.target != "cpu")
    return fail(fmt::format("--emit torch: --target '{}' does not apply: the "
                            "module runs on the tensors' device (CPU: the "
                            "JIT; CUDA: the generated kernels, built on "
                            "first use)",
                            o.target));
  if (!o.mixer.empty())
    return runCompileMixer(o);
  auto layer = singleLayer(o.file, o.args, "compile");
  if (!layer)
    return fail(layer.error());
  std::string name = layerName(o, *layer);
  std::string runtime = runtimeLibrary();
  auto text = emitTorchModule(*layer, name, runtime);
  if (!text)
    return fail(text.error());
  if (int rc = makeOutputDirectory(o.dir))
    return rc;
  if (int rc = emit(*text, o.dir + "/" + name + ".py"))
    return rc;
  std::printf("wrote %s/%s.py (torch.nn.Module %s; runtime %s)\n",
              o.dir.c_str(), name.c_str(), name.c_str(), runtime.c_str());
  return 0;
}

// The flags' CUDA target, checked ("--arch: unknown ...").
Result<CudaTarget> cudaTarget(const CompileOptions &o) {
  auto target =
      cudaTargetFrom(o.arch, o.dtype, o.smemKb, !o.noWgmma, o.hopperTile);
  if (!target)
    return Error{"--" + target.error()};
  return target;
}

// `layers` as einstruct IR (functions named `names`), planned for the
// flags' target when `planned`.
Result<mlir::OwningOpRef<mlir::ModuleOp>>
layersIr(mlir::MLIRContext &ctx, const std::vector<Layer> &layers,
         const std::vector<std::string> &names, const CudaTarget &target,
         bool planned) {
  if (planned)
    return plannedLayers(ctx, layers, names, target);
  auto module = layerModule(ctx, layers, names);
  if (!module)
    return Error{"internal: the emitted IR does not verify"};
  return module;
}

// Each layer function of the planned `module` as DIR/NAME.h and NAME.cu
// (NAME: the function's name), emitted from the plan its IR records, so an
// edited plan is the one emitted. `entries` gets one manifest entry per
// library (the function, its #einstruct.cuda_plan, files, how the kernels
// were planned), `skipped` the functions that are not layers.
Result<bool> addLibraries(OutputFiles &out, mlir::ModuleOp module,
                          const CudaTarget &target, const std::string &dir,
                          std::vector<nlohmann::json> &entries,
                          std::vector<std::string> &skipped) {
  auto libraries = layerLibraries(module, &target, skipped);
  if (!libraries)
    return Error{libraries.error()};
  for (const auto &lib : *libraries) {
    const std::string &name = lib.function;
    out.add(dir + "/" + name + ".h", lib.sources.sources.header);
    out.add(dir + "/" + name + ".cu", lib.sources.sources.source);
    entries.push_back({{"function", name},
                       {"einsum", layerSignature(lib.plan.layer())},
                       {"files", {name + ".h", name + ".cu"}},
                       {"kernels", lib.sources.why},
                       {"cuda_plan", lib.cudaPlan}});
  }
  return true;
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
  auto module = layersIr(ctx, layers, names, target, o.emit != "mlir");
  if (!module)
    return fail(fmt::format("{}: {}", o.model, module.error()));
  if (int rc = makeOutputDirectory(o.dir))
    return rc;
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
  nlohmann::json manifest = {{"model", m->name},
                             {"arch", o.arch},
                             {"dtype", o.dtype},
                             {"budget_flops", r->budgetFlops},
                             {"total_flops", r->totalFlops},
                             {"total_params", r->totalParams},
                             {"dense_flops", r->denseFlops},
                             {"dense_params", r->denseParams},
                             {"layers", nlohmann::json::array()}};
  std::vector<nlohmann::json> entries;
  std::vector<std::string> skipped;
  if (auto ok = addLibraries(out, **module, target, o.dir, entries, skipped);
      !ok)
    return fail(fmt::format("{}: {}", o.model, ok.error()));
  // Each library with the search's record of its layer.
  for (size_t k = 0; k < entries.size() && k < r->choices.size(); ++k) {
    auto entry = candidateJson(r->choices[k].pick);
    entry.update(entries[k]);
    entry["layer"] = r->choices[k].layer.name;
    entry["count"] = r->choices[k].layer.count;
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

// compile FILE.mlir: einstruct IR in, as einstruct-opt reads it. Dense
// layers are replaced by structures (--einstruct-select-structure: each op's
// einstruct.budget, else 1/4 of the dense MACs), every layer is planned
// (--einstruct-plan-cuda), and each layer function becomes a library named
// after it, with DIR/manifest.json; --emit mlir|planned writes the module
// after the first pass or both instead.
int runCompileMlir(const CompileOptions &o, const CudaTarget &target) {
  auto text = readTextFile(o.file);
  if (!text)
    return fail(text.error());
  if (auto at = tooDeeplyNested(*text))
    return fail(fmt::format("{}:{}:{}: nested deeper than {} levels",
                            o.file, at->line, at->column, kMaxTextNesting));
  mlir::MLIRContext ctx;
  loadDialects(ctx);
  FirstError first(&ctx);
  // The first error, after its file:line:column when it has one.
  auto error = [&]() -> std::string {
    if (!first.where)
      return "";
    auto at = mlir::dyn_cast<mlir::FileLineColLoc>(*first.where);
    return (at ? fmt::format("{}:{}:{}: ", at.getFilename().str(), at.getLine(),
                             at.getColumn())
               : "") +
           first.text;
  };
  auto module = parseModule(*text, &ctx, o.file);
  if (!module)
    return fail(first.where ? error() : o.file + ": not einstruct IR");
  mlir::PassManager pm(&ctx);
  pm.addPass(createSelectStructure());
  if (o.emit != "mlir")
    pm.addPass(createPlanCuda(planCudaOptions(target)));
  if (mlir::failed(pm.run(*module)))
    return fail(error());
  if (int rc = makeOutputDirectory(o.dir))
    return rc;
  std::string stem = o.file.substr(o.file.rfind('/') + 1);
  stem = stem.substr(0, stem.size() - 5);
  OutputFiles out;
  if (o.emit == "mlir" || o.emit == "planned") {
    const std::string path = o.dir + "/" + stem + ".mlir";
    if (int rc = emit(printed(*module), path))
      return rc;
    std::printf("wrote %s (%s)\n", path.c_str(),
                o.emit == "planned" ? "structures selected and planned"
                                    : "structures selected");
    return 0;
  }
  std::vector<nlohmann::json> entries;
  std::vector<std::string> skipped;
  if (auto ok = addLibraries(out, *module, target, o.dir, entries, skipped);
      !ok)
    return fail(fmt::format("{}: {}", o.file, ok.error()));
  if (entries.empty())
    return fail(fmt::format("{}: no layer function (einstruct.layer ops "
                            "summed and returned, or one einstruct.moe_layer)",
                            o.file));
  nlohmann::json manifest = {{"source", o.file},
                             {"arch", o.arch},
                             {"dtype", o.dtype},
                             {"layers", entries},
                             {"skipped", skipped}};
  out.add(o.dir + "/manifest.json", manifest.dump(2) + "\n");
  if (int rc = commit(out))
    return rc;
  std::printf("wrote %zu layer libraries of %s to %s (%s, %s)%s; "
              "manifest.json lists them\n",
              entries.size(), o.file.c_str(), o.dir.c_str(), o.dtype.c_str(),
              o.arch.c_str(),
              skipped.empty()
                  ? ""
                  : fmt::format(", {} other function(s) left out",
                                skipped.size())
                        .c_str());
  return 0;
}

int runCompile(const CompileOptions &o) {
  if (o.emit == "torch")
    return runCompileTorch(o);
  if (!o.mixer.empty())
    return runCompileMixer(o);
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
  const std::string mlirExt = ".mlir";
  if (o.file.size() > mlirExt.size() &&
      o.file.compare(o.file.size() - mlirExt.size(), mlirExt.size(),
                     mlirExt) == 0) {
    if (o.args.theta || o.args.einsum || o.args.structure)
      return fail("give an einstruct IR file or an inline spec, not both");
    if (o.prebuild)
      return fail("--prebuild takes one spec, not einstruct IR");
    return runCompileMlir(o, *target);
  }
  auto layer = singleLayer(o.file, o.args, "compile");
  if (!layer)
    return fail(layer.error());
  const std::string name = layerName(o, *layer);
  if (o.emit == "mlir" || o.emit == "planned") {
    mlir::MLIRContext ctx;
    auto module = layersIr(ctx, {*layer}, {}, *target, o.emit == "planned");
    if (!module)
      return fail(fmt::format(
          "{}: {}", layer->label.empty() ? layer->name : layer->label,
          module.error()));
    if (int rc = makeOutputDirectory(o.dir))
      return rc;
    const std::string path = o.dir + "/" + name + ".mlir";
    if (int rc = emit(printed(**module), path))
      return rc;
    std::printf("wrote %s (%s)\n", path.c_str(),
                o.emit == "planned" ? "einstruct IR with #einstruct.cuda_plan"
                                    : "einstruct IR");
    return 0;
  }
  // The layer's plan as its planned IR records it (the path of a model or
  // an IR file): one plan for the files written and, with --prebuild, the
  // runtime's library (the two differ only in their symbols' names).
  const std::string label = layer->label.empty() ? layer->name : layer->label;
  auto plan = planLayerThroughIr(*layer, *target);
  if (!plan)
    return fail(fmt::format("{}: {}", label, plan.error()));
  auto kernels = layerSources(*plan, name);
  if (!kernels)
    return fail(fmt::format("{}: {}", label, kernels.error()));
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
    auto lib = CudaLayer::load(*plan);
    if (!lib)
      return fail(fmt::format("--prebuild: {}", lib.error()));
    prebuilt = fmt::format("prebuilt {} ({})\n", (*lib)->libraryPath(),
                           (*lib)->fromCache() ? "found in the cache" : "nvcc");
  }
  if (int rc = makeOutputDirectory(o.dir))
    return rc;
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
                 "CPU JIT, or the CUDA kernels for CUDA tensors). A model "
                 "file (--model) or einstruct IR (FILE.mlir: dense layers "
                 "selected under their budgets) gives a library per layer "
                 "and DIR/manifest.json");
  addSpecOptions(compile, o->file, o->args);
  compile->add_option("--emit", o->emit,
                      "how far to go: mlir (the layer's einstruct IR), "
                      "planned (the IR with its #einstruct.cuda_plan), "
                      "kernels (CUDA .h/.cu) or torch (a PyTorch module)")
      ->capture_default_str();
  compile->add_option("--target", o->target,
                      "cuda (the default) for kernels; --emit torch takes "
                      "none (the module follows its tensors' device)");
  auto *dtype = compile
                    ->add_option("--dtype", o->dtype,
                                 "f32, bf16 or f16; --mixer libraries: f32 "
                                 "(their default) or bf16 inputs and outputs "
                                 "(float32 inside)")
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
                    "einstruct_layer_create_cuda on such a GPU finds it; "
                    "with --mixer, the mixer's two float32 libraries, for "
                    "einstruct_mixer_create_cuda");
  compile->add_option("--model", o->model,
                      "model JSON: every layer gets the structure `search "
                      "--model` picks under the file's budget, then its "
                      "kernels; writes DIR/manifest.json too");
  compile->add_option("--mixer", o->mixer,
                      "a sequence mixer instead of a layer: "
                      "ssd(heads, head_dim, state, chunk), hydra(...), "
                      "m2-conv(causal), monarch-seq(blocks), "
                      "hydra-block(...) or m2-block(...): its CUDA libraries "
                      "(forward and backward) with DIR/manifest.json, or "
                      "with --emit torch DIR/NAME.py (einstruct.nn.Mixer "
                      "with the spec fixed), with --emit mlir DIR/NAME.mlir "
                      "(its IR and derived backward)");
  compile->add_option("--seq-len", o->seqLen, "--mixer: tokens per sequence")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 24));
  compile
      ->add_option("--d-model", o->dModel,
                   "--mixer m2-conv, monarch-seq or hydra-block: channels "
                   "per token")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  compile->add_option("-o,--output", o->dir, "output directory")->required();
  return {compile, [o, dtype] {
            o->dtypeGiven = dtype->count() > 0;
            return runCompile(*o);
          }};
}

} // namespace einstruct::cli
