// What every C ABI entry point shares: the calling thread's last error
// (einstruct_last_error) and the statuses that set it.
#pragma once
#include "runtime/einstruct.h"
#include "search/Checked.h"
#include "search/Result.h"

#include <fmt/format.h>
#include <string>

namespace einstruct::capi {

extern thread_local std::string lastError;

// Records `message` as the thread's last error; returns `status`.
inline int failWith(int status, std::string message) {
  lastError = std::move(message);
  return status;
}

// A call's result as a status; the error is the call's.
template <class T> int statusOf(const Result<T> &r) {
  return r ? EINSTRUCT_OK : failWith(EINSTRUCT_ERR_ARGUMENT, r.error());
}

// batch >= 1, and batch `unit`s ("rows", "sequences") of `width` elements
// each within the 2^40 elements an array may hold: checked before anything
// is touched (2^60 rows would wrap the sizes).
inline int checkBatch(int64_t batch, int64_t width, const char *unit) {
  if (batch < 1)
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    fmt::format("batch = {} must be positive", batch));
  auto elements = checkedMul(batch, width);
  if (!elements || *elements > kMaxDim)
    return failWith(EINSTRUCT_ERR_ARGUMENT,
                    fmt::format("batch = {} {} of {} elements exceeds the "
                                "2^40 elements an array may hold",
                                batch, unit, width));
  return EINSTRUCT_OK;
}

} // namespace einstruct::capi
