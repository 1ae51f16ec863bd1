// The SSE reader of `ferrum bench serve` (src/loadgen/sse.*): a byte stream split at arbitrary
// points gives the same events as the whole stream, and every event's JSON is read safely.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "loadgen/sse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t step = 1 + data[0] % 17;
  std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<std::string> whole, pieces;
  ferrum::loadgen::SseParser a, b;
  a.feed(bytes, whole);
  for (size_t i = 0; i < bytes.size(); i += step) b.feed(bytes.substr(i, step), pieces);
  if (whole != pieces) __builtin_trap();
  for (const auto& e : whole) {
    auto chunk = ferrum::loadgen::parse_stream_chunk(e);
    (void)chunk;
    (void)ferrum::loadgen::error_message_of(e);
  }
  return 0;
}
