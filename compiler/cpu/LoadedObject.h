// Object code from the JIT cache, linked into this process by ORC's LLJIT
// (no LLVM optimisation or code generation): the compiled layer's packed
// entry points, bound to the buffer pool and MLIR's C runner utilities like
// the ExecutionEngine that first produced the object.
#pragma once
#include "search/Result.h"

#include "llvm/ExecutionEngine/Orc/Core.h"
#include "llvm/ExecutionEngine/Orc/Mangling.h"
#include "llvm/Support/MemoryBuffer.h"

#include <memory>
#include <string>

namespace llvm::orc {
class LLJIT;
}

namespace einstruct {

// The symbols the JIT'd code calls that einstruct defines: MLIR's
// allocation functions, bound to the buffer pool.
llvm::orc::SymbolMap runtimeSymbols(llvm::orc::MangleAndInterner &interner);

class LoadedObject {
public:
  ~LoadedObject();
  static Result<std::unique_ptr<LoadedObject>>
  load(std::unique_ptr<llvm::MemoryBuffer> object);
  // The packed wrapper of `function` (what ExecutionEngine::lookupPacked
  // returns): void(void **args).
  Result<void (*)(void **)> packed(const std::string &function) const;

private:
  LoadedObject() = default;
  std::unique_ptr<llvm::orc::LLJIT> jit_;
};

} // namespace einstruct
