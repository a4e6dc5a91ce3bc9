// Test helpers for code that reads the environment and writes files: an
// environment variable set for a scope, and a fresh per-process temp dir.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

namespace einstruct::testing {

// `name` set to `value` for the scope, restored after.
class ScopedEnv {
public:
  ScopedEnv(const char *name, const std::string &value) : name_(name) {
    if (const char *old = std::getenv(name))
      old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv &) = delete;
  ScopedEnv &operator=(const ScopedEnv &) = delete;

private:
  const char *name_;
  std::optional<std::string> old_;
};

// EINSTRUCT_CACHE_DIR for the scope.
struct CacheDir : ScopedEnv {
  explicit CacheDir(const std::string &value)
      : ScopedEnv("EINSTRUCT_CACHE_DIR", value) {}
};

// An empty (absent) temp path of this process for `name`.
inline std::filesystem::path freshDirectory(const char *name) {
  auto dir = std::filesystem::temp_directory_path() /
             (std::string("einstruct-") + name + "-" +
              std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir;
}

// The files directly in `dir` (none if it does not exist).
inline std::vector<std::filesystem::path>
entries(const std::filesystem::path &dir) {
  std::vector<std::filesystem::path> found;
  if (std::filesystem::exists(dir))
    for (auto &e : std::filesystem::directory_iterator(dir))
      found.push_back(e.path());
  return found;
}

} // namespace einstruct::testing
