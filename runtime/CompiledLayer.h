// One layer compiled for where it runs, behind one interface: the CPU JIT
// (every layer but BTT-MoE), the routed CPU BTT-MoE, or the generated CUDA
// library (fused, cuBLAS or grouped MoE; CudaLayer). The C ABI holds one of
// these and never asks which.
#pragma once
#include "compiler/cuda/CudaPlan.h"
#include "search/Routing.h"

#include <memory>

namespace einstruct {

class CompiledLayer {
public:
  virtual ~CompiledLayer() = default;

  // Arrays are float32 host memory on the CPU, device memory in dtype() on
  // CUDA. `weights` (and `dweights`) are every weight in order, the router
  // last for BTT-MoE. `stream` is a cudaStream_t (null on the CPU); CUDA
  // calls are asynchronous until synchronize().
  virtual Result<bool> forward(const void *x, int64_t batch,
                               const void *const *weights, void *y,
                               void *stream) = 0;
  // Gradients of <dy, y> (+ auxWeight · aux loss for BTT-MoE), overwritten.
  virtual Result<bool> backward(const void *x, const void *dy, int64_t batch,
                                const void *const *weights, void *dx,
                                void *const *dweights, void *stream,
                                double auxWeight) = 0;
  // A bias (the spec's "bias": true): y [rows][n] += b, and db = the column
  // sums of dy [rows][n] (overwritten); arrays as above.
  virtual Result<bool> addBias(void *y, const void *b, int64_t rows,
                               int64_t n, void *stream);
  virtual Result<bool> biasGradient(const void *dy, void *db, int64_t rows,
                                    int64_t n, void *stream);
  // Waits for the work queued on the default stream (CUDA).
  virtual Result<bool> synchronize() { return true; }

  // The CUDA device calls run on; -1 on the CPU.
  virtual int device() const { return -1; }
  virtual CudaDType dtype() const { return CudaDType::F32; }
  // Threads a CPU call may use; an error on CUDA.
  virtual Result<bool> setThreads(int threads) = 0;

  // BTT-MoE: whether calls gather routing statistics (always on the CPU;
  // on CUDA only when asked, as they wait for the stream), and those of
  // the last call (counts empty before one).
  virtual void setRoutingStats(bool on) {}
  virtual bool routingStats() const { return true; }
  const Routing &lastRouting() const { return routing_; }

protected:
  Routing routing_;
};

// `layer` on the CPU: the routed BTT-MoE, else the JIT.
Result<std::unique_ptr<CompiledLayer>> compileForCpu(const Layer &layer);

// `layer`'s generated library for `target`, run on `device`.
Result<std::unique_ptr<CompiledLayer>>
compileForCuda(const Layer &layer, const CudaTarget &target, int device);

} // namespace einstruct
