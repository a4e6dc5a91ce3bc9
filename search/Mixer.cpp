#include "Mixer.h"
#include "Checked.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <set>

namespace einstruct {
namespace {

const std::vector<CallForm> &forms() {
  static const std::vector<CallForm> f = {
      {"ssd", {"heads", "head_dim", "state", "chunk"}},
      {"hydra", {"heads", "head_dim", "state", "chunk"}},
      {"m2-conv", {"causal", "order", "pad"}},
      {"monarch-seq", {"blocks"}},
      {"dense-seq", {}},
      {"toeplitz", {}},
      {"low-rank-seq", {"rank"}},
      {"hydra-block",
       {"state", "conv", "expand", "head_dim", "chunk", "proj", "in_proj",
        "out_proj"}},
      {"m2-block",
       {"causal", "order", "l_max", "w_mod", "proj", "in_linear",
        "out_linear"}},
  };
  return f;
}

// Sizes are bounded so that every count fits 64 bits with room to spare.
constexpr int64_t kMaxSeqLen = kMaxMixerSeqLen;
constexpr int64_t kMaxSize = kMaxMixerSize;
constexpr long double kMaxCount = kMaxMixerCount;

} // namespace

const std::vector<std::string> &mixerFamilies() {
  static const std::vector<std::string> names = formNames(forms());
  return names;
}

const std::vector<std::string> &searchedMixerFamilies() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n = mixerFamilies();
    for (const char *block : {"hydra-block", "m2-block"})
      n.erase(std::remove(n.begin(), n.end(), block), n.end());
    return n;
  }();
  return names;
}

Result<NamedSpec> parseMixer(std::string_view text) {
  static const std::map<std::string, std::string> aliases = {
      {"dense_seq", "dense-seq"},
      {"low_rank_seq", "low-rank-seq"},
      {"m2_conv", "m2-conv"},
      {"monarch_seq", "monarch-seq"},
      {"quasiseparable", "hydra"}};
  return parseCall(text, forms(), aliases, "mixer");
}

namespace {
// In long double first: sizes within bounds may still give counts past 2^63.
long double ssdCount(long double L, long double H, long double P,
                     long double N, int64_t Q) {
  const long double T = (long double)ceilDiv(int64_t(L), Q), q = Q;
  return T * q * q * N + H * T * q * q * P + 2 * H * T * q * N * P +
         H * T * N * P;
}
} // namespace

int64_t ssdMacs(int64_t L, int64_t H, int64_t P, int64_t N, int64_t Q) {
  return int64_t(ssdCount(L, H, P, N, Q));
}

int64_t monarchDftMacs(int64_t b) { return 4 * b * b * (2 * b + 1); }

int64_t hyenaFilterParams(int64_t L, int64_t d, int64_t order) {
  const int64_t o = order;
  return d + o + 3 * L + 4 * o + 2 * (o * o + o) + o * d;
}

int64_t hyenaFilterMacs(int64_t L, int64_t d, int64_t order) {
  const int64_t o = order;
  return L * (3 * o + 2 * o * o + o * d);
}

namespace {

// A yes/no parameter: true/false (or 1/0, yes/no); `fallback` when absent.
Result<bool> boolParam(const NamedSpec &spec, const std::string &key,
                       bool fallback) {
  auto it = spec.params.find(key);
  if (it == spec.params.end())
    return fallback;
  std::string v = it->second;
  for (auto &c : v)
    c = char(std::tolower((unsigned char)c));
  if (v == "true" || v == "1" || v == "yes")
    return true;
  if (v == "false" || v == "0" || v == "no")
    return false;
  return Error{fmt::format("{}: parameter {} = '{}' must be true or false",
                           spec.family, key, it->second)};
}

// The divisor of n nearest √n (the smaller on a tie).
int64_t divisorNearSqrt(int64_t n) {
  int64_t best = 1;
  for (int64_t k = 1; k * k <= n; ++k)
    if (n % k == 0)
      best = k;
  const int64_t other = n / best;
  return std::llabs(other * other - n) < std::llabs(best * best - n) ? other
                                                                      : best;
}

// monarch-seq's blocks per factor on L tokens: given, or the divisor of L
// nearest √L; one that does not divide L is an error.
Result<int64_t> monarchSeqBlocks(const NamedSpec &spec, int64_t L) {
  auto blocks = intParam(spec, "blocks", kMaxSeqLen);
  if (!blocks)
    return Error{blocks.error()};
  const int64_t nb = blocks->value_or(divisorNearSqrt(L));
  if (L % nb != 0)
    return Error{fmt::format("monarch-seq: blocks = {} does not divide the "
                             "sequence length {}",
                             nb, L)};
  return nb;
}

} // namespace

Result<bool> runsOnCpu(const NamedSpec &spec) {
  const std::string &f = spec.family;
  if (f == "ssd" || f == "hydra" || f == "m2-conv" || f == "monarch-seq" ||
      f == "hydra-block" || f == "m2-block")
    return true;
  return Error{fmt::format("{} is costed by analyze and search; the CPU "
                           "runs ssd, hydra, m2-conv, monarch-seq, "
                           "hydra-block and m2-block",
                           f)};
}

Result<M2ConvShape> m2ConvShape(const NamedSpec &spec, int64_t L) {
  auto causal = boolParam(spec, "causal", true);
  auto pad = boolParam(spec, "pad", true);
  if (!causal)
    return Error{causal.error()};
  if (!pad)
    return Error{pad.error()};
  if (L < 1 || L > kMaxSeqLen)
    return Error{fmt::format("sequence length = {} is outside [1, 2^24]", L)};
  // Both directions as the reference's fftconv_ref: a DFT of 2L points at
  // least, so that nothing wraps around; n = b² (Monarch-factored).
  const int64_t need = 2 * L;
  int64_t b = int64_t(std::sqrt(double(need)));
  while (b * b < need)
    ++b;
  while (b > 1 && (b - 1) * (b - 1) >= need)
    --b;
  if (b * b != need && !*pad)
    return Error{fmt::format(
        "m2-conv: the DFT size 2L = {} is not a square b² and pad=false; "
        "give a length with 2L = b² or allow padding",
        need)};
  M2ConvShape s;
  s.causal = *causal;
  s.length = L;
  s.b = b;
  s.rows = ceilDiv(L, b);
  s.kernelRows = s.causal ? s.rows : b;
  return s;
}

long double m2ConvCount(const M2ConvShape &s, int64_t d, int64_t sequences) {
  const long double b = s.b, J = s.rows, Jk = s.kernelRows, L = s.length;
  // Per sequence: x's DFT (real rows J, twiddles, the second stage), the
  // product, the inverse (stage, twiddles, the real rows J it keeps), the
  // skip on the L tokens. Per call: the kernel's DFT and its 2×2 real form.
  const long double perSequence = 2 * b * b * J + 4 * b * b + 4 * b * b * b +
                                  4 * b * b + 4 * b * b * b + 4 * b * b +
                                  2 * b * b * J + L;
  const long double kernel =
      2 * b * b * Jk + 4 * b * b + 4 * b * b * b + 8 * b * b;
  return (long double)d * ((long double)sequences * perSequence + kernel);
}

Result<EinsumTerm> monarchSeqTerm(const NamedSpec &spec, int64_t L) {
  if (L < 1 || L > kMaxSeqLen)
    return Error{fmt::format("sequence length = {} is outside [1, 2^24]", L)};
  auto nb = monarchSeqBlocks(spec, L);
  if (!nb)
    return Error{nb.error()};
  NamedSpec fly{"monarch",
                {{"nblocks", std::to_string(*nb)}, {"layout", "fly"}}};
  auto layer = buildNamed(fly, L, L);
  if (!layer)
    return Error{"monarch-seq: " + layer.error()};
  return layer->terms.at(0);
}

std::vector<MixerOperand> mixerOperands(const MixerPlan &p) {
  const int64_t L = p.length, C = p.channels;
  if (p.isBlock())
    return blockOperands(p);
  if (p.chunkedSsd()) {
    const int64_t H = p.ssd.heads, P = p.ssd.headDim, N = p.ssd.state;
    if (p.family == "ssd")
      return {{"x", {L, H, P}},
              {"dt", {L, H}},
              {"a", {L, H}},
              {"B", {L, N}},
              {"C", {L, N}}};
    return {{"x", {L, H, P}}, {"dt", {L, 2, H}}, {"a", {L, 2, H}},
            {"B", {L, 2, N}}, {"C", {L, 2, N}},  {"d", {L, H}}};
  }
  if (p.family == "m2-conv") {
    std::vector<MixerOperand> ops = {{"x", {L, C}}, {"k", {L, C}, false}};
    if (!p.conv.causal)
      ops.push_back({"k_rev", {L, C}, false});
    ops.push_back({"D", {C}, false});
    return ops;
  }
  const int64_t nb = p.analysis.blocks, m = L / nb;
  return {{"x", {L, C}}, {"w1", {nb, m, m}, false}, {"w2", {nb, m, m}, false}};
}

std::vector<int64_t> mixerOutputShape(const MixerPlan &p) {
  if (p.chunkedSsd())
    return {p.length, p.ssd.heads, p.ssd.headDim};
  return {p.length, p.channels};
}

Result<MixerPlan> planMixer(const NamedSpec &spec, int64_t L,
                            int64_t channels) {
  if (auto ok = runsOnCpu(spec); !ok)
    return Error{ok.error()};
  MixerPlan p;
  p.family = spec.family;
  p.length = L;
  if (p.isBlock())
    return planBlock(spec, std::move(p), channels);
  if (p.chunkedSsd()) {
    SsdShape &s = p.ssd;
    for (auto [key, into] : {std::pair{"heads", &s.heads},
                             {"head_dim", &s.headDim},
                             {"state", &s.state}}) {
      auto v = requiredInt(spec, key, kMaxSize);
      if (!v)
        return Error{v.error()};
      *into = *v;
    }
    auto a = analyzeMixer(spec, L, s.heads * s.headDim);
    if (!a)
      return Error{a.error()};
    if (channels != 0 && channels != s.heads * s.headDim)
      return Error{fmt::format("d_model = {} but {} has heads · head_dim = {}",
                               channels, spec.family, s.heads * s.headDim)};
    s.chunk = a->chunk;
    s.length = ceilDiv(L, s.chunk) * s.chunk;
    p.channels = s.heads * s.headDim;
    p.analysis = std::move(*a);
    return p;
  }
  if (channels < 1 || channels > kMaxSize)
    return Error{fmt::format("{} mixes each of d_model channels: d_model = {} "
                             "must be in [1, 2^20]",
                             spec.family, channels)};
  p.channels = channels;
  // Blocks of 32 channels (fewer, rounded up to 8, the vector width the
  // micro-kernel needs; the padding channels are zeros): the calls' unit
  // of work between threads, and every contraction's innermost index.
  p.channelBlock = std::min<int64_t>((channels + 7) / 8 * 8, 32);
  if (p.family == "m2-conv") {
    auto shape = m2ConvShape(spec, L);
    if (!shape)
      return Error{shape.error()};
    p.conv = *shape;
  } else {
    auto term = monarchSeqTerm(spec, L);
    if (!term)
      return Error{term.error()};
    p.monarch = *term;
  }
  auto a = analyzeMixer(spec, L, channels);
  if (!a)
    return Error{a.error()};
  p.analysis = std::move(*a);
  return p;
}

Result<MixerAnalysis> analyzeMixer(const NamedSpec &spec, int64_t L,
                                   int64_t d) {
  if (L < 1 || L > kMaxSeqLen)
    return Error{fmt::format("sequence length = {} is outside [1, 2^24]", L)};
  if (d < 1 || d > kMaxSize)
    return Error{fmt::format("d_model = {} is outside [1, 2^20]", d)};
  MixerAnalysis a;
  a.family = spec.family;
  a.seqLen = L;
  const std::string &f = spec.family;
  if (f == "hydra-block" || f == "m2-block")
    return analyzeBlock(spec, L, d);
  if (f == "ssd" || f == "hydra") {
    auto H = requiredInt(spec, "heads", kMaxSize);
    auto P = requiredInt(spec, "head_dim", kMaxSize);
    auto N = requiredInt(spec, "state", kMaxSize);
    auto Q = intParam(spec, "chunk", kMaxSize);
    for (auto *v : {&H, &P, &N})
      if (!*v)
        return Error{v->error()};
    if (!Q)
      return Error{Q.error()};
    if (*H * *P > kMaxSize)
      return Error{fmt::format("{}: heads × head_dim = {} exceeds 2^20", f,
                               *H * *P)};
    a.channels = *H * *P;
    if (*Q) {
      if (**Q > L)
        return Error{fmt::format("{}: chunk = {} exceeds the sequence length "
                                 "{}",
                                 f, **Q, L)};
      a.chunk = **Q;
    } else { // the fewest multiply-adds of the chunks the CPU runs well
      a.chunkChosen = true;
      long double best = 0;
      for (int64_t q = std::min(kMinChosenChunk, L); q <= L; ++q) {
        const long double c = ssdCount(L, *H, *P, *N, q);
        if (!a.chunk || c <= best)
          a.chunk = q, best = c;
      }
    }
    const long double H_ = *H, P_ = *P, N_ = *N, L_ = L;
    if (2 * L_ * L_ * (N_ + H_ * P_) + 2 * L_ * H_ * P_ * H_ > kMaxCount ||
        2 * ssdCount(L, *H, *P, *N, a.chunk) > kMaxCount)
      return Error{fmt::format("{}: the multiply-adds at L = {} exceed 2^62", f,
                               L)};
    const int64_t ssd = ssdMacs(L, *H, *P, *N, a.chunk);
    const int64_t quadratic = L * L * *N + *H * L * L * *P;
    const int64_t x = L * *H * *P;
    if (f == "ssd") {
      a.macs = ssd;
      a.quadraticMacs = quadratic;
      a.params = 3 * *H;
      a.bytes = 4 * (2 * x + 2 * L * *N + L * *H + a.params);
      a.causal = true;
    } else {
      a.macs = 2 * ssd + x * *H + x;
      a.quadraticMacs = 2 * quadratic + x * *H + x;
      a.params = 3 * *H + *H * *P * *H;
      a.bytes = 4 * (2 * x + 4 * L * *N + 2 * L * *H + a.params);
    }
    a.dataDependent = a.extendable = true;
    a.growth = "L";
    return a;
  }
  a.channels = d;
  if (f == "m2-conv") {
    auto shape = m2ConvShape(spec, L);
    auto order = intParam(spec, "order", 4096);
    if (!shape)
      return Error{shape.error()};
    if (!order)
      return Error{order.error()};
    const int64_t o = order->value_or(16);
    const bool causal = shape->causal;
    const long double count =
        m2ConvCount(*shape, d, 1) + 2.0L * L * d +
        (causal ? 1 : 2) * (long double)hyenaFilterMacs(L, d, o);
    if (count > kMaxCount || (long double)L * L * d > kMaxCount)
      return Error{fmt::format("m2-conv: the multiply-adds at L = {}, "
                               "d_model = {} exceed 2^62",
                               L, d)};
    a.macs = int64_t(count);
    a.quadraticMacs = L * L * d;
    a.params = (causal ? 1 : 2) * hyenaFilterParams(L, d, o) -
               (causal ? 0 : 3 * L + o + d); // one z, Sin and bias shared
    a.fftSize = shape->b * shape->b;
    a.causal = causal;
    a.extendable = true;
    a.growth = "L^1.5";
    a.bytes = 4 * (4 * L * d + a.params);
    return a;
  }
  if (f == "monarch-seq") {
    auto blocks = monarchSeqBlocks(spec, L);
    if (!blocks)
      return Error{blocks.error()};
    const int64_t nb = *blocks, m = L / nb; // m: block size
    if ((long double)2 * L * m * d > kMaxCount ||
        (long double)L * L * d > kMaxCount)
      return Error{fmt::format("monarch-seq: the multiply-adds at L = {}, "
                               "d_model = {} exceed 2^62",
                               L, d)};
    a.blocks = nb;
    a.macs = 2 * L * m * d;
    a.quadraticMacs = L * L * d;
    a.params = 2 * L * m;
    a.growth = "L^2";
    a.bytes = 4 * (2 * L * d + a.params);
    return a;
  }
  if ((long double)L * L * d > kMaxCount)
    return Error{fmt::format("{}: the multiply-adds at L = {}, d_model = {} "
                             "exceed 2^62",
                             f, L, d)};
  if (f == "dense-seq" || f == "toeplitz") {
    a.macs = a.quadraticMacs = L * L * d;
    a.params = f == "dense-seq" ? L * L : d * (2 * L - 1);
    a.growth = "L^2";
  } else { // low-rank-seq
    auto r = requiredInt(spec, "rank", kMaxSize);
    if (!r)
      return Error{r.error()};
    if (*r > L)
      return Error{fmt::format("low-rank-seq: rank = {} exceeds the sequence "
                               "length {}",
                               *r, L)};
    a.macs = 2 * L * *r * d;
    a.quadraticMacs = L * L * d;
    a.params = 2 * L * *r;
    a.growth = "L";
  }
  a.bytes = 4 * (2 * L * d + a.params);
  return a;
}

Result<std::vector<MixerCandidate>>
enumerateMixers(const std::vector<std::string> &families, int64_t L,
                int64_t d) {
  std::vector<std::string> specs;
  for (const auto &f : families) {
    const auto &known = mixerFamilies();
    if (std::find(known.begin(), known.end(), f) == known.end())
      return Error{fmt::format("unknown mixer family '{}'; known: {}", f,
                               fmt::join(known, ", "))};
    if (f == "hydra-block" || f == "m2-block")
      return Error{fmt::format("{} is a whole block (its projections "
                               "included); search ranks the mixers inside "
                               "blocks",
                               f)};
    if (f == "ssd" || f == "hydra") {
      for (int64_t p : {32, 64, 128})
        if (d % p == 0)
          for (int64_t n : {16, 32, 64, 128})
            specs.push_back(fmt::format("{}(heads={}, head_dim={}, state={})",
                                        f, d / p, p, n));
    } else if (f == "m2-conv") {
      specs.push_back("m2-conv(causal=true, order=16)");
      specs.push_back("m2-conv(causal=false, order=16)");
    } else if (f == "monarch-seq") {
      std::set<int64_t> blocks = {divisorNearSqrt(L)};
      for (int64_t b = 2; b <= L / 2; b *= 2)
        if (L % b == 0)
          blocks.insert(b);
      for (int64_t b : blocks)
        if (b > 1 && b < L)
          specs.push_back(fmt::format("monarch-seq(blocks={})", b));
    } else if (f == "low-rank-seq") {
      for (int64_t r = 1; r < L; r *= 2)
        specs.push_back(fmt::format("low-rank-seq(rank={})", r));
    } else {
      specs.push_back(f);
    }
  }
  std::vector<MixerCandidate> out;
  for (const auto &text : specs) {
    auto spec = parseMixer(text);
    if (!spec)
      return Error{spec.error()};
    auto a = analyzeMixer(*spec, L, d);
    if (!a) // sizes this length cannot take (e.g. a count past 2^62)
      continue;
    out.push_back({text, *a});
  }
  return out;
}

Result<std::vector<MixerCandidate>>
rankMixers(std::vector<MixerCandidate> all, const MixerConstraints &k,
           const std::string &objective, int64_t L, int64_t d) {
  if (objective != "matrix-mixer" && objective != "macs")
    return Error{fmt::format("unknown mixer objective '{}' (known: "
                             "matrix-mixer, macs)",
                             objective)};
  const long double dense = (long double)L * L * d;
  all.erase(std::remove_if(all.begin(), all.end(),
                           [&](const MixerCandidate &c) {
                             const MixerAnalysis &a = c.analysis;
                             return (k.maxMacs && a.macs > *k.maxMacs) ||
                                    (k.maxMacsRatio &&
                                     a.macs > *k.maxMacsRatio * dense) ||
                                    (k.causal && !a.causal);
                           }),
            all.end());
  const bool mixer = objective == "matrix-mixer";
  std::stable_sort(all.begin(), all.end(), [&](const MixerCandidate &x,
                                               const MixerCandidate &y) {
    const MixerAnalysis &a = x.analysis, &b = y.analysis;
    if (mixer && a.dataDependent != b.dataDependent)
      return a.dataDependent;
    if (mixer && a.extendable != b.extendable)
      return a.extendable;
    return std::tie(a.macs, a.params, x.spec) <
           std::tie(b.macs, b.params, y.spec);
  });
  return all;
}

} // namespace einstruct
