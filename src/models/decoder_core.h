// What ferrum's decoders share: pre-norm blocks of attention (GQA/MQA, optional q/k/v bias and
// q/k RMSNorm, rotary embeddings) and a feed-forward block, the paged KV cache, the flat
// batch's inputs, decode graphs and the output layer. A model file (decoder_model.cpp: the
// dense Llama family; moe_decoder_model.cpp: mixtures of experts) says what each layer's
// feed-forward block is.
#pragma once
#include <chrono>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "models/decoder_model.h"
#include "models/step_graphs.h"
#include "models/workspace.h"

namespace ferrum {

// One layer's feed-forward block: h += ffn(x), where x is the post-attention RMSNorm of h.
class FeedForward {
 public:
  virtual ~FeedForward() = default;
  // scratch: [T, scratch_cols()] in the activations' dtype (shared by every layer).
  virtual void run(Backend& be, const Tensor& x, Tensor& h, Tensor& scratch) const = 0;
  virtual int64_t scratch_cols() const { return 0; }
  // Bytes of weights one decode token reads (the bandwidth bound of benchmarks).
  virtual size_t step_bytes() const = 0;
};

// The SwiGLU MLP: h += down(silu(gate x) * up x), gate and up fused.
class SwiGluMlp final : public FeedForward {
 public:
  SwiGluMlp(std::unique_ptr<LinearWeight> gate_up, std::unique_ptr<LinearWeight> down)
      : gate_up_(std::move(gate_up)), down_(std::move(down)) {}
  void run(Backend& be, const Tensor& x, Tensor& h, Tensor& scratch) const override;
  int64_t scratch_cols() const override { return down_->in_features; }
  size_t step_bytes() const override { return gate_up_->stored_bytes + down_->stored_bytes; }

 private:
  std::unique_ptr<LinearWeight> gate_up_, down_;
};

class PagedKvCache;

class DecoderCore : public Model {
 public:
  ~DecoderCore() override;
  const ModelConfig& config() const override { return cfg_; }
  size_t kv_bytes_per_block(int32_t block_size) const override;
  DType kv_cache_dtype() const override { return kv_dtype_; }
  size_t weight_bytes_per_step() const override;
  std::unique_ptr<KvCache> create_kv_cache(int32_t num_blocks, int32_t block_size) override;
  void forward(const ForwardBatch& b, KvCache& cache, std::vector<float>& logits) override;
  std::span<float> forward_view(const ForwardBatch& b, KvCache& cache) override;
  void set_run_options(const ModelRunOptions& o) override;
  // A GPU samples where the logits are: only ids and the requested logprobs come back. The
  // CPU can too, with the reference sampler (how CI runs the engine's overlapped steps).
  bool samples_on_device() const override { return be_->device() != Device::CPU; }
  bool can_sample() const override { return true; }
  uint64_t launch_sample(const ForwardBatch& b, KvCache& cache, const SampleBatch& sampling,
                         const std::function<void()>& before_picks) override;
  void collect_sample(uint64_t ticket, SampleResult& out) override;
  void prepare(KvCache& cache, const PrepareSpec& spec) override;
  std::string device_failure() override { return be_->device_failure(); }

 protected:
  DecoderCore(const ModelConfig& c, const DecoderOptions& o, WeightStore ws, std::unique_ptr<Backend> be);
  // Loads the weights (each layer's feed-forward block from make_ffn) and the RoPE table; the
  // model file's constructor calls it, when make_ffn is its own.
  void init();
  // Layer `layer`'s feed-forward block; `prefix` is "model.layers.N.".
  virtual std::unique_ptr<FeedForward> make_ffn(int64_t layer, const std::string& prefix) = 0;

  // A linear layer of one or more parts (q/k/v, gate/up: projections of the same input) with
  // optional biases; the backend decides how to store and fuse them.
  std::unique_ptr<LinearWeight> linear(const std::string& layer, const std::vector<std::string>& parts,
                                       const std::vector<int64_t>& rows, int64_t cols, bool bias);
  // The SwiGLU MLP of `prefix` ("model.layers.N.mlp" and the like) of width `intermediate`.
  std::unique_ptr<FeedForward> swiglu_mlp(const std::string& prefix, int64_t intermediate);
  // Refuses a layer whose weights the backend would keep in another dtype than the
  // activations (mixed weight dtypes).
  void check_activation_dtype(const LinearWeight& w) const;
  // The block format a backend kernel runs for this (GGUF-quantized) tensor; Dense when it is
  // not quantized or the backend has no kernel for its type.
  WeightFormat block_format(const std::string& tensor) const;
  // Whether a layer's part is stored quantized by config.json's quantization_config (GPTQ,
  // AWQ, FP8); if so, fills p's format, tensors and scheme.
  bool quantized_source(const std::string& module, LinearPart& p) const;
  // Modules the quantization leaves dense (the output layer, modules_to_not_convert).
  bool skipped(const std::string& module) const;

  ModelConfig cfg_;
  DecoderOptions opt_;
  WeightStore store_;
  std::unique_ptr<Backend> be_;
  DType act_dtype_ = DType::F32;  // activations between ops (backend's choice for the weights' dtype)

 private:
  struct LayerWeights {
    Tensor input_norm, post_norm, q_norm, k_norm;
    std::unique_ptr<LinearWeight> qkv, o;  // q/k/v fused
    std::unique_ptr<FeedForward> ffn;
  };
  struct Activations;

  // Issues the forward pass (recorded or replayed as a graph for decode steps on a device);
  // returns the logits [rows, vocab] where the backend keeps them (empty without rows).
  Tensor issue(const ForwardBatch& b, PagedKvCache& cache);
  // The decode batch as a graph runs it: rows padded to a bucket size, block tables to a
  // power-of-two width (padded_ holds it until the next call).
  const ForwardBatch& pad_for_graph(const ForwardBatch& b);
  // Uploads a batch's inputs (and takes its deferred tokens) into the workspace; `graph`: the
  // attention is sized by the block tables' width, as a recorded graph needs.
  Activations stage_inputs(const ForwardBatch& b, const std::vector<int32_t>& deferred, PagedKvCache& cache,
                           bool graph);
  void run_layers(const Activations& a, PagedKvCache& cache);
  std::span<float> logits_to_host(const Tensor& out, size_t n);
  void log_profile(const char* last);  // every 200 forwards; `last`: what profile_.copy timed
  // FERRUM_PROFILE: waits for the GPU, counting it apart from what follows; returns the time
  // after (now, without profiling).
  std::chrono::steady_clock::time_point profile_gpu_wait();

  // A small (norm, embedding) tensor, uploaded as it is.
  Tensor weight(const std::string& name, std::initializer_list<int64_t> shape);
  Tensor host_weight(const std::string& name, std::initializer_list<int64_t> shape);  // checked, not uploaded
  void load_weights();
  // Each layer's FP8 KV cache scales (kv_scales_): the checkpoint's where it has them, else 1.0.
  void load_kv_scales();
  // The first of `names` the checkpoint has, as a positive scalar (counted in *found); 1.0
  // when it has none.
  float checkpoint_scale(std::initializer_list<std::string> names, int* found) const;

  ForwardBatch padded_;
  ModelRunOptions run_options_;
  StepGraphs graphs_;   // decode steps as recorded graphs (device backends)
  Tensor host_logits_;  // where a device backend's logits land (pinned), grown as needed
  // FERRUM_PROFILE: milliseconds spent, summed over forwards.
  struct Profile {
    bool on = std::getenv("FERRUM_PROFILE") != nullptr;
    double inputs = 0, launch = 0, wait = 0, copy = 0;  // copy: logits to the host, or sampling
    int64_t calls = 0;
  } profile_;

  DType kv_dtype_ = DType::F32;
  std::vector<KvScales> kv_scales_;  // per layer; only an E4M3 cache uses them
  Tensor embed_, final_norm_;
  WeightFormat embed_format_ = WeightFormat::Dense;  // GGUF blocks: embed_ is U8 [V, row bytes]
  std::unique_ptr<LinearWeight> lm_head_;
  std::vector<LayerWeights> layers_;
  int64_t ffn_scratch_cols_ = 0;  // the widest feed-forward scratch of any layer
  RopeTable rope_;
  Workspace ws_{*be_};
};

}  // namespace ferrum
