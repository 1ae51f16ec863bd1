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
  {
    std::lock_guard lk(mu_);
    if (closed_) return;
    closed_ = out.finished;
    queue_.push_back(std::move(out));
  }
  cv_.notify_all();
}

}  // namespace ferrum
