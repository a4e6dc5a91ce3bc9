#include "compiler/cuda/CudaText.h"

#include <cctype>
#include <cstring>

namespace einstruct {

bool isCIdentifier(const std::string &s) {
  if (s.empty() || !(std::isalpha((unsigned char)s[0]) || s[0] == '_'))
    return false;
  for (char c : s)
    if (!(std::isalnum((unsigned char)c) || c == '_'))
      return false;
  return true;
}

std::string cText(const std::string &s) {
  std::string out;
  for (char c : s)
    out += (std::isalnum((unsigned char)c) || std::strchr(" _.,:=+-()|[]#;>", c))
               ? c
               : '?';
  return out;
}

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

const char *statusDecls() {
  return R"C(#ifndef EINSTRUCT_STATUS_DEFINED
#define EINSTRUCT_STATUS_DEFINED
enum {
  EINSTRUCT_OK = 0,
  EINSTRUCT_ERR_INVALID_ARGUMENT = -1,  /* null/misaligned pointer, bad n */
  EINSTRUCT_ERR_WORKSPACE_TOO_SMALL = -2,
  EINSTRUCT_ERR_SHARED_MEMORY = -3,     /* the device has less than the plan */
  EINSTRUCT_ERR_CUBLAS = -1000          /* minus the cublasStatus_t */
};
typedef struct einstruct_layer_info {
  const char *name, *family, *einsum, *dtype;
  int64_t d_in, d_out, padded_in, padded_out;
  int64_t sizes[7];      /* classes a, b, g, d, e, f, r (0: not a two-factor layer) */
  int64_t x_strides[7];  /* element stride of each class; 0 when absent */
  int64_t w1_strides[7];
  int64_t w2_strides[7];
  int64_t y_strides[7];
  int64_t w1_elems, w2_elems;
  int dtype_bytes;
  size_t forward_smem, backward_input_smem; /* bytes per block */
} einstruct_layer_info;
#endif
)C";
}

std::string headerBody(const std::string &name, const std::string &decls) {
  return std::string("#pragma once\n#include <cuda_runtime.h>\n#include <stddef.h>\n"
                     "#include <stdint.h>\n\n") +
         statusDecls() +
         "\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
         "const einstruct_layer_info *" + name + "_info(void);\n"
         "const char *" + name + "_status_string(int status);\n\n" +
         decls + "#ifdef __cplusplus\n}\n#endif\n";
}

const char *statusFallback() {
  return R"C(  default:
    if (status <= EINSTRUCT_ERR_CUBLAS)
      return "a cuBLAS call failed (status = EINSTRUCT_ERR_CUBLAS minus its "
             "cublasStatus_t)";
    return status > 0 ? cudaGetErrorString((cudaError_t)status)
                      : "unknown status";
  })C";
}

} // namespace einstruct
