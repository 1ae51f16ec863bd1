// Normalizers of tokenizer.json ("normalizer"): each rewrites a piece of text in place.
#pragma once
#include <memory>
#include <string>

#include "core/json.h"

namespace ferrum::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

// Builds the normalizer described by `spec`; null for a JSON null. Throws ferrum::Error on an
// unsupported type, naming it.
std::unique_ptr<Normalizer> make_normalizer(const json& spec);

// A pattern of tokenizer.json: {"String": "..."} or {"Regex": "..."}. Returns the byte
// ranges of its non-overlapping matches in text.
class Pattern {
 public:
  explicit Pattern(const json& spec);
  ~Pattern();
  Pattern(Pattern&&) noexcept;
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  std::string literal_;
  std::unique_ptr<class Regex> regex_;
};

}  // namespace ferrum::tok
