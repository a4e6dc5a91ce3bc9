#include "Mixer.h"
#include "Checked.h"

#include <cmath>
#include <fmt/format.h>

namespace einstruct {
namespace {

const std::vector<CallForm> &forms() {
  static const std::vector<CallForm> f = {
      {"ssd", {"heads", "head_dim", "state", "chunk"}},
      {"hydra", {"heads", "head_dim", "state", "chunk"}},
      {"dense-seq", {}},
      {"toeplitz", {}},
      {"low-rank-seq", {"rank"}},
  };
  return f;
}

// Sizes are bounded so that every count fits 64 bits with room to spare.
constexpr int64_t kMaxSeqLen = int64_t(1) << 24;
constexpr int64_t kMaxSize = int64_t(1) << 20;
constexpr long double kMaxCount = 4.6e18; // 2^62

} // namespace

const std::vector<std::string> &mixerFamilies() {
  static const std::vector<std::string> names = formNames(forms());
  return names;
}

Result<NamedSpec> parseMixer(std::string_view text) {
  static const std::map<std::string, std::string> aliases = {
      {"dense_seq", "dense-seq"},
      {"low_rank_seq", "low-rank-seq"},
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
    } else { // the chunk with the fewest multiply-adds; the larger on a tie
      a.chunkChosen = true;
      long double best = 0;
      for (int64_t q = 1; q <= L; ++q) {
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

} // namespace einstruct
