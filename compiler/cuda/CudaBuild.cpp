#include "compiler/cuda/CudaBuild.h"
#include "compiler/cpu/ObjectCache.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <mutex>

namespace einstruct {
namespace {

// The glue the runtime calls, embedded at build time like the kernels.
const char *kGlueSource =
#include "runtime_glue.cu.inc"
    ;

// Bumped when what the key covers or the entry layout changes.
constexpr const char *kFormat = "einstruct-cuda-library-1";

std::vector<std::string> nvccFlags(const std::string &nvcc,
                                   const std::string &arch, bool cublas) {
  // sm_90a → compute_90a: the arch-specific features need both halves.
  std::vector<std::string> f{"-std=c++17", "-O3", "-shared", "-Xcompiler",
                             "-fPIC",
                             "-gencode=arch=compute_" + arch.substr(3) +
                                 ",code=" + arch};
  if (cublas) {
    // The toolkit's own cuBLAS, found again at load time through the rpath.
    llvm::SmallString<256> lib(nvcc);
    llvm::sys::path::remove_filename(lib); // bin/
    llvm::sys::path::remove_filename(lib); // the toolkit
    llvm::sys::path::append(lib, "lib64");
    f.insert(f.end(), {"-lcublas", "-Xlinker", "-rpath=" + std::string(lib)});
  }
  return f;
}

// Runs nvcc with `args`; its output goes to `log`.
Result<bool> runNvcc(const std::string &nvcc,
                     const std::vector<std::string> &args,
                     const std::string &log) {
  std::vector<llvm::StringRef> argv{nvcc};
  argv.insert(argv.end(), args.begin(), args.end());
  std::optional<llvm::StringRef> redirects[] = {llvm::StringRef(""),
                                                llvm::StringRef(log),
                                                llvm::StringRef(log)};
  std::string why;
  int rc = llvm::sys::ExecuteAndWait(nvcc, argv, std::nullopt, redirects, 0, 0,
                                     &why);
  if (rc == 0)
    return true;
  std::string text;
  if (auto out = llvm::MemoryBuffer::getFile(log))
    text = (*out)->getBuffer().take_front(2000).str();
  return Error{"nvcc (" + nvcc + ") failed" +
               (why.empty() ? " with exit code " + std::to_string(rc)
                            : ": " + why) +
               (text.empty() ? std::string() : ":\n" + text)};
}

// `nvcc --version`, once per process (part of the key: a new toolkit is a
// new entry).
Result<std::string> nvccVersion(const std::string &nvcc) {
  static std::mutex mutex;
  static std::string cachedFor, cached;
  std::lock_guard<std::mutex> lock(mutex);
  if (cachedFor == nvcc)
    return cached;
  llvm::SmallString<128> log;
  if (llvm::sys::fs::createTemporaryFile("einstruct-nvcc", "txt", log))
    return Error{"cannot create a temporary file for nvcc --version"};
  auto ok = runNvcc(nvcc, {"--version"}, std::string(log));
  std::string text;
  if (auto out = llvm::MemoryBuffer::getFile(log))
    text = (*out)->getBuffer().str();
  llvm::sys::fs::remove(log);
  if (!ok)
    return Error{ok.error()};
  cachedFor = nvcc;
  cached = text;
  return text;
}

std::string cacheKey(const CudaSources &src, const std::string &name,
                     const std::vector<std::string> &flags,
                     const std::string &version) {
  std::vector<llvm::StringRef> parts{kFormat, version, name};
  parts.insert(parts.end(), flags.begin(), flags.end());
  parts.insert(parts.end(), {src.header, src.source, kGlueSource});
  return objectcache::hashParts(parts);
}

Result<bool> writeFile(const std::string &path, const std::string &text) {
  std::error_code ec;
  llvm::raw_fd_ostream out(path, ec);
  if (!ec) {
    out << text;
    out.close();
    if (!out.has_error())
      return true;
    out.clear_error();
  }
  return Error{"cannot write " + path};
}

} // namespace

Result<std::string> findNvcc() {
  if (const char *env = std::getenv("EINSTRUCT_NVCC"); env && *env) {
    if (!llvm::sys::fs::can_execute(env))
      return Error{std::string("EINSTRUCT_NVCC: '") + env +
                   "' is not an executable file"};
    return std::string(env);
  }
  if (auto onPath = llvm::sys::findProgramByName("nvcc"))
    return *onPath;
  if (llvm::sys::fs::can_execute("/usr/local/cuda/bin/nvcc"))
    return std::string("/usr/local/cuda/bin/nvcc");
  return Error{"no CUDA compiler: nvcc is not on PATH nor at "
               "/usr/local/cuda/bin/nvcc (set EINSTRUCT_NVCC)"};
}

Result<BuiltLibrary> buildCudaLibrary(const CudaSources &src,
                                      const std::string &name,
                                      const std::string &arch, bool cublas) {
  if (arch.rfind("sm_", 0) != 0 || arch.size() < 5)
    return Error{"arch: '" + arch + "' is not an sm_XY name"};
  auto nvcc = findNvcc();
  if (!nvcc)
    return Error{nvcc.error()};
  auto version = nvccVersion(*nvcc);
  if (!version)
    return Error{version.error()};
  auto args = nvccFlags(*nvcc, arch, cublas);
  const std::string key = cacheKey(src, name, args, *version);

  BuiltLibrary lib;
  auto cache = objectcache::directory();
  std::string root;
  if (cache) {
    root = *cache + "/cuda";
    lib.path = root + "/" + key + ".so";
    // A regular file is the library; anything else there (a FIFO, a link,
    // an empty directory) is removed and the library built anew.
    llvm::sys::fs::file_status st;
    if (!llvm::sys::fs::status(lib.path, st, /*follow=*/false)) {
      if (st.type() == llvm::sys::fs::file_type::regular_file) {
        lib.fromCache = true;
        return lib;
      }
      llvm::sys::fs::remove(lib.path);
    }
    if (auto ec = llvm::sys::fs::create_directories(root))
      return Error{"cannot create the cache directory " + root + ": " +
                   ec.message() + " (EINSTRUCT_CACHE_DIR=off builds in /tmp)"};
  }
  // Build in a directory of its own: beside the entry (one file system, so
  // the rename is atomic), or in /tmp with the cache off.
  llvm::SmallString<256> dir;
  std::error_code ec =
      cache ? llvm::sys::fs::createUniqueDirectory(root + "/build-" + key.substr(0, 16), dir)
            : llvm::sys::fs::createUniqueDirectory("einstruct-cuda", dir);
  if (ec)
    return Error{"cannot create a build directory: " + ec.message()};
  const std::string d(dir);
  auto cleanup = [&] { llvm::sys::fs::remove_directories(d); };
  auto wrote = writeFile(d + "/" + name + ".h", src.header);
  if (wrote)
    wrote = writeFile(d + "/" + name + ".cu", src.source + "\n" + kGlueSource);
  if (!wrote) {
    cleanup();
    return Error{wrote.error()};
  }
  const std::string out = d + "/" + name + ".so";
  args.insert(args.end(), {d + "/" + name + ".cu", "-o", out});
  auto built = runNvcc(*nvcc, args, d + "/nvcc.log");
  if (!built) {
    cleanup();
    return Error{built.error()};
  }
  if (!cache) {
    lib.path = out;
    lib.temporary = true;
    lib.dir = d;
    return lib;
  }
  ec = llvm::sys::fs::rename(out, lib.path);
  cleanup();
  if (ec)
    return Error{"cannot store " + lib.path + ": " + ec.message()};
  return lib;
}

void forgetCudaLibrary(const BuiltLibrary &lib) {
  if (lib.temporary)
    llvm::sys::fs::remove_directories(lib.dir);
  else
    llvm::sys::fs::remove(lib.path);
}

} // namespace einstruct
