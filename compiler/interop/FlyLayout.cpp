// fly's MonarchLinear and BlockdiagLinear (HazyResearch/fly,
// src/models/layers/monarch_linear.py, blockdiag_linear.py; M2 vendors both
// under bert/src/mm). State-dict keys: NAME.blkdiag1 (nblocks, q, p),
// NAME.blkdiag2 (nblocks, s, q), or NAME.weight (nblocks, o, i), and
// NAME.bias. Both zero-pad x to nblocks·⌈d_in/nblocks⌉ and cut y to d_out,
// which the checkpoint does not store: d_out is the bias's length when there
// is one, else the padded size, and so is d_in unless the user gives it.
#include "Checkpoint.h"
#include "search/Checked.h"
#include "search/Named.h"

#include <fmt/format.h>

namespace einstruct {
namespace {

// d_in and d_out of module `m` whose padded sizes are nb·inBlock, nb·outBlock.
Result<std::pair<int64_t, int64_t>>
features(const Tensors &t, const std::string &m, int64_t nb, int64_t inBlock,
         int64_t outBlock, const ImportOptions &o) {
  const bool mine = o.only.empty() || o.only == m;
  int64_t dIn = nb * inBlock, dOut = nb * outBlock;
  auto bias = t.find(stateKey(m, "bias"));
  if (bias != t.end()) {
    if (bias->second.shape.size() != 1)
      return Error{fmt::format("{}: shape {} is not a vector", bias->first,
                               shapeString(bias->second.shape))};
    dOut = bias->second.shape[0];
  }
  if (mine && o.dIn)
    dIn = *o.dIn;
  if (mine && o.dOut) {
    if (bias != t.end() && *o.dOut != dOut)
      return Error{fmt::format("{}: d_out = {} but its bias has {} entries", m,
                               *o.dOut, dOut)};
    dOut = *o.dOut;
  }
  for (auto [name, d, block] : {std::tuple{"d_in", dIn, inBlock},
                                std::tuple{"d_out", dOut, outBlock}})
    if (d < 1 || ceilDiv(d, nb) != block)
      return Error{fmt::format("{}: {} = {} does not fit blocks of {} "
                               "(nblocks = {} pads {} to {})",
                               m.empty() ? "the layer" : m, name, d, block, nb,
                               name, nb * ceilDiv(std::max<int64_t>(d, 1), nb))};
  return std::pair{dIn, dOut};
}

} // namespace

Result<std::vector<ImportedLayer>> importFly(const Tensors &t,
                                             const ImportOptions &o) {
  std::vector<ImportedLayer> out;
  for (const auto &[name, a] : t) {
    const bool monarch = hasSuffix("." + name, ".blkdiag1");
    const bool blockdiag = hasSuffix("." + name, ".weight") &&
                           a.shape.size() == 3 &&
                           // a convolution kernel (out, in, k) is no layer
                           std::min(a.shape[1], a.shape[2]) >= 8;
    if (!monarch && !blockdiag)
      continue;
    const size_t tail = monarch ? 8 : 6; // "blkdiag1" or "weight"
    const std::string m =
        name.size() == tail ? "" : name.substr(0, name.size() - tail - 1);
    if (a.shape.size() != 3)
      return Error{fmt::format("{}: shape {} must be (nblocks, q, p)", name,
                               shapeString(a.shape))};
    const int64_t nb = a.shape[0];
    Result<ImportedLayer> l = Error{""};
    if (monarch) {
      auto b2 = t.find(stateKey(m, "blkdiag2"));
      if (b2 == t.end())
        return Error{fmt::format("{}: has no {} beside it", name,
                                 stateKey(m, "blkdiag2"))};
      const int64_t p = a.shape[2], s = b2->second.shape.size() == 3
                                            ? b2->second.shape[1]
                                            : 0;
      // MonarchLinear's middle size: the smaller padded side's block.
      const int64_t q = p < s ? p : s;
      const std::vector<int64_t> want1{nb, q, p}, want2{nb, s, q};
      if (a.shape != want1 || b2->second.shape != want2)
        return Error{fmt::format(
            "{}: blkdiag1 {} and blkdiag2 {} are not what MonarchLinear("
            "nblocks={}) builds: {} and {}",
            m, shapeString(a.shape), shapeString(b2->second.shape), nb,
            shapeString(want1), shapeString(want2))};
      auto f = features(t, m, nb, p, s, o);
      if (!f)
        return Error{f.error()};
      l = namedImport(m, fmt::format("monarch(nblocks={}, layout=fly)", nb),
                   f->first, f->second);
      if (!l)
        return Error{l.error()};
      auto shapes = weightShapes(l->layer);
      l->weights = {reshaped(a, shapes[0]), reshaped(b2->second, shapes[1])};
    } else {
      auto f = features(t, m, nb, a.shape[2], a.shape[1], o);
      if (!f)
        return Error{f.error()};
      l = namedImport(m, fmt::format("block-diagonal(blocks={}, layout=fly)", nb),
                   f->first, f->second);
      if (!l)
        return Error{l.error()};
      l->weights = {reshaped(a, weightShapes(l->layer)[0])};
    }
    auto bias = t.find(stateKey(m, "bias"));
    if (bias != t.end())
      l->bias = bias->second;
    if (l->layer.dIn != l->layer.terms[0].inDim() ||
        l->layer.dOut != l->layer.terms[0].outDim())
      l->notes.push_back(fmt::format(
          "padded as fly pads: {} -> {} computed as {} -> {}", l->layer.dIn,
          l->layer.dOut, l->layer.terms[0].inDim(),
          l->layer.terms[0].outDim()));
    out.push_back(std::move(*l));
  }
  return out;
}

Result<std::vector<std::pair<std::string, NpyArray>>>
exportFly(const ImportedLayer &l) {
  const Layer &layer = l.layer;
  if (layer.layout != "fly" ||
      (layer.name != "monarch" && layer.name != "block-diagonal"))
    return Error{fmt::format(
        "{}: fly stores monarch(nblocks=N, layout=fly) and "
        "block-diagonal(blocks=N, layout=fly); this layer is '{}' in the '{}' "
        "layout",
        layer.label, layer.name, layer.layout)};
  const EinsumTerm &term = layer.terms[0];
  std::vector<std::pair<std::string, NpyArray>> out;
  if (layer.name == "monarch") {
    // x (nblocks..., p): every x index but 'a' counts blocks.
    const int64_t p = term.sizes.at('a'), nb = term.inDim() / p;
    const int64_t s = term.sizes.at('e');
    const int64_t q = elementCount(l.weights[0].shape) / (nb * p);
    out.push_back({stateKey(l.name, "blkdiag1"), reshaped(l.weights[0], {nb, q, p})});
    out.push_back({stateKey(l.name, "blkdiag2"), reshaped(l.weights[1], {nb, s, q})});
  } else {
    const int64_t nb = term.sizes.at('k');
    out.push_back({stateKey(l.name, "weight"),
                   reshaped(l.weights[0],
                            {nb, term.sizes.at('o'), term.sizes.at('i')})});
  }
  if (l.bias)
    out.push_back({stateKey(l.name, "bias"), *l.bias});
  return out;
}

} // namespace einstruct
