// The engine: one thread owns scheduling and the KV cache; callers submit requests and read
// each request's outputs from its own stream. This is ferrum's embeddable C++ API.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/sampling_params.h"

namespace ferrum {

class Model;
class Tokenizer;

// Speculative decoding (spec_decode.h): a drafter proposes up to num_tokens tokens per
// decoding sequence and step; the target verifies them in one forward pass. Sampling stays
// exact in distribution (greedy: the same ids). n-gram proposals are verified by the target's
// own draw (its sampler's picks where the model samples on its device, so that seeded tokens
// are those of plain decoding); a draft model's on the host. Where the model samples, steps
// that propose nothing stay on that path, overlapped as without speculation.
struct SpeculativeOptions {
  int32_t num_tokens = 0;           // K; 0 = off
  bool ngram = false;               // prompt lookup in the request's own tokens
  int32_t ngram_min = 2, ngram_max = 3;  // single-token matches propose mostly noise
  std::shared_ptr<Model> draft;     // a draft model with the target's vocabulary
  // A step speculates only while at most this many sequences are running or waiting (above
  // it, verification costs more than it saves); 0 = always.
  int32_t max_batch = 8;
  // n-gram lookup verifies only the proposals expected to pay for their rows, by each
  // sequence's measured acceptance and the measured step times (spec_policy.h); false: all.
  bool adaptive = true;
  bool enabled() const { return num_tokens > 0 && (ngram || draft); }
};

struct EngineOptions {
  int32_t block_size = 16;
  int32_t max_num_seqs = 64;
  int32_t max_num_batched_tokens = 2048;  // token budget of one step
  int32_t max_model_len = 0;              // 0: the model's max_position_embeddings, capped
                                          // to what the KV pool holds
  size_t kv_cache_bytes = 512ull << 20;   // memory budget for the paged KV pool
  int32_t num_kv_blocks = 0;              // >0 overrides kv_cache_bytes (tests)
  bool enable_prefix_caching = true;
  int32_t max_waiting = 4096;             // submit() fails with QueueFull beyond this
  // Sample on the host even when the model can sample on its device (tests compare the two).
  bool host_sampling = false;
  // Pick tokens with the model's own sampler (Model::launch_sample) where the host would be
  // the default (a CPU model): how tests run the device-sampling and overlapped paths in CI.
  bool model_sampling = false;
  // Overlapped steps: while the device runs step N, the engine schedules and issues step N+1,
  // then takes step N's tokens (their ids feed step N+1 on the device). Needs model sampling.
  // FERRUM_NO_OVERLAP=1 turns it off; outputs are the same either way.
  bool overlap = std::getenv("FERRUM_NO_OVERLAP") == nullptr;
  // An overlapped step is scheduled when the one before it starts, so a request that arrives
  // meanwhile waits one step more. After a step of more tokens than this (prompt chunks: a long
  // step) the engine waits for it before scheduling the next, as without overlap.
  int32_t overlap_max_step_tokens = 512;
  // Model::prepare at start-up (buffers sized, decode graphs recorded) for contexts up to
  // this many tokens; 0 skips it (steps then prepare lazily).
  int64_t prepare_graph_context = 1024;
  SpeculativeOptions speculative;
};

enum class FinishReason { None, Stop, Length, Abort, Error };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "abort", "error"

struct TokenLogprob {
  int32_t token_id;
  float logprob;
  std::vector<std::pair<int32_t, float>> top;  // top-k (id, logprob), best first
};

// One update for one of a request's n completions. Text pieces concatenate to the full text.
struct CompletionDelta {
  int32_t index = 0;                 // which of the n completions
  std::vector<int32_t> token_ids;    // new tokens since the last delta
  std::string text;                  // new text (UTF-8 complete; stop strings held back)
  std::vector<TokenLogprob> logprobs;  // one per new token when requested
  FinishReason finish_reason = FinishReason::None;
  std::string stop_reason;           // the stop string or token that matched, if any
  std::string error;                 // set when finish_reason == Error
};

struct RequestOutput {
  std::vector<CompletionDelta> deltas;
  int32_t prompt_tokens = 0;
  int32_t cached_tokens = 0;         // prompt tokens served from the prefix cache
  bool finished = false;             // all n completions finished; the stream is closed
};

// A request's output channel, read blocking (next) or driven by a callback (try_next +
// set_on_ready), so a server can serve any number of streams from a few threads.
class RequestStream {
 public:
  virtual ~RequestStream() = default;
  virtual std::optional<RequestOutput> next() = 0;      // blocks; nullopt once finished and drained
  virtual std::optional<RequestOutput> try_next() = 0;  // never blocks; nullopt when nothing is queued
  virtual bool done() const = 0;                         // finished and drained: nothing more will come
  // cb runs after every new output (on the engine thread: it must be quick and must not block
  // or call back into the stream's reader), and once at once if outputs are already queued.
  // Passing an empty function removes it (a push already under way may still call the old one).
  virtual void set_on_ready(std::function<void()> cb) = 0;
  virtual void abort() = 0;  // frees its KV at the next step
  virtual uint64_t id() const = 0;
};

struct EngineStats {
  int32_t running = 0, waiting = 0;
  int32_t kv_blocks_total = 0, kv_blocks_used = 0;
  uint64_t prompt_tokens = 0, generated_tokens = 0;
  uint64_t prefix_cache_queries = 0, prefix_cache_hits = 0;  // in tokens
  uint64_t preemptions = 0;
  // Speculative decoding: verifications with at least one proposal, proposals, accepted ones.
  // Acceptance rate = accepted / draft tokens; mean accepted length (tokens per target pass
  // of a speculating sequence) = 1 + accepted / drafts.
  uint64_t spec_drafts = 0, spec_draft_tokens = 0, spec_accepted_tokens = 0;
  // Steps by where their tokens were picked: by the model's own sampler (of those, launched
  // while the step before was still running: overlapped), or on the host from logits rows.
  uint64_t device_sampled_steps = 0, overlapped_steps = 0, host_sampled_steps = 0;
  // Set once the model's device has failed for good (Model::device_failure): every request since
  // has failed, and the server must be restarted.
  std::string device_failure;
};

class QueueFull : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// submit() after the model's device failed for good (EngineStats::device_failure).
class DeviceFailed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Engine {
 public:
  virtual ~Engine() = default;
  static std::unique_ptr<Engine> create(std::shared_ptr<Model> model,
                                        std::shared_ptr<const Tokenizer> tokenizer,
                                        const EngineOptions& options);

  // Validates (throws InvalidRequest), enqueues and returns the request's stream.
  virtual std::shared_ptr<RequestStream> submit(std::vector<int32_t> prompt_ids,
                                                const SamplingParams& params) = 0;
  virtual EngineStats stats() const = 0;
  virtual int32_t max_model_len() const = 0;
  virtual void shutdown() = 0;  // finishes nothing further; streams end with Abort
};

}  // namespace ferrum
