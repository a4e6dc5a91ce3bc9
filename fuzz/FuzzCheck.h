// Shared by the fuzz targets: the input as text, and invariant checks that
// abort (so libFuzzer saves the input) with a message naming the invariant.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,          \
                   __LINE__, #cond);                                           \
      std::abort();                                                            \
    }                                                                          \
  } while (0)

inline std::string fuzzText(const uint8_t *data, size_t size) {
  return std::string(reinterpret_cast<const char *>(data), size);
}

// Splits at the first newline: two fields from one input.
inline std::pair<std::string, std::string> fuzzSplit(const std::string &s) {
  size_t nl = s.find('\n');
  if (nl == std::string::npos)
    return {s, ""};
  return {s.substr(0, nl), s.substr(nl + 1)};
}

// Bitwise equality (NaNs included) of two float arrays.
inline bool sameBits(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
}

// d_in, d_out from the first four bytes of `dims` (any size up to 65535, 0
// included), else the defaults.
inline std::pair<int64_t, int64_t> fuzzDims(const std::string &dims,
                                            int64_t dIn, int64_t dOut) {
  if (dims.size() < 4)
    return {dIn, dOut};
  return {(uint8_t)dims[0] | (uint8_t)dims[1] << 8,
          (uint8_t)dims[2] | (uint8_t)dims[3] << 8};
}
