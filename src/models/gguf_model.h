// Decoder models as GGUF files, both ways, in llama.cpp's conventions: the architecture keys
// (`llama`, `qwen2`, `qwen3`), tensor names (token_embd, blk.N.attn_q, ...), dims in GGUF order,
// q/k rows of `llama` permuted for its interleaved RoPE, and the tokenizer and chat template
// in the metadata.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/json.h"
#include "io/gguf.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "models/gguf_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace ferrum {

bool is_gguf_path(const std::string& path);  // a regular file named *.gguf

// (Hugging Face name, GGUF name) of every tensor of a model of this config (biases and q/k
// norms only where the architecture has them; lm_head only when not tied).
std::vector<std::pair<std::string, std::string>> gguf_tensor_names(const ModelConfig& c);

// The config a GGUF file describes (architecture keys, token ids, tied output).
ModelConfig config_from_gguf(const GgufFile& g);
// Its tensors under their Hugging Face names, in Hugging Face shapes: F32/F16/BF16 as views of
// the mapping (the file stays mapped while any lives), quantized types as their blocks
// (WeightStore::quantized; get() dequantizes to F32 on first use), and llama's q/k rows put
// back in rotate-half order. Unsupported types fail naming the tensor.
WeightStore weights_from_gguf(std::shared_ptr<GgufFile> g, const ModelConfig& c);

// A model folder's or a .gguf file's tokenizer.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model);

// `ferrum quantize`: a Hugging Face folder or a GGUF file to a GGUF file of `type` (a name of
// io/gguf_mix.h: F32, F16, BF16, Q8_0, Q4_0, Q4_K_M, Q5_K_M, Q6_K), each tensor's type chosen
// by GgufQuantMix as llama-quantize chooses it. A GGUF input keeps its metadata and tensor
// order. dummy: random weights (models' dummy pattern) for config.json's shape instead of the
// safetensors files, for benchmarks; the tokenizer is written when the folder has one, else
// tokenizer.ggml.model "none" (llama.cpp loads such a file with <arch>.vocab_size dummy tokens).
// random_blocks (dummy only): each quantized tensor is written as random valid blocks of its
// type (io/gguf_quant.h's random_blocks) instead of quantized dummy floats, in seconds rather
// than minutes; the mix, the other tensors and the metadata are the same.
void convert_to_gguf(const std::string& model_dir, const std::string& out_path, const std::string& type,
                     const std::function<void(size_t, size_t)>& progress = {}, bool dummy = false,
                     bool random_blocks = false);

}  // namespace ferrum
