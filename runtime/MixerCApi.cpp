// The C ABI's sequence mixers (runtime/einstruct.h): a JitMixer (CPU) or
// a CudaMixer each.
#include "compiler/cpu/JitMixer.h"
#include "compiler/cuda/CudaDevice.h"
#include "compiler/cuda/CudaMixer.h"
#include "runtime/CApiErrors.h"
#include "runtime/einstruct.h"
#include "search/Checked.h"
#include "search/Mixer.h"

#include <algorithm>
#include <fmt/format.h>

struct einstruct_mixer {
  std::unique_ptr<einstruct::JitMixer> jit;   // a CPU mixer, or
  std::unique_ptr<einstruct::CudaMixer> cuda; // a CUDA one
  const std::vector<einstruct::MixerOperand> &operands() const {
    return jit ? jit->operands() : cuda->operands();
  }
};

// A forward's residuals for its backward: a CPU mixer's or a CUDA mixer's
// (JitMixer::Saved, CudaMixer::Saved; empty for m2-conv and monarch-seq).
struct einstruct_mixer_saved {
  const einstruct_mixer *mixer;
  int64_t batch;
  std::unique_ptr<einstruct::JitMixer::Saved> cpu;
  std::unique_ptr<einstruct::CudaMixer::Saved> gpu;
};

using einstruct::capi::failWith;
using einstruct::capi::lastError;
using einstruct::capi::statusOf;

namespace {

// A mixer, its arrays and batch >= 1 with every array under 2^40 elements.
int checkMixerCall(const einstruct_mixer *m,
                   std::initializer_list<const void *> arrays,
                   const void *const *list, int64_t batch) {
  bool present = m && list;
  for (const void *a : arrays)
    present = present && a;
  if (present)
    for (size_t k = 0; k < m->operands().size(); ++k)
      present = present && list[k];
  if (!present)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null mixer, operand or array");
  // The largest operand's elements per sequence.
  int64_t perSequence = 0;
  for (const auto &op : m->operands())
    perSequence = std::max(perSequence, einstruct::elementCount(op.shape));
  return einstruct::capi::checkBatch(batch, perSequence, "sequences");
}

// Operand k of mixer m into `op`, or the error's status.
int mixerOperand(const einstruct_mixer *m, int k,
                 const einstruct::JitMixer::Operand *&op) {
  if (!m)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null mixer");
  const auto &ops = m->operands();
  if (k < 0 || size_t(k) >= ops.size())
    return failWith(
        EINSTRUCT_ERR_ARGUMENT,
        fmt::format("operand {} is outside [0, {})", k, ops.size()));
  op = &ops[size_t(k)];
  return EINSTRUCT_OK;
}

// A create call's spec, parsed into `named` (*out cleared), or the error's
// status.
int readMixerSpec(const char *spec, einstruct_mixer **out,
                  einstruct::NamedSpec &named) {
  if (!spec || !out)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null spec or output pointer");
  *out = nullptr;
  auto parsed = einstruct::parseMixer(spec);
  if (!parsed)
    return failWith(EINSTRUCT_ERR_SPEC, parsed.error());
  named = std::move(*parsed);
  return EINSTRUCT_OK;
}

} // namespace

extern "C" {

int einstruct_mixer_create_cpu(const char *spec, int64_t seqLen, int64_t dModel,
                               einstruct_mixer **out) {
  einstruct::NamedSpec named;
  if (int s = readMixerSpec(spec, out, named))
    return s;
  auto jit = einstruct::JitMixer::compile(named, seqLen, dModel);
  if (!jit)
    return failWith(jit.error().rfind("CPU lowering", 0) == 0 ||
                            jit.error().rfind("JIT", 0) == 0
                        ? EINSTRUCT_ERR_COMPILE
                        : EINSTRUCT_ERR_SPEC,
                    jit.error());
  *out = new einstruct_mixer{std::move(*jit), nullptr};
  lastError.clear();
  return EINSTRUCT_OK;
}

int einstruct_mixer_create_cuda(const char *spec, int64_t seqLen,
                                int64_t dModel, int device,
                                einstruct_mixer **out) {
  einstruct::NamedSpec named;
  if (int s = readMixerSpec(spec, out, named))
    return s;
  // The spec's own errors before the device's.
  auto plan = einstruct::planMixer(named, seqLen, dModel);
  if (!plan)
    return failWith(EINSTRUCT_ERR_SPEC, plan.error());
  auto dev = einstruct::queryCudaDevice(device);
  if (!dev)
    return failWith(EINSTRUCT_ERR_DEVICE, dev.error());
  auto target = einstruct::targetFor(*dev, einstruct::CudaDType::F32);
  if (!target)
    return failWith(EINSTRUCT_ERR_DEVICE, target.error());
  auto cuda =
      einstruct::CudaMixer::load(named, seqLen, dModel, target->arch, device);
  if (!cuda)
    return failWith(EINSTRUCT_ERR_COMPILE, cuda.error());
  *out = new einstruct_mixer{nullptr, std::move(*cuda)};
  lastError.clear();
  return EINSTRUCT_OK;
}

void einstruct_mixer_destroy(einstruct_mixer *m) { delete m; }

int einstruct_mixer_device(const einstruct_mixer *m) {
  if (!m)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null mixer");
  return m->jit ? -1 : m->cuda->device();
}

int einstruct_mixer_num_operands(const einstruct_mixer *m) {
  if (!m)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null mixer");
  return int(m->operands().size());
}

int einstruct_mixer_operand(const einstruct_mixer *m, int k, const char **name,
                            int64_t *dims, int maxRank) {
  const einstruct::JitMixer::Operand *op = nullptr;
  if (int s = mixerOperand(m, k, op))
    return s;
  if (name)
    *name = op->name.c_str();
  const auto &shape = op->shape;
  if (dims)
    for (int r = 0; r < std::min<int>(maxRank, int(shape.size())); ++r)
      dims[r] = shape[size_t(r)];
  return int(shape.size());
}

int einstruct_mixer_operand_per_sequence(const einstruct_mixer *m, int k) {
  const einstruct::JitMixer::Operand *op = nullptr;
  if (int s = mixerOperand(m, k, op))
    return s;
  return op->perSequence ? 1 : 0;
}

int64_t einstruct_mixer_macs(const einstruct_mixer *m) {
  if (!m)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null mixer");
  return m->jit ? m->jit->analysis().macs : m->cuda->plan().analysis.macs;
}

} // extern "C"

namespace {

// The forward on `stream`, its residuals into *saved when saved is not
// null.
int mixerForward(const einstruct_mixer *m, const void *const *operands,
                 int64_t batch, void *y, void *stream,
                 einstruct_mixer_saved **saved) {
  if (int s = checkMixerCall(m, {y}, operands, batch))
    return s;
  std::vector<const void *> in(operands, operands + m->operands().size());
  std::unique_ptr<einstruct_mixer_saved> keep;
  if (saved)
    keep.reset(new einstruct_mixer_saved{m, batch, nullptr, nullptr});
  if (m->cuda && !saved) {
    if (int s = statusOf(m->cuda->forward(in, batch, y, stream)))
      return s;
  } else if (m->cuda) {
    auto r = m->cuda->forwardSaving(in, batch, y, stream);
    if (!r)
      return statusOf(r);
    keep->gpu = std::move(*r);
  } else {
    if (stream)
      return failWith(EINSTRUCT_ERR_ARGUMENT,
                      "a CPU mixer runs at once: its stream must be null");
    std::vector<const float *> f;
    for (const void *p : in)
      f.push_back(static_cast<const float *>(p));
    if (!saved)
      return statusOf(m->jit->forward(f, batch, static_cast<float *>(y)));
    auto r = m->jit->forwardSaving(f, batch, static_cast<float *>(y));
    if (!r)
      return statusOf(r);
    keep->cpu = std::move(*r);
  }
  if (saved)
    *saved = keep.release();
  return EINSTRUCT_OK;
}

// The backward on `stream`, from `saved`'s residuals when not null.
int mixerBackward(const einstruct_mixer *m, const einstruct_mixer_saved *saved,
                  const void *const *operands, const void *dy, int64_t batch,
                  void *const *grads, void *stream) {
  if (int s = checkMixerCall(m, {dy}, operands, batch))
    return s;
  if (int s = checkMixerCall(
          m, {}, reinterpret_cast<const void *const *>(grads), batch))
    return s;
  if (saved && saved->mixer != m)
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    "the saved forward is another mixer's");
  if (saved && saved->batch != batch)
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    fmt::format("the saved forward ran on {} sequences, the "
                                "backward on {}",
                                saved->batch, batch));
  const size_t n = m->operands().size();
  std::vector<const void *> in(operands, operands + n);
  std::vector<void *> out(grads, grads + n);
  if (m->cuda)
    return statusOf(m->cuda->backward(in, dy, batch, out, stream,
                                      saved ? saved->gpu.get() : nullptr));
  if (stream)
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    "a CPU mixer runs at once: its stream must be null");
  std::vector<const float *> f;
  std::vector<float *> g;
  for (size_t k = 0; k < n; ++k) {
    f.push_back(static_cast<const float *>(in[k]));
    g.push_back(static_cast<float *>(out[k]));
  }
  return statusOf(m->jit->backward(f, static_cast<const float *>(dy), batch, g,
                                   saved ? saved->cpu.get() : nullptr));
}

} // namespace

extern "C" {

int einstruct_mixer_forward_stream(const einstruct_mixer *m,
                                   const void *const *operands, int64_t batch,
                                   void *y, void *stream) {
  return mixerForward(m, operands, batch, y, stream, nullptr);
}

int einstruct_mixer_backward_stream(const einstruct_mixer *m,
                                    const void *const *operands, const void *dy,
                                    int64_t batch, void *const *grads,
                                    void *stream) {
  return mixerBackward(m, nullptr, operands, dy, batch, grads, stream);
}

int einstruct_mixer_forward_saving(const einstruct_mixer *m,
                                   const void *const *operands, int64_t batch,
                                   void *y, void *stream,
                                   einstruct_mixer_saved **saved) {
  if (!saved)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null saved");
  *saved = nullptr;
  return mixerForward(m, operands, batch, y, stream, saved);
}

int einstruct_mixer_backward_saved(const einstruct_mixer *m,
                                   const einstruct_mixer_saved *saved,
                                   const void *const *operands, const void *dy,
                                   int64_t batch, void *const *grads,
                                   void *stream) {
  if (!saved)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null saved");
  return mixerBackward(m, saved, operands, dy, batch, grads, stream);
}

void einstruct_mixer_saved_destroy(einstruct_mixer_saved *saved) {
  delete saved;
}

// The stream calls on the default stream, waited for on a CUDA mixer.
int einstruct_mixer_forward(const einstruct_mixer *m,
                            const float *const *operands, int64_t batch,
                            float *y) {
  int s = einstruct_mixer_forward_stream(
      m, reinterpret_cast<const void *const *>(operands), batch, y, nullptr);
  if (s == EINSTRUCT_OK && m->cuda)
    s = statusOf(m->cuda->synchronize(nullptr));
  return s;
}

int einstruct_mixer_backward(const einstruct_mixer *m,
                             const float *const *operands, const float *dy,
                             int64_t batch, float *const *grads) {
  int s = einstruct_mixer_backward_stream(
      m, reinterpret_cast<const void *const *>(operands), dy, batch,
      reinterpret_cast<void *const *>(grads), nullptr);
  if (s == EINSTRUCT_OK && m->cuda)
    s = statusOf(m->cuda->synchronize(nullptr));
  return s;
}

int einstruct_mixer_set_threads(einstruct_mixer *m, int threads) {
  if (!m)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null mixer");
  if (threads < 1)
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    fmt::format("threads = {} must be at least 1", threads));
  if (m->jit) // a CUDA mixer's launches take the whole batch
    m->jit->setThreads(threads);
  return EINSTRUCT_OK;
}

} // extern "C"
