// What the GPU check harnesses share: the generated layer's symbols by name
// (LAYER is defined on the nvcc command line, its header -include'd), CUDA
// error checks, and host values in and out of the layer's storage type.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include "cuda_ok.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define FN(x) CAT(LAYER, CAT(_, x))

namespace {

const einstruct_layer_info *info;
int failures = 0;

// Host values rounded to the layer's storage type, and that type's bits.
float roundTo(float v) {
  std::string dt = info->dtype;
  if (dt == "bf16")
    return __bfloat162float(__float2bfloat16(v));
  if (dt == "f16")
    return __half2float(__float2half(v));
  return v;
}
std::vector<unsigned char> bits(const std::vector<float> &v) {
  std::string dt = info->dtype;
  std::vector<unsigned char> out(v.size() * info->dtype_bytes);
  for (size_t i = 0; i < v.size(); ++i) {
    if (dt == "bf16") {
      __nv_bfloat16 h = __float2bfloat16(v[i]);
      std::memcpy(&out[2 * i], &h, 2);
    } else if (dt == "f16") {
      __half h = __float2half(v[i]);
      std::memcpy(&out[2 * i], &h, 2);
    } else {
      std::memcpy(&out[4 * i], &v[i], 4);
    }
  }
  return out;
}
std::vector<double> values(const std::vector<unsigned char> &b) {
  std::string dt = info->dtype;
  size_t n = b.size() / info->dtype_bytes;
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (dt == "bf16") {
      __nv_bfloat16 h;
      std::memcpy(&h, &b[2 * i], 2);
      out[i] = __bfloat162float(h);
    } else if (dt == "f16") {
      __half h;
      std::memcpy(&h, &b[2 * i], 2);
      out[i] = __half2float(h);
    } else {
      float f;
      std::memcpy(&f, &b[4 * i], 4);
      out[i] = f;
    }
  }
  return out;
}

} // namespace
