// A fixed pool of worker threads for data-parallel kernels. parallel_for cuts [0, n) into a few
// chunks per thread; the caller and every awake worker take chunks from a shared counter until
// none are left, so a worker that is slow to wake (or descheduled on a busy machine) never
// holds the caller up: the caller simply does more of the chunks itself.
// Workers spin for a short while between jobs before sleeping: a decode step issues hundreds
// of small jobs, and waking a sleeping thread costs more than many of them take.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ferrum {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);  // <= 0: hardware concurrency
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // fn(begin, end) over chunks of [0, n); chunks are multiples of `grain` (except the last).
  // One caller at a time.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  static constexpr int64_t kClosed = int64_t{1} << 60;
  void worker_loop();
  void run_chunks();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_cv_;
  // The job: written by the caller before next_chunk_ is reset (release); read by whoever
  // claims a chunk (acquire).
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0, job_chunk_ = 0, job_chunks_ = 0;
  std::atomic<int64_t> next_chunk_{kClosed};
  std::atomic<int64_t> done_chunks_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<int> active_{0};  // workers inside run_chunks
  std::atomic<bool> stop_{false};
};

}  // namespace ferrum
