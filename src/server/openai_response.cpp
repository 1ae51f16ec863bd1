#include "server/openai_response.h"

#include <chrono>
#include <random>

namespace ferrum::server {

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse_event(const json& j) { return "data: " + dump_json(j) + "\n\n"; }

const char* finish_reason_text(FinishReason r, bool made_tool_calls) {
  switch (r) {
    case FinishReason::Stop: return made_tool_calls ? "tool_calls" : "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Abort: return "abort";
    case FinishReason::Error: return "error";
    case FinishReason::None: break;
  }
  return "";
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens) {
  return json{{"prompt_tokens", prompt_tokens},
              {"completion_tokens", completion_tokens},
              {"total_tokens", prompt_tokens + completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", cached_tokens}}}};
}

namespace {
json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

json nullable(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }
}  // namespace

json chat_logprobs_json(const std::vector<TokenLogprob>& lps, const TokenText& text) {
  json content = json::array();
  for (auto& lp : lps) {
    std::string tok = text(lp.token_id);
    json top = json::array();
    for (auto& [id, logprob] : lp.top) {
      std::string t = text(id);
      top.push_back({{"token", t}, {"logprob", logprob}, {"bytes", bytes_of(t)}});
    }
    content.push_back({{"token", tok}, {"logprob", lp.logprob}, {"bytes", bytes_of(tok)}, {"top_logprobs", std::move(top)}});
  }
  return json{{"content", std::move(content)}};
}

json completion_logprobs_json(const std::vector<TokenLogprob>& lps, const TokenText& text,
                              int64_t text_offset_start, bool with_top) {
  json tokens = json::array(), token_logprobs = json::array(), tops = json::array(), offsets = json::array();
  int64_t offset = text_offset_start;
  for (auto& lp : lps) {
    std::string tok = text(lp.token_id);
    tokens.push_back(tok);
    token_logprobs.push_back(lp.logprob);
    offsets.push_back(offset);
    offset += static_cast<int64_t>(tok.size());
    if (with_top) {
      json top = json::object();
      for (auto& [id, logprob] : lp.top) top[text(id)] = logprob;
      tops.push_back(std::move(top));
    } else {
      tops.push_back(nullptr);
    }
  }
  return json{{"tokens", std::move(tokens)}, {"token_logprobs", std::move(token_logprobs)},
              {"top_logprobs", std::move(tops)}, {"text_offset", std::move(offsets)}};
}

ResponseIdentity ResponseIdentity::make(const char* prefix, std::string model) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kHex[] = "0123456789abcdef";
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += kHex[rng() % 16];
  auto now = std::chrono::system_clock::now().time_since_epoch();
  return {std::move(id), std::chrono::duration_cast<std::chrono::seconds>(now).count(), std::move(model)};
}

json chat_completion_json(const ResponseIdentity& rid, const std::vector<ChoiceResult>& choices,
                          const json& usage, bool with_logprobs, const TokenText& text) {
  json out_choices = json::array();
  for (auto& c : choices) {
    bool calls = c.tool_calls.is_array() && !c.tool_calls.empty();
    json message = {{"role", "assistant"}, {"content", calls && c.text.empty() ? json(nullptr) : json(c.text)}};
    if (!c.reasoning.empty()) message["reasoning_content"] = c.reasoning;
    if (calls) message["tool_calls"] = c.tool_calls;
    out_choices.push_back({{"index", c.index},
                           {"message", std::move(message)},
                           {"logprobs", with_logprobs ? chat_logprobs_json(c.logprobs, text) : json(nullptr)},
                           {"finish_reason", finish_reason_text(c.finish_reason, calls)},
                           {"stop_reason", nullable(c.stop_reason)}});
  }
  return json{{"id", rid.id}, {"object", "chat.completion"}, {"created", rid.created}, {"model", rid.model},
              {"choices", std::move(out_choices)}, {"usage", usage}, {"system_fingerprint", nullptr}};
}

json completion_json(const ResponseIdentity& rid, const std::vector<ChoiceResult>& choices,
                     const json& usage, bool with_logprobs, bool with_top, const TokenText& text) {
  json out_choices = json::array();
  for (auto& c : choices) {
    out_choices.push_back({{"index", c.index},
                           {"text", c.text},
                           {"logprobs", with_logprobs ? completion_logprobs_json(c.logprobs, text, 0, with_top) : json(nullptr)},
                           {"finish_reason", finish_reason_text(c.finish_reason)},
                           {"stop_reason", nullable(c.stop_reason)}});
  }
  return json{{"id", rid.id}, {"object", "text_completion"}, {"created", rid.created}, {"model", rid.model},
              {"choices", std::move(out_choices)}, {"usage", usage}, {"system_fingerprint", nullptr}};
}

json chat_chunk_json(const ResponseIdentity& rid, int32_t index, json delta, json logprobs,
                     const std::string& finish_reason, bool usage_field) {
  json choice = {{"index", index}, {"delta", std::move(delta)}, {"logprobs", std::move(logprobs)},
                 {"finish_reason", nullable(finish_reason)}};
  json chunk = {{"id", rid.id}, {"object", "chat.completion.chunk"}, {"created", rid.created},
                {"model", rid.model}, {"choices", json::array({std::move(choice)})}};
  if (usage_field) chunk["usage"] = nullptr;
  return chunk;
}

json completion_chunk_json(const ResponseIdentity& rid, int32_t index, const std::string& text,
                           json logprobs, const std::string& finish_reason, bool usage_field) {
  json choice = {{"index", index}, {"text", text}, {"logprobs", std::move(logprobs)},
                 {"finish_reason", nullable(finish_reason)}};
  json chunk = {{"id", rid.id}, {"object", "text_completion"}, {"created", rid.created},
                {"model", rid.model}, {"choices", json::array({std::move(choice)})}};
  if (usage_field) chunk["usage"] = nullptr;
  return chunk;
}

json usage_chunk_json(const ResponseIdentity& rid, const char* object, const json& usage) {
  return json{{"id", rid.id}, {"object", object}, {"created", rid.created}, {"model", rid.model},
              {"choices", json::array()}, {"usage", usage}};
}

}  // namespace ferrum::server
