// `einstruct compile --emit torch`: a layer or a sequence mixer as a
// self-contained Python module (a torch.nn.Module + autograd.Function calling
// the runtime's C ABI with ctypes): the Python package's einstruct.nn and a
// subclass with the spec.
#pragma once
#include "search/Layer.h"

#include <string>

namespace einstruct {

// `name` is the class and module name (a Python identifier); `runtime` the
// path of libeinstruct_runtime.so the module loads unless EINSTRUCT_RUNTIME
// says otherwise.
Result<std::string> emitTorchModule(const Layer &layer, const std::string &name,
                                    const std::string &runtime);

// A sequence mixer the CPU runs ("ssd(...)", "hydra(...)", "m2-conv(...)",
// "monarch-seq(...)") on sequences of `seqLen` tokens of `dModel` channels
// (0 for ssd and hydra), as a module: einstruct.nn and a subclass of its
// Mixer with the spec and sizes fixed.
Result<std::string> emitTorchMixerModule(const std::string &spec,
                                         int64_t seqLen, int64_t dModel,
                                         const std::string &name,
                                         const std::string &runtime);

} // namespace einstruct
