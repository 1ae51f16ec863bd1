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
using Clock = std::chrono::steady_clock;
constexpr auto kSpinPause = std::chrono::microseconds(50);   // then yield to other processes
constexpr auto kSpinYield = std::chrono::microseconds(2000);  // then sleep
constexpr int64_t kChunksPerThread = 4;
}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  stop_ = true;
  {
    std::lock_guard lock(mutex_);
  }
  wake_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_chunks() {
  for (;;) {
    const int64_t c = next_chunk_.fetch_add(1, std::memory_order_acq_rel);
    // A closed counter says nothing about the job fields, which the caller may be rewriting:
    // test it before reading any of them.
    if (c >= kClosed || c >= job_chunks_) return;
    const int64_t begin = c * job_chunk_;
    (*job_)(begin, std::min(job_n_, begin + job_chunk_));
    done_chunks_.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t parts = static_cast<int64_t>(size()) * kChunksPerThread;
  int64_t chunk = (n + parts - 1) / parts;
  chunk = (chunk + grain - 1) / grain * grain;
  if (workers_.empty() || chunk >= n) {
    fn(0, n);
    return;
  }
  job_ = &fn;
  job_n_ = n;
  job_chunk_ = chunk;
  job_chunks_ = (n + chunk - 1) / chunk;
  done_chunks_.store(0, std::memory_order_relaxed);
  next_chunk_.store(0, std::memory_order_release);  // opens the job
  generation_.fetch_add(1);                          // wakes spinning workers (seq_cst)
  if (sleepers_.load() > 0) {
    std::lock_guard lock(mutex_);  // a worker between its check and its wait holds this
    wake_cv_.notify_all();
  }
  run_chunks();
  while (done_chunks_.load(std::memory_order_acquire) < job_chunks_) FERRUM_PAUSE();
  next_chunk_.store(kClosed, std::memory_order_seq_cst);
  // A worker may still be between claiming its last (empty) ticket and leaving run_chunks;
  // the next job's fields must not be written under it.
  while (active_.load(std::memory_order_seq_cst) != 0) FERRUM_PAUSE();
}

void ThreadPool::worker_loop() {
  uint64_t seen = generation_.load();
  for (;;) {
    const auto start = Clock::now();
    int spins = 0;
    while (generation_.load(std::memory_order_acquire) == seen && !stop_.load(std::memory_order_relaxed)) {
      if (++spins % 64 != 0) {
        FERRUM_PAUSE();
        continue;
      }
      const auto waited = Clock::now() - start;
      if (waited > kSpinYield) {
        std::unique_lock lock(mutex_);
        sleepers_.fetch_add(1);
        wake_cv_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
        sleepers_.fetch_sub(1);
      } else if (waited > kSpinPause) {
        std::this_thread::yield();
      }
    }
    if (stop_) return;
    seen = generation_.load(std::memory_order_acquire);
    active_.fetch_add(1, std::memory_order_seq_cst);
    run_chunks();
    active_.fetch_sub(1, std::memory_order_seq_cst);
  }
}

}  // namespace ferrum
