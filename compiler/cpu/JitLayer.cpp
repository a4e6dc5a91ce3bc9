#include "JitLayer.h"
#include "BufferPool.h"
#include "CpuPipeline.h"
#include "LoadedObject.h"
#include "ObjectCache.h"
#include "WorkerPool.h"
#include "compiler/ir/EmitLayer.h"
#include "compiler/passes/Passes.h"

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"

#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/Support/TargetSelect.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <mutex>
#include <thread>

namespace einstruct {

JitLayer::~JitLayer() = default;

namespace {

// The C interfaces of the two functions emitLayer + autodiff produce.
constexpr const char *kForward = "_mlir_ciface_layer";
constexpr const char *kBackward = "_mlir_ciface_layer_backward";

// A memref descriptor as the C interface lays it out:
// {allocated, aligned, offset, sizes[rank], strides[rank]}.
struct Descriptor {
  std::vector<int64_t> words;
  explicit Descriptor(size_t rank) : words(3 + 2 * rank, 0) {}
  Descriptor(const float *data, const std::vector<int64_t> &shape)
      : words(3 + 2 * shape.size(), 0) {
    auto p = reinterpret_cast<int64_t>(data);
    words[0] = words[1] = p;
    int64_t stride = 1;
    for (size_t k = shape.size(); k-- > 0;) {
      words[3 + k] = shape[k];
      words[3 + shape.size() + k] = stride;
      stride *= shape[k];
    }
  }
  void *ptr() { return words.data(); }
};

// Work a thread takes at least: one fused batch tile, and enough
// multiply-adds (~0.2 ms) that starting the thread (tens of µs) is noise.
constexpr int64_t kMinRowsPerThread = 24;
constexpr int64_t kMinMacsPerThread = int64_t(32) << 20;

int defaultThreads() {
  if (const char *env = std::getenv("EINSTRUCT_NUM_THREADS"))
    if (int n = std::atoi(env); n > 0)
      return n;
  return std::max(1u, std::thread::hardware_concurrency());
}

void initNativeTarget() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}

} // namespace

Result<std::unique_ptr<JitLayer>> JitLayer::compile(const Layer &layer,
                                                    VectorUnits units) {
  initNativeTarget();
  std::unique_ptr<JitLayer> jit(new JitLayer());
  jit->layer_ = layer;
  jit->weightShapes_ = einstruct::weightShapes(layer);
  jit->threads_ = defaultThreads();
  if (auto a = analyze(layer))
    jit->autoMinRows_ =
        std::max(kMinRowsPerThread,
                 kMinMacsPerThread / std::max<int64_t>(1, a->flops));
  jit->minRowsPerThread_ = jit->autoMinRows_;
  mlir::DialectRegistry registry;
  registerCpuPipelineDialects(registry);
  jit->context_ = std::make_unique<mlir::MLIRContext>(registry);
  mlir::MLIRContext &ctx = *jit->context_;
  ctx.loadAllAvailableDialects();
  std::string diagnostics;
  mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
    diagnostics += d.str() + "\n";
    return mlir::success();
  });
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::ModuleOp::create(mlir::UnknownLoc::get(&ctx));
  emitLayer(*module, layer, "layer");
  module->walk([&](mlir::func::FuncOp f) {
    f->setAttr("llvm.emit_c_interface", mlir::UnitAttr::get(&ctx));
  });
  mlir::PassManager pm(&ctx);
  pm.addPass(createAutodiff());
  buildCpuPipeline(pm, units);
  if (mlir::failed(pm.run(*module)))
    return Error{"CPU lowering failed: " + diagnostics};
  // Optimise for this host's vector units: without a target machine LLVM's
  // vectoriser assumes no vector registers.
  auto tmBuilder = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!tmBuilder)
    return Error{"cannot detect the host: " +
                 llvm::toString(tmBuilder.takeError())};
  auto tm = tmBuilder->createTargetMachine();
  if (!tm)
    return Error{"cannot create a target machine: " +
                 llvm::toString(tm.takeError())};
  // The object cache: a hit skips LLVM entirely. A cached object that does
  // not load is ignored (and replaced below).
  std::optional<std::string> cacheDir = objectcache::directory();
  std::string cacheKey;
  if (cacheDir) {
    std::string lowered;
    llvm::raw_string_ostream os(lowered);
    module->print(os);
    cacheKey = objectcache::key(lowered, **tm);
    if (auto object = objectcache::read(*cacheDir, cacheKey))
      if (auto loaded = LoadedObject::load(std::move(object))) {
        auto forward = (*loaded)->packed(kForward);
        auto backward = (*loaded)->packed(kBackward);
        if (forward && backward) {
          jit->loaded_ = std::move(*loaded);
          jit->forward_ = *forward;
          jit->backward_ = *backward;
          jit->fromCache_ = true;
          return jit;
        }
      }
  }
  // `transformer` is a function_ref: the function it refers to must outlive
  // create() (ASan caught a temporary here).
  std::function<llvm::Error(llvm::Module *)> optimize =
      mlir::makeOptimizingTransformer(3, 0, tm->get());
  mlir::ExecutionEngineOptions options;
  options.transformer = optimize;
  options.enableObjectDump = cacheDir.has_value();
  // memrefCopy and friends, called by bufferized copies.
  llvm::SmallVector<llvm::StringRef, 1> libs = {EINSTRUCT_C_RUNNER_UTILS};
  options.sharedLibPaths = libs;
  auto engine = mlir::ExecutionEngine::create(*module, options);
  if (!engine)
    return Error{"JIT compilation failed: " +
                 llvm::toString(engine.takeError())};
  jit->engine_ = std::move(*engine);
  jit->engine_->registerSymbols(
      [](llvm::orc::MangleAndInterner interner) {
        return runtimeSymbols(interner);
      });
  // Looking the entry points up generates the code (all of the module).
  for (auto [name, slot] : {std::pair{kForward, &jit->forward_},
                            std::pair{kBackward, &jit->backward_}}) {
    auto f = jit->engine_->lookupPacked(name);
    if (!f)
      return Error{"JIT compilation failed: " + llvm::toString(f.takeError())};
    *slot = *f;
  }
  if (cacheDir)
    objectcache::store(*cacheDir, cacheKey, [&](const std::string &path) {
      jit->engine_->dumpToObjectFile(path);
    });
  return jit;
}

namespace {

// Copies a returned rank-`rank` buffer (possibly strided) out of the words
// at `d` into `dest` and frees it unless it aliases one of the inputs.
void takeResult(const int64_t *d, size_t rank,
                const std::vector<const void *> &inputs, float *dest) {
  auto *allocated = reinterpret_cast<float *>(d[0]);
  auto *aligned = reinterpret_cast<float *>(d[1]);
  int64_t offset = d[2];
  std::vector<int64_t> sizes(d + 3, d + 3 + rank),
      strides(d + 3 + rank, d + 3 + 2 * rank);
  int64_t total = 1;
  bool contiguous = true;
  for (size_t r = rank; r-- > 0;) {
    contiguous = contiguous && (sizes[r] == 1 || strides[r] == total);
    total *= sizes[r];
  }
  if (contiguous) {
    std::memcpy(dest, aligned + offset, size_t(total) * sizeof(float));
  } else {
    std::vector<int64_t> idx(rank, 0);
    for (int64_t k = 0; k < total; ++k) {
      int64_t at = offset;
      for (size_t r = 0; r < rank; ++r)
        at += idx[r] * strides[r];
      dest[k] = aligned[at];
      for (size_t r = rank; r-- > 0;) {
        if (++idx[r] < sizes[r])
          break;
        idx[r] = 0;
      }
    }
  }
  if (std::find(inputs.begin(), inputs.end(), allocated) == inputs.end())
    bufferpool::release(allocated);
}

} // namespace

Result<bool> JitLayer::checkCall(int64_t batch,
                                 const std::vector<const float *> &weights) const {
  if (batch < 1)
    return Error{fmt::format("batch = {} must be positive", batch)};
  if (weights.size() != weightShapes_.size())
    return Error{fmt::format("{} weight tensors given, the layer has {}",
                             weights.size(), weightShapes_.size())};
  return true;
}

Result<bool> JitLayer::invoke(void (*function)(void **), void *results,
                              const float *x, const float *dy, int64_t batch,
                              const std::vector<const float *> &weights) const {
  // C interface: (results*, x*, w*..., [dy*]), each a memref descriptor.
  std::vector<Descriptor> operands;
  operands.emplace_back(x, std::vector<int64_t>{batch, layer_.dIn});
  for (size_t k = 0; k < weights.size(); ++k)
    operands.emplace_back(weights[k], weightShapes_[k]);
  if (dy)
    operands.emplace_back(dy, std::vector<int64_t>{batch, layer_.dOut});
  std::vector<void *> pointers = {results};
  for (auto &d : operands)
    pointers.push_back(d.ptr());
  std::vector<void *> args;
  for (auto &p : pointers)
    args.push_back(&p);
  function(args.data());
  return true;
}

namespace {

struct Chunk {
  int64_t start, rows;
};

std::vector<Chunk> chunks(int64_t batch, int threads, int64_t minRows) {
  int64_t k = std::clamp<int64_t>(batch / std::max<int64_t>(1, minRows), 1,
                                  threads);
  int64_t per = (batch + k - 1) / k;
  std::vector<Chunk> out;
  for (int64_t s = 0; s < batch; s += per)
    out.push_back({s, std::min(per, batch - s)});
  return out;
}

// Runs run(c) for every chunk at once (workers::run); the first error by
// chunk order.
template <class F>
Result<bool> inParallel(size_t count, F &&run) {
  std::vector<std::string> errors(count);
  workers::run(count, [&](size_t c) {
    auto r = run(c);
    if (!r)
      errors[c] = r.error();
  });
  for (auto &e : errors)
    if (!e.empty())
      return Error{e};
  return true;
}

} // namespace

void JitLayer::setThreads(int threads, int64_t minRowsPerThread) {
  threads_ = std::max(1, threads);
  minRowsPerThread_ = minRowsPerThread > 0 ? minRowsPerThread : autoMinRows_;
}

Result<bool> JitLayer::forwardInto(const float *x, int64_t batch,
                                  const std::vector<const float *> &weights,
                                  float *y) const {
  if (auto ok = checkCall(batch, weights); !ok)
    return ok;
  auto cs = chunks(batch, threads_, minRowsPerThread_);
  return inParallel(cs.size(), [&](size_t c) {
    return forwardRows(x + cs[c].start * layer_.dIn, cs[c].rows, weights,
                       y + cs[c].start * layer_.dOut);
  });
}

Result<bool> JitLayer::forwardRows(const float *x, int64_t batch,
                                  const std::vector<const float *> &weights,
                                  float *y) const {
  Descriptor result(2);
  auto ok = invoke(forward_, result.ptr(), x, nullptr, batch,
                   weights);
  if (!ok)
    return ok;
  std::vector<const void *> inputs(weights.begin(), weights.end());
  inputs.push_back(x);
  takeResult(result.words.data(), 2, inputs, y);
  return true;
}

Result<std::vector<float>>
JitLayer::forward(const float *x, int64_t batch,
                  const std::vector<const float *> &weights) const {
  if (auto ok = checkCall(batch, weights); !ok)
    return Error{ok.error()};
  std::vector<float> y(size_t(batch * layer_.dOut));
  auto ok = forwardInto(x, batch, weights, y.data());
  if (!ok)
    return Error{ok.error()};
  return y;
}

Result<bool> JitLayer::backwardInto(const float *x, const float *dy,
                                   int64_t batch,
                                   const std::vector<const float *> &weights,
                                   float *dx,
                                   const std::vector<float *> &dw) const {
  if (auto ok = checkCall(batch, weights); !ok)
    return ok;
  if (dw.size() != weightShapes_.size())
    return Error{fmt::format("{} weight gradients given, the layer has {}",
                             dw.size(), weightShapes_.size())};
  auto cs = chunks(batch, threads_, minRowsPerThread_);
  // Chunk 0 writes the caller's dw, the others their own sums (pooled:
  // fresh megabytes per call would fault their pages in), added after in
  // chunk order.
  std::vector<std::vector<PooledFloats>> partial(cs.size());
  auto ok = inParallel(cs.size(), [&](size_t c) {
    std::vector<float *> into = dw;
    if (c > 0)
      for (size_t k = 0; k < dw.size(); ++k)
        into[k] = partial[c]
                      .emplace_back(size_t(elementCount(weightShapes_[k])))
                      .data();
    return backwardRows(x + cs[c].start * layer_.dIn,
                        dy + cs[c].start * layer_.dOut, cs[c].rows, weights,
                        dx + cs[c].start * layer_.dIn, into);
  });
  if (!ok)
    return ok;
  for (size_t c = 1; c < cs.size(); ++c)
    for (size_t k = 0; k < dw.size(); ++k)
      for (size_t i = 0; i < partial[c][k].size(); ++i)
        dw[k][i] += partial[c][k][i];
  return true;
}

Result<bool> JitLayer::backwardRows(const float *x, const float *dy,
                                   int64_t batch,
                                   const std::vector<const float *> &weights,
                                   float *dx,
                                   const std::vector<float *> &dw) const {
  // Results come back as one struct of descriptors: dx, then each dw.
  size_t words = 3 + 2 * 2;
  for (auto &s : weightShapes_)
    words += 3 + 2 * s.size();
  std::vector<int64_t> results(words, 0);
  auto ok = invoke(backward_, results.data(), x, dy, batch,
                   weights);
  if (!ok)
    return ok;
  std::vector<const void *> inputs(weights.begin(), weights.end());
  inputs.push_back(x);
  inputs.push_back(dy);
  const int64_t *d = results.data();
  takeResult(d, 2, inputs, dx);
  d += 3 + 2 * 2;
  for (size_t k = 0; k < weightShapes_.size(); ++k) {
    takeResult(d, weightShapes_[k].size(), inputs, dw[k]);
    d += 3 + 2 * weightShapes_[k].size();
  }
  return true;
}

Result<JitLayer::Gradients>
JitLayer::backward(const float *x, const float *dy, int64_t batch,
                   const std::vector<const float *> &weights) const {
  if (auto ok = checkCall(batch, weights); !ok)
    return Error{ok.error()};
  Gradients g;
  g.dx.resize(size_t(batch * layer_.dIn));
  std::vector<float *> dw;
  for (auto &s : weightShapes_)
    dw.push_back(g.dw.emplace_back(size_t(elementCount(s))).data());
  auto ok = backwardInto(x, dy, batch, weights, g.dx.data(), dw);
  if (!ok)
    return Error{ok.error()};
  return g;
}

} // namespace einstruct
