// One library of generated kernels as the runtime uses it: built by nvcc
// (CudaBuild, cached on disk), opened with dlopen, with runtime_glue.cu's
// entry points bound (the device, pointer checks, stream-ordered scratch,
// constants copied to the device).
// CudaLayer and CudaMixer each hold theirs; nothing here links against
// CUDA, so a library loads on a machine without a driver or device.
#pragma once
#include "compiler/cuda/CudaBuild.h"

#include <functional>
#include <initializer_list>
#include <memory>

namespace einstruct {

class CudaLibrary {
public:
  ~CudaLibrary();
  CudaLibrary(const CudaLibrary &) = delete;
  CudaLibrary &operator=(const CudaLibrary &) = delete;

  // `src` (symbols prefixed `name`) built for `arch` and opened; `accept`
  // binds the library's own entry points and checks it holds what was
  // asked for. A cached entry that does not open or is not accepted (torn
  // by a crash, another toolkit's leftovers) is removed and built again,
  // once. Calls run on CUDA device `device`.
  static Result<std::unique_ptr<CudaLibrary>>
  load(const CudaSources &src, const std::string &name, const std::string &arch,
       bool cublas, int device,
       const std::function<Result<bool>(CudaLibrary &)> &accept);

  // The exported `symbol` into `slot`; false when the library lacks it.
  template <class F> bool bind(F &slot, const std::string &symbol) const {
    slot = reinterpret_cast<F>(address(symbol));
    return slot != nullptr;
  }

  const std::string &path() const { return path_; }
  bool fromCache() const { return fromCache_; }
  int device() const { return device_; }

  // Makes the device current for this thread's calls into the library;
  // without a driver or device, the driver's own words.
  Result<bool> useDevice() const;
  // Each pointer is non-null device memory of this library's device; an
  // error names it (`what` says what runs: "layer", "mixer").
  Result<bool> checkPointers(
      std::initializer_list<std::pair<const char *, const void *>> ptrs,
      const char *what) const;
  // rc 0, else an error: `what` failed, with the library's text for rc.
  Result<bool> status(int rc, const char *what) const;
  std::string statusText(int rc) const { return statusString_(rc); }
  Result<bool> synchronize(void *stream) const;

  // Device memory holding a copy of host data (constants a library's
  // functions take as inputs), freed when it goes out of scope: it must not
  // outlive the library.
  using DeviceCopy = std::unique_ptr<void, std::function<void(void *)>>;
  Result<DeviceCopy> upload(const void *host, size_t bytes) const;

  // Device memory freed in stream order when it goes out of scope.
  class Scratch {
  public:
    Scratch(const CudaLibrary &lib, void *stream)
        : lib_(lib), stream_(stream) {}
    ~Scratch();
    Scratch(const Scratch &) = delete;
    Scratch &operator=(const Scratch &) = delete;
    Result<bool> allocate(size_t bytes);
    void *get() const { return ptr_; }

  private:
    const CudaLibrary &lib_;
    void *stream_;
    void *ptr_ = nullptr;
  };

private:
  CudaLibrary() = default;
  // dlsym: the exported symbol's address, or null.
  void *address(const std::string &symbol) const;
  Result<bool> open(const BuiltLibrary &lib, const std::string &name);

  std::string path_;
  bool fromCache_ = false;
  int device_ = 0;
  void *handle_ = nullptr;
  const char *(*statusString_)(int) = nullptr;
  int (*useDevice_)(int) = nullptr;
  int (*pointer_)(const void *, int *, int *) = nullptr;
  int (*alloc_)(void **, size_t, void *) = nullptr;
  int (*release_)(void *, void *) = nullptr;
  int (*synchronize_)(void *) = nullptr;
  int (*upload_)(void **, const void *, size_t) = nullptr;
  int (*releaseCopy_)(void *) = nullptr;
};

} // namespace einstruct
