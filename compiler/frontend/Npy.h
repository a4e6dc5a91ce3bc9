// NumPy .npy files of float32: the exchange format of `einstruct run`. C or
// Fortran order on reading (np.save of a transposed array writes the latter;
// it is returned in C order); always C order on writing. Strict: anything
// else is refused with the byte offset of the problem. (Hand-written because
// the readers packaged for C++ do not report where a file is corrupt.)
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
