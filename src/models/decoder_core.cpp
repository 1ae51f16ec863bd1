#include "models/decoder_core.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <span>

#include "backend/dummy_fill.h"
#include "core/log.h"
#include "models/rope.h"

namespace ferrum {

class PagedKvCache final : public KvCache {
 public:
  PagedKvCache(Backend& be, int64_t layers, int32_t blocks, int32_t block_size, int64_t kv_heads, int64_t head_dim,
               DType dtype)
      : id(next_id()), blocks_(blocks), block_size_(block_size) {
    for (int64_t l = 0; l < layers; ++l) {
      k.push_back(be.alloc({blocks, block_size, kv_heads, head_dim}, dtype));
      v.push_back(be.alloc({blocks, block_size, kv_heads, head_dim}, dtype));
    }
    // On the CPU, write the pool once: its pages are committed now, so a pool larger than the
    // memory fails at start-up instead of mid-request, and RSS does not creep up as blocks are
    // used for the first time.
    if (be.device() == Device::CPU)
      for (auto* kv : {&k, &v})
        for (Tensor& t : *kv) std::memset(t.data, 0, t.nbytes());
  }
  int32_t num_blocks() const override { return blocks_; }
  int32_t block_size() const override { return block_size_; }
  std::vector<Tensor> k, v;
  const uint64_t id;  // never reused, unlike addresses: graphs recorded on it know it by this

 private:
  static uint64_t next_id() {
    static std::atomic<uint64_t> n{0};
    return ++n;
  }
  int32_t blocks_, block_size_;
};

namespace {

double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Workspace slots of the forward pass.
enum Slot : size_t { kIds, kDeferred, kQueryStart, kSeqLens, kBlockTables, kSlots, kPositions, kRows,
                     kH, kX, kQkv, kQ, kAttn, kFfn, kSel, kXs, kLogits };

// Random weights for benchmarks (dummy_fill.h's pattern): deterministic per name, the same on
// every backend, and filled where they live (no host copy of a GPU model).
Tensor random_weight(Backend& be, const std::string& name, std::initializer_list<int64_t> shape, DType dtype) {
  const DummyRange r = dummy_range(name.find("norm") != std::string::npos);
  return be.random_tensor(shape, dtype, dummy_seed(name.c_str()), r.center, r.scale);
}

// Decode batches padded up to these sizes share graphs: 1, 2, 4, 8, then steps of 8 to 64,
// then steps of 16 (at most 1/5 of a step's rows are padding past 64).
int64_t padded_batch(int64_t n) {
  if (n <= 8) {
    int64_t p = 1;
    while (p < n) p *= 2;
    return p;
  }
  return n <= 64 ? (n + 7) / 8 * 8 : (n + 15) / 16 * 16;
}

// A decode step of `rows` sequences with block tables `width` wide that writes no KV (slots
// -1) and reads block 0: what a graph is recorded from, and what sizes buffers for it.
ForwardBatch fake_decode(int32_t rows, int32_t width) {
  ForwardBatch b;
  b.token_ids.assign(rows, 0);
  b.positions.assign(rows, 0);
  b.slot_mapping.assign(rows, -1);
  b.seq_lens.assign(rows, 1);
  for (int32_t i = 0; i <= rows; ++i) b.query_start.push_back(i);
  for (int32_t i = 0; i < rows; ++i) b.logits_indices.push_back(i);
  b.block_tables.assign(static_cast<size_t>(rows) * width, 0);
  b.max_blocks_per_seq = width;
  return b;
}

}  // namespace

void SwiGluMlp::run(Backend& be, const Tensor& x, Tensor& h, Tensor& scratch) const {
  Tensor act = scratch;  // its first [T, intermediate] values (other layers may be wider)
  act.shape[1] = down_->in_features;
  be.linear(x, *gate_up_, act, LinearEpilogue::SiluMul);
  be.linear(act, *down_, h, LinearEpilogue::Accumulate);
}

DecoderCore::DecoderCore(const ModelConfig& c, const DecoderOptions& o, WeightStore ws, std::unique_ptr<Backend> be)
    : cfg_(c), opt_(o), store_(std::move(ws)), be_(std::move(be)) {}

void DecoderCore::init() {
  const bool fp8_kv = opt_.kv_cache_dtype == KvCacheDtype::Fp8E4M3;
  // Refused before the weights are read (the activations' type is not known yet: a backend
  // that keeps an E4M3 cache beside 16-bit activations keeps it beside the others too).
  if (fp8_kv && !be_->supports_kv_cache(DType::F8E4M3, be_->activation_dtype(DType::BF16)))
    fail("--kv-cache-dtype fp8 is not supported on {}{}", be_->name(),
         be_->device() == Device::CPU ? " (its KV cache is F32, for exact float32 attention): run on a GPU "
                                        "(--device cuda) or leave --kv-cache-dtype auto"
                                      : "");
  load_weights();
  // auto: the KV cache keeps a 16-bit model's own type on a GPU (as vLLM's "auto"), which is
  // also its activations' type, halving the cache and the attention's reads; F32 on the CPU,
  // whose kernels are exact F32. fp8: E4M3, half that again (twice the tokens per byte).
  kv_dtype_ = fp8_kv ? DType::F8E4M3 : be_->device() == Device::CPU ? DType::F32 : act_dtype_;
  FERRUM_CHECK(be_->supports_kv_cache(kv_dtype_, act_dtype_), "{}: no {} KV cache beside {} activations",
               be_->name(), dtype_name(kv_dtype_), dtype_name(act_dtype_));
  load_kv_scales();
  rope_ = make_rope_table(*be_, cfg_, cfg_.max_position_embeddings);
}

void DecoderCore::load_kv_scales() {
  kv_scales_.assign(layers_.size(), KvScales{});
  if (kv_dtype_ != DType::F8E4M3) return;  // only an E4M3 cache is scaled
  int found = 0;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".self_attn.";
    // The names vLLM reads: k_scale / v_scale, the k/v projections' output_scale, or one
    // kv_scale for both (older FP8 checkpoints).
    kv_scales_[l].k = checkpoint_scale({p + "k_scale", p + "k_proj.output_scale", p + "kv_scale"}, &found);
    kv_scales_[l].v = checkpoint_scale({p + "v_scale", p + "v_proj.output_scale", p + "kv_scale"}, &found);
  }
  log::info("KV cache: FP8 E4M3, {}",
            found > 0 ? fmt::format("{} per-tensor scales from the checkpoint (others 1.0)", found)
                      : std::string("per-tensor scales 1.0 (none in the checkpoint)"));
}

float DecoderCore::checkpoint_scale(std::initializer_list<std::string> names, int* found) const {
  if (opt_.dummy_weights) return 1.0f;
  for (const std::string& name : names) {
    if (!store_.has(name)) continue;
    const Tensor& t = store_.get(name);
    const bool is_float = t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16;
    if (t.numel() != 1 || !is_float)
      fail("tensor '{}' ({} {}) is not one F32/F16/BF16 KV cache scale", name, t.shape_str(), dtype_name(t.dtype));
    const float v = to_f32(t.data, t.dtype, 0);
    if (!(v > 0.0f) || !std::isfinite(v))
      fail("tensor '{}' is {}: a KV cache scale must be positive and finite", name, v);
    ++*found;
    return v;
  }
  return 1.0f;
}

DecoderCore::~DecoderCore() {
  graphs_.clear();  // before the backend (its stream) goes
  host_logits_ = {};
}

size_t DecoderCore::kv_bytes_per_block(int32_t block_size) const {
  return static_cast<size_t>(cfg_.num_hidden_layers) * 2 * block_size * cfg_.num_key_value_heads * cfg_.head_dim *
         dtype_size(kv_dtype_);
}

size_t DecoderCore::weight_bytes_per_step() const {
  size_t n = lm_head_->stored_bytes + final_norm_.nbytes();
  for (const LayerWeights& l : layers_)
    n += l.qkv->stored_bytes + l.o->stored_bytes + l.ffn->step_bytes() + l.input_norm.nbytes() +
         l.post_norm.nbytes() + l.q_norm.nbytes() + l.k_norm.nbytes();
  return n;
}

std::unique_ptr<KvCache> DecoderCore::create_kv_cache(int32_t num_blocks, int32_t block_size) {
  return std::make_unique<PagedKvCache>(*be_, cfg_.num_hidden_layers, num_blocks, block_size, cfg_.num_key_value_heads,
                                        cfg_.head_dim, kv_dtype_);
}

void DecoderCore::forward(const ForwardBatch& b, KvCache& cache_base, std::vector<float>& logits) {
  std::span<float> view = forward_view(b, cache_base);
  logits.assign(view.begin(), view.end());
}

std::span<float> DecoderCore::forward_view(const ForwardBatch& b, KvCache& cache_base) {
  const Tensor logits = issue(b, static_cast<PagedKvCache&>(cache_base));
  const size_t n = static_cast<size_t>(logits.numel());
  if (n == 0) return {};
  if (be_->device() == Device::CPU) return {logits.ptr<float>(), n};  // already host memory
  return logits_to_host(logits, n);
}

void DecoderCore::set_run_options(const ModelRunOptions& o) {
  run_options_ = o;
  graphs_.clear();
}

uint64_t DecoderCore::launch_sample(const ForwardBatch& b, KvCache& cache_base, const SampleBatch& sampling,
                                   const std::function<void()>& before_picks) {
  FERRUM_CHECK(sampling.rows.size() == b.logits_indices.size(), "launch_sample: {} sampling rows for {} logits rows",
               sampling.rows.size(), b.logits_indices.size());
  Tensor logits = issue(b, static_cast<PagedKvCache&>(cache_base));
  if (before_picks) before_picks();
  return be_->start_sample(logits, sampling);
}

void DecoderCore::collect_sample(uint64_t ticket, SampleResult& out) {
  const auto t0 = std::chrono::steady_clock::now();
  be_->finish_sample(ticket, out);
  if (profile_.on) {
    profile_.copy += ms_between(t0, std::chrono::steady_clock::now());
    log_profile("waiting for the picks");
  }
}

Tensor DecoderCore::weight(const std::string& name, std::initializer_list<int64_t> shape) {
  if (opt_.dummy_weights) return random_weight(*be_, name, shape, *opt_.dummy_weights);
  return be_->upload(host_weight(name, shape));
}

std::unique_ptr<LinearWeight> DecoderCore::linear(const std::string& layer, const std::vector<std::string>& parts,
                                                   const std::vector<int64_t>& rows, int64_t cols, bool bias) {
  LinearSpec spec;
  spec.name = layer;
  spec.in_features = cols;
  spec.dummy = opt_.dummy_weights;
  spec.activations = act_dtype_;
  // GGUF blocks go to the backend as they are where it has a kernel for their format (each
  // part its own: mixes give v and down more bits); other parts are dequantized to dense.
  // GPTQ/AWQ/FP8 parts go as their checkpoint tensors; the backend repacks them.
  for (size_t i = 0; i < parts.size(); ++i) {
    LinearPart p;
    p.name = parts[i] + ".weight";
    p.rows = rows[i];
    p.format = opt_.dummy_weights ? WeightFormat::Dense : block_format(p.name);
    if (!quantized_source(parts[i], p)) {
      if (p.format != WeightFormat::Dense) p.weight = store_.quantized(p.name)->blocks;
      else if (!opt_.dummy_weights) p.weight = store_.get(p.name);
      if (opt_.online_fp8 && p.format == WeightFormat::Dense && !skipped(parts[i])) p.format = WeightFormat::Fp8;  // quantized at load
    }
    if (bias) p.bias = opt_.dummy_weights ? random_weight(*be_, parts[i] + ".bias", {rows[i]}, DType::F32)
                                          : host_weight(parts[i] + ".bias", {rows[i]});
    spec.parts.push_back(std::move(p));
  }
  std::unique_ptr<LinearWeight> w = be_->load_linear(spec);
  check_activation_dtype(*w);
  return w;
}

void DecoderCore::check_activation_dtype(const LinearWeight& w) const {
  if (be_->activation_dtype(w.dtype) != act_dtype_)
    fail("layer '{}' has {} weights but the embeddings are {}: mixed weight dtypes are not supported on {}", w.name,
         dtype_name(w.dtype), embed_format_ == WeightFormat::Dense ? dtype_name(embed_.dtype) : "GGUF blocks",
         be_->name());
}

std::unique_ptr<FeedForward> DecoderCore::swiglu_mlp(const std::string& prefix, int64_t intermediate) {
  const int64_t H = cfg_.hidden_size;
  return std::make_unique<SwiGluMlp>(
      linear(prefix + ".gate_up", {prefix + ".gate_proj", prefix + ".up_proj"}, {intermediate, intermediate}, H, false),
      linear(prefix + ".down_proj", {prefix + ".down_proj"}, {H}, intermediate, false));
}

bool DecoderCore::skipped(const std::string& module) const {
  for (const std::string& s : cfg_.quantization.skip)
    if (module == s || module.ends_with("." + s) || module.starts_with(s + ".")) return true;
  return module == "lm_head";  // GPTQ/AWQ/FP8 checkpoints keep the output layer dense
}

bool DecoderCore::quantized_source(const std::string& module, LinearPart& p) const {
  const QuantizationConfig& q = cfg_.quantization;
  if (q.method.empty() || skipped(module)) return false;
  const WeightFormat before = p.format;  // what p keeps where the module is not quantized
  p.quant.bits = q.bits;
  p.quant.group_size = q.group_size;
  p.quant.zeros_plus_one = q.zeros_plus_one;
  p.quant.fp8_block[0] = q.fp8_block[0];
  p.quant.fp8_block[1] = q.fp8_block[1];
  // Dummy weights have no tensors to say what is quantized: MoE routers (and Qwen2-MoE's shared
  // expert gate) stay dense, as GPTQModel, AutoAWQ and the FP8 releases leave them.
  if (opt_.dummy_weights && (module.ends_with(".mlp.gate") || module.ends_with(".shared_expert_gate"))) return false;
  if (q.method == "gptq" || q.method == "awq") {
    p.format = q.method == "gptq" ? WeightFormat::Gptq : WeightFormat::Awq;
    if (opt_.dummy_weights) return true;
    if (!store_.has(module + ".qweight")) {
      if (store_.has(module + ".weight")) return p.format = before, false;  // left unquantized
      fail("missing tensor '{}.qweight' ({} checkpoint)", module, q.method);
    }
    p.weight = store_.get(module + ".qweight");
    p.extra = {store_.get(module + ".qzeros"), store_.get(module + ".scales")};
    if (store_.has(module + ".g_idx")) p.extra.push_back(store_.get(module + ".g_idx"));
    return true;
  }
  // FP8: E4M3 weights with their scales; other dtypes are left unquantized.
  p.format = WeightFormat::Fp8;
  if (opt_.dummy_weights) return true;
  const Tensor& w = store_.get(module + ".weight");
  if (w.dtype != DType::F8E4M3) return p.format = before, false;  // left unquantized (routers, say)
  p.weight = w;
  const bool blocks = q.fp8_block[0] > 0;
  const std::string scale = module + (blocks ? ".weight_scale_inv" : ".weight_scale");
  if (!store_.has(scale))
    fail("missing tensor '{}' (FP8 checkpoint{})", scale, blocks ? " with weight_block_size" : "");
  p.extra = {store_.get(scale)};
  if (store_.has(module + ".input_scale"))
    log::debug("{}: static activation scales are not used (activations stay 16-bit)", module);
  return true;
}

WeightFormat DecoderCore::block_format(const std::string& tensor) const {
  const WeightStore::Quantized* q = store_.quantized(tensor);
  if (!q) return WeightFormat::Dense;
  const WeightFormat f = q->format == GgmlType::Q8_0   ? WeightFormat::GgufQ8_0
                         : q->format == GgmlType::Q4_0 ? WeightFormat::GgufQ4_0
                         : q->format == GgmlType::Q4_K ? WeightFormat::GgufQ4K
                         : q->format == GgmlType::Q5_K ? WeightFormat::GgufQ5K
                         : q->format == GgmlType::Q6_K ? WeightFormat::GgufQ6K
                                                       : WeightFormat::Dense;
  return f != WeightFormat::Dense && be_->supports_linear(f, DType::U8) ? f : WeightFormat::Dense;
}

Tensor DecoderCore::host_weight(const std::string& name, std::initializer_list<int64_t> shape) {
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
  return t;
}

void DecoderCore::load_weights() {
  const int64_t H = cfg_.hidden_size, V = cfg_.vocab_size, D = cfg_.head_dim;
  const int64_t Hq = cfg_.num_attention_heads, Hk = cfg_.num_key_value_heads;
  embed_format_ = opt_.dummy_weights ? WeightFormat::Dense : block_format("model.embed_tokens.weight");
  if (embed_format_ != WeightFormat::Dense) {
    // GGUF blocks stay blocks: the lookup dequantizes the rows it reads, not the whole table.
    embed_ = be_->upload(store_.quantized("model.embed_tokens.weight")->blocks);
    act_dtype_ = be_->activation_dtype(DType::BF16);
  } else {
    embed_ = weight("model.embed_tokens.weight", {V, H});
    // Quantized layers take 16-bit activations on a GPU: the embeddings' own type, or BF16.
    const bool quantized = !cfg_.quantization.method.empty() || opt_.online_fp8 || store_.has_quantized();
    act_dtype_ = be_->activation_dtype(quantized && embed_.dtype == DType::F32 ? DType::BF16 : embed_.dtype);
  }
  final_norm_ = weight("model.norm.weight", {H});
  if (cfg_.tie_word_embeddings || (!opt_.dummy_weights && !store_.has("lm_head.weight"))) {
    if (!cfg_.tie_word_embeddings) fail("missing tensor 'lm_head.weight' (config.json says embeddings are not tied)");
    LinearSpec spec;  // the embedding table itself, as the backend already holds it
    spec.name = "lm_head";
    spec.in_features = H;
    spec.activations = act_dtype_;
    // GGUF blocks: the host's, which a backend may repack (embed_ may be a device copy).
    const Tensor table = embed_format_ == WeightFormat::Dense ? embed_ : store_.quantized("model.embed_tokens.weight")->blocks;
    spec.parts.push_back({.name = "model.embed_tokens.weight", .rows = V, .weight = table, .format = embed_format_});
    lm_head_ = be_->load_linear(spec);
  } else {
    lm_head_ = linear("lm_head", {"lm_head"}, {V}, H, false);
  }
  for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights w;
    w.input_norm = weight(p + "input_layernorm.weight", {H});
    w.post_norm = weight(p + "post_attention_layernorm.weight", {H});
    w.qkv = linear(p + "self_attn.qkv", {p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj"},
                   {Hq * D, Hk * D, Hk * D}, H, opt_.qkv_bias);
    w.o = linear(p + "self_attn.o_proj", {p + "self_attn.o_proj"}, {H}, Hq * D, false);
    if (opt_.qk_norm) {
      w.q_norm = weight(p + "self_attn.q_norm.weight", {D});
      w.k_norm = weight(p + "self_attn.k_norm.weight", {D});
    }
    w.ffn = make_ffn(l, p);
    ffn_scratch_cols_ = std::max(ffn_scratch_cols_, w.ffn->scratch_cols());
    layers_.push_back(std::move(w));
  }
}

struct DecoderCore::Activations {
  int64_t T, R;
  float eps, scale;
  AttentionMeta meta;
  Tensor ids, rows, h, x, qkv, q, attn, ffn, sel, xs, out;  // ffn: the feed-forward scratch
};

Tensor DecoderCore::issue(const ForwardBatch& batch, PagedKvCache& cache) {
  const int64_t real_rows = static_cast<int64_t>(batch.logits_indices.size());
  FERRUM_CHECK(batch.num_tokens() > 0, "forward: empty batch");
  FERRUM_CHECK(batch.positions.size() == static_cast<size_t>(batch.num_tokens()) &&
                   batch.slot_mapping.size() == static_cast<size_t>(batch.num_tokens()),
               "forward: positions / slot_mapping must have one entry per token");

  // A graph is recorded per (padded tokens, block-table width): decode steps only (one token
  // per sequence, every row's logits), with the batch padded to a bucket size (padding rows
  // write no KV: slot -1) and the block tables to a power-of-two width, so that few graphs
  // serve every step.
  bool decode = batch.num_seqs() == batch.num_tokens() && real_rows == batch.num_tokens();
  for (int64_t i = 0; decode && i < real_rows; ++i)
    decode = batch.query_start[i] == i && batch.logits_indices[i] == i;
  const bool graph = decode && be_->supports_graphs() && run_options_.graphs;
  const ForwardBatch& b = graph ? pad_for_graph(batch) : batch;
  const int32_t width = b.max_blocks_per_seq;

  const auto t_start = std::chrono::steady_clock::now();
  ws_.begin_step();
  const Activations a = stage_inputs(b, batch.deferred, cache, graph);
  const auto t_inputs = std::chrono::steady_clock::now();
  if (graph) {
    const StepGraphs::Epoch epoch{cache.id, ws_.generation(), be_->scratch_generation()};
    graphs_.run(*be_, static_cast<int32_t>(a.T), width, epoch, [&] { run_layers(a, cache); });
  } else {
    run_layers(a, cache);
  }
  if (profile_.on) {
    profile_.inputs += ms_between(t_start, t_inputs);
    profile_.launch += ms_between(t_inputs, std::chrono::steady_clock::now());
  }
  return real_rows > 0 ? a.out.slice_rows(0, real_rows) : Tensor{};
}

DecoderCore::Activations DecoderCore::stage_inputs(const ForwardBatch& b, const std::vector<int32_t>& deferred,
                                                     PagedKvCache& cache, bool graph) {
  const int64_t T = b.num_tokens(), H = cfg_.hidden_size, D = cfg_.head_dim;
  const int64_t Hq = cfg_.num_attention_heads, Hk = cfg_.num_key_value_heads;
  const int64_t R = static_cast<int64_t>(b.logits_indices.size());
  Activations a;
  a.T = T, a.R = R;
  a.eps = static_cast<float>(cfg_.rms_norm_eps);
  a.scale = 1.0f / std::sqrt(static_cast<float>(D));
  AttentionMeta& meta = a.meta;
  meta.query_start = ws_.upload_i32(kQueryStart, b.query_start);
  meta.seq_lens = ws_.upload_i32(kSeqLens, b.seq_lens);
  meta.block_tables = ws_.upload_i32(kBlockTables, b.block_tables);
  meta.slot_mapping = ws_.upload_i32(kSlots, b.slot_mapping);
  meta.positions = ws_.upload_i32(kPositions, b.positions);
  meta.num_seqs = b.num_seqs();
  meta.max_blocks_per_seq = b.max_blocks_per_seq;
  meta.block_size = cache.block_size();
  meta.max_context = graph ? static_cast<int64_t>(b.max_blocks_per_seq) * cache.block_size() : 0;
  meta.host_query_start = b.query_start;
  meta.host_seq_lens = b.seq_lens;
  a.ids = ws_.upload_i32(kIds, b.token_ids);
  if (!deferred.empty()) {  // tokens the previous step picked, taken where they are
    const Tensor pairs = ws_.upload_i32(kDeferred, deferred);
    be_->take_sampled_tokens(a.ids, pairs);
  }
  const DType act = act_dtype_;
  a.h = ws_.get(kH, {T, H}, DType::F32);  // the residual stream
  a.x = ws_.get(kX, {T, H}, act);
  a.qkv = ws_.get(kQkv, {T, (Hq + 2 * Hk) * D}, act);
  a.q = ws_.get(kQ, {T, Hq, D}, act);
  a.attn = ws_.get(kAttn, {T, Hq * D}, act);
  if (ffn_scratch_cols_ > 0) a.ffn = ws_.get(kFfn, {T, ffn_scratch_cols_}, act);
  if (R > 0) {
    a.rows = ws_.upload_i32(kRows, b.logits_indices);
    a.sel = ws_.get(kSel, {R, H}, DType::F32);
    a.xs = ws_.get(kXs, {R, H}, act);
    a.out = ws_.get(kLogits, {R, cfg_.vocab_size}, DType::F32);
  }
  return a;
}

void DecoderCore::prepare(KvCache& cache_base, const PrepareSpec& spec) {
  if (be_->device() == Device::CPU) return;  // host buffers grow cheaply, and there are no graphs
  auto& cache = static_cast<PagedKvCache&>(cache_base);
  const int32_t bs = cache.block_size();
  const auto t0 = std::chrono::steady_clock::now();

  // 1. The largest prefill step, eagerly, in sequences of up to 512 tokens (cheap attention):
  // every activation buffer at its final size.
  ForwardBatch big;
  const int32_t T = std::max(1, spec.max_tokens), chunk = 512;
  const int32_t max_pos = static_cast<int32_t>(std::max<int64_t>(1, cfg_.max_position_embeddings));
  big.max_blocks_per_seq = (std::min(chunk, T) + bs - 1) / bs;
  big.query_start.push_back(0);
  for (int32_t start = 0; start < T; start += chunk) {
    const int32_t len = std::min(chunk, T - start);
    for (int32_t i = 0; i < len; ++i) {
      big.token_ids.push_back(0);
      big.positions.push_back(i % max_pos);
      big.slot_mapping.push_back(-1);
    }
    big.query_start.push_back(start + len);
    big.seq_lens.push_back(len);
    big.block_tables.resize(big.block_tables.size() + big.max_blocks_per_seq, 0);
  }
  for (int32_t i = 0; i < std::min(T, std::max(1, spec.max_rows)); ++i) big.logits_indices.push_back(i);
  ws_.begin_step();
  run_layers(stage_inputs(big, {}, cache, false), cache);
  be_->synchronize();
  const auto t1 = std::chrono::steady_clock::now();
  if (!be_->supports_graphs() || !run_options_.graphs || !run_options_.pad_batches) {
    log::info("model: buffers sized for {}-token steps in {:.0f} ms; decode graphs {}", T, ms_between(t0, t1),
              run_options_.graphs ? "recorded as steps come (no batch padding)" : "off");
    return;
  }

  // 2. Decode graphs for every padded batch size, at the block-table widths of contexts up to
  // spec.graph_context tokens (wider ones are recorded when first needed). First each size
  // runs eagerly at the widest table a request can need, which sizes the attention's scratch
  // and the tables' buffers for every later step, so that no step invalidates the graphs.
  std::vector<int32_t> sizes;
  for (int32_t n = 1; n <= spec.max_rows;) {
    const int32_t p = static_cast<int32_t>(padded_batch(n));
    sizes.push_back(p);
    n = p + 1;
  }
  int32_t widest = 1, graph_width = 1;
  while (static_cast<int64_t>(widest) * bs < spec.max_context) widest *= 2;
  while (static_cast<int64_t>(graph_width) * bs < std::min(spec.graph_context, spec.max_context)) graph_width *= 2;
  // Each step waits for the one before: staging alternates between two halves (Workspace), so
  // the next-but-one step would rewrite this one's inputs while their copies may still be
  // queued behind its kernels (the device lags most where the output layer is slow).
  for (auto it = sizes.rbegin(); it != sizes.rend(); ++it) {
    ws_.begin_step();
    run_layers(stage_inputs(fake_decode(*it, widest), {}, cache, true), cache);
    be_->synchronize();
  }
  ws_.reserve(kDeferred, 2 * sizes.back() * sizeof(int32_t));
  be_->synchronize();
  const auto t2 = std::chrono::steady_clock::now();
  int32_t recorded = 0;
  for (auto it = sizes.rbegin(); it != sizes.rend(); ++it)
    for (int32_t width = graph_width; width >= 1; width /= 2) {
      ws_.begin_step();
      const Activations a = stage_inputs(fake_decode(*it, width), {}, cache, true);
      be_->synchronize();  // the same rule for the uploads queued before each recording
      const StepGraphs::Epoch epoch{cache.id, ws_.generation(), be_->scratch_generation()};
      graphs_.record(*be_, *it, width, epoch, [&] { run_layers(a, cache); });
      ++recorded;
    }
  be_->synchronize();
  log::info("model: buffers sized for {}-token steps in {:.0f} ms; {} decode graphs recorded in {:.0f} ms "
            "(batch sizes 1-{}, contexts up to {} tokens; longer ones are recorded when first needed)",
            T, ms_between(t0, t1) + ms_between(t1, t2), recorded, ms_between(t2, std::chrono::steady_clock::now()),
            sizes.back(), static_cast<int64_t>(graph_width) * bs);
}

const ForwardBatch& DecoderCore::pad_for_graph(const ForwardBatch& b) {
  const int64_t n = b.num_tokens(), rows = run_options_.pad_batches ? padded_batch(n) : n;
  int32_t width = 1;
  while (width < b.max_blocks_per_seq) width *= 2;
  ForwardBatch& p = padded_;
  p.token_ids = b.token_ids;
  p.positions = b.positions;
  p.slot_mapping = b.slot_mapping;
  p.query_start = b.query_start;
  p.seq_lens = b.seq_lens;
  p.logits_indices = b.logits_indices;
  p.token_ids.resize(rows, 0);
  p.positions.resize(rows, 0);
  p.slot_mapping.resize(rows, -1);
  p.seq_lens.resize(rows, 1);
  p.query_start.resize(rows + 1);
  p.logits_indices.resize(rows);
  for (int64_t i = n; i < rows; ++i) {
    p.query_start[i + 1] = static_cast<int32_t>(i + 1);
    p.logits_indices[i] = static_cast<int32_t>(i);
  }
  p.block_tables.assign(static_cast<size_t>(rows) * width, 0);
  for (int64_t s = 0; s < n; ++s)
    std::copy_n(b.block_tables.begin() + s * b.max_blocks_per_seq, b.max_blocks_per_seq,
                p.block_tables.begin() + s * width);
  p.max_blocks_per_seq = width;
  return p;
}

std::span<float> DecoderCore::logits_to_host(const Tensor& out, size_t n) {
  const auto t0 = profile_gpu_wait();
  if (host_logits_.numel() < static_cast<int64_t>(n))  // headroom: growing syncs the device
    host_logits_ = be_->alloc_host({static_cast<int64_t>(n + n / 2)}, DType::F32);
  be_->copy_to_host(out, host_logits_.data, n * sizeof(float));
  if (profile_.on) {
    profile_.copy += ms_between(t0, std::chrono::steady_clock::now());
    log_profile("copying logits");
  }
  return {host_logits_.ptr<float>(), n};
}

std::chrono::steady_clock::time_point DecoderCore::profile_gpu_wait() {
  const auto t0 = std::chrono::steady_clock::now();
  if (!profile_.on) return t0;
  be_->synchronize();
  const auto t1 = std::chrono::steady_clock::now();
  profile_.wait += ms_between(t0, t1);
  return t1;
}

void DecoderCore::log_profile(const char* last) {
  if (++profile_.calls % 200 != 0) return;
  const double c = static_cast<double>(profile_.calls);
  log::info("model profile over {} forwards: inputs {:.2f} ms, launching {:.2f} ms, waiting for the GPU {:.2f} ms, "
            "{} {:.2f} ms per call",
            profile_.calls, profile_.inputs / c, profile_.launch / c, profile_.wait / c, last, profile_.copy / c);
}

void DecoderCore::run_layers(const Activations& a, PagedKvCache& cache) {
  const int64_t T = a.T, D = cfg_.head_dim, Hq = cfg_.num_attention_heads;
  Tensor h = a.h, x = a.x, qkv = a.qkv, q = a.q, attn = a.attn, ffn = a.ffn;
  using E = LinearEpilogue;
  if (embed_format_ != WeightFormat::Dense) be_->embedding_blocks(embed_, embed_format_, a.ids, h);
  else be_->embedding(embed_, a.ids, h);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerWeights& w = layers_[l];
    be_->rms_norm(h, w.input_norm, a.eps, x);
    be_->linear(x, *w.qkv, qkv);
    Tensor a3 = attn.view({T, Hq, D});
    be_->qkv_rope_attention(qkv, opt_.qk_norm ? &w.q_norm : nullptr, opt_.qk_norm ? &w.k_norm : nullptr, a.eps,
                            a.meta.positions, rope_, a.meta, a.scale, q, cache.k[l], cache.v[l], a3, kv_scales_[l]);
    be_->linear(attn, *w.o, h, E::Accumulate);
    be_->rms_norm(h, w.post_norm, a.eps, x);
    w.ffn->run(*be_, x, h, ffn);
  }
  if (a.R == 0) return;
  Tensor sel = a.sel, xs = a.xs, out = a.out;
  be_->gather_rows(h, a.rows, sel);
  be_->rms_norm(sel, final_norm_, a.eps, xs);
  be_->linear(xs, *lm_head_, out);
}

}  // namespace ferrum
