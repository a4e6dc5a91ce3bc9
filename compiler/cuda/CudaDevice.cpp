#include "compiler/cuda/CudaDevice.h"

#include <dlfcn.h>

namespace einstruct {
namespace {

// The few driver entry points used, with cuda.h's attribute numbers (part of
// the driver's stable ABI).
constexpr int kCapabilityMajor = 75, kCapabilityMinor = 76;
constexpr int kSharedPerBlockOptin = 97;

struct Driver {
  int (*init)(unsigned) = nullptr;
  int (*count)(int *) = nullptr;
  int (*get)(int *, int) = nullptr;
  int (*attribute)(int *, int, int) = nullptr;
  int (*name)(char *, int, int) = nullptr;
  std::string error;
};

// Opened once per process and kept (as the CUDA runtime does).
const Driver &driver() {
  static const Driver d = [] {
    Driver r;
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      r.error = "no CUDA driver: libcuda.so.1 cannot be loaded";
      return r;
    }
    r.init = reinterpret_cast<int (*)(unsigned)>(dlsym(h, "cuInit"));
    r.count = reinterpret_cast<int (*)(int *)>(dlsym(h, "cuDeviceGetCount"));
    r.get = reinterpret_cast<int (*)(int *, int)>(dlsym(h, "cuDeviceGet"));
    r.attribute = reinterpret_cast<int (*)(int *, int, int)>(
        dlsym(h, "cuDeviceGetAttribute"));
    r.name = reinterpret_cast<int (*)(char *, int, int)>(
        dlsym(h, "cuDeviceGetName"));
    if (!r.init || !r.count || !r.get || !r.attribute || !r.name)
      r.error = "the CUDA driver (libcuda.so.1) lacks cuInit/cuDeviceGet*";
    else if (int rc = r.init(0))
      r.error = "the CUDA driver failed to initialise (CUresult " +
                std::to_string(rc) + (rc == 100 ? ": no CUDA device)" : ")");
    return r;
  }();
  return d;
}

} // namespace

Result<CudaDevice> queryCudaDevice(int ordinal) {
  const Driver &d = driver();
  if (!d.error.empty())
    return Error{d.error};
  int count = 0;
  if (d.count(&count) || count == 0)
    return Error{"no CUDA device"};
  if (ordinal < 0 || ordinal >= count)
    return Error{"CUDA device " + std::to_string(ordinal) + " does not exist (" +
                 std::to_string(count) + " device(s): 0.." +
                 std::to_string(count - 1) + ")"};
  CudaDevice dev;
  dev.ordinal = ordinal;
  int handle = 0, shared = 0;
  char name[256] = {};
  if (d.get(&handle, ordinal) ||
      d.attribute(&dev.major, kCapabilityMajor, handle) ||
      d.attribute(&dev.minor, kCapabilityMinor, handle) ||
      d.attribute(&shared, kSharedPerBlockOptin, handle) ||
      d.name(name, int(sizeof name) - 1, handle))
    return Error{"the CUDA driver did not describe device " +
                 std::to_string(ordinal)};
  dev.sharedPerBlock = shared;
  dev.name = name;
  return dev;
}

Result<CudaTarget> targetFor(const CudaDevice &device, CudaDType dtype) {
  const std::string cc =
      std::to_string(device.major) + "." + std::to_string(device.minor);
  if (device.major < 8)
    return Error{"CUDA device " + std::to_string(device.ordinal) + " (" +
                 device.name + ") has compute capability " + cc +
                 "; einstruct's kernels need 8.0 or newer"};
  CudaTarget t;
  t.dtype = dtype;
  if (device.major == 8 && device.minor == 0)
    t.arch = "sm_80";
  else if (device.major == 9 && device.minor == 0)
    t.arch = "sm_90a";
  else {
    t.arch = "sm_" + std::to_string(device.major) + std::to_string(device.minor);
    // What the kernels' launch may request, less a margin for the static
    // shared memory the compiler adds.
    t.smemBudget = device.sharedPerBlock - 1024;
  }
  return t;
}

} // namespace einstruct
