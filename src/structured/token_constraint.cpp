#include "structured/token_constraint.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace ferrum::structured {

void TokenConstraint::apply(std::span<float> logits, std::span<const int32_t> eos_ids, bool allow_eos,
                            std::vector<uint8_t>& scratch) const {
  vocab_->mask(matcher_, scratch);
  const bool eos_ok = allow_eos && matcher_.accepts();
  bool any = false;
  for (size_t i = 0; i < logits.size(); ++i) {
    bool ok = i < scratch.size() && scratch[i];
    if (!ok && eos_ok) ok = std::find(eos_ids.begin(), eos_ids.end(), static_cast<int32_t>(i)) != eos_ids.end();
    if (!ok) logits[i] = -std::numeric_limits<float>::infinity();
    else if (logits[i] > -std::numeric_limits<float>::infinity()) any = true;
  }
  FERRUM_CHECK(any, "structured output: no token of the vocabulary can continue the output");
}

bool TokenConstraint::advance(int32_t token) {
  if (token < 0 || static_cast<size_t>(token) >= vocab_->size()) return false;
  const std::string& b = vocab_->bytes(token);
  return !b.empty() && matcher_.advance(b);
}

}  // namespace ferrum::structured
