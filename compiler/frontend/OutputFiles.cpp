#include "OutputFiles.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace einstruct {
namespace {

// Writes all of `bytes` to `fd`; false on any error (errno set).
bool writeAll(int fd, const std::string &bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    done += size_t(n);
  }
  return true;
}

// Creates `path` (new or truncated), writes `bytes` and flushes them to the
// file system; false with errno on failure.
bool writeFile(const std::string &path, const std::string &bytes, int flags) {
  const int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0)
    return false;
  bool ok = writeAll(fd, bytes);
  const int saved = errno;
  ok = ::close(fd) == 0 && ok;
  if (!ok && saved)
    errno = saved;
  return ok;
}

std::string why(const std::string &path, const char *what) {
  return path + ": cannot " + what + " the output (" + std::strerror(errno) +
         ")";
}

} // namespace

void OutputFiles::add(std::string path, std::string bytes) {
  files_.emplace_back(std::move(path), std::move(bytes));
}

Result<bool> OutputFiles::commit() {
  // Sort the targets: standard output, existing special files, regular
  // files (through a temporary file each).
  std::vector<size_t> special, regular;
  for (size_t i = 0; i < files_.size(); ++i) {
    const std::string &path = files_[i].first;
    if (path.empty() || path == "-") {
      special.push_back(i);
      continue;
    }
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      if (S_ISDIR(st.st_mode))
        return Error{path + ": is a directory, not an output file"};
      special.push_back(i);
    } else {
      regular.push_back(i);
    }
  }
  std::vector<std::string> temps;
  auto abandon = [&](Error e) {
    for (const auto &t : temps)
      std::remove(t.c_str());
    return e;
  };
  for (size_t i : regular) {
    const std::string tmp = files_[i].first + ".tmp." + std::to_string(::getpid());
    temps.push_back(tmp);
    if (!writeFile(tmp, files_[i].second, O_WRONLY | O_CREAT | O_TRUNC))
      return abandon(Error{why(files_[i].first, "write")});
  }
  for (size_t i : special) {
    const std::string &path = files_[i].first;
    const bool ok =
        path.empty() || path == "-"
            ? std::fwrite(files_[i].second.data(), 1, files_[i].second.size(),
                          stdout) == files_[i].second.size() &&
                  std::fflush(stdout) == 0
            : writeFile(path, files_[i].second, O_WRONLY);
    if (!ok)
      return abandon(Error{why(path.empty() ? "-" : path, "write")});
  }
  for (size_t k = 0; k < regular.size(); ++k)
    if (std::rename(temps[k].c_str(), files_[regular[k]].first.c_str()) != 0)
      return abandon(Error{why(files_[regular[k]].first, "rename into")});
  files_.clear();
  return true;
}

} // namespace einstruct
