// Checkpoints of the public structured-layer code (HazyResearch's fly and the
// M2 code that vendors its layers; einsum-search), read into einstruct layers
// and written back. The weights keep the checkpoint's values exactly: fly's
// tensors are only reshaped (its spec spells fly's axis orders, layout=fly);
// einsum-search's BTT cores are transposed into einstruct's layout with its
// learned RMS normalisation folded in, its router transposed to (d_in, E).
#pragma once
#include "compiler/frontend/Npy.h"
#include "compiler/frontend/OutputFiles.h"
#include "search/Layer.h"

#include <map>
#include <optional>

namespace einstruct {

enum class CheckpointSource { Fly, EinsumSearch };

// "fly", "m2" (the same layers) or "einsum-search".
Result<CheckpointSource> parseCheckpointSource(const std::string &text);
const char *sourceName(CheckpointSource s);

// A checkpoint's tensors by name, as float32 (safetensors' floating dtypes).
using Tensors = std::map<std::string, NpyArray>;
Result<Tensors> readCheckpoint(const std::string &path);

struct ImportedLayer {
  std::string name;      // the module path in the checkpoint ("mlp.fc1")
  std::string structure; // the named spec that rebuilds `layer`, or
  std::string theta;     // its θ text (round sizing) for a generic θ layer
  Layer layer;
  std::vector<NpyArray> weights;  // in the layer's weight order and shapes
  std::optional<NpyArray> router; // BTT-MoE: (d_in, experts)
  std::optional<NpyArray> bias;   // (d_out)
  std::vector<std::string> notes; // what the import did beyond reshaping
};

struct ImportOptions {
  std::string only;                      // one module path, or all
  std::optional<int64_t> dIn, dOut;      // fly pads: the unpadded features
  int64_t topK = 2;                      // BTT-MoE: not stored in checkpoints
  // einsum-search's generic θ layers (EinOpVec2, `einsum` structures): the
  // θ text they were built from (round sizing) and whether they normalise
  // (`einsum_norm`); d_in, d_out above are then their features.
  std::string theta;
  bool normalised = false;
};

// Every structured layer the checkpoint holds, sorted by name; an error when
// there is none (naming what the file does hold) or one is inconsistent.
Result<std::vector<ImportedLayer>> importCheckpoint(const Tensors &tensors,
                                                    CheckpointSource source,
                                                    const ImportOptions &o);

// What `import` writes into `dir` for `layers`, added to `out`: per layer
// STEM.json (its spec) and STEM.safetensors (w1, w2, ..., router, bias,
// marked with the layer and layout), and manifest.json, whose text is
// returned. STEM is the module path with characters other than [A-Za-z0-9._-]
// replaced ("layer" for the root module).
std::string addImportFiles(const std::vector<ImportedLayer> &layers,
                           const std::string &dir, OutputFiles &out);
std::string importStem(const std::string &name);

// The tensors the source's module would hold for `l` under `name`:
// "NAME.blkdiag1", ... An error names what the source cannot represent.
Result<std::vector<std::pair<std::string, NpyArray>>>
exportLayer(const ImportedLayer &l, CheckpointSource source);

// Per source (FlyLayout.cpp, EinsumSearchLayout.cpp).
Result<std::vector<ImportedLayer>> importFly(const Tensors &t,
                                             const ImportOptions &o);
Result<std::vector<std::pair<std::string, NpyArray>>>
exportFly(const ImportedLayer &l);
Result<std::vector<ImportedLayer>> importEinsumSearch(const Tensors &t,
                                                      const ImportOptions &o);
Result<std::vector<std::pair<std::string, NpyArray>>>
exportEinsumSearch(const ImportedLayer &l);

// Helpers the layouts share.
// Module `name` as the named structure `spec` on dIn -> dOut (errors say
// the module), its weights still to fill.
Result<ImportedLayer> namedImport(const std::string &name,
                                  const std::string &spec, int64_t dIn,
                                  int64_t dOut);
bool hasSuffix(const std::string &s, const std::string &suffix);
// A state-dict key: "MODULE.TENSOR", or "TENSOR" for the root module.
std::string stateKey(const std::string &module, const char *tensor);
std::string shapeString(const std::vector<int64_t> &shape);
// `a` with a new shape of the same element count.
NpyArray reshaped(NpyArray a, std::vector<int64_t> shape);
// `a` (shape `from`, axes named by the letters of `fromAxes`) with its axes
// in the order `toAxes`.
NpyArray transposed(const NpyArray &a, const std::string &fromAxes,
                    const std::string &toAxes);

} // namespace einstruct
