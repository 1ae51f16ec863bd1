#include "engine/request_channel.h"

namespace ferrum {

std::optional<RequestOutput> RequestChannel::next() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return !queue_.empty() || closed_; });
  if (queue_.empty()) return std::nullopt;
  RequestOutput out = std::move(queue_.front());
  queue_.pop_front();
  return out;
}

std::optional<RequestOutput> RequestChannel::try_next() {
  std::lock_guard lk(mu_);
  if (queue_.empty()) return std::nullopt;
  RequestOutput out = std::move(queue_.front());
  queue_.pop_front();
  return out;
}

bool RequestChannel::done() const {
  std::lock_guard lk(mu_);
  return closed_ && queue_.empty();
}

void RequestChannel::set_on_ready(std::function<void()> cb) {
  std::shared_ptr<std::function<void()>> call;
  {
    std::lock_guard lk(mu_);
    on_ready_ = cb ? std::make_shared<std::function<void()>>(std::move(cb)) : nullptr;
    if (!queue_.empty()) call = on_ready_;
  }
  if (call) (*call)();
}

void RequestChannel::abort() {
  auto inbox = inbox_.lock();
  if (!inbox) return;  // the engine is gone: nothing left to free
  {
    std::lock_guard lk(inbox->mu);
    inbox->aborts.push_back(id_);
  }
  inbox->cv.notify_one();
}

void RequestChannel::push(RequestOutput out) {
  std::shared_ptr<std::function<void()>> call;
  {
    std::lock_guard lk(mu_);
    if (closed_) return;
    closed_ = out.finished;
    queue_.push_back(std::move(out));
    call = on_ready_;
  }
  cv_.notify_all();
  if (call) (*call)();
}

}  // namespace ferrum
