// What a training row learns: the synthetic teacher–student regression of
// structures.md §6 (a fixed random ReLU·√2 MLP, output standardised, fresh
// Gaussian inputs every step), or the user's arrays (.npy) for regression or
// classification. Batches are a function of (seed, step) alone, so a row
// resumed from a checkpoint sees the batches it would have seen.
#pragma once
#include "search/Result.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace einstruct {

enum class LossKind { MeanSquaredError, CrossEntropy };

struct TeacherSpec {
  int64_t inputDim = 8, outputDim = 1, width = 1024, depth = 6;
  uint64_t seed = 42;
};

struct DataSpec {
  std::string x, y; // .npy paths: x [N, d_in]; y [N, d_out] or labels [N]
  bool classification = false;
  double testFraction = 0.1; // the last rows, held out
};

class TrainingTask {
public:
  virtual ~TrainingTask() = default;
  int64_t inputDim() const { return inputDim_; }
  // Model outputs: d_out for regression, the class count for classification.
  int64_t outputDim() const { return outputDim_; }
  LossKind loss() const { return loss_; }
  // Floats per target row: outputDim(), or 1 (the label) for classification.
  int64_t targetDim() const {
    return loss_ == LossKind::CrossEntropy ? 1 : outputDim_;
  }
  // The training batch of step `step` of a row seeded `seed`.
  virtual Result<bool> batch(uint64_t seed, int64_t step, int64_t rows,
                     std::vector<float> &x, std::vector<float> &target) const = 0;
  // The held-out set (fixed for the task).
  const std::vector<float> &testX() const { return testX_; }
  const std::vector<float> &testTarget() const { return testT_; }
  int64_t testRows() const {
    return int64_t(testX_.size()) / std::max<int64_t>(1, inputDim_);
  }
  // What the task is, for a result line.
  virtual std::string describe() const = 0;

protected:
  int64_t inputDim_ = 0, outputDim_ = 0;
  LossKind loss_ = LossKind::MeanSquaredError;
  std::vector<float> testX_, testT_;
};

// `testRows` fresh inputs make the teacher's held-out set.
Result<std::unique_ptr<TrainingTask>> teacherTask(const TeacherSpec &spec,
                                                  int64_t testRows);
// Errors name the file and what disagrees (rows, dimensions, labels).
Result<std::unique_ptr<TrainingTask>> dataTask(const DataSpec &spec);

// A seed for step `step` of a row seeded `seed` (SplitMix64 of both).
uint64_t stepSeed(uint64_t seed, int64_t step);

} // namespace einstruct
