// The on-disk cache of the CPU JIT's object code. A layer's object depends
// only on its lowered module, the host's target machine and LLVM, so those
// make the key; a later process loads the object instead of running LLVM's
// optimiser and code generator again (~1.4 of the ~1.6 s a layer takes).
#pragma once
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/MemoryBuffer.h"

#include <memory>
#include <optional>
#include <string>

namespace llvm {
class TargetMachine;
}

namespace einstruct::objectcache {

// $EINSTRUCT_CACHE_DIR, else $XDG_CACHE_HOME/einstruct, else
// $HOME/.cache/einstruct; none when EINSTRUCT_CACHE_DIR is "off" or no home
// is known.
std::optional<std::string> directory();

// Hex SHA-256 of `parts`, each followed by a NUL (so no two lists of parts
// hash alike by concatenation).
std::string hashParts(llvm::ArrayRef<llvm::StringRef> parts);

// Hex SHA-256 of what the object code depends on.
std::string key(llvm::StringRef loweredModule, const llvm::TargetMachine &tm);

// The object stored under `key`, or null when it is absent or fails its
// checksum (a torn or edited file is a miss, never a crash).
std::unique_ptr<llvm::MemoryBuffer> read(const std::string &dir,
                                         const std::string &key);

// Stores the object that `writeTo(path)` writes to a file: it is read back,
// checksummed and renamed into place, so readers never see a partial entry.
// Best effort: false (and no entry) on any failure.
bool store(const std::string &dir, const std::string &key,
           llvm::function_ref<void(const std::string &path)> writeTo);

} // namespace einstruct::objectcache
