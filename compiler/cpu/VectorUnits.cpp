#include "VectorUnits.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/TargetParser/Host.h"

namespace einstruct {

VectorUnits hostVectorUnits() {
  auto features = llvm::sys::getHostCPUFeatures();
  auto it = features.find("avx512f");
  return it != features.end() && it->second ? kAvx512 : kAvx2;
}

} // namespace einstruct
