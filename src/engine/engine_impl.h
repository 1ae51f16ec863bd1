// EngineImpl, the engine behind Engine::create: shared by engine.cpp (the engine thread's
// loop, the device-sampling step, requests and output) and engine_host_step.cpp (the host-
// sampling step: logits to the host, rows sampled there, proposals verified). Private to
// src/engine.
//
// The engine thread drains the inbox, then runs one step at a time,
//   schedule() -> model forward -> sample -> update (stop checks, detokenize) -> emit,
// and sleeps on the inbox's condition variable when there is nothing to do.
#pragma once
#include <atomic>
#include <mutex>
#include <random>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <unordered_map>

#include "core/error.h"
#include "core/log.h"
#include "core/thread_pool.h"
#include "engine/block_manager.h"
#include "engine/device_sampling.h"
#include "engine/engine_setup.h"
#include "engine/model_runner.h"
#include "engine/output_processor.h"
#include "engine/request_channel.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "engine/speculation.h"
#include "engine/step_profile.h"
#include "models/model.h"
#include "structured/token_vocab.h"
#include "tokenizer/tokenizer.h"

#include "engine/engine.h"

namespace ferrum::engine_detail {

class EngineImpl final : public Engine {
 public:
  EngineImpl(std::shared_ptr<Model> model, std::shared_ptr<const Tokenizer> tokenizer, const EngineOptions& o)
      : options_(o),
        model_(std::move(model)),
        tokenizer_(std::move(tokenizer)),
        vocab_size_(static_cast<int32_t>(model_->config().vocab_size)),
        blocks_(resolve_num_blocks(*model_, o), o.block_size, o.enable_prefix_caching),
        scheduler_({o.max_num_seqs, o.max_num_batched_tokens,
                    o.speculative.enabled() ? o.speculative.num_tokens : 0}, blocks_),
        runner_(model_, blocks_.num_blocks(), o.block_size),
        sampler_(vocab_size_, model_->config().eos_token_ids),
        output_(tokenizer_.get(), model_->config().eos_token_ids),
        inbox_(std::make_shared<Inbox>()) {
    const int64_t model_len = model_->config().max_position_embeddings;
    FERRUM_CHECK(vocab_size_ > 0, "model config has no vocab_size");
    FERRUM_CHECK(o.max_model_len >= 0 && o.max_model_len <= model_len,
                 "max_model_len {} must be in [0, {}] (the model's max_position_embeddings)",
                 o.max_model_len, model_len);
    // Every request must fit in the KV pool on its own. By default the context is capped to
    // what the pool holds (as vLLM refuses to start otherwise); an explicit max_model_len above
    // it is honoured, and requests that cannot fit then fail with FinishReason::Error.
    const int64_t pool_tokens = static_cast<int64_t>(blocks_.num_blocks()) * o.block_size;
    if (o.max_model_len > 0) {
      max_model_len_ = o.max_model_len;
      if (max_model_len_ > pool_tokens)
        log::warn("max_model_len {} exceeds the KV cache ({} tokens): longer requests will fail",
                  max_model_len_, pool_tokens);
    } else {
      max_model_len_ = static_cast<int32_t>(std::min<int64_t>(model_len, pool_tokens));
      if (pool_tokens < model_len)
        log::warn("the KV cache holds {} tokens, fewer than the model's {} positions: context "
                  "limited to {} tokens (raise the KV cache memory for more)", pool_tokens,
                  model_len, max_model_len_);
    }
    stats_.kv_blocks_total = blocks_.num_blocks();
    if (o.model_sampling)
      FERRUM_CHECK(model_->can_sample(), "model_sampling: this model cannot pick tokens itself");
    const bool model_samples = (model_->samples_on_device() || o.model_sampling) && !o.host_sampling;
    if (o.speculative.enabled())
      speculation_ = std::make_unique<Speculation>(o.speculative, *model_, max_model_len_, blocks_.num_blocks(),
                                                   o.block_size, o.max_num_batched_tokens, model_samples);
    if (model_samples)
      device_sampling_ = std::make_unique<DeviceSamplingBuilder>(vocab_size_, model_->config().eos_token_ids);
    overlap_ = device_sampling_ && o.overlap;
    log::info("engine: {} KV blocks of {} tokens, max_num_seqs {}, max_num_batched_tokens {}, "
              "max_model_len {}, prefix caching {}, sampling on the {}, overlapped steps {}", blocks_.num_blocks(),
              o.block_size, o.max_num_seqs, o.max_num_batched_tokens, max_model_len_,
              o.enable_prefix_caching ? "on" : "off", device_sampling_ ? "model's device" : "host",
              overlap_ ? "on" : "off");
    if (o.prepare_graph_context > 0)
      runner_.prepare({.max_tokens = o.max_num_batched_tokens,
                       .max_rows = o.max_num_seqs,
                       .max_context = max_model_len_,
                       .graph_context = o.prepare_graph_context});
    thread_ = std::thread([this] { loop(); });
  }

  ~EngineImpl() override { shutdown(); }

  std::shared_ptr<RequestStream> submit(std::vector<int32_t> prompt, const SamplingParams& params) override {
    if (device_failed_.load()) throw DeviceFailed(stats().device_failure);
    if (prompt.empty()) throw InvalidRequest("the prompt is empty");
    for (int32_t t : prompt)
      if (t < 0 || t >= vocab_size_)
        throw InvalidRequest(fmt::format("prompt token id {} is outside the vocabulary [0, {})", t, vocab_size_));
    params.validate(vocab_size_);
    if (!params.stop.empty() && !tokenizer_)
      throw InvalidRequest("stop strings need a tokenizer, and this engine has none");
    if (params.grammar && !tokenizer_)
      throw InvalidRequest("structured output needs a tokenizer, and this engine has none");
    const int64_t total = static_cast<int64_t>(prompt.size()) + params.max_tokens;
    if (total > max_model_len_)
      throw InvalidRequest(fmt::format(
          "the prompt has {} tokens and max_tokens is {}: together {} exceed the maximum context "
          "length of {} tokens", prompt.size(), params.max_tokens, total, max_model_len_));

    auto req = std::make_unique<Request>();
    req->id = next_id_.fetch_add(1);
    req->params = params;
    if (!req->params.seed) req->params.seed = std::random_device{}() ^ (uint64_t{std::random_device{}()} << 32);
    req->prompt_len = static_cast<int32_t>(prompt.size());
    for (int32_t i = 0; i < params.n; ++i) {
      auto seq = std::make_unique<Sequence>();
      seq->id = req->id * 256 + i;
      seq->request = req.get();
      seq->index = i;
      seq->params = &req->params;
      seq->tokens = i + 1 < params.n ? prompt : std::move(prompt);
      seq->prompt_len = req->prompt_len;
      seq->max_kv_tokens = req->prompt_len + params.max_tokens - 1;  // the last token is never fed
      seq->fork_parent = i > 0 ? req->seqs[0].get() : nullptr;
      seed_rng(seq->rng, *req->params.seed, i);
      seq->sample_key = DeviceSamplingBuilder::key(*req->params.seed, i);
      if (params.grammar) seq->constraint.emplace(params.grammar, token_vocab(), params.grammar_after);
      output_.init(*seq);
      req->seqs.push_back(std::move(seq));
    }
    req->channel = std::make_shared<RequestChannel>(req->id, inbox_);
    std::shared_ptr<RequestStream> stream = req->channel;
    {
      std::lock_guard lk(inbox_->mu);
      if (inbox_->stop) throw Error("the engine is shut down");
      if (static_cast<int32_t>(inbox_->incoming.size()) + num_waiting_.load() >= options_.max_waiting)
        throw QueueFull(fmt::format("too many waiting requests (max_waiting = {})", options_.max_waiting));
      inbox_->incoming.push_back(std::move(req));
    }
    inbox_->cv.notify_one();
    return stream;
  }

  std::shared_ptr<const structured::TokenVocab> token_vocab() {
    std::call_once(token_vocab_once_, [this] {
      token_vocab_ = std::make_shared<const structured::TokenVocab>(structured::TokenVocab::from_tokenizer(*tokenizer_));
    });
    return token_vocab_;
  }

  EngineStats stats() const override {
    std::lock_guard lk(stats_mu_);
    return stats_;
  }

  int32_t max_model_len() const override { return max_model_len_; }

  void shutdown() override {
    {
      std::lock_guard lk(inbox_->mu);
      inbox_->stop = true;
    }
    inbox_->cv.notify_one();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  }

 private:
  // A step launched with the model's sampler whose picks are not taken yet. Two slots: the
  // step in flight, and the one launched before it is collected.
  struct Flight {
    SchedulerOutput out;
    std::vector<int32_t> sampled;  // indices into out.scheduled, one per picked token
    SampleBatch sampling;
    uint64_t ticket = 0;
    bool needs_history = false;  // a row's penalties count every token: the next step waits for these
    // It verifies proposals: how many tokens each sequence gets is known once it is collected,
    // so the next step waits for it.
    bool verifies = false;
    int32_t proposals = 0;  // proposal rows (the policy's cost measure)
  };

  void loop() {
    std::deque<std::unique_ptr<Request>> incoming;
    std::vector<uint64_t> aborts;
    for (;;) {
      // A step in flight that the next schedule must wait for is waited for first, so that the
      // requests that arrive while it runs are taken into that schedule.
      try {
        propose_next_ = next_step_proposes();
        if (in_flight_ && (must_finish_before_schedule() || propose_next_)) {
          finish_in_flight();
          emit_touched();
          publish_stats();  // (the engine may sleep next: its last requests may have finished here)
        }
      } catch (const std::exception& e) {
        log::error("engine step failed: {}", e.what());
        fail_everything(std::string("engine error: ") + e.what());
      }
      bool stop = false;
      {
        std::unique_lock lk(inbox_->mu);
        inbox_->cv.wait(lk, [&] {
          return inbox_->stop || !inbox_->incoming.empty() || !inbox_->aborts.empty() || scheduler_.has_work() ||
                 in_flight_ != nullptr;
        });
        stop = inbox_->stop;
        incoming.swap(inbox_->incoming);
        aborts.swap(inbox_->aborts);
      }
      try {
        for (auto& req : incoming) add_request(std::move(req));
        incoming.clear();
        for (uint64_t id : aborts) finish_request(id, FinishReason::Abort, "");
        aborts.clear();
        if (stop) {
          if (in_flight_) finish_in_flight();
          finish_all(FinishReason::Abort, "");
          publish_stats();
          return;
        }
        abort_abandoned();
        if (!device_failed_.load() && (scheduler_.has_work() || in_flight_)) step();
      } catch (const std::exception& e) {
        // Unexpected: the KV state can no longer be trusted, so end every request.
        log::error("engine step failed: {}", e.what());
        fail_everything(std::string("engine error: ") + e.what());
        check_device();
      }
      if (device_failed_.load() && (!requests_.empty() || in_flight_)) {
        in_flight_ = nullptr;  // the device is lost: a step in flight will not come back (nor be waited for)
        fail_everything(stats().device_failure);
      }
      publish_stats();
    }
  }

  // After a failed step: a device that cannot run steps any more fails every request from now
  // on, instead of each step failing alike (a sticky CUDA error: restart the server).
  void check_device() noexcept {
    if (device_failed_.load()) return;
    std::string failure;
    try {
      failure = model_->device_failure();
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (failure.empty()) return;
    log::error("the model's device has failed: {}; every request fails until the server is restarted", failure);
    {
      std::lock_guard lk(stats_mu_);
      stats_.device_failure = "the model's device has failed (" + failure + "): restart the server";
    }
    device_failed_.store(true);
  }

  void add_request(std::unique_ptr<Request> req) {
    for (auto& seq : req->seqs) scheduler_.add(seq.get());
    prompt_tokens_ += static_cast<uint64_t>(req->prompt_len);
    requests_.emplace(req->id, std::move(req));
  }

  // A client that dropped its stream without reading to the end: free its KV.
  void abort_abandoned() {
    std::vector<uint64_t> gone;
    for (auto& [id, req] : requests_)
      if (req->channel.use_count() == 1) gone.push_back(id);
    for (uint64_t id : gone) finish_request(id, FinishReason::Abort, "");
  }

  void finish_request(uint64_t id, FinishReason reason, const std::string& error) {
    auto it = requests_.find(id);
    if (it == requests_.end()) return;  // already finished
    Request& req = *it->second;
    for (auto& seq : req.seqs) {
      if (seq->retired) continue;
      seq->finish_reason = reason;
      seq->error = error;
    }
    emit(req);
  }

  // Last resort after an internal error: close every stream without trusting any state.
  void fail_everything(const std::string& error) noexcept {
    try {
      finish_all(FinishReason::Error, error);
      return;
    } catch (const std::exception& e) {
      log::error("engine cleanup failed: {}", e.what());
    }
    for (auto& [id, req] : requests_) {
      RequestOutput out;
      out.finished = true;
      for (auto& seq : req->seqs) {
        if (seq->retired) continue;
        CompletionDelta d;
        d.index = seq->index;
        d.finish_reason = FinishReason::Error;
        d.error = error;
        out.deltas.push_back(std::move(d));
      }
      req->channel->push(std::move(out));
    }
    in_flight_ = nullptr;  // its picks are dropped (the device may still be writing its KV)
    requests_.clear();
    graveyard_.clear();
    scheduler_.clear();  // it held pointers into the requests just dropped
    blocks_.reset();
  }

  void finish_all(FinishReason reason, const std::string& error) {
    std::vector<uint64_t> ids;
    for (auto& [id, req] : requests_) ids.push_back(id);
    for (uint64_t id : ids) finish_request(id, reason, error);
  }

  StepProfile profile_;

  // One engine step. With the model's sampler the step is launched, then the step before it
  // (if one is in flight) is collected: its tokens appended, stops checked. With overlap the
  // new step stays in flight until the next one is launched; without, it is collected at once.
  void step() {
    const size_t dead_before = graveyard_.size();  // retired before this schedule: see the end
    auto t_begin = ProfileClock::now();  // (loop() has waited for a step this schedule must see)
    SchedulerOutput out = scheduler_.schedule(speculates_now());
    if (out.speculates) propose(out);
    auto t_scheduled = ProfileClock::now();
    ProfileClock::time_point t_forward = t_scheduled, t_sampled = t_scheduled;
    for (auto& [seq, message] : out.failed) {
      seq->finish_reason = FinishReason::Error;
      seq->error = message;
      touch(*seq->request);
    }
    const bool ran = !out.scheduled.empty();
    size_t rows = 0;
    if (ran) {
      for (const ScheduledSeq& s : out.scheduled) {
        Request& req = *s.seq->request;
        if (s.seq->index == 0 && req.cached_tokens < 0) req.cached_tokens = s.seq->num_computed_tokens;
      }
      if (device_sampling_ && !(out.speculates && speculation_->verifies_on_host())) {
        Flight* prev = in_flight_;
        const bool overlapped = prev != nullptr;
        const bool launched = launch(std::move(out), prev);  // (may collect prev: grammar masks need its tokens)
        t_forward = ProfileClock::now();
        if (prev) collect(*prev);  // the device is busy with the step just launched meanwhile
        if (launched) {
          rows = in_flight_->sampled.size();
          ++device_sampled_steps_;
          overlapped_steps_ += overlapped ? 1 : 0;
          scheduler_.on_step_done(in_flight_->out);
          if (!overlap_) finish_in_flight();
        }
      } else {
        const int32_t proposals = out.speculates ? proposal_rows(out) : 0;
        rows = run_on_host(out, t_forward);
        ++host_sampled_steps_;
        if (speculation_ && device_sampling_) {
          speculation_->step_delivered(out, proposals);
        } else if (speculation_) {
          speculation_->step_done(out, ms_since(t_begin));
        }
      }
      t_sampled = ProfileClock::now();
    } else if (in_flight_) {
      finish_in_flight();  // nothing new to run: take the last step's tokens
    }
    emit_touched();
    // Requests retired before this schedule can only be referenced by the step that was in
    // flight then, which has been collected by now.
    graveyard_.erase(graveyard_.begin(), graveyard_.begin() + static_cast<std::ptrdiff_t>(dead_before));
    if (profile_.on && ran) profile_.add(t_begin, t_scheduled, t_forward, t_sampled, rows);
  }

  // Penalties see every earlier token: a step after one that sampled with them waits for it.
  // (Grammar masks too, but later: launch takes the tokens once the next forward is queued.)
  // So does a step after a long one (prompt chunks): scheduled while that one runs, it would
  // leave the requests that arrive meanwhile waiting one long step more. And a step after one
  // that verifies proposals, whose number of tokens per sequence is not known before.
  bool must_finish_before_schedule() const {
    return in_flight_->needs_history || in_flight_->verifies ||
           in_flight_->out.num_tokens > options_.overlap_max_step_tokens;
  }

  // Device sampling with speculation: whether the next step proposes. Proposals follow each
  // sequence's newest token, so the step in flight is collected first: a step that proposes
  // does not overlap the one before it.
  bool next_step_proposes() {
    if (!speculation_ || !device_sampling_) return false;
    const std::vector<Sequence*>& running = scheduler_.running();
    return speculation_->wants_proposals(running, running.size() + scheduler_.waiting().size());
  }

  // Whether this step reserves lookahead slots to propose in (host sampling: by concurrency
  // alone; device sampling: as decided before the step in flight was collected).
  bool speculates_now() {
    if (!speculation_) return false;
    if (device_sampling_) return propose_next_ && !in_flight_;
    return speculation_->should_speculate(scheduler_.running().size() + scheduler_.waiting().size());
  }

  // Device sampling: a step whose proposals all came to nothing runs as a plain one (overlapped
  // with the next), without its lookahead slots.
  void propose(SchedulerOutput& out) {
    speculation_->propose(out);
    if (device_sampling_ && !Speculation::has_proposals(out)) Speculation::release_lookahead(out, blocks_);
  }

  static int32_t proposal_rows(const SchedulerOutput& out) {
    int32_t rows = 0;
    for (const ScheduledSeq& s : out.scheduled)
      if (s.num_lookahead > 0) rows += static_cast<int32_t>(s.seq->spec_draft.size());
    return rows;
  }

  void emit_touched() {
    emitting_.swap(touched_);  // both keep their capacity from step to step
    ++emit_round_;             // what is touched from now on is emitted next time
    for (Request* req : emitting_) emit(*req);
    emitting_.clear();
  }

  // The host-sampling step (logits to the host, the host Sampler): run, then pick at once.
  size_t run_on_host(const SchedulerOutput& out, ProfileClock::time_point& t_forward);

  // The host step of a speculating batch: each sequence's rows are its last token's and one per
  // proposal. Verified tokens are appended one by one (a stop ends the run early); then the
  // KV of rejected proposals is rolled back: num_computed_tokens counts the accepted proposals
  // appended, blocks past it return to the pool, and the draft's K/V never exceed it.
  void verify_rows(const SchedulerOutput& out, std::span<float> logits);

  // Issues `out` with the model's sampler; it becomes the step in flight. False (its sequences
  // failed) when the model could not launch it. `prev`, the step still in flight, is collected
  // here (and set to null) when this step's grammar masks need its tokens: after this step's
  // forward is queued, before its picks are.
  bool launch(SchedulerOutput&& out, Flight*& prev) {
    Flight& f = flights_[next_flight_];
    next_flight_ ^= 1;
    f.out = std::move(out);
    auto take_prev = [&] {
      if (!prev) return;
      Flight* p = prev;
      prev = nullptr;
      collect(*p);
    };
    try {
      f.ticket = runner_.launch(f.out, f.sampled, *device_sampling_, f.sampling, take_prev);
    } catch (const std::exception& e) {
      fail_step(f.out, e);
      return false;
    }
    f.verifies = f.out.speculates;
    f.proposals = f.verifies ? proposal_rows(f.out) : 0;
    f.needs_history = false;
    for (int32_t i : f.sampled) {
      const SamplingParams& p = *f.out.scheduled[i].seq->params;
      f.needs_history |= p.repetition_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f;
    }
    in_flight_ = &f;
    return true;
  }

  void finish_in_flight() {
    Flight* f = in_flight_;
    in_flight_ = nullptr;
    collect(*f);
  }

  // Waits for a launched step's picks and appends them. A sequence that finished (a stop, an
  // abort) after the step was launched drops its pick: the step computed one token too many.
  // A sequence with proposals has a pick per row; its rejected proposals' K/V are rolled back.
  void collect(Flight& f) {
    if (in_flight_ == &f) in_flight_ = nullptr;
    try {
      runner_.collect(f.ticket, f.sampled.size(), sample_result_);
    } catch (const std::exception& e) {
      for (size_t r = 0; r < f.sampled.size(); r = sequence_rows_end(f.sampled, r))
        --f.out.scheduled[f.sampled[r]].seq->pending_tokens;
      fail_step(f.out, e);
      for (const ScheduledSeq& s : f.out.scheduled)
        if (s.num_lookahead > 0) Speculation::roll_back(*s.seq, true, blocks_);
      return;
    }
    for (size_t r = 0; r < f.sampled.size();) {
      const size_t end = sequence_rows_end(f.sampled, r);
      const ScheduledSeq& s = f.out.scheduled[f.sampled[r]];
      --s.seq->pending_tokens;
      take_picks(*s.seq, f, r, end);
      if (s.num_lookahead > 0) Speculation::roll_back(*s.seq, true, blocks_);
      r = end;
    }
    if (speculation_) speculation_->step_delivered(f.out, f.proposals);
  }

  // Appends seq's picks from rows [begin, end) of a collected step: its next token, or its
  // verified proposals and the token after them.
  void take_picks(Sequence& seq, const Flight& f, size_t begin, size_t end) {
    if (seq.retired || seq.finish_reason != FinishReason::None) return;
    auto pick = [&](size_t j) { return DeviceSamplingBuilder::take(seq, f.sampling, sample_result_, begin + j); };
    try {
      if (end - begin == 1) {
        output_.append_token(seq, pick(0));
        ++generated_tokens_;
      } else {
        generated_tokens_ += speculation_->accept_picks(seq, end - begin, pick, output_, blocks_);
      }
    } catch (const std::exception& e) {
      seq.finish_reason = FinishReason::Error;
      seq.error = std::string("output processing failed: ") + e.what();
    }
    touch(*seq.request);
  }

  // The model failed a step: its sequences end with the error (the others go on).
  void fail_step(const SchedulerOutput& out, const std::exception& e) {
    log::error("model forward failed: {}", e.what());
    check_device();
    for (const ScheduledSeq& s : out.scheduled) {
      if (s.seq->retired || s.seq->finish_reason != FinishReason::None) continue;
      s.seq->finish_reason = FinishReason::Error;
      s.seq->error = std::string("model forward failed: ") + e.what();
      touch(*s.seq->request);
    }
  }

  // Picks each sampled row's token. Rows are independent (each sequence has its own RNG), so
  // from 8 rows on they run in parallel, one Sampler (scratch buffers) per running chunk:
  // reading a row is a pass over vocabulary-sized memory that the GPU just wrote.
  void sample_rows(const SchedulerOutput& out, std::span<float> logits);

  void touch(Request& req) {
    if (req.touched_step == emit_round_) return;  // already queued for this round's emit
    req.touched_step = emit_round_;
    touched_.push_back(&req);
  }

  // Sends the request's pending deltas; retires finished completions (freeing their blocks)
  // and the request itself once all n are done.
  void emit(Request& req) {
    RequestOutput out;
    out.prompt_tokens = req.prompt_len;
    out.cached_tokens = std::max(0, req.cached_tokens);
    for (auto& seq : req.seqs) {
      if (seq->retired) continue;
      if (seq->finish_reason != FinishReason::None) {
        scheduler_.remove(seq.get());  // frees its blocks (none if the scheduler failed it)
        if (seq->finish_reason == FinishReason::Abort || seq->finish_reason == FinishReason::Error)
          seq->detok.emittable = seq->detok.emitted;  // drop text held back for stop strings
        seq->retired = true;
        ++req.num_finished;
      }
      CompletionDelta delta;
      if (OutputProcessor::take_delta(*seq, delta)) out.deltas.push_back(std::move(delta));
    }
    const bool finished = req.num_finished == static_cast<int32_t>(req.seqs.size());
    out.finished = finished;
    if (!out.deltas.empty() || finished) req.channel->push(std::move(out));
    if (finished) {  // kept until no step in flight can refer to its sequences
      auto it = requests_.find(req.id);
      graveyard_.push_back(std::move(it->second));
      requests_.erase(it);
    }
  }

  void publish_stats() {
    int32_t waiting_requests = 0;
    for (const Sequence* s : scheduler_.waiting()) waiting_requests += s->index == 0 ? 1 : 0;
    num_waiting_.store(waiting_requests);
    std::lock_guard lk(stats_mu_);
    stats_.running = static_cast<int32_t>(scheduler_.running().size());
    stats_.waiting = static_cast<int32_t>(scheduler_.waiting().size());
    stats_.kv_blocks_used = blocks_.num_used_blocks();
    stats_.prompt_tokens = prompt_tokens_;
    stats_.generated_tokens = generated_tokens_;
    stats_.prefix_cache_queries = blocks_.prefix_queries();
    stats_.prefix_cache_hits = blocks_.prefix_hits();
    stats_.preemptions = scheduler_.num_preemptions();
    stats_.device_sampled_steps = device_sampled_steps_;
    stats_.overlapped_steps = overlapped_steps_;
    stats_.host_sampled_steps = host_sampled_steps_;
    if (speculation_) {
      stats_.spec_drafts = speculation_->drafts();
      stats_.spec_draft_tokens = speculation_->draft_tokens();
      stats_.spec_accepted_tokens = speculation_->accepted_tokens();
    }
  }

  const EngineOptions options_;
  std::shared_ptr<Model> model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  const int32_t vocab_size_;
  int32_t max_model_len_ = 0;
  BlockManager blocks_;
  Scheduler scheduler_;
  ModelRunner runner_;
  Sampler sampler_;
  std::unique_ptr<Speculation> speculation_;  // when speculative decoding is configured
  // Set when the model samples on its device (a GPU): then the host Sampler is not used.
  std::unique_ptr<DeviceSamplingBuilder> device_sampling_;
  // Structured output: the vocabulary's bytes and trie, built at the first constrained request.
  std::once_flag token_vocab_once_;
  std::shared_ptr<const structured::TokenVocab> token_vocab_;
  bool overlap_ = false;
  bool propose_next_ = false;  // device sampling with speculation: next_step_proposes()
  SampleResult sample_result_;
  Flight flights_[2];
  int next_flight_ = 0;
  Flight* in_flight_ = nullptr;
  OutputProcessor output_;
  std::shared_ptr<Inbox> inbox_;

  // Engine-thread state.
  std::unordered_map<uint64_t, std::unique_ptr<Request>> requests_;
  std::vector<std::unique_ptr<Request>> graveyard_;  // finished, maybe still in a launched step
  std::vector<int32_t> sampled_;
  std::vector<int32_t> row_tokens_;
  std::vector<std::string> row_errors_;
  std::unique_ptr<ThreadPool> sample_pool_;  // created at the first step with 8+ rows
  std::mutex spare_mu_;
  std::vector<std::unique_ptr<Sampler>> spare_samplers_;
  std::vector<Request*> touched_, emitting_;  // requests with output in this step
  uint64_t emit_round_ = 1;  // requests touched since the last emit_touched carry this
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0;
  uint64_t device_sampled_steps_ = 0, overlapped_steps_ = 0, host_sampled_steps_ = 0;

  std::atomic<uint64_t> next_id_{1};
  std::atomic<int32_t> num_waiting_{0};
  std::atomic<bool> device_failed_{false};  // check_device found the device broken for good
  mutable std::mutex stats_mu_;
  EngineStats stats_;
  std::thread thread_;
};

}  // namespace ferrum::engine_detail
