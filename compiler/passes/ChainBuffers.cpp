#include "ChainBuffers.h"

#include <algorithm>
#include <string>

namespace einstruct {

// Sharing slots, the SSD's backward at L = 4096 needs about half the
// memory.
void assignSlots(ChainPlan &plan) {
  const size_t n = plan.buffers.size();
  std::vector<int> first(n, -1), last(n, -1);
  for (int t = 0; t < int(plan.steps.size()); ++t)
    for (const auto *list :
         {&plan.steps[size_t(t)].in, &plan.steps[size_t(t)].out})
      for (int b : *list) {
        if (first[size_t(b)] < 0)
          first[size_t(b)] = t;
        last[size_t(b)] = t;
      }
  std::vector<size_t> order;
  for (size_t b = 0; b < n; ++b)
    if (plan.buffers[b].kind == ChainBuffer::Scratch)
      order.push_back(b);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t x, size_t y) { return first[x] < first[y]; });
  std::vector<int> busyUntil;
  for (size_t b : order) {
    ChainBuffer &buffer = plan.buffers[b];
    for (size_t k = 0; k < plan.slots.size() && buffer.slot < 0; ++k)
      if (plan.slots[k] == buffer.elems && busyUntil[k] < first[b])
        buffer.slot = int(k);
    if (buffer.slot < 0) {
      buffer.slot = int(plan.slots.size());
      plan.slots.push_back(buffer.elems);
      busyUntil.push_back(-1);
    }
    busyUntil[size_t(buffer.slot)] = last[b];
  }
}

// Inputs and outputs stored as bfloat16: each input converted into a
// float32 scratch copy before the first step, each output computed in a
// float32 scratch buffer and converted after the last. Constant inputs
// (M2's DFT matrices, written in float32) and residuals stay float32.
void storeBoundaryAsBf16(ChainPlan &plan) {
  plan.bf16Boundary = true;
  const size_t n = plan.buffers.size();
  std::vector<int> inner(n, -1);
  for (size_t b = 0; b < n; ++b) {
    const ChainBuffer &x = plan.buffers[b];
    if (x.kind == ChainBuffer::Scratch ||
        (x.kind == ChainBuffer::Input &&
         (plan.constantInput[size_t(x.index)] ||
          plan.residualInput[size_t(x.index)])) ||
        (x.kind == ChainBuffer::Output && plan.residualOutput[size_t(x.index)]))
      continue;
    plan.buffers[b].bf16 = true;
    ChainBuffer f = plan.buffers[b];
    f.kind = ChainBuffer::Scratch;
    f.index = 0;
    f.bf16 = false;
    plan.buffers.push_back(f);
    inner[b] = int(plan.buffers.size()) - 1;
  }
  for (ChainStep &s : plan.steps)
    for (auto *list : {&s.in, &s.out})
      for (int &b : *list)
        if (inner[size_t(b)] >= 0)
          b = inner[size_t(b)];
  std::vector<ChainStep> steps;
  auto convert = [&](size_t b, bool input) {
    ChainStep c;
    c.kind = ChainStep::Convert;
    c.count = plan.buffers[b].elems;
    c.in = {input ? int(b) : inner[b]};
    c.out = {input ? inner[b] : int(b)};
    c.what =
        input ? "input " + std::to_string(plan.buffers[b].index) + " to float32"
              : "output " + std::to_string(plan.buffers[b].index) +
                    " to bfloat16";
    steps.push_back(c);
  };
  for (size_t b = 0; b < n; ++b)
    if (plan.buffers[b].kind == ChainBuffer::Input && inner[b] >= 0)
      convert(b, true);
  steps.insert(steps.end(), plan.steps.begin(), plan.steps.end());
  for (size_t b = 0; b < n; ++b)
    if (plan.buffers[b].kind == ChainBuffer::Output && inner[b] >= 0)
      convert(b, false);
  plan.steps = std::move(steps);
}

} // namespace einstruct
