// A sequence mixer run by its generated CUDA libraries: the functions
// `einstruct compile --mixer` writes (the mixer's einstruct IR, its backward
// from --einstruct-autodiff, planned for CUDA, each a chain of kernels and
// cuBLAS calls; ChainOfFunction.h), built by nvcc, cached and opened
// (CudaLibrary). Operands and results as JitMixer's (compiler/cpu/
// JitMixer.h), float32, in device memory: ssd, hydra, m2-conv (its DFT
// matrices and twiddles copied to the device on the first call),
// monarch-seq, and the hydra-block and m2-block (the latter's constants
// too). Nothing here links against CUDA.
#pragma once
#include "compiler/cuda/ChainPlan.h"
#include "compiler/cuda/CudaLibrary.h"
#include "search/Mixer.h"

#include <memory>
#include <mutex>

namespace einstruct {

class CudaMixer {
public:
  ~CudaMixer();
  // `spec` on sequences of `length` tokens of `channels` (as
  // JitMixer::compile), built for `arch` ("sm_80", "sm_90a", ...) and run
  // on CUDA device `device`. Needs no driver or device to load.
  static Result<std::unique_ptr<CudaMixer>>
  load(const NamedSpec &spec, int64_t length, int64_t channels,
       const std::string &arch, int device = 0);

  const std::vector<MixerOperand> &operands() const { return operands_; }
  std::vector<int64_t> outputShape() const { return mixerOutputShape(plan_); }
  const MixerPlan &plan() const { return plan_; }
  int device() const { return forwardChain_.lib->device(); }
  // The libraries: the forward's, then the backward's (m2-conv,
  // monarch-seq) or the saving forward's and its backward's (ssd, hydra,
  // the blocks).
  std::vector<std::string> libraryPaths() const;
  bool fromCache() const;

  // What a training forward keeps for its backward (JitMixer::Saved's
  // residuals, all `batch` sequences'), in device memory allocated and
  // freed in order on the forward's stream; empty for m2-conv and
  // monarch-seq. It must not outlive the mixer.
  class Saved {
  public:
    int64_t bytes() const { return bytes_; }

  private:
    friend class CudaMixer;
    std::unique_ptr<CudaLibrary::Scratch> memory;
    std::vector<void *> residuals;
    int64_t batch = 0, bytes_ = 0;
  };

  // y for `batch` sequences on `stream` (a cudaStream_t; null: the legacy
  // default stream), asynchronously; one device pointer per operand.
  Result<bool> forward(const std::vector<const void *> &in, int64_t batch,
                       void *y, void *stream) const;
  // forward(), keeping the residuals.
  Result<std::unique_ptr<Saved>>
  forwardSaving(const std::vector<const void *> &in, int64_t batch, void *y,
                void *stream) const;
  // The gradients of <dy, y> with respect to every operand, into `grads`
  // (shaped like the operands; a shared one's summed over the batch), from
  // forwardSaving's residuals on the same operands and batch when `saved`
  // is given, else after the saving forward runs again.
  Result<bool> backward(const std::vector<const void *> &in, const void *dy,
                        int64_t batch, const std::vector<void *> &grads,
                        void *stream, const Saved *saved = nullptr) const;
  // Waits for the work queued on `stream` (of the mixer's device).
  Result<bool> synchronize(void *stream) const;

private:
  CudaMixer() = default;
  // One chain library's entry points (ChainEmitter.cpp's C ABI).
  struct Chain {
    std::unique_ptr<CudaLibrary> lib;
    int (*run)(const float *const *, float *const *, long long, void *, size_t,
               void *) = nullptr;
    size_t (*workspaceBytes)(long long) = nullptr;
  };
  // batch >= 1 and one pointer per operand.
  Result<bool> checkCall(const std::vector<const void *> &in,
                         int64_t batch) const;
  // Checks the caller's pointers (the operands, then dy; y or the
  // gradients), then runs `chain` on S = batch with the residuals as its
  // outputs after y (the saving forward) or its inputs before dy (its
  // backward).
  Result<bool> call(const Chain &chain, const char *what,
                    const std::vector<const void *> &in,
                    const std::vector<void *> &out, int64_t batch, void *stream,
                    const std::vector<void *> &residuals = {}) const;
  // The residuals' device memory for `batch` sequences.
  Result<std::unique_ptr<Saved>> allocateSaved(int64_t batch,
                                               void *stream) const;

  // The constant inputs (mixerConstants: m2-conv's and m2-block's) onto
  // the device, once (loading needs no device).
  Result<bool> uploadConstants() const;

  MixerPlan plan_;
  std::vector<MixerOperand> operands_;
  // backwardChain_ recomputes the forward; ssd, hydra and the blocks have
  // savingChain_ and backwardChain_ from its residuals instead.
  Chain forwardChain_, backwardChain_, savingChain_;
  std::vector<ChainSize> residualElements_; // per residual, at S sequences
  // After the libraries: freed before them.
  mutable std::mutex constantsMutex_;
  mutable std::vector<CudaLibrary::DeviceCopy> constants_;
};

} // namespace einstruct
