// safetensors header: any bytes are a WeightStore or a ferrum::Error, never a crash. Every
// tensor the parser accepts is touched at both ends, so an accepted shape or offset that points
// outside the image is an ASan report.
#include <cstdint>
#include <cstddef>

#include "core/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto store = ferrum::WeightStore::parse(data, size, "fuzz.safetensors");
    for (const auto& name : store.names()) {
      const ferrum::Tensor& t = store.get(name);
      const size_t n = t.nbytes();
      if (n == 0) continue;
      volatile uint8_t first = static_cast<const uint8_t*>(t.data)[0];
      volatile uint8_t last = static_cast<const uint8_t*>(t.data)[n - 1];
      (void)first;
      (void)last;
    }
  } catch (const ferrum::Error&) {
  }
  return 0;
}
