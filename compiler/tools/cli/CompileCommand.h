// What `einstruct compile`'s parts share: its options, and the helpers
// that the layer and mixer paths (CompileCommand.cpp, CompileMixer.cpp)
// both call.
#pragma once
#include "Cli.h"

#include "mlir/IR/Operation.h"

namespace einstruct::cli {

struct CompileOptions {
  std::string file;
  SpecArgs args;
  std::string emit = "kernels", target, dtype = "bf16", arch = "sm_90a", name,
              dir;
  int64_t smemKb = 0;
  bool prebuild = false, noWgmma = false;
  std::string hopperTile;
  std::string model;       // a model file: every layer searched and compiled
  std::string mixer;       // a sequence mixer (--emit torch)
  int64_t seqLen = 0;      // its sequence length
  int64_t dModel = 0;      // its channels (m2-conv, monarch-seq, hydra-block)
  bool dtypeGiven = false; // --dtype on the command line (mixers: else f32)
};

// The runtime library next to this binary (bin/../lib).
std::string runtimeLibrary();

// `op` as MLIR text.
std::string printed(mlir::Operation *op);

// --mixer: the mixer's CUDA libraries, IR or torch module (CompileMixer.cpp).
int runCompileMixer(const CompileOptions &o);

} // namespace einstruct::cli
