#include "ResidualMlp.h"
#include "search/Init.h"
#include "search/Mup.h"
#include "search/Named.h"

#include <Eigen/Core>
#include <cmath>
#include <fmt/format.h>
#include <random>
#include <unsupported/Eigen/SpecialFunctions>

namespace einstruct {

namespace {

constexpr float kNormEps = 1e-5f; // torch.nn.LayerNorm's

// GELU (exact, erf form, as torch's default) and its derivative
// Φ(x) + x·φ(x), through Eigen's vectorised erf and exp (the scalar
// library calls took a third of a training step).
void gelu(const std::vector<float> &a, std::vector<float> &g) {
  g.resize(a.size());
  Eigen::Map<const Eigen::ArrayXf> x(a.data(), Eigen::Index(a.size()));
  Eigen::Map<Eigen::ArrayXf> y(g.data(), Eigen::Index(g.size()));
  y = 0.5f * x * (1.0f + (x * float(M_SQRT1_2)).erf());
}

// d *= GELU'(a).
void geluBackward(const std::vector<float> &a, float *d) {
  Eigen::Map<const Eigen::ArrayXf> x(a.data(), Eigen::Index(a.size()));
  Eigen::Map<Eigen::ArrayXf> y(d, Eigen::Index(a.size()));
  const float density = float(0.5 * M_2_SQRTPI * M_SQRT1_2); // 1/√(2π)
  y *= 0.5f * (1.0f + (x * float(M_SQRT1_2)).erf()) +
       x * (-0.5f * x * x).exp() * density;
}

std::string cacheKey(const Layer &l) {
  std::string k = fmt::format("{}|{}x{}|{}:{}|{}", l.name, l.dIn, l.dOut,
                              l.experts, l.topK, l.layout);
  for (const auto &t : l.terms)
    k += "|" + t.str() + "|" + t.sizesStr();
  return k;
}

} // namespace

Result<std::shared_ptr<CompiledLayer>> LayerCache::get(const Layer &layer) {
  std::string key = cacheKey(layer);
  if (auto it = layers_.find(key); it != layers_.end())
    return it->second;
  auto fn = compileForCpu(layer);
  if (!fn)
    return Error{fn.error()};
  if (threads_ > 0)
    if (auto r = (*fn)->setThreads(threads_); !r)
      return Error{r.error()};
  std::shared_ptr<CompiledLayer> shared = std::move(*fn);
  layers_[key] = shared;
  return shared;
}

Result<ResidualMlp> ResidualMlp::build(const MlpShape &s,
                                       const LayerMaker &structured,
                                       uint64_t seed, LayerCache &cache) {
  ResidualMlp m;
  m.shape_ = s;
  std::mt19937_64 rng(seed);
  auto dense = [](int64_t in, int64_t out) {
    return buildNamed(*parseNamed("dense"), in, out);
  };
  // A linear, its weights drawn (or zero: `zeroLast` zeroes each term's last
  // core, `zeroAll` every weight) and its µP multipliers.
  auto addLinear = [&](const std::string &name, Result<Layer> made,
                       int64_t dInBase, bool zeroLast,
                       bool zeroAll) -> Result<bool> {
    if (!made)
      return Error{fmt::format("{}: {}", name, made.error())};
    Layer layer = std::move(*made);
    layer.bias = false; // the model's own bias tensor, below
    auto fn = cache.get(layer);
    if (!fn)
      return Error{fmt::format("{}: {}", name, fn.error())};
    auto stds = initStd(layer);
    if (!stds)
      return Error{fmt::format("{}: {}", name, stds.error())};
    auto mults = lrMultipliers(layer, denseLrMultiplier(dInBase, layer.dIn));
    if (!mults)
      return Error{fmt::format("{}: {}", name, mults.error())};
    auto a = analyze(layer);
    if (!a)
      return Error{fmt::format("{}: {}", name, a.error())};
    m.macs_ += a->flops;
    Linear lin;
    auto shapes = weightShapes(layer);
    std::vector<bool> zero(shapes.size(), zeroAll);
    size_t k = 0;
    for (const auto &t : layer.terms) {
      k += t.weights.size();
      if (zeroLast)
        zero[k - 1] = true;
    }
    for (size_t w = 0; w < shapes.size(); ++w) {
      std::vector<float> v(size_t(elementCount(shapes[w])), 0.0f);
      if (w < stds->size() && !zero[w]) {
        std::normal_distribution<float> normal(0.0f, float((*stds)[w]));
        for (auto &x : v)
          x = normal(rng);
      }
      lin.weights.push_back(m.params_.size());
      m.params_.emplace_back(fmt::format("{}.w{}", name, w), std::move(v),
                             (*mults)[w]);
    }
    if (s.bias) {
      lin.bias = m.params_.size();
      m.params_.emplace_back(name + ".bias",
                             std::vector<float>(size_t(layer.dOut), 0.0f), 1.0);
    }
    lin.layer = std::move(layer);
    lin.fn = std::move(*fn);
    m.linears_.push_back(std::move(lin));
    return true;
  };
  auto addNorm = [&](const std::string &name) {
    Norm n;
    n.gain = m.params_.size();
    m.params_.emplace_back(name + ".gain",
                           std::vector<float>(size_t(s.width), 1.0f), 1.0);
    n.shift = m.params_.size();
    m.params_.emplace_back(name + ".shift",
                           std::vector<float>(size_t(s.width), 0.0f), 1.0);
    m.norms_.push_back(n);
  };
  const int64_t hidden = s.expansion * s.width;
  if (auto r = addLinear("input",
                         s.structuredInput ? structured(s.dIn, s.width)
                                           : dense(s.dIn, s.width),
                         s.dIn, false, false);
      !r)
    return Error{r.error()};
  addNorm("input_norm");
  for (int64_t b = 0; b < s.depth; ++b) {
    std::string p = fmt::format("block{}", b);
    addNorm(p + ".norm");
    if (auto r = addLinear(p + ".l1", structured(s.width, hidden),
                           s.baseWidth, false, false);
        !r)
      return Error{r.error()};
    if (auto r = addLinear(p + ".l2", structured(hidden, s.width),
                           s.expansion * s.baseWidth, true, false);
        !r)
      return Error{r.error()};
  }
  if (auto r = addLinear("readout", dense(s.width, s.dOut), s.baseWidth, false,
                         true);
      !r)
    return Error{r.error()};
  m.blocks_.resize(size_t(s.depth));
  return m;
}

int64_t ResidualMlp::paramCount() const {
  int64_t n = 0;
  for (const auto &p : params_)
    n += int64_t(p.value.size());
  return n;
}

Result<bool> ResidualMlp::apply(const Linear &l, const float *x, int64_t rows,
                                float *y) {
  std::vector<const void *> w;
  for (size_t i : l.weights)
    w.push_back(params_[i].value.data());
  if (auto r = l.fn->forward(x, rows, w.data(), y, nullptr); !r)
    return r;
  if (l.bias)
    return l.fn->addBias(y, params_[*l.bias].value.data(), rows, l.layer.dOut,
                         nullptr);
  return true;
}

Result<bool> ResidualMlp::applyBackward(const Linear &l, const float *x,
                                        const float *dy, int64_t rows,
                                        float *dx, double auxWeight) {
  std::vector<const void *> w;
  std::vector<void *> dw;
  for (size_t i : l.weights) {
    w.push_back(params_[i].value.data());
    dw.push_back(params_[i].grad.data());
  }
  if (auto r = l.fn->backward(x, dy, rows, w.data(), dx, dw.data(), nullptr,
                              auxWeight);
      !r)
    return r;
  if (l.bias)
    return l.fn->biasGradient(dy, params_[*l.bias].grad.data(), rows,
                              l.layer.dOut, nullptr);
  return true;
}

void ResidualMlp::norm(const Norm &n, const float *x, int64_t rows,
                       std::vector<float> &xhat, std::vector<float> &rstd,
                       std::vector<float> &y) const {
  const int64_t d = shape_.width;
  xhat.resize(size_t(rows * d));
  rstd.resize(size_t(rows));
  y.resize(size_t(rows * d));
  const float *gain = params_[n.gain].value.data();
  const float *shift = params_[n.shift].value.data();
  for (int64_t r = 0; r < rows; ++r) {
    const float *in = x + r * d;
    double mean = 0, var = 0;
    for (int64_t c = 0; c < d; ++c)
      mean += in[c];
    mean /= double(d);
    for (int64_t c = 0; c < d; ++c)
      var += (in[c] - mean) * (in[c] - mean);
    float rs = float(1 / std::sqrt(var / double(d) + kNormEps));
    rstd[size_t(r)] = rs;
    for (int64_t c = 0; c < d; ++c) {
      float h = (in[c] - float(mean)) * rs;
      xhat[size_t(r * d + c)] = h;
      y[size_t(r * d + c)] = h * gain[c] + shift[c];
    }
  }
}

void ResidualMlp::normBackward(const Norm &n, const std::vector<float> &xhat,
                               const std::vector<float> &rstd, const float *dy,
                               int64_t rows, float *dx) {
  const int64_t d = shape_.width;
  const float *gain = params_[n.gain].value.data();
  float *dgain = params_[n.gain].grad.data();
  float *dshift = params_[n.shift].grad.data();
  std::fill_n(dgain, d, 0.0f);
  std::fill_n(dshift, d, 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float *g = dy + r * d;
    const float *h = xhat.data() + r * d;
    double sumD = 0, sumDH = 0;
    for (int64_t c = 0; c < d; ++c) {
      float dh = g[c] * gain[c];
      sumD += dh;
      sumDH += dh * h[c];
      dgain[c] += g[c] * h[c];
      dshift[c] += g[c];
    }
    float meanD = float(sumD / double(d)), meanDH = float(sumDH / double(d));
    float rs = rstd[size_t(r)];
    for (int64_t c = 0; c < d; ++c)
      dx[r * d + c] = rs * (g[c] * gain[c] - meanD - h[c] * meanDH);
  }
}

Result<bool> ResidualMlp::forward(const float *x, int64_t rows,
                                  std::vector<float> &y) {
  const int64_t w = shape_.width, hidden = shape_.expansion * w;
  x_.assign(x, x + rows * shape_.dIn);
  a0_.resize(size_t(rows * w));
  if (auto r = apply(linears_[0], x_.data(), rows, a0_.data()); !r)
    return r;
  gelu(a0_, g0_);
  norm(norms_[0], g0_.data(), rows, xhat0_, rstd0_, h_);
  for (size_t b = 0; b < blocks_.size(); ++b) {
    Block &k = blocks_[b];
    k.in = h_;
    norm(norms_[b + 1], k.in.data(), rows, k.xhat, k.rstd, k.u);
    k.a.resize(size_t(rows * hidden));
    if (auto r = apply(linears_[1 + 2 * b], k.u.data(), rows, k.a.data()); !r)
      return r;
    gelu(k.a, k.g);
    std::vector<float> v(size_t(rows * w));
    if (auto r = apply(linears_[2 + 2 * b], k.g.data(), rows, v.data()); !r)
      return r;
    for (size_t i = 0; i < v.size(); ++i)
      h_[i] += v[i];
  }
  y.resize(size_t(rows * shape_.dOut));
  return apply(linears_.back(), h_.data(), rows, y.data());
}

double lossOf(const std::vector<float> &y, const float *target, int64_t rows,
              int64_t d, LossKind kind, std::vector<float> *dy) {
  if (dy)
    dy->assign(y.size(), 0.0f);
  double total = 0;
  if (kind == LossKind::MeanSquaredError) {
    const double n = double(rows * d);
    for (size_t i = 0; i < y.size(); ++i) {
      double e = double(y[i]) - double(target[i]);
      total += e * e;
      if (dy)
        (*dy)[i] = float(2 * e / n);
    }
    return total / n;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float *z = y.data() + r * d;
    double top = *std::max_element(z, z + d), sum = 0;
    for (int64_t c = 0; c < d; ++c)
      sum += std::exp(double(z[c]) - top);
    int64_t label = int64_t(target[r]);
    total += top + std::log(sum) - double(z[label]);
    if (dy)
      for (int64_t c = 0; c < d; ++c)
        (*dy)[size_t(r * d + c)] =
            float((std::exp(double(z[c]) - top) / sum - (c == label)) /
                  double(rows));
  }
  return total / double(rows);
}

Result<double> ResidualMlp::lossAndGradients(const float *x,
                                             const float *target, int64_t rows,
                                             LossKind kind, double auxWeight) {
  if (auto r = forward(x, rows, y_); !r)
    return Error{r.error()};
  std::vector<float> dy;
  double loss = lossOf(y_, target, rows, shape_.dOut, kind, &dy);
  const int64_t w = shape_.width, hidden = shape_.expansion * w;
  std::vector<float> dh(size_t(rows * w));
  if (auto r = applyBackward(linears_.back(), h_.data(), dy.data(), rows,
                             dh.data(), auxWeight);
      !r)
    return Error{r.error()};
  std::vector<float> dg(size_t(rows * hidden)), du(size_t(rows * w)),
      dn(size_t(rows * w));
  for (size_t b = blocks_.size(); b-- > 0;) {
    Block &k = blocks_[b];
    if (auto r = applyBackward(linears_[2 + 2 * b], k.g.data(), dh.data(),
                               rows, dg.data(), auxWeight);
        !r)
      return Error{r.error()};
    geluBackward(k.a, dg.data());
    if (auto r = applyBackward(linears_[1 + 2 * b], k.u.data(), dg.data(),
                               rows, du.data(), auxWeight);
        !r)
      return Error{r.error()};
    normBackward(norms_[b + 1], k.xhat, k.rstd, du.data(), rows, dn.data());
    for (size_t i = 0; i < dh.size(); ++i)
      dh[i] += dn[i];
  }
  normBackward(norms_[0], xhat0_, rstd0_, dh.data(), rows, dn.data());
  geluBackward(a0_, dn.data());
  std::vector<float> dx(size_t(rows * shape_.dIn));
  if (auto r = applyBackward(linears_[0], x_.data(), dn.data(), rows,
                             dx.data(), auxWeight);
      !r)
    return Error{r.error()};
  return loss;
}

} // namespace einstruct
