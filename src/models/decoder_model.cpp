// The Llama-family decoder (Llama 2/3, Mistral, Qwen2, Qwen3): every layer's feed-forward
// block is the SwiGLU MLP of intermediate_size.
#include "models/decoder_model.h"

#include "models/decoder_core.h"

namespace ferrum {
namespace {

class DecoderModel final : public DecoderCore {
 public:
  DecoderModel(const ModelConfig& c, const DecoderOptions& o, WeightStore ws, std::unique_ptr<Backend> be)
      : DecoderCore(c, o, std::move(ws), std::move(be)) {
    init();
  }

 private:
  std::unique_ptr<FeedForward> make_ffn(int64_t, const std::string& prefix) override {
    return swiglu_mlp(prefix + "mlp", cfg_.intermediate_size);
  }
};

}  // namespace

std::unique_ptr<Model> make_decoder_model(const ModelConfig& config, const DecoderOptions& options, WeightStore weights,
                                          std::unique_ptr<Backend> backend) {
  return std::make_unique<DecoderModel>(config, options, std::move(weights), std::move(backend));
}

}  // namespace ferrum
