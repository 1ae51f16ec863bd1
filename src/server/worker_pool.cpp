#include "server/worker_pool.h"

#include <chrono>
#include <memory>

#include "core/log.h"

namespace ferrum::server {

WorkerPool::WorkerPool(size_t threads) {
  for (size_t i = 0; i < std::max<size_t>(threads, 1); ++i) threads_.emplace_back([this] { loop(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkerPool::post(std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void WorkerPool::loop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      task();
    } catch (const std::exception& e) {
      log::error("request task failed: {}", e.what());
    } catch (...) {
      log::error("request task failed with an unknown exception");
    }
  }
}

std::shared_ptr<void> RequestSlots::try_acquire() {
  {
    std::lock_guard lock(mutex_);
    if (in_use_ >= max_) return nullptr;
    ++in_use_;
  }
  return std::shared_ptr<void>(this, [](RequestSlots* self) { self->release(); });
}

void RequestSlots::release() {
  std::lock_guard lock(mutex_);
  if (--in_use_ == 0) idle_.notify_all();
}

size_t RequestSlots::in_use() const {
  std::lock_guard lock(mutex_);
  return in_use_;
}

bool RequestSlots::wait_idle(long timeout_ms) {
  std::unique_lock lock(mutex_);
  if (timeout_ms < 0) {
    idle_.wait(lock, [this] { return in_use_ == 0; });
    return true;
  }
  return idle_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return in_use_ == 0; });
}

}  // namespace ferrum::server
