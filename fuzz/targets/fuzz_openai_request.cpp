// OpenAI request bodies: any bytes are a ParsedRequest or an ApiError with a 4xx status (the
// server's 400/404/...), never another exception (which the server would answer with 500).
// The first byte picks chat or completions.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "server/api_error.h"
#include "server/openai_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool chat = data[0] & 1;
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    auto json = ferrum::server::parse_json_body(body);
    auto req = chat ? ferrum::server::parse_chat_request(json, 32000)
                    : ferrum::server::parse_completion_request(json, 32000);
    ferrum::server::fit_to_context(req, 10, 2048);
  } catch (const ferrum::server::ApiError& e) {
    if (e.status() < 400 || e.status() >= 500) __builtin_trap();
  } catch (const ferrum::InvalidRequest&) {  // the server answers 400
  }
  return 0;
}
