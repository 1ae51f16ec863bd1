// Server-sent events as OpenAI-compatible servers stream them: an incremental parser for the
// raw body bytes (events may be split anywhere across reads), and the reading of one event's
// JSON as a completion chunk.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferrum::loadgen {

// Splits a byte stream into events. Only `data:` fields matter to us; several data lines of
// one event are joined with '\n' (as the SSE spec says), comments (':...') and other fields
// are skipped, and LF, CRLF and CR line ends are all accepted.
class SseParser {
 public:
  // Appends the data of every event completed by `bytes` to `events`.
  void feed(std::string_view bytes, std::vector<std::string>& events);

 private:
  void line(std::string_view l, std::vector<std::string>& events);
  std::string partial_;   // bytes of an unfinished line
  std::string data_;      // data of the event being built
  bool has_data_ = false;
  bool last_was_cr_ = false;  // a CR ended the last line: a following LF belongs to it
};

// What one `data:` payload of a streamed completion says.
struct StreamChunk {
  bool done = false;                      // the `[DONE]` sentinel
  std::string text;                       // generated text (completions: text; chat: content or reasoning)
  std::optional<int64_t> completion_tokens;  // from a `usage` object
  std::optional<int64_t> prompt_tokens;
  std::optional<std::string> error;       // an `error` object (or unparseable JSON)
};

StreamChunk parse_stream_chunk(std::string_view data);

// The message of an OpenAI error body ({"error": {"message": ...}}), else the body itself,
// shortened to one line.
std::string error_message_of(std::string_view body);

}  // namespace ferrum::loadgen
