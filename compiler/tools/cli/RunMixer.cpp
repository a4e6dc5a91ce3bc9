// `einstruct run --mixer`: compile a sequence mixer for the CPU (from the
// dialect, its backward from --einstruct-autodiff) and run it on a
// safetensors file of its operands or on generated ones, timed.
#include "RunMixer.h"
#include "Timing.h"
#include "compiler/cpu/JitMixer.h"
#include "compiler/frontend/Safetensors.h"
#include "search/Checked.h"
#include "search/Mixer.h"

#include <cstdio>
#include <fmt/format.h>
#include <random>
#include <sys/stat.h>

namespace einstruct::cli {

int runMixer(const MixerRunOptions &o) {
  auto named = parseMixer(o.spec);
  if (!named)
    return fail("--mixer: " + named.error());
  if (o.repeat < 1 || o.repeat > 1000)
    return fail(fmt::format("--repeat {} must be in [1, 1000]", o.repeat));
  // The sequence length: from x in the file, else --seq-len.
  int64_t L = o.seqLen, batch = o.batch, dModel = o.dModel;
  std::optional<NpyArray> x;
  if (!o.input.empty()) {
    auto read = readArrayFile(o.input + ":x");
    if (!read)
      return fail(read.error());
    if (read->shape.size() < 2 || read->shape[0] < 1)
      return fail(fmt::format("{}: x has shape {}; it must be (batch, "
                              "seq_len, ...)",
                              o.input, shapeText(read->shape)));
    if (o.seqLen && o.seqLen != read->shape[1])
      return fail(fmt::format("--seq-len {} but {}: x holds sequences of {}",
                              o.seqLen, o.input, read->shape[1]));
    batch = read->shape[0];
    L = read->shape[1];
    const bool channelsLast =
        named->family == "m2-conv" || named->family == "monarch-seq" ||
        named->family == "hydra-block" || named->family == "m2-block";
    if (channelsLast && read->shape.size() == 3 && !dModel)
      dModel = read->shape[2];
    x = std::move(*read);
  } else if (L < 1) {
    return fail("--mixer needs --seq-len L (or --input with the operands)");
  }
  if (batch < 1 || batch > (int64_t(1) << 24))
    return fail(fmt::format("--batch {} must be in [1, 2^24]", batch));
  auto t0 = Clock::now();
  auto jit = JitMixer::compile(*named, L, dModel);
  if (!jit)
    return fail("--mixer: " + jit.error());
  if (o.threads)
    (*jit)->setThreads(o.threads);
  double compileMs = msSince(t0);
  const JitMixer &m = **jit;
  // Operands: each named tensor of the file, [batch, shape...], or
  // generated: uniform(-1, 1), steps dt = uniform(0.1, 1) and log decays
  // a = −uniform(0.05, 0.5).
  constexpr int64_t kMaxElements = int64_t(1) << 32;
  std::vector<NpyArray> in;
  std::mt19937_64 rng(o.seed);
  for (const auto &op : m.operands()) {
    std::vector<int64_t> shape;
    if (op.perSequence)
      shape.push_back(batch);
    shape.insert(shape.end(), op.shape.begin(), op.shape.end());
    std::optional<int64_t> n = 1;
    for (int64_t d : shape)
      n = n ? checkedMul(*n, d) : n;
    if (!n || *n > kMaxElements)
      return fail(fmt::format("operand {} {} has more than 2^32 elements",
                              op.name, shapeText(shape)));
    if (x) {
      auto read = op.name == "x" ? Result<NpyArray>(*x)
                                 : readArrayFile(o.input + ":" + op.name);
      if (!read)
        return fail(read.error());
      if (read->shape != shape)
        return fail(fmt::format("{}: {} has shape {}; {} takes {}", o.input,
                                op.name, shapeText(read->shape), o.spec,
                                shapeText(shape)));
      in.push_back(std::move(*read));
      continue;
    }
    NpyArray a{shape, std::vector<float>(size_t(*n))};
    std::uniform_real_distribution<float> uniform(-1.f, 1.f),
        decay(0.05f, 0.5f), step(0.1f, 1.f);
    for (auto &v : a.data)
      v = op.name == "a"    ? -decay(rng)
          : op.name == "dt" ? step(rng)
                            : uniform(rng);
    in.push_back(std::move(a));
  }
  std::vector<int64_t> yShape = {batch};
  for (int64_t d : m.outputShape())
    yShape.push_back(d);
  NpyArray dy;
  if (!o.grad.empty()) { // read and checked before anything runs
    auto g = readArrayFile(o.grad);
    if (!g)
      return fail(g.error());
    if (g->shape != yShape)
      return fail(fmt::format("{}: shape {} must be y's, {}", o.grad,
                              shapeText(g->shape), shapeText(yShape)));
    dy = std::move(*g);
    struct stat st;
    if (stat(o.gradDir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return fail(fmt::format("--grad-dir {}: not a directory", o.gradDir));
  }
  std::vector<const float *> ptrs;
  for (auto &a : in)
    ptrs.push_back(a.data.data());
  std::vector<float> y(size_t(elementCount(yShape)));
  auto fwd = timedCalls(o.repeat, [&] {
    return m.forward(ptrs, batch, y.data());
  });
  if (!fwd)
    return fail(fwd.error());
  compileMs += fwd->warmUpMs; // the untimed call counts as compile time
  const MixerAnalysis &analysis = m.analysis();
  std::string sizes =
      analysis.chunk     ? fmt::format("chunk {}{}", analysis.chunk,
                                   analysis.chunkChosen ? " (chosen)" : "")
      : analysis.fftSize ? fmt::format("DFT of {} points", analysis.fftSize)
                         : fmt::format("{} blocks", analysis.blocks);
  std::printf("mixer    %s on %lld tokens: %s, %lld multiply-adds per "
              "sequence\n",
              o.spec.c_str(), (long long)L, sizes.c_str(),
              (long long)analysis.macs);
  std::printf("compile  %.0f ms (the mixer from the dialect: MLIR CPU "
              "pipeline and JIT, one untimed call)\n",
              compileMs);
  std::printf("forward  batch %lld: %.3f ms, median of %zu (%.2f GFLOP/s)\n",
              (long long)batch, fwd->medianMs, fwd->calls,
              2.0 * double(analysis.macs) * double(batch) /
                  (fwd->medianMs * 1e6));
  OutputFiles out;
  std::string notes;
  if (!o.output.empty()) {
    out.add(o.output, encodeNpy({yShape, y}));
    notes += fmt::format("output   {} {}\n", o.output, shapeText(yShape));
  }
  if (!o.grad.empty()) {
    std::vector<std::vector<float>> grads;
    std::vector<float *> gp;
    for (auto &a : in)
      gp.push_back(grads.emplace_back(a.data.size()).data());
    auto t1 = Clock::now();
    if (auto ok = m.compileBackward(); !ok)
      return fail(ok.error());
    const double backwardCompileMs = msSince(t1);
    // As training runs it: the forward keeping its residuals, then the
    // backward from them.
    std::unique_ptr<JitMixer::Saved> saved;
    std::vector<float> ySaving(y.size());
    auto fwdSaving = timedCalls(o.repeat, [&]() -> Result<bool> {
      auto s = m.forwardSaving(ptrs, batch, ySaving.data());
      if (!s)
        return Error{s.error()};
      saved = std::move(*s);
      return true;
    });
    if (!fwdSaving)
      return fail(fwdSaving.error());
    auto bwd = timedCalls(o.repeat, [&] {
      return m.backward(ptrs, dy.data.data(), batch, gp, saved.get());
    });
    if (!bwd)
      return fail(bwd.error());
    std::string names;
    for (size_t k = 0; k < in.size(); ++k) {
      const std::string &n = m.operands()[k].name;
      out.add(fmt::format("{}/d{}.npy", o.gradDir, n),
              encodeNpy({in[k].shape, grads[k]}));
      names += (k ? ", d" : "d") + n + ".npy";
    }
    notes += fmt::format(
        "backward batch {}: {:.3f} ms from the saved "
        "forward's residuals ({:.1f} MB; that forward "
        "{:.3f} ms), medians of {} (compiled in {:.0f} ms, "
        "one untimed call each): wrote {}/{}\n",
        batch, bwd->medianMs, double(saved->bytes()) / 1e6, fwdSaving->medianMs,
        bwd->calls, backwardCompileMs + fwdSaving->warmUpMs + bwd->warmUpMs,
        o.gradDir, names);
  }
  if (int rc = commit(out))
    return rc;
  std::fputs(notes.c_str(), stdout);
  return 0;
}

} // namespace einstruct::cli
