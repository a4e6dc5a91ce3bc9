// A two-layer MLP whose linear layers are einstruct layers (forward and
// backward from the compiled code), trained with Adam on a teacher–student
// regression: the teacher is a random dense MLP 64 → 256 → 64 (tanh); the
// students are the same MLP with structured layers, and a dense MLP whose
// hidden width gives the same MACs per token. Prints both loss curves.
//   usage: train_mlp [STRUCTURE [STEPS]]    (default "btt(rank=2)", 400)
// Exit 1 unless the structured student's loss falls below half its start.
#include <einstruct/einstruct.hpp>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>

namespace {

constexpr int64_t kIn = 64, kHidden = 256, kOut = 64, kBatch = 64;

std::string spec(const std::string &structure, int64_t dIn, int64_t dOut) {
  return "{\"structure\": \"" + structure + "\", \"d_in\": " +
         std::to_string(dIn) + ", \"d_out\": " + std::to_string(dOut) + "}";
}

// One parameter tensor with Adam state.
struct Param {
  std::vector<float> v, m, s;
  explicit Param(std::vector<float> init)
      : v(std::move(init)), m(v.size()), s(v.size()) {}
  void step(const std::vector<float> &g, int t, float lr) {
    const float b1 = 0.9f, b2 = 0.999f;
    for (size_t i = 0; i < v.size(); ++i) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      s[i] = b2 * s[i] + (1 - b2) * g[i] * g[i];
      float mh = m[i] / (1 - std::pow(b1, float(t)));
      float sh = s[i] / (1 - std::pow(b2, float(t)));
      v[i] -= lr * mh / (std::sqrt(sh) + 1e-8f);
    }
  }
};

// A linear layer: an einstruct layer, its weights and a bias.
struct Linear {
  einstruct::CompiledLayer layer;
  std::vector<Param> w;
  Param bias;
  Linear(const std::string &structure, int64_t dIn, int64_t dOut, uint64_t seed)
      : layer(einstruct::CompiledLayer::cpu(spec(structure, dIn, dOut))),
        bias(std::vector<float>(size_t(dOut), 0.0f)) {
    for (auto &init : layer.initWeights(seed))
      w.emplace_back(std::move(init));
  }
  std::vector<const float *> ptrs() const {
    std::vector<const float *> p;
    for (auto &x : w)
      p.push_back(x.v.data());
    return p;
  }
  std::vector<float> forward(const std::vector<float> &x) const {
    auto y = layer.forward(x, ptrs());
    for (size_t i = 0; i < y.size(); ++i)
      y[i] += bias.v[i % bias.v.size()];
    return y;
  }
  // Returns dx and applies one Adam step to the weights and bias.
  std::vector<float> backward(const std::vector<float> &x,
                              const std::vector<float> &dy, int t, float lr) {
    auto g = layer.backward(x, dy, ptrs());
    std::vector<float> db(bias.v.size(), 0.0f);
    for (size_t i = 0; i < dy.size(); ++i)
      db[i % db.size()] += dy[i];
    for (size_t k = 0; k < w.size(); ++k)
      w[k].step(g.dw[k], t, lr);
    bias.step(db, t, lr);
    return g.dx;
  }
};

struct Mlp {
  Linear l1, l2;
  Mlp(const std::string &s1, const std::string &s2, int64_t hidden, uint64_t seed)
      : l1(s1, kIn, hidden, seed), l2(s2, hidden, kOut, seed + 1) {}
  int64_t macs() const { return l1.layer.macs() + l2.layer.macs(); }
  // One Adam step on (x, target); returns the mean squared error before it.
  float train(const std::vector<float> &x, const std::vector<float> &target,
              int t, float lr) {
    auto h = l1.forward(x);
    for (auto &v : h)
      v = std::tanh(v);
    auto y = l2.forward(h);
    float loss = 0;
    std::vector<float> dy(y.size());
    for (size_t i = 0; i < y.size(); ++i) {
      float e = y[i] - target[i];
      loss += e * e;
      dy[i] = 2 * e / float(y.size());
    }
    auto dh = l2.backward(h, dy, t, lr);
    for (size_t i = 0; i < dh.size(); ++i)
      dh[i] *= 1 - h[i] * h[i]; // tanh'
    l1.backward(x, dh, t, lr);
    return loss / float(y.size());
  }
};

} // namespace

int main(int argc, char **argv) {
  std::string structure = argc > 1 ? argv[1] : "btt(rank=2)";
  int steps = argc > 2 ? std::stoi(argv[2]) : 400;
  try {
    Mlp teacher("dense", "dense", kHidden, 7);
    Mlp student(structure, structure, kHidden, 1);
    // The dense student's hidden width matches the structured MACs.
    int64_t width = std::max<int64_t>(1, student.macs() / (kIn + kOut));
    Mlp dense("dense", "dense", width, 1);
    std::printf("structured %s: %lld MACs/token; dense baseline: hidden %lld, "
                "%lld MACs/token; teacher: dense hidden %lld\n",
                structure.c_str(), (long long)student.macs(), (long long)width,
                (long long)dense.macs(), (long long)kHidden);
    std::mt19937_64 rng(42);
    std::normal_distribution<float> normal(0, 1);
    float first = 0, last = 0, denseLast = 0;
    for (int t = 1; t <= steps; ++t) {
      std::vector<float> x(size_t(kBatch * kIn));
      for (auto &v : x)
        v = normal(rng);
      auto h = teacher.l1.forward(x);
      for (auto &v : h)
        v = std::tanh(v);
      auto target = teacher.l2.forward(h);
      float ls = student.train(x, target, t, 3e-3f);
      float ld = dense.train(x, target, t, 3e-3f);
      if (t == 1)
        first = ls;
      last = ls, denseLast = ld;
      if (t == 1 || t % 50 == 0)
        std::printf("step %4d  loss structured %.5f  dense %.5f\n", t, ls, ld);
    }
    bool ok = last < 0.5f * first;
    std::printf("structured loss %.5f -> %.5f (%s); dense at equal MACs %.5f\n",
                first, last, ok ? "fell below half" : "DID NOT FALL ENOUGH",
                denseLast);
    return ok ? 0 : 1;
  } catch (const einstruct::Error &e) {
    std::fprintf(stderr, "train_mlp: %s\n", e.what());
    return 2;
  }
}
