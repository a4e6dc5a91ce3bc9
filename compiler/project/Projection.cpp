#include "Projection.h"
#include "search/ClassStrides.h"

#include <Eigen/SVD>
#include <cmath>
#include <fmt/format.h>

namespace einstruct {

namespace {

enum { a, b, g, d, e, f, r };

// ||W − M||² over the real entries, M given by a callback on the padded
// (out, in) index, zero outside the padded space.
template <class Model>
double residual(const NpyArray &w, int64_t padOut, int64_t padIn, Model m) {
  int64_t dOut = w.shape[0], dIn = w.shape[1];
  double sum = 0;
  for (int64_t o = 0; o < dOut; ++o)
    for (int64_t i = 0; i < dIn; ++i) {
      double v = o < padOut && i < padIn ? m(o, i) : 0.0;
      double diff = double(w.data[size_t(o * dIn + i)]) - v;
      sum += diff * diff;
    }
  return sum;
}

Result<Projection> projectTwoWeights(const EinsumTerm &t, const NpyArray &w,
                                     double norm2) {
  auto cs = classStrides(t);
  if (!cs)
    return Error{cs.error()};
  const auto &S = cs->size;
  const auto &X = cs->stride[0], &W1 = cs->stride[1], &W2 = cs->stride[2],
             &Y = cs->stride[3];
  const int64_t dOut = w.shape[0], dIn = w.shape[1];
  const int64_t padOut = t.outDim(), padIn = t.inDim();
  auto target = [&](int64_t o, int64_t i) {
    return o < dOut && i < dIn ? double(w.data[size_t(o * dIn + i)]) : 0.0;
  };
  Projection p;
  p.weights.resize(2);
  p.weights[0].data.assign(size_t(t.extent(t.weights[0])), 0.0f);
  p.weights[1].data.assign(size_t(t.extent(t.weights[1])), 0.0f);
  const int64_t rows = S[e] * S[b], cols = S[d] * S[a];
  double discarded = 0;
  Eigen::MatrixXd block(rows, cols);
  for (int64_t fi = 0; fi < S[f]; ++fi)
    for (int64_t gi = 0; gi < S[g]; ++gi) {
      for (int64_t ei = 0; ei < S[e]; ++ei)
        for (int64_t bi = 0; bi < S[b]; ++bi)
          for (int64_t di = 0; di < S[d]; ++di)
            for (int64_t ai = 0; ai < S[a]; ++ai)
              block(ei * S[b] + bi, di * S[a] + ai) =
                  target(fi * Y[f] + ei * Y[e] + di * Y[d],
                         gi * X[g] + bi * X[b] + ai * X[a]);
      Eigen::BDCSVD<Eigen::MatrixXd> svd(block, Eigen::ComputeThinU |
                                                    Eigen::ComputeThinV);
      const auto &sv = svd.singularValues();
      for (int64_t k = S[r]; k < sv.size(); ++k)
        discarded += sv(k) * sv(k);
      for (int64_t ri = 0; ri < std::min<int64_t>(S[r], sv.size()); ++ri) {
        double s = std::sqrt(sv(ri));
        for (int64_t ei = 0; ei < S[e]; ++ei)
          for (int64_t bi = 0; bi < S[b]; ++bi)
            p.weights[1].data[size_t(fi * W2[f] + ei * W2[e] + ri * W2[r] +
                                     gi * W2[g] + bi * W2[b])] =
                float(svd.matrixU()(ei * S[b] + bi, ri) * s);
        for (int64_t di = 0; di < S[d]; ++di)
          for (int64_t ai = 0; ai < S[a]; ++ai)
            p.weights[0].data[size_t(fi * W1[f] + di * W1[d] + ri * W1[r] +
                                     gi * W1[g] + ai * W1[a])] =
                float(svd.matrixV()(di * S[a] + ai, ri) * s);
      }
    }
  // The entries the padded index space cannot reach are lost whatever the
  // weights: part of the bound.
  double unreachable = residual(w, padOut, padIn,
                                [&](int64_t o, int64_t i) { return target(o, i); });
  p.svdBound = std::sqrt((discarded + unreachable) / norm2);
  // Rebuild M from the float32 factors, entry by entry.
  auto model = [&](int64_t o, int64_t i) {
    // A class absent from an operand (size 1) has stride 0: coordinate 0.
    auto at = [&](int64_t flat, int64_t stride, int cls) {
      return stride ? flat / stride % S[cls] : 0;
    };
    int64_t c[kNumClasses] = {};
    c[f] = at(o, Y[f], f), c[e] = at(o, Y[e], e), c[d] = at(o, Y[d], d);
    c[g] = at(i, X[g], g), c[b] = at(i, X[b], b), c[a] = at(i, X[a], a);
    double sum = 0;
    for (int64_t ri = 0; ri < S[r]; ++ri)
      sum += double(p.weights[0].data[size_t(
                 c[f] * W1[f] + c[d] * W1[d] + ri * W1[r] + c[g] * W1[g] +
                 c[a] * W1[a])]) *
             double(p.weights[1].data[size_t(
                 c[f] * W2[f] + c[e] * W2[e] + ri * W2[r] + c[g] * W2[g] +
                 c[b] * W2[b])]);
    return sum;
  };
  p.relativeError = std::sqrt(residual(w, padOut, padIn, model) / norm2);
  return p;
}

// One weight: each dense entry is either structurally zero or one weight
// entry; a weight entry shared by several dense entries (letters in x and y
// but not in W) takes their mean.
Result<Projection> projectOneWeight(const EinsumTerm &t, const NpyArray &w,
                                    double norm2) {
  const std::string &W = t.weights[0];
  const int64_t dOut = w.shape[0], dIn = w.shape[1];
  const int64_t padOut = t.outDim(), padIn = t.inDim();
  std::vector<double> sum(size_t(t.extent(W)), 0.0);
  std::vector<int64_t> count(sum.size(), 0);
  // Letter values of a flat index into `letters`.
  auto decode = [&](const std::string &letters, int64_t flat,
                    std::map<char, int64_t> &v) {
    for (auto it = letters.rbegin(); it != letters.rend(); ++it) {
      int64_t n = t.sizes.at(*it);
      v[*it] = flat % n;
      flat /= n;
    }
  };
  // The weight entry an (out, in) pair reads, or -1 where it is zero.
  auto entry = [&](int64_t o, int64_t i) -> int64_t {
    std::map<char, int64_t> vo, vi;
    decode(t.output, o, vo);
    decode(t.input, i, vi);
    for (auto &[c, v] : vo)
      if (vi.count(c) && vi[c] != v)
        return -1; // a shared block index differs
    int64_t flat = 0;
    for (char c : W)
      flat = flat * t.sizes.at(c) + (vo.count(c) ? vo[c] : vi[c]);
    return flat;
  };
  for (int64_t o = 0; o < std::min(dOut, padOut); ++o)
    for (int64_t i = 0; i < std::min(dIn, padIn); ++i)
      if (int64_t k = entry(o, i); k >= 0) {
        sum[size_t(k)] += w.data[size_t(o * dIn + i)];
        ++count[size_t(k)];
      }
  Projection p;
  p.weights.resize(1);
  for (size_t k = 0; k < sum.size(); ++k)
    p.weights[0].data.push_back(count[k] ? float(sum[k] / count[k]) : 0.0f);
  auto model = [&](int64_t o, int64_t i) {
    int64_t k = entry(o, i);
    return k < 0 ? 0.0 : double(p.weights[0].data[size_t(k)]);
  };
  p.relativeError = std::sqrt(residual(w, padOut, padIn, model) / norm2);
  p.svdBound = p.relativeError; // the mean is the least-squares optimum
  return p;
}

} // namespace

Result<Projection> projectDense(const Layer &layer, const NpyArray &dense) {
  if (dense.shape != std::vector<int64_t>{layer.dOut, layer.dIn})
    return Error{fmt::format("the dense weight must be (d_out = {}, d_in = "
                             "{}), as torch.nn.Linear.weight",
                             layer.dOut, layer.dIn)};
  if (layer.terms.size() != 1)
    return Error{"sums of terms (DYAD) are not projected: their terms "
                 "overlap, so no per-block SVD is optimal"};
  if (layer.experts > 0)
    return Error{"BTT-MoE layers are not projected (the experts share the "
                 "dense matrix; there is no single optimum)"};
  const EinsumTerm &t = layer.terms[0];
  if (t.weights.size() > 2)
    return Error{fmt::format("terms with {} weights (tensor trains of three "
                             "or more cores) are not projected yet",
                             t.weights.size())};
  double norm2 = 0;
  for (float v : dense.data)
    norm2 += double(v) * double(v);
  if (!(norm2 > 0) || !std::isfinite(norm2))
    return Error{"the dense weight is all zeros or not finite"};
  auto p = t.weights.size() == 1 ? projectOneWeight(t, dense, norm2)
                                 : projectTwoWeights(t, dense, norm2);
  if (!p)
    return p;
  auto shapes = weightShapes(layer);
  for (size_t k = 0; k < shapes.size(); ++k)
    p->weights[k].shape = shapes[k];
  return p;
}

} // namespace einstruct
