#include "JsonFile.h"

#include <fmt/format.h>
#include <fstream>
#include <sstream>

namespace einstruct {

Result<std::string> readTextFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Error{fmt::format("{}: cannot open the file", path)};
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad())
    return Error{fmt::format("{}: read failed", path)};
  return ss.str();
}

Result<nlohmann::json> parseJson(const std::string &text,
                                 const std::string &source) {
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
