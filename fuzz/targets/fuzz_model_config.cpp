// config.json to ModelConfig: any text is a config or a ferrum::Error naming what is wrong.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "io/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    (void)ferrum::ModelConfig::from_json_text(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const ferrum::Error&) {
  }
  return 0;
}
