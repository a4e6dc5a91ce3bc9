// The on-disk cache of the CPU JIT's object code. A layer's object depends
// only on its lowered module, the host's target machine and LLVM, so those
// make the key; a later process loads the object instead of running LLVM's
// optimiser and code generator again (~1.4 of the ~1.6 s a layer takes).
#pragma once
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/MemoryBuffer.h"

#include <memory>
#include <optional>
#include <string>

namespace llvm {
class TargetMachine;
}

namespace einstruct::objectcache {

constexpr size_t kMaxEntryBytes = size_t(1) << 30;

// $EINSTRUCT_CACHE_DIR, else $XDG_CACHE_HOME/einstruct, else
// $HOME/.cache/einstruct; none when EINSTRUCT_CACHE_DIR is "off" or no home
// is known.
std::optional<std::string> directory();

// Hex SHA-256 of `parts`, each followed by a NUL (so no two lists of parts
// hash alike by concatenation).
std::string hashParts(llvm::ArrayRef<llvm::StringRef> parts);

// Hex SHA-256 of what the object code depends on.
std::string key(llvm::StringRef loweredModule, const llvm::TargetMachine &tm);

// The object stored under `key`, or null when it is absent, not a regular
// file of at most kMaxEntryBytes, or fails its checksum (a torn or edited
// file, a FIFO or a link to /dev/zero is a miss, never a crash or a hang).
std::unique_ptr<llvm::MemoryBuffer> read(const std::string &dir,
                                         const std::string &key);

// Stores `object` under `key` through the checked all-or-none writer, so
// readers never see a partial entry and a full disk is a failed store, not
// a fatal stream error. An entry that is not a regular file (a FIFO, a
// link, an empty directory) is replaced. Best effort: false (and no entry)
// on any failure.
bool store(const std::string &dir, const std::string &key,
           llvm::StringRef object);

} // namespace einstruct::objectcache
