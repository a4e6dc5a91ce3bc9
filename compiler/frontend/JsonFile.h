// Reading input files and parsing JSON with errors that name the source and,
// for syntax errors, the byte offset.
#pragma once
#include "search/Result.h"

#include <nlohmann/json.hpp>
#include <optional>

namespace einstruct {

// Spec, model and sweep files (and their results) are at most this large.
constexpr size_t kMaxTextFileBytes = size_t(256) << 20;

// The bytes of a regular file, checked before anything is read: a FIFO, a
// device or a directory is refused (reading one could block forever or
// never end), and so is a file of more than `maxBytes`.
Result<std::string> readTextFile(const std::string &path,
                                 size_t maxBytes = kMaxTextFileBytes);

// The first `count` bytes of a regular file (fewer when it is shorter) and
// its size: to check a format's magic and header before reading the rest.
struct FileHead {
  std::string bytes;
  uint64_t size = 0;
};
Result<FileHead> readFileHead(const std::string &path, size_t count);

// JSON nested deeper than this is refused before it is parsed: the parser
// and everything that walks or prints a value recurse once per level.
constexpr int kMaxJsonDepth = 128;

// The byte offset where `text` (JSON) opens level kMaxJsonDepth + 1, if it
// does (brackets inside strings do not count).
std::optional<size_t> jsonTooDeep(const std::string &text);

// Parses JSON; errors name `source` and the byte offset.
Result<nlohmann::json> parseJson(const std::string &text,
                                 const std::string &source);

} // namespace einstruct
