// safetensors files, memory-mapped: tensors are views into the mapping (no copy). Every
// header field is checked against the file, so a truncated or corrupt file is an error
// with the file name, never a crash.
#pragma once
#include <array>
#include <functional>
#include <map>
#include <mutex>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/gguf_quant.h"

namespace ferrum {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws ferrum::Error
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// All tensors of a model: one model.safetensors, or shards listed by
// model.safetensors.index.json.
class WeightStore {
 public:
  static WeightStore open_dir(const std::string& model_dir);
  static WeightStore open_file(const std::string& path);
  // Parses an in-memory safetensors image (tests, fuzzing); `name` is used in messages. The
  // bytes must outlive the store.
  static WeightStore parse(const uint8_t* data, size_t size, const std::string& name);

  bool has(const std::string& name) const { return tensors_.count(name) != 0 || quantized_.count(name) != 0; }
  // Throws ferrum::Error naming the tensor and the files when it is missing.
  const Tensor& get(const std::string& name) const;
  std::vector<std::string> names() const;
  size_t total_bytes() const;
  // Adds a tensor from elsewhere (a GGUF file's, converted); its owner keeps it alive.
  void add_tensor(const std::string& name, Tensor t);
  // A block-quantized tensor (GGUF), kept as its raw blocks: U8 [rows, bytes per row] of
  // `format`. get() gives it dequantized to F32 (`dequantize` is called once,
  // on first use) for code that needs dense values; a backend with a kernel for the format
  // takes the blocks (quantized()).
  struct Quantized {
    GgmlType format = GgmlType::F32;
    Tensor blocks;
    std::array<int64_t, 4> shape{};  // the dense shape
    int ndim = 0;
    std::function<Tensor(const Quantized&)> dequantize;
  };
  void add_quantized(const std::string& name, Quantized q);
  const Quantized* quantized(const std::string& name) const;
  bool has_quantized() const { return !quantized_.empty(); }

 private:
  void add_file(const std::string& path);
  void add_image(const uint8_t* data, size_t size, const std::string& path, std::shared_ptr<void> owner);
  std::map<std::string, Tensor> tensors_;
  std::map<std::string, Quantized> quantized_;
  mutable std::map<std::string, Tensor> dequantized_;  // get()'s F32 copies of quantized_
  std::unique_ptr<std::mutex> mu_ = std::make_unique<std::mutex>();  // guards dequantized_
  std::vector<std::string> files_;
};

}  // namespace ferrum
