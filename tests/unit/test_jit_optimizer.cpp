// The JIT's LLVM pipeline on hand-written IR: O3's partial unroller is off
// (the compile-time choice JitOptimizer.h explains).
#include "compiler/cpu/JitOptimizer.h"

#include "llvm/AsmParser/Parser.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/IR/Instructions.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"

#include <catch2/catch.hpp>

using namespace einstruct;

namespace {

// a[i] = a[i] * 2 + 1 for i < 4096.
constexpr const char *kLoop = R"(
define void @long(ptr noalias %a) {
entry:
  br label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %next, %loop ]
  %p = getelementptr float, ptr %a, i64 %i
  %v = load float, ptr %p
  %m = fmul float %v, 2.0
  %w = fadd float %m, 1.0
  store float %w, ptr %p
  %next = add i64 %i, 1
  %done = icmp eq i64 %next, 4096
  br i1 %done, label %exit, label %loop
exit:
  ret void
}
)";

// Stores in `f`, and how many are vector stores.
std::pair<int, int> stores(const llvm::Function &f) {
  int all = 0, vector = 0;
  for (const auto &block : f)
    for (const auto &inst : block)
      if (auto *s = llvm::dyn_cast<llvm::StoreInst>(&inst)) {
        ++all;
        vector += s->getValueOperand()->getType()->isVectorTy();
      }
  return {all, vector};
}

} // namespace

TEST_CASE("the JIT's optimizer vectorises a long loop and does not unroll "
          "the vector loop further",
          "[jit]") {
  llvm::InitializeNativeTarget();
  auto builder = llvm::orc::JITTargetMachineBuilder::detectHost();
  REQUIRE(bool(builder));
  auto tm = builder->createTargetMachine();
  REQUIRE(bool(tm));
  llvm::LLVMContext context;
  llvm::SMDiagnostic error;
  auto module = llvm::parseAssemblyString(kLoop, error, context);
  REQUIRE(module);
  module->setDataLayout((*tm)->createDataLayout());
  module->setTargetTriple((*tm)->getTargetTriple());
  REQUIRE(!jitOptimizer(tm->get())(module.get()));

  // The vector loop: at most 4 interleaved vector stores per iteration, no
  // scalar remainder (4096 divides). O3's partial unroller makes it 16.
  auto [all, vector] = stores(*module->getFunction("long"));
  CHECK(vector >= 1);
  CHECK(vector <= 4);
  CHECK(all == vector);
}
