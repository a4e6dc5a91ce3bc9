#include "ObjectCache.h"

#include "llvm/Config/llvm-config.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SHA256.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"

#include <atomic>
#include <cstdlib>
#include <unistd.h>

namespace einstruct::objectcache {

namespace {

// Bumped when the entry format or what the key covers changes.
constexpr const char *kFormat = "einstruct-object-cache-1";
constexpr size_t kDigest = 32; // SHA-256 trailer after the object

std::array<uint8_t, 32> digest(llvm::StringRef bytes) {
  llvm::SHA256 h;
  h.update(bytes);
  return h.final();
}

std::string entryPath(const std::string &dir, const std::string &key) {
  return dir + "/" + key + ".o";
}

} // namespace

std::optional<std::string> directory() {
  if (const char *dir = std::getenv("EINSTRUCT_CACHE_DIR")) {
    if (llvm::StringRef(dir) == "off" || !*dir)
      return std::nullopt;
    return std::string(dir);
  }
  if (const char *xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return std::string(xdg) + "/einstruct";
  if (const char *home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.cache/einstruct";
  return std::nullopt;
}

std::string hashParts(llvm::ArrayRef<llvm::StringRef> parts) {
  llvm::SHA256 h;
  for (llvm::StringRef part : parts) {
    h.update(part);
    h.update(llvm::StringRef("\0", 1));
  }
  return llvm::toHex(h.final(), /*LowerCase=*/true);
}

std::string key(llvm::StringRef loweredModule, const llvm::TargetMachine &tm) {
  const std::string triple = tm.getTargetTriple().str();
  return hashParts({kFormat, LLVM_VERSION_STRING, triple, tm.getTargetCPU(),
                    tm.getTargetFeatureString(), loweredModule});
}

std::unique_ptr<llvm::MemoryBuffer> read(const std::string &dir,
                                         const std::string &key) {
  auto file = llvm::MemoryBuffer::getFile(entryPath(dir, key));
  if (!file)
    return nullptr;
  llvm::StringRef bytes = (*file)->getBuffer();
  if (bytes.size() <= kDigest)
    return nullptr;
  llvm::StringRef object = bytes.drop_back(kDigest);
  auto sum = digest(object);
  if (bytes.take_back(kDigest) !=
      llvm::StringRef(reinterpret_cast<const char *>(sum.data()), kDigest))
    return nullptr;
  return llvm::MemoryBuffer::getMemBufferCopy(object, key + ".o");
}

bool store(const std::string &dir, const std::string &key,
           llvm::function_ref<void(const std::string &path)> writeTo) {
  if (llvm::sys::fs::create_directories(dir))
    return false;
  static std::atomic<unsigned> counter{0};
  std::string stem = dir + "/" + key + ".tmp." + std::to_string(::getpid()) +
                     "." + std::to_string(counter++);
  std::string raw = stem + ".raw", entry = stem + ".o";
  writeTo(raw);
  auto object = llvm::MemoryBuffer::getFile(raw);
  llvm::sys::fs::remove(raw);
  if (!object || (*object)->getBufferSize() == 0)
    return false;
  {
    std::error_code ec;
    llvm::raw_fd_ostream out(entry, ec);
    if (ec)
      return false;
    auto sum = digest((*object)->getBuffer());
    out << (*object)->getBuffer()
        << llvm::StringRef(reinterpret_cast<const char *>(sum.data()), kDigest);
    out.close();
    if (out.has_error()) {
      out.clear_error();
      llvm::sys::fs::remove(entry);
      return false;
    }
  }
  if (llvm::sys::fs::rename(entry, entryPath(dir, key))) {
    llvm::sys::fs::remove(entry);
    return false;
  }
  return true;
}

} // namespace einstruct::objectcache
