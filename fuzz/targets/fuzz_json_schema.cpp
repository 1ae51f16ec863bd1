// JSON Schema compilation: any JSON document compiles to a grammar or is an InvalidRequest.
// A compiled grammar is then run over a few bytes so that the matcher's expansion is covered.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/json.h"
#include "structured/json_schema.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ferrum::ordered_json schema = ferrum::ordered_json::parse(data, data + size, nullptr, false);
  if (schema.is_discarded()) return 0;
  try {
    auto grammar = ferrum::structured::compile_json_schema(schema);
    ferrum::structured::GrammarMatcher m(grammar);
    // Walk the grammar: always take the smallest byte it allows, for at most 64 bytes.
    for (int i = 0; i < 64 && m.can_continue(); ++i) {
      auto next = m.next_bytes();
      int b = 0;
      while (b < 256 && !next[b]) ++b;
      if (b == 256 || !m.advance(static_cast<uint8_t>(b))) __builtin_trap();
    }
  } catch (const ferrum::InvalidRequest&) {
  }
  return 0;
}
