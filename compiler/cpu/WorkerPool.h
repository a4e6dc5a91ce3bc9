// The threads that run a call's batch chunks. They live for the process:
// starting threads per call costs tens of µs, and a thread that lives on
// keeps reusing the buffers it freed (the buffer pool prefers those), whose
// lines are still in its core's cache.
#pragma once
#include <cstddef>
#include <functional>

namespace einstruct::workers {

// Runs task(0) .. task(count - 1) at once, task(0) on the calling thread,
// the others on pool threads (started as needed); returns when all are done.
// Any thread may call it; tasks of concurrent calls share the threads.
void run(size_t count, const std::function<void(size_t)> &task);

} // namespace einstruct::workers
