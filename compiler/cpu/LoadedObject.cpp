#include "LoadedObject.h"
#include "BufferPool.h"

#include "llvm/ExecutionEngine/Orc/ExecutionUtils.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"

namespace einstruct {

llvm::orc::SymbolMap runtimeSymbols(llvm::orc::MangleAndInterner &interner) {
  llvm::orc::SymbolMap symbols;
  auto bind = [&](const char *name, auto *function) {
    symbols[interner(name)] = {llvm::orc::ExecutorAddr::fromPtr(function),
                               llvm::JITSymbolFlags::Exported};
  };
  bind("_mlir_memref_to_llvm_alloc", &einstruct_pool_alloc);
  bind("_mlir_memref_to_llvm_aligned_alloc", &einstruct_pool_aligned_alloc);
  bind("_mlir_memref_to_llvm_free", &einstruct_pool_free);
  return symbols;
}

LoadedObject::~LoadedObject() = default;

Result<std::unique_ptr<LoadedObject>>
LoadedObject::load(std::unique_ptr<llvm::MemoryBuffer> object) {
  auto fail = [](llvm::Error e) {
    return Error{"cannot load a cached object: " + llvm::toString(std::move(e))};
  };
  auto jit = llvm::orc::LLJITBuilder().create();
  if (!jit)
    return fail(jit.takeError());
  std::unique_ptr<LoadedObject> loaded(new LoadedObject());
  loaded->jit_ = std::move(*jit);
  llvm::orc::LLJIT &lljit = *loaded->jit_;
  llvm::orc::JITDylib &main = lljit.getMainJITDylib();
  char prefix = lljit.getDataLayout().getGlobalPrefix();
  // libc (memcpy, ...) from this process, memrefCopy and friends from MLIR's
  // C runner utilities, the allocation functions from the pool.
  auto process =
      llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(prefix);
  if (!process)
    return fail(process.takeError());
  main.addGenerator(std::move(*process));
  auto utils = llvm::orc::DynamicLibrarySearchGenerator::Load(
      EINSTRUCT_C_RUNNER_UTILS, prefix);
  if (!utils)
    return fail(utils.takeError());
  main.addGenerator(std::move(*utils));
  llvm::orc::MangleAndInterner interner(lljit.getExecutionSession(),
                                        lljit.getDataLayout());
  if (auto err = main.define(llvm::orc::absoluteSymbols(runtimeSymbols(interner))))
    return fail(std::move(err));
  if (auto err = lljit.addObjectFile(std::move(object)))
    return fail(std::move(err));
  return loaded;
}

Result<void (*)(void **)>
LoadedObject::packed(const std::string &function) const {
  auto address = jit_->lookup("_mlir_" + function);
  if (!address)
    return Error{"cached object lacks " + function + ": " +
                 llvm::toString(address.takeError())};
  return address->toPtr<void (*)(void **)>();
}

} // namespace einstruct
