// Sets of Unicode code points (regex and GBNF character classes) and their translation into
// grammar symbols over UTF-8 bytes, raw or as the inside of a JSON string (escaped).
#pragma once
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "structured/grammar.h"

namespace ferrum::structured {

constexpr uint32_t kMaxCodepoint = 0x10ffff;

class CharSet {
 public:
  CharSet() = default;
  static CharSet single(uint32_t cp) { return range(cp, cp); }
  static CharSet range(uint32_t lo, uint32_t hi);
  static CharSet any() { return range(0, kMaxCodepoint); }

  void add(uint32_t lo, uint32_t hi);
  void add(const CharSet& other);
  CharSet complement() const;
  CharSet minus(const CharSet& other) const { return intersect(other.complement()); }
  CharSet intersect(const CharSet& other) const;
  bool contains(uint32_t cp) const;
  bool empty() const { return ranges_.empty(); }
  // Sorted, disjoint, non-adjacent inclusive ranges.
  const std::vector<std::pair<uint32_t, uint32_t>>& ranges() const { return ranges_; }

 private:
  void normalize();
  std::vector<std::pair<uint32_t, uint32_t>> ranges_;
};

// Turns character sets into one grammar symbol each, memoized per set. Raw: each character
// as its UTF-8 bytes (surrogates excluded). JSON string: as a JSON string's inside writes it:
// '"' and '\' escaped, \n \r \t as escapes, other control characters left out.
class CharSymbols {
 public:
  CharSymbols(Grammar& g, bool json_string) : g_(g), json_(json_string) {}
  // Throws InvalidRequest if the set is empty (nothing can match).
  Grammar::Symbol symbol(const CharSet& set);

 private:
  Grammar& g_;
  bool json_;
  std::map<std::vector<std::pair<uint32_t, uint32_t>>, Grammar::Symbol> memo_;
};

// Appends the UTF-8 encoding of a code point.
void append_utf8(std::string& out, uint32_t cp);
// Decodes one UTF-8 code point at text[i], advancing i; false if malformed.
bool next_utf8(std::string_view text, size_t& i, uint32_t& cp);

}  // namespace ferrum::structured
