#include "TrainingTask.h"
#include "compiler/frontend/Npy.h"
#include "runtime/CompiledLayer.h"
#include "search/Named.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <random>

namespace einstruct {

uint64_t stepSeed(uint64_t seed, int64_t step) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + uint64_t(step) + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

namespace {

void gaussian(uint64_t seed, std::vector<float> &out, size_t n) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  out.resize(n);
  for (auto &v : out)
    v = normal(rng);
}

// The teacher of the reference's train_synth.py: `depth` dense layers of
// `width` with ReLU·√2, weights N(0, 1/fan_in), no biases, and a readout
// rescaled so that its output has mean 0 and std 1 on 1024 inputs.
class Teacher : public TrainingTask {
public:
  static Result<std::unique_ptr<TrainingTask>> make(const TeacherSpec &s,
                                                    int64_t testRows) {
    auto t = std::unique_ptr<Teacher>(new Teacher());
    t->inputDim_ = s.inputDim;
    t->outputDim_ = s.outputDim;
    t->spec_ = s;
    std::mt19937_64 rng(s.seed);
    for (int64_t i = 0; i <= s.depth; ++i) {
      int64_t in = i == 0 ? s.inputDim : s.width;
      int64_t out = i == s.depth ? s.outputDim : s.width;
      auto layer = buildNamed(*parseNamed("dense"), in, out);
      if (!layer)
        return Error{layer.error()};
      auto fn = compileForCpu(*layer);
      if (!fn)
        return Error{fn.error()};
      std::normal_distribution<float> normal(0.0f,
                                             float(1 / std::sqrt(double(in))));
      std::vector<float> w(size_t(in * out));
      for (auto &v : w)
        v = normal(rng);
      t->layers_.push_back({std::move(*fn), std::move(w), in, out});
    }
    // Standardise the readout on 1024 inputs (their rows of the same RNG).
    std::vector<float> z, y;
    gaussian(s.seed + 1, z, size_t(1024 * s.inputDim));
    if (auto r = t->run(z, 1024, y, false); !r)
      return Error{r.error()};
    std::vector<double> mean(size_t(s.outputDim)), var(size_t(s.outputDim));
    for (int64_t r = 0; r < 1024; ++r)
      for (int64_t c = 0; c < s.outputDim; ++c)
        mean[size_t(c)] += y[size_t(r * s.outputDim + c)] / 1024.0;
    for (int64_t r = 0; r < 1024; ++r)
      for (int64_t c = 0; c < s.outputDim; ++c) {
        double d = y[size_t(r * s.outputDim + c)] - mean[size_t(c)];
        var[size_t(c)] += d * d / 1023.0;
      }
    for (int64_t c = 0; c < s.outputDim; ++c) {
      t->shift_.push_back(float(mean[size_t(c)]));
      t->scale_.push_back(float(1 / (std::sqrt(var[size_t(c)]) + 1e-8)));
    }
    gaussian(s.seed + 2, t->testX_, size_t(testRows * s.inputDim));
    if (auto r = t->run(t->testX_, testRows, t->testT_, true); !r)
      return Error{r.error()};
    return std::unique_ptr<TrainingTask>(std::move(t));
  }

  Result<bool> batch(uint64_t seed, int64_t step, int64_t rows, std::vector<float> &x,
             std::vector<float> &target) const override {
    gaussian(stepSeed(seed, step), x, size_t(rows * inputDim_));
    return run(x, rows, target, true);
  }

  std::string describe() const override {
    return fmt::format("teacher: {}-layer ReLU·√2 MLP of width {}, {} → {}, "
                       "output standardised",
                       spec_.depth, spec_.width, spec_.inputDim,
                       spec_.outputDim);
  }

private:
  struct Dense {
    std::unique_ptr<CompiledLayer> fn;
    std::vector<float> w;
    int64_t in, out;
  };

  Result<bool> run(const std::vector<float> &x, int64_t rows,
                   std::vector<float> &y, bool standardise) const {
    std::vector<float> h = x;
    for (size_t i = 0; i < layers_.size(); ++i) {
      const Dense &d = layers_[i];
      y.resize(size_t(rows * d.out));
      const void *w = d.w.data();
      if (auto r = d.fn->forward(h.data(), rows, &w, y.data(), nullptr); !r)
        return r;
      if (i + 1 < layers_.size()) {
        for (auto &v : y)
          v = std::max(v, 0.0f) * float(M_SQRT2);
        h.swap(y);
      }
    }
    if (standardise)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < spec_.outputDim; ++c) {
          float &v = y[size_t(r * spec_.outputDim + c)];
          v = (v - shift_[size_t(c)]) * scale_[size_t(c)];
        }
    return true;
  }

  TeacherSpec spec_;
  std::vector<Dense> layers_;
  std::vector<float> shift_, scale_;
};

// The user's arrays: batches drawn uniformly (with replacement) from the
// training rows.
class Data : public TrainingTask {
public:
  static Result<std::unique_ptr<TrainingTask>> make(const DataSpec &s) {
    auto x = readNpy(s.x);
    if (!x)
      return Error{x.error()};
    auto y = readNpy(s.y);
    if (!y)
      return Error{y.error()};
    if (x->shape.size() != 2)
      return Error{fmt::format("{}: x must be [rows, d_in]; it has {} "
                               "dimensions",
                               s.x, x->shape.size())};
    int64_t n = x->shape[0];
    if (y->shape.empty() || y->shape.size() > 2 || y->shape[0] != n)
      return Error{fmt::format(
          "{}: y must have x's {} rows ({} [rows] or [rows, d_out]); its "
          "shape is [{}]",
          s.y, n, s.classification ? "labels" : "targets",
          fmt::join(y->shape, ", "))};
    auto d = std::unique_ptr<Data>(new Data());
    d->inputDim_ = x->shape[1];
    d->spec_ = s;
    if (s.classification) {
      if (y->shape.size() == 2 && y->shape[1] != 1)
        return Error{fmt::format("{}: labels must be [rows] or [rows, 1]; "
                                 "the shape is [{}]",
                                 s.y, fmt::join(y->shape, ", "))};
      float top = 0;
      for (size_t i = 0; i < y->data.size(); ++i) {
        float v = y->data[i];
        if (!(v >= 0) || v != std::floor(v) || v > 1e6f)
          return Error{fmt::format("{}: row {}: label {} is not a class "
                                   "index (a whole number >= 0)",
                                   s.y, i, v)};
        top = std::max(top, v);
      }
      d->outputDim_ = int64_t(top) + 1;
      if (d->outputDim_ < 2)
        return Error{fmt::format("{}: every label is 0; classification "
                                 "needs two classes or more",
                                 s.y)};
      d->loss_ = LossKind::CrossEntropy;
    } else {
      d->outputDim_ = y->shape.size() == 2 ? y->shape[1] : 1;
    }
    int64_t test = int64_t(std::floor(double(n) * s.testFraction));
    d->train_ = n - test;
    if (d->train_ < 1 || (s.testFraction > 0 && test < 1))
      return Error{fmt::format("{}: {} rows leave {} for training and {} "
                               "held out; both need one or more",
                               s.x, n, d->train_, test)};
    int64_t td = d->targetDim();
    d->x_.assign(x->data.begin(), x->data.begin() + d->train_ * d->inputDim_);
    d->t_.assign(y->data.begin(), y->data.begin() + d->train_ * td);
    d->testX_.assign(x->data.begin() + d->train_ * d->inputDim_,
                     x->data.end());
    d->testT_.assign(y->data.begin() + d->train_ * td, y->data.end());
    return std::unique_ptr<TrainingTask>(std::move(d));
  }

  Result<bool> batch(uint64_t seed, int64_t step, int64_t rows, std::vector<float> &x,
             std::vector<float> &target) const override {
    std::mt19937_64 rng(stepSeed(seed, step));
    std::uniform_int_distribution<int64_t> pick(0, train_ - 1);
    int64_t td = targetDim();
    x.resize(size_t(rows * inputDim_));
    target.resize(size_t(rows * td));
    for (int64_t r = 0; r < rows; ++r) {
      int64_t i = pick(rng);
      std::copy_n(x_.begin() + i * inputDim_, inputDim_,
                  x.begin() + r * inputDim_);
      std::copy_n(t_.begin() + i * td, td, target.begin() + r * td);
    }
    return true;
  }

  std::string describe() const override {
    return fmt::format("{} on {} ({} training rows, {} held out), {} → {}",
                       loss_ == LossKind::CrossEntropy ? "classification"
                                                       : "regression",
                       spec_.x, train_, testRows(), inputDim_, outputDim_);
  }

private:
  DataSpec spec_;
  int64_t train_ = 0;
  std::vector<float> x_, t_;
};

} // namespace

Result<std::unique_ptr<TrainingTask>> teacherTask(const TeacherSpec &spec,
                                                  int64_t testRows) {
  return Teacher::make(spec, testRows);
}

Result<std::unique_ptr<TrainingTask>> dataTask(const DataSpec &spec) {
  return Data::make(spec);
}

} // namespace einstruct
