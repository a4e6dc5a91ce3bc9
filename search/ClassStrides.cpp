#include "ClassStrides.h"

#include <algorithm>

namespace einstruct {

Result<ClassStrides> classStrides(const EinsumTerm &t) {
  if (t.weights.size() != 2)
    return Error{"the term needs two weight tensors, has " +
                 std::to_string(t.weights.size())};
  ClassStrides s;
  std::array<char, kNumClasses> letterOf{};
  const std::string ops[4] = {t.input, t.weights[0], t.weights[1], t.output};
  // Which of x, W1, W2, y hold a letter of each class, in class order.
  static const bool pattern[kNumClasses][4] = {
      {1, 1, 0, 0}, {1, 0, 1, 0}, {1, 1, 1, 0}, {0, 1, 0, 1},
      {0, 0, 1, 1}, {0, 1, 1, 1}, {0, 1, 1, 0}};
  for (auto &[c, n] : t.sizes) {
    bool in[4];
    for (int k = 0; k < 4; ++k)
      in[k] = ops[k].find(c) != std::string::npos;
    int cls = -1;
    for (int k = 0; k < kNumClasses; ++k)
      if (std::equal(in, in + 4, pattern[k]))
        cls = k;
    if (cls < 0)
      return Error{std::string("letter '") + c +
                   "' is in no θ-class (x,A,B,y pattern)"};
    if (letterOf[cls])
      return Error{std::string("class ") + kClassNames[cls] +
                   " has two letters '" + letterOf[cls] + c +
                   "'; one letter per class is needed (merge them)"};
    letterOf[cls] = c;
    s.size[cls] = n;
  }
  for (int k = 0; k < 4; ++k) {
    int64_t stride = 1;
    for (auto it = ops[k].rbegin(); it != ops[k].rend(); ++it) {
      for (int cls = 0; cls < kNumClasses; ++cls)
        if (letterOf[cls] == *it)
          s.stride[k][cls] = stride;
      stride *= t.sizes.at(*it);
    }
  }
  return s;
}

} // namespace einstruct
