#include "JitModule.h"
#include "BufferPool.h"
#include "CpuPipeline.h"
#include "JitOptimizer.h"
#include "LoadedObject.h"
#include "ObjectCache.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/TargetSelect.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <sys/mman.h>
#include <unistd.h>

namespace einstruct {

JitModule::~JitModule() = default;

namespace {
// The object code `engine` compiled. Its dump writes through a stream that
// aborts the process on an I/O error (a full cache disk did), so it is
// dumped into memory (a memfd) and stored by the cache's checked writer.
std::optional<std::string> compiledObject(mlir::ExecutionEngine &engine) {
  const int fd = ::memfd_create("einstruct-object", MFD_CLOEXEC);
  if (fd < 0)
    return std::nullopt;
  engine.dumpToObjectFile("/proc/self/fd/" + std::to_string(fd));
  std::string object;
  char chunk[1 << 16];
  ssize_t n;
  off_t at = 0;
  while ((n = ::pread(fd, chunk, sizeof chunk, at)) > 0 ||
         (n < 0 && errno == EINTR))
    if (n > 0) {
      object.append(chunk, size_t(n));
      at += n;
    }
  ::close(fd);
  if (n < 0 || object.empty())
    return std::nullopt;
  return object;
}

void initNativeTarget() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    // LLVM registers its signal handlers on first use (the object dump's
    // output file) and gives the registering thread an alternate signal
    // stack of its own. When that thread is a worker (a backward compiled
    // on first use), ASan's thread exit unmaps that stack as if it were
    // ASan's and aborts (llvm-project PR 194868). Registered here instead,
    // on the thread of the first compile, a cache hit included: usually
    // the main thread, which never runs that exit path.
    llvm::sys::AddSignalHandler([](void *) {}, nullptr);
  });
}
} // namespace

Result<std::unique_ptr<JitModule>>
JitModule::compile(llvm::function_ref<void(mlir::ModuleOp)> emit,
                   llvm::function_ref<void(mlir::OpPassManager &)> before,
                   const std::vector<std::string> &entries, VectorUnits units) {
  initNativeTarget();
  std::unique_ptr<JitModule> jit(new JitModule());
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
  emit(*module);
  module->walk([&](mlir::func::FuncOp f) {
    f->setAttr("llvm.emit_c_interface", mlir::UnitAttr::get(&ctx));
  });
  mlir::PassManager pm(&ctx);
  before(pm);
  // Only the entries, and what they call, are compiled: a module for a
  // backward alone does not compile the forward it was derived from.
  pm.addPass(mlir::createSymbolPrivatizePass(entries));
  pm.addPass(mlir::createSymbolDCEPass());
  buildCpuPipeline(pm, units);
  if (mlir::failed(pm.run(*module)))
    return Error{"CPU lowering failed: " + diagnostics};
  std::vector<std::string> names;
  for (const auto &e : entries)
    names.push_back("_mlir_ciface_" + e);
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
    // The object depends on the LLVM pipeline too (its unrolling, its
    // vector library): jitOptimizerKey() names them.
    cacheKey = objectcache::key(lowered + jitOptimizerKey(), **tm);
    if (auto object = objectcache::read(*cacheDir, cacheKey))
      if (auto loaded = LoadedObject::load(std::move(object))) {
        std::vector<Packed> found;
        for (const auto &name : names)
          if (auto f = (*loaded)->packed(name))
            found.push_back(*f);
        if (found.size() == names.size()) {
          jit->loaded_ = std::move(*loaded);
          jit->entries_ = std::move(found);
          jit->fromCache_ = true;
          return jit;
        }
      }
  }
  // `transformer` is a function_ref: the function it refers to must outlive
  // create() (ASan caught a temporary here).
  std::function<llvm::Error(llvm::Module *)> optimize = jitOptimizer(tm->get());
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
  for (const auto &name : names) {
    auto f = jit->engine_->lookupPacked(name);
    if (!f)
      return Error{"JIT compilation failed: " + llvm::toString(f.takeError())};
    jit->entries_.push_back(*f);
  }
  if (cacheDir)
    if (auto object = compiledObject(*jit->engine_))
      objectcache::store(*cacheDir, cacheKey, *object);
  return jit;
}

Descriptor::Descriptor(const void *data, const std::vector<int64_t> &shape)
    : words(descriptorWords(shape.size()), 0) {
  auto p = reinterpret_cast<int64_t>(data);
  words[0] = words[1] = p;
  int64_t stride = 1;
  for (size_t k = shape.size(); k-- > 0;) {
    words[3 + k] = shape[k];
    words[3 + shape.size() + k] = stride;
    stride *= shape[k];
  }
}

void callPacked(JitModule::Packed function, void *results,
                std::vector<Descriptor> &operands) {
  // Packed arguments: a pointer to each argument, the result slot first.
  std::vector<void *> pointers = {results};
  for (auto &d : operands)
    pointers.push_back(d.ptr());
  std::vector<void *> args;
  for (auto &p : pointers)
    args.push_back(&p);
  function(args.data());
}

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
  if (!dest) {
  } else if (contiguous) {
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

void callInto(JitModule::Packed function, std::vector<Descriptor> &operands,
              const std::vector<const void *> &inputs,
              const std::vector<std::vector<int64_t>> &results,
              const std::vector<float *> &outs) {
  std::vector<int64_t> words;
  for (const auto &r : results)
    words.resize(words.size() + descriptorWords(r.size()));
  callPacked(function, words.data(), operands);
  const int64_t *d = words.data();
  for (size_t k = 0; k < results.size(); ++k) {
    takeResult(d, results[k].size(), inputs, outs[k]);
    d += descriptorWords(results[k].size());
  }
}

} // namespace einstruct
