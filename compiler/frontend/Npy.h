// NumPy .npy files, float32 in C order: the exchange format of `einstruct
// run`. Strict: anything else is refused with the byte offset of the problem.
// (Hand-written because the readers packaged for C++ accept more than float32
// C-order and do not report where a file is corrupt.)
#pragma once
#include "search/Result.h"

#include <cstdint>
#include <vector>

namespace einstruct {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

Result<NpyArray> readNpy(const std::string &path);
Result<NpyArray> parseNpy(const std::string &bytes, const std::string &source);
std::string encodeNpy(const NpyArray &a);

} // namespace einstruct
