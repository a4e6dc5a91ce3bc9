// Builds the shared library the runtime loads for a CUDA layer: the emitted
// .cu (plus kernels/runtime_glue.cu) compiled by nvcc, kept in an on-disk
// cache so a layer is compiled once per machine (nvcc takes ~5 s a layer).
#pragma once
#include "compiler/cuda/CudaEmitter.h"

namespace einstruct {

// nvcc: $EINSTRUCT_NVCC, else nvcc on PATH, else /usr/local/cuda/bin/nvcc.
Result<std::string> findNvcc();

struct BuiltLibrary {
  std::string path;
  bool fromCache = false; // found, not compiled
  bool temporary = false; // cache off: the caller removes `dir` after loading
  std::string dir;
};

// The library of `src` (emitted under `name`) for `arch` ("sm_80",
// "sm_90a", "sm_86", ...). Cache: objectcache::directory() + "/cuda", key =
// SHA-256 of the sources, arch, nvcc flags and nvcc's version; entries are
// renamed into place whole. Errors name nvcc's first lines of output.
// `cublas`: link cuBLAS (found beside nvcc; rpath set).
Result<BuiltLibrary> buildCudaLibrary(const CudaSources &src,
                                      const std::string &name,
                                      const std::string &arch,
                                      bool cublas = false);

// Removes a cache entry that failed to load, so the next build replaces it.
void forgetCudaLibrary(const BuiltLibrary &lib);

} // namespace einstruct
