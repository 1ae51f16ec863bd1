// The ops that model code calls. Model code never touches tensor data: every computation goes
// through a Backend, on tensors that may live on a device, so CPU and CUDA run the same model
// code. Each op has a CPU reference implementation (backend/cpu) that device backends are
// tested against.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/linear.h"
#include "backend/moe.h"
#include "backend/sampling.h"
#include "core/tensor.h"

namespace ferrum {

// Rotary embedding tables, precomputed on the host: cos/sin [max_positions, head_dim / 2].
struct RopeTable {
  int64_t max_positions = 0;
  int64_t rotary_dim = 0;  // == head_dim (full rotary)
  Tensor cos, sin;         // F32, on the backend's device
};

// Per-step attention metadata (see models/forward_batch.h), as device tensors of I32.
struct AttentionMeta {
  Tensor query_start;   // [num_seqs + 1]
  Tensor seq_lens;      // [num_seqs]
  Tensor block_tables;  // [num_seqs, max_blocks_per_seq]
  Tensor slot_mapping;  // [num_tokens]
  Tensor positions;     // [num_tokens]
  int32_t num_seqs = 0;
  int32_t max_blocks_per_seq = 0;
  int32_t block_size = 0;
  // Longest context any sequence may have in this call (0: the longest of host_seq_lens). A
  // replayed graph passes its capacity, so that the kernel's shape does not depend on the step.
  int64_t max_context = 0;
  // Host copies, so that CPU-side scheduling of the kernel needs no device read.
  std::vector<int32_t> host_query_start, host_seq_lens;
};

// Per-tensor scales of an FP8 KV cache (one pair per layer): a value x is stored as
// round_e4m3(x / scale) and read back as stored * scale. 1.0 is what vLLM uses without
// calibrated scales. Caches of F32/F16/BF16 ignore them (values are stored as they are).
struct KvScales {
  float k = 1.0f, v = 1.0f;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual const char* name() const = 0;

  // Memory.
  virtual Tensor alloc(std::initializer_list<int64_t> shape, DType dtype) = 0;
  // Host memory this backend copies to and from fastest (pinned on a GPU; plain on the CPU).
  virtual Tensor alloc_host(std::initializer_list<int64_t> shape, DType dtype) { return alloc(shape, dtype); }
  // Makes a weight usable by this backend. CPU returns the (mmapped) view as it is.
  virtual Tensor upload(const Tensor& host) = 0;
  virtual void copy_from_host(Tensor& dst, const void* src, size_t bytes) = 0;
  virtual void copy_to_host(const Tensor& src, void* dst, size_t bytes) = 0;  // waits for the data
  // A tensor of dummy weights: center + scale * u, u in [-1, 1) from dummy_fill.h's pattern
  // (the same values on every backend), filled where it lives.
  Tensor random_tensor(std::initializer_list<int64_t> shape, DType dtype, uint64_t seed, float center, float scale) {
    Tensor t = alloc(shape, dtype);
    fill_random(t, seed, center, scale);
    return t;
  }
  // Fills t (F32, F16 or BF16, where it lives) with that pattern.
  virtual void fill_random(Tensor& t, uint64_t seed, float center, float scale) = 0;
  // Waits until every op issued so far has finished (device backends queue them).
  virtual void synchronize() {}
  // Empty while the device works; once it is in a state it cannot leave (a sticky CUDA error:
  // a kernel faulted, and every later call fails), what happened. Asked after a failed step.
  virtual std::string device_failure() { return {}; }
  // Whether linear() of w over `rows` rows of x rounds x to FP8 first (the W8A8 GEMM of an FP8
  // layer: its results then differ from the 16-bit path's by that rounding; tests mirror it).
  virtual bool rounds_x_to_fp8(const LinearWeight& w, int64_t rows) const { return false; }

  // Graphs (CUDA): the ops issued between begin_capture and end_capture are recorded instead
  // of run, and replay() runs them again, with one launch. They must not allocate, and they
  // read the device buffers they were recorded with (fill those before each replay).
  virtual bool supports_graphs() const { return false; }
  // Changes whenever the backend reallocates its own scratch buffers (graphs recorded before
  // then hold stale addresses).
  virtual uint64_t scratch_generation() const { return 0; }
  virtual void begin_capture();
  virtual std::shared_ptr<void> end_capture();
  virtual void abort_capture();  // ends a capture that failed, keeping nothing (never throws)
  virtual void replay(const std::shared_ptr<void>& graph);

  // The dtype of activations between ops for weights of `weights` dtype: F32 on the CPU (exact
  // float32 numerics); a GPU keeps a 16-bit model's activations in its own type (F32 math
  // inside kernels). The residual stream stays F32 everywhere.
  virtual DType activation_dtype(DType weights) const { return DType::F32; }

  // Linear layers (backend/linear.h): the backend owns how a weight is stored. Unsupported
  // formats, experts or shards fail here, at load time, with the layer's name.
  virtual std::unique_ptr<LinearWeight> load_linear(const LinearSpec& spec) = 0;
  // Whether load_linear takes weights of this format and dtype: what check_linear_spec
  // accepts (dense F32/F16/BF16). A backend with quantized kernels widens it.
  virtual bool supports_linear(WeightFormat format, DType weights) const {
    return format == WeightFormat::Dense && (weights == DType::F32 || weights == DType::F16 || weights == DType::BF16);
  }
  // out[M, N] = x[M, K] @ W^T (+ bias) under `epilogue` (linear.h). x is in the activation
  // dtype; out in the activation dtype or F32 (the residual stream and logits).
  virtual void linear(const Tensor& x, const LinearWeight& w, Tensor& out,
                      LinearEpilogue epilogue = LinearEpilogue::Store) = 0;

  // Mixture of experts (backend/moe.h). Whether this backend loads grouped expert weights
  // (LinearSpec::num_experts) and runs moe_ffn with activations of this dtype; models check it
  // before loading anything.
  virtual bool supports_moe(DType activations) const { return false; }
  // out [T, H] (F32, the residual stream) += the MoE block of x [T, H], as transformers
  // computes it: router logits in F32, softmax over the experts, the top k (ties: the lower
  // expert), renormalized when norm_topk_prob; each chosen expert's SwiGLU MLP weighted by its
  // probability and summed in expert order; then the shared expert's output scaled by its
  // sigmoid gate, where there is one.
  virtual void moe_ffn(const Tensor& x, const MoeWeights& w, Tensor& out) {
    fail("MoE is not supported on {} yet", device() == Device::CUDA ? "CUDA" : name());
  }

  // out[t, :] = table[ids[t], :] (any float dtype table, F32 out: the residual stream).
  virtual void embedding(const Tensor& table, const Tensor& ids, Tensor& out) = 0;
  // The same from a table of GGUF blocks (U8 [vocab, row bytes], a format supports_linear
  // accepts): only the rows looked up are dequantized, so the table stays as small as its file.
  virtual void embedding_blocks(const Tensor& blocks, WeightFormat format, const Tensor& ids, Tensor& out) {
    fail("{} embedding tables are not supported on {}", weight_format_name(format), name());
  }
  // Row-wise RMSNorm over the last dimension: out = x / sqrt(mean(x^2) + eps) * w; x F32, out
  // F32 or the activation dtype (F32 math).
  virtual void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) = 0;
  // The attention inputs of one fused q/k/v projection qkv [T, (Hq + 2 Hk) * D]: q and k get
  // the per-head RMSNorm when q_norm / k_norm are given (Qwen3), then rotary embeddings at
  // `positions` (rotate-half / NeoX layout); q goes to q_out [T, Hq, D], k and v into the
  // paged caches [num_blocks, block_size, Hk, D] at slot_mapping (slots < 0 are skipped).
  // Caches are F32 (every backend), F16/BF16 or F8E4M3 (CUDA: values rounded on the way in;
  // E4M3 divided by kv's scales first, saturating at +-448); supports_kv_cache says which.
  virtual void qkv_rope_write_kv(const Tensor& qkv, const Tensor* q_norm, const Tensor* k_norm, float eps,
                                 const Tensor& positions, const RopeTable& table, const Tensor& slot_mapping,
                                 Tensor& q_out, Tensor& k_cache, Tensor& v_cache, const KvScales& kv) = 0;
  // Causal attention of q [T, Hq, D] over each sequence's cached keys/values: out [T, Hq, D]
  // (q's dtype). An E4M3 cache's values are read as stored * kv's scales.
  virtual void paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                               const AttentionMeta& meta, float scale, Tensor& out, const KvScales& kv) = 0;
  // The two above in turn (q_out holds q between them), which a backend may do in one pass
  // where that is cheaper (CUDA: decode steps, one kernel). Results are the same either way;
  // q_out's contents afterwards are not (a fused pass need not write it).
  virtual void qkv_rope_attention(const Tensor& qkv, const Tensor* q_norm, const Tensor* k_norm, float eps,
                                  const Tensor& positions, const RopeTable& table, const AttentionMeta& meta,
                                  float scale, Tensor& q_out, Tensor& k_cache, Tensor& v_cache, Tensor& out,
                                  const KvScales& kv) {
    qkv_rope_write_kv(qkv, q_norm, k_norm, eps, positions, table, meta.slot_mapping, q_out, k_cache, v_cache, kv);
    paged_attention(q_out, k_cache, v_cache, meta, scale, out, kv);
  }
  // Whether the two ops above take a cache of dtype `cache` beside activations of dtype
  // `activations` (models check it at load, so that an unsupported --kv-cache-dtype fails there).
  virtual bool supports_kv_cache(DType cache, DType activations) const { return cache == DType::F32; }
  // out[i, :] = x[rows[i], :] (F32)
  virtual void gather_rows(const Tensor& x, const Tensor& rows, Tensor& out) = 0;
  // Picks one token per row of logits [rows, vocab] (F32, edited in place) as batch says
  // (backend/sampling.h); only the ids and the requested logprobs come back to the host.
  void sample(Tensor& logits, const SampleBatch& batch, SampleResult& out) { finish_sample(start_sample(logits, batch), out); }
  // The same in two halves, for overlapped steps: start_sample queues the picks and their copy
  // back and returns at once with a ticket; finish_sample(ticket) waits for those picks alone
  // (not for work queued after them). Tickets are finished in order, at most two outstanding.
  // With no rows, a ticket still marks (and its finish waits for) the work queued before it.
  virtual uint64_t start_sample(Tensor& logits, const SampleBatch& batch) = 0;
  virtual void finish_sample(uint64_t ticket, SampleResult& out) = 0;
  // ids[pairs[2i]] = the token that row pairs[2i + 1] of the latest start_sample picked, where
  // the picks are (on the device): the next step's inputs without a trip through the host.
  virtual void take_sampled_tokens(Tensor& ids, const Tensor& pairs) = 0;
};

std::unique_ptr<Backend> make_cpu_backend(int num_threads);
// GPU `device`; throws ferrum::Error without a GPU, or in a build without CUDA.
std::unique_ptr<Backend> make_cuda_backend(int device);
// Whether this build has CUDA and the machine a GPU it can use.
bool cuda_available();
// Free memory of GPU `device` in bytes (0 without CUDA).
size_t cuda_free_memory(int device);
// The GPU index of a "cuda" / "cuda:N" device string; -1 for the CPU.
int cuda_device_index(const std::string& device);
// Read bandwidth of GPU `device` in GB/s, measured over a buffer far larger than its caches.
double cuda_read_bandwidth_gbs(int device);
// "cpu", "cuda" or "cuda:N" (what --device takes); num_threads is for the CPU.
std::unique_ptr<Backend> make_backend(const std::string& device, int num_threads);

}  // namespace ferrum
