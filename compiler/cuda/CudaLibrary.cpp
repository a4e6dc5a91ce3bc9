#include "compiler/cuda/CudaLibrary.h"
#include "compiler/cuda/CudaDevice.h"

#include <dlfcn.h>
#include <fmt/format.h>

namespace einstruct {

CudaLibrary::~CudaLibrary() {
  if (handle_)
    dlclose(handle_);
}

Result<std::unique_ptr<CudaLibrary>>
CudaLibrary::load(const CudaSources &src, const std::string &name,
                  const std::string &arch, bool cublas, int device,
                  const std::function<Result<bool>(CudaLibrary &)> &accept) {
  for (int attempt = 0;; ++attempt) {
    auto lib = buildCudaLibrary(src, name, arch, cublas);
    if (!lib)
      return Error{lib.error()};
    std::unique_ptr<CudaLibrary> l(new CudaLibrary);
    l->device_ = device;
    auto opened = l->open(*lib, name);
    if (opened)
      opened = accept(*l);
    if (lib->temporary)
      forgetCudaLibrary(*lib); // the mapping outlives the file
    if (opened)
      return l;
    if (!lib->fromCache || attempt > 0)
      return Error{opened.error()};
    forgetCudaLibrary(*lib);
  }
}

Result<bool> CudaLibrary::open(const BuiltLibrary &lib,
                               const std::string &name) {
  handle_ = dlopen(lib.path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle_) {
    const char *why = dlerror();
    return Error{"cannot load " + lib.path + ": " +
                 (why ? why : "dlopen failed")};
  }
  if (!bind(statusString_, name + "_status_string") ||
      !bind(useDevice_, "einstruct_glue_use_device") ||
      !bind(pointer_, "einstruct_glue_pointer") ||
      !bind(alloc_, "einstruct_glue_alloc") ||
      !bind(release_, "einstruct_glue_free") ||
      !bind(synchronize_, "einstruct_glue_synchronize") ||
      !bind(upload_, "einstruct_glue_upload") ||
      !bind(releaseCopy_, "einstruct_glue_release"))
    return Error{lib.path + " lacks einstruct's entry points"};
  path_ = lib.path;
  fromCache_ = lib.fromCache;
  return true;
}

void *CudaLibrary::address(const std::string &symbol) const {
  return dlsym(handle_, symbol.c_str());
}

Result<bool> CudaLibrary::useDevice() const {
  // The driver's own words for a missing driver or device, asked once (the
  // CUDA runtime would say "driver version is insufficient").
  static const std::string noDriver = [] {
    auto d = queryCudaDevice(0);
    return d ? std::string() : d.error();
  }();
  if (!noDriver.empty())
    return Error{noDriver};
  return status(useDevice_(device_), "selecting the device");
}

Result<bool> CudaLibrary::status(int rc, const char *what) const {
  if (rc == 0)
    return true;
  return Error{fmt::format("{} on CUDA device {}: {} (status {})", what,
                           device_, statusText(rc), rc)};
}

Result<bool> CudaLibrary::checkPointers(
    std::initializer_list<std::pair<const char *, const void *>> ptrs,
    const char *what) const {
  for (auto [name, p] : ptrs) {
    if (!p)
      return Error{fmt::format("{} is null", name)};
    int kind = 0, device = -1;
    if (int rc = pointer_(p, &kind, &device))
      return status(rc, name);
    if (kind == 0)
      return Error{fmt::format("{} is host memory; a CUDA {} takes device "
                               "pointers (device {})",
                               name, what, device_)};
    if (device != device_)
      return Error{fmt::format("{} is memory of CUDA device {}; this {} "
                               "runs on device {}",
                               name, device, what, device_)};
  }
  return true;
}

Result<bool> CudaLibrary::synchronize(void *stream) const {
  return status(synchronize_(stream), "waiting for the stream");
}

Result<CudaLibrary::DeviceCopy> CudaLibrary::upload(const void *host,
                                                    size_t bytes) const {
  if (auto ok = useDevice(); !ok)
    return Error{ok.error()};
  void *p = nullptr;
  if (auto ok = status(upload_(&p, host, bytes), "copying constants"); !ok)
    return Error{ok.error()};
  return DeviceCopy(p, [release = releaseCopy_](void *q) { release(q); });
}

CudaLibrary::Scratch::~Scratch() {
  if (ptr_)
    lib_.release_(ptr_, stream_);
}

Result<bool> CudaLibrary::Scratch::allocate(size_t bytes) {
  return lib_.status(lib_.alloc_(&ptr_, bytes, stream_), "workspace");
}

} // namespace einstruct
