#include "chat/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/file.h"

namespace ferrum::chat {
namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& path) { return read_file(path.string()); }

ordered_json read_json(const fs::path& path) {
  try {
    return ordered_json::parse(read_text(path));
  } catch (const ordered_json::exception& e) {
    fail("{} is not valid JSON: {}", path.string(), e.what());
  }
}

// chat_template is a string or a list of {"name": ..., "template": ...}.
std::map<std::string, std::string> templates_from_json(const ordered_json& value, const std::string& where) {
  std::map<std::string, std::string> out;
  if (value.is_string()) {
    out["default"] = value.get<std::string>();
  } else if (value.is_array()) {
    for (const auto& item : value) {
      if (!item.is_object() || !item.contains("name") || !item.contains("template") || !item["name"].is_string() ||
          !item["template"].is_string())
        fail("{}: chat_template list entries need string 'name' and 'template'", where);
      out[item["name"].get<std::string>()] = item["template"].get<std::string>();
    }
  } else {
    fail("{}: chat_template must be a string or a list of named templates", where);
  }
  if (out.empty()) fail("{}: chat_template is empty", where);
  return out;
}

std::string token_text(const ordered_json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return {};
}

}  // namespace

ChatTemplate::ChatTemplate(std::map<std::string, std::string> templates, ordered_json special_tokens)
    : sources_(std::move(templates)), special_tokens_(std::move(special_tokens)) {
  if (sources_.empty()) fail("no chat template given");
  if (!special_tokens_.is_object()) special_tokens_ = ordered_json::object();
  // Parse everything now so that render() is const and safe to call from several threads; a
  // template that does not parse reports its syntax error on each render.
  for (const auto& [name, source] : sources_) {
    try {
      compiled_[name] = std::make_shared<jinja::Template>(source);
    } catch (const Error& e) {
      parse_errors_[name] = e.what();
    }
  }
}

const std::string* ChatTemplate::syntax_error(const std::string& name) const {
  auto it = parse_errors_.find(name);
  return it == parse_errors_.end() ? nullptr : &it->second;
}

ordered_json ChatTemplate::special_tokens_from_config(const ordered_json& config) {
  ordered_json out = ordered_json::object();
  if (!config.is_object()) return out;
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
    if (!config.contains(key)) continue;
    std::string text = token_text(config[key]);
    if (!config[key].is_null() && (config[key].is_string() || !text.empty())) out[key] = text;
  }
  if (config.contains("additional_special_tokens") && config["additional_special_tokens"].is_array()) {
    ordered_json list = ordered_json::array();
    for (const auto& t : config["additional_special_tokens"]) list.push_back(token_text(t));
    out["additional_special_tokens"] = list;
  }
  return out;
}

ChatTemplate ChatTemplate::from_model_dir(const std::string& dir) {
  fs::path root(dir);
  if (!fs::is_directory(root)) fail("model directory {} does not exist", dir);
  ordered_json config = ordered_json::object();
  if (fs::exists(root / "tokenizer_config.json")) config = read_json(root / "tokenizer_config.json");
  ordered_json special = special_tokens_from_config(config);
  if (fs::exists(root / "chat_template.jinja")) {
    return ChatTemplate({{"default", read_text(root / "chat_template.jinja")}}, special);
  }
  if (fs::exists(root / "chat_template.json")) {
    ordered_json j = read_json(root / "chat_template.json");
    if (j.is_object() && j.contains("chat_template"))
      return ChatTemplate(templates_from_json(j["chat_template"], "chat_template.json"), special);
  }
  if (config.is_object() && config.contains("chat_template") && !config["chat_template"].is_null())
    return ChatTemplate(templates_from_json(config["chat_template"], "tokenizer_config.json"), special);
  fail("no chat template found in {} (looked for chat_template.jinja, chat_template.json and "
       "tokenizer_config.json 'chat_template'); give one with --chat-template FILE",
       dir);
}

ChatTemplate ChatTemplate::from_file(const std::string& path, const std::string& model_dir) {
  ordered_json special = ordered_json::object();
  if (!model_dir.empty() && fs::exists(fs::path(model_dir) / "tokenizer_config.json"))
    special = special_tokens_from_config(read_json(fs::path(model_dir) / "tokenizer_config.json"));
  return ChatTemplate({{"default", read_text(path)}}, special);
}

const std::string& ChatTemplate::select(bool has_tools) const {
  static const std::string kDefault = "default", kToolUse = "tool_use";
  if (has_tools && sources_.count(kToolUse)) return kToolUse;
  if (sources_.count(kDefault)) return kDefault;
  if (sources_.size() == 1) return sources_.begin()->first;
  throw InvalidRequest("this model has several chat templates and none is named 'default'");
}

const jinja::Template& ChatTemplate::compiled(const std::string& name) const {
  if (const std::string* err = syntax_error(name)) throw Error(*err);
  return *compiled_.at(name);
}

std::string ChatTemplate::render(const ChatRequest& req) const {
  if (!req.messages.is_array()) throw InvalidRequest("messages must be an array");
  if (!req.tools.is_null() && !req.tools.is_array()) throw InvalidRequest("tools must be an array");
  bool has_tools = req.tools.is_array() && !req.tools.empty();
  try {
    const jinja::Template& tmpl = compiled(select(has_tools));
    using jinja::Value;
    auto ctx = jinja::make_object();
    ctx->set("messages", Value::from_json(req.messages));
    ctx->set("tools", Value::from_json(req.tools));
    ctx->set("documents", Value::from_json(req.documents));
    ctx->set("add_generation_prompt", Value(req.add_generation_prompt));
    ctx->set("raise_exception", Value(jinja::Function([](jinja::CallArgs& a) -> Value {
      throw Error(a.positional.empty() ? std::string("raise_exception called") : a.positional[0].str());
    })));
    std::optional<std::time_t> fixed = fixed_time_;
    ctx->set("strftime_now", Value(jinja::Function([fixed](jinja::CallArgs& a) {
      std::time_t t = fixed ? *fixed : std::time(nullptr);
      std::tm tm{};
      localtime_r(&t, &tm);
      std::string format = a.positional.empty() ? "" : a.positional[0].str();
      char buf[256];
      size_t n = format.size() < 100 ? std::strftime(buf, sizeof buf, format.c_str(), &tm) : 0;
      return Value(std::string(buf, n));
    })));
    for (auto it = special_tokens_.begin(); it != special_tokens_.end(); ++it)
      ctx->set(it.key(), Value::from_json(it.value()));
    if (req.kwargs.is_object())
      for (auto it = req.kwargs.begin(); it != req.kwargs.end(); ++it) ctx->set(it.key(), Value::from_json(it.value()));
    return tmpl.render(Value(ctx), limits_);
  } catch (const InvalidRequest&) {
    throw;
  } catch (const Error& e) {
    throw InvalidRequest(fmt::format("chat template error: {}", e.what()));
  }
}

void normalize_tool_call_arguments(ordered_json& messages) {
  if (!messages.is_array()) return;
  for (auto& m : messages) {
    if (!m.is_object() || !m.contains("tool_calls") || !m["tool_calls"].is_array()) continue;
    for (auto& call : m["tool_calls"]) {
      if (!call.is_object() || !call.contains("function") || !call["function"].is_object()) continue;
      auto& fn = call["function"];
      if (!fn.contains("arguments") || !fn["arguments"].is_string()) continue;
      ordered_json parsed = ordered_json::parse(fn["arguments"].get<std::string>(), nullptr, false);
      if (!parsed.is_discarded() && parsed.is_object()) fn["arguments"] = parsed;
    }
  }
}

}  // namespace ferrum::chat

namespace ferrum::chat {

ChatRequest load_chat_request(const std::string& messages_path, const std::string& tools_path,
                              bool add_generation_prompt, const std::string& kwargs_json) {
  ChatRequest req;
  req.messages = read_json(messages_path);
  if (!req.messages.is_array()) fail("{}: messages must be a JSON array of {{\"role\", \"content\"}} objects", messages_path);
  for (const auto& m : req.messages)
    if (!m.is_object()) fail("{}: each message must be a JSON object", messages_path);
  if (!tools_path.empty()) {
    req.tools = read_json(tools_path);
    if (!req.tools.is_array()) fail("{}: tools must be a JSON array of tool definitions", tools_path);
  }
  req.add_generation_prompt = add_generation_prompt;
  if (!kwargs_json.empty()) {
    req.kwargs = ordered_json::parse(kwargs_json, nullptr, false);
    if (req.kwargs.is_discarded() || !req.kwargs.is_object())
      fail("--kwargs must be a JSON object, e.g. '{{\"enable_thinking\": false}}'");
  }
  return req;
}

}  // namespace ferrum::chat
