// The glue around the compiled m2-conv and monarch-seq: both are linear in
// x with parameters shared by the sequences and act on each channel alone,
// so a call is cut into blocks of channels (the threads' unit), each run
// on groups of sequences. The compiled function takes x [S, L, C] for the
// block's C channels; m2-conv's parameters are per channel (each block
// takes its columns), monarch-seq's weights are the channels' together
// (each block takes them whole; their gradients are summed after).
#include "BufferPool.h"
#include "JitMixer.h"
#include "JitModule.h"
#include "WorkerPool.h"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>

namespace einstruct {

namespace {

// Sequences per compiled call: the kernel's DFT is shared by them, and the
// intermediates (a few S·n·C complex arrays) stay within a few MB.
constexpr int64_t kSequencesPerCall = 8;

} // namespace

Result<bool> JitMixer::linearRun(const std::vector<const float *> &in,
                                 const float *dy, int64_t batch, float *y,
                                 const std::vector<float *> &grads) const {
  const bool perChannel = plan_.family == "m2-conv";
  const int64_t L = plan_.length, D = plan_.channels, C = plan_.channelBlock;
  const int64_t blocks = (D + C - 1) / C;
  // The shared weights' gradients of each block, summed after.
  std::vector<std::vector<PooledFloats>> weightGrads(
      perChannel || !dy ? 0 : size_t(blocks));
  auto cs = workers::chunks(blocks, threads_, 1);
  auto ok = workers::runAll(cs.size(), [&](size_t c) -> Result<bool> {
    for (int64_t blk = cs[c].start; blk < cs[c].start + cs[c].rows; ++blk) {
      const int64_t c0 = blk * C, width = std::min(C, D - c0);
      // Columns [c0, c0 + width) of `rows` rows of D channels as [rows, C]
      // (zero past width), and back. Buffers come from the pool: their
      // pages stay mapped from call to call.
      auto columns = [&](const float *src, int64_t rows) {
        PooledFloats v(size_t(rows * C), 0.f);
        for (int64_t r = 0; r < rows; ++r)
          std::memcpy(v.data() + r * C, src + r * D + c0, size_t(width) * 4);
        return v;
      };
      auto putColumns = [&](const PooledFloats &v, float *dst, int64_t rows) {
        for (int64_t r = 0; r < rows; ++r)
          std::memcpy(dst + r * D + c0, v.data() + r * C, size_t(width) * 4);
      };
      // The parameters (operands after x) as the compiled function takes
      // them: m2-conv's k and k_rev [L, C] and D [C] (their rows kept),
      // monarch-seq's weights in its einsum's shapes.
      std::vector<PooledFloats> owned;
      std::vector<int64_t> paramRows;
      std::vector<std::vector<int64_t>> paramShapes;
      for (size_t p = 1; p < operands_.size(); ++p) {
        if (!perChannel) {
          paramShapes.push_back(
              plan_.monarch.shape(plan_.monarch.weights[p - 1]));
          continue;
        }
        std::vector<int64_t> shape = operands_[p].shape;
        paramRows.push_back(shape.size() == 2 ? shape[0] : 1);
        owned.push_back(columns(in[p], paramRows.back()));
        shape.back() = C;
        paramShapes.push_back(shape);
      }
      std::vector<const float *> params;
      for (size_t p = 0; p < paramShapes.size(); ++p)
        params.push_back(perChannel ? owned[p].data() : in[p + 1]);
      std::vector<PooledFloats> paramGrads(params.size());
      for (size_t p = 0; p < params.size() && dy; ++p)
        paramGrads[p].assign(size_t(elementCount(paramShapes[p])), 0.f);
      for (int64_t s0 = 0; s0 < batch; s0 += kSequencesPerCall) {
        const int64_t S = std::min(kSequencesPerCall, batch - s0);
        // The group's S·L rows of x (and dy, y, dx) are contiguous.
        const int64_t rows = S * L, at = s0 * L * D;
        PooledFloats x = columns(in[0] + at, rows);
        const std::vector<int64_t> xShape = {S, L, C};
        std::vector<Descriptor> operands;
        std::vector<const void *> inputs = {x.data()};
        operands.emplace_back(x.data(), xShape);
        for (size_t p = 0; p < params.size(); ++p) {
          operands.emplace_back(params[p], paramShapes[p]);
          inputs.push_back(params[p]);
        }
        for (const M2ConvConstant &k : constants_) {
          operands.emplace_back(k.values.data(), k.shape);
          inputs.push_back(k.values.data());
        }
        PooledFloats out(x.size());
        if (!dy) {
          callInto(forward_->entry(0), operands, inputs, {xShape},
                   {out.data()});
          putColumns(out, y + at, rows);
          continue;
        }
        PooledFloats g = columns(dy + at, rows);
        operands.emplace_back(g.data(), xShape);
        inputs.push_back(g.data());
        std::vector<PooledFloats> pg(params.size());
        std::vector<float *> outs = {out.data()};
        std::vector<std::vector<int64_t>> shapes = {xShape};
        for (size_t p = 0; p < params.size(); ++p) {
          pg[p].resize(paramGrads[p].size());
          outs.push_back(pg[p].data());
          shapes.push_back(paramShapes[p]);
        }
        callInto(backward_->entry(0), operands, inputs, shapes, outs);
        putColumns(out, grads[0] + at, rows);
        for (size_t p = 0; p < params.size(); ++p)
          for (size_t i = 0; i < pg[p].size(); ++i)
            paramGrads[p][i] += pg[p][i];
      }
      if (!dy)
        continue;
      if (!perChannel) {
        weightGrads[size_t(blk)] = std::move(paramGrads);
        continue;
      }
      for (size_t p = 0; p < params.size(); ++p)
        putColumns(paramGrads[p], grads[p + 1], paramRows[p]);
    }
    return true;
  });
  if (!ok || perChannel || !dy)
    return ok;
  // monarch-seq: the weights' gradients summed over the blocks.
  for (size_t w = 0; w < 2; ++w) {
    float *g = grads[w + 1];
    std::fill_n(g, weightGrads[0][w].size(), 0.f);
    for (const auto &block : weightGrads)
      for (size_t i = 0; i < block[w].size(); ++i)
        g[i] += block[w][i];
  }
  return true;
}

} // namespace einstruct
