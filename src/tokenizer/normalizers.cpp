#include "tokenizer/normalizers.h"

#include <utf8proc.h>

#include <cstdlib>
#include <vector>

#include "core/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode_text.h"

namespace ferrum::tok {

Pattern::Pattern(const json& spec) {
  if (spec.contains("String")) {
    literal_ = spec.at("String").get<std::string>();
    if (literal_.empty()) fail("tokenizer: empty String pattern");
  } else if (spec.contains("Regex")) {
    regex_ = std::make_unique<Regex>(spec.at("Regex").get<std::string>());
  } else {
    fail("tokenizer: unsupported pattern {}", spec.dump());
  }
}
Pattern::~Pattern() = default;
Pattern::Pattern(Pattern&&) noexcept = default;

std::vector<std::pair<size_t, size_t>> Pattern::find_all(std::string_view text) const {
  if (regex_) return regex_->find_all(text);
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t pos = text.find(literal_); pos != std::string_view::npos;
       pos = text.find(literal_, pos + literal_.size())) {
    out.emplace_back(pos, pos + literal_.size());
  }
  return out;
}

namespace {

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(int options) : options_(options) {}
  void normalize(std::string& text) const override {
    if (text.empty()) return;
    // Pure ASCII is invariant under every form; text below U+0300 (no combining marks, no
    // Hangul) is already in NFC.
    bool ascii = true, below_combining = true;
    for (const char c : text) {
      const auto b = static_cast<unsigned char>(c);
      ascii &= b < 0x80;
      below_combining &= b < 0xCC;  // lead bytes of code points below U+0300
    }
    if (ascii || (below_combining && options_ == UTF8PROC_COMPOSE)) return;
    utf8proc_uint8_t* out = nullptr;
    const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                static_cast<utf8proc_ssize_t>(text.size()), &out,
                                static_cast<utf8proc_option_t>(options_ | UTF8PROC_STABLE));
    if (n < 0) fail("tokenizer: Unicode normalization failed: {}", utf8proc_errmsg(n));
    text.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
    std::free(out);
  }

 private:
  int options_;
};

class Lowercase : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    size_t i = 0;
    while (i < text.size()) {
      const char32_t c = next_code_point(text, i);
      if (c == 0x130) {  // İ lowercases to "i̇" in full (Rust) case mapping
        out += "i\xCC\x87";
        continue;
      }
      append_utf8(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
    text = std::move(out);
  }
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      while (begin < end) {
        size_t j = begin;
        if (!is_whitespace(next_code_point(text, j))) break;
        begin = j;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        size_t j = start;
        if (!is_whitespace(next_code_point(text, j))) break;
        end = start;
      }
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class Append : public Normalizer {
 public:
  explicit Append(std::string suffix) : suffix_(std::move(suffix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text += suffix_;
  }

 private:
  std::string suffix_;
};

class Replace : public Normalizer {
 public:
  Replace(const json& pattern, std::string content) : pattern_(pattern), content_(std::move(content)) {}
  void normalize(std::string& text) const override {
    const auto matches = pattern_.find_all(text);
    if (matches.empty()) return;
    std::string out;
    out.reserve(text.size() + matches.size() * content_.size());
    size_t prev = 0;
    for (const auto& [s, e] : matches) {
      out.append(text, prev, s - prev);
      out += content_;
      prev = e;
    }
    out.append(text, prev, std::string::npos);
    text = std::move(out);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class NormalizerSequence : public Normalizer {
 public:
  explicit NormalizerSequence(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void normalize(std::string& text) const override {
    for (const auto& s : steps_) s->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& spec) {
  if (spec.is_null()) return nullptr;
  const std::string type = spec.value("type", "");
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(UTF8PROC_COMPOSE);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(UTF8PROC_DECOMPOSE);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Strip") return std::make_unique<Strip>(spec.value("strip_left", true), spec.value("strip_right", true));
  if (type == "Prepend") return std::make_unique<Prepend>(spec.at("prepend").get<std::string>());
  if (type == "Append") return std::make_unique<Append>(spec.at("append").get<std::string>());
  if (type == "Replace") return std::make_unique<Replace>(spec.at("pattern"), spec.at("content").get<std::string>());
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const auto& s : spec.at("normalizers"))
      if (auto n = make_normalizer(s)) steps.push_back(std::move(n));
    return std::make_unique<NormalizerSequence>(std::move(steps));
  }
  fail("tokenizer: normalizer type '{}' is not supported", type);
}

}  // namespace ferrum::tok
