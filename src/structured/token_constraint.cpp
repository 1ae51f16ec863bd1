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

void TokenConstraint::allowed(std::span<uint32_t> bits, size_t n, std::span<const int32_t> eos_ids,
                              bool allow_eos) const {
  FERRUM_CHECK(bits.size() == TokenVocab::words_for(n), "token mask: {} words for {} tokens", bits.size(), n);
  auto is_eos = [&](size_t i) { return std::find(eos_ids.begin(), eos_ids.end(), static_cast<int32_t>(i)) != eos_ids.end(); };
  auto set = [&](size_t i) { bits[i >> 5] |= 1u << (i & 31); };
  std::fill(bits.begin(), bits.end(), 0u);
  if (!started_) {  // rare: only until the marker, token by token
    GrammarMatcher m = matcher_;
    for (size_t i = 0; i < n && i < vocab_->size(); ++i) {
      bool starts = false;
      if (!is_eos(i) && gated_step(vocab_->bytes(static_cast<int32_t>(i)), m, starts)) set(i);
    }
    return;
  }
  const std::shared_ptr<const TokenVocab::Bitmask> mask = vocab_->bitmask(matcher_);
  const size_t tokens = std::min(n, vocab_->size());
  std::copy_n(mask->begin(), TokenVocab::words_for(tokens), bits.begin());
  if (tokens % 32) bits[tokens >> 5] &= (1u << (tokens % 32)) - 1;  // ids past n (or the tokenizer)
  if (allow_eos && matcher_.accepts())
    for (const int32_t e : eos_ids)
      if (e >= 0 && static_cast<size_t>(e) < n) set(static_cast<size_t>(e));
}

void TokenConstraint::apply(std::span<float> logits, std::span<const int32_t> eos_ids, bool allow_eos,
                            std::vector<uint32_t>& scratch) const {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  scratch.resize(TokenVocab::words_for(logits.size()));
  allowed(scratch, logits.size(), eos_ids, allow_eos);
  bool any = false;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!((scratch[i >> 5] >> (i & 31)) & 1u)) logits[i] = kNegInf;
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
