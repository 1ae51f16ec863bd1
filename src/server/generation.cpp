// /v1/chat/completions and /v1/completions: parse, build prompts, submit to the engine, and
// turn its outputs into one JSON response or an SSE stream. Nothing here waits: start() runs
// as one worker task, and each time a stream has new output the engine thread's callback posts
// a pump() task, so a few worker threads serve every open request.
#include <atomic>
#include <chrono>
#include <span>

#include "core/error.h"
#include "core/log.h"
#include "server/api_error.h"
#include "server/openai_request.h"
#include "server/openai_response.h"
#include "server/openai_server.h"
#include "server/structured_request.h"
#include "tokenizer/tokenizer.h"

namespace ferrum::server {
namespace {

using Clock = std::chrono::steady_clock;

struct ChoiceState {
  ChoiceResult result;
  std::unique_ptr<ChatOutputParser> parser;
  std::string echo;  // completions with echo: the prompt text, sent before the first text
  int32_t tool_calls_sent = 0;
  bool finished = false;
  Clock::time_point first_token, last_token;
};

struct PromptRun {
  std::shared_ptr<RequestStream> stream;
  int32_t prompt_tokens = 0;
  int32_t cached_tokens = 0;
  bool finished = false;  // its final output was handled
};

class Generation : public std::enable_shared_from_this<Generation> {
 public:
  Generation(OpenAiServer& server, std::shared_ptr<ServingContext> ctx, std::shared_ptr<HttpRequest> request,
             std::shared_ptr<ResponseWriter> writer, std::shared_ptr<void> slot)
      : slot_(std::move(slot)), server_(server), ctx_holder_(std::move(ctx)), ctx_(*ctx_holder_),
        request_(std::move(request)), http_(*request_), writer_(std::move(writer)), arrival_(Clock::now()) {
    token_text_ = [tok = ctx_.tokenizer](int32_t id) { return tok->decode(std::span<const int32_t>(&id, 1), false); };
  }

  // Parses and submits, then acts as the first pump; throws (ApiError, QueueFull,
  // InvalidRequest) only before any byte is sent.
  void start() {
    ordered_json body = parse_json_body(http_.body);
    chat_ = http_.path == "/v1/chat/completions";
    int32_t vocab = ctx_.tokenizer->vocab_size();
    req_ = chat_ ? parse_chat_request(body, vocab) : parse_completion_request(body, vocab);
    check_model();
    submit_all();
    try {
      rid_ = ResponseIdentity::make(chat_ ? "chatcmpl-" : "cmpl-", ctx_.model_names.front());
      if (req_.stream) {
        writer_->begin_stream(200, "text/event-stream", server_.cors_headers(http_));
        server_.metrics().http_response(200);
        if (chat_) send_role_chunks();
      }
    } catch (const std::exception& e) {
      if (!req_.stream) {
        for (auto& r : runs_) r.stream->abort();
        throw;
      }
      return fail(e.what());  // the stream has begun: end it with an error event
    }
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (auto& r : runs_) streams.push_back(r.stream);
    writer_->on_disconnect([streams] {
      for (auto& s : streams) s->abort();
    });
    // Until the pump() below, notifications only count: no other pump can run (and end()
    // cannot clear callbacks) while they are being installed. The callbacks keep this object
    // alive until end() removes them.
    pending_.store(1, std::memory_order_release);
    for (auto& r : runs_) r.stream->set_on_ready([self = shared_from_this()] { self->notify(); });
    pump();
  }

 private:
  // On the engine thread: posts one pump unless one is already pending or running.
  void notify() {
    if (pending_.fetch_add(1, std::memory_order_acq_rel) == 0)
      server_.stream_workers().post([self = shared_from_this()] { self->pump(); });
  }

  // Serialized by pending_: handles every output that arrived before it last looked.
  void pump() {
    uint32_t seen = pending_.load(std::memory_order_acquire);
    for (;;) {
      try {
        process();
      } catch (...) {  // fail() itself failed (out of memory): at least let the request go
        log::error("{}: could not finish the response", http_.path);
        for (auto& r : runs_) r.stream->abort();
        end();
      }
      uint32_t left = pending_.fetch_sub(seen, std::memory_order_acq_rel) - seen;
      if (left == 0) return;
      seen = left;
    }
  }

  void process() {
    if (ended_) return;
    try {
      bool all_done = true;
      for (size_t p = 0; p < runs_.size(); ++p) {
        PromptRun& run = runs_[p];
        while (!run.finished) {
          auto out = run.stream->try_next();
          if (!out) break;
          on_output(static_cast<int32_t>(p), *out);
        }
        if (!run.finished && run.stream->done()) run.finished = true;  // closed without a final output
        all_done = all_done && run.finished;
      }
      if (all_done) complete();
    } catch (const std::exception& e) {
      fail(e.what());
    }
  }

  void on_output(int32_t p, const RequestOutput& out) {
    PromptRun& run = runs_[p];
    if (out.prompt_tokens > 0) run.prompt_tokens = out.prompt_tokens;
    run.cached_tokens = std::max(run.cached_tokens, out.cached_tokens);
    for (auto& d : out.deltas) {
      if (d.index < 0 || d.index >= req_.params.n) continue;
      on_delta(choices_[p * req_.params.n + d.index], d);
    }
    if (out.finished) run.finished = true;
  }

  // Every stream has ended: the response's last bytes.
  void complete() {
    // A completion that ends without a finish reason was cut short (engine shutdown).
    for (auto& c : choices_) {
      if (!c.finished) {
        CompletionDelta d;
        d.index = c.result.index % req_.params.n;
        d.finish_reason = FinishReason::Abort;
        on_delta(c, d);
      }
    }
    record_metrics();
    if (req_.stream) {
      finish_stream();
    } else {
      try {
        send_response();
      } catch (const ApiError& e) {
        server_.reply_error(http_, *writer_, e.status(), e.what(), e.param(), e.code());
      }
    }
    end();
  }

  void fail(const std::string& what) {
    log::error("{} failed: {}", http_.path, what);
    for (auto& r : runs_) r.stream->abort();
    if (req_.stream) {
      // The status line is sent: the error travels as an event, and the stream still ends.
      send_chunk(error_body(500, what));
      writer_->write(sse_done());
      writer_->end_stream();
    } else {
      server_.reply_error(http_, *writer_, 500, fmt::format("Internal server error: {}", what));
    }
    end();
  }

  // Drops the callbacks (they hold this object). The slot goes with the object itself, so
  // "no request running" also means no pump or callback still holds a connection.
  void end() {
    ended_ = true;
    for (auto& r : runs_) r.stream->set_on_ready(nullptr);
  }

 private:
  void check_model() {
    if (req_.model.empty()) return;
    for (auto& name : ctx_.model_names)
      if (name == req_.model) return;
    throw ApiError(404, fmt::format("The model '{}' does not exist", req_.model), "model", "model_not_found");
  }

  std::vector<int32_t> chat_prompt() {
    if (!ctx_.chat)
      bad_request("messages", "This model has no chat template; use /v1/completions or start the server with --chat-template");
    if (req_.tools.is_array() && !req_.tool_choice_none && !ctx_.chat->supports_tools())
      bad_request("tools", "This model has no known tool-call format (Hermes <tool_call>, Llama 3 JSON or Mistral [TOOL_CALLS]); tools are not supported for it");
    std::string text;
    try {
      ordered_json tools = req_.tool_choice_none ? ordered_json(nullptr) : req_.tools;
      chat_prompt_text_ = text = ctx_.chat->render(req_.messages, tools, req_.add_generation_prompt, req_.continue_final_message,
                               req_.chat_template_kwargs);
    } catch (const Error& e) {
      bad_request("messages", "The chat template rejected the conversation: {}", e.what());
    }
    constrain_chat_output();
    return ctx_.tokenizer->encode(text, /*add_special_tokens=*/false);
  }

  // tool_choice required / named becomes a grammar of the model's tool-call syntax; any
  // constraint of a reasoning model starts after its reasoning.
  void constrain_chat_output() {
    if (req_.tool_choice_required || !req_.tool_choice_name.empty()) {
      const auto syntax = ctx_.chat->tool_call_syntax();
      if (!syntax)
        bad_request("tool_choice", "tool_choice 'required' or a named function needs a tool-call syntax ferrum can constrain "
                                   "(Hermes <tool_call> or Llama 3 JSON); this model's is not one of them");
      req_.params.grammar = tool_choice_grammar(*syntax, req_.tools, req_.tool_choice_name, req_.parallel_tool_calls);
    }
    if (req_.params.grammar) req_.params.grammar_after = ctx_.chat->structured_output_after(chat_prompt_text_);
  }

  void submit_all() {
    std::vector<std::vector<int32_t>> prompts;
    if (chat_) {
      prompts.push_back(chat_prompt());
    } else {
      for (auto& p : req_.prompts)
        prompts.push_back(p.text ? ctx_.tokenizer->encode(*p.text, true) : p.token_ids);
    }
    for (auto& ids : prompts) fit_to_context(req_, static_cast<int32_t>(ids.size()), ctx_.max_model_len);

    int32_t n = req_.params.n;
    choices_.resize(prompts.size() * n);
    for (size_t p = 0; p < prompts.size(); ++p) {
      for (int32_t i = 0; i < n; ++i) {
        ChoiceState& c = choices_[p * n + i];
        c.result.index = static_cast<int32_t>(p * n + i);
        if (chat_) c.parser = ctx_.chat->make_parser(req_.tools.is_array() && !req_.tool_choice_none, req_.chat_template_kwargs, chat_prompt_text_);
        else c.parser = std::make_unique<PlainOutputParser>();
        if (req_.echo) c.echo = req_.prompts[p].text ? *req_.prompts[p].text : ctx_.tokenizer->decode(prompts[p], false);
      }
    }
    try {
      for (auto& ids : prompts) {
        PromptRun run;
        run.prompt_tokens = static_cast<int32_t>(ids.size());
        run.stream = ctx_.engine->submit(std::move(ids), req_.params);
        runs_.push_back(std::move(run));
      }
    } catch (...) {
      for (auto& r : runs_) r.stream->abort();
      throw;
    }
  }

  void send_role_chunks() {
    for (auto& c : choices_)
      send_chunk(chat_chunk_json(rid_, c.result.index, {{"role", "assistant"}, {"content", ""}}, nullptr, "", req_.include_usage));
  }

  void send_chunk(const json& chunk) { writer_->write(sse_event(chunk)); }

  void on_delta(ChoiceState& c, const CompletionDelta& d) {
    if (c.finished) return;
    auto now = Clock::now();
    if (!d.token_ids.empty()) {
      if (c.result.completion_tokens == 0) c.first_token = now;
      c.last_token = now;
      if (first_token_ == Clock::time_point{}) first_token_ = now;
    }
    c.result.completion_tokens += static_cast<int64_t>(d.token_ids.size());
    ChatPiece piece = c.parser->feed(d.text);
    if (d.finish_reason != FinishReason::None) {
      ChatPiece tail = c.parser->finish();
      piece.content += tail.content;
      piece.reasoning += tail.reasoning;
      if (tail.tool_calls.is_array()) {
        if (!piece.tool_calls.is_array()) piece.tool_calls = json::array();
        for (auto& t : tail.tool_calls) piece.tool_calls.push_back(t);
      }
    }
    if (req_.stream) stream_delta(c, d, piece);
    else accumulate(c, d, piece);
    if (d.finish_reason != FinishReason::None) {
      c.finished = true;
      c.result.finish_reason = d.finish_reason;
      c.result.stop_reason = d.stop_reason;
      if (d.finish_reason == FinishReason::Error) error_ = d.error.empty() ? "generation failed" : d.error;
      bool calls = c.result.tool_calls.is_array() && !c.result.tool_calls.empty();
      server_.metrics().request_finished(finish_reason_text(d.finish_reason, calls));
    }
  }

  void accumulate(ChoiceState& c, const CompletionDelta& d, const ChatPiece& piece) {
    ChoiceResult& r = c.result;
    if (!c.echo.empty()) r.text += std::exchange(c.echo, std::string());
    r.text += piece.content;
    r.reasoning += piece.reasoning;
    if (piece.tool_calls.is_array()) {
      if (!r.tool_calls.is_array()) r.tool_calls = json::array();
      for (auto& t : piece.tool_calls) r.tool_calls.push_back(t);
    }
    if (req_.logprobs) r.logprobs.insert(r.logprobs.end(), d.logprobs.begin(), d.logprobs.end());
  }

  void stream_delta(ChoiceState& c, const CompletionDelta& d, const ChatPiece& piece) {
    bool has_lp = req_.logprobs && !d.logprobs.empty();
    bool usage = req_.include_usage;
    std::string finish;
    if (d.finish_reason != FinishReason::None) {
      bool calls = c.tool_calls_sent > 0 || (piece.tool_calls.is_array() && !piece.tool_calls.empty());
      finish = finish_reason_text(d.finish_reason, calls);
    }
    if (chat_) {
      json delta = json::object();
      if (!piece.content.empty()) delta["content"] = piece.content;
      if (!piece.reasoning.empty()) delta["reasoning_content"] = piece.reasoning;
      if (!delta.empty() || has_lp)
        send_chunk(chat_chunk_json(rid_, c.result.index, std::move(delta), has_lp ? chat_logprobs_json(d.logprobs, token_text_) : json(nullptr), "", usage));
      if (piece.tool_calls.is_array() && !piece.tool_calls.empty()) {
        json calls = json::array();
        for (auto call : piece.tool_calls) {
          call["index"] = c.tool_calls_sent++;
          calls.push_back(std::move(call));
        }
        send_chunk(chat_chunk_json(rid_, c.result.index, {{"tool_calls", std::move(calls)}}, nullptr, "", usage));
      }
      if (!finish.empty()) send_chunk(chat_chunk_json(rid_, c.result.index, json::object(), nullptr, finish, usage));
    } else {
      std::string text = std::exchange(c.echo, std::string()) + piece.content;
      if (!text.empty() || has_lp || !finish.empty()) {
        json lp = has_lp ? completion_logprobs_json(d.logprobs, token_text_, text_offset(c), req_.top_logprobs > 0)
                         : json(nullptr);
        c.result.text += text;  // kept for text offsets
        send_chunk(completion_chunk_json(rid_, c.result.index, text, std::move(lp), finish, usage));
      }
    }
    if (d.finish_reason == FinishReason::Error)
      send_chunk(error_body(500, d.error.empty() ? "generation failed" : d.error));
  }

  // Byte offset of the next streamed text in this choice's whole text.
  int64_t text_offset(const ChoiceState& c) const { return static_cast<int64_t>(c.result.text.size()); }

  json usage() const {
    int64_t prompt = 0, cached = 0, completion = 0;
    for (auto& r : runs_) prompt += r.prompt_tokens, cached += r.cached_tokens;
    for (auto& c : choices_) completion += c.result.completion_tokens;
    return usage_json(prompt, completion, cached);
  }

  void finish_stream() {
    if (req_.include_usage) send_chunk(usage_chunk_json(rid_, chat_ ? "chat.completion.chunk" : "text_completion", usage()));
    writer_->write(sse_done());
    writer_->end_stream();
  }

  void send_response() {
    if (!error_.empty()) throw ApiError(500, fmt::format("Generation failed: {}", error_));
    std::vector<ChoiceResult> results;
    for (auto& c : choices_) results.push_back(std::move(c.result));
    json body = chat_ ? chat_completion_json(rid_, results, usage(), req_.logprobs, token_text_)
                      : completion_json(rid_, results, usage(), req_.logprobs, req_.top_logprobs > 0, token_text_);
    server_.reply(http_, *writer_, {200, "application/json", dump_json(body), {}});
  }

  void record_metrics() {
    auto end = Clock::now();
    auto secs = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
    if (first_token_ != Clock::time_point{}) server_.metrics().ttft.observe(secs(first_token_ - arrival_));
    for (auto& c : choices_)
      if (c.result.completion_tokens > 1)
        server_.metrics().tpot.observe(secs(c.last_token - c.first_token) / double(c.result.completion_tokens - 1));
    server_.metrics().e2e.observe(secs(end - arrival_));
  }

  std::shared_ptr<void> slot_;  // first member: released last, when everything else is gone
  OpenAiServer& server_;
  std::shared_ptr<ServingContext> ctx_holder_;
  const ServingContext& ctx_;
  std::shared_ptr<HttpRequest> request_;
  const HttpRequest& http_;
  std::shared_ptr<ResponseWriter> writer_;
  std::atomic<uint32_t> pending_{0};  // notifications not yet handled by a pump
  bool ended_ = false;
  Clock::time_point arrival_, first_token_{};
  TokenText token_text_;
  bool chat_ = false;
  ParsedRequest req_;
  ResponseIdentity rid_;
  std::vector<PromptRun> runs_;
  std::vector<ChoiceState> choices_;
  std::string error_;
  std::string chat_prompt_text_;
};

}  // namespace

void start_generation(OpenAiServer& server, std::shared_ptr<ServingContext> ctx, std::shared_ptr<HttpRequest> request,
                      std::shared_ptr<ResponseWriter> writer, std::shared_ptr<void> slot) {
  auto g = std::make_shared<Generation>(server, std::move(ctx), std::move(request), std::move(writer), std::move(slot));
  g->start();
}

}  // namespace ferrum::server
