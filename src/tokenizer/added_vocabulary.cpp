#include "tokenizer/added_vocabulary.h"

#include <array>
#include <map>

#include "tokenizer/normalizers.h"
#include "tokenizer/unicode_text.h"

namespace ferrum::tok {

// A byte trie answering "longest pattern starting here", which gives the leftmost-longest
// matches of HF's Aho-Corasick when scanned left to right.
class AddedVocabulary::Trie {
 public:
  Trie() : nodes_(1) {}
  void insert(std::string_view pattern, size_t token_index) {
    if (pattern.empty()) return;
    int32_t node = 0;
    for (const char c : pattern) {
      auto& children = nodes_[node].children;
      auto it = children.find(static_cast<unsigned char>(c));
      if (it == children.end()) {
        nodes_.emplace_back();
        it = nodes_[node].children.emplace(static_cast<unsigned char>(c), static_cast<int32_t>(nodes_.size() - 1)).first;
      }
      node = it->second;
    }
    // The first token inserted with a given pattern wins, like HF's pattern order.
    if (nodes_[node].token < 0) nodes_[node].token = static_cast<int64_t>(token_index);
    first_byte_[static_cast<unsigned char>(pattern[0])] = true;
  }
  // Returns {length, token index} of the longest match at pos, or {0, -1}.
  std::pair<size_t, int64_t> longest_at(std::string_view text, size_t pos) const {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) return {0, -1};
    std::pair<size_t, int64_t> best{0, -1};
    int32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      const auto& children = nodes_[node].children;
      auto it = children.find(static_cast<unsigned char>(text[i]));
      if (it == children.end()) break;
      node = it->second;
      if (nodes_[node].token >= 0) best = {i + 1 - pos, nodes_[node].token};
    }
    return best;
  }
  bool empty() const { return nodes_.size() == 1; }

 private:
  struct Node {
    std::map<unsigned char, int32_t> children;
    int64_t token = -1;
  };
  std::vector<Node> nodes_;
  std::array<bool, 256> first_byte_{};
};

AddedVocabulary::AddedVocabulary() = default;
AddedVocabulary::~AddedVocabulary() = default;

void AddedVocabulary::add(AddedToken token) {
  by_content_[token.content] = tokens_.size();
  by_id_[token.id] = tokens_.size();
  tokens_.push_back(std::move(token));
}

void AddedVocabulary::build(const Normalizer* normalizer) {
  raw_trie_ = std::make_unique<Trie>();
  normalized_trie_ = std::make_unique<Trie>();
  for (size_t k = 0; k < tokens_.size(); ++k) {
    const AddedToken& t = tokens_[k];
    if (!t.normalized) {
      raw_trie_->insert(t.content, k);
    } else {
      std::string content = t.content;
      if (normalizer) normalizer->normalize(content);
      normalized_trie_->insert(content, k);
    }
  }
}

namespace {

bool is_word_char(char32_t c) { return c == '_' || is_alphanumeric(c); }

char32_t last_char(std::string_view s) {
  size_t start = s.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return next_code_point(s, start);
}

// Start of the run of whitespace that ends at `end` (HF space_leftmost_at_end).
size_t whitespace_run_start(std::string_view s, size_t end) {
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t j = start;
    if (!is_whitespace(next_code_point(s, j))) break;
    end = start;
  }
  return end;
}

size_t whitespace_run_end(std::string_view s, size_t start) {
  while (start < s.size()) {
    size_t j = start;
    if (!is_whitespace(next_code_point(s, j))) break;
    start = j;
  }
  return start;
}

}  // namespace

std::vector<TextPiece> AddedVocabulary::split(std::string_view text, bool normalized) const {
  const Trie& trie = normalized ? *normalized_trie_ : *raw_trie_;
  std::vector<TextPiece> pieces;
  if (trie.empty() || text.empty()) {
    if (!text.empty()) pieces.push_back({0, text.size(), -1});
    return pieces;
  }
  size_t emitted = 0;  // end of the last piece pushed
  size_t pos = 0;
  while (pos < text.size()) {
    const auto [len, index] = trie.longest_at(text, pos);
    if (index < 0) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + len;
    pos = stop;  // matches never overlap, even when this one is rejected below
    const AddedToken& t = tokens_[static_cast<size_t>(index)];
    if (t.single_word) {
      const bool space_before = start == 0 || !is_word_char(last_char(text.substr(0, start)));
      size_t j = stop;
      const bool space_after = stop == text.size() || !is_word_char(next_code_point(text, j));
      if (!space_before || !space_after) continue;
    }
    if (t.lstrip) start = std::max(whitespace_run_start(text, start), emitted);
    if (t.rstrip) stop = whitespace_run_end(text, stop);
    if (emitted < start) pieces.push_back({emitted, start, -1});
    pieces.push_back({start, stop, t.id});
    emitted = stop;
    pos = std::max(pos, stop);
  }
  if (emitted < text.size()) pieces.push_back({emitted, text.size(), -1});
  return pieces;
}

const AddedToken* AddedVocabulary::find(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedVocabulary::find(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

}  // namespace ferrum::tok
