// MLIR functions lowered by the CPU pipeline and compiled by the JIT (or
// loaded from the on-disk object cache), called through their C interfaces
// with memref descriptors.
#pragma once
#include "VectorUnits.h"
#include "search/Result.h"

#include "llvm/ADT/STLFunctionalExtras.h"

#include <memory>
#include <string>
#include <vector>

namespace mlir {
class ExecutionEngine;
class MLIRContext;
class ModuleOp;
class OpPassManager;
} // namespace mlir

namespace einstruct {

class LoadedObject;

class JitModule {
public:
  using Packed = void (*)(void **);
  ~JitModule();
  // `emit` fills the module; `before` adds passes ahead of the CPU
  // pipeline; `entries` are the functions to look up, in order, and the
  // only ones compiled (with what they call).
  static Result<std::unique_ptr<JitModule>>
  compile(llvm::function_ref<void(mlir::ModuleOp)> emit,
          llvm::function_ref<void(mlir::OpPassManager &)> before,
          const std::vector<std::string> &entries, VectorUnits units);
  // The packed C interface of entries[i]: void(void **args).
  Packed entry(size_t i) const { return entries_[i]; }
  // Whether the code came from the object cache (objectcache::directory()).
  bool fromCache() const { return fromCache_; }

private:
  JitModule() = default;
  std::unique_ptr<mlir::MLIRContext> context_;
  // One of the two runs the code: the engine that generated it, or the
  // object loaded from the cache.
  std::unique_ptr<mlir::ExecutionEngine> engine_;
  std::unique_ptr<LoadedObject> loaded_;
  std::vector<Packed> entries_;
  bool fromCache_ = false;
};

// A memref descriptor as the C interface lays it out:
// {allocated, aligned, offset, sizes[rank], strides[rank]}.
constexpr size_t descriptorWords(size_t rank) { return 3 + 2 * rank; }
struct Descriptor {
  std::vector<int64_t> words;
  explicit Descriptor(size_t rank) : words(descriptorWords(rank), 0) {}
  // A row-major array of `shape` at `data`.
  Descriptor(const void *data, const std::vector<int64_t> &shape);
  void *ptr() { return words.data(); }
};

// Calls `function` with the result slot `results` and one descriptor per
// operand.
void callPacked(JitModule::Packed function, void *results,
                std::vector<Descriptor> &operands);

// Copies a returned rank-`rank` buffer (possibly strided) out of the words
// at `d` into `dest` (none when null) and frees it unless it aliases one
// of the inputs.
void takeResult(const int64_t *d, size_t rank,
                const std::vector<const void *> &inputs, float *dest);

// Calls `function` on `operands` and copies its `results` (their shapes)
// into `outs` (takeResult; `inputs` are the operands' data).
void callInto(JitModule::Packed function, std::vector<Descriptor> &operands,
              const std::vector<const void *> &inputs,
              const std::vector<std::vector<int64_t>> &results,
              const std::vector<float *> &outs);

} // namespace einstruct
