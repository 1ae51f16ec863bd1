#include "models/gguf_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "backend/dummy_fill.h"
#include "core/error.h"
#include "core/json.h"
#include "io/gguf_mix.h"
#include "io/gguf_writer.h"
#include "models/decoder_model.h"

namespace ferrum {
namespace fs = std::filesystem;

namespace {

// Hugging Face architectures and their GGUF names (the first of a GGUF name is what it reads as).
constexpr std::pair<const char*, const char*> kArchitectures[] = {{"LlamaForCausalLM", "llama"},
                                                                  {"MistralForCausalLM", "llama"},
                                                                  {"Qwen2ForCausalLM", "qwen2"},
                                                                  {"Qwen3ForCausalLM", "qwen3"},
                                                                  {"Qwen2MoeForCausalLM", "qwen2moe"},
                                                                  {"Qwen3MoeForCausalLM", "qwen3moe"}};

std::string gguf_arch(const std::string& hf) {
  for (const auto& [h, g] : kArchitectures)
    if (hf == h) return g;
  fail("architecture '{}' has no GGUF form here (llama, qwen2, qwen3, qwen2moe and qwen3moe do)", hf);
}

std::string hf_arch(const std::string& gguf) {
  for (const auto& [h, g] : kArchitectures)
    if (gguf == g) return h;
  return "";
}

// llama's q/k rows: Hugging Face keeps each head's rotary pairs as (i, i + D/2) (rotate-half);
// llama.cpp's converter interleaves them, (2i, 2i + 1). GGUF row h*D + 2i + j holds Hugging
// Face row h*D + j*D/2 + i.
int64_t hf_row_of_gguf_row(int64_t r, int64_t head_dim) {
  const int64_t h = r / head_dim, k = r % head_dim, i = k / 2, j = k % 2;
  return h * head_dim + j * (head_dim / 2) + i;
}

// A copy of llama's q/k tensor (any type: a row is whole blocks) with its rows in Hugging Face
// order.
std::shared_ptr<std::vector<uint8_t>> rows_in_hf_order(const GgufTensor& t, int64_t head_dim) {
  const size_t row_bytes = static_cast<size_t>(ggml_row_bytes(t.type, t.row_length()));
  auto buf = std::make_shared<std::vector<uint8_t>>(row_bytes * static_cast<size_t>(t.rows()));
  for (int64_t r = 0; r < t.rows(); ++r)
    std::memcpy(buf->data() + hf_row_of_gguf_row(r, head_dim) * row_bytes, t.data + r * row_bytes, row_bytes);
  return buf;
}

bool permuted(const std::string& arch, const std::string& hf_name) {
  return arch == "llama" && (hf_name.find("q_proj.weight") != std::string::npos ||
                             hf_name.find("k_proj.weight") != std::string::npos);
}

// The Hugging Face shape of a dummy model's weight.
std::vector<int64_t> dummy_shape(const ModelConfig& c, const std::string& name) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, D = c.head_dim, V = c.vocab_size;
  const int64_t q = c.num_attention_heads * D, kv = c.num_key_value_heads * D;
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  const int64_t E = c.moe.num_experts, IE = c.moe.intermediate_size, S = c.moe.shared_expert_intermediate_size;
  if (has("embed_tokens") || has("lm_head")) return {V, H};
  if (has("mlp.gate.weight")) return {E, H};
  if (has("experts.down_proj")) return {E, H, IE};
  if (has("experts.")) return {E, IE, H};
  if (has("shared_expert_gate")) return {1, H};
  if (has("shared_expert.down_proj")) return {H, S};
  if (has("shared_expert.")) return {S, H};
  if (has("q_norm") || has("k_norm")) return {D};
  if (has("norm")) return {H};
  if (has("q_proj.bias")) return {q};
  if (has("k_proj.bias") || has("v_proj.bias")) return {kv};
  if (has("q_proj")) return {q, H};
  if (has("k_proj") || has("v_proj")) return {kv, H};
  if (has("o_proj")) return {H, q};
  if (has("gate_proj") || has("up_proj")) return {I, H};
  if (has("down_proj")) return {H, I};
  fail("no dummy shape for '{}'", name);
}

// A weight of the dummy pattern (backend/dummy_fill.h: the values `--dummy` models use), F32.
Tensor dummy_tensor(const ModelConfig& c, const std::string& name) {
  const std::vector<int64_t> shape = dummy_shape(c, name);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  auto buf = std::make_shared<std::vector<float>>(static_cast<size_t>(n));
  const DummyRange r = dummy_range(name.find("norm") != std::string::npos);
  const uint64_t seed = dummy_seed(name.c_str());
  for (int64_t i = 0; i < n; ++i) (*buf)[i] = r.center + r.scale * dummy_unit(seed, static_cast<uint64_t>(i));
  Tensor t;
  t.dtype = DType::F32;
  t.ndim = static_cast<int>(shape.size());
  for (int i = 0; i < t.ndim; ++i) t.shape[i] = shape[i];
  t.data = buf->data();
  t.owner = buf;
  return t;
}

// The experts of a qwen2moe / qwen3moe file. llama.cpp renormalizes qwen3moe's top-k
// weights and not qwen2moe's (as the published models' norm_topk_prob); expert_weights_norm,
// where present, says. Layers without a router (ffn_gate_inp) are dense.
void moe_config_from_gguf(const GgufFile& g, const std::string& arch, ModelConfig& c) {
  const std::string k = arch + ".";
  MoeConfig& m = c.moe;
  m.num_experts = g.get_int(k + "expert_count");
  m.experts_per_token = g.get_int(k + "expert_used_count");
  m.intermediate_size = g.get_int(k + "expert_feed_forward_length");
  m.shared_expert_intermediate_size = arch == "qwen2moe" ? g.get_int(k + "expert_shared_feed_forward_length") : 0;
  m.norm_topk_prob = g.has(k + "expert_weights_norm") ? g.get_bool(k + "expert_weights_norm") : arch == "qwen3moe";
  if (m.num_experts <= 0 || m.experts_per_token <= 0 || m.experts_per_token > m.num_experts || m.intermediate_size <= 0)
    fail("GGUF file '{}': inconsistent {}.expert_* keys ({} experts, {} used, width {})", g.path(), arch,
         m.num_experts, m.experts_per_token, m.intermediate_size);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    if (!g.find("blk." + std::to_string(l) + ".ffn_gate_inp.weight")) m.mlp_only_layers.push_back(l);
}

// A tensor of the folder under its Hugging Face name; a sparse layer's stacked experts
// ("...mlp.experts.gate_proj.weight") are its per-expert tensors copied into one [E, rows, cols].
Tensor folder_tensor(const WeightStore& ws, const ModelConfig& c, const std::string& hf) {
  const size_t at = hf.find(".mlp.experts.");
  if (ws.has(hf) || at == std::string::npos) return ws.get(hf);
  const std::string prefix = hf.substr(0, at) + ".mlp.experts.", part = hf.substr(at + 13);
  const Tensor& first = ws.get(prefix + "0." + part);
  const size_t bytes = first.nbytes();
  auto buf = std::make_shared<std::vector<uint8_t>>(bytes * static_cast<size_t>(c.moe.num_experts));
  for (int64_t e = 0; e < c.moe.num_experts; ++e) {
    const Tensor& t = ws.get(prefix + std::to_string(e) + "." + part);
    if (t.dtype != first.dtype || t.shape != first.shape)
      fail("tensor '{}{}.{}' is {} {}, but expert 0's is {} {}", prefix, e, part, dtype_name(t.dtype), t.shape_str(),
           dtype_name(first.dtype), first.shape_str());
    std::memcpy(buf->data() + e * bytes, t.data, bytes);
  }
  Tensor out = first;
  out.ndim = 3;
  out.shape = {c.moe.num_experts, first.dim(0), first.dim(1), 0};
  out.data = buf->data();
  out.owner = buf;
  return out;
}

// GGUF dims (fastest first) of a folder tensor, without stacking a layer's experts to learn them.
std::vector<int64_t> folder_dims(const WeightStore& ws, const ModelConfig& c, const std::string& hf) {
  const size_t at = hf.find(".mlp.experts.");
  const bool stacked = !ws.has(hf) && at != std::string::npos;
  const Tensor& src = ws.get(stacked ? hf.substr(0, at) + ".mlp.experts.0." + hf.substr(at + 13) : hf);
  std::vector<int64_t> dims;
  for (int i = src.ndim - 1; i >= 0; --i) dims.push_back(src.shape[i]);
  if (stacked) dims.push_back(c.moe.num_experts);
  return dims;
}

}  // namespace

bool is_gguf_path(const std::string& path) {
  std::error_code ec;
  return path.size() > 5 && path.compare(path.size() - 5, 5, ".gguf") == 0 && fs::is_regular_file(path, ec);
}

std::vector<std::pair<std::string, std::string>> gguf_tensor_names(const ModelConfig& c) {
  std::vector<std::pair<std::string, std::string>> n = {{"model.embed_tokens.weight", "token_embd.weight"},
                                                        {"model.norm.weight", "output_norm.weight"}};
  if (!c.tie_word_embeddings) n.emplace_back("lm_head.weight", "output.weight");
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string hf = "model.layers." + std::to_string(l) + ".", gg = "blk." + std::to_string(l) + ".";
    n.emplace_back(hf + "input_layernorm.weight", gg + "attn_norm.weight");
    for (const char* p : {"q", "k", "v"}) {
      n.emplace_back(hf + "self_attn." + p + "_proj.weight", gg + "attn_" + p + ".weight");
      if (c.attention_bias) n.emplace_back(hf + "self_attn." + p + "_proj.bias", gg + "attn_" + p + ".bias");
    }
    if (c.qk_norm) {
      n.emplace_back(hf + "self_attn.q_norm.weight", gg + "attn_q_norm.weight");
      n.emplace_back(hf + "self_attn.k_norm.weight", gg + "attn_k_norm.weight");
    }
    n.emplace_back(hf + "self_attn.o_proj.weight", gg + "attn_output.weight");
    n.emplace_back(hf + "post_attention_layernorm.weight", gg + "ffn_norm.weight");
    if (!c.moe.sparse_layer(l)) {
      n.emplace_back(hf + "mlp.gate_proj.weight", gg + "ffn_gate.weight");
      n.emplace_back(hf + "mlp.up_proj.weight", gg + "ffn_up.weight");
      n.emplace_back(hf + "mlp.down_proj.weight", gg + "ffn_down.weight");
      continue;
    }
    // A sparse layer: the router, each projection's experts stacked [E, rows, cols] (as
    // llama.cpp's converter writes them), and Qwen2-MoE's shared expert and its gate.
    n.emplace_back(hf + "mlp.gate.weight", gg + "ffn_gate_inp.weight");
    for (const char* p : {"gate", "up", "down"})
      n.emplace_back(hf + "mlp.experts." + p + "_proj.weight", gg + "ffn_" + p + "_exps.weight");
    if (c.moe.shared_expert_intermediate_size > 0) {
      for (const char* p : {"gate", "up", "down"})
        n.emplace_back(hf + "mlp.shared_expert." + p + "_proj.weight", gg + "ffn_" + p + "_shexp.weight");
      n.emplace_back(hf + "mlp.shared_expert_gate.weight", gg + "ffn_gate_inp_shexp.weight");
    }
  }
  return n;
}

ModelConfig config_from_gguf(const GgufFile& g) {
  const std::string arch = g.get_string("general.architecture");
  const std::string hf = hf_arch(arch);
  if (hf.empty()) fail("GGUF file '{}': architecture '{}' is not supported (llama, qwen2, qwen3 are)", g.path(), arch);
  const std::string k = arch + ".";
  ModelConfig c;
  c.architecture = hf;
  c.model_type = arch;
  c.hidden_size = g.get_int(k + "embedding_length");
  c.num_hidden_layers = g.get_int(k + "block_count");
  c.intermediate_size = g.get_int(k + "feed_forward_length");
  c.num_attention_heads = g.get_int(k + "attention.head_count");
  c.num_key_value_heads = g.get_int(k + "attention.head_count_kv", c.num_attention_heads);
  if (c.hidden_size <= 0 || c.num_hidden_layers <= 0 || c.num_attention_heads <= 0 || c.num_key_value_heads <= 0 ||
      c.num_attention_heads % c.num_key_value_heads != 0)
    fail("GGUF file '{}': inconsistent {}.* sizes (hidden {}, layers {}, heads {} / {})", g.path(), arch,
         c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads);
  c.head_dim = g.get_int(k + "attention.key_length", c.hidden_size / c.num_attention_heads);
  c.max_position_embeddings = g.get_int(k + "context_length", 2048);
  c.rms_norm_eps = g.get_float(k + "attention.layer_norm_rms_epsilon", 1e-6);
  c.rope_theta = g.get_float(k + "rope.freq_base", 10000.0);
  const std::string scaling = g.get_string(k + "rope.scaling.type", "none");
  if (scaling == "linear") {
    c.rope_scaling.type = "linear";
    c.rope_scaling.factor = g.get_float(k + "rope.scaling.factor");
  } else if (scaling != "none") {
    fail("GGUF file '{}': RoPE scaling '{}' is not supported (linear and llama3's rope_freqs are)", g.path(), scaling);
  }
  if (const GgufTensor* f = g.find("rope_freqs.weight")) {  // Llama 3.1's scaling, per frequency
    if (f->type != GgmlType::F32 || f->numel() != c.head_dim / 2)
      fail("GGUF file '{}': rope_freqs.weight must be {} F32 values", g.path(), c.head_dim / 2);
    c.rope_scaling.type = "freq_factors";
    c.rope_scaling.freq_factors.resize(static_cast<size_t>(c.head_dim / 2));
    std::memcpy(c.rope_scaling.freq_factors.data(), f->data, f->nbytes);
  }
  // The embedding's rows (a padded vocabulary may have more rows than the tokenizer has
  // tokens), else the architecture key, else the token count.
  if (const GgufTensor* e = g.find("token_embd.weight"); e && e->dims.size() == 2) c.vocab_size = e->dims[1];
  else if (g.has(k + "vocab_size")) c.vocab_size = g.get_int(k + "vocab_size");
  else c.vocab_size = static_cast<int64_t>(g.get("tokenizer.ggml.tokens").array.size());
  c.tie_word_embeddings = g.find("output.weight") == nullptr;
  c.attention_bias = arch == "qwen2" || arch == "qwen2moe";
  c.qk_norm = arch == "qwen3" || arch == "qwen3moe";
  if (arch == "qwen2moe" || arch == "qwen3moe") moe_config_from_gguf(g, arch, c);
  std::set<int32_t> eos;
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
    if (g.has(key)) eos.insert(static_cast<int32_t>(g.get_int(key)));
  c.eos_token_ids.assign(eos.begin(), eos.end());
  if (g.has("tokenizer.ggml.bos_token_id")) c.bos_token_id = static_cast<int32_t>(g.get_int("tokenizer.ggml.bos_token_id"));
  return c;
}

WeightStore weights_from_gguf(std::shared_ptr<GgufFile> g, const ModelConfig& c) {
  const std::string arch = g->get_string("general.architecture");
  WeightStore ws;
  for (const auto& [hf, gg] : gguf_tensor_names(c)) {
    const GgufTensor& t = g->tensor(gg);
    const auto info = ggml_type_info(static_cast<uint32_t>(t.type));
    Tensor out;
    out.ndim = static_cast<int>(t.dims.size());
    for (int i = 0; i < out.ndim; ++i) out.shape[i] = t.dims[out.ndim - 1 - i];
    const bool plain = t.type == GgmlType::F32 || t.type == GgmlType::F16 || t.type == GgmlType::BF16;
    const bool permute = permuted(arch, hf);
    if (plain && !permute) {  // a view of the mapping, which the tensor keeps alive
      out.dtype = t.type == GgmlType::F32 ? DType::F32 : t.type == GgmlType::F16 ? DType::F16 : DType::BF16;
      out.data = const_cast<uint8_t*>(t.data);
      out.owner = std::shared_ptr<void>(g, out.data);
      ws.add_tensor(hf, out);
      continue;
    }
    if (plain) {  // llama's q/k rows put back in order, in their own type
      out.dtype = t.type == GgmlType::F32 ? DType::F32 : t.type == GgmlType::F16 ? DType::F16 : DType::BF16;
      const auto buf = rows_in_hf_order(t, c.head_dim);
      out.data = buf->data();
      out.owner = buf;
      ws.add_tensor(hf, out);
      continue;
    }
    if (!info->dequantizable)
      fail("GGUF file '{}': tensor '{}' has type {}, which ferrum does not read yet (F32, F16, BF16, Q4_0, Q4_1, "
           "Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and Q6_K are read)", g->path(), gg, info->name);
    // Kept as blocks (llama's q/k rows reordered: a row is whole blocks); dequantized to F32
    // only if a backend without a kernel for the type asks for it.
    const int64_t row = t.row_length(), rows = t.rows();
    const size_t row_bytes = static_cast<size_t>(ggml_row_bytes(t.type, row));
    WeightStore::Quantized q;
    q.format = t.type;
    q.ndim = out.ndim;
    q.shape = out.shape;
    q.blocks.dtype = DType::U8;
    q.blocks.ndim = 2;
    q.blocks.shape = {rows, static_cast<int64_t>(row_bytes), 0, 0};
    if (permute) {
      const auto buf = rows_in_hf_order(t, c.head_dim);
      q.blocks.data = buf->data();
      q.blocks.owner = buf;
    } else {
      q.blocks.data = const_cast<uint8_t*>(t.data);
      q.blocks.owner = std::shared_ptr<void>(g, q.blocks.data);
    }
    q.dequantize = [type = t.type, row, rows, row_bytes](const WeightStore::Quantized& qt) {
      auto buf = std::make_shared<std::vector<float>>(static_cast<size_t>(row * rows));
      const auto* src = static_cast<const uint8_t*>(qt.blocks.data);
      for (int64_t r = 0; r < rows; ++r) dequantize_row(type, src + r * row_bytes, buf->data() + r * row, row);
      Tensor d;
      d.dtype = DType::F32;
      d.ndim = qt.ndim;
      d.shape = qt.shape;
      d.data = buf->data();
      d.owner = buf;
      return d;
    };
    ws.add_quantized(hf, std::move(q));
  }
  return ws;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model) {
  if (is_gguf_path(model)) return tokenizer_from_gguf(*GgufFile::open(model));
  return Tokenizer::from_dir(model);
}

namespace {

// fn over [0, rows) in contiguous slices, one thread per core (rows are independent: the
// quantizers are pure functions of a row).
void rows_in_parallel(int64_t rows, const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t threads = std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, std::max<int64_t>(1, rows / 16));
  if (threads == 1) return fn(0, rows);
  std::vector<std::thread> pool;
  std::exception_ptr error;
  std::mutex m;
  for (int64_t t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      try {
        fn(rows * t / threads, rows * (t + 1) / threads);
      } catch (...) {
        std::lock_guard<std::mutex> lock(m);
        if (!error) error = std::current_exception();
      }
    });
  for (std::thread& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

// GGUF to GGUF: every key but the file type is copied; each tensor is dequantized row by row
// and quantized to the type the mix gives it (tensors stay in GGUF order and layout).
void requantize_gguf(const std::string& in, const std::string& out_path, const GgufFileType& type,
                     const std::function<void(size_t, size_t)>& progress) {
  std::shared_ptr<GgufFile> g = GgufFile::open(in);
  GgufWriter w;
  for (const auto& [key, value] : g->metadata())
    if (key != "general.file_type" && key != "general.quantization_version" && key != "general.alignment")
      w.add_value(key, value);
  w.add_u32("general.file_type", type.ftype);
  w.add_u32("general.quantization_version", 2);
  std::vector<std::string> names;
  for (const GgufTensor& t : g->tensors()) names.push_back(t.name);
  GgufQuantMix mix(type, names);
  for (const GgufTensor& t : g->tensors()) {
    const auto info = ggml_type_info(static_cast<uint32_t>(t.type));
    if (!info || !info->dequantizable)
      fail("quantize: tensor '{}' of '{}' has type {}, which ferrum cannot read", t.name, in, ggml_type_name(t.type));
    const GgmlType tt = mix.type_of(t.name, t.dims);
    w.add_tensor(t.name, tt, t.dims, [g, &t, tt](std::vector<uint8_t>& out) {
      const int64_t row = t.row_length(), rows = t.rows();
      const uint64_t in_bytes = ggml_row_bytes(t.type, row), out_bytes = ggml_row_bytes(tt, row);
      out.resize(out_bytes * static_cast<uint64_t>(rows));
      rows_in_parallel(rows, [&](int64_t r0, int64_t r1) {
        std::vector<float> x(static_cast<size_t>(row));
        for (int64_t r = r0; r < r1; ++r) {
          dequantize_row(t.type, t.data + r * in_bytes, x.data(), row);
          quantize_row(tt, x.data(), out.data() + r * out_bytes, row);
        }
      });
    });
  }
  w.write(out_path, progress);
}

// A tensor of random valid blocks (quantize --random-blocks), made row by row over the cores
// when the writer asks for it. The type is checked now, before any byte is written.
void add_random_blocks(GgufWriter& w, const std::string& name, GgmlType type, const std::vector<int64_t>& dims,
                       uint64_t seed) {
  if (!can_random_blocks(type))
    fail("quantize --random-blocks: tensor '{}' gets type {}, which has no random blocks", name, ggml_type_name(type));
  w.add_tensor(name, type, dims, [type, dims, seed](std::vector<uint8_t>& out) {
    int64_t rows = 1;
    for (size_t i = 1; i < dims.size(); ++i) rows *= dims[i];
    const uint64_t row_bytes = ggml_row_bytes(type, dims[0]);
    out.resize(row_bytes * static_cast<uint64_t>(rows));
    // A seed per row: the bytes do not depend on how the rows are split over the threads.
    rows_in_parallel(rows, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        random_blocks(type, seed + static_cast<uint64_t>(r), out.data() + r * row_bytes, dims[0]);
    });
  });
}

}  // namespace

void convert_to_gguf(const std::string& model_dir, const std::string& out_path, const std::string& type_name,
                     const std::function<void(size_t, size_t)>& progress, bool dummy, bool random_blocks) {
  const std::optional<GgufFileType> type = gguf_file_type(type_name);
  if (!type) fail("quantize: unknown type '{}' ({})", type_name, gguf_file_type_names());
  if (random_blocks && !dummy) fail("quantize: --random-blocks needs --dummy (it stands in for the dummy weights)");
  if (is_gguf_path(model_dir)) {
    if (dummy) fail("quantize: --dummy takes a model folder (its config.json), not a GGUF file");
    return requantize_gguf(model_dir, out_path, *type, progress);
  }
  ModelConfig c = ModelConfig::from_dir(model_dir);
  c.architecture = architecture_of(c);
  const std::string arch = gguf_arch(c.architecture);
  c.attention_bias = c.attention_bias || arch == "qwen2";
  c.qk_norm = arch == "qwen3" || arch == "qwen3moe";
  if (arch == "qwen3moe") c.moe.shared_expert_intermediate_size = 0;  // none in Qwen3-MoE
  if (c.rope_scaling.type != "default" && c.rope_scaling.type != "linear" && c.rope_scaling.type != "llama3")
    fail("quantize: RoPE scaling '{}' is not written to GGUF yet", c.rope_scaling.type);
  auto ws = std::make_shared<WeightStore>(dummy ? WeightStore() : WeightStore::open_dir(model_dir));
  if (!dummy && c.tie_word_embeddings && ws->has("lm_head.weight")) c.tie_word_embeddings = false;
  if (!dummy && !c.tie_word_embeddings && !ws->has("lm_head.weight")) c.tie_word_embeddings = true;

  GgufWriter w;
  w.add_string("general.architecture", arch);
  w.add_string("general.name", fs::path(model_dir).filename().string());
  w.add_u32("general.file_type", type->ftype);
  w.add_u32("general.quantization_version", 2);
  const std::string k = arch + ".";
  w.add_u32(k + "context_length", static_cast<uint32_t>(c.max_position_embeddings));
  w.add_u32(k + "embedding_length", static_cast<uint32_t>(c.hidden_size));
  w.add_u32(k + "block_count", static_cast<uint32_t>(c.num_hidden_layers));
  w.add_u32(k + "feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  w.add_u32(k + "attention.head_count", static_cast<uint32_t>(c.num_attention_heads));
  w.add_u32(k + "attention.head_count_kv", static_cast<uint32_t>(c.num_key_value_heads));
  w.add_u32(k + "attention.key_length", static_cast<uint32_t>(c.head_dim));
  w.add_u32(k + "attention.value_length", static_cast<uint32_t>(c.head_dim));
  w.add_f32(k + "attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  w.add_f32(k + "rope.freq_base", static_cast<float>(c.rope_theta));
  w.add_u32(k + "vocab_size", static_cast<uint32_t>(c.vocab_size));
  if (c.moe.num_experts > 0) {
    w.add_u32(k + "expert_count", static_cast<uint32_t>(c.moe.num_experts));
    w.add_u32(k + "expert_used_count", static_cast<uint32_t>(c.moe.experts_per_token));
    w.add_u32(k + "expert_feed_forward_length", static_cast<uint32_t>(c.moe.intermediate_size));
    if (c.moe.shared_expert_intermediate_size > 0)
      w.add_u32(k + "expert_shared_feed_forward_length", static_cast<uint32_t>(c.moe.shared_expert_intermediate_size));
    w.add_bool(k + "expert_weights_norm", c.moe.norm_topk_prob);
  }
  if (c.rope_scaling.type == "linear") {
    w.add_string(k + "rope.scaling.type", "linear");
    w.add_f32(k + "rope.scaling.factor", static_cast<float>(c.rope_scaling.factor));
  }
  if (!dummy || fs::exists(fs::path(model_dir) / "tokenizer.json")) write_tokenizer_metadata(w, model_dir);
  else  // no vocabulary: llama.cpp refuses a file without this key and takes <arch>.vocab_size dummy tokens for "none"
    w.add_string("tokenizer.ggml.model", "none");
  if (c.rope_scaling.type == "llama3") {  // as llama.cpp's converter: a factor per frequency
    const RopeScaling& r = c.rope_scaling;
    std::vector<float> factors;
    for (int64_t i = 0; i < c.head_dim / 2; ++i) {
      const double freq = 1.0 / std::pow(c.rope_theta, 2.0 * static_cast<double>(i) / static_cast<double>(c.head_dim));
      const double wavelen = 2.0 * M_PI / freq, old_len = static_cast<double>(r.original_max_position_embeddings);
      if (wavelen < old_len / r.high_freq_factor) factors.push_back(1.0f);
      else if (wavelen > old_len / r.low_freq_factor) factors.push_back(static_cast<float>(r.factor));
      else {
        const double smooth = (old_len / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
        factors.push_back(static_cast<float>(1.0 / ((1.0 - smooth) / r.factor + smooth)));
      }
    }
    w.add_tensor("rope_freqs.weight", GgmlType::F32, {static_cast<int64_t>(factors.size())},
                 [factors](std::vector<uint8_t>& out) {
                   out.resize(factors.size() * 4);
                   std::memcpy(out.data(), factors.data(), out.size());
                 });
  }

  const auto names = gguf_tensor_names(c);
  std::vector<std::string> gguf_names;
  for (const auto& n : names) gguf_names.push_back(n.second);
  GgufQuantMix mix(*type, gguf_names);
  for (const auto& [hf, gg] : names) {
    std::vector<int64_t> dims;
    if (dummy) {
      dims = dummy_shape(c, hf);
      std::reverse(dims.begin(), dims.end());
    } else {
      dims = folder_dims(*ws, c, hf);
    }
    const GgmlType tt = mix.type_of(gg, dims);
    if (random_blocks && ggml_type_info(static_cast<uint32_t>(tt))->block_elems > 1) {
      add_random_blocks(w, gg, tt, dims, dummy_seed(hf.c_str()));
      continue;
    }
    const bool permute = permuted(arch, hf);
    const int64_t head_dim = c.head_dim;
    // Dummy values are made when the writer asks for the tensor, and dropped after it.
    w.add_tensor(gg, tt, dims, [ws, c, dummy, hf = hf, tt, permute, head_dim](std::vector<uint8_t>& out) {
      const Tensor s = dummy ? dummy_tensor(c, hf) : folder_tensor(*ws, c, hf);
      const int64_t row = s.cols(), rows = s.rows();
      const uint64_t row_bytes = ggml_row_bytes(tt, row);
      out.resize(row_bytes * static_cast<uint64_t>(rows));
      rows_in_parallel(rows, [&](int64_t r0, int64_t r1) {
        std::vector<float> x(static_cast<size_t>(row));
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t from = permute ? hf_row_of_gguf_row(r, head_dim) : r;
          for (int64_t i = 0; i < row; ++i) x[i] = to_f32(s.data, s.dtype, from * row + i);
          quantize_row(tt, x.data(), out.data() + r * row_bytes, row);
        }
      });
    });
  }
  w.write(out_path, progress);
}

}  // namespace ferrum
