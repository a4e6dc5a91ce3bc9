// A two-weight einsum term read by θ-class (structures.md §1): each letter's
// class from which operands hold it, the class sizes, and the element stride
// of each class in x, W1, W2 and y. The CUDA planner and the dense→structured
// projection index tensors through it.
#pragma once
#include "Einsum.h"
#include "Theta.h"

namespace einstruct {

struct ClassStrides {
  std::array<int64_t, kNumClasses> size{1, 1, 1, 1, 1, 1, 1};
  // stride[operand][class]: operand 0 = x, 1 = W1, 2 = W2, 3 = y; 0 where the
  // operand lacks the class.
  std::array<std::array<int64_t, kNumClasses>, 4> stride{};
};

// Needs exactly two weights and at most one letter per class.
Result<ClassStrides> classStrides(const EinsumTerm &t);

} // namespace einstruct
