// The file types of `ferrum quantize` (F32, F16, BF16, Q8_0, Q4_0, Q4_K_M, Q5_K_M, Q6_K) and
// the per-tensor types each one writes, chosen as llama.cpp's quantizer chooses them (see
// docs/gguf.md, "Quantization mixes"): a file ferrum writes has llama-quantize's layout.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io/gguf_quant.h"

namespace ferrum {

struct GgufFileType {
  std::string name;    // "Q4_K_M"
  uint32_t ftype;      // general.file_type (llama_ftype)
  GgmlType base;       // the type of tensors no rule promotes
};
// The file type of a name; nullopt for names ferrum cannot write.
std::optional<GgufFileType> gguf_file_type(const std::string& name);
std::string gguf_file_type_names();  // "F32, F16, ..." for messages

class GgufQuantMix {
 public:
  // names: every tensor the file will hold, in file order (attn_v and ffn_down are counted
  // to find the first, last and every third layer that get more bits).
  GgufQuantMix(GgufFileType type, const std::vector<std::string>& names);
  // The type of tensor `name` (dims in GGUF order, dims[0] the row length). Call once per
  // tensor, in file order.
  GgmlType type_of(const std::string& name, const std::vector<int64_t>& dims);
  int fallbacks() const { return fallbacks_; }  // tensors whose rows forced another type

 private:
  GgufFileType type_;
  bool tied_ = true;  // no output.weight: token_embd is also the output
  int n_attn_v_ = 0, i_attn_v_ = 0, n_ffn_down_ = 0, i_ffn_down_ = 0, fallbacks_ = 0;
};

}  // namespace ferrum
