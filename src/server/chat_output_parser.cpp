#include "server/chat_output_parser.h"

#include <random>

#include "server/openai_response.h"

namespace ferrum::server {
namespace {

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";
constexpr std::string_view kToolOpen = "<tool_call>";
constexpr std::string_view kToolClose = "</tool_call>";

// Length of the longest suffix of text that is a proper prefix of tag (it may still become
// the tag once more text arrives).
size_t partial_tag_suffix(std::string_view text, std::string_view tag) {
  for (size_t n = std::min(text.size(), tag.size() - 1); n > 0; --n)
    if (text.substr(text.size() - n) == tag.substr(0, n)) return n;
  return 0;
}

std::string call_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kChars[rng() % 36];
  return id;
}

}  // namespace

TaggedOutputParser::TaggedOutputParser(TagParserOptions options)
    : options_(options),
      mode_(options.reasoning ? (options.starts_in_reasoning ? Mode::Reasoning : Mode::Start) : Mode::Content) {}

void TaggedOutputParser::emit(ChatPiece& out, std::string_view text) {
  if (mode_ == Mode::Reasoning) out.reasoning += text;
  else out.content += text;
}

void TaggedOutputParser::close_tool_call(ChatPiece& out, const std::string& body, bool terminated) {
  json call = json::parse(body, nullptr, false);
  if (call.is_object() && call.contains("name") && call["name"].is_string()) {
    json args = call.contains("arguments") ? call["arguments"] : call.value("parameters", json::object());
    if (!out.tool_calls.is_array()) out.tool_calls = json::array();
    out.tool_calls.push_back({{"id", call_id()}, {"type", "function"},
                              {"function", {{"name", call["name"]}, {"arguments", args.is_string() ? args.get<std::string>() : dump_json(args)}}}});
    ++calls_;
    return;
  }
  // Not a tool call after all: the text stays visible as content.
  out.content += std::string(kToolOpen) + body + (terminated ? std::string(kToolClose) : "");
}

void TaggedOutputParser::step(ChatPiece& out, bool final) {
  for (;;) {
    switch (mode_) {
      case Mode::Start: {
        // Reasoning models open with <think> (whitespace may come first).
        size_t ws = pending_.find_first_not_of(" \t\r\n");
        if (ws == std::string::npos) {
          if (!final) return;
          mode_ = Mode::Content;
          break;
        }
        std::string_view rest = std::string_view(pending_).substr(ws);
        if (rest.substr(0, kThinkOpen.size()) == kThinkOpen) {
          pending_.erase(0, ws + kThinkOpen.size());
          mode_ = Mode::Reasoning;
        } else if (!final && kThinkOpen.substr(0, rest.size()) == rest) {
          return;  // could still be <think>
        } else {
          mode_ = Mode::Content;
        }
        break;
      }
      case Mode::Reasoning: {
        size_t end = pending_.find(kThinkClose);
        if (end == std::string::npos) {
          size_t keep = final ? 0 : partial_tag_suffix(pending_, kThinkClose);
          emit(out, std::string_view(pending_).substr(0, pending_.size() - keep));
          pending_.erase(0, pending_.size() - keep);
          return;
        }
        emit(out, std::string_view(pending_).substr(0, end));
        pending_.erase(0, end + kThinkClose.size());
        strip_ = "\r\n";  // the blank line after </think> separates, it is not content
        mode_ = Mode::Content;
        break;
      }
      case Mode::Content: {
        if (!strip_.empty()) {
          size_t keep_from = pending_.find_first_not_of(strip_);
          pending_.erase(0, keep_from == std::string::npos ? pending_.size() : keep_from);
          if (pending_.empty()) return;  // more separators may follow
          strip_ = {};
        }
        size_t at = options_.tools ? pending_.find(kToolOpen) : std::string::npos;
        if (at == std::string::npos) {
          size_t keep = (final || !options_.tools) ? 0 : partial_tag_suffix(pending_, kToolOpen);
          emit(out, std::string_view(pending_).substr(0, pending_.size() - keep));
          pending_.erase(0, pending_.size() - keep);
          return;
        }
        emit(out, std::string_view(pending_).substr(0, at));
        pending_.erase(0, at + kToolOpen.size());
        mode_ = Mode::ToolCall;
        break;
      }
      case Mode::ToolCall: {
        size_t end = pending_.find(kToolClose);
        if (end == std::string::npos) {
          if (final) {
            close_tool_call(out, pending_, false);
            pending_.clear();
          }
          return;
        }
        close_tool_call(out, pending_.substr(0, end), true);
        pending_.erase(0, end + kToolClose.size());
        strip_ = " \t\r\n";  // whitespace between calls is not content
        mode_ = Mode::Content;
        break;
      }
    }
  }
}

ChatPiece TaggedOutputParser::feed(std::string_view text) {
  ChatPiece out;
  out.tool_calls = nullptr;
  pending_ += text;
  step(out, false);
  // Content right after tool calls is only whitespace in practice; keep it out of the reply.
  if (calls_ > 0 && out.content.find_first_not_of(" \t\r\n") == std::string::npos) out.content.clear();
  return out;
}

ChatPiece TaggedOutputParser::finish() {
  ChatPiece out;
  out.tool_calls = nullptr;
  step(out, true);
  if (calls_ > 0 && out.content.find_first_not_of(" \t\r\n") == std::string::npos) out.content.clear();
  return out;
}

}  // namespace ferrum::server
