#include "io/gguf_mix.h"

#include "core/error.h"

namespace ferrum {
namespace {

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

int64_t block_of(GgmlType t) { return ggml_type_info(static_cast<uint32_t>(t))->block_elems; }

// The first and last eighth of the layers, and every third one between (llama.cpp's
// use_more_bits).
bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

const std::vector<GgufFileType>& file_types() {
  static const std::vector<GgufFileType> types = {
      {"F32", 0, GgmlType::F32},     {"F16", 1, GgmlType::F16},       {"BF16", 32, GgmlType::BF16},
      {"Q8_0", 7, GgmlType::Q8_0},   {"Q4_0", 2, GgmlType::Q4_0},     {"Q4_K_M", 15, GgmlType::Q4_K},
      {"Q5_K_M", 17, GgmlType::Q5_K}, {"Q6_K", 18, GgmlType::Q6_K},
  };
  return types;
}

}  // namespace

std::optional<GgufFileType> gguf_file_type(const std::string& name) {
  for (const GgufFileType& t : file_types())
    if (t.name == name) return t;
  return std::nullopt;
}

std::string gguf_file_type_names() {
  std::string s;
  for (const GgufFileType& t : file_types()) s += (s.empty() ? "" : ", ") + t.name;
  return s;
}

GgufQuantMix::GgufQuantMix(GgufFileType type, const std::vector<std::string>& names) : type_(std::move(type)) {
  for (const std::string& n : names) {
    if (n == "output.weight") tied_ = false;
    if (contains(n, "attn_v.weight")) ++n_attn_v_;
    if (contains(n, "ffn_down")) ++n_ffn_down_;
  }
}

GgmlType GgufQuantMix::type_of(const std::string& name, const std::vector<int64_t>& dims) {
  FERRUM_CHECK(!dims.empty(), "tensor '{}' has no dims", name);
  // Vectors (norms, biases, RoPE factors) stay F32, as llama.cpp's converter writes them and
  // its quantizer leaves them.
  // So do MoE routers (ffn_gate_inp, and Qwen2-MoE's shared-expert gate), which llama.cpp's
  // quantizer never quantizes: they pick the experts.
  const bool quantizable = dims.size() >= 2 && name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0 &&
                           !contains(name, "_norm.weight") && !contains(name, "ffn_gate_inp");
  if (!quantizable) return GgmlType::F32;
  GgmlType t = type_.base;
  const int64_t cols = dims[0];
  const bool block_type = block_of(t) > 1;
  if (block_type) {
    const bool output = name == "output.weight" || (tied_ && name == "token_embd.weight");
    const bool mix = type_.name == "Q4_K_M" || type_.name == "Q5_K_M";
    if (output) {  // the output matrix gets 6 bits (8 where rows are not whole super-blocks)
      if (cols % block_of(t) != 0) t = GgmlType::Q8_0;
      else if (t != GgmlType::Q8_0) t = GgmlType::Q6_K;
    } else if (contains(name, "attn_v.weight")) {
      if (mix && more_bits(i_attn_v_, n_attn_v_)) t = GgmlType::Q6_K;
      ++i_attn_v_;
    } else if (contains(name, "ffn_down")) {
      if (mix && more_bits(i_ffn_down_, n_ffn_down_)) t = GgmlType::Q6_K;
      ++i_ffn_down_;
    }
  }
  if (cols % block_of(t) != 0) {  // rows that are not whole blocks: a 32-value type, else F16
    ++fallbacks_;
    t = t == GgmlType::Q4_K ? GgmlType::Q5_0 : t == GgmlType::Q5_K ? GgmlType::Q5_1 : t == GgmlType::Q6_K ? GgmlType::Q8_0 : t;
    if (cols % block_of(t) != 0) t = GgmlType::F16;
  }
  return t;
}

}  // namespace ferrum
