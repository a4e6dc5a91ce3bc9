#include "NaiveEinsum.h"

namespace einstruct {

std::vector<float> naiveForward(const Layer &layer, const float *x,
                                int64_t batch,
                                const std::vector<const float *> &weights) {
  std::vector<double> y(size_t(batch * layer.dOut), 0.0);
  size_t firstWeight = 0;
  for (const auto &t : layer.terms) {
    std::vector<char> letters;
    for (auto [c, n] : t.sizes)
      letters.push_back(c);
    std::map<char, int64_t> v;
    auto flat = [&](const std::string &s) {
      int64_t k = 0;
      for (char c : s)
        k = k * t.sizes.at(c) + v[c];
      return k;
    };
    for (int64_t n = 0; n < batch; ++n) {
      for (char c : letters)
        v[c] = 0;
      while (true) {
        int64_t i = flat(t.input), o = flat(t.output);
        if (i < layer.dIn && o < layer.dOut) {
          double p = x[n * layer.dIn + i];
          for (size_t k = 0; k < t.weights.size(); ++k)
            p *= weights[firstWeight + k][flat(t.weights[k])];
          y[size_t(n * layer.dOut + o)] += p;
        }
        size_t k = 0;
        for (; k < letters.size(); ++k) {
          if (++v[letters[k]] < t.sizes.at(letters[k]))
            break;
          v[letters[k]] = 0;
        }
        if (k == letters.size())
          break;
      }
    }
    firstWeight += t.weights.size();
  }
  return std::vector<float>(y.begin(), y.end());
}

} // namespace einstruct
