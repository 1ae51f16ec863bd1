// A compiled PCRE2 regex (UTF + UCP) used by Split / Replace. HF tokenizers uses Oniguruma; the
// pattern is rewritten where the two engines disagree (\s, see regex.cpp).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferrum::tok {

class Regex {
 public:
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-overlapping matches, left to right, as byte ranges [start, end).
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

  // Escapes a literal so that it matches itself.
  static std::string escape(std::string_view literal);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferrum::tok
