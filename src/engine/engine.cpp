// Engine::create. The engine itself is EngineImpl (engine_impl.h; its host-sampling step in
// engine_host_step.cpp).
#include "engine/engine.h"

#include "engine/engine_impl.h"

namespace ferrum {

std::unique_ptr<Engine> Engine::create(std::shared_ptr<Model> model, std::shared_ptr<const Tokenizer> tokenizer,
                                       const EngineOptions& options) {
  FERRUM_CHECK(model != nullptr, "Engine::create needs a model");
  return std::make_unique<engine_detail::EngineImpl>(std::move(model), std::move(tokenizer), options);
}

}  // namespace ferrum
