#include "AdamW.h"

#include <cmath>

namespace einstruct {

void adamwStep(ParamTensor &p, double lr, int64_t step,
               const AdamWSettings &s) {
  const float rate = float(lr * p.lrMult);
  const float decay = float(1 - lr * p.lrMult * s.weightDecay);
  const float b1 = float(s.beta1), b2 = float(s.beta2);
  const float c1 = float(1 / (1 - std::pow(s.beta1, double(step))));
  const float c2 = float(1 / std::sqrt(1 - std::pow(s.beta2, double(step))));
  const float eps = float(s.eps);
  float *w = p.value.data(), *m = p.m.data(), *v = p.v.data();
  const float *g = p.grad.data();
  for (size_t i = 0, n = p.value.size(); i < n; ++i) {
    w[i] *= decay;
    m[i] = b1 * m[i] + (1 - b1) * g[i];
    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    w[i] -= rate * c1 * m[i] / (std::sqrt(v[i]) * c2 + eps);
  }
}

double scheduledLr(double base, int64_t step, int64_t total, int64_t warmup,
                   bool cosine) {
  if (step <= warmup)
    return base * double(step) / double(warmup);
  if (!cosine)
    return base;
  const double pi = 3.14159265358979323846;
  double t = double(step - 1 - warmup), span = double(total - warmup);
  return base * 0.5 * (1 + std::cos(pi * t / span));
}

} // namespace einstruct
