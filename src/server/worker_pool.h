// A fixed set of threads running short tasks for the HTTP routes: parsing, tokenizing, chat
// templates and turning engine outputs into response bytes. No task may block for long (a
// generation is a chain of tasks posted as its outputs arrive), so a few threads serve any
// number of concurrent requests.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace ferrum::server {

class WorkerPool {
 public:
  explicit WorkerPool(size_t threads);
  ~WorkerPool();  // runs what is queued, then joins
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues task; exceptions escaping it are logged, never rethrown.
  void post(std::function<void()> task);

 private:
  void loop();
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// Counts requests from acceptance until their response ends, up to a cap; a slot is held as a
// shared_ptr that gives it back when the last copy goes.
class RequestSlots {
 public:
  explicit RequestSlots(size_t max) : max_(max) {}
  std::shared_ptr<void> try_acquire();  // null when max are taken
  size_t in_use() const;
  bool wait_idle(long timeout_ms = -1);  // false on timeout (< 0: forever)

 private:
  void release();
  size_t max_;
  mutable std::mutex mutex_;
  std::condition_variable idle_;
  size_t in_use_ = 0;
};

}  // namespace ferrum::server
