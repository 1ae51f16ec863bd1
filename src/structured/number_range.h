// Decimal integers in a closed range as grammar rules: digit automata built digit position
// by digit position (for [13, 271]: 1[3-9] | [2-9][0-9] | 1[0-9][0-9] | 2[0-6][0-9] | 27[01]),
// so a bounded range is enforced exactly, with no leading zeros and no "-0".
#pragma once
#include <cstdint>

#include "structured/grammar.h"

namespace ferrum::structured {

// The largest magnitude ferrum writes: 15 digits, so every integer is exact in a double.
constexpr int64_t kMaxWrittenInteger = 999999999999999;

// A rule matching exactly the integers in [lo, hi] (both clamped to +-kMaxWrittenInteger);
// throws InvalidRequest when the range is empty.
uint32_t add_integer_range(Grammar& g, int64_t lo, int64_t hi);

// Non-negative integers in [lo, hi] without a sign (lo >= 0), for the integer part of a
// fraction; -1 when the range is empty.
int64_t add_natural_range(Grammar& g, int64_t lo, int64_t hi);

}  // namespace ferrum::structured
