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
