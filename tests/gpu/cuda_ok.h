// CUDA_OK(call): a failed CUDA runtime call ends a GPU check harness with
// the call, its place and the error's text.
#pragma once
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#define CUDA_OK(call)                                                          \
  do {                                                                         \
    cudaError_t e_ = (call);                                                   \
    if (e_ != cudaSuccess) {                                                   \
      std::printf("FAIL %s:%d %s: %s\n", __FILE__, __LINE__, #call,            \
                  cudaGetErrorString(e_));                                     \
      std::exit(1);                                                            \
    }                                                                          \
  } while (0)
