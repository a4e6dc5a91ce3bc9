// `einstruct compile`: fused CUDA kernels (or cuBLAS calls) for a spec as a
// .h/.cu pair, optionally prebuilt into the runtime's cache; or a PyTorch
// module running the layer through the runtime.
#include "Cli.h"
#include "compiler/cpu/ObjectCache.h"
#include "compiler/cuda/CudaEmitter.h"
#include "compiler/cuda/CudaLayer.h"
#include "compiler/cuda/GemmEmitter.h"
#include "compiler/torch/TorchModule.h"

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
  compile->add_option("-o,--output", o->dir, "output directory")->required();
  return {compile, [o] { return runCompile(*o); }};
}

} // namespace einstruct::cli
