#include "loadgen/sse.h"

#include "core/json.h"

namespace ferrum::loadgen {

void SseParser::feed(std::string_view bytes, std::vector<std::string>& events) {
  size_t start = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (c != '\n' && c != '\r') {
      last_was_cr_ = false;
      continue;
    }
    if (c == '\n' && last_was_cr_ && i == start && partial_.empty()) {
      // The LF of a CRLF whose CR already ended the line (possibly in the previous read).
      last_was_cr_ = false;
      start = i + 1;
      continue;
    }
    partial_.append(bytes.substr(start, i - start));
    line(partial_, events);
    partial_.clear();
    last_was_cr_ = c == '\r';
    start = i + 1;
  }
  partial_.append(bytes.substr(start));
}

void SseParser::line(std::string_view l, std::vector<std::string>& events) {
  if (l.empty()) {  // a blank line dispatches the event
    if (has_data_) events.push_back(std::move(data_));
    data_.clear();
    has_data_ = false;
    return;
  }
  if (l[0] == ':') return;  // comment (keep-alive pings)
  const size_t colon = l.find(':');
  std::string_view field = l.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? std::string_view{} : l.substr(colon + 1);
  if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
  if (field != "data") return;  // event:, id:, retry: say nothing we measure
  if (has_data_) data_ += '\n';
  data_.append(value);
  has_data_ = true;
}

namespace {
std::string one_line(std::string_view s, size_t max = 300) {
  std::string out;
  for (char c : s.substr(0, max)) out += (c == '\n' || c == '\r') ? ' ' : c;
  if (s.size() > max) out += "...";
  return out;
}

std::optional<int64_t> int_field(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int64_t>();
}

std::string string_field(const json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string{};
}
}  // namespace

StreamChunk parse_stream_chunk(std::string_view data) {
  StreamChunk c;
  if (data == "[DONE]") {
    c.done = true;
    return c;
  }
  json j = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    c.error = "invalid JSON in the event stream: " + one_line(data);
    return c;
  }
  if (auto e = j.find("error"); e != j.end() && !e->is_null()) {
    c.error = e->is_object() ? string_field(*e, "message") : e->is_string() ? e->get<std::string>() : one_line(e->dump());
    if (c.error->empty()) c.error = one_line(e->dump());
    return c;
  }
  if (auto ch = j.find("choices"); ch != j.end() && ch->is_array()) {
    for (const auto& choice : *ch) {  // n = 1 is what we send; concatenating is right for any n
      if (!choice.is_object()) continue;
      c.text += string_field(choice, "text");
      if (auto d = choice.find("delta"); d != choice.end() && d->is_object()) {
        c.text += string_field(*d, "content");
        // Thinking models stream reasoning first; it is generated output all the same.
        c.text += string_field(*d, "reasoning_content");
        c.text += string_field(*d, "reasoning");
      }
    }
  }
  if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
    c.completion_tokens = int_field(*u, "completion_tokens");
    c.prompt_tokens = int_field(*u, "prompt_tokens");
  }
  return c;
}

std::string error_message_of(std::string_view body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    if (auto e = j.find("error"); e != j.end()) {
      if (e->is_object() && e->contains("message") && (*e)["message"].is_string())
        return one_line((*e)["message"].get<std::string>());
      if (e->is_string()) return one_line(e->get<std::string>());
    }
    if (auto m = j.find("message"); m != j.end() && m->is_string()) return one_line(m->get<std::string>());
  }
  return one_line(body);
}

}  // namespace ferrum::loadgen
