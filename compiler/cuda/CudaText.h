// Text pieces both CUDA emitters write (the fused two-stage layers of
// CudaEmitter and the cuBLAS layers of GemmEmitter): the identifier check,
// comment-safe text, shapes, and the status codes and layer info every
// generated header declares.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace einstruct {

bool isCIdentifier(const std::string &s);
// Text safe inside a C comment and a C string literal.
std::string cText(const std::string &s);
std::string shapeText(const std::vector<int64_t> &shape);
// The status codes and einstruct_layer_info, once per translation unit.
const char *statusDecls();
// A generated header from `#pragma once` on: includes, the status codes and
// einstruct_layer_info, then NAME_info, NAME_status_string and `decls`
// inside extern "C".
std::string headerBody(const std::string &name, const std::string &decls);
// The body of NAME_status_string's switch after its cases for the codes
// every layer returns: cuBLAS failures, then CUDA errors.
const char *statusFallback();

} // namespace einstruct
