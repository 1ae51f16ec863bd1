// GGUF header and metadata: any bytes are a GgufFile or a ferrum::Error. Accepted tensors are
// touched at both ends of their data, every metadata value is read through the typed getter of
// its type, and the metadata a loader reads next is read too: the tokenizer it describes
// (which must encode and decode a short text), the chat templates and the special tokens.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/gguf.h"
#include "models/gguf_tokenizer.h"

namespace {

void read_metadata(const ferrum::GgufFile& file) {
  using Type = ferrum::GgufValue::Type;
  for (const auto& [key, value] : file.metadata()) {
    try {
      if (value.type == Type::String) (void)file.get_string(key);
      else if (value.type == Type::Bool) (void)file.get_bool(key);
      else if (value.is_integer()) (void)file.get_int(key);
      else if (value.type != Type::Array) (void)file.get_float(key);
      else if (value.array_type == Type::String) (void)file.get_strings(key);
      else (void)file.get_numbers(key);
    } catch (const ferrum::Error&) {  // a u64 over 2^63-1, say
    }
  }
}

void read_tokenizer(const ferrum::GgufFile& file) {
  try {
    (void)ferrum::gguf_special_tokens(file);
    (void)ferrum::gguf_chat_templates(file);
  } catch (const ferrum::Error&) {
  }
  try {
    auto tokenizer = ferrum::tokenizer_from_gguf(file);
    auto ids = tokenizer->encode("Hello, world! 123 \xc3\xa9\xe4\xb8\xad <s>", true);
    (void)tokenizer->decode(ids, false);
  } catch (const ferrum::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto file = ferrum::GgufFile::parse(data, size, "fuzz.gguf");
    for (const auto& t : file->tensors()) {
      if (t.nbytes == 0) continue;
      volatile uint8_t first = t.data[0];
      volatile uint8_t last = t.data[t.nbytes - 1];
      (void)first;
      (void)last;
    }
    read_metadata(*file);
    read_tokenizer(*file);
  } catch (const ferrum::Error&) {
  }
  return 0;
}
