// Mixture-of-experts decoders (Qwen3-MoE; Qwen2-MoE with its shared expert): the blocks of
// decoder_core.h with, in the sparse layers (MoeConfig::sparse_layer), a router and grouped
// experts in place of the MLP, run by Backend::moe_ffn. Other layers keep the dense SwiGLU MLP
// of intermediate_size.
#include "models/moe_decoder_model.h"

#include "models/decoder_core.h"

namespace ferrum {
namespace {

class MoeBlock final : public FeedForward {
 public:
  std::unique_ptr<LinearWeight> router, gate_up, down;        // router [E, H]; experts grouped
  std::unique_ptr<LinearWeight> shared_gate_up, shared_down;  // Qwen2-MoE's shared expert
  std::unique_ptr<LinearWeight> shared_gate;                  // [1, H]
  MoeRouting routing;

  void run(Backend& be, const Tensor& x, Tensor& h, Tensor&) const override {
    MoeWeights w{router.get(), gate_up.get(), down.get(), shared_gate_up.get(), shared_down.get(), shared_gate.get(),
                 routing};
    be.moe_ffn(x, w, h);
  }
  // A token reads the router, top_k of the experts and the shared expert.
  size_t step_bytes() const override {
    const size_t experts = (gate_up->stored_bytes + down->stored_bytes) / num_experts * routing.top_k;
    size_t n = router->stored_bytes + experts;
    if (shared_gate_up) n += shared_gate_up->stored_bytes + shared_down->stored_bytes + shared_gate->stored_bytes;
    return n;
  }
  int64_t num_experts = 0;
};

class MoeDecoderModel final : public DecoderCore {
 public:
  MoeDecoderModel(const ModelConfig& c, const DecoderOptions& o, WeightStore ws, std::unique_ptr<Backend> be)
      : DecoderCore(c, o, std::move(ws), std::move(be)) {
    if (opt_.online_fp8) fail("{}: --quantization fp8 is not supported for MoE models yet", cfg_.architecture);
    if (cfg_.moe.num_experts <= 0) fail("{}: config.json has no num_experts", cfg_.architecture);
    init();
  }

 private:
  std::unique_ptr<FeedForward> make_ffn(int64_t layer, const std::string& prefix) override {
    const MoeConfig& m = cfg_.moe;
    const int64_t H = cfg_.hidden_size, E = m.num_experts, I = m.intermediate_size;
    if (!m.sparse_layer(layer)) return swiglu_mlp(prefix + "mlp", cfg_.intermediate_size);
    if (!be_->supports_moe(act_dtype_))
      fail("{}: MoE blocks with {} activations are not supported on {} (a 16-bit checkpoint runs)", cfg_.architecture,
           dtype_name(act_dtype_), be_->name());
    auto b = std::make_unique<MoeBlock>();
    const std::string mlp = prefix + "mlp";
    b->num_experts = E;
    b->routing = {static_cast<int32_t>(m.experts_per_token), m.norm_topk_prob};
    b->router = linear(mlp + ".gate", {mlp + ".gate"}, {E}, H, false);
    b->gate_up = experts(mlp + ".experts", {"gate_proj", "up_proj"}, {I, I}, H);
    b->down = experts(mlp + ".experts", {"down_proj"}, {H}, I);
    if (const int64_t S = m.shared_expert_intermediate_size; S > 0) {
      const std::string shared = mlp + ".shared_expert";
      b->shared_gate_up = linear(shared + ".gate_up", {shared + ".gate_proj", shared + ".up_proj"}, {S, S}, H, false);
      b->shared_down = linear(shared + ".down_proj", {shared + ".down_proj"}, {H}, S, false);
      b->shared_gate = linear(mlp + ".shared_expert_gate", {mlp + ".shared_expert_gate"}, {1}, H, false);
    }
    return b;
  }

  // The grouped weight of `parts` (gate_proj, up_proj; down_proj) of every expert under
  // `prefix` ("model.layers.N.mlp.experts"): one tensor per expert
  // (prefix.E.part.weight, as checkpoints store them), or one stacked [E, rows, cols] tensor
  // (prefix.part.weight, GGUF's ffn_*_exps; as blocks where a backend kernel runs their type)
  // seen as its experts' slices.
  std::unique_ptr<LinearWeight> experts(const std::string& prefix, const std::vector<std::string>& parts,
                                        const std::vector<int64_t>& rows, int64_t cols) {
    const int64_t E = cfg_.moe.num_experts;
    LinearSpec spec;
    spec.name = prefix + "." + parts.front() + (parts.size() > 1 ? "+" + parts.back() : "");
    spec.in_features = cols;
    spec.num_experts = static_cast<int32_t>(E);
    spec.dummy = opt_.dummy_weights;
    spec.activations = act_dtype_;
    for (size_t i = 0; i < parts.size(); ++i) {
      LinearPart p;
      p.name = prefix + "." + parts[i] + ".weight";
      p.rows = rows[i];
      if (!opt_.dummy_weights && store_.has(p.name)) {
        p.experts = stacked_experts(p.name, rows[i], cols, p.format);
      } else {
        per_expert(prefix, parts[i], p);
      }
      spec.parts.push_back(std::move(p));
    }
    std::unique_ptr<LinearWeight> w = be_->load_linear(spec);
    check_activation_dtype(*w);
    return w;
  }

  // Part `part` of every expert from its own tensors (prefix.E.part): dense weights, or GPTQ /
  // AWQ / FP8 ones with their companions (quantization_config; all experts alike). Dummy
  // weights take only the format.
  void per_expert(const std::string& prefix, const std::string& part, LinearPart& p) const {
    const int64_t E = cfg_.moe.num_experts;
    LinearPart q;
    if (opt_.dummy_weights) {  // no tensors: expert 0's module says the format of all
      if (quantized_source(prefix + ".0." + part, q)) p.format = q.format, p.quant = q.quant;
      return;
    }
    int64_t quantized = 0;
    for (int64_t e = 0; e < E; ++e) {
      const std::string module = prefix + "." + std::to_string(e) + "." + part;
      q = LinearPart{};
      if (quantized_source(module, q)) {
        ++quantized;
        p.format = q.format;
        p.quant = q.quant;
        p.experts.push_back(q.weight);
        p.expert_extra.push_back(std::move(q.extra));
      } else {
        p.experts.push_back(store_.get(module + ".weight"));
      }
    }
    if (quantized > 0 && quantized < E)
      fail("{}: {} of the {} experts of '{}' are {}-quantized and the others not (mixed experts are not supported)",
           cfg_.architecture, quantized, E, prefix + "." + part, cfg_.quantization.method);
  }

  // The experts' slices [rows, cols] of stacked tensor `name`: its blocks [E * rows, bytes]
  // where a backend kernel runs their type (`format` says which), else its values.
  std::vector<Tensor> stacked_experts(const std::string& name, int64_t rows, int64_t cols, WeightFormat& format) {
    const int64_t E = cfg_.moe.num_experts;
    format = block_format(name);
    const WeightStore::Quantized* q = store_.quantized(name);
    const Tensor& stacked = format != WeightFormat::Dense ? q->blocks : store_.get(name);
    const int ndim = q ? q->ndim : stacked.ndim;
    const int64_t experts = q ? q->shape[0] : stacked.dim(0), per_expert = stacked.rows() / E;
    if (ndim != 3 || experts != E || per_expert != rows)
      fail("tensor '{}' is not the {} experts' [{}, {}] weights stacked", name, E, rows, cols);
    const Tensor flat = stacked.view({stacked.rows(), stacked.cols()});
    std::vector<Tensor> out;
    for (int64_t e = 0; e < E; ++e) out.push_back(flat.slice_rows(e * per_expert, per_expert));
    return out;
  }
};

}  // namespace

std::unique_ptr<Model> make_moe_decoder_model(const ModelConfig& config, const DecoderOptions& options,
                                              WeightStore weights, std::unique_ptr<Backend> backend) {
  return std::make_unique<MoeDecoderModel>(config, options, std::move(weights), std::move(backend));
}

}  // namespace ferrum
