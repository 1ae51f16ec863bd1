#include "structured/token_constraint.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace ferrum::structured {

bool TokenConstraint::gated_step(const std::string& b, GrammarMatcher& m, bool& starts) const {
  starts = false;
  // Cheap filter: a token can complete the marker only if it holds the marker's last byte.
  if (b.empty() || std::memchr(b.data(), marker_.back(), b.size()) == nullptr) return true;
  const std::string text = tail_ + b;  // rare: only tokens holding the last byte
  const size_t p = text.find(marker_);
  if (p == std::string::npos) return true;
  starts = true;
  m = matcher_;
  size_t rest = p + marker_.size();
  while (rest < text.size() && (text[rest] == ' ' || text[rest] == '\n' || text[rest] == '\t' || text[rest] == '\r')) ++rest;
  return m.advance(std::string_view(text).substr(rest));
}

void TokenConstraint::apply(std::span<float> logits, std::span<const int32_t> eos_ids, bool allow_eos,
                            std::vector<uint8_t>& scratch) const {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  auto is_eos = [&](size_t i) { return std::find(eos_ids.begin(), eos_ids.end(), static_cast<int32_t>(i)) != eos_ids.end(); };
  bool any = false;
  if (!started_) {
    GrammarMatcher m = matcher_;
    for (size_t i = 0; i < logits.size(); ++i) {
      bool ok = !is_eos(i);
      if (ok && i < vocab_->size()) {
        bool starts = false;
        ok = gated_step(vocab_->bytes(static_cast<int32_t>(i)), m, starts);
      }
      if (!ok) logits[i] = kNegInf;
      else if (logits[i] > kNegInf) any = true;
    }
    FERRUM_CHECK(any, "structured output: no token of the vocabulary can continue the output");
    return;
  }
  vocab_->mask(matcher_, scratch);
  const bool eos_ok = allow_eos && matcher_.accepts();
  for (size_t i = 0; i < logits.size(); ++i) {
    bool ok = i < scratch.size() && scratch[i];
    if (!ok && eos_ok) ok = is_eos(i);
    if (!ok) logits[i] = kNegInf;
    else if (logits[i] > kNegInf) any = true;
  }
  FERRUM_CHECK(any, "structured output: no token of the vocabulary can continue the output");
}

bool TokenConstraint::advance(int32_t token) {
  if (token < 0 || static_cast<size_t>(token) >= vocab_->size()) return false;
  const std::string& b = vocab_->bytes(token);
  if (!started_) {
    GrammarMatcher m = matcher_;
    bool starts = false;
    if (!gated_step(b, m, starts)) return false;  // m: the matcher after the rest
    if (starts) {
      matcher_ = std::move(m);
      started_ = true;
      tail_.clear();
    } else {
      tail_ += b;
      if (tail_.size() >= marker_.size()) tail_.erase(0, tail_.size() - (marker_.size() - 1));
    }
    return true;
  }
  return !b.empty() && matcher_.advance(b);
}

}  // namespace ferrum::structured
