#include "ObjectCache.h"
#include "compiler/frontend/OutputFiles.h"

#include "llvm/Config/llvm-config.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SHA256.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"

#include <cstdlib>
#include <fcntl.h>
#include <sys/stat.h>
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
  // Opened without following links or waiting on a FIFO's writer, and read
  // only when it is a regular file of a sane size.
  const std::string path = entryPath(dir, key);
  const int fd =
      ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return nullptr;
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      size_t(st.st_size) <= kDigest || size_t(st.st_size) > kMaxEntryBytes) {
    ::close(fd);
    return nullptr;
  }
  auto file = llvm::MemoryBuffer::getOpenFile(fd, path, st.st_size);
  ::close(fd);
  if (!file)
    return nullptr;
  llvm::StringRef bytes = (*file)->getBuffer();
  llvm::StringRef object = bytes.drop_back(kDigest);
  auto sum = digest(object);
  if (bytes.take_back(kDigest) !=
      llvm::StringRef(reinterpret_cast<const char *>(sum.data()), kDigest))
    return nullptr;
  return llvm::MemoryBuffer::getMemBufferCopy(object, key + ".o");
}

bool store(const std::string &dir, const std::string &key,
           llvm::StringRef object) {
  if (object.empty() || object.size() + kDigest > kMaxEntryBytes ||
      llvm::sys::fs::create_directories(dir))
    return false;
  // A FIFO, link or empty directory in the entry's place is removed first
  // (the writer would write into a special file rather than replace it).
  const std::string path = entryPath(dir, key);
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) &&
      (S_ISDIR(st.st_mode) ? ::rmdir(path.c_str()) : ::unlink(path.c_str())))
    return false;
  auto sum = digest(object);
  std::string entry = object.str();
  entry.append(reinterpret_cast<const char *>(sum.data()), kDigest);
  OutputFiles out;
  out.add(path, std::move(entry));
  return bool(out.commit());
}

} // namespace einstruct::objectcache
