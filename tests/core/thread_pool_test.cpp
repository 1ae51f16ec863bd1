// ThreadPool: every index of every job is run exactly once, across many back-to-back jobs of
// different sizes and grains (the pattern of a decode step), with 1 to 4 threads.
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "core/thread_pool.h"

namespace ferrum {
namespace {

TEST(ThreadPool, EveryIndexRunsExactlyOnceAcrossManyJobs) {
  for (int threads : {1, 2, 3, 4}) {
    ThreadPool pool(threads);
    std::vector<std::atomic<int>> hits(5000);
    for (int job = 0; job < 2000; ++job) {
      const int64_t n = 1 + (job * 37) % 4999;
      const int64_t grain = 1 + job % 17;
      for (int64_t i = 0; i < n; ++i) hits[i] = 0;
      pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
        ASSERT_LE(0, b);
        ASSERT_LE(e, n);
        for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1, std::memory_order_relaxed);
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "threads " << threads << " job " << job << " i " << i;
    }
  }
}

TEST(ThreadPool, WorkersSleepAndWakeBetweenBursts) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  for (int burst = 0; burst < 3; ++burst) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // past the spin window
    pool.parallel_for(1000, 1, [&](int64_t b, int64_t e) { sum += e - b; });
  }
  EXPECT_EQ(sum.load(), 3000);
}

}  // namespace
}  // namespace ferrum
