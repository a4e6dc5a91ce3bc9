// The glue around the compiled m2-conv and monarch-seq: both are linear in
// x with parameters shared by the sequences and act on each channel alone,
// so a call is cut into blocks of channels (the threads' unit), each run
// on groups of sequences copied into the compiled function's layout.
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
  const bool conv = plan_.family == "m2-conv";
  const int64_t L = plan_.length, D = plan_.channels, C = plan_.channelBlock;
  const int64_t blocks = (D + C - 1) / C;
  // Rows of the compiled x and y: the DFT grid's J·b (m2-conv) or L.
  const int64_t rows = conv ? plan_.conv.rows * plan_.conv.b : L;
  // The shared weights' gradients of each block, summed after (monarch-seq;
  // m2-conv's parameters are per channel, so its blocks own theirs).
  std::vector<std::vector<PooledFloats>> weightGrads(
      conv || !dy ? 0 : size_t(blocks));
  auto cs = workers::chunks(blocks, threads_, 1);
  auto ok = workers::runAll(cs.size(), [&](size_t c) -> Result<bool> {
    for (int64_t blk = cs[c].start; blk < cs[c].start + cs[c].rows; ++blk) {
      const int64_t c0 = blk * C, width = std::min(C, D - c0);
      // The block's parameters in the compiled layout (monarch-seq's
      // weights as they are). Buffers come from the pool: their pages stay
      // mapped from call to call.
      std::vector<PooledFloats> owned;
      std::vector<const float *> params;
      std::vector<std::vector<int64_t>> paramShapes;
      if (conv) {
        const int64_t n = plan_.conv.b * plan_.conv.b;
        PooledFloats k(size_t(plan_.conv.kernelRows * plan_.conv.b * C), 0.f),
            d(size_t(C), 0.f);
        for (int64_t t = 0; t < L; ++t)
          for (int64_t j = 0; j < width; ++j) {
            k[size_t(t * C + j)] = in[1][t * D + c0 + j];
            // k_rev's tap r multiplies x_{i+r+1}: the lag −(r+1), at n−1−r.
            if (!plan_.conv.causal && t + 1 < L)
              k[size_t((n - 1 - t) * C + j)] = in[2][t * D + c0 + j];
          }
        for (int64_t j = 0; j < width; ++j)
          d[size_t(j)] = in[operands_.size() - 1][c0 + j];
        owned.push_back(std::move(k));
        owned.push_back(std::move(d));
        params = {owned[0].data(), owned[1].data()};
        paramShapes = {{plan_.conv.kernelRows, plan_.conv.b, C}, {C}};
      } else {
        for (int w = 0; w < 2; ++w) {
          params.push_back(in[size_t(w + 1)]);
          paramShapes.push_back(
              plan_.monarch.shape(plan_.monarch.weights[size_t(w)]));
        }
      }
      std::vector<PooledFloats> paramGrads(params.size());
      for (size_t p = 0; p < params.size() && dy; ++p)
        paramGrads[p].assign(size_t(elementCount(paramShapes[p])), 0.f);
      for (int64_t s0 = 0; s0 < batch; s0 += kSequencesPerCall) {
        const int64_t S = std::min(kSequencesPerCall, batch - s0);
        // x (and dy) zero-padded: the rows past L and the block's channels
        // past D.
        auto gather = [&](const float *src) {
          PooledFloats v(size_t(S * rows * C), 0.f);
          for (int64_t s = 0; s < S; ++s)
            for (int64_t t = 0; t < L; ++t)
              std::memcpy(v.data() + (s * rows + t) * C,
                          src + ((s0 + s) * L + t) * D + c0, size_t(width) * 4);
          return v;
        };
        auto scatter = [&](const PooledFloats &v, float *dst) {
          for (int64_t s = 0; s < S; ++s)
            for (int64_t t = 0; t < L; ++t)
              std::memcpy(dst + ((s0 + s) * L + t) * D + c0,
                          v.data() + (s * rows + t) * C, size_t(width) * 4);
        };
        PooledFloats x = gather(in[0]);
        const std::vector<int64_t> xShape =
            conv ? std::vector<int64_t>{S, plan_.conv.rows, plan_.conv.b, C}
                 : std::vector<int64_t>{S, L, C};
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
          callInto(module_->entry(0), operands, inputs, {xShape}, {out.data()});
          scatter(out, y);
          continue;
        }
        PooledFloats g = gather(dy);
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
        callInto(module_->entry(1), operands, inputs, shapes, outs);
        scatter(out, grads[0]);
        for (size_t p = 0; p < params.size(); ++p)
          for (size_t i = 0; i < pg[p].size(); ++i)
            paramGrads[p][i] += pg[p][i];
      }
      if (!dy)
        continue;
      if (!conv) {
        weightGrads[size_t(blk)] = std::move(paramGrads);
        continue;
      }
      // Back from the block's kernel to k (and k_rev), and D.
      const int64_t n = plan_.conv.b * plan_.conv.b;
      const PooledFloats &dk = paramGrads[0];
      for (int64_t t = 0; t < L; ++t)
        for (int64_t j = 0; j < width; ++j) {
          grads[1][t * D + c0 + j] = dk[size_t(t * C + j)];
          if (!plan_.conv.causal)
            grads[2][t * D + c0 + j] =
                t + 1 < L ? dk[size_t((n - 1 - t) * C + j)] : 0.f;
        }
      for (int64_t j = 0; j < width; ++j)
        grads[operands_.size() - 1][c0 + j] = paramGrads[1][size_t(j)];
    }
    return true;
  });
  if (!ok || conv || !dy)
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
