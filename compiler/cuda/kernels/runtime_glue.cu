// Appended to a layer's .cu when the einstruct runtime builds the shared
// library it loads (compiler/cuda/CudaBuild): what the runtime, which links
// no CUDA library, needs besides the layer's own C ABI. These calls go to
// the same statically linked CUDA runtime as the kernels; device pointers
// and streams of other CUDA runtimes (PyTorch's) are valid here because all
// of them use the device's primary context.
extern "C" int einstruct_glue_use_device(int device) {
  return (int)cudaSetDevice(device);
}

// What `p` points at: *kind = 0 host or unknown memory, 1 device, 2 managed;
// *device = the device it belongs to (-1 for host memory).
extern "C" int einstruct_glue_pointer(const void *p, int *kind, int *device) {
  cudaPointerAttributes a;
  cudaError_t e = cudaPointerGetAttributes(&a, p);
  if (e != cudaSuccess) {
    cudaGetLastError(); // not sticky: clear it
    return (int)e;
  }
  *kind = a.type == cudaMemoryTypeDevice ? 1 : a.type == cudaMemoryTypeManaged ? 2 : 0;
  *device = *kind ? a.device : -1;
  return 0;
}

// Stream-ordered scratch memory (the device's default memory pool).
extern "C" int einstruct_glue_alloc(void **p, size_t bytes,
                                    cudaStream_t stream) {
  return (int)cudaMallocAsync(p, bytes, stream);
}
extern "C" int einstruct_glue_free(void *p, cudaStream_t stream) {
  return (int)cudaFreeAsync(p, stream);
}
extern "C" int einstruct_glue_synchronize(cudaStream_t stream) {
  return (int)cudaStreamSynchronize(stream);
}

// Device memory holding a copy of `bytes` of host memory, kept as long as
// the caller holds it (m2-conv's DFT matrices), and its release.
extern "C" int einstruct_glue_upload(void **p, const void *host, size_t bytes) {
  cudaError_t e = cudaMalloc(p, bytes);
  if (e == cudaSuccess)
    e = cudaMemcpy(*p, host, bytes, cudaMemcpyHostToDevice);
  if (e != cudaSuccess && *p) {
    cudaFree(*p);
    *p = nullptr;
  }
  return (int)e;
}
extern "C" int einstruct_glue_release(void *p) { return (int)cudaFree(p); }

// A bias, for layers whose spec asks for one: y [rows][n] += b, and
// db [n] = the column sums of dy [rows][n], in the layer's dtype (0 f32,
// 1 bf16, 2 f16: CudaDType's order) with float arithmetic.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

template <class T>
__global__ void einstructAddBias(T *y, const T *b, int64_t rows, int64_t n) {
  const int64_t total = rows * n, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += stride)
    y[i] = T(float(y[i]) + float(b[i % n]));
}

// One thread per column; 32 columns per warp read consecutive addresses.
template <class T>
__global__ void einstructBiasGradient(const T *dy, T *db, int64_t rows,
                                      int64_t n) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= n)
    return;
  float sum = 0.0f;
  for (int64_t r = 0; r < rows; ++r)
    sum += float(dy[r * n + c]);
  db[c] = T(sum);
}

template <class T>
static int einstructBias(void *y, const void *b, const void *dy, void *db,
                  int64_t rows, int64_t n, cudaStream_t stream) {
  if (y) {
    const int64_t blocks = (rows * n + 255) / 256;
    einstructAddBias<T><<<unsigned(blocks < 65535 ? blocks : 65535), 256, 0,
                          stream>>>(static_cast<T *>(y),
                                    static_cast<const T *>(b), rows, n);
  } else {
    einstructBiasGradient<T><<<unsigned((n + 255) / 256), 256, 0, stream>>>(
        static_cast<const T *>(dy), static_cast<T *>(db), rows, n);
  }
  return (int)cudaGetLastError();
}

static int einstructBiasOf(int dtype, void *y, const void *b, const void *dy,
                    void *db, int64_t rows, int64_t n, cudaStream_t stream) {
  switch (dtype) {
  case 0:
    return einstructBias<float>(y, b, dy, db, rows, n, stream);
  case 1:
    return einstructBias<__nv_bfloat16>(y, b, dy, db, rows, n, stream);
  case 2:
    return einstructBias<__half>(y, b, dy, db, rows, n, stream);
  }
  return (int)cudaErrorInvalidValue;
}

extern "C" int einstruct_glue_add_bias(void *y, const void *b, int64_t rows,
                                       int64_t n, int dtype,
                                       cudaStream_t stream) {
  return einstructBiasOf(dtype, y, b, nullptr, nullptr, rows, n, stream);
}
extern "C" int einstruct_glue_bias_gradient(const void *dy, void *db,
                                            int64_t rows, int64_t n, int dtype,
                                            cudaStream_t stream) {
  return einstructBiasOf(dtype, nullptr, nullptr, dy, db, rows, n, stream);
}
