#include "compiler/cuda/CudaMixer.h"
#include "compiler/ir/EmitLayer.h"
#include "compiler/ir/EmitMixer.h"
#include "compiler/passes/CudaPipeline.h"

#include <fmt/format.h>

namespace einstruct {

CudaMixer::~CudaMixer() = default;

Result<std::unique_ptr<CudaMixer>>
CudaMixer::load(const NamedSpec &spec, int64_t length, int64_t channels,
                const std::string &arch, int device) {
  auto plan = planMixer(spec, length, channels);
  if (!plan)
    return Error{plan.error()};
  std::unique_ptr<CudaMixer> m(new CudaMixer);
  m->plan_ = std::move(*plan);
  m->operands_ = mixerOperands(m->plan_);
  // The compiler's path, as `einstruct compile --mixer` writes the
  // libraries: the same sources, so the same cache entries.
  mlir::MLIRContext ctx(mlir::MLIRContext::Threading::DISABLED);
  loadDialects(ctx);
  auto module = plannedMixer(ctx, m->plan_, "mixer");
  if (!module)
    return Error{module.error()};
  auto libraries = chainLibraries(**module);
  if (!libraries)
    return Error{libraries.error()};
  if (libraries->size() != 2)
    return Error{fmt::format("internal: {} CUDA libraries for the mixer, not "
                             "its forward and backward",
                             libraries->size())};
  for (size_t k = 0; k < 2; ++k) {
    const ChainLibrary &source = (*libraries)[k];
    Chain &chain = k == 0 ? m->forwardChain_ : m->backwardChain_;
    auto lib = CudaLibrary::load(
        source.sources, source.function, arch, /*cublas=*/true, device,
        [&](CudaLibrary &opened) -> Result<bool> {
          if (!opened.bind(chain.run, source.function) ||
              !opened.bind(chain.workspaceBytes,
                           source.function + "_workspace_bytes"))
            return Error{opened.path() + " lacks einstruct's entry points"};
          return true;
        });
    if (!lib)
      return Error{lib.error()};
    chain.lib = std::move(*lib);
  }
  return m;
}

Result<bool> CudaMixer::uploadConstants() const {
  std::lock_guard<std::mutex> lock(constantsMutex_);
  const std::vector<M2ConvConstant> constants = mixerConstants(plan_);
  if (constants.empty() || !constants_.empty())
    return true;
  std::vector<CudaLibrary::DeviceCopy> copies;
  for (const M2ConvConstant &k : constants) {
    auto copy = forwardChain_.lib->upload(k.values.data(), k.values.size() * 4);
    if (!copy)
      return Error{copy.error()};
    copies.push_back(std::move(*copy));
  }
  constants_ = std::move(copies);
  return true;
}

Result<bool> CudaMixer::call(const Chain &chain, const char *what,
                             const std::vector<const void *> &in,
                             const std::vector<void *> &out, int64_t batch,
                             void *stream) const {
  const CudaLibrary &lib = *chain.lib;
  if (auto ok = lib.useDevice(); !ok)
    return ok;
  // Each array is device memory of the mixer's device, named as the
  // operands are: x, dt, ..., then dy; y, or dx, ddt, ...
  auto nameOf = [&](bool input, size_t k) {
    const bool backward = &chain == &backwardChain_;
    if (input)
      return k < operands_.size() ? operands_[k].name : std::string("dy");
    return backward ? "d" + operands_[k].name : std::string("y");
  };
  for (bool input : {true, false}) {
    const size_t n = input ? in.size() : out.size();
    for (size_t k = 0; k < n; ++k) {
      const std::string name = nameOf(input, k);
      const void *p = input ? in[k] : out[k];
      if (auto ok = lib.checkPointers({{name.c_str(), p}}, "mixer"); !ok)
        return ok;
    }
  }
  if (auto ok = uploadConstants(); !ok)
    return ok;
  // The function's inputs: the operands, the constants, then dy.
  std::vector<const void *> args(in.begin(), in.begin() + operands_.size());
  for (const auto &k : constants_)
    args.push_back(k.get());
  args.insert(args.end(), in.begin() + operands_.size(), in.end());
  const size_t bytes = chain.workspaceBytes(batch);
  CudaLibrary::Scratch ws(lib, stream);
  if (bytes)
    if (auto ok = ws.allocate(bytes); !ok)
      return ok;
  return lib.status(
      chain.run(reinterpret_cast<const float *const *>(args.data()),
                reinterpret_cast<float *const *>(out.data()), batch, ws.get(),
                bytes, stream),
      what);
}

Result<bool> CudaMixer::forward(const std::vector<const void *> &in,
                                int64_t batch, void *y, void *stream) const {
  if (batch < 1)
    return Error{fmt::format("batch = {} must be positive", batch)};
  if (in.size() != operands_.size())
    return Error{fmt::format("{} operands given, {} takes {}", in.size(),
                             plan_.family, operands_.size())};
  return call(forwardChain_, "forward", in, {y}, batch, stream);
}

Result<bool> CudaMixer::backward(const std::vector<const void *> &in,
                                 const void *dy, int64_t batch,
                                 const std::vector<void *> &grads,
                                 void *stream) const {
  if (batch < 1)
    return Error{fmt::format("batch = {} must be positive", batch)};
  if (in.size() != operands_.size() || grads.size() != operands_.size())
    return Error{fmt::format("{} operands and {} gradients given, {} takes {}",
                             in.size(), grads.size(), plan_.family,
                             operands_.size())};
  std::vector<const void *> inputs = in;
  inputs.push_back(dy);
  return call(backwardChain_, "backward", inputs, grads, batch, stream);
}

Result<bool> CudaMixer::synchronize(void *stream) const {
  // Each library has its own CUDA runtime: this one's current device may
  // not be set on this thread yet.
  const CudaLibrary &lib = *forwardChain_.lib;
  if (auto ok = lib.useDevice(); !ok)
    return ok;
  return lib.synchronize(stream);
}

} // namespace einstruct
