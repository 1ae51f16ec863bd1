// What the engine sees of a model: a forward pass over a flat batch against a paged KV cache.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/sampling.h"
#include "io/model_config.h"
#include "models/forward_batch.h"

namespace ferrum {

// Paged KV storage for every layer: num_blocks blocks of block_size token slots each.
// Owned by the engine, created by the model (it knows the layer count, heads and dtype).
class KvCache {
 public:
  virtual ~KvCache() = default;
  virtual int32_t num_blocks() const = 0;
  virtual int32_t block_size() const = 0;
};

// The KV cache's element type (--kv-cache-dtype, as vLLM's): Auto keeps F32 on the CPU and the
// model's 16-bit type on a GPU; Fp8E4M3 stores E4M3 with a per-tensor scale per layer and K/V
// (1.0, or the checkpoint's k_scale / v_scale), where the backend supports it (CUDA).
enum class KvCacheDtype { Auto, Fp8E4M3 };
// "auto" (or empty), "fp8", "fp8_e4m3"; throws ferrum::Error naming the accepted values otherwise.
KvCacheDtype parse_kv_cache_dtype(const std::string& text);

// How a device model runs steps; each can be turned off to compare outputs (they must not
// change them).
struct ModelRunOptions {
  bool graphs = std::getenv("FERRUM_NO_GRAPHS") == nullptr;            // decode steps as CUDA graphs
  bool pad_batches = std::getenv("FERRUM_NO_BATCH_PADDING") == nullptr;  // decode batches padded to shared sizes
};

// What Model::prepare prepares for.
struct PrepareSpec {
  int32_t max_tokens = 0;        // tokens in one step
  int32_t max_rows = 0;          // sequences in one step (logits rows)
  int64_t max_context = 0;       // tokens of one sequence
  int64_t graph_context = 1024;  // decode graphs recorded up front for contexts up to this
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelConfig& config() const = 0;

  // Bytes one KV block of block_size tokens takes over all layers (for sizing the pool).
  virtual size_t kv_bytes_per_block(int32_t block_size) const = 0;
  // The element type of the KV cache create_kv_cache makes (F32, F16, BF16 or F8E4M3).
  virtual DType kv_cache_dtype() const { return DType::F32; }
  // Bytes of weights one decode step reads (every layer, the output layer, not the embedding
  // table) as the backend stores them; 0 when unknown. Benchmarks' bandwidth bound.
  virtual size_t weight_bytes_per_step() const { return 0; }
  virtual std::unique_ptr<KvCache> create_kv_cache(int32_t num_blocks, int32_t block_size) = 0;

  // Runs the batch, writing each token's K/V into its slot, and returns float32 logits,
  // row-major [batch.logits_indices.size(), vocab_size], in host memory.
  virtual void forward(const ForwardBatch& batch, KvCache& cache, std::vector<float>& logits) = 0;

  // The same, as a view of host memory the model owns, valid (and writable) until the next
  // call: no copy on the CPU, pinned memory the GPU copies into at full speed. The default
  // goes through the vector form.
  virtual std::span<float> forward_view(const ForwardBatch& batch, KvCache& cache) {
    forward(batch, cache, view_logits_);
    return view_logits_;
  }

  // Whether this model's tokens are best picked by the model itself (launch_sample: a GPU,
  // where the logits stay on the device); otherwise the engine samples forward_view's logits
  // on the host.
  virtual bool samples_on_device() const { return false; }
  // Whether launch_sample works at all (on a CPU too, with the reference sampler).
  virtual bool can_sample() const { return false; }
  virtual void set_run_options(const ModelRunOptions&) {}

  // Runs the batch and picks one token per logits row as `sampling` says (one SampleRow per
  // logits_indices entry, backend/sampling.h), in two halves so that steps can overlap:
  // launch_sample queues the step and its picks and returns a ticket at once; collect_sample
  // waits for that step's picks alone. batch.deferred's tokens come from the previous launch's
  // picks. Launches are collected in order, at most two outstanding. before_picks (may be
  // empty) runs once the forward is queued and before the picks are: host work the picks need
  // (the grammar masks written into `sampling`) overlaps the device's forward.
  virtual uint64_t launch_sample(const ForwardBatch& batch, KvCache& cache, const SampleBatch& sampling,
                                 const std::function<void()>& before_picks);
  virtual void collect_sample(uint64_t ticket, SampleResult& out);
  void forward_sample(const ForwardBatch& batch, KvCache& cache, const SampleBatch& sampling, SampleResult& out) {
    collect_sample(launch_sample(batch, cache, sampling, {}), out);
  }

  // Prepares a device model for the steps an engine will run, at start-up: buffers sized once
  // for the largest step, and decode steps recorded as graphs for every padded batch size.
  // Optional (steps prepare what they need lazily otherwise); logs what it did and its cost.
  virtual void prepare(KvCache& cache, const PrepareSpec& spec) {}

  // Empty while the model's device works; what broke it once it cannot (Backend::device_failure).
  virtual std::string device_failure() { return {}; }

 private:
  std::vector<float> view_logits_;
};

// Loads a Hugging Face model folder (config.json + safetensors). Throws ferrum::Error.
// device: "cpu" (num_threads threads, 0: all cores), "cuda" or "cuda:N".
// quantization: "" (as stored) or "fp8" (dense linear weights quantized to FP8 at load).
// kv_cache_dtype: what parse_kv_cache_dtype takes ("auto", "fp8"); a backend without an FP8
// cache (the CPU) refuses "fp8" here.
std::unique_ptr<Model> load_model(const std::string& model_dir, int num_threads = 0, const std::string& device = "cpu",
                                  const std::string& quantization = "", const std::string& kv_cache_dtype = "auto");

// The model of a config.json with random weights of `dtype` ("bf16", "f16", "f32") filled in
// place, for benchmarks of real shapes without the weight files.
std::unique_ptr<Model> load_model_dummy(const std::string& model_dir, const std::string& dtype, int num_threads = 0,
                                        const std::string& device = "cpu", const std::string& quantization = "",
                                        const std::string& kv_cache_dtype = "auto");

}  // namespace ferrum
