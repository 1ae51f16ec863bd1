#include "tokenizer/bpe_model.h"

#include <fmt/format.h>

#include <queue>

#include "core/error.h"
#include "core/json_integer.h"
#include "tokenizer/unicode_text.h"

namespace ferrum::tok {
namespace {

constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCacheEntries = 50000;  // a few MB at most; cleared when full

std::optional<std::string> optional_string(const json& spec, const char* key) {
  if (!spec.contains(key) || spec.at(key).is_null()) return std::nullopt;
  return spec.at(key).get<std::string>();
}


BpeVocab vocab_from_json(const json& vocab) {
  if (!vocab.is_object()) fail("tokenizer: BPE vocab must be an object");
  BpeVocab out;
  out.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) out.emplace_back(token, json_integer_or_fail<int64_t>(id, "tokenizer: BPE vocab id"));
  return out;
}

BpeMerges merges_from_json(const json& merges) {
  BpeMerges out;
  out.reserve(merges.size());
  for (const auto& m : merges) {
    if (m.is_string()) out.push_back(split_merge(m.get_ref<const std::string&>()));
    else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
      out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    else fail("tokenizer: malformed merge {}", m.dump());
  }
  return out;
}

}  // namespace

BpeModel::BpeModel(const json& spec)
    : BpeModel(spec, vocab_from_json(spec.at("vocab")), merges_from_json(spec.at("merges"))) {}

BpeModel::BpeModel(const json& spec, BpeVocab vocab, BpeMerges merges) {
  if (spec.contains("dropout") && !spec.at("dropout").is_null() && spec.at("dropout").get<double>() > 0)
    fail("tokenizer: BPE dropout is not supported");
  continuing_subword_prefix_ = optional_string(spec, "continuing_subword_prefix").value_or("");
  end_of_word_suffix_ = optional_string(spec, "end_of_word_suffix").value_or("");
  fuse_unk_ = spec.value("fuse_unk", false);
  byte_fallback_ = spec.value("byte_fallback", false);
  ignore_merges_ = spec.value("ignore_merges", false);
  load_vocab(std::move(vocab));
  if (auto unk = optional_string(spec, "unk_token")) {
    auto it = vocab_.find(*unk);
    if (it == vocab_.end()) fail("tokenizer: unk_token '{}' is not in the vocabulary", *unk);
    unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.find(fmt::format("<0x{:02X}>", b));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
  load_merges(merges);
}

void BpeModel::load_vocab(BpeVocab vocab) {
  int64_t max_id = -1;
  vocab_.reserve(vocab.size());
  for (auto& [token, id] : vocab) {
    if (id < 0 || id > INT32_MAX) fail("tokenizer: id {} of token '{}' is out of range", id, token);
    max_id = std::max(max_id, id);
  }
  // Ids index a table: a stray huge id must not allocate gigabytes.
  if (max_id >= static_cast<int64_t>(2 * vocab.size() + (1u << 20)))
    fail("tokenizer: vocabulary id {} is far beyond its {} entries", max_id, vocab.size());
  id_to_token_.resize(static_cast<size_t>(max_id + 1));
  const bool plain_words = continuing_subword_prefix_.empty() && end_of_word_suffix_.empty();
  for (auto& [token, id] : vocab) {
    const auto i = static_cast<int32_t>(id);
    if (plain_words) {
      size_t pos = 0;
      const char32_t c = token.empty() ? 0xFFFD : next_code_point(token, pos);
      if (pos == token.size() && c != 0xFFFD) char_ids_.emplace(c, i);
    }
    id_to_token_[static_cast<size_t>(i)] = token;
    vocab_.emplace(std::move(token), i);
  }
}

void BpeModel::load_merges(const BpeMerges& merges) {
  merges_.reserve(merges.size());
  const size_t prefix_len = continuing_subword_prefix_.size();
  std::string merged;
  int32_t rank = 0;
  for (const auto& [a, b] : merges) {
    const auto ia = vocab_.find(a), ib = vocab_.find(b);
    if (ia == vocab_.end() || ib == vocab_.end()) fail("tokenizer: merge '{} {}' uses a token outside the vocabulary", a, b);
    merged.assign(a);
    merged.append(b.size() >= prefix_len ? std::string_view(b).substr(prefix_len) : std::string_view(b));
    const auto im = vocab_.find(merged);
    if (im == vocab_.end()) fail("tokenizer: merge result '{}' is not in the vocabulary", merged);
    merges_.insert(pair_key(ia->second, ib->second), {rank++, im->second});
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return nullptr;
  const std::string& t = id_to_token_[static_cast<size_t>(id)];
  // Holes in a sparse vocabulary are empty strings; no real token is empty.
  return t.empty() ? nullptr : &t;
}

void BpeModel::initial_symbols(std::string_view word, std::vector<int32_t>& ids) const {
  // An unknown character becomes a pending unk that is emitted when the next known character
  // arrives (or at the end); byte-fallback pieces do not flush it. This ordering is HF's.
  bool pending_unk = false;
  std::string piece;
  size_t i = 0;
  while (i < word.size()) {
    const size_t start = i;
    const char32_t c = next_code_point(word, i);
    if (!char_ids_.empty() && c != 0xFFFD) {
      if (auto it = char_ids_.find(c); it != char_ids_.end()) {
        if (pending_unk) ids.push_back(*unk_id_);
        pending_unk = false;
        ids.push_back(it->second);
        continue;
      }
    }
    piece.clear();
    if (start > 0) piece += continuing_subword_prefix_;
    piece.append(word.substr(start, i - start));
    if (i == word.size()) piece += end_of_word_suffix_;
    if (auto it = vocab_.find(piece); it != vocab_.end()) {
      if (pending_unk) ids.push_back(*unk_id_);
      pending_unk = false;
      ids.push_back(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all_bytes = true;
      for (const char c : piece) all_bytes &= byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all_bytes) {
        for (const char c : piece) ids.push_back(byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    // Without an unk token HF drops the character.
    if (unk_id_) {
      if (pending_unk && !fuse_unk_) ids.push_back(*unk_id_);
      pending_unk = true;
    }
  }
  if (pending_unk) ids.push_back(*unk_id_);
}

// HF Word::merge_all: repeatedly applies the lowest-rank merge (leftmost on ties), using a
// priority queue over a linked list of symbols with lazy deletion of stale entries.
void BpeModel::merge(std::vector<int32_t>& ids) const {
  const size_t n = ids.size();
  if (n < 2) return;
  struct Entry {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<int32_t> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (size_t k = 0; k < n; ++k) {
    prev[k] = static_cast<int32_t>(k) - 1;
    next[k] = k + 1 < n ? static_cast<int32_t>(k + 1) : -1;
  }
  std::vector<Entry> heap_storage;
  heap_storage.reserve(n);
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue(std::greater<Entry>(),
                                                                           std::move(heap_storage));
  auto lookup = [&](int32_t a, int32_t b) -> const MergeTarget* {
    return merges_.find(pair_key(a, b));
  };
  for (size_t k = 0; k + 1 < n; ++k)
    if (const auto* m = lookup(ids[k], ids[k + 1])) queue.push({m->rank, static_cast<int32_t>(k), m->new_id});

  while (!queue.empty()) {
    const Entry top = queue.top();
    queue.pop();
    if (!alive[top.pos] || next[top.pos] < 0) continue;
    const int32_t right = next[top.pos];
    const auto* current = lookup(ids[top.pos], ids[right]);
    if (!current || current->new_id != top.new_id) continue;  // stale entry
    ids[top.pos] = top.new_id;
    alive[right] = false;
    next[top.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = top.pos;
    if (prev[top.pos] >= 0)
      if (const auto* m = lookup(ids[prev[top.pos]], ids[top.pos])) queue.push({m->rank, prev[top.pos], m->new_id});
    if (next[top.pos] >= 0)
      if (const auto* m = lookup(ids[top.pos], ids[next[top.pos]])) queue.push({m->rank, top.pos, m->new_id});
  }
  size_t w = 0;
  for (size_t k = 0; k < n; ++k)
    if (alive[k]) ids[w++] = ids[k];
  ids.resize(w);
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto it = vocab_.find(word); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (auto it = cache_.find(word); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  ids.reserve(word.size());
  initial_symbols(word, ids);
  merge(ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::string(word), std::move(ids));
  }
}

}  // namespace ferrum::tok
