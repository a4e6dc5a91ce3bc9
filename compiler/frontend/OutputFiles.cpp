#include "OutputFiles.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <dirent.h>
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

// The directory part of `path` ("." for a bare name) and the file name.
std::pair<std::string, std::string> splitPath(const std::string &path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos)
    return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

// A temporary file untouched this long, of a process that is gone, is stale.
constexpr time_t kStaleTempSeconds = 600;

// Removes NAME.tmp.PID[.N] files beside `path` whose process is gone and
// that are older than kStaleTempSeconds: what a SIGKILLed writer without
// O_TMPFILE left behind.
void removeStaleTemps(const std::string &path) {
  const auto [dir, name] = splitPath(path);
  const std::string prefix = name + ".tmp.";
  DIR *d = ::opendir(dir.c_str());
  if (!d)
    return;
  while (const dirent *e = ::readdir(d)) {
    const std::string entry = e->d_name;
    if (entry.size() <= prefix.size() || entry.compare(0, prefix.size(), prefix))
      continue;
    // PID, then .N where one process writes several (threads).
    const std::string tail = entry.substr(prefix.size());
    const std::string pid = tail.substr(0, tail.find('.'));
    const std::string n = tail.substr(pid.size());
    if (pid.empty() || pid.size() > 9 ||
        pid.find_first_not_of("0123456789") != std::string::npos ||
        (!n.empty() && (n.size() < 2 || n.find_first_not_of(
                                            "0123456789", 1) != std::string::npos)))
      continue;
    // Only old ones: on a shared file system (where O_TMPFILE is often
    // missing) the PID may be another host's live writer.
    const std::string file = dir + "/" + entry;
    struct stat st;
    if (::kill(std::stoi(pid), 0) != 0 && errno == ESRCH &&
        ::lstat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::time(nullptr) - st.st_mtime > kStaleTempSeconds)
      ::unlink(file.c_str());
  }
  ::closedir(d);
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
  // Each regular target is written first to an unnamed file in its
  // directory (O_TMPFILE: nothing is left behind if the process dies), or
  // where the file system lacks that, to NAME.tmp.PID.
  struct Temp {
    std::string name;
    int fd = -1;
  };
  std::vector<Temp> temps;
  auto abandon = [&](Error e) {
    for (auto &t : temps) {
      if (t.fd >= 0)
        ::close(t.fd);
      else
        std::remove(t.name.c_str());
    }
    return e;
  };
  for (size_t i : regular) {
    const auto &[path, bytes] = files_[i];
    removeStaleTemps(path);
    static std::atomic<unsigned> counter{0};
    temps.push_back({path + ".tmp." + std::to_string(::getpid()) + "." +
                         std::to_string(counter++),
                     ::open(splitPath(path).first.c_str(),
                            O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644)});
    const Temp &t = temps.back();
    if (t.fd >= 0 ? !writeAll(t.fd, bytes)
                  : !writeFile(t.name, bytes, O_WRONLY | O_CREAT | O_TRUNC))
      return abandon(Error{why(path, "write")});
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
  for (size_t k = 0; k < regular.size(); ++k) {
    const auto &[path, bytes] = files_[regular[k]];
    Temp &t = temps[k];
    if (t.fd >= 0) {
      // Named only now, just before the rename; without /proc, written again.
      const std::string self = "/proc/self/fd/" + std::to_string(t.fd);
      bool named = ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, t.name.c_str(),
                            AT_SYMLINK_FOLLOW) == 0;
      ::close(t.fd);
      t.fd = -1;
      if (!named && !writeFile(t.name, bytes, O_WRONLY | O_CREAT | O_TRUNC))
        return abandon(Error{why(path, "write")});
    }
    if (std::rename(t.name.c_str(), path.c_str()) != 0)
      return abandon(Error{why(path, "rename into")});
  }
  files_.clear();
  return true;
}

} // namespace einstruct
