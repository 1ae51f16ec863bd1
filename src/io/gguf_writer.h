// Writes GGUF v3 files: metadata, then tensor descriptions, then the tensors' data, each at a
// 32-byte aligned offset. A tensor's bytes are produced when the file is written (quantized
// from the source one tensor at a time), so a model never needs to be in memory twice.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "io/gguf_quant.h"

namespace ferrum {

class GgufWriter {
 public:
  void add_string(const std::string& key, const std::string& v);
  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_strings(const std::string& key, const std::vector<std::string>& v);
  void add_i32s(const std::string& key, const std::vector<int32_t>& v);
  void add_f32s(const std::string& key, const std::vector<float>& v);
  void add_value(const std::string& key, const GgufValue& v);  // a value read from another file

  // dims in GGUF order (dims[0] the row length); `produce` fills exactly the tensor's bytes.
  void add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> dims,
                  std::function<void(std::vector<uint8_t>&)> produce);

  // Writes the file (to a temporary name, renamed when complete). `progress(done, total)` is
  // called after each tensor.
  void write(const std::string& path, const std::function<void(size_t, size_t)>& progress = {}) const;

 private:
  template <typename T>
  void add_scalar(const std::string& key, GgufValue::Type type, T v);
  template <typename T>
  void add_array(const std::string& key, GgufValue::Type type, const std::vector<T>& v);

  struct Entry {
    std::string name;
    GgmlType type;
    std::vector<int64_t> dims;
    uint64_t nbytes;
    std::function<void(std::vector<uint8_t>&)> produce;
  };
  std::vector<uint8_t> kv_;  // encoded key/value pairs
  uint64_t kv_count_ = 0;
  std::vector<Entry> tensors_;
};


}  // namespace ferrum
