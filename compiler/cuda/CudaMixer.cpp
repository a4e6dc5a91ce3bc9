#include "compiler/cuda/CudaMixer.h"
#include "compiler/ir/EmitLayer.h"
#include "compiler/ir/EmitMixer.h"
#include "compiler/passes/CudaPipeline.h"

#include <fmt/format.h>
#include <map>

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
  std::map<std::string, const ChainLibrary *> byName;
  for (const ChainLibrary &l : *libraries)
    byName[l.function] = &l;
  // Trained from residuals where the IR has the pair (as on the CPU).
  const bool saving = byName.count("mixer_saving");
  std::vector<std::pair<const char *, Chain *>> chains = {
      {"mixer", &m->forwardChain_}};
  if (saving)
    chains.insert(chains.end(), {{"mixer_saving", &m->savingChain_},
                                 {"mixer_backward_saved", &m->backwardChain_}});
  else
    chains.push_back({"mixer_backward", &m->backwardChain_});
  for (auto [function, chain] : chains) {
    if (!byName.count(function))
      return Error{fmt::format("internal: no CUDA library of @{}", function)};
    const ChainLibrary &source = *byName[function];
    if (chain == &m->savingChain_) { // y, then the residuals
      m->residualElements_.resize(size_t(source.plan.outputs - 1));
      for (const ChainBuffer &b : source.plan.buffers)
        if (b.kind == ChainBuffer::Output &&
            source.plan.residualOutput[size_t(b.index)])
          m->residualElements_[size_t(b.index) - 1] = b.elems;
    }
    auto lib = CudaLibrary::load(
        source.sources, source.function, arch, /*cublas=*/true, device,
        [&](CudaLibrary &opened) -> Result<bool> {
          if (!opened.bind(chain->run, source.function) ||
              !opened.bind(chain->workspaceBytes,
                           source.function + "_workspace_bytes"))
            return Error{opened.path() + " lacks einstruct's entry points"};
          return true;
        });
    if (!lib)
      return Error{lib.error()};
    chain->lib = std::move(*lib);
  }
  return m;
}

std::vector<std::string> CudaMixer::libraryPaths() const {
  std::vector<std::string> paths;
  for (const Chain *c : {&forwardChain_, &savingChain_, &backwardChain_})
    if (c->lib)
      paths.push_back(c->lib->path());
  return paths;
}

bool CudaMixer::fromCache() const {
  for (const Chain *c : {&forwardChain_, &savingChain_, &backwardChain_})
    if (c->lib && !c->lib->fromCache())
      return false;
  return true;
}

Result<bool> CudaMixer::uploadConstants() const {
  std::lock_guard<std::mutex> lock(constantsMutex_);
  if (!constants_.empty())
    return true; // uploaded by an earlier call
  const std::vector<M2ConvConstant> constants = mixerConstants(plan_);
  if (constants.empty())
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
                             void *stream,
                             const std::vector<void *> &residuals) const {
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
  // The function's inputs: the operands, the constants, the residuals (a
  // backward from them), then dy; its outputs y or the gradients, then the
  // residuals (a saving forward).
  std::vector<const void *> args(in.begin(), in.begin() + operands_.size());
  for (const auto &k : constants_)
    args.push_back(k.get());
  std::vector<void *> results = out;
  if (&chain == &savingChain_)
    results.insert(results.end(), residuals.begin(), residuals.end());
  else
    args.insert(args.end(), residuals.begin(), residuals.end());
  args.insert(args.end(), in.begin() + operands_.size(), in.end());
  const size_t bytes = chain.workspaceBytes(batch);
  CudaLibrary::Scratch ws(lib, stream);
  if (bytes)
    if (auto ok = ws.allocate(bytes); !ok)
      return ok;
  return lib.status(
      chain.run(reinterpret_cast<const float *const *>(args.data()),
                reinterpret_cast<float *const *>(results.data()), batch,
                ws.get(), bytes, stream),
      what);
}

Result<bool> CudaMixer::checkCall(const std::vector<const void *> &in,
                                  int64_t batch) const {
  if (batch < 1)
    return Error{fmt::format("batch = {} must be positive", batch)};
  if (in.size() != operands_.size())
    return Error{fmt::format("{} operands given, {} takes {}", in.size(),
                             plan_.family, operands_.size())};
  return true;
}

Result<bool> CudaMixer::forward(const std::vector<const void *> &in,
                                int64_t batch, void *y, void *stream) const {
  if (auto ok = checkCall(in, batch); !ok)
    return ok;
  return call(forwardChain_, "forward", in, {y}, batch, stream);
}

Result<std::unique_ptr<CudaMixer::Saved>>
CudaMixer::allocateSaved(int64_t batch, void *stream) const {
  std::unique_ptr<Saved> saved(new Saved);
  saved->batch = batch;
  std::vector<int64_t> offsets;
  for (const ChainSize &n : residualElements_) {
    offsets.push_back(saved->bytes_);
    // 256-byte aligned, as the workspace's slots.
    saved->bytes_ += (n.at(batch) * 4 + 255) / 256 * 256;
  }
  if (!saved->bytes_)
    return saved;
  saved->memory =
      std::make_unique<CudaLibrary::Scratch>(*savingChain_.lib, stream);
  if (auto ok = saved->memory->allocate(size_t(saved->bytes_)); !ok)
    return Error{ok.error()};
  for (int64_t at : offsets)
    saved->residuals.push_back(static_cast<char *>(saved->memory->get()) + at);
  return saved;
}

Result<std::unique_ptr<CudaMixer::Saved>>
CudaMixer::forwardSaving(const std::vector<const void *> &in, int64_t batch,
                         void *y, void *stream) const {
  if (!savingChain_.lib) { // m2-conv, monarch-seq: nothing to keep
    if (auto ok = forward(in, batch, y, stream); !ok)
      return Error{ok.error()};
    return std::unique_ptr<Saved>(new Saved);
  }
  if (auto ok = checkCall(in, batch); !ok)
    return Error{ok.error()};
  if (auto ok = savingChain_.lib->useDevice(); !ok)
    return Error{ok.error()};
  auto saved = allocateSaved(batch, stream);
  if (!saved)
    return saved;
  if (auto ok = call(savingChain_, "forward", in, {y}, batch, stream,
                     (*saved)->residuals);
      !ok)
    return Error{ok.error()};
  return saved;
}

Result<bool> CudaMixer::backward(const std::vector<const void *> &in,
                                 const void *dy, int64_t batch,
                                 const std::vector<void *> &grads, void *stream,
                                 const Saved *saved) const {
  if (batch < 1)
    return Error{fmt::format("batch = {} must be positive", batch)};
  if (in.size() != operands_.size() || grads.size() != operands_.size())
    return Error{fmt::format("{} operands and {} gradients given, {} takes {}",
                             in.size(), grads.size(), plan_.family,
                             operands_.size())};
  if (saved && savingChain_.lib && saved->batch != batch)
    return Error{fmt::format("the saved forward ran on {} sequences, the "
                             "backward on {}",
                             saved->batch, batch)};
  std::vector<const void *> inputs = in;
  inputs.push_back(dy);
  if (!savingChain_.lib)
    return call(backwardChain_, "backward", inputs, grads, batch, stream);
  // No residuals given: the saving forward's first, into scratch (y too).
  std::unique_ptr<Saved> own;
  if (!saved) {
    if (auto ok = savingChain_.lib->useDevice(); !ok)
      return ok;
    auto kept = allocateSaved(batch, stream);
    if (!kept)
      return Error{kept.error()};
    own = std::move(*kept);
    CudaLibrary::Scratch y(*savingChain_.lib, stream);
    int64_t yElements = 1;
    for (int64_t e : outputShape())
      yElements *= e;
    if (auto ok = y.allocate(size_t(batch * yElements * 4)); !ok)
      return ok;
    if (auto ok = call(savingChain_, "backward's forward", in, {y.get()}, batch,
                       stream, own->residuals);
        !ok)
      return ok;
    saved = own.get();
  }
  return call(backwardChain_, "backward", inputs, grads, batch, stream,
              saved->residuals);
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
