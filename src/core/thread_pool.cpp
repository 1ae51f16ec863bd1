#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define FERRUM_PAUSE() _mm_pause()
#else
#define FERRUM_PAUSE() std::this_thread::yield()
#endif

namespace ferrum {
namespace {
constexpr auto kSpin = std::chrono::microseconds(2000);  // spin this long before sleeping
}

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_ = true;
  {
    std::lock_guard lock(mutex_);
  }
  wake_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t threads = size();
  int64_t chunk = (n + threads - 1) / threads;
  chunk = (chunk + grain - 1) / grain * grain;
  if (workers_.empty() || chunk >= n) {
    fn(0, n);
    return;
  }
  job_ = &fn;
  job_n_ = n;
  job_chunk_ = chunk;
  pending_.store(static_cast<int>(workers_.size()));
  generation_.fetch_add(1);  // publishes the job (seq_cst)
  if (sleepers_.load() > 0) {
    std::lock_guard lock(mutex_);  // a worker between its check and its wait holds this
    wake_cv_.notify_all();
  }
  fn(0, std::min(n, chunk));  // the caller takes chunk 0
  while (pending_.load(std::memory_order_acquire) != 0) FERRUM_PAUSE();
  job_ = nullptr;
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    // Spin briefly for the next job, then sleep until one comes.
    auto spin_start = std::chrono::steady_clock::now();
    int spins = 0;
    while (generation_.load(std::memory_order_acquire) == seen && !stop_.load(std::memory_order_relaxed)) {
      FERRUM_PAUSE();
      if (++spins % 256 == 0 && std::chrono::steady_clock::now() - spin_start > kSpin) {
        std::unique_lock lock(mutex_);
        sleepers_.fetch_add(1);
        wake_cv_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
        sleepers_.fetch_sub(1);
      }
    }
    if (stop_) return;
    seen = generation_.load(std::memory_order_acquire);
    const int64_t begin = std::min(job_n_, job_chunk_ * index);
    const int64_t end = std::min(job_n_, begin + job_chunk_);
    if (begin < end) (*job_)(begin, end);
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace ferrum
