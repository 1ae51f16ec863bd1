// tokenizer.json load: any text is a tokenizer or a ferrum::Error. A tokenizer that loads must
// also encode and decode a short text without crashing.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenizer_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto parsed = ferrum::tok::parse_tokenizer_json(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json");
    ferrum::HfTokenizer tokenizer(std::move(parsed), ferrum::json());
    auto ids = tokenizer.encode("Hello, world! 123 \xc3\xa9\xe4\xb8\xad <s>", true);
    (void)tokenizer.decode(ids, false);
  } catch (const ferrum::Error&) {
  }
  return 0;
}
