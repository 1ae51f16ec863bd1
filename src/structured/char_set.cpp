#include "structured/char_set.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace ferrum::structured {

CharSet CharSet::range(uint32_t lo, uint32_t hi) {
  CharSet s;
  s.add(lo, hi);
  return s;
}

void CharSet::add(uint32_t lo, uint32_t hi) {
  if (lo > hi) return;
  ranges_.push_back({lo, std::min(hi, kMaxCodepoint)});
  normalize();
}

void CharSet::add(const CharSet& other) {
  ranges_.insert(ranges_.end(), other.ranges_.begin(), other.ranges_.end());
  normalize();
}

void CharSet::normalize() {
  std::sort(ranges_.begin(), ranges_.end());
  std::vector<std::pair<uint32_t, uint32_t>> out;
  for (const auto& r : ranges_) {
    if (!out.empty() && r.first <= out.back().second + 1) out.back().second = std::max(out.back().second, r.second);
    else out.push_back(r);
  }
  ranges_ = std::move(out);
}

CharSet CharSet::complement() const {
  CharSet out;
  uint32_t next = 0;
  for (const auto& [lo, hi] : ranges_) {
    if (lo > next) out.ranges_.push_back({next, lo - 1});
    next = hi + 1;
  }
  if (next <= kMaxCodepoint) out.ranges_.push_back({next, kMaxCodepoint});
  return out;
}

CharSet CharSet::intersect(const CharSet& other) const {
  CharSet out;
  for (const auto& a : ranges_)
    for (const auto& b : other.ranges_) {
      const uint32_t lo = std::max(a.first, b.first), hi = std::min(a.second, b.second);
      if (lo <= hi) out.ranges_.push_back({lo, hi});
    }
  out.normalize();
  return out;
}

bool CharSet::contains(uint32_t cp) const {
  for (const auto& [lo, hi] : ranges_)
    if (cp >= lo && cp <= hi) return true;
  return false;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

bool next_utf8(std::string_view text, size_t& i, uint32_t& cp) {
  const auto c = static_cast<uint8_t>(text[i]);
  const int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + len > text.size()) return false;
  cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
  for (int k = 1; k < len; ++k) {
    const auto b = static_cast<uint8_t>(text[i + k]);
    if ((b & 0xc0) != 0x80) return false;
    cp = (cp << 6) | (b & 0x3f);
  }
  i += len;
  return true;
}

namespace {

using ByteRanges = std::vector<std::pair<uint8_t, uint8_t>>;

int utf8_length(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

// Splits [lo, hi] (same encoded length) until each piece is a product of byte ranges: the
// bytes of lo and hi then bound every position independently.
void utf8_pieces(uint32_t lo, uint32_t hi, std::vector<ByteRanges>& out) {
  const int n = utf8_length(lo);
  for (int i = 1; i < n; ++i) {
    const uint32_t m = (1u << (6 * i)) - 1;
    if ((lo & ~m) == (hi & ~m)) continue;
    if ((lo & m) != 0) {
      utf8_pieces(lo, lo | m, out);
      utf8_pieces((lo | m) + 1, hi, out);
      return;
    }
    if ((hi & m) != m) {
      utf8_pieces(lo, (hi & ~m) - 1, out);
      utf8_pieces(hi & ~m, hi, out);
      return;
    }
  }
  std::string a, b;
  append_utf8(a, lo);
  append_utf8(b, hi);
  ByteRanges seq;
  for (size_t k = 0; k < a.size(); ++k) seq.push_back({static_cast<uint8_t>(a[k]), static_cast<uint8_t>(b[k])});
  out.push_back(std::move(seq));
}

void utf8_ranges(uint32_t lo, uint32_t hi, std::vector<ByteRanges>& out) {
  for (const uint32_t bound : {0x7fu, 0x7ffu, 0xffffu}) {
    if (lo <= bound && hi > bound) {
      utf8_ranges(lo, bound, out);
      utf8_ranges(bound + 1, hi, out);
      return;
    }
  }
  // No surrogates: they are not characters and not valid UTF-8.
  if (lo <= 0xdfff && hi >= 0xd800) {
    if (lo < 0xd800) utf8_ranges(lo, 0xd7ff, out);
    if (hi > 0xdfff) utf8_ranges(0xe000, hi, out);
    return;
  }
  utf8_pieces(lo, hi, out);
}

ByteSet byte_range(uint8_t lo, uint8_t hi) {
  ByteSet s;
  for (int b = lo; b <= hi; ++b) s.set(static_cast<size_t>(b));
  return s;
}

}  // namespace

Grammar::Symbol CharSymbols::symbol(const CharSet& in) {
  if (in.empty()) throw InvalidRequest("a character class matches no character");
  if (auto it = memo_.find(in.ranges()); it != memo_.end()) return it->second;
  std::vector<std::vector<Grammar::Symbol>> alts;
  CharSet set = in;
  if (json_) {
    set = in.minus(CharSet::range(0, 0x1f)).minus(CharSet::single('"')).minus(CharSet::single('\\'));
    for (const auto& [cp, esc] : {std::pair<uint32_t, const char*>{'"', "\\\""}, {'\\', "\\\\"}, {'\n', "\\n"}, {'\r', "\\r"}, {'\t', "\\t"}})
      if (in.contains(cp)) alts.push_back(g_.literal(esc));
  }
  ByteSet ascii;
  std::vector<ByteRanges> multi;
  for (const auto& [lo, hi] : set.ranges()) {
    if (lo < 0x80) ascii |= byte_range(static_cast<uint8_t>(lo), static_cast<uint8_t>(std::min<uint32_t>(hi, 0x7f)));
    if (hi >= 0x80) utf8_ranges(std::max<uint32_t>(lo, 0x80), hi, multi);
  }
  if (ascii.any()) alts.push_back({g_.bytes(ascii)});
  for (const auto& seq : multi) {
    std::vector<Grammar::Symbol> syms;
    for (const auto& [lo, hi] : seq) syms.push_back(g_.bytes(byte_range(lo, hi)));
    alts.push_back(std::move(syms));
  }
  if (alts.empty()) throw InvalidRequest("a character class matches no character that can be written here");
  Grammar::Symbol out;
  if (alts.size() == 1 && alts[0].size() == 1) {
    out = alts[0][0];
  } else {
    const uint32_t r = g_.add_rule();
    for (auto& a : alts) g_.add_alternative(r, std::move(a));
    out = Grammar::rule(r);
  }
  memo_.emplace(in.ranges(), out);
  return out;
}

}  // namespace ferrum::structured
