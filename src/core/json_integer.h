// Integers read from JSON files and requests written by others, range-checked.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>

#include "core/error.h"
#include "core/json.h"

namespace ferrum {

// An integer of type T from a JSON number: an integer, or a float with an integral value (some
// files write 2048.0), within T's range; nullopt otherwise. nlohmann's get<T>() would cast an
// out-of-range float (undefined behaviour) or wrap an out-of-range integer.
template <typename T, typename Json>
std::optional<T> json_integer(const Json& v) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.template get<uint64_t>();
    if (std::in_range<T>(u)) return static_cast<T>(u);
  } else if (v.is_number_integer()) {
    const int64_t i = v.template get<int64_t>();
    if (std::in_range<T>(i)) return static_cast<T>(i);
  } else if (v.is_number_float()) {
    const double d = v.template get<double>();
    // max() + 1 is a power of two, exact in double (for int64_t, max() already rounds to 2^63).
    const double lo = static_cast<double>(std::numeric_limits<T>::min());
    const double hi = static_cast<double>(std::numeric_limits<T>::max()) + 1.0;
    if (std::isfinite(d) && d == std::floor(d) && d >= lo && d < hi) return static_cast<T>(d);
  }
  return std::nullopt;
}

// json_integer, or a ferrum::Error naming `what` (e.g. "tokenizer: added token id").
template <typename T, typename Json>
T json_integer_or_fail(const Json& v, std::string_view what) {
  if (auto r = json_integer<T>(v)) return *r;
  fail("{} must be an integer in [{}, {}], got {}", what, std::numeric_limits<T>::min(), std::numeric_limits<T>::max(),
       v.dump());
}

// obj[key] through json_integer_or_fail, or `fallback` where obj has no such key or it is null.
template <typename T, typename Json>
T json_integer_or(const Json& obj, const char* key, T fallback, std::string_view what) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  return json_integer_or_fail<T>(*it, what);
}

}  // namespace ferrum
