#include "Named.h"
#include "Checked.h"

#include <cctype>
#include <algorithm>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <numeric>

namespace einstruct {
namespace {

const std::vector<CallForm> &families() {
  static const std::vector<CallForm> f = {
      {"dense", {}},
      {"low-rank", {"rank"}},
      {"kronecker", {"in_factor", "out_factor"}},
      {"tt", {"rank", "in_factor", "out_factor"}},
      {"btt", {"rank", "in_blocks", "out_blocks", "sizing", "layout"}},
      {"monarch", {"blocks", "nblocks", "layout"}},
      {"block-diagonal", {"blocks", "layout"}},
      {"dyad", {"blocks", "variant"}},
      {"btt-moe", {"experts", "top_k", "in_blocks", "out_blocks"}},
  };
  return f;
}

std::string trim(std::string_view s) {
  size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string_view::npos ? "" : std::string(s.substr(a, b - a + 1));
}

} // namespace

std::vector<std::string> formNames(const std::vector<CallForm> &forms) {
  std::vector<std::string> n;
  for (auto &f : forms)
    n.push_back(f.name);
  return n;
}

const std::vector<std::string> &namedFamilies() {
  static const std::vector<std::string> names = formNames(families());
  return names;
}

std::string callName(std::string_view text) {
  std::string name = trim(text.substr(0, text.find('(')));
  for (auto &c : name)
    c = char(std::tolower((unsigned char)c));
  return name;
}

Result<NamedSpec> parseCall(std::string_view text,
                            const std::vector<CallForm> &forms,
                            const std::map<std::string, std::string> &aliases,
                            const char *what) {
  std::string s = trim(text);
  size_t open = s.find('(');
  NamedSpec spec;
  spec.family = callName(s);
  if (auto a = aliases.find(spec.family); a != aliases.end())
    spec.family = a->second;
  const CallForm *fam = nullptr;
  for (auto &f : forms)
    if (f.name == spec.family)
      fam = &f;
  if (!fam)
    return Error{fmt::format("unknown {} '{}'; known: {}", what, spec.family,
                             fmt::join(formNames(forms), ", "))};
  if (open == std::string::npos)
    return spec;
  if (s.back() != ')')
    return Error{fmt::format("{} '{}': missing ')' at column {}",
                             what, spec.family, s.size() + 1)};
  std::string_view args(s.data() + open + 1, s.size() - open - 2);
  size_t pos = 0, column = open + 2;
  size_t positional = 0;
  bool sawKeyword = false;
  // The next `c` from `from` outside parentheses: a value may be a call
  // itself (a block's proj=monarch(nblocks=4, layout=fly)).
  auto topLevel = [](std::string_view t, char c, size_t from) {
    int depth = 0;
    for (size_t i = from; i < t.size(); ++i) {
      depth += t[i] == '(' ? 1 : t[i] == ')' ? -1 : 0;
      if (t[i] == c && depth == 0)
        return i;
    }
    return std::string_view::npos;
  };
  while (pos <= args.size() && !trim(args).empty()) {
    size_t comma = topLevel(args, ',', pos);
    if (comma == std::string_view::npos)
      comma = args.size();
    std::string_view rawArg = args.substr(pos, comma - pos);
    std::string arg = trim(rawArg);
    size_t lead = rawArg.find_first_not_of(" \t");
    size_t argColumn =
        column + pos + (lead == std::string_view::npos ? 0 : lead);
    if (arg.empty())
      return Error{fmt::format("{} '{}': empty argument at column {}",
                               what, spec.family, argColumn)};
    size_t eq = topLevel(arg, '=', 0);
    std::string key, value;
    if (eq == std::string::npos) {
      if (sawKeyword)
        return Error{fmt::format("{} '{}': positional argument '{}' at "
                                 "column {} follows a keyword argument",
                                 what, spec.family, arg, argColumn)};
      if (positional >= fam->params.size())
        return Error{fmt::format("{} '{}' takes {} parameter{}; extra "
                                 "argument '{}' at column {}",
                                 what, spec.family, fam->params.size(),
                                 fam->params.size() == 1 ? "" : "s", arg,
                                 argColumn)};
      key = fam->params[positional++];
      value = arg;
    } else {
      sawKeyword = true;
      key = trim(arg.substr(0, eq));
      value = trim(arg.substr(eq + 1));
      if (std::find(fam->params.begin(), fam->params.end(), key) ==
          fam->params.end())
        return Error{fmt::format(
            "{} '{}': unknown parameter '{}' at column {}; it takes: {}",
            what, spec.family, key, argColumn,
            fam->params.empty() ? std::string("none")
                                : fmt::format("{}", fmt::join(fam->params, ", ")))};
    }
    if (spec.params.count(key))
      return Error{fmt::format("{} '{}': parameter '{}' given twice "
                               "(column {})",
                               what, spec.family, key, argColumn)};
    spec.params[key] = value;
    pos = comma + 1;
    if (comma == args.size())
      break;
  }
  return spec;
}

Result<NamedSpec> parseNamed(std::string_view text) {
  static const std::map<std::string, std::string> aliases = {
      {"lowrank", "low-rank"},          {"low_rank", "low-rank"},
      {"blockdiag", "block-diagonal"},  {"block-diag", "block-diagonal"},
      {"block_diagonal", "block-diagonal"}, {"btt_moe", "btt-moe"}};
  return parseCall(text, families(), aliases, "structure");
}

Result<std::optional<int64_t>> intParam(const NamedSpec &spec,
                                        const std::string &key, int64_t max) {
  auto it = spec.params.find(key);
  if (it == spec.params.end())
    return std::optional<int64_t>{};
  const std::string &v = it->second;
  int64_t n = 0;
  bool ok = !v.empty();
  for (char c : v) {
    if (!std::isdigit((unsigned char)c)) {
      ok = false;
      break;
    }
    if (!appendDigit(n, c, max))
      return Error{fmt::format("{}: parameter {} = {} exceeds {}", spec.family,
                               key, v, max)};
  }
  if (!ok || n < 1)
    return Error{fmt::format("{}: parameter {} = '{}' must be a positive "
                             "integer",
                             spec.family, key, v)};
  return std::optional<int64_t>{n};
}

Result<int64_t> requiredInt(const NamedSpec &spec, const std::string &key,
                            int64_t max) {
  auto v = intParam(spec, key, max);
  if (!v)
    return Error{v.error()};
  if (!*v)
    return Error{fmt::format("{}: parameter '{}' is required", spec.family,
                             key)};
  return **v;
}

namespace {

// `d` split as (d / part, part), the part given or nearest to sqrt(d).
Result<std::pair<int64_t, int64_t>> split(const NamedSpec &spec,
                                          const std::string &key, int64_t d,
                                          const char *dimName) {
  auto p = intParam(spec, key);
  if (!p)
    return Error{p.error()};
  int64_t part;
  if (*p) {
    part = **p;
    if (d % part)
      return Error{fmt::format("{}: {} = {} does not divide {} = {}",
                               spec.family, key, part, dimName, d)};
  } else {
    // Nearest to sqrt(d), the larger half first: for Kronecker and TT this
    // keeps θα ≥ θβ and θε ≥ θδ, which the validity rule asks for.
    auto f = nearestFactorization(d, {0.5, 0, 0.5});
    part = std::min(f[0], f[2]);
  }
  return std::pair{d / part, part};
}

Layer withName(Layer l, const std::string &name) {
  l.name = name;
  return l;
}

// The `layout` parameter: "einstruct" unless given; one of `allowed`.
Result<std::string> layoutParam(const NamedSpec &spec,
                                const std::vector<std::string> &allowed) {
  auto it = spec.params.find("layout");
  if (it == spec.params.end())
    return std::string("einstruct");
  std::string v = it->second;
  for (auto &c : v)
    c = char(std::tolower((unsigned char)c));
  if (v == "m2") // M2 vendors fly's layers (bert/src/mm: "Adapted from fly")
    v = "fly";
  if (v == "einsum_search")
    v = "einsum-search";
  if (std::find(allowed.begin(), allowed.end(), v) == allowed.end())
    return Error{fmt::format("{}: layout = '{}' must be one of: {}",
                             spec.family, it->second, fmt::join(allowed, ", "))};
  return v;
}

// fly's MonarchLinear(nblocks) (HazyResearch/fly, src/models/layers/
// monarch_linear.py and blockdiag_butterfly_multiply.py): x zero-padded to
// nblocks·⌈d_in/nblocks⌉ and seen as (k, p); blkdiag1 (k, q, p) gives z (k, q);
// z flattened and re-read as (r, l), l of size nblocks; blkdiag2 (l, s, r)
// gives y (s, l), cut to d_out. The re-read is an axis permutation when
// nblocks divides q (q = (h, l), r = (k, h)) or q divides nblocks
// (k = (kh, kl), l = (kl, q), r = kh); the einsums below spell those with
// the weights exactly as fly stores them (reshaped only).
Result<Layer> flyMonarch(int64_t nb, int64_t dIn, int64_t dOut) {
  const int64_t p = ceilDiv(dIn, nb), outBlk = ceilDiv(dOut, nb);
  const int64_t q = p * nb < outBlk * nb ? p : outBlk, s = outBlk;
  std::string e;
  std::map<char, int64_t> sizes;
  if (q % nb == 0) { // z (k, (h, l)); r = (k, h)
    const int64_t h = q / nb;
    e = h > 1 ? "ga,grfa,fegr->ef" : "ga,gfa,feg->ef";
    sizes = {{'g', nb}, {'a', p}, {'f', nb}, {'e', s}};
    if (h > 1)
      sizes['r'] = h;
  } else if (nb % q == 0) { // k = (kh, kl); l = (kl, q); r = kh
    e = "gka,gkfa,kfeg->ekf";
    sizes = {{'g', q}, {'k', nb / q}, {'a', p}, {'f', q}, {'e', s}};
  } else {
    return Error{fmt::format(
        "monarch: layout=fly with nblocks = {} and d_in = {}, d_out = {}: the "
        "middle block size {} and nblocks do not divide one another, so fly's "
        "reshape between the factors is not an axis permutation",
        nb, dIn, dOut, q)};
  }
  auto t = makeEinsum(e, sizes);
  if (!t)
    return Error{t.error()};
  return layerFromTerms({*t}, dIn, dOut);
}

// fly's BlockdiagLinear(nblocks) (src/models/layers/blockdiag_linear.py):
// nblocks blocks of ⌈d_out/nblocks⌉ × ⌈d_in/nblocks⌉, padded as MonarchLinear.
Result<Layer> flyBlockDiagonal(int64_t nb, int64_t dIn, int64_t dOut) {
  auto t = makeEinsum("ki,koi->ko",
                      {{'k', nb}, {'i', ceilDiv(dIn, nb)}, {'o', ceilDiv(dOut, nb)}});
  if (!t)
    return Error{t.error()};
  return layerFromTerms({*t}, dIn, dOut);
}

// einsum-search's factorize(d, 2) (nn/cola_nn.py): each prime factor, the
// smallest first, goes to the smaller part; the parts in ascending order.
std::pair<int64_t, int64_t> einsumSearchFactors(int64_t d) {
  int64_t parts[2] = {1, 1};
  for (int64_t prime = 2; d > 1; ++prime) {
    if (prime * prime > d)
      prime = d; // what is left is prime
    while (d % prime == 0) {
      parts[parts[1] < parts[0] ? 1 : 0] *= prime;
      d /= prime;
    }
  }
  return {std::min(parts[0], parts[1]), std::max(parts[0], parts[1])};
}

} // namespace

Result<Layer> buildNamed(const NamedSpec &spec, int64_t dIn, int64_t dOut) {
  if (dIn < 1 || dIn > kMaxDim)
    return Error{fmt::format("d_in = {} is outside [1, 2^40]", dIn)};
  if (dOut < 1 || dOut > kMaxDim)
    return Error{fmt::format("d_out = {} is outside [1, 2^40]", dOut)};
  const std::string &f = spec.family;
  auto fromSizes = [&](ClassSizes s) -> Result<Layer> {
    auto l = layerFromTerms({termFromClassSizes(s)}, dIn, dOut);
    if (!l)
      return l;
    return withName(*l, f);
  };
  auto einsum = [&](std::vector<std::pair<std::string, std::string>> specs,
                    std::map<char, int64_t> sizes) -> Result<Layer> {
    std::vector<EinsumTerm> terms;
    for (auto &[e, _] : specs) {
      auto t = makeEinsum(e, sizes);
      if (!t)
        return Error{t.error()};
      terms.push_back(*t);
    }
    auto l = layerFromTerms(terms, dIn, dOut);
    if (!l)
      return l;
    return withName(*l, f);
  };
  if (f == "dense")
    return einsum({{"i,oi->o", ""}}, {{'i', dIn}, {'o', dOut}});
  if (f == "low-rank") {
    auto r = requiredInt(spec, "rank");
    if (!r)
      return Error{r.error()};
    if (*r > std::min(dIn, dOut))
      return Error{fmt::format("low-rank: rank = {} exceeds min(d_in, d_out) = "
                               "{}",
                               *r, std::min(dIn, dOut))};
    return fromSizes({dIn, 1, 1, 1, dOut, 1, *r});
  }
  if (f == "kronecker" || f == "tt") {
    auto in = split(spec, "in_factor", dIn, "d_in");
    auto out = split(spec, "out_factor", dOut, "d_out");
    if (!in)
      return Error{in.error()};
    if (!out)
      return Error{out.error()};
    int64_t r = 1;
    if (f == "tt") {
      auto rr = requiredInt(spec, "rank");
      if (!rr)
        return Error{rr.error()};
      r = *rr;
    }
    // x[b,a], A[d,r,a], B[e,r,b], y[e,d]: B acts on the outer factor.
    return fromSizes({in->first, in->second, 1, out->first, out->second, 1, r});
  }
  if (f == "monarch" || f == "block-diagonal" || f == "btt") {
    auto layout = layoutParam(
        spec, f == "btt" ? std::vector<std::string>{"einstruct", "einsum-search"}
                         : std::vector<std::string>{"einstruct", "fly"});
    if (!layout)
      return Error{layout.error()};
    if (f == "monarch" && spec.params.count("nblocks") && *layout != "fly")
      return Error{"monarch: nblocks is fly's count of square blocks; give "
                   "layout=fly with it, or blocks= for einstruct's blocks"};
    if (*layout == "fly") {
      if (spec.params.count("blocks") && spec.params.count("nblocks"))
        return Error{fmt::format("{}: give nblocks or blocks, not both", f)};
      NamedSpec renamed = spec;
      if (renamed.params.count("nblocks"))
        renamed.params["blocks"] = renamed.params["nblocks"];
      auto nb = intParam(renamed, "blocks");
      if (!nb)
        return Error{nb.error()};
      const int64_t n = nb->value_or(4); // fly's default
      if (n > std::max(dIn, dOut))
        return Error{fmt::format("{}: nblocks = {} exceeds max(d_in, d_out) = {}",
                                 f, n, std::max(dIn, dOut))};
      auto l = f == "monarch" ? flyMonarch(n, dIn, dOut)
                              : flyBlockDiagonal(n, dIn, dOut);
      if (!l)
        return l;
      l->layout = "fly";
      return withName(*l, f);
    }
    if (*layout == "einsum-search") {
      if (spec.params.count("sizing"))
        return Error{"btt: layout=einsum-search sizes the blocks as its "
                     "factorize(d, 2) does; drop sizing"};
      auto rank = intParam(spec, "rank");
      auto in = intParam(spec, "in_blocks");
      auto out = intParam(spec, "out_blocks");
      for (auto *v : {&rank, &in, &out})
        if (!*v)
          return Error{v->error()};
      // x (γ, α) with γ the larger factor, y (φ, ε) with φ the smaller.
      auto [alpha, gamma] = einsumSearchFactors(dIn);
      auto [phi, eps] = einsumSearchFactors(dOut);
      if (*in) {
        gamma = **in;
        if (dIn % gamma)
          return Error{fmt::format("btt: in_blocks = {} does not divide d_in = "
                                   "{}", gamma, dIn)};
        alpha = dIn / gamma;
      }
      if (*out) {
        phi = **out;
        if (dOut % phi)
          return Error{fmt::format("btt: out_blocks = {} does not divide d_out "
                                   "= {}", phi, dOut)};
        eps = dOut / phi;
      }
      const int64_t r = rank->value_or(1);
      // A (γ, α, φ·ρ) and B (φ, γ·ρ, ε) as mm/btt_mvm.py stores them.
      std::map<char, int64_t> sizes{
          {'g', gamma}, {'a', alpha}, {'f', phi}, {'e', eps}};
      if (r > 1)
        sizes['r'] = r;
      auto t = makeEinsum(r > 1 ? "ga,gafr,fgre->fe" : "ga,gaf,fge->fe",
                          sizes);
      if (!t)
        return Error{t.error()};
      auto l = layerFromTerms({*t}, dIn, dOut);
      if (!l)
        return l;
      l->layout = "einsum-search";
      return withName(*l, f);
    }
  }
  if (f == "btt" || f == "monarch" || f == "btt-moe") {
    int64_t r = 1;
    if (f == "btt") {
      auto rr = intParam(spec, "rank");
      if (!rr)
        return Error{rr.error()};
      r = rr->value_or(1);
    }
    int64_t experts = 0, topK = 0;
    if (f == "btt-moe") {
      auto e = requiredInt(spec, "experts", 4096);
      auto k = intParam(spec, "top_k", 4096);
      if (!e)
        return Error{e.error()};
      if (!k)
        return Error{k.error()};
      experts = *e;
      topK = k->value_or(2);
      if (topK > experts)
        return Error{fmt::format("btt-moe: top_k = {} exceeds experts = {}",
                                 topK, experts)};
      r = experts;
    }
    std::string sizing = spec.params.count("sizing") ? spec.params.at("sizing")
                                                     : "exact";
    if (sizing != "exact" && sizing != "round")
      return Error{fmt::format("{}: sizing = '{}' must be 'exact' or 'round'", f,
                               sizing)};
    ClassSizes s;
    if (sizing == "round") {
      if (spec.params.count("in_blocks") || spec.params.count("out_blocks"))
        return Error{fmt::format("{}: sizing=round derives the blocks from θ; "
                                 "drop in_blocks/out_blocks",
                                 f)};
      Theta t{{0.5, 0, 0.5, 0, 0.5, 0.5, 0}};
      auto rs = sizesFromTheta(t, dIn, dOut, Sizing::Round);
      if (!rs)
        return Error{rs.error()};
      s = *rs;
    } else {
      std::string inKey = f == "monarch" ? "blocks" : "in_blocks";
      std::string outKey = f == "monarch" ? "blocks" : "out_blocks";
      auto in = split(spec, inKey, dIn, "d_in");
      auto out = split(spec, outKey, dOut, "d_out");
      if (!in)
        return Error{in.error()};
      if (!out)
        return Error{out.error()};
      // x[g,a]: g = blocks of the input; y[f,e]: f = blocks of the output.
      s = {in->first, 1, in->second, 1, out->first, out->second, 1};
      if (f == "monarch" && !spec.params.count("blocks")) {
        // Monarch's square blocks: g = f.
        s[kGamma] = s[kPhi] = std::gcd(in->second, out->second);
        s[kAlpha] = dIn / s[kGamma];
        s[kEpsilon] = dOut / s[kPhi];
      }
    }
    s[kRho] = r;
    auto l = fromSizes(s);
    if (!l)
      return l;
    l->experts = experts;
    l->topK = topK;
    return l;
  }
  if (f == "block-diagonal" || f == "dyad") {
    auto k = requiredInt(spec, "blocks");
    if (!k)
      return Error{k.error()};
    for (auto [name, d] : {std::pair{"d_in", dIn}, std::pair{"d_out", dOut}})
      if (d % *k)
        return Error{fmt::format("{}: blocks = {} does not divide {} = {}", f,
                                 *k, name, d)};
    std::map<char, int64_t> sizes{{'k', *k}, {'i', dIn / *k}, {'o', dOut / *k}};
    if (f == "block-diagonal")
      return einsum({{"ki,koi->ko", ""}}, sizes);
    std::string variant = spec.params.count("variant")
                              ? spec.params.at("variant")
                              : std::string("DT");
    for (auto &c : variant)
      c = char(std::toupper((unsigned char)c));
    // DYAD: BlockDiag(Wl) plus a second block-diagonal term on the input
    // (IT), the output (OT) or both (DT) viewed with (blocks × block) swapped.
    std::string second = variant == "IT"   ? "ik,koi->ko"
                         : variant == "OT" ? "ki,koi->ok"
                         : variant == "DT" ? "ik,koi->ok"
                                           : "";
    if (second.empty())
      return Error{fmt::format("dyad: variant = '{}' must be IT, OT or DT",
                               variant)};
    return einsum({{"ki,koi->ko", ""}, {second, ""}}, sizes);
  }
  return Error{fmt::format("unknown structure '{}'", f)};
}

} // namespace einstruct
