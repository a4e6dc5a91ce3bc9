// `einstruct compile --mixer SPEC`: a sequence mixer's or block's CUDA
// libraries with manifest.json, its IR, or a torch module.
#include "CompileCommand.h"
#include "compiler/cpu/ObjectCache.h"
#include "compiler/cuda/CudaMixer.h"
#include "compiler/frontend/Safetensors.h"
#include "compiler/ir/EmitLayer.h"
#include "compiler/ir/EmitMixer.h"
#include "compiler/passes/CudaPipeline.h"
#include "compiler/passes/Passes.h"
#include "compiler/torch/TorchModule.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/PassManager.h"

#include <cstdio>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace einstruct::cli {
namespace {

// The CUDA libraries of a planned mixer module's functions (into `out`,
// under DIR), with manifest.json: operands, constants (M2's DFT matrices,
// written as NAME_constants.safetensors) and what the caller does.
Result<size_t> addMixerLibraries(OutputFiles &out, mlir::ModuleOp module,
                                 const MixerPlan &plan, const std::string &spec,
                                 const std::string &name,
                                 const std::string &dir, bool bf16) {
  auto libraries = chainLibraries(module, bf16);
  if (!libraries)
    return Error{"--mixer: " + libraries.error()};
  nlohmann::json manifest = {{"mixer", spec},
                             {"seq_len", plan.length},
                             {"d_model", plan.channels},
                             {"dtype", bf16 ? "bf16" : "f32"},
                             {"libraries", nlohmann::json::array()}};
  // Each input and output by name: the operands (a block's parameters as
  // its reference's state_dict names them), the constants, the residuals
  // (NAME_saving's results after y, NAME_backward_saved's inputs before
  // dy), then dy; y, or a gradient each.
  const auto operands = mixerOperands(plan);
  auto nameOf = [&](const ChainLibrary &lib, const ChainBuffer &b) {
    const size_t k = size_t(b.index);
    const bool in = b.kind == ChainBuffer::Input;
    const std::vector<bool> &residual =
        in ? lib.plan.residualInput : lib.plan.residualOutput;
    if (residual[k])
      return "residual" + std::to_string(std::count(
                              residual.begin(), residual.begin() + k, true));
    if (in && k < operands.size())
      return operands[k].name;
    if (in)
      return std::string(lib.plan.constantInput[k] ? "constant" : "dy");
    return llvm::StringRef(lib.function).contains("_backward")
               ? "d" + operands[k].name
               : std::string("y");
  };
  for (const auto &lib : *libraries) {
    out.add(dir + "/" + lib.function + ".h", lib.sources.header);
    out.add(dir + "/" + lib.function + ".cu", lib.sources.source);
    nlohmann::json entry = {
        {"function", lib.function},
        {"files", {lib.function + ".h", lib.function + ".cu"}},
        {"inputs", nlohmann::json::array()},
        {"outputs", nlohmann::json::array()}};
    for (const auto &b : lib.plan.buffers)
      if (b.kind != ChainBuffer::Scratch)
        entry[b.kind == ChainBuffer::Input ? "inputs" : "outputs"].push_back(
            {{"index", b.index},
             {"name", nameOf(lib, b)},
             {"shape", b.shape},
             {"constant", b.kind == ChainBuffer::Input &&
                              lib.plan.constantInput[size_t(b.index)]}});
    manifest["libraries"].push_back(entry);
  }
  // M2's DFT matrices and twiddles (and its block's filter decay): the
  // constant inputs' values, by input index (the forward's and the
  // backward's are the same).
  auto constants = mixerConstants(plan);
  if (!constants.empty() && !libraries->empty()) {
    std::vector<std::pair<std::string, NpyArray>> tensors;
    const auto &first = libraries->front().plan.constantInput;
    size_t at =
        size_t(std::find(first.begin(), first.end(), true) - first.begin());
    for (auto &k : constants)
      tensors.push_back({"input" + std::to_string(at++),
                         NpyArray{k.shape, std::move(k.values)}});
    const std::string file = name + "_constants.safetensors";
    out.add(dir + "/" + file, encodeSafetensors(tensors));
    manifest["constants"] = file;
  }
  manifest["caller"] =
      plan.family == "hydra"
          ? "x [S, L, H, P]; dt (after its softplus), a = dt·A [S, L, 2, H] "
            "and B, C [S, L, 2, N], index 0 the forward pass's and 1 the "
            "backward pass's on the flipped sequence, as Hydra's reference "
            "concatenates them; d [S, L, H] (fc_D(x) + D); the chunk's "
            "padding is the library's"
      : plan.chunkedSsd()
          ? "x [S, L, H, P], dt (after its softplus) and a = dt·A [S, L, H], "
            "B and C [S, L, N] (one group), as Mamba-2's "
            "mamba_chunk_scan_combined takes them; the chunk's padding is "
            "the library's"
      : plan.family == "m2-conv"
          ? "x and y [S, L, C]; k (and k_rev when bidirectional) [L, C] "
            "and D [C], as M2's fftconv_ref takes them (channels last); "
            "then the constant inputs from the constants file; the DFT "
            "grid's padding is the library's, the block's gates are the "
            "caller's"
      : plan.family == "monarch-seq"
          ? "x and y [S, L, C]; w1 and w2 as fly stores them"
          : "x and y [S, L, d_model]; then the block's parameters, named "
            "and shaped as the reference's state_dict (blocks.Hydra, "
            "blocks.M2; the inputs' names), a gradient each from the "
            "backward, summed over the sequences; then any constant inputs "
            "from the constants file";
  out.add(dir + "/manifest.json", manifest.dump(2) + "\n");
  return libraries->size();
}

// --mixer: a module of einstruct.nn.Mixer with the spec fixed (torch); the
// mixer's einstruct IR with the backward --einstruct-autodiff derives
// (mlir), after --einstruct-plan-cuda too (planned); or the CUDA libraries
// of both functions with DIR/manifest.json (kernels, the default).
} // namespace

int runCompileMixer(const CompileOptions &o) {
  if (!o.file.empty() || o.args.theta || o.args.einsum || o.args.structure)
    return fail("give --mixer or a layer spec, not both");
  if (o.emit != "torch" && o.emit != "mlir" && o.emit != "planned" &&
      o.emit != "kernels")
    return fail(fmt::format("--mixer: --emit: unknown '{}' (known: mlir, "
                            "planned, kernels, torch)",
                            o.emit));
  if (!o.target.empty() && o.target != "cuda")
    return fail(fmt::format("--target: unknown '{}' (known: cuda)", o.target));
  if (o.seqLen < 1)
    return fail("--mixer needs --seq-len L");
  std::string name = o.name;
  if (name.empty()) {
    name = "einstruct_";
    for (char c : o.mixer.substr(0, o.mixer.find('(')))
      name += std::isalnum((unsigned char)c) ? c : '_';
  }
  // A mixer's libraries are float32 unless --dtype says bf16 (at the
  // boundary only: the SSD's decays need float32 inside).
  const std::string dtype = o.dtypeGiven ? o.dtype : "f32";
  if (o.emit == "kernels" && dtype != "f32" && dtype != "bf16")
    return fail(fmt::format("--dtype: a mixer's CUDA libraries take f32 or "
                            "bf16 (inputs and outputs; float32 inside), not "
                            "'{}'",
                            dtype));
  const bool bf16 = dtype == "bf16";
  if (o.prebuild && o.emit != "kernels")
    return fail("--prebuild goes with --emit kernels: it builds the "
                "libraries the runtime loads");
  if (o.prebuild && bf16)
    return fail("--prebuild: the runtime's CUDA mixers are float32; leave "
                "out --dtype bf16");
  if (o.prebuild && !objectcache::directory())
    return fail("--prebuild: the cache is off (EINSTRUCT_CACHE_DIR=off): "
                "there is nowhere to keep the libraries");
  if (o.emit != "torch") {
    auto named = parseMixer(o.mixer);
    if (!named)
      return fail("--mixer: " + named.error());
    auto plan = planMixer(*named, o.seqLen, o.dModel);
    if (!plan)
      return fail("--mixer: " + plan.error());
    mlir::MLIRContext ctx;
    loadDialects(ctx);
    mlir::OwningOpRef<mlir::ModuleOp> module;
    if (o.emit == "mlir") {
      module = mlir::ModuleOp::create(mlir::UnknownLoc::get(&ctx));
      emitMixer(*module, *plan, name);
      mlir::PassManager pm(&ctx);
      pm.addPass(createAutodiff());
      if (mlir::failed(pm.run(*module)))
        return fail("--mixer: internal: the mixer's backward did not derive");
    } else {
      auto planned = plannedMixer(ctx, *plan, name);
      if (!planned)
        return fail("--mixer: " + planned.error());
      module = std::move(*planned);
    }
    OutputFiles out;
    if (o.emit != "kernels") {
      const std::string path = o.dir + "/" + name + ".mlir";
      out.add(path, printed(module->getOperation()));
      if (int rc = makeOutputDirectory(o.dir); rc || (rc = commit(out)))
        return rc;
      // "@n and @n_backward", "@n, @n_backward, @n_saving and ...".
      std::vector<std::string> names;
      for (auto f : module->getOps<mlir::func::FuncOp>())
        names.push_back("@" + f.getSymName().str());
      std::string list = names.back();
      for (size_t k = names.size() - 1; k-- > 0;)
        list = names[k] + (k + 2 == names.size() ? " and " : ", ") + list;
      std::printf("wrote %s (einstruct IR: %s%s)\n", path.c_str(), list.c_str(),
                  o.emit == "planned" ? ", planned for CUDA" : "");
      return 0;
    }
    auto count =
        addMixerLibraries(out, *module, *plan, o.mixer, name, o.dir, bf16);
    if (!count)
      return fail(count.error());
    // --prebuild: the runtime's libraries of this mixer into the cache
    // first, so that a failure leaves no files behind.
    std::string prebuilt;
    if (o.prebuild) {
      auto cuda = CudaMixer::load(*named, o.seqLen, o.dModel, o.arch);
      if (!cuda)
        return fail("--prebuild: " + cuda.error());
      for (const std::string &path : (*cuda)->libraryPaths())
        prebuilt +=
            fmt::format("prebuilt {} ({})\n", path,
                        (*cuda)->fromCache() ? "found in the cache" : "nvcc");
    }
    if (int rc = makeOutputDirectory(o.dir); rc || (rc = commit(out)))
      return rc;
    std::printf("wrote %zu CUDA libraries of %s on %lld tokens to %s "
                "(%s; manifest.json lists their operands)\n%s",
                *count, o.mixer.c_str(), (long long)o.seqLen, o.dir.c_str(),
                bf16 ? "bfloat16 inputs and outputs, float32 inside"
                     : "float32",
                prebuilt.c_str());
    return 0;
  }
  std::string runtime = runtimeLibrary();
  auto text = emitTorchMixerModule(o.mixer, o.seqLen, o.dModel, name, runtime);
  if (!text)
    return fail("--mixer: " + text.error());
  if (int rc = makeOutputDirectory(o.dir))
    return rc;
  if (int rc = emit(*text, o.dir + "/" + name + ".py"))
    return rc;
  std::printf("wrote %s/%s.py (torch.nn.Module %s: %s on %lld tokens; "
              "runtime %s)\n",
              o.dir.c_str(), name.c_str(), name.c_str(), o.mixer.c_str(),
              (long long)o.seqLen, runtime.c_str());
  return 0;
}

} // namespace einstruct::cli
