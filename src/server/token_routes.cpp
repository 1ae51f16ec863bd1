// POST /tokenize and /detokenize (vLLM's shapes): text or a conversation to token ids, and back.
#include <span>

#include "core/error.h"
#include "server/api_error.h"
#include "server/openai_request.h"
#include "server/openai_response.h"
#include "server/openai_server.h"
#include "tokenizer/tokenizer.h"

namespace ferrum::server {

void serve_tokenize(OpenAiServer& server, const ServingContext& ctx, const HttpRequest& request,
                    ResponseWriter& writer) {
  ordered_json body = parse_json_body(request.body);
  bool add_special = true;
  if (auto it = body.find("add_special_tokens"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) bad_request("add_special_tokens", "'add_special_tokens' must be a boolean");
    add_special = it->get<bool>();
  }
  std::string text;
  if (auto it = body.find("prompt"); it != body.end()) {
    if (!it->is_string()) bad_request("prompt", "'prompt' must be a string");
    text = it->get<std::string>();
  } else if (body.contains("messages")) {
    if (!ctx.chat) bad_request("messages", "This model has no chat template");
    ordered_json chat_body = {{"messages", body["messages"]}};
    for (const char* key : {"add_generation_prompt", "continue_final_message", "chat_template_kwargs", "tools"})
      if (body.contains(key)) chat_body[key] = body[key];
    ParsedRequest req = parse_chat_request(chat_body, ctx.tokenizer->vocab_size());
    try {
      text = ctx.chat->render(req.messages, req.tools, req.add_generation_prompt, req.continue_final_message,
                              req.chat_template_kwargs);
    } catch (const Error& e) {
      bad_request("messages", "The chat template rejected the conversation: {}", e.what());
    }
    if (!body.contains("add_special_tokens")) add_special = false;  // the template adds them
  } else {
    bad_request("prompt", "'prompt' (a string) or 'messages' is required");
  }
  std::vector<int32_t> ids = ctx.tokenizer->encode(text, add_special);
  json out = {{"tokens", ids}, {"count", ids.size()}, {"max_model_len", ctx.max_model_len}};
  if (auto it = body.find("return_token_strs"); it != body.end() && it->is_boolean() && it->get<bool>()) {
    json strs = json::array();
    for (int32_t id : ids) strs.push_back(ctx.tokenizer->id_to_token(id));
    out["token_strs"] = std::move(strs);
  }
  server.reply(request, writer, {200, "application/json", dump_json(out), {}});
}

void serve_detokenize(OpenAiServer& server, const ServingContext& ctx, const HttpRequest& request,
                      ResponseWriter& writer) {
  ordered_json body = parse_json_body(request.body);
  auto it = body.find("tokens");
  if (it == body.end() || !it->is_array()) bad_request("tokens", "'tokens' (a list of token ids) is required");
  std::vector<int32_t> ids;
  int32_t vocab = ctx.tokenizer->vocab_size();
  for (auto& v : *it) {
    if (!v.is_number_integer()) bad_request("tokens", "'tokens' must hold integers");
    int64_t id = v.get<int64_t>();
    if (v.is_number_unsigned() || id < 0 || id >= vocab)
      if (v.is_number_unsigned() ? v.get<uint64_t>() >= static_cast<uint64_t>(vocab) : (id < 0 || id >= vocab))
        bad_request("tokens", "token id {} is outside the vocabulary (size {})", v.dump(), vocab);
    ids.push_back(static_cast<int32_t>(id));
  }
  std::string text = ctx.tokenizer->decode(ids, false);
  server.reply(request, writer, {200, "application/json", dump_json(json{{"prompt", text}}), {}});
}

}  // namespace ferrum::server
