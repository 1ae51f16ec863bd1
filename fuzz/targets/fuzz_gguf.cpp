// GGUF header and metadata: any bytes are a GgufFile or a ferrum::Error. Accepted tensors are
// touched at both ends of their data, and every metadata value is read through the typed getters.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/gguf.h"

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
    for (const auto& [key, value] : file->metadata()) {
      try {
        if (value.type == ferrum::GgufValue::Type::String) (void)file->get_string(key);
        else if (value.type == ferrum::GgufValue::Type::Array) (void)file->get_numbers(key);
        else (void)file->get_float(key);
      } catch (const ferrum::Error&) {
      }
    }
  } catch (const ferrum::Error&) {
  }
  return 0;
}
