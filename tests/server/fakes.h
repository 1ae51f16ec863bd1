// Stand-ins for the engine, tokenizer and chat template, so the HTTP layer is tested without a
// model. FakeEngine emits one letter per tick per choice ('a', 'b', ...) until max_tokens.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>
#include <set>
#include <thread>

#include "core/error.h"
#include "engine/engine.h"
#include "server/chat_formatter.h"
#include "tokenizer/tokenizer.h"

namespace ferrum::testing {

// Bytes are tokens 0..255; 256 is BOS.
class FakeTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    std::vector<int32_t> ids;
    if (add_special) ids.push_back(256);
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  std::string decode(std::span<const int32_t> ids, bool) const override {
    std::string s;
    for (int32_t id : ids)
      if (id < 256) s += static_cast<char>(id);
    return s;
  }
  int32_t vocab_size() const override { return 300; }
  std::optional<int32_t> token_to_id(std::string_view) const override { return std::nullopt; }
  std::string id_to_token(int32_t id) const override { return decode(std::span<const int32_t>(&id, 1), false); }
  bool is_special(int32_t id) const override { return id >= 256; }
  std::optional<std::string> bos_token() const override { return "<s>"; }
  std::optional<std::string> eos_token() const override { return std::nullopt; }
};

class FakeChat : public server::ChatFormatter {
 public:
  std::string render(const ordered_json& messages, const ordered_json& tools, bool add_generation_prompt, bool,
                     const ordered_json&) const override {
    if (messages[0]["role"] == "assistant") throw InvalidRequest("conversation must not start with assistant");
    std::string s;
    for (auto& m : messages) s += "<" + m["role"].get<std::string>() + ">" + m["content"].get<std::string>() + "\n";
    if (tools.is_array()) s += "<tools>";
    if (add_generation_prompt) s += "<assistant>";
    return s;
  }
  std::unique_ptr<server::ChatOutputParser> make_parser(bool, const ordered_json&, const std::string&) const override {
    return std::make_unique<server::PlainOutputParser>();
  }
};

class FakeStream : public RequestStream {
 public:
  // script: when set, the text every choice generates (one byte per token), ending with Stop.
  FakeStream(uint64_t id, std::vector<int32_t> prompt, SamplingParams p, int32_t cached, std::string script = "")
      : id_(id), prompt_(std::move(prompt)), params_(std::move(p)), cached_(cached), produced_(params_.n, 0),
        script_(std::move(script)) {}

  std::optional<RequestOutput> next() override {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return !queue_.empty() || closed_; });
    if (queue_.empty()) return std::nullopt;
    RequestOutput out = std::move(queue_.front());
    queue_.pop_front();
    return out;
  }
  std::optional<RequestOutput> try_next() override {
    std::lock_guard lock(mutex_);
    if (queue_.empty()) return std::nullopt;
    RequestOutput out = std::move(queue_.front());
    queue_.pop_front();
    return out;
  }
  bool done() const override {
    std::lock_guard lock(mutex_);
    return closed_ && queue_.empty();
  }
  void set_on_ready(std::function<void()> cb) override {
    std::function<void()> call;
    {
      std::lock_guard lock(mutex_);
      on_ready_ = std::move(cb);
      if (!queue_.empty()) call = on_ready_;
    }
    if (call) call();
  }
  void abort() override { aborted_ = true; }
  uint64_t id() const override { return id_; }

  // One engine step: a token for each choice, or the end. Returns false once finished.
  bool step() {
    RequestOutput out;
    out.prompt_tokens = static_cast<int32_t>(prompt_.size());
    out.cached_tokens = cached_;
    bool done = true;
    for (int32_t i = 0; i < params_.n; ++i) {
      CompletionDelta d;
      d.index = i;
      if (aborted_) {
        d.finish_reason = FinishReason::Abort;
      } else {
        int32_t tok = script_.empty() ? 'a' + (produced_[i] + i) % 26 : static_cast<unsigned char>(script_[produced_[i]]);
        d.token_ids = {tok};
        d.text = std::string(1, static_cast<char>(tok));
        if (params_.logprobs) d.logprobs = {{tok, -0.5f, {{tok, -0.5f}, {'z', -2.f}}}};
        ++produced_[i];
        if (!script_.empty() && produced_[i] >= static_cast<int32_t>(script_.size())) d.finish_reason = FinishReason::Stop;
        else if (produced_[i] >= params_.max_tokens) d.finish_reason = FinishReason::Length;
        else done = false;
      }
      out.deltas.push_back(std::move(d));
    }
    out.finished = done;
    std::function<void()> call;
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(out));
      if (done) closed_ = true;
      call = on_ready_;
    }
    cv_.notify_all();
    if (call) call();
    return !done;
  }

  const SamplingParams& params() const { return params_; }

 private:
  uint64_t id_;
  std::vector<int32_t> prompt_;
  SamplingParams params_;
  int32_t cached_;
  std::vector<int32_t> produced_;
  std::string script_;
  std::atomic<bool> aborted_{false};
  mutable std::mutex mutex_;
  std::function<void()> on_ready_;
  std::condition_variable cv_;
  std::deque<RequestOutput> queue_;
  bool closed_ = false;
};

class FakeEngine : public Engine {
 public:
  explicit FakeEngine(std::chrono::microseconds tick = std::chrono::microseconds(2000), int32_t max_waiting = 100000)
      : tick_(tick), max_waiting_(max_waiting), thread_([this] { loop(); }) {}
  ~FakeEngine() override { shutdown(); }

  std::shared_ptr<RequestStream> submit(std::vector<int32_t> prompt, const SamplingParams& params) override {
    std::lock_guard lock(mutex_);
    if (static_cast<int32_t>(active_.size()) >= max_waiting_) throw QueueFull("waiting queue full");
    if (prompt.empty()) throw InvalidRequest("empty prompt");
    int32_t cached = seen_.count(prompt) ? static_cast<int32_t>(prompt.size()) : 0;
    seen_.insert(prompt);
    auto s = std::make_shared<FakeStream>(++next_id_, std::move(prompt), params, cached, script_);
    active_.push_back(s);
    last_params_ = params;
    ++submitted_;
    return s;
  }
  EngineStats stats() const override {
    std::lock_guard lock(mutex_);
    EngineStats s;
    s.running = static_cast<int32_t>(active_.size());
    s.kv_blocks_total = 1000;
    s.kv_blocks_used = 2 * s.running;
    return s;
  }
  int32_t max_model_len() const override { return 256; }
  void shutdown() override {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  void set_script(std::string text) {
    std::lock_guard lock(mutex_);
    script_ = std::move(text);
  }
  SamplingParams last_params() const {
    std::lock_guard lock(mutex_);
    return last_params_;
  }
  int submitted() const {
    std::lock_guard lock(mutex_);
    return submitted_;
  }

 private:
  void loop() {
    while (!stop_) {
      {
        std::lock_guard lock(mutex_);
        for (auto it = active_.begin(); it != active_.end();) it = (*it)->step() ? std::next(it) : active_.erase(it);
      }
      std::this_thread::sleep_for(tick_);
    }
    std::lock_guard lock(mutex_);
    for (auto& s : active_) {
      s->abort();
      s->step();
    }
    active_.clear();
  }
  std::chrono::microseconds tick_;
  int32_t max_waiting_;
  mutable std::mutex mutex_;
  std::list<std::shared_ptr<FakeStream>> active_;
  std::set<std::vector<int32_t>> seen_;
  SamplingParams last_params_;
  std::string script_;
  int submitted_ = 0;
  uint64_t next_id_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace ferrum::testing
