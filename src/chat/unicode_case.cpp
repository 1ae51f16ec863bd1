#include "chat/unicode_case.h"

#include <cstdint>
#include <vector>

#include "core/utf8.h"

namespace ferrum::chat::jinja {
namespace {

std::vector<uint32_t> decode(const std::string& s) {
  std::vector<uint32_t> cps;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (i + size_t(n) > s.size()) n = 1;
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + size_t(k)]) & 0x3F);
    // Invalid bytes keep their value above the Unicode range so that they re-encode unchanged.
    cps.push_back(n == 1 && c >= 0x80 ? 0x80000000u | c : cp);
    i += size_t(n);
  }
  return cps;
}

void encode(std::string& out, uint32_t cp) {
  if (cp & 0x80000000u) {
    out += char(cp & 0xFF);  // a raw byte of invalid UTF-8, kept as it was
  } else {
    append_utf8(out, cp);
  }
}

bool in(uint32_t c, uint32_t lo, uint32_t hi) { return c >= lo && c <= hi; }

// In Latin Extended-A, case pairs alternate; `upper_even` says which of the pair is upper.
bool pair_block(uint32_t c, bool& upper_even) {
  if (in(c, 0x100, 0x12F) || in(c, 0x132, 0x137) || in(c, 0x14A, 0x177)) {
    upper_even = true;
    return true;
  }
  if (in(c, 0x139, 0x148) || in(c, 0x179, 0x17E)) {
    upper_even = false;
    return true;
  }
  return false;
}

uint32_t upper_cp(uint32_t c) {
  if (in(c, 'a', 'z')) return c - 32;
  if ((in(c, 0xE0, 0xFE) && c != 0xF7)) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c == 0xB5) return 0x39C;
  bool upper_even;
  if (pair_block(c, upper_even)) return ((c % 2 == 0) == upper_even) ? c : c - 1;
  if (c == 0x131) return 'I';
  if (c == 0x17F) return 'S';
  if (in(c, 0x3B1, 0x3C1) || in(c, 0x3C3, 0x3CB)) return c - 32;
  if (c == 0x3C2) return 0x3A3;
  if (c == 0x3AC) return 0x386;
  if (in(c, 0x3AD, 0x3AF)) return c - 37;
  if (c == 0x3CC) return 0x38C;
  if (in(c, 0x3CD, 0x3CE)) return c - 63;
  if (in(c, 0x430, 0x44F)) return c - 32;
  if (in(c, 0x450, 0x45F)) return c - 80;
  return c;
}

uint32_t lower_cp(uint32_t c) {
  if (in(c, 'A', 'Z')) return c + 32;
  if (in(c, 0xC0, 0xDE) && c != 0xD7) return c + 32;
  if (c == 0x178) return 0xFF;
  bool upper_even;
  if (pair_block(c, upper_even)) return ((c % 2 == 0) == upper_even) ? c + 1 : c;
  if (in(c, 0x391, 0x3A1) || in(c, 0x3A3, 0x3AB)) return c + 32;
  if (c == 0x386) return 0x3AC;
  if (in(c, 0x388, 0x38A)) return c + 37;
  if (c == 0x38C) return 0x3CC;
  if (in(c, 0x38E, 0x38F)) return c + 63;
  if (in(c, 0x410, 0x42F)) return c + 32;
  if (in(c, 0x400, 0x40F)) return c + 80;
  return c;
}

bool is_cased(uint32_t c) { return upper_cp(c) != c || lower_cp(c) != c || c == 0xDF; }

void append_upper(std::string& out, uint32_t c) {
  if (c == 0xDF) {  // ß -> SS
    out += "SS";
    return;
  }
  encode(out, upper_cp(c));
}

// Python's lower() maps Σ to final ς at the end of a word (Final_Sigma).
void append_lower(std::string& out, const std::vector<uint32_t>& cps, size_t i) {
  uint32_t c = cps[i];
  if (c == 0x3A3) {
    bool after_cased = i > 0 && is_cased(cps[i - 1]);
    bool before_cased = i + 1 < cps.size() && is_cased(cps[i + 1]);
    encode(out, after_cased && !before_cased ? 0x3C2 : 0x3C3);
    return;
  }
  if (c == 0x130) {  // İ -> i + combining dot
    out += "i\xCC\x87";
    return;
  }
  encode(out, lower_cp(c));
}

}  // namespace

std::string utf8_upper(const std::string& s) {
  std::string out;
  for (uint32_t c : decode(s)) append_upper(out, c);
  return out;
}

std::string utf8_lower(const std::string& s) {
  std::string out;
  auto cps = decode(s);
  for (size_t i = 0; i < cps.size(); ++i) append_lower(out, cps, i);
  return out;
}

std::string utf8_capitalize(const std::string& s) {
  std::string out;
  auto cps = decode(s);
  for (size_t i = 0; i < cps.size(); ++i) {
    if (i == 0) append_upper(out, cps[i]);
    else append_lower(out, cps, i);
  }
  return out;
}

std::string utf8_title(const std::string& s, bool jinja_style) {
  std::string out;
  auto cps = decode(s);
  bool word_start = true;
  for (size_t i = 0; i < cps.size(); ++i) {
    uint32_t c = cps[i];
    if (jinja_style) {
      bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || c == ' ' || in(c, 0x09, 0x0D);
      if (sep) {
        encode(out, c);
        word_start = true;
        continue;
      }
      if (word_start) append_upper(out, c);
      else append_lower(out, cps, i);
      word_start = false;
    } else {
      bool cased = is_cased(c);
      if (cased && word_start) append_upper(out, c);
      else if (cased) append_lower(out, cps, i);
      else encode(out, c);
      word_start = !cased;
    }
  }
  return out;
}

}  // namespace ferrum::chat::jinja
