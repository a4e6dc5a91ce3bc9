#include "WorkerPool.h"

#include <cstdlib>

#include <algorithm>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace einstruct::workers {
namespace {

struct Pool {
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<std::function<void()>> queue;
  size_t threads = 0;

  void work() {
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      ready.wait(lock, [&] { return !queue.empty(); });
      auto job = std::move(queue.front());
      queue.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }
};

Pool &pool() {
  // Never destroyed: its threads wait for work until the process exits.
  static Pool *p = new Pool();
  return *p;
}

} // namespace

void run(size_t count, const std::function<void(size_t)> &task) {
  if (count <= 1) {
    if (count == 1)
      task(0);
    return;
  }
  Pool &p = pool();
  std::mutex doneMutex;
  std::condition_variable doneCv;
  size_t remaining = count - 1;
  {
    std::lock_guard<std::mutex> lock(p.mutex);
    for (size_t i = 1; i < count; ++i)
      p.queue.emplace_back([&, i] {
        task(i);
        std::lock_guard<std::mutex> done(doneMutex);
        if (--remaining == 0)
          doneCv.notify_one();
      });
    // As many threads as the widest call so far asked for; concurrent
    // calls queue behind each other (a task never waits for another).
    for (; p.threads < count - 1; ++p.threads)
      std::thread([&p] { p.work(); }).detach();
  }
  p.ready.notify_all();
  task(0);
  std::unique_lock<std::mutex> lock(doneMutex);
  doneCv.wait(lock, [&] { return remaining == 0; });
}

int defaultThreads() {
  if (const char *env = std::getenv("EINSTRUCT_NUM_THREADS"))
    if (int n = std::atoi(env); n > 0)
      return n;
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

int64_t minRowsPerChunk(int64_t macsPerRow) {
  return std::max<int64_t>(24, (int64_t(32) << 20) /
                                   std::max<int64_t>(1, macsPerRow));
}

std::vector<Chunk> chunks(int64_t batch, int threads, int64_t minRows) {
  int64_t k = std::clamp<int64_t>(batch / std::max<int64_t>(1, minRows), 1,
                                  threads);
  int64_t per = (batch + k - 1) / k;
  std::vector<Chunk> out;
  for (int64_t s = 0; s < batch; s += per)
    out.push_back({s, std::min(per, batch - s)});
  return out;
}

} // namespace einstruct::workers
