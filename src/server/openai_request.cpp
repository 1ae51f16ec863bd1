#include "server/openai_request.h"

#include <cmath>
#include <limits>
#include <set>

#include "core/error.h"
#include "server/api_error.h"
#include "server/structured_request.h"

namespace ferrum::server {
namespace {

constexpr int32_t kMaxN = 128;
constexpr size_t kMaxStops = 16;
constexpr int32_t kMaxTopLogprobs = 20;
// Bounds on work one request can ask for, apart from the body size (--max-body-size): each
// is a 400 naming the limit (docs/serving.md lists them).
constexpr size_t kMaxStopBytes = 1024;
constexpr size_t kMaxMessages = 4096;
constexpr size_t kMaxPrompts = 1024;

const char* type_name(const ordered_json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "boolean";
  if (v.is_number()) return "number";
  if (v.is_string()) return "string";
  if (v.is_array()) return "array";
  return "object";
}

// Reads an optional parameter; null counts as absent, as in OpenAI's API.
const ordered_json* field(const ordered_json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

double number_in(const ordered_json& v, const char* key, double lo, double hi) {
  if (!v.is_number()) bad_request(key, "'{}' must be a number, got {}", key, type_name(v));
  double d = v.get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) bad_request(key, "'{}' must be in [{}, {}], got {}", key, lo, hi, v.dump());
  return d;
}

int64_t integer_in(const ordered_json& v, const char* key, int64_t lo, int64_t hi) {
  if (!v.is_number()) bad_request(key, "'{}' must be an integer, got {}", key, type_name(v));
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d)) bad_request(key, "'{}' must be an integer, got {}", key, v.dump());
    if (d < static_cast<double>(lo) || d > static_cast<double>(hi))
      bad_request(key, "'{}' must be in [{}, {}], got {}", key, lo, hi, v.dump());
    return static_cast<int64_t>(d);
  }
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))
    bad_request(key, "'{}' must be in [{}, {}], got {}", key, lo, hi, v.dump());
  int64_t i = v.get<int64_t>();
  if (i < lo || i > hi) bad_request(key, "'{}' must be in [{}, {}], got {}", key, lo, hi, i);
  return i;
}

bool boolean(const ordered_json& v, const char* key) {
  if (!v.is_boolean()) bad_request(key, "'{}' must be a boolean, got {}", key, type_name(v));
  return v.get<bool>();
}

std::string string_of(const ordered_json& v, const char* key) {
  if (!v.is_string()) bad_request(key, "'{}' must be a string, got {}", key, type_name(v));
  return v.get<std::string>();
}

void reject_unknown_keys(const ordered_json& body, const std::set<std::string>& known) {
  for (auto it = body.begin(); it != body.end(); ++it)
    if (!known.count(it.key()))
      bad_request(it.key(), "Unrecognized request argument supplied: {}", it.key());
}

// Parameters of OpenAI's API that ferrum does not implement: a 400 rather than silence.
void reject_unsupported(const ordered_json& body) {
  static const char* kUnsupported[][2] = {
      {"functions", "use 'tools' instead"},
      {"function_call", "use 'tools' and 'tool_choice' instead"},
      {"audio", "audio output is not supported"},
      {"modalities", "only text output is supported"},
      {"prediction", "predicted outputs are not supported"},
      {"web_search_options", "web search is not supported"},
      {"suffix", "'suffix' (insertion) is not supported"},
  };
  for (auto& [key, why] : kUnsupported)
    if (field(body, key)) bad_request(key, "'{}' is not supported by ferrum: {}", key, why);
}

std::vector<std::string> parse_stop(const ordered_json& v) {
  std::vector<std::string> out;
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    if (v.size() > kMaxStops) bad_request("stop", "'stop' accepts at most {} strings", kMaxStops);
    for (auto& s : v) out.push_back(string_of(s, "stop"));
  } else {
    bad_request("stop", "'stop' must be a string or a list of strings, got {}", type_name(v));
  }
  for (auto& s : out) {
    if (s.empty()) bad_request("stop", "'stop' strings must not be empty");
    if (s.size() > kMaxStopBytes) bad_request("stop", "'stop' strings must be at most {} bytes, got {}", kMaxStopBytes, s.size());
  }
  return out;
}

int32_t token_id(const ordered_json& v, const char* key, int32_t vocab_size) {
  int64_t hi = vocab_size > 0 ? vocab_size - 1 : std::numeric_limits<int32_t>::max();
  return static_cast<int32_t>(integer_in(v, key, 0, hi));
}

// The sampling and streaming parameters both endpoints share.
void parse_common(const ordered_json& body, int32_t vocab_size, ParsedRequest& req) {
  reject_unsupported(body);
  SamplingParams& p = req.params;
  parse_structured_output(body, p);
  if (auto* v = field(body, "model")) req.model = string_of(*v, "model");
  if (auto* v = field(body, "n")) p.n = static_cast<int32_t>(integer_in(*v, "n", 1, kMaxN));
  if (auto* v = field(body, "best_of")) {
    if (integer_in(*v, "best_of", 1, kMaxN) != p.n) bad_request("best_of", "'best_of' different from 'n' is not supported");
  }
  if (auto* v = field(body, "temperature")) p.temperature = static_cast<float>(number_in(*v, "temperature", 0, 2));
  if (auto* v = field(body, "top_p")) {
    p.top_p = static_cast<float>(number_in(*v, "top_p", 0, 1));
    if (p.top_p <= 0) bad_request("top_p", "'top_p' must be in (0, 1], got {}", v->dump());
  }
  if (auto* v = field(body, "top_k")) {
    int64_t k = integer_in(*v, "top_k", -1, std::numeric_limits<int32_t>::max());
    p.top_k = k < 0 ? 0 : static_cast<int32_t>(k);  // -1 means off, as in vLLM
  }
  if (auto* v = field(body, "min_p")) p.min_p = static_cast<float>(number_in(*v, "min_p", 0, 1));
  if (auto* v = field(body, "presence_penalty")) p.presence_penalty = static_cast<float>(number_in(*v, "presence_penalty", -2, 2));
  if (auto* v = field(body, "frequency_penalty")) p.frequency_penalty = static_cast<float>(number_in(*v, "frequency_penalty", -2, 2));
  if (auto* v = field(body, "repetition_penalty")) {
    p.repetition_penalty = static_cast<float>(number_in(*v, "repetition_penalty", 0, 10));
    if (p.repetition_penalty <= 0) bad_request("repetition_penalty", "'repetition_penalty' must be > 0");
  }
  if (auto* v = field(body, "logit_bias")) {
    if (!v->is_object()) bad_request("logit_bias", "'logit_bias' must be an object mapping token ids to biases");
    for (auto it = v->begin(); it != v->end(); ++it) {
      const std::string& key = it.key();
      char* end = nullptr;
      errno = 0;
      long long id = std::strtoll(key.c_str(), &end, 10);
      if (key.empty() || *end != '\0' || errno != 0 || id < 0 || (vocab_size > 0 && id >= vocab_size) || id > INT32_MAX)
        bad_request("logit_bias", "'logit_bias' key '{}' is not a token id of this model (vocabulary size {})", key, vocab_size);
      p.logit_bias[static_cast<int32_t>(id)] = static_cast<float>(number_in(it.value(), "logit_bias", -100, 100));
    }
  }
  if (auto* v = field(body, "seed")) {
    int64_t s = integer_in(*v, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
    p.seed = static_cast<uint64_t>(s);
  }
  if (auto* v = field(body, "stop")) p.stop = parse_stop(*v);
  if (auto* v = field(body, "stop_token_ids")) {
    if (!v->is_array()) bad_request("stop_token_ids", "'stop_token_ids' must be a list of token ids");
    for (auto& id : *v) p.stop_token_ids.push_back(token_id(id, "stop_token_ids", vocab_size));
  }
  if (auto* v = field(body, "ignore_eos")) p.ignore_eos = boolean(*v, "ignore_eos");
  if (auto* v = field(body, "skip_special_tokens")) p.skip_special_tokens = boolean(*v, "skip_special_tokens");
  if (auto* v = field(body, "include_stop_str_in_output")) p.include_stop_str_in_output = boolean(*v, "include_stop_str_in_output");
  if (auto* v = field(body, "stream")) req.stream = boolean(*v, "stream");
  if (auto* v = field(body, "stream_options")) {
    if (!v->is_object()) bad_request("stream_options", "'stream_options' must be an object");
    if (!req.stream) bad_request("stream_options", "'stream_options' is only allowed when 'stream' is true");
    for (auto it = v->begin(); it != v->end(); ++it) {
      if (it.key() == "include_usage") {
        if (!it->is_null()) req.include_usage = boolean(*it, "stream_options.include_usage");
      } else {
        bad_request("stream_options", "Unrecognized stream option: {}", it.key());
      }
    }
  }
  if (auto* v = field(body, "user")) string_of(*v, "user");  // informational only
}

// max_tokens / max_completion_tokens / min_tokens, after the endpoint set its default.
void parse_lengths(const ordered_json& body, ParsedRequest& req) {
  SamplingParams& p = req.params;
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (auto* v = field(body, key)) {
      p.max_tokens = static_cast<int32_t>(integer_in(*v, key, 1, std::numeric_limits<int32_t>::max()));
      req.max_tokens_given = true;
    }
  }
  if (auto* v = field(body, "min_tokens")) {
    p.min_tokens = static_cast<int32_t>(integer_in(*v, "min_tokens", 0, std::numeric_limits<int32_t>::max()));
    if (req.max_tokens_given && p.min_tokens > p.max_tokens)
      bad_request("min_tokens", "'min_tokens' ({}) must not exceed 'max_tokens' ({})", p.min_tokens, p.max_tokens);
  }
}

// Joins text parts; any other part type (images, audio) is refused.
// obj[key] when it is a string, else "" (nlohmann's value() throws a type_error, a 500, when the
// key holds another type: found by fuzz_openai_request).
std::string string_or_empty(const ordered_json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string content_text(const ordered_json& content, size_t index) {
  std::string text;
  for (auto& part : content) {
    if (!part.is_object()) bad_request("messages", "messages[{}].content parts must be objects", index);
    std::string type = string_or_empty(part, "type");
    if (type != "text")
      bad_request("messages", "messages[{}].content part type '{}' is not supported (text only)", index, type);
    auto t = part.find("text");
    if (t == part.end() || !t->is_string()) bad_request("messages", "messages[{}].content text part needs a string 'text'", index);
    if (!text.empty()) text += "\n";
    text += t->get<std::string>();
  }
  return text;
}

ordered_json normalize_message(const ordered_json& m, size_t i) {
  if (!m.is_object()) bad_request("messages", "messages[{}] must be an object, got {}", i, type_name(m));
  auto role_it = m.find("role");
  if (role_it == m.end() || !role_it->is_string()) bad_request("messages", "messages[{}].role must be a string", i);
  std::string role = role_it->get<std::string>();
  static const std::set<std::string> kRoles = {"system", "developer", "user", "assistant", "tool"};
  if (!kRoles.count(role))
    bad_request("messages", "messages[{}].role '{}' is not one of system, developer, user, assistant, tool", i, role);
  ordered_json out = m;
  if (role == "developer") out["role"] = "system";  // templates know 'system'
  auto c = m.find("content");
  bool has_tool_calls = m.contains("tool_calls") && m["tool_calls"].is_array() && !m["tool_calls"].empty();
  if (c == m.end() || c->is_null()) {
    if (role != "assistant") bad_request("messages", "messages[{}] ({}) needs 'content'", i, role);
    out["content"] = has_tool_calls ? ordered_json(nullptr) : ordered_json("");
  } else if (c->is_array()) {
    out["content"] = content_text(*c, i);
  } else if (!c->is_string()) {
    bad_request("messages", "messages[{}].content must be a string or a list of parts, got {}", i, type_name(*c));
  }
  if (auto tc = m.find("tool_calls"); tc != m.end() && !tc->is_null()) {
    if (!tc->is_array()) bad_request("messages", "messages[{}].tool_calls must be a list", i);
    ordered_json calls = ordered_json::array();
    for (auto call : *tc) {
      if (!call.is_object() || !call.contains("function") || !call["function"].is_object())
        bad_request("messages", "messages[{}].tool_calls entries need a 'function' object", i);
      ordered_json& fn = call["function"];
      if (!fn.contains("name") || !fn["name"].is_string()) bad_request("messages", "messages[{}].tool_calls function needs a 'name'", i);
      // Templates expect arguments as an object (the Hugging Face convention).
      if (fn.contains("arguments") && fn["arguments"].is_string()) {
        ordered_json parsed = ordered_json::parse(fn["arguments"].get<std::string>(), nullptr, false);
        if (!parsed.is_discarded()) fn["arguments"] = parsed;
      }
      calls.push_back(std::move(call));
    }
    out["tool_calls"] = std::move(calls);
  }
  return out;
}

void parse_tools(const ordered_json& body, ParsedRequest& req) {
  if (auto* v = field(body, "tools")) {
    if (!v->is_array()) bad_request("tools", "'tools' must be a list");
    for (auto& t : *v) {
      if (!t.is_object() || string_or_empty(t, "type") != "function")
        bad_request("tools", "each tool must be an object with type 'function'");
      auto fn = t.find("function");
      if (fn == t.end() || !fn->is_object() || !fn->contains("name") || !(*fn)["name"].is_string())
        bad_request("tools", "each tool needs a 'function' with a string 'name'");
    }
    if (!v->empty()) req.tools = *v;
  }
  if (auto* v = field(body, "tool_choice")) {
    if (v->is_string() && v->get<std::string>() == "none") {
      req.tool_choice_none = true;
    } else if (v->is_string() && v->get<std::string>() == "auto") {
    } else if (v->is_string() && v->get<std::string>() == "required") {
      req.tool_choice_required = true;
    } else if (v->is_object()) {
      auto fn = v->find("function");
      if (v->value("type", std::string()) != "function" || fn == v->end() || !fn->is_object() || !fn->contains("name") ||
          !(*fn)["name"].is_string())
        bad_request("tool_choice", "a named tool_choice must be {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}");
      req.tool_choice_name = (*fn)["name"].get<std::string>();
    } else {
      bad_request("tool_choice", "'tool_choice' must be 'auto', 'none', 'required' or a named function");
    }
    if ((req.tool_choice_required || !req.tool_choice_name.empty()) && !req.tools.is_array())
      bad_request("tool_choice", "tool_choice 'required' or a named function needs 'tools'");
    if (!req.tool_choice_name.empty()) {
      bool known = false;
      for (const auto& t : req.tools) known = known || t["function"]["name"] == req.tool_choice_name;
      if (!known) bad_request("tool_choice", "tool_choice names '{}', which is not in 'tools'", req.tool_choice_name);
    }
    if ((req.tool_choice_required || !req.tool_choice_name.empty()) && req.params.grammar)
      bad_request("tool_choice", "tool_choice 'required' or a named function cannot be combined with another output constraint (response_format, guided_*)");
  }
  if (auto* v = field(body, "parallel_tool_calls")) req.parallel_tool_calls = boolean(*v, "parallel_tool_calls");
}

}  // namespace

// Nesting depth of a JSON text (brackets outside strings). Deep documents are refused before
// parsing: destroying them recurses, and request threads have small stacks.
size_t json_depth(std::string_view text) {
  size_t depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return max_depth;
}

ordered_json parse_json_body(std::string_view body) {
  constexpr size_t kMaxDepth = 64;
  if (json_depth(body) > kMaxDepth) throw ApiError(400, fmt::format("The request body nests JSON deeper than {} levels", kMaxDepth));
  ordered_json j = ordered_json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded()) throw ApiError(400, "The request body is not valid JSON");
  if (!j.is_object()) throw ApiError(400, fmt::format("The request body must be a JSON object, got {}", type_name(j)));
  return j;
}

ParsedRequest parse_chat_request(const ordered_json& body, int32_t vocab_size) {
  static const std::set<std::string> kKnown = {
      "model", "messages", "n", "best_of", "temperature", "top_p", "top_k", "min_p",
      "presence_penalty", "frequency_penalty", "repetition_penalty", "logit_bias", "seed",
      "stop", "stop_token_ids", "ignore_eos", "skip_special_tokens", "include_stop_str_in_output",
      "stream", "stream_options", "user", "max_tokens", "max_completion_tokens", "min_tokens",
      "logprobs", "top_logprobs", "tools", "tool_choice", "parallel_tool_calls",
      "chat_template_kwargs", "add_generation_prompt", "continue_final_message",
      "response_format", "functions", "function_call", "audio", "modalities", "prediction",
      "web_search_options", "guided_json", "guided_regex", "guided_choice", "guided_grammar",
      "structured_outputs", "any_whitespace",
      "metadata", "store", "service_tier", "reasoning_effort"};
  reject_unknown_keys(body, kKnown);
  ParsedRequest req;
  req.endpoint = Endpoint::Chat;
  parse_common(body, vocab_size, req);
  parse_lengths(body, req);
  if (auto* v = field(body, "store"); v && boolean(*v, "store"))
    bad_request("store", "'store' is not supported: ferrum keeps no completions");
  if (auto* v = field(body, "service_tier"); v && string_of(*v, "service_tier") != "auto" && v->get<std::string>() != "default")
    bad_request("service_tier", "'service_tier' '{}' is not supported", v->get<std::string>());
  if (auto* v = field(body, "metadata"); v && !v->is_object()) bad_request("metadata", "'metadata' must be an object");

  auto* msgs = field(body, "messages");
  if (!msgs) bad_request("messages", "'messages' is required");
  if (!msgs->is_array()) bad_request("messages", "'messages' must be a list, got {}", type_name(*msgs));
  if (msgs->empty()) bad_request("messages", "'messages' must contain at least one message");
  if (msgs->size() > kMaxMessages)
    bad_request("messages", "'messages' holds at most {} messages, got {}", kMaxMessages, msgs->size());
  for (size_t i = 0; i < msgs->size(); ++i) req.messages.push_back(normalize_message((*msgs)[i], i));

  parse_tools(body, req);
  if (auto* v = field(body, "logprobs")) req.logprobs = boolean(*v, "logprobs");
  if (auto* v = field(body, "top_logprobs")) {
    req.top_logprobs = static_cast<int32_t>(integer_in(*v, "top_logprobs", 0, kMaxTopLogprobs));
    if (!req.logprobs && req.top_logprobs > 0) bad_request("top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
  }
  if (req.logprobs) req.params.logprobs = req.top_logprobs;
  if (auto* v = field(body, "chat_template_kwargs")) {
    if (!v->is_object()) bad_request("chat_template_kwargs", "'chat_template_kwargs' must be an object");
    req.chat_template_kwargs = *v;
  }
  if (auto* v = field(body, "reasoning_effort")) {
    std::string effort = string_of(*v, "reasoning_effort");
    if (effort != "low" && effort != "medium" && effort != "high")
      bad_request("reasoning_effort", "'reasoning_effort' must be low, medium or high");
    req.chat_template_kwargs["reasoning_effort"] = effort;
  }
  if (auto* v = field(body, "add_generation_prompt")) req.add_generation_prompt = boolean(*v, "add_generation_prompt");
  if (auto* v = field(body, "continue_final_message")) req.continue_final_message = boolean(*v, "continue_final_message");
  if (req.continue_final_message) {
    if (req.add_generation_prompt)
      bad_request("continue_final_message", "'continue_final_message' needs 'add_generation_prompt' false");
    if (req.messages.back()["role"] != "assistant")
      bad_request("continue_final_message", "'continue_final_message' needs a final assistant message");
  }
  return req;
}

ParsedRequest parse_completion_request(const ordered_json& body, int32_t vocab_size) {
  static const std::set<std::string> kKnown = {
      "model", "prompt", "n", "best_of", "temperature", "top_p", "top_k", "min_p",
      "presence_penalty", "frequency_penalty", "repetition_penalty", "logit_bias", "seed",
      "stop", "stop_token_ids", "ignore_eos", "skip_special_tokens", "include_stop_str_in_output",
      "stream", "stream_options", "user", "max_tokens", "min_tokens", "logprobs", "echo",
      "suffix", "response_format", "guided_json", "guided_regex", "guided_choice", "guided_grammar",
      "structured_outputs", "any_whitespace"};
  reject_unknown_keys(body, kKnown);
  ParsedRequest req;
  req.endpoint = Endpoint::Completions;
  req.params.max_tokens = 16;  // OpenAI's default for completions
  req.max_tokens_given = true;
  parse_common(body, vocab_size, req);
  parse_lengths(body, req);

  auto* prompt = field(body, "prompt");
  if (!prompt) bad_request("prompt", "'prompt' is required");
  auto ids_of = [&](const ordered_json& arr) {
    PromptInput in;
    for (auto& id : arr) in.token_ids.push_back(token_id(id, "prompt", vocab_size));
    return in;
  };
  if (prompt->is_string()) {
    req.prompts.push_back({prompt->get<std::string>(), {}});
  } else if (prompt->is_array()) {
    if (prompt->empty()) bad_request("prompt", "'prompt' must not be an empty list");
    if (!(*prompt)[0].is_number() && prompt->size() > kMaxPrompts)
      bad_request("prompt", "'prompt' holds at most {} prompts, got {}", kMaxPrompts, prompt->size());
    if ((*prompt)[0].is_number()) {
      req.prompts.push_back(ids_of(*prompt));
    } else {
      for (auto& p : *prompt) {
        if (p.is_string()) req.prompts.push_back({p.get<std::string>(), {}});
        else if (p.is_array() && !p.empty()) req.prompts.push_back(ids_of(p));
        else bad_request("prompt", "'prompt' must be a string, a list of strings, a list of token ids or a list of such lists");
      }
    }
  } else {
    bad_request("prompt", "'prompt' must be a string, a list of strings or token ids, got {}", type_name(*prompt));
  }
  for (auto& p : req.prompts)
    if (p.text && p.text->empty()) bad_request("prompt", "'prompt' must not be empty");

  if (auto* v = field(body, "logprobs")) {
    if (v->is_boolean()) bad_request("logprobs", "'logprobs' of /v1/completions is an integer (number of top logprobs)");
    req.top_logprobs = static_cast<int32_t>(integer_in(*v, "logprobs", 0, kMaxTopLogprobs));
    req.logprobs = true;
    req.params.logprobs = req.top_logprobs;
  }
  if (auto* v = field(body, "echo")) req.echo = boolean(*v, "echo");
  if (req.echo && req.logprobs) bad_request("echo", "'echo' together with 'logprobs' (prompt logprobs) is not supported");
  return req;
}

void fit_to_context(ParsedRequest& req, int32_t prompt_tokens, int32_t max_model_len) {
  if (prompt_tokens <= 0) bad_request("prompt", "The prompt is empty after tokenization");
  if (prompt_tokens >= max_model_len)
    bad_request(req.endpoint == Endpoint::Chat ? "messages" : "prompt",
                "This model's maximum context length is {} tokens. However, your prompt has {} tokens, "
                "which leaves no room for a completion.",
                max_model_len, prompt_tokens);
  int64_t room = max_model_len - prompt_tokens;
  if (!req.max_tokens_given) {
    req.params.max_tokens = static_cast<int32_t>(room);
    return;
  }
  if (req.params.max_tokens > room)
    bad_request("max_tokens",
                "This model's maximum context length is {} tokens. However, you requested {} tokens "
                "({} in the prompt, {} for the completion). Please reduce the prompt or max_tokens.",
                max_model_len, static_cast<int64_t>(prompt_tokens) + req.params.max_tokens, prompt_tokens,
                req.params.max_tokens);
  if (req.params.min_tokens > req.params.max_tokens)
    bad_request("min_tokens", "'min_tokens' ({}) must not exceed 'max_tokens' ({})", req.params.min_tokens, req.params.max_tokens);
}

}  // namespace ferrum::server
