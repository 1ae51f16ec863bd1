#include "server/job_runner.h"

#include <pthread.h>

#include <chrono>
#include <memory>

#include "core/log.h"

namespace ferrum::server {

namespace {
struct Launch {
  std::function<void()> job;
  JobRunner* runner;
  std::function<void()> done;
};

void* thread_main(void* arg) {
  std::unique_ptr<Launch> launch(static_cast<Launch*>(arg));
  try {
    launch->job();
  } catch (const std::exception& e) {
    log::error("request job failed: {}", e.what());
  } catch (...) {
    log::error("request job failed with an unknown exception");
  }
  launch->job = nullptr;  // release captures before signalling completion
  launch->done();
  return nullptr;
}
}  // namespace

bool JobRunner::try_start(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    if (running_ >= max_jobs_) return false;
    ++running_;
  }
  auto* launch = new Launch{std::move(job), this, [this] { job_done(); }};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, stack_bytes_);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t tid;
  int rc = pthread_create(&tid, &attr, thread_main, launch);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    log::warn("cannot start a request thread (error {})", rc);
    delete launch;
    job_done();
    return false;
  }
  return true;
}

void JobRunner::job_done() {
  std::lock_guard lock(mutex_);
  if (--running_ == 0) idle_.notify_all();
}

size_t JobRunner::running() const {
  std::lock_guard lock(mutex_);
  return running_;
}

bool JobRunner::wait_idle(long timeout_ms) {
  std::unique_lock lock(mutex_);
  if (timeout_ms < 0) {
    idle_.wait(lock, [this] { return running_ == 0; });
    return true;
  }
  return idle_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return running_ == 0; });
}

}  // namespace ferrum::server
