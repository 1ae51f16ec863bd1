// Loading a draft model for speculative decoding (`--spec-draft`), shared by `ferrum serve`
// and `ferrum generate`: the draft must tokenize exactly as the target does.
#pragma once
#include <memory>
#include <string>

#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace ferrum {

// Throws Error naming the first difference: the vocabulary size, or a token id whose string
// or special status differs.
void check_draft_vocabulary(const Tokenizer& target, const Tokenizer& draft, const std::string& draft_name);

// `model`: a folder, a .gguf file or a hub reference (as the target's MODEL argument).
std::shared_ptr<Model> load_draft_model(const std::string& model, const Tokenizer& target_tokenizer, int threads,
                                        const std::string& device);

}  // namespace ferrum
