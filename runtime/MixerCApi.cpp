// The C ABI's sequence mixers (runtime/einstruct.h): one JitMixer each.
#include "compiler/cpu/JitMixer.h"
#include "runtime/CApiErrors.h"
#include "runtime/einstruct.h"
#include "search/Checked.h"
#include "search/Mixer.h"

#include <algorithm>
#include <fmt/format.h>

struct einstruct_mixer {
  std::unique_ptr<einstruct::JitMixer> jit;
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
    for (size_t k = 0; k < m->jit->operands().size(); ++k)
      present = present && list[k];
  if (!present)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null mixer, operand or array");
  // The largest operand's elements per sequence.
  int64_t perSequence = 0;
  for (const auto &op : m->jit->operands())
    perSequence = std::max(perSequence, einstruct::elementCount(op.shape));
  return einstruct::capi::checkBatch(batch, perSequence, "sequences");
}

// Operand k of mixer m into `op`, or the error's status.
int mixerOperand(const einstruct_mixer *m, int k,
                 const einstruct::JitMixer::Operand *&op) {
  if (!m)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null mixer");
  const auto &ops = m->jit->operands();
  if (k < 0 || size_t(k) >= ops.size())
    return failWith(
        EINSTRUCT_ERR_ARGUMENT,
        fmt::format("operand {} is outside [0, {})", k, ops.size()));
  op = &ops[size_t(k)];
  return EINSTRUCT_OK;
}

} // namespace

extern "C" {

int einstruct_mixer_create_cpu(const char *spec, int64_t seqLen, int64_t dModel,
                               einstruct_mixer **out) {
  if (!spec || !out)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null spec or output pointer");
  *out = nullptr;
  auto named = einstruct::parseMixer(spec);
  if (!named)
    return failWith(EINSTRUCT_ERR_SPEC, named.error());
  auto jit = einstruct::JitMixer::compile(*named, seqLen, dModel);
  if (!jit)
    return failWith(jit.error().rfind("CPU lowering", 0) == 0 ||
                            jit.error().rfind("JIT", 0) == 0
                        ? EINSTRUCT_ERR_COMPILE
                        : EINSTRUCT_ERR_SPEC,
                    jit.error());
  *out = new einstruct_mixer{std::move(*jit)};
  lastError.clear();
  return EINSTRUCT_OK;
}

void einstruct_mixer_destroy(einstruct_mixer *m) { delete m; }

int einstruct_mixer_num_operands(const einstruct_mixer *m) {
  if (!m)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null mixer");
  return int(m->jit->operands().size());
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
  return m ? m->jit->analysis().macs
           : failWith(EINSTRUCT_ERR_ARGUMENT, "null mixer");
}

int einstruct_mixer_forward(const einstruct_mixer *m,
                            const float *const *operands, int64_t batch,
                            float *y) {
  if (int s = checkMixerCall(
          m, {y}, reinterpret_cast<const void *const *>(operands), batch))
    return s;
  std::vector<const float *> in(operands, operands + m->jit->operands().size());
  return statusOf(m->jit->forward(in, batch, y));
}

int einstruct_mixer_backward(const einstruct_mixer *m,
                             const float *const *operands, const float *dy,
                             int64_t batch, float *const *grads) {
  if (int s = checkMixerCall(
          m, {dy}, reinterpret_cast<const void *const *>(operands), batch))
    return s;
  if (int s = checkMixerCall(
          m, {}, reinterpret_cast<const void *const *>(grads), batch))
    return s;
  const size_t n = m->jit->operands().size();
  std::vector<const float *> in(operands, operands + n);
  std::vector<float *> out(grads, grads + n);
  return statusOf(m->jit->backward(in, dy, batch, out));
}

int einstruct_mixer_set_threads(einstruct_mixer *m, int threads) {
  if (!m)
    return failWith(EINSTRUCT_ERR_ARGUMENT, "null mixer");
  if (threads < 1)
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    fmt::format("threads = {} must be at least 1", threads));
  m->jit->setThreads(threads);
  return EINSTRUCT_OK;
}

} // extern "C"
