#include "structured/number_range.h"

#include <algorithm>
#include <map>
#include <string>

#include "core/error.h"

namespace ferrum::structured {

namespace {

ByteSet digit_set(char lo, char hi) {
  ByteSet s;
  for (char c = lo; c <= hi; ++c) s.set(static_cast<uint8_t>(c));
  return s;
}

// Rules for digit strings of one length between lo and hi (same length, lo <= hi).
class DigitRanges {
 public:
  explicit DigitRanges(Grammar& g) : g_(g) {}

  uint32_t between(const std::string& lo, const std::string& hi) {
    const auto key = lo + "/" + hi;
    if (auto it = memo_.find(key); it != memo_.end()) return it->second;
    const uint32_t r = g_.add_rule();
    memo_[key] = r;
    const size_t n = lo.size();
    const std::string rest_lo = lo.substr(1), rest_hi = hi.substr(1);
    const std::string zeros(n - 1, '0'), nines(n - 1, '9');
    auto tail = [&](const std::string& a, const std::string& b) {
      return n == 1 ? std::vector<Grammar::Symbol>{} : std::vector<Grammar::Symbol>{Grammar::rule(between(a, b))};
    };
    auto seq = [&](char a, char b, std::vector<Grammar::Symbol> rest) {
      rest.insert(rest.begin(), g_.bytes(digit_set(a, b)));
      return rest;
    };
    if (lo[0] == hi[0]) {
      g_.add_alternative(r, seq(lo[0], lo[0], tail(rest_lo, rest_hi)));
    } else if (rest_lo == zeros && rest_hi == nines) {
      g_.add_alternative(r, seq(lo[0], hi[0], tail(zeros, nines)));
    } else {
      g_.add_alternative(r, seq(lo[0], lo[0], tail(rest_lo, nines)));
      if (hi[0] - lo[0] > 1) g_.add_alternative(r, seq(static_cast<char>(lo[0] + 1), static_cast<char>(hi[0] - 1), tail(zeros, nines)));
      g_.add_alternative(r, seq(hi[0], hi[0], tail(zeros, rest_hi)));
    }
    return r;
  }

 private:
  Grammar& g_;
  std::map<std::string, uint32_t> memo_;
};

int64_t pow10(size_t n) {
  int64_t p = 1;
  while (n-- > 0) p *= 10;
  return p;
}

}  // namespace

int64_t add_natural_range(Grammar& g, int64_t lo, int64_t hi) {
  lo = std::max<int64_t>(lo, 0);
  hi = std::min(hi, kMaxWrittenInteger);
  if (lo > hi) return -1;
  DigitRanges digits(g);
  const uint32_t r = g.add_rule();
  const size_t lo_len = std::to_string(lo).size(), hi_len = std::to_string(hi).size();
  for (size_t len = lo_len; len <= hi_len; ++len) {
    const int64_t a = std::max(lo, len == 1 ? 0 : pow10(len - 1)), b = std::min(hi, pow10(len) - 1);
    g.add_alternative(r, {Grammar::rule(digits.between(std::to_string(a), std::to_string(b)))});
  }
  return r;
}

uint32_t add_integer_range(Grammar& g, int64_t lo, int64_t hi) {
  lo = std::max(lo, -kMaxWrittenInteger);
  hi = std::min(hi, kMaxWrittenInteger);
  if (lo > hi) throw InvalidRequest("the integer range [" + std::to_string(lo) + ", " + std::to_string(hi) + "] is empty");
  const uint32_t r = g.add_rule();
  if (lo < 0) {  // "-" then the magnitude
    const int64_t mag = add_natural_range(g, std::max<int64_t>(1, hi < 0 ? -hi : 1), -lo);
    auto seq = g.literal("-");
    seq.push_back(Grammar::rule(static_cast<uint32_t>(mag)));
    g.add_alternative(r, std::move(seq));
  }
  if (hi >= 0) g.add_alternative(r, {Grammar::rule(static_cast<uint32_t>(add_natural_range(g, lo, hi)))});
  return r;
}

}  // namespace ferrum::structured
