#include "structured/token_vocab.h"

#include <algorithm>
#include <array>
#include <map>
#include <unordered_map>


namespace ferrum::structured {

namespace {

// GPT-2's byte-to-unicode table, inverted: code point -> byte.
std::map<uint32_t, uint8_t> byte_level_alphabet() {
  std::map<uint32_t, uint8_t> out;
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[printable ? b : next++] = static_cast<uint8_t>(b);
  }
  return out;
}

// Code points of a UTF-8 string; false if it is not valid UTF-8.
bool code_points(const std::string& s, std::vector<uint32_t>& out) {
  out.clear();
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<uint8_t>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
    for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3f);
    out.push_back(cp);
    i += len;
  }
  return true;
}

bool byte_token(const std::string& s, uint8_t& byte) {
  if (s.size() != 6 || s.compare(0, 3, "<0x") != 0 || s[5] != '>') return false;
  try {
    byte = static_cast<uint8_t>(std::stoi(s.substr(3, 2), nullptr, 16));
  } catch (...) {
    return false;
  }
  return true;
}

}  // namespace

std::vector<std::string> vocabulary_bytes(const Tokenizer& tokenizer) {
  const int32_t n = tokenizer.vocab_size();
  const bool byte_level = tokenizer.token_to_id("\xc4\xa0").has_value();  // "Ġ" = the space byte
  const auto alphabet = byte_level_alphabet();
  std::vector<std::string> out(static_cast<size_t>(n));
  std::vector<uint32_t> cps;
  for (int32_t id = 0; id < n; ++id) {
    if (tokenizer.is_special(id)) continue;
    const std::string piece = tokenizer.id_to_token(id);
    std::string& bytes = out[static_cast<size_t>(id)];
    uint8_t b = 0;
    if (byte_level) {
      bool mapped = code_points(piece, cps);
      for (size_t k = 0; mapped && k < cps.size(); ++k) {
        auto it = alphabet.find(cps[k]);
        if (it == alphabet.end()) mapped = false;
        else bytes.push_back(static_cast<char>(it->second));
      }
      if (!mapped) bytes = piece;  // an added token written as plain text
    } else if (byte_token(piece, b)) {
      bytes.assign(1, static_cast<char>(b));
    } else {
      for (size_t k = 0; k < piece.size();) {
        if (piece.compare(k, 3, "\xe2\x96\x81") == 0) {  // "▁"
          bytes.push_back(' ');
          k += 3;
        } else {
          bytes.push_back(piece[k++]);
        }
      }
    }
  }
  return out;
}

TokenVocab::TokenVocab(std::vector<std::string> token_bytes) : bytes_(std::move(token_bytes)) {
  nodes_.emplace_back();
  for (size_t id = 0; id < bytes_.size(); ++id) {
    if (bytes_[id].empty()) continue;
    uint32_t node = 0;
    for (const char c : bytes_[id]) {
      const auto b = static_cast<uint8_t>(c);
      auto& ch = nodes_[node].children;
      auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(b, uint32_t{0}),
                                 [](const auto& x, const auto& y) { return x.first < y.first; });
      if (it != ch.end() && it->first == b) {
        node = it->second;
      } else {
        const auto child = static_cast<uint32_t>(nodes_.size());
        ch.insert(it, {b, child});
        nodes_.emplace_back();  // may move `ch`: not used after this
        node = child;
      }
    }
    nodes_[node].tokens.push_back(static_cast<int32_t>(id));
  }
}

// The trie walk meets few distinct matcher states: inside a JSON string almost every byte
// leads back to the same one. So states are interned and each (state, byte) transition is
// computed once per walk, instead of a matcher copy and advance at every trie node (300k
// nodes for a 128k vocabulary): a lazily built automaton over the states this mask needs.
struct TokenVocab::StateTable {
  static constexpr int32_t kUnknown = -2, kRejected = -1;
  std::vector<GrammarMatcher> states;
  std::vector<ByteSet> next_bytes;
  std::vector<std::array<int32_t, 256>> next;
  std::unordered_map<std::string, uint32_t> ids;

  uint32_t intern(GrammarMatcher&& m) {
    auto [it, added] = ids.try_emplace(m.state_key(), static_cast<uint32_t>(states.size()));
    if (added) {
      next_bytes.push_back(m.next_bytes());
      states.push_back(std::move(m));
      next.emplace_back();
      next.back().fill(kUnknown);
    }
    return it->second;
  }
  int32_t step(uint32_t state, uint8_t byte) {
    int32_t& to = next[state][byte];
    if (to == kUnknown) {
      GrammarMatcher m = states[state];
      const int32_t id = m.advance(byte) ? static_cast<int32_t>(intern(std::move(m))) : kRejected;
      next[state][byte] = id;  // (`to` may dangle: intern can grow `next`)
      return id;
    }
    return to;
  }
};

std::shared_ptr<const TokenVocab::Bitmask> TokenVocab::bitmask(const GrammarMatcher& matcher) const {
  const Grammar* g = matcher.grammar().get();
  std::string key(reinterpret_cast<const char*>(&g), sizeof(g));
  key += matcher.state_key();
  {
    std::lock_guard lk(cache_->mu);
    if (auto it = cache_->masks.find(key); it != cache_->masks.end()) return it->second.mask;
  }
  auto allowed = std::make_shared<Bitmask>(words_for(bytes_.size()), 0u);
  StateTable table;
  walk(0, table.intern(GrammarMatcher(matcher)), table, *allowed);
  std::lock_guard lk(cache_->mu);
  if (cache_->masks.size() >= kMaskCacheEntries) cache_->masks.clear();  // crude but bounded
  cache_->masks.emplace(std::move(key), CachedMask{matcher.grammar(), allowed});
  return allowed;
}

void TokenVocab::walk(uint32_t node, uint32_t state, StateTable& table, Bitmask& allowed) const {
  for (const auto& [byte, child] : nodes_[node].children) {
    if (!table.next_bytes[state].test(byte)) continue;
    const int32_t to = table.step(state, byte);
    if (to < 0) continue;
    for (const int32_t t : nodes_[child].tokens) allowed[static_cast<size_t>(t) >> 5] |= 1u << (t & 31);
    walk(child, static_cast<uint32_t>(to), table, allowed);
  }
}

}  // namespace ferrum::structured
