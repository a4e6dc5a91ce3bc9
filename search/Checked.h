// Overflow-checked 64-bit arithmetic: counts of parameters and FLOPs must never
// wrap around silently.
#pragma once
#include <cstdint>
#include <optional>

namespace einstruct {

inline std::optional<int64_t> checkedMul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r))
    return std::nullopt;
  return r;
}

inline std::optional<int64_t> checkedAdd(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    return std::nullopt;
  return r;
}

// ⌈a / b⌉ for a >= 0, b >= 1.
inline int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// v = v·10 + digit, refused (false, v unchanged) past `max` or 64 bits.
inline bool appendDigit(int64_t &v, char digit, int64_t max) {
  auto m = checkedMul(v, 10);
  auto a = m ? checkedAdd(*m, digit - '0') : std::nullopt;
  if (!a || *a > max)
    return false;
  v = *a;
  return true;
}

// Largest single dimension (d_in, d_out, one index size) accepted anywhere.
constexpr int64_t kMaxDim = int64_t(1) << 40;

} // namespace einstruct
