// Post-processors of tokenizer.json ("post_processor"), for a single sequence: the special
// tokens placed around the encoded text when add_special_tokens is set.
#pragma once
#include <cstdint>
#include <vector>

#include "core/json.h"

namespace ferrum::tok {

struct SpecialTokenFrame {
  std::vector<int32_t> prefix, suffix;
  bool has_template = false;  // a TemplateProcessing / Roberta / Bert step was present
};

// Null spec gives an empty frame. Throws ferrum::Error on an unsupported type.
SpecialTokenFrame make_special_token_frame(const json& spec);

}  // namespace ferrum::tok
