// A layer compiled by the CPU JIT, failing the current test when it is not,
// and random values and weights for it.
#pragma once
#include "compiler/cpu/JitLayer.h"

#include <catch2/catch.hpp>
#include <random>
#include <vector>

namespace einstruct::testing {

inline std::unique_ptr<JitLayer>
compiledLayer(const Layer &layer, VectorUnits units = hostVectorUnits()) {
  auto jit = JitLayer::compile(layer, units);
  if (!jit)
    FAIL(jit.error());
  return std::move(*jit);
}

// Uniform(-1, 1) values for every weight of `jit` (weightShapes order), and
// pointers to them as the JIT takes them.
struct RandomWeights {
  std::vector<std::vector<float>> values;
  std::vector<const float *> pointers;
};

// `count` values uniform in (-1, 1).
inline std::vector<float> randomValues(int64_t count, std::mt19937 &rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> v(static_cast<size_t>(count));
  for (auto &e : v)
    e = u(rng);
  return v;
}

inline RandomWeights randomWeights(const JitLayer &jit, std::mt19937 &rng) {
  RandomWeights w;
  for (const auto &shape : jit.weightShapes())
    w.values.push_back(randomValues(elementCount(shape), rng));
  for (const auto &v : w.values)
    w.pointers.push_back(v.data());
  return w;
}

} // namespace einstruct::testing
