#include "models/decoder_model.h"

#include <cmath>

#include "core/log.h"
#include "models/rope.h"
#include "models/workspace.h"

namespace ferrum {
namespace {

struct LayerWeights {
  Tensor input_norm, post_norm;
  Tensor wq, wk, wv, wo, bq, bk, bv, q_norm, k_norm;
  Tensor w_gate, w_up, w_down;
};

class PagedKvCache final : public KvCache {
 public:
  PagedKvCache(Backend& be, int64_t layers, int32_t blocks, int32_t block_size, int64_t kv_heads, int64_t head_dim)
      : blocks_(blocks), block_size_(block_size) {
    for (int64_t l = 0; l < layers; ++l) {
      k.push_back(be.alloc({blocks, block_size, kv_heads, head_dim}, DType::F32));
      v.push_back(be.alloc({blocks, block_size, kv_heads, head_dim}, DType::F32));
    }
  }
  int32_t num_blocks() const override { return blocks_; }
  int32_t block_size() const override { return block_size_; }
  std::vector<Tensor> k, v;

 private:
  int32_t blocks_, block_size_;
};

class DecoderModel final : public Model {
 public:
  DecoderModel(const ModelConfig& c, const DecoderOptions& o, WeightStore ws, std::unique_ptr<Backend> be)
      : cfg_(c), opt_(o), store_(std::move(ws)), be_(std::move(be)) {
    load_weights();
    rope_ = make_rope_table(*be_, cfg_, cfg_.max_position_embeddings);
  }

  const ModelConfig& config() const override { return cfg_; }

  size_t kv_bytes_per_block(int32_t block_size) const override {
    return static_cast<size_t>(cfg_.num_hidden_layers) * 2 * block_size * cfg_.num_key_value_heads * cfg_.head_dim *
           sizeof(float);
  }

  std::unique_ptr<KvCache> create_kv_cache(int32_t num_blocks, int32_t block_size) override {
    return std::make_unique<PagedKvCache>(*be_, cfg_.num_hidden_layers, num_blocks, block_size,
                                          cfg_.num_key_value_heads, cfg_.head_dim);
  }

  void forward(const ForwardBatch& b, KvCache& cache_base, std::vector<float>& logits) override;

 private:
  Tensor weight(const std::string& name, std::initializer_list<int64_t> shape);
  void load_weights();

  ModelConfig cfg_;
  DecoderOptions opt_;
  WeightStore store_;
  std::unique_ptr<Backend> be_;
  Tensor embed_, final_norm_, lm_head_;
  std::vector<LayerWeights> layers_;
  RopeTable rope_;
  Workspace ws_{*be_};
};

// Workspace slots of the forward pass.
enum Slot : size_t { kIds, kQueryStart, kSeqLens, kBlockTables, kSlots, kPositions, kRows,
                     kH, kX, kQ, kK, kV, kAttn, kGate, kUp, kSel, kLogits };

// Random weights for benchmarks: uniform in [-0.05, 0.05], norms near 1. Deterministic per
// name, the same on every backend, and filled where they live (no host copy of a GPU model).
Tensor random_weight(Backend& be, const std::string& name, std::initializer_list<int64_t> shape, DType dtype) {
  uint64_t seed = 1469598103934665603ull;  // FNV-1a of the name
  for (unsigned char c : name) seed = (seed ^ c) * 1099511628211ull;
  const bool norm = name.find("norm") != std::string::npos;
  return be.random_tensor(shape, dtype, seed, norm ? 1.0f : 0.0f, norm ? 0.1f : 0.05f);
}

Tensor DecoderModel::weight(const std::string& name, std::initializer_list<int64_t> shape) {
  if (opt_.dummy_weights) return random_weight(*be_, name, shape, *opt_.dummy_weights);
  const Tensor& t = store_.get(name);
  bool ok = t.ndim == static_cast<int>(shape.size());
  int i = 0;
  for (int64_t d : shape) ok = ok && t.shape[i++] == d;
  if (!ok) {
    Tensor expect;
    expect.ndim = static_cast<int>(shape.size());
    i = 0;
    for (int64_t d : shape) expect.shape[i++] = d;
    fail("tensor '{}' has shape {}, but config.json implies {}", name, t.shape_str(), expect.shape_str());
  }
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
    fail("tensor '{}' has dtype {}; weights must be F32, F16 or BF16", name, dtype_name(t.dtype));
  return be_->upload(t);
}

void DecoderModel::load_weights() {
  const int64_t H = cfg_.hidden_size, V = cfg_.vocab_size, I = cfg_.intermediate_size, D = cfg_.head_dim;
  const int64_t Hq = cfg_.num_attention_heads, Hk = cfg_.num_key_value_heads;
  embed_ = weight("model.embed_tokens.weight", {V, H});
  final_norm_ = weight("model.norm.weight", {H});
  if (cfg_.tie_word_embeddings || (!opt_.dummy_weights && !store_.has("lm_head.weight"))) {
    if (!cfg_.tie_word_embeddings) fail("missing tensor 'lm_head.weight' (config.json says embeddings are not tied)");
    lm_head_ = embed_;
  } else {
    lm_head_ = weight("lm_head.weight", {V, H});
  }
  for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights w;
    w.input_norm = weight(p + "input_layernorm.weight", {H});
    w.post_norm = weight(p + "post_attention_layernorm.weight", {H});
    w.wq = weight(p + "self_attn.q_proj.weight", {Hq * D, H});
    w.wk = weight(p + "self_attn.k_proj.weight", {Hk * D, H});
    w.wv = weight(p + "self_attn.v_proj.weight", {Hk * D, H});
    w.wo = weight(p + "self_attn.o_proj.weight", {H, Hq * D});
    if (opt_.qkv_bias) {
      w.bq = weight(p + "self_attn.q_proj.bias", {Hq * D});
      w.bk = weight(p + "self_attn.k_proj.bias", {Hk * D});
      w.bv = weight(p + "self_attn.v_proj.bias", {Hk * D});
    }
    if (opt_.qk_norm) {
      w.q_norm = weight(p + "self_attn.q_norm.weight", {D});
      w.k_norm = weight(p + "self_attn.k_norm.weight", {D});
    }
    w.w_gate = weight(p + "mlp.gate_proj.weight", {I, H});
    w.w_up = weight(p + "mlp.up_proj.weight", {I, H});
    w.w_down = weight(p + "mlp.down_proj.weight", {H, I});
    layers_.push_back(std::move(w));
  }
}

void DecoderModel::forward(const ForwardBatch& b, KvCache& cache_base, std::vector<float>& logits) {
  auto& cache = static_cast<PagedKvCache&>(cache_base);
  const int64_t T = b.num_tokens(), H = cfg_.hidden_size, D = cfg_.head_dim, I = cfg_.intermediate_size;
  const int64_t Hq = cfg_.num_attention_heads, Hk = cfg_.num_key_value_heads;
  const int64_t R = static_cast<int64_t>(b.logits_indices.size());
  FERRUM_CHECK(T > 0, "forward: empty batch");
  FERRUM_CHECK(b.positions.size() == static_cast<size_t>(T) && b.slot_mapping.size() == static_cast<size_t>(T),
               "forward: positions / slot_mapping must have one entry per token");
  const float eps = static_cast<float>(cfg_.rms_norm_eps);

  AttentionMeta meta;
  meta.query_start = ws_.upload_i32(kQueryStart, b.query_start);
  meta.seq_lens = ws_.upload_i32(kSeqLens, b.seq_lens);
  meta.block_tables = ws_.upload_i32(kBlockTables, b.block_tables);
  meta.slot_mapping = ws_.upload_i32(kSlots, b.slot_mapping);
  meta.positions = ws_.upload_i32(kPositions, b.positions);
  meta.num_seqs = b.num_seqs();
  meta.max_blocks_per_seq = b.max_blocks_per_seq;
  meta.block_size = cache.block_size();
  meta.host_query_start = b.query_start;
  meta.host_seq_lens = b.seq_lens;
  Tensor ids = ws_.upload_i32(kIds, b.token_ids);

  Tensor h = ws_.get(kH, {T, H}, DType::F32);
  Tensor x = ws_.get(kX, {T, H}, DType::F32);
  Tensor q = ws_.get(kQ, {T, Hq * D}, DType::F32);
  Tensor k = ws_.get(kK, {T, Hk * D}, DType::F32);
  Tensor v = ws_.get(kV, {T, Hk * D}, DType::F32);
  Tensor attn = ws_.get(kAttn, {T, Hq * D}, DType::F32);
  Tensor gate = ws_.get(kGate, {T, I}, DType::F32);
  Tensor up = ws_.get(kUp, {T, I}, DType::F32);
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));

  be_->embedding(embed_, ids, h);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerWeights& w = layers_[l];
    be_->rms_norm(h, w.input_norm, eps, x);
    be_->matmul(x, w.wq, opt_.qkv_bias ? &w.bq : nullptr, q);
    be_->matmul(x, w.wk, opt_.qkv_bias ? &w.bk : nullptr, k);
    be_->matmul(x, w.wv, opt_.qkv_bias ? &w.bv : nullptr, v);
    Tensor q3 = q.view({T, Hq, D}), k3 = k.view({T, Hk, D}), v3 = v.view({T, Hk, D});
    if (opt_.qk_norm) {
      Tensor qr = q.view({T * Hq, D}), kr = k.view({T * Hk, D});
      be_->rms_norm(qr, w.q_norm, eps, qr);
      be_->rms_norm(kr, w.k_norm, eps, kr);
    }
    be_->rope(q3, k3, meta.positions, rope_);
    be_->write_kv(k3, v3, meta.slot_mapping, cache.k[l], cache.v[l]);
    Tensor a3 = attn.view({T, Hq, D});
    be_->paged_attention(q3, cache.k[l], cache.v[l], meta, scale, a3);
    be_->matmul(attn, w.wo, nullptr, x);
    be_->add(h, x, h);
    be_->rms_norm(h, w.post_norm, eps, x);
    be_->matmul(x, w.w_gate, nullptr, gate);
    be_->matmul(x, w.w_up, nullptr, up);
    be_->silu_mul(gate, up, gate);
    be_->matmul(gate, w.w_down, nullptr, x);
    be_->add(h, x, h);
  }
  logits.assign(static_cast<size_t>(R * cfg_.vocab_size), 0.0f);
  if (R == 0) return;
  Tensor rows = ws_.upload_i32(kRows, b.logits_indices);
  Tensor sel = ws_.get(kSel, {R, H}, DType::F32);
  be_->gather_rows(h, rows, sel);
  be_->rms_norm(sel, final_norm_, eps, sel);
  Tensor out = ws_.get(kLogits, {R, cfg_.vocab_size}, DType::F32);
  be_->matmul(sel, lm_head_, nullptr, out);
  be_->copy_to_host(out, logits.data(), logits.size() * sizeof(float));
}

}  // namespace

std::unique_ptr<Model> make_decoder_model(const ModelConfig& config, const DecoderOptions& options, WeightStore weights,
                                          std::unique_ptr<Backend> backend) {
  return std::make_unique<DecoderModel>(config, options, std::move(weights), std::move(backend));
}

}  // namespace ferrum
