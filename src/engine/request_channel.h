// The two queues between the engine thread and its callers: the inbox (new requests and
// aborts, one per engine) and a channel per request (its outputs, read by RequestStream::next or try_next).
#pragma once
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/engine.h"
#include "engine/sequence.h"

namespace ferrum {

struct Request {
  uint64_t id = 0;
  SamplingParams params;
  int32_t prompt_len = 0;
  std::vector<std::unique_ptr<Sequence>> seqs;  // the n completions
  std::shared_ptr<class RequestChannel> channel;
  int32_t num_finished = 0;
  int32_t cached_tokens = -1;  // -1 until the first completion is first scheduled
  uint64_t touched_step = 0;   // the engine's emit round in which it last got output
};

struct Inbox {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<Request>> incoming;
  std::vector<uint64_t> aborts;
  bool stop = false;
};

class RequestChannel : public RequestStream {
 public:
  RequestChannel(uint64_t id, std::weak_ptr<Inbox> inbox) : id_(id), inbox_(std::move(inbox)) {}

  std::optional<RequestOutput> next() override;
  std::optional<RequestOutput> try_next() override;
  bool done() const override;
  void set_on_ready(std::function<void()> cb) override;
  void abort() override;
  uint64_t id() const override { return id_; }

  // Engine side.
  void push(RequestOutput out);  // closes the channel when out.finished

 private:
  const uint64_t id_;
  std::weak_ptr<Inbox> inbox_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<std::function<void()>> on_ready_;  // shared: push calls a copy outside the lock
  std::deque<RequestOutput> queue_;
  bool closed_ = false;
};

}  // namespace ferrum
