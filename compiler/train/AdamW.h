// AdamW as torch.optim.AdamW computes it (decoupled weight decay,
// bias-corrected moments), each tensor with its own learning-rate multiplier
// (µP, search/Mup.h), under torch's CosineAnnealingLR schedule.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace einstruct {

struct AdamWSettings {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0;
};

// One trained tensor: its value, gradient and Adam moments.
struct ParamTensor {
  std::string name;
  std::vector<float> value, grad, m, v;
  double lrMult = 1;
  explicit ParamTensor(std::string n = {}, std::vector<float> init = {},
                       double mult = 1)
      : name(std::move(n)), value(std::move(init)), grad(value.size()),
        m(value.size()), v(value.size()), lrMult(mult) {}
};

// Step `step` (1-based) at learning rate `lr` (already scheduled; the
// tensor's multiplier is applied here).
void adamwStep(ParamTensor &p, double lr, int64_t step,
               const AdamWSettings &s);

// The learning rate of step `step` (1-based) of `total`: a linear warm-up
// over `warmup` steps, then cosine annealing to 0 over the rest
// (CosineAnnealingLR with T_max = total − warmup, stepped after each step).
double scheduledLr(double base, int64_t step, int64_t total, int64_t warmup,
                   bool cosine);

} // namespace einstruct
