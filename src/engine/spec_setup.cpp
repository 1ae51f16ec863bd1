#include "engine/spec_setup.h"

#include "core/error.h"
#include "core/log.h"
#include "io/hf_hub.h"
#include "models/gguf_model.h"

namespace ferrum {

void check_draft_vocabulary(const Tokenizer& target, const Tokenizer& draft, const std::string& draft_name) {
  if (target.vocab_size() != draft.vocab_size())
    fail("draft model {}: its tokenizer has {} tokens and the target's {}; a draft model must share the "
         "target's tokenizer", draft_name, draft.vocab_size(), target.vocab_size());
  for (int32_t id = 0; id < target.vocab_size(); ++id) {
    if (target.id_to_token(id) != draft.id_to_token(id) || target.is_special(id) != draft.is_special(id))
      fail("draft model {}: token {} is '{}' in its tokenizer and '{}' in the target's; a draft model must "
           "share the target's tokenizer", draft_name, id, draft.id_to_token(id), target.id_to_token(id));
  }
}

std::shared_ptr<Model> load_draft_model(const std::string& model, const Tokenizer& target_tokenizer, int threads,
                                        const std::string& device) {
  const std::string path = hub::resolve_model(model);
  auto tokenizer = load_tokenizer(path);
  check_draft_vocabulary(target_tokenizer, *tokenizer, model);
  std::shared_ptr<Model> draft = load_model(path, threads, device);
  log::info("speculative decoding: draft model {} ({} layers, hidden size {})", model,
            draft->config().num_hidden_layers, draft->config().hidden_size);
  return draft;
}

}  // namespace ferrum
