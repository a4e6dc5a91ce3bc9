// A layer compiled by the CPU JIT, failing the current test when it is not.
#pragma once
#include "compiler/cpu/JitLayer.h"

#include <catch2/catch.hpp>

namespace einstruct::testing {

inline std::unique_ptr<JitLayer>
compiledLayer(const Layer &layer, VectorUnits units = hostVectorUnits()) {
  auto jit = JitLayer::compile(layer, units);
  if (!jit)
    FAIL(jit.error());
  return std::move(*jit);
}

} // namespace einstruct::testing
