// Reading input files and parsing JSON with errors that name the source and,
// for syntax errors, the byte offset.
#pragma once
#include "search/Result.h"

#include <nlohmann/json.hpp>

namespace einstruct {

Result<std::string> readTextFile(const std::string &path);

Result<nlohmann::json> parseJson(const std::string &text,
                                 const std::string &source);

} // namespace einstruct
