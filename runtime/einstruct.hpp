// einstruct runtime: the C++ API, a header-only RAII wrapper of einstruct.h.
// Errors throw einstruct::Error with the runtime's message.
#pragma once
#include "einstruct.h"

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace einstruct {

struct Error : std::runtime_error {
  int status;
  Error(int s, const std::string &m) : std::runtime_error(m), status(s) {}
};

class CompiledLayer {
public:
  // Compiles a JSON spec for the CPU.
  static CompiledLayer cpu(const std::string &specJson) {
    einstruct_layer *l = nullptr;
    check(einstruct_layer_create_cpu(specJson.c_str(), &l));
    return CompiledLayer(l);
  }

  // Loads the layer's generated CUDA kernels for `device`, built by nvcc on
  // first use and cached on disk (einstruct_layer_create_cuda).
  static CompiledLayer cuda(const std::string &specJson,
                            const std::string &dtype = "bf16", int device = 0) {
    einstruct_layer *l = nullptr;
    check(einstruct_layer_create_cuda(specJson.c_str(), dtype.c_str(), device,
                                      &l));
    return CompiledLayer(l);
  }
  // Builds the CUDA library for `arch` into the cache, no GPU needed;
  // returns its path (einstruct_cuda_prebuild).
  static std::string prebuildCuda(const std::string &specJson,
                                  const std::string &dtype,
                                  const std::string &arch) {
    char path[4096];
    check(einstruct_cuda_prebuild(specJson.c_str(), dtype.c_str(),
                                  arch.c_str(), path, sizeof path));
    return path;
  }

  int device() const { return einstruct_layer_device(layer_.get()); } // -1: CPU
  std::string dtype() const { return einstruct_layer_dtype(layer_.get()); }
  int64_t dIn() const { return einstruct_layer_d_in(layer_.get()); }
  int64_t dOut() const { return einstruct_layer_d_out(layer_.get()); }
  int64_t macs() const { return einstruct_layer_macs(layer_.get()); }
  int64_t experts() const { return einstruct_layer_experts(layer_.get()); }
  std::vector<std::vector<int64_t>> weightShapes() const {
    std::vector<std::vector<int64_t>> out;
    for (int k = 0; k < einstruct_layer_num_weights(layer_.get()); ++k) {
      int64_t dims[16];
      int rank = einstruct_layer_weight_shape(layer_.get(), k, dims, 16);
      check(rank < 0 ? rank : 0);
      out.emplace_back(dims, dims + rank);
    }
    return out;
  }

  // Weights drawn by the reference initialisation (structures.md §4).
  std::vector<std::vector<float>> initWeights(uint64_t seed) const {
    std::vector<std::vector<float>> w;
    std::vector<float *> p;
    for (auto &s : weightShapes()) {
      int64_t n = 1;
      for (int64_t d : s)
        n *= d;
      w.emplace_back(size_t(n));
    }
    for (auto &v : w)
      p.push_back(v.data());
    check(einstruct_layer_init_weights(layer_.get(), seed, p.data()));
    return w;
  }

  std::vector<float> forward(const std::vector<float> &x,
                             const std::vector<const float *> &weights) const {
    int64_t batch = rows(x, dIn());
    std::vector<float> y(size_t(batch * dOut()));
    check(einstruct_layer_forward(layer_.get(), x.data(), batch,
                                  weights.data(), y.data()));
    return y;
  }

  struct Gradients {
    std::vector<float> dx;
    std::vector<std::vector<float>> dw;
  };
  Gradients backward(const std::vector<float> &x, const std::vector<float> &dy,
                     const std::vector<const float *> &weights) const {
    int64_t batch = rows(x, dIn());
    if (int64_t(dy.size()) != batch * dOut())
      throw Error(EINSTRUCT_ERR_ARGUMENT, "dy must be [batch, d_out]");
    Gradients g;
    g.dx.resize(x.size());
    std::vector<float *> dwp;
    for (auto &s : weightShapes()) {
      int64_t n = 1;
      for (int64_t d : s)
        n *= d;
      g.dw.emplace_back(size_t(n));
      dwp.push_back(g.dw.back().data());
    }
    check(einstruct_layer_backward(layer_.get(), x.data(), dy.data(), batch,
                                   weights.data(), g.dx.data(), dwp.data()));
    return g;
  }

  // Arrays in the layer's dtype and memory (device pointers for a CUDA
  // layer), asynchronous on `stream` (a cudaStream_t; CPU layers: null).
  void forwardStream(const void *x, int64_t batch,
                     const std::vector<const void *> &weights, void *y,
                     void *stream = nullptr) const {
    check(einstruct_layer_forward_stream(layer_.get(), x, batch,
                                         weights.data(), y, stream));
  }
  void backwardStream(const void *x, const void *dy, int64_t batch,
                      const std::vector<const void *> &weights, void *dx,
                      const std::vector<void *> &dweights,
                      void *stream = nullptr) const {
    check(einstruct_layer_backward_stream(layer_.get(), x, dy, batch,
                                          weights.data(), dx, dweights.data(),
                                          stream));
  }

  // Threads a call may use (einstruct_layer_set_threads).
  void setThreads(int threads) {
    check(einstruct_layer_set_threads(layer_.get(), threads));
  }

  // BTT-MoE: the aux-loss weight of backward (default 0.01).
  void setAuxWeight(double w) {
    check(einstruct_layer_set_aux_weight(layer_.get(), w));
  }
  struct Routing {
    std::vector<int64_t> tokensPerExpert;
    double auxLoss = 0, entropy = 0;
  };
  // BTT-MoE on CUDA: gather routing statistics (calls then wait).
  void setRoutingStats(bool on) {
    check(einstruct_layer_set_routing_stats(layer_.get(), on ? 1 : 0));
  }
  // BTT-MoE: what the last forward or backward call routed.
  Routing routing() const {
    Routing r;
    r.tokensPerExpert.resize(size_t(experts()));
    check(einstruct_layer_routing(layer_.get(), r.tokensPerExpert.data(),
                                  &r.auxLoss, &r.entropy));
    return r;
  }

private:
  explicit CompiledLayer(einstruct_layer *l) : layer_(l, einstruct_layer_destroy) {}
  static void check(int status) {
    if (status != EINSTRUCT_OK)
      throw Error(status, einstruct_last_error());
  }
  static int64_t rows(const std::vector<float> &x, int64_t dIn) {
    if (x.empty() || int64_t(x.size()) % dIn != 0)
      throw Error(EINSTRUCT_ERR_ARGUMENT, "x must be [batch, d_in], batch >= 1");
    return int64_t(x.size()) / dIn;
  }
  std::shared_ptr<einstruct_layer> layer_;
};

// A sequence mixer compiled for the CPU (einstruct_mixer_create_cpu):
// "ssd(heads, head_dim, state, chunk)", "hydra(...)", "m2-conv(causal)",
// "monarch-seq(blocks)" or the whole block "hydra-block(...)" on sequences
// of seqLen tokens of dModel channels (0 for ssd and hydra). Operands are in
// operands()' order, [batch, shape...] when per sequence, else the shared
// parameter's shape.
class CompiledMixer {
public:
  static CompiledMixer cpu(const std::string &spec, int64_t seqLen,
                           int64_t dModel = 0) {
    einstruct_mixer *m = nullptr;
    check(einstruct_mixer_create_cpu(spec.c_str(), seqLen, dModel, &m));
    return CompiledMixer(m);
  }
  // The same on CUDA device `device`: its libraries built by nvcc on first
  // use and cached on disk (einstruct_mixer_create_cuda).
  static CompiledMixer cuda(const std::string &spec, int64_t seqLen,
                            int64_t dModel = 0, int device = 0) {
    einstruct_mixer *m = nullptr;
    check(
        einstruct_mixer_create_cuda(spec.c_str(), seqLen, dModel, device, &m));
    return CompiledMixer(m);
  }
  // -1 for a CPU mixer, else its CUDA device.
  int device() const { return einstruct_mixer_device(mixer_.get()); }

  struct Operand {
    std::string name;
    std::vector<int64_t> shape; // per sequence, or the parameter's
    bool perSequence = true;
  };
  std::vector<Operand> operands() const {
    std::vector<Operand> out;
    for (int k = 0; k < einstruct_mixer_num_operands(mixer_.get()); ++k) {
      const char *name = nullptr;
      int64_t dims[16];
      int rank = einstruct_mixer_operand(mixer_.get(), k, &name, dims, 16);
      check(rank < 0 ? rank : 0);
      int each = einstruct_mixer_operand_per_sequence(mixer_.get(), k);
      check(each < 0 ? each : 0);
      out.push_back({name, std::vector<int64_t>(dims, dims + rank), each == 1});
    }
    return out;
  }
  int64_t macs() const { return einstruct_mixer_macs(mixer_.get()); }

  // y [batch, L, H, P] (ssd, hydra) or [batch, L, C] for `batch`
  // sequences; one pointer per operand.
  void forward(const std::vector<const float *> &operands, int64_t batch,
               float *y) const {
    check(einstruct_mixer_forward(mixer_.get(), operands.data(), batch, y));
  }
  // The gradients of <dy, y>, one array per operand, shaped like it.
  void backward(const std::vector<const float *> &operands, const float *dy,
                int64_t batch, const std::vector<float *> &grads) const {
    check(einstruct_mixer_backward(mixer_.get(), operands.data(), dy, batch,
                                   grads.data()));
  }
  // Arrays in the mixer's memory (device pointers for a CUDA mixer),
  // asynchronous on `stream` (a cudaStream_t; CPU mixers: null).
  void forwardStream(const std::vector<const void *> &operands, int64_t batch,
                     void *y, void *stream = nullptr) const {
    check(einstruct_mixer_forward_stream(mixer_.get(), operands.data(), batch,
                                         y, stream));
  }
  void backwardStream(const std::vector<const void *> &operands, const void *dy,
                      int64_t batch, const std::vector<void *> &grads,
                      void *stream = nullptr) const {
    check(einstruct_mixer_backward_stream(mixer_.get(), operands.data(), dy,
                                          batch, grads.data(), stream));
  }
  // Training's pair (einstruct_mixer_forward_saving / _backward_saved): the
  // forward keeps what its backward reads, so that the backward does not
  // run the forward again; Residuals frees it.
  using Residuals = std::shared_ptr<einstruct_mixer_saved>;
  Residuals forwardSaving(const std::vector<const void *> &operands,
                          int64_t batch, void *y,
                          void *stream = nullptr) const {
    einstruct_mixer_saved *saved = nullptr;
    check(einstruct_mixer_forward_saving(mixer_.get(), operands.data(), batch,
                                         y, stream, &saved));
    return Residuals(saved, einstruct_mixer_saved_destroy);
  }
  void backwardSaved(const Residuals &saved,
                     const std::vector<const void *> &operands, const void *dy,
                     int64_t batch, const std::vector<void *> &grads,
                     void *stream = nullptr) const {
    check(einstruct_mixer_backward_saved(mixer_.get(), saved.get(),
                                         operands.data(), dy, batch,
                                         grads.data(), stream));
  }
  void setThreads(int threads) {
    check(einstruct_mixer_set_threads(mixer_.get(), threads));
  }

private:
  explicit CompiledMixer(einstruct_mixer *m)
      : mixer_(m, einstruct_mixer_destroy) {}
  static void check(int status) {
    if (status != EINSTRUCT_OK)
      throw Error(status, einstruct_last_error());
  }
  std::shared_ptr<einstruct_mixer> mixer_;
};

} // namespace einstruct
