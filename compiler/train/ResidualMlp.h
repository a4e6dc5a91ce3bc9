// The residual MLP of the einsum-search reference (their nn/mlp.py): an input
// linear, GELU and LayerNorm; `depth` blocks x + L2(GELU(L1(LN(x)))) with L1
// width → expansion·width and L2 back; a readout linear. Linears are einstruct
// layers (forward and backward compiled by the CPU pipeline); the block
// linears (and optionally the input one) take the structure under test, the
// others are dense. Initialisation and µP learning-rate multipliers follow
// structures.md §4 and §6: the readout and each block's last core start at
// zero, biases at zero, LayerNorm gains at one.
#pragma once
#include "AdamW.h"
#include "TrainingTask.h"
#include "runtime/CompiledLayer.h"

#include <functional>
#include <map>

namespace einstruct {

struct MlpShape {
  int64_t dIn = 8, dOut = 1, width = 64, depth = 3, expansion = 4;
  int64_t baseWidth = 64; // the µP base model's width
  bool bias = true;
  bool structuredInput = false; // the input linear takes the structure too
};

// The structured layer for a (d_in, d_out), e.g. from θ text.
using LayerMaker = std::function<Result<Layer>(int64_t dIn, int64_t dOut)>;

// Compiled layers shared by every model of a process (a sweep's rows).
class LayerCache {
public:
  // threads 0: the layers' default (EINSTRUCT_NUM_THREADS, else the
  // hardware's).
  explicit LayerCache(int threads) : threads_(threads) {}
  Result<std::shared_ptr<CompiledLayer>> get(const Layer &layer);

private:
  int threads_;
  std::map<std::string, std::shared_ptr<CompiledLayer>> layers_;
};

class ResidualMlp {
public:
  static Result<ResidualMlp> build(const MlpShape &shape,
                                   const LayerMaker &structured, uint64_t seed,
                                   LayerCache &cache);

  std::vector<ParamTensor> &params() { return params_; }
  const std::vector<ParamTensor> &params() const { return params_; }
  // Forward multiply-adds per token (every linear; active experts only).
  int64_t macsPerToken() const { return macs_; }
  int64_t paramCount() const;
  // The structured layer's analysis (the first block's L1).
  const Layer &structuredLayer() const { return linears_[1].layer; }

  // y [rows][d_out].
  Result<bool> forward(const float *x, int64_t rows, std::vector<float> &y);
  // The loss of one batch, and every gradient into params()[i].grad.
  Result<double> lossAndGradients(const float *x, const float *target,
                                  int64_t rows, LossKind loss,
                                  double auxWeight = 0.01);

private:
  struct Linear {
    Layer layer;
    std::shared_ptr<CompiledLayer> fn;
    std::vector<size_t> weights; // into params_
    std::optional<size_t> bias;
  };
  struct Norm {
    size_t gain, shift; // into params_
  };
  // Activations of the last forward, kept for the backward.
  struct Block {
    std::vector<float> in, xhat, rstd, u, a, g;
  };
  Result<bool> apply(const Linear &l, const float *x, int64_t rows, float *y);
  Result<bool> applyBackward(const Linear &l, const float *x, const float *dy,
                             int64_t rows, float *dx, double auxWeight);
  void norm(const Norm &n, const float *x, int64_t rows, std::vector<float> &xhat,
            std::vector<float> &rstd, std::vector<float> &y) const;
  void normBackward(const Norm &n, const std::vector<float> &xhat,
                    const std::vector<float> &rstd, const float *dy,
                    int64_t rows, float *dx);

  MlpShape shape_;
  std::vector<ParamTensor> params_;
  std::vector<Linear> linears_; // input, (L1, L2) per block, readout
  std::vector<Norm> norms_;     // input, one per block
  int64_t macs_ = 0;
  // Forward state.
  std::vector<float> x_, a0_, g0_, xhat0_, rstd0_, h_, y_;
  std::vector<Block> blocks_;
};

// The loss of y [rows][d] against `target` and, when dy is given, its
// gradient: MSE averaged over every element, or cross-entropy (target: the
// class index) averaged over rows.
double lossOf(const std::vector<float> &y, const float *target, int64_t rows,
              int64_t d, LossKind kind, std::vector<float> *dy);

} // namespace einstruct
