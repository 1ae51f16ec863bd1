// What the engine sees of a model: a forward pass over a flat batch against a paged KV cache.
#pragma once
#include <cstdint>
#include <cstdlib>
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

// How a device model runs steps; each can be turned off to compare outputs (they must not
// change them).
struct ModelRunOptions {
  bool graphs = std::getenv("FERRUM_NO_GRAPHS") == nullptr;            // decode steps as CUDA graphs
  bool pad_batches = std::getenv("FERRUM_NO_BATCH_PADDING") == nullptr;  // decode batches padded to shared sizes
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelConfig& config() const = 0;

  // Bytes one KV block of block_size tokens takes over all layers (for sizing the pool).
  virtual size_t kv_bytes_per_block(int32_t block_size) const = 0;
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

  // Whether forward_sample is where this model's tokens are picked (a GPU: the logits stay on
  // the device); otherwise the engine samples forward_view's logits on the host.
  virtual bool samples_on_device() const { return false; }
  virtual void set_run_options(const ModelRunOptions&) {}
  // Runs the batch and picks one token per logits row as `sampling` says (one SampleRow per
  // logits_indices entry, backend/sampling.h).
  virtual void forward_sample(const ForwardBatch& batch, KvCache& cache, const SampleBatch& sampling,
                              SampleResult& out);

 private:
  std::vector<float> view_logits_;
};

// Loads a Hugging Face model folder (config.json + safetensors). Throws ferrum::Error.
// device: "cpu" (num_threads threads, 0: all cores), "cuda" or "cuda:N".
std::unique_ptr<Model> load_model(const std::string& model_dir, int num_threads = 0, const std::string& device = "cpu");

// The model of a config.json with random weights of `dtype` ("bf16", "f16", "f32") filled in
// place, for benchmarks of real shapes without the weight files.
std::unique_ptr<Model> load_model_dummy(const std::string& model_dir, const std::string& dtype, int num_threads = 0,
                                        const std::string& device = "cpu");

}  // namespace ferrum
