// The threads that run a call's batch chunks. They live for the process:
// starting threads per call costs tens of µs, and a thread that lives on
// keeps reusing the buffers it freed (the buffer pool prefers those), whose
// lines are still in its core's cache.
#pragma once
#include "search/Result.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace einstruct::workers {

// Runs task(0) .. task(count - 1) at once, task(0) on the calling thread,
// the others on pool threads (started as needed); returns when all are done.
// Any thread may call it; tasks of concurrent calls share the threads.
void run(size_t count, const std::function<void(size_t)> &task);

// Rows [start, start + rows) of a batch.
struct Chunk {
  int64_t start, rows;
};
// Rows a chunk takes at least: one fused batch tile (24 rows), and enough
// multiply-adds (~32M, ~0.2 ms) that starting a thread (tens of µs) is noise.
int64_t minRowsPerChunk(int64_t macsPerRow);
// Threads a compiled layer or mixer uses unless told: EINSTRUCT_NUM_THREADS,
// else the hardware's.
int defaultThreads();
// `batch` rows in up to `threads` equal chunks of at least `minRows` rows.
std::vector<Chunk> chunks(int64_t batch, int threads, int64_t minRows);

// Runs task(c) for c < count at once; the first error by c.
template <class F> Result<bool> runAll(size_t count, F &&task) {
  std::vector<std::string> errors(count);
  run(count, [&](size_t c) {
    auto r = task(c);
    if (!r)
      errors[c] = r.error();
  });
  for (auto &e : errors)
    if (!e.empty())
      return Error{e};
  return true;
}

} // namespace einstruct::workers
