// How deep brackets nest in MLIR text, measured before the text is parsed:
// MLIR's parser recurses once per level of an attribute, a type or a
// region, so input nested tens of thousands deep (an attribute 100k deep,
// 20k nested `module {`) would overflow the stack.
#pragma once
#include <cstddef>
#include <optional>
#include <string_view>

namespace einstruct {

// Deeper than any IR einstruct writes or reads by far.
constexpr int kMaxTextNesting = 512;

struct TextPosition {
  size_t line = 1, column = 1;
};

// Where ( [ { or < first opens level kMaxTextNesting + 1, if it does.
// Strings and // comments are skipped; '>' of "->" closes nothing.
inline std::optional<TextPosition> tooDeeplyNested(std::string_view text) {
  int depth = 0;
  TextPosition at;
  bool inString = false, inComment = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') {
      ++at.line, at.column = 1, inComment = false;
      continue;
    }
    ++at.column;
    if (inComment)
      continue;
    if (inString) {
      if (c == '\\')
        ++i, ++at.column;
      else if (c == '"')
        inString = false;
      continue;
    }
    if (c == '"')
      inString = true;
    else if (c == '/' && i + 1 < text.size() && text[i + 1] == '/')
      inComment = true;
    else if (c == '(' || c == '[' || c == '{' || c == '<') {
      if (++depth > kMaxTextNesting) {
        --at.column; // the bracket's own column
        return at;
      }
    } else if ((c == ')' || c == ']' || c == '}' ||
                (c == '>' && (i == 0 || text[i - 1] != '-'))) &&
               depth > 0)
      --depth;
  }
  return std::nullopt;
}

} // namespace einstruct
