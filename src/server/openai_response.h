// Building OpenAI response bodies and stream chunks (chat.completion, chat.completion.chunk,
// text_completion) from engine outputs. Pure functions of their inputs, so tests need no model.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/json.h"
#include "engine/engine.h"

namespace ferrum::server {

// The text of one token as clients see it (decoded, not the raw vocabulary string).
using TokenText = std::function<std::string(int32_t)>;

// Serializes without throwing on invalid UTF-8 (replaced by U+FFFD).
std::string dump_json(const json& j);
std::string sse_event(const json& j);  // "data: {...}\n\n"
inline const char* sse_done() { return "data: [DONE]\n\n"; }

// "stop", "length", "abort", "error"; "tool_calls" when the choice ended with tool calls.
const char* finish_reason_text(FinishReason r, bool made_tool_calls = false);

json usage_json(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens);

// Chat shape: {"content": [{token, logprob, bytes, top_logprobs: [...]}, ...]}.
json chat_logprobs_json(const std::vector<TokenLogprob>& lps, const TokenText& text);
// Completions shape: {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset};
// offsets count bytes from text_offset_start.
json completion_logprobs_json(const std::vector<TokenLogprob>& lps, const TokenText& text,
                              int64_t text_offset_start, bool with_top);

// What one choice accumulated by the end of a non-streamed request.
struct ChoiceResult {
  int32_t index = 0;
  std::string text;               // content (chat: after reasoning/tool calls were split off)
  std::string reasoning;          // chat: reasoning_content, empty when none
  json tool_calls;                // chat: OpenAI tool_calls array or null
  std::vector<TokenLogprob> logprobs;
  FinishReason finish_reason = FinishReason::None;
  std::string stop_reason;
  int64_t completion_tokens = 0;
};

// Shared identity of one response: its id, creation time and model name.
struct ResponseIdentity {
  std::string id;
  int64_t created = 0;
  std::string model;
  static ResponseIdentity make(const char* prefix, std::string model);  // random id, now
};

json chat_completion_json(const ResponseIdentity& rid, const std::vector<ChoiceResult>& choices,
                          const json& usage, bool with_logprobs, const TokenText& text);
json completion_json(const ResponseIdentity& rid, const std::vector<ChoiceResult>& choices,
                     const json& usage, bool with_logprobs, bool with_top, const TokenText& text);

// Stream chunks. delta is e.g. {"role":"assistant","content":""} or {"content":"..."};
// finish_reason empty for none; usage_field adds "usage": null (include_usage streams).
json chat_chunk_json(const ResponseIdentity& rid, int32_t index, json delta, json logprobs,
                     const std::string& finish_reason, bool usage_field);
json completion_chunk_json(const ResponseIdentity& rid, int32_t index, const std::string& text,
                           json logprobs, const std::string& finish_reason, bool usage_field);
// The final include_usage chunk: empty choices and the usage.
json usage_chunk_json(const ResponseIdentity& rid, const char* object, const json& usage);

}  // namespace ferrum::server
