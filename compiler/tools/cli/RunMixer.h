// `einstruct run --mixer SPEC`: what `run` does for a sequence mixer.
#pragma once
#include "Cli.h"

namespace einstruct::cli {

struct MixerRunOptions {
  std::string spec;     // "ssd(heads=..., ...)", "m2-conv(...)", ...
  int64_t seqLen = 0;   // 0: from --input's x
  int64_t dModel = 0;   // m2-conv, monarch-seq: 0 from --input's x
  int64_t batch = 1;    // generated sequences
  uint64_t seed = 0;
  std::string input;    // a safetensors file of the named operands
  std::string output, grad, gradDir = ".";
  int repeat = 5;
  int threads = 0;
};

int runMixer(const MixerRunOptions &o);

} // namespace einstruct::cli
