#include "JsonFile.h"

#include <algorithm>
#include <fmt/format.h>
#include <sys/stat.h>
#include <fstream>
#include <sstream>

namespace einstruct {

namespace {

// The size of `path` if it is a regular file, else why not.
Result<uint64_t> regularFileSize(const std::string &path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return Error{fmt::format("{}: cannot open the file", path)};
  if (!S_ISREG(st.st_mode))
    return Error{fmt::format("{}: not a regular file ({}); give a file",
                             path,
                             S_ISDIR(st.st_mode)    ? "a directory"
                             : S_ISFIFO(st.st_mode) ? "a FIFO"
                                                    : "a device or socket")};
  return uint64_t(st.st_size);
}

} // namespace

Result<std::string> readTextFile(const std::string &path, size_t maxBytes) {
  auto size = regularFileSize(path);
  if (!size)
    return Error{size.error()};
  if (*size > maxBytes)
    return Error{fmt::format("{}: {} bytes, more than the {} MiB such a file "
                             "may hold",
                             path, *size, maxBytes >> 20)};
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Error{fmt::format("{}: cannot open the file", path)};
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad())
    return Error{fmt::format("{}: read failed", path)};
  return ss.str();
}

Result<FileHead> readFileHead(const std::string &path, size_t count) {
  auto size = regularFileSize(path);
  if (!size)
    return Error{size.error()};
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Error{fmt::format("{}: cannot open the file", path)};
  FileHead h;
  h.size = *size;
  h.bytes.resize(size_t(std::min<uint64_t>(count, *size)));
  in.read(h.bytes.data(), std::streamsize(h.bytes.size()));
  if (!in)
    return Error{fmt::format("{}: read failed", path)};
  return h;
}

std::optional<size_t> jsonTooDeep(const std::string &text) {
  int depth = 0;
  bool inString = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (inString) {
      if (c == '\\')
        ++i; // the escaped character
      else if (c == '"')
        inString = false;
    } else if (c == '"') {
      inString = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        return i;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return std::nullopt;
}

Result<nlohmann::json> parseJson(const std::string &text,
                                 const std::string &source) {
  if (auto at = jsonTooDeep(text))
    return Error{fmt::format("{}: invalid JSON at byte {}: nested deeper than "
                             "{} levels",
                             source, *at + 1, kMaxJsonDepth)};
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error &e) {
    return Error{fmt::format("{}: invalid JSON at byte {}: {}", source, e.byte,
                             e.what())};
  } catch (const nlohmann::json::exception &e) {
    // e.g. a number beyond double's range (found by fuzz_sweep_config).
    return Error{fmt::format("{}: invalid JSON: {}", source, e.what())};
  }
}

} // namespace einstruct
