// Parsing and validation of OpenAI chat-completions and completions request bodies into what
// the engine needs. Pure functions (no engine, no tokenizer): every rejection is an ApiError
// with the offending parameter named, so the HTTP layer can answer 400 in OpenAI's shape.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "engine/sampling_params.h"

namespace ferrum::server {

enum class Endpoint { Chat, Completions };

// One prompt of a completions request: text to tokenize, or token ids given by the client.
struct PromptInput {
  std::optional<std::string> text;
  std::vector<int32_t> token_ids;
};

struct ParsedRequest {
  Endpoint endpoint = Endpoint::Chat;
  std::string model;  // empty when the client did not name one

  // Chat: messages normalized for the chat template (content parts joined into a string,
  // tool-call arguments decoded into objects), the tools to offer, and template kwargs.
  ordered_json messages = ordered_json::array();
  ordered_json tools;                      // null or a non-empty array
  bool tool_choice_none = false;   // tools given but the model must not call them
  bool tool_choice_required = false;  // at least one call, constrained to the tools' schemas
  std::string tool_choice_name;       // a named function: exactly one call to it
  bool parallel_tool_calls = true;    // tool_choice required: several calls allowed
  ordered_json chat_template_kwargs = ordered_json::object();
  bool add_generation_prompt = true;
  bool continue_final_message = false;

  // Completions: one or more prompts.
  std::vector<PromptInput> prompts;
  bool echo = false;

  SamplingParams params;
  bool max_tokens_given = false;  // otherwise the rest of the context is allowed
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  bool logprobs = false;          // return logprobs (chat: logprobs=true; completions: logprobs=k)
  int32_t top_logprobs = 0;
};

// Parses a JSON body, keeping its key order (templates see message keys as the client sent
// them); a malformed document, or one that is not an object, is a 400.
ordered_json parse_json_body(std::string_view body);

// vocab_size bounds logit_bias keys and prompt token ids (<= 0: not checked).
ParsedRequest parse_chat_request(const ordered_json& body, int32_t vocab_size);
ParsedRequest parse_completion_request(const ordered_json& body, int32_t vocab_size);

// Checks the prompt against the context and settles max_tokens: the rest of the context when
// the client gave none; a 400 naming both numbers when prompt + max_tokens do not fit.
void fit_to_context(ParsedRequest& req, int32_t prompt_tokens, int32_t max_model_len);

}  // namespace ferrum::server
