// GGUF files (llama.cpp's model format, v2 and v3), memory-mapped. The header (metadata
// key/values and tensor descriptions) is parsed and checked field by field against the file:
// a truncated or corrupt file is a ferrum::Error naming the field, never a crash. Tensor data
// stay in the mapping; quantized block layouts are in io/gguf_quant.h.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "io/gguf_quant.h"
#include "io/safetensors.h"

namespace ferrum {

// A metadata value. Arrays hold one element type (GGUF forbids mixed arrays); arrays of
// arrays are refused.
struct GgufValue {
  enum class Type : uint32_t {
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9,
    U64 = 10, I64 = 11, F64 = 12,
  };
  Type type = Type::U8;
  std::variant<uint64_t, int64_t, double, bool, std::string> scalar;  // integers, floats, bool, string
  Type array_type = Type::U8;  // of the elements, when type == Array
  std::vector<GgufValue> array;

  bool is_integer() const;
  // The value as a number (integers, floats and bools); throws on strings and arrays.
  double as_number() const;
};
const char* gguf_value_type_name(GgufValue::Type t);

struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> dims;  // GGUF order: dims[0] is the row length (innermost)
  uint64_t offset = 0;        // from the start of the data section
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;  // into the mapping
  int64_t numel() const;
  int64_t row_length() const { return dims.empty() ? 1 : dims[0]; }
  int64_t rows() const { return row_length() ? numel() / row_length() : 0; }
};

class GgufFile {
 public:
  static std::unique_ptr<GgufFile> open(const std::string& path);  // throws ferrum::Error
  // Parses an in-memory image (tests); `name` is used in messages. The bytes must outlive it.
  static std::unique_ptr<GgufFile> parse(const uint8_t* data, size_t size, const std::string& name);

  uint32_t version() const { return version_; }
  const std::string& path() const { return name_; }
  uint64_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }

  bool has(const std::string& key) const { return kv_.count(key) != 0; }
  // Typed getters: throw naming the key when it is missing or of another type.
  const GgufValue& get(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;  // any integer type, range-checked
  double get_float(const std::string& key) const;  // any number
  bool get_bool(const std::string& key) const;
  std::vector<std::string> get_strings(const std::string& key) const;  // an array of strings
  std::vector<double> get_numbers(const std::string& key) const;      // an array of numbers
  // The value, or `fallback` when the key is absent (still throws on a wrong type).
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key, double fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;

  const GgufTensor* find(const std::string& name) const;
  const GgufTensor& tensor(const std::string& name) const;  // throws naming the tensor

 private:
  GgufFile() = default;
  void parse_header(const uint8_t* data, size_t size);

  std::unique_ptr<MappedFile> file_;
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> by_name_;
};

}  // namespace ferrum
