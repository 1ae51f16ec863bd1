// Runs each generation request on its own thread. The engine's RequestStream::next() blocks,
// so a thread waits on it and hands results to the connection (whose writer never blocks);
// the I/O threads never wait. Threads get small stacks, and their number is capped.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>

namespace ferrum::server {

class JobRunner {
 public:
  explicit JobRunner(size_t max_jobs, size_t stack_bytes = 1u << 20)
      : max_jobs_(max_jobs), stack_bytes_(stack_bytes) {}
  ~JobRunner() { wait_idle(); }

  // Starts job on a new thread; false (and nothing started) when max_jobs are running.
  // Exceptions escaping job are logged, never rethrown.
  bool try_start(std::function<void()> job);
  size_t running() const;
  // Waits until no job runs; false on timeout (timeout_ms < 0: forever).
  bool wait_idle(long timeout_ms = -1);

 private:
  void job_done();
  size_t max_jobs_, stack_bytes_;
  mutable std::mutex mutex_;
  std::condition_variable idle_;
  size_t running_ = 0;
};

}  // namespace ferrum::server
