// A value or a one-line error message. The search library never throws, so
// MLIR code built with -fno-exceptions can call it directly.
#pragma once
#include <optional>
#include <string>
#include <utility>

namespace einstruct {

struct Error {
  std::string message;
};

template <class T> class Result {
public:
  Result(T value) : value_(std::move(value)) {}
  Result(Error error) : error_(std::move(error.message)) {}

  explicit operator bool() const { return value_.has_value(); }
  const T &operator*() const { return *value_; }
  T &operator*() { return *value_; }
  const T *operator->() const { return &*value_; }
  T *operator->() { return &*value_; }
  const std::string &error() const { return error_; }

private:
  std::optional<T> value_;
  std::string error_;
};

} // namespace einstruct
