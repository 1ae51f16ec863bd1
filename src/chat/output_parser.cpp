#include "chat/output_parser.h"

#include <chrono>

#include "core/json.h"

namespace ferrum::chat {
namespace {

constexpr std::string_view kHermesOpen = "<tool_call>";
constexpr std::string_view kHermesClose = "</tool_call>";
constexpr std::string_view kPythonTag = "<|python_tag|>";
constexpr std::string_view kMistralCalls = "[TOOL_CALLS]";
constexpr std::string_view kMistralArgs = "[ARGS]";

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool all_ws(std::string_view s) {
  for (char c : s)
    if (!is_ws(c)) return false;
  return true;
}

void ltrim(std::string& s) {
  size_t i = 0;
  while (i < s.size() && is_ws(s[i])) ++i;
  s.erase(0, i);
}

size_t trailing_ws(std::string_view s) {
  size_t n = 0;
  while (n < s.size() && is_ws(s[s.size() - 1 - n])) ++n;
  return n;
}

// Length of the longest suffix of s that is a proper prefix of tag (a tag split across deltas).
size_t partial_tag(std::string_view s, std::string_view tag) {
  for (size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n)
    if (s.substr(s.size() - n) == tag.substr(0, n)) return n;
  return 0;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

constexpr size_t kIncomplete = std::string::npos;
constexpr size_t kMalformed = std::string::npos - 1;

// Index of the bracket closing the JSON value that opens at s[0] ('{' or '['), kIncomplete if
// the text ends first, kMalformed if brackets do not match.
size_t json_end(std::string_view s) {
  std::string stack;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (stack.size() > 512) return kMalformed;
      stack += c == '{' ? '}' : ']';
    } else if (c == '}' || c == ']') {
      if (stack.empty() || stack.back() != c) return kMalformed;
      stack.pop_back();
      if (stack.empty()) return i;
    }
    if (stack.empty()) return kMalformed;  // s must open with a bracket
  }
  return kIncomplete;
}

}  // namespace

void ParsedDelta::append(const ParsedDelta& o) {
  content += o.content;
  reasoning += o.reasoning;
  tool_calls.insert(tool_calls.end(), o.tool_calls.begin(), o.tool_calls.end());
}

OutputParser::OutputParser(ParserOptions options) : opt_(std::move(options)) {
  mode_ = opt_.reasoning && opt_.starts_in_reasoning ? Mode::Reasoning : Mode::Start;
  strip_leading_ = mode_ == Mode::Reasoning;
  rng_ = opt_.id_seed ? opt_.id_seed : uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
}

ParsedDelta OutputParser::feed(std::string_view text) {
  ParsedDelta out;
  buf_.append(text);
  step(out, false);
  return out;
}

ParsedDelta OutputParser::finish() {
  ParsedDelta out;
  step(out, true);
  return out;
}

ParsedDelta OutputParser::parse(std::string_view text, const ParserOptions& options) {
  OutputParser p(options);
  ParsedDelta out = p.feed(text);
  out.append(p.finish());
  return out;
}

std::string OutputParser::next_id() {
  static const char kAlnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  auto next = [this] {  // splitmix64
    uint64_t z = (rng_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  // Mistral templates require 9 alphanumeric characters; others use OpenAI's "call_" form.
  bool mistral = opt_.tools == ToolCallFormat::Mistral;
  std::string id = mistral ? "" : "call_";
  for (int i = 0; i < (mistral ? 9 : 24); ++i) id += kAlnum[next() % 62];
  return id;
}

bool OutputParser::add_call(ParsedDelta& out, const std::string& json_text, bool llama_style) {
  ordered_json obj = ordered_json::parse(json_text, nullptr, false);
  if (obj.is_discarded() || !obj.is_object() || !obj.contains("name") || !obj["name"].is_string()) return false;
  ToolCall call;
  call.name = obj["name"].get<std::string>();
  const char* key = obj.contains("arguments") ? "arguments" : "parameters";
  if (!llama_style && !obj.contains("arguments") && obj.contains("parameters")) key = "parameters";
  if (!obj.contains(key)) call.arguments = "{}";
  else if (obj[key].is_string()) call.arguments = obj[key].get<std::string>();
  else if (obj[key].is_object()) call.arguments = obj[key].dump();
  else return false;
  call.id = obj.contains("id") && obj["id"].is_string() ? obj["id"].get<std::string>() : next_id();
  out.tool_calls.push_back(std::move(call));
  return true;
}

void OutputParser::emit_content(ParsedDelta& out, std::string text) {
  if (text.empty()) return;
  content_started_ = true;
  after_call_ = false;
  out.content += text;
}

void OutputParser::step(ParsedDelta& out, bool final) {
  for (int guard = 0; guard < 100000; ++guard) {
    switch (mode_) {
      case Mode::Start: {
        if (!opt_.reasoning) {
          mode_ = Mode::Content;
          continue;
        }
        size_t i = 0;
        while (i < buf_.size() && is_ws(buf_[i])) ++i;
        std::string_view rest = std::string_view(buf_).substr(i);
        if (starts_with(rest, opt_.think_open)) {
          buf_.erase(0, i + opt_.think_open.size());
          mode_ = Mode::Reasoning;
          strip_leading_ = true;
          continue;
        }
        if (!final && starts_with(opt_.think_open, rest)) return;  // maybe a split <think>
        mode_ = Mode::Content;
        continue;
      }
      case Mode::Reasoning: {
        if (strip_leading_) {
          ltrim(buf_);
          if (buf_.empty() && !final) return;
          strip_leading_ = false;
        }
        size_t p = buf_.find(opt_.think_close);
        if (p != std::string::npos) {
          std::string_view r = std::string_view(buf_).substr(0, p);
          out.reasoning += r.substr(0, r.size() - trailing_ws(r));
          buf_.erase(0, p + opt_.think_close.size());
          mode_ = Mode::Content;
          strip_leading_ = true;
          continue;
        }
        if (final) {  // never closed: all of it was reasoning
          out.reasoning += buf_.substr(0, buf_.size() - trailing_ws(buf_));
          buf_.clear();
          return;
        }
        size_t hold = partial_tag(buf_, opt_.think_close);
        hold += trailing_ws(std::string_view(buf_).substr(0, buf_.size() - hold));
        out.reasoning += buf_.substr(0, buf_.size() - hold);
        buf_.erase(0, buf_.size() - hold);
        return;
      }
      case Mode::Content:
        if (!step_content(out, final)) return;
        continue;
      case Mode::HermesCall: {
        // Search only the new text (plus a possible split tag) so long calls stay linear.
        size_t from = scan_from_ > kHermesClose.size() ? scan_from_ - kHermesClose.size() : 0;
        size_t p = buf_.find(kHermesClose, from);
        if (p == std::string::npos && !final) {
          scan_from_ = buf_.size();
          return;
        }
        scan_from_ = 0;
        std::string body = buf_.substr(0, p);
        bool ok = add_call(out, body, false);
        if (!ok) emit_content(out, std::string(kHermesOpen) + buf_.substr(0, p == std::string::npos ? p : p + kHermesClose.size()));
        buf_.erase(0, p == std::string::npos ? buf_.size() : p + kHermesClose.size());
        after_call_ = ok;
        mode_ = Mode::Content;
        continue;
      }
      case Mode::JsonCalls:
      case Mode::MistralCalls: {
        bool mistral = mode_ == Mode::MistralCalls;
        // raw_ keeps the original text so that a failed parse can fall back to content.
        size_t i = 0;
        while (i < buf_.size() && (is_ws(buf_[i]) || buf_[i] == ';')) ++i;
        std::string_view rest = std::string_view(buf_).substr(i);
        if (!mistral && starts_with(rest, kPythonTag)) rest.remove_prefix(kPythonTag.size());
        while (!rest.empty() && is_ws(rest.front())) rest.remove_prefix(1);
        if (rest.empty() || (!mistral && starts_with(kPythonTag, rest))) {
          if (!final) return;
          buf_.clear();
          mode_ = Mode::Content;
          after_call_ = true;
          return;
        }
        size_t consumed = buf_.size() - rest.size();
        // A JSON value can only complete when a closing bracket arrives: skip rescanning
        // otherwise, so that long arguments streamed in small deltas stay linear.
        if (!final && scan_from_ > consumed && buf_.find_first_of("}]", scan_from_) == std::string::npos) {
          scan_from_ = buf_.size();
          return;
        }
        scan_from_ = buf_.size();
        bool ok = false;
        size_t end = kMalformed;
        if (rest.front() == '{' || rest.front() == '[') {
          end = json_end(rest);
          if (end == kIncomplete && !final) return;
          if (end != kIncomplete && end != kMalformed) {
            std::string text(rest.substr(0, end + 1));
            if (text.front() == '[') {
              ordered_json arr = ordered_json::parse(text, nullptr, false);
              ParsedDelta calls;
              ok = arr.is_array() && !arr.empty();
              for (size_t k = 0; ok && k < arr.size(); ++k) ok = add_call(calls, arr[k].dump(), !mistral);
              if (ok) out.append(calls);
            } else {
              ok = add_call(out, text, !mistral);
            }
          }
        } else if (mistral) {  // name[ARGS]{...}
          size_t a = rest.find(kMistralArgs);
          if (a == std::string::npos && !final && rest.size() < 256) return;
          if (a != std::string::npos && a + kMistralArgs.size() < rest.size()) {
            std::string_view args = rest.substr(a + kMistralArgs.size());
            end = args.front() == '{' ? json_end(args) : kMalformed;
            if (end == kIncomplete && !final) return;
            if (end != kIncomplete && end != kMalformed) {
              ordered_json obj = {{"name", std::string(rest.substr(0, a))}};
              ordered_json parsed = ordered_json::parse(args.substr(0, end + 1), nullptr, false);
              ok = !parsed.is_discarded() && parsed.is_object();
              if (ok) {
                obj["arguments"] = parsed;
                ok = add_call(out, obj.dump(), false);
              }
              end += a + kMistralArgs.size();
            }
          } else if (a != std::string::npos && !final) {
            return;
          }
        }
        if (!ok) {
          scan_from_ = 0;
          emit_content(out, raw_ + buf_);
          raw_.clear();
          buf_.clear();
          mode_ = Mode::Content;
          return;
        }
        raw_.clear();
        scan_from_ = 0;
        buf_.erase(0, consumed + end + 1);
        after_call_ = true;
        if (mistral) {
          mode_ = Mode::Content;
        } else {
          raw_.clear();  // further Llama calls follow ';' separators
        }
        continue;
      }
    }
  }
}

// Content mode: returns true when it switched mode (the caller loops), false when it waits.
bool OutputParser::step_content(ParsedDelta& out, bool final) {
  if (strip_leading_) {
    ltrim(buf_);
    if (buf_.empty() && !final) return false;
    strip_leading_ = false;
  }
  std::string_view marker;
  if (opt_.tools == ToolCallFormat::Hermes) marker = kHermesOpen;
  if (opt_.tools == ToolCallFormat::Mistral) marker = kMistralCalls;
  if (opt_.tools == ToolCallFormat::Llama3Json && !content_started_) {
    size_t i = 0;
    while (i < buf_.size() && is_ws(buf_[i])) ++i;
    std::string_view rest = std::string_view(buf_).substr(i);
    if (rest.empty() && !final) return false;
    if (!rest.empty() && (rest.front() == '{' || starts_with(rest, kPythonTag))) {
      raw_.clear();
      scan_from_ = 0;
      mode_ = Mode::JsonCalls;
      return true;
    }
    if (!final && starts_with(kPythonTag, rest)) return false;
    content_started_ = true;
  }
  if (marker.empty()) {
    if (after_call_ && all_ws(buf_)) {
      if (final) buf_.clear();
      return false;
    }
    emit_content(out, buf_);
    buf_.clear();
    return false;
  }
  size_t p = buf_.find(marker);
  if (p != std::string::npos) {
    std::string before = buf_.substr(0, p);
    if (!(after_call_ && all_ws(before))) emit_content(out, before);
    raw_ = std::string(marker);
    buf_.erase(0, p + marker.size());
    mode_ = marker == kHermesOpen ? Mode::HermesCall : Mode::MistralCalls;
    scan_from_ = 0;
    return true;
  }
  size_t hold = final ? 0 : partial_tag(buf_, marker);
  std::string text = buf_.substr(0, buf_.size() - hold);
  if (after_call_ && all_ws(text)) {
    if (final) buf_.clear();
    return false;  // whitespace between calls is dropped unless real content follows
  }
  emit_content(out, text);
  buf_.erase(0, buf_.size() - hold);
  return false;
}

ParserOptions detect_parser_options(std::string_view source, std::string_view prompt, bool tools_enabled) {
  auto has = [&](std::string_view needle) { return source.find(needle) != std::string_view::npos; };
  ParserOptions o;
  o.reasoning = has("<think>") || has("</think>");
  o.starts_in_reasoning = o.reasoning && prompt_opens_reasoning(prompt);
  if (tools_enabled) {
    if (has("<tool_call>")) o.tools = ToolCallFormat::Hermes;
    else if (has("[TOOL_CALLS]")) o.tools = ToolCallFormat::Mistral;
    else if (has("<|start_header_id|>") && (has("\"parameters\"") || has("<|python_tag|>")))
      o.tools = ToolCallFormat::Llama3Json;
  }
  return o;
}

bool prompt_opens_reasoning(std::string_view prompt, std::string_view think_open) {
  size_t end = prompt.size();
  while (end > 0 && is_ws(prompt[end - 1])) --end;
  return end >= think_open.size() && prompt.substr(end - think_open.size(), think_open.size()) == think_open;
}

}  // namespace ferrum::chat
