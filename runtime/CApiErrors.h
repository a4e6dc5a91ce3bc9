// What every C ABI entry point shares: the calling thread's last error
// (einstruct_last_error) and the statuses that set it.
#pragma once
#include "runtime/einstruct.h"
#include "search/Result.h"

#include <string>

namespace einstruct::capi {

extern thread_local std::string lastError;

// Records `message` as the thread's last error; returns `status`.
inline int failWith(int status, std::string message) {
  lastError = std::move(message);
  return status;
}

// A call's result as a status; the error is the call's.
inline int statusOf(const Result<bool> &r) {
  return r ? EINSTRUCT_OK : failWith(EINSTRUCT_ERR_ARGUMENT, r.error());
}

} // namespace einstruct::capi
