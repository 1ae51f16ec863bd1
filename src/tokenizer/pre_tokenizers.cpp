#include "tokenizer/pre_tokenizers.h"

#include <functional>

#include "core/error.h"
#include "tokenizer/normalizers.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode_text.h"

namespace ferrum::tok {
namespace {

using Ranges = std::vector<std::pair<size_t, size_t>>;

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const std::string& s) {
  if (s == "Removed") return Behavior::Removed;
  if (s == "Isolated") return Behavior::Isolated;
  if (s == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::MergedWithNext;
  if (s == "Contiguous") return Behavior::Contiguous;
  fail("tokenizer: split behavior '{}' is not supported", s);
}

struct Segment {
  size_t start, end;
  bool is_match;
};

// Covers text with alternating match / non-match segments (HF Pattern::find_matches).
std::vector<Segment> segments_from_matches(std::string_view text, const Ranges& matches, bool invert) {
  std::vector<Segment> segs;
  size_t prev = 0;
  for (const auto& [s, e] : matches) {
    if (prev != s) segs.push_back({prev, s, invert});
    segs.push_back({s, e, !invert});
    prev = e;
  }
  if (prev != text.size()) segs.push_back({prev, text.size(), invert});
  return segs;
}

// Every character satisfying pred is a match of its own (HF's char-predicate pattern).
Ranges char_matches(std::string_view text, const std::function<bool(char32_t)>& pred) {
  Ranges out;
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    if (pred(next_code_point(text, i))) out.emplace_back(start, i);
  }
  return out;
}

// HF NormalizedString::split: applies the delimiter behavior and appends the pieces.
void split_word(const PreToken& word, const std::vector<Segment>& segs, Behavior behavior,
                std::vector<PreToken>& out) {
  std::vector<std::pair<size_t, size_t>> pieces;
  bool previous_match = false;
  switch (behavior) {
    case Behavior::Isolated:
      for (const auto& s : segs) pieces.emplace_back(s.start, s.end);
      break;
    case Behavior::Removed:
      for (const auto& s : segs)
        if (!s.is_match) pieces.emplace_back(s.start, s.end);
      break;
    case Behavior::Contiguous:
      for (const auto& s : segs) {
        if (s.is_match == previous_match && !pieces.empty()) pieces.back().second = s.end;
        else pieces.emplace_back(s.start, s.end);
        previous_match = s.is_match;
      }
      break;
    case Behavior::MergedWithPrevious:
      for (const auto& s : segs) {
        if (s.is_match && !previous_match && !pieces.empty()) pieces.back().second = s.end;
        else pieces.emplace_back(s.start, s.end);
        previous_match = s.is_match;
      }
      break;
    case Behavior::MergedWithNext:
      for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
        if (it->is_match && !previous_match && !pieces.empty()) pieces.back().first = it->start;
        else pieces.emplace_back(it->start, it->end);
        previous_match = it->is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
  }
  for (const auto& [s, e] : pieces) {
    if (s == e) continue;
    out.push_back({word.text.substr(s, e - s), word.at_origin && s == 0});
  }
}

// Applies `find` + behavior to every word.
template <typename FindFn>
void split_all(std::vector<PreToken>& words, FindFn&& find, Behavior behavior, bool invert) {
  std::vector<PreToken> out;
  out.reserve(words.size() * 2);
  for (const auto& w : words) {
    if (w.text.empty()) continue;
    split_word(w, segments_from_matches(w.text, find(w.text), invert), behavior, out);
  }
  words = std::move(out);
}

class Split : public PreTokenizer {
 public:
  explicit Split(const json& spec)
      : pattern_(spec.at("pattern")),
        behavior_(parse_behavior(spec.at("behavior").get<std::string>())),
        invert_(spec.value("invert", false)) {}
  void pre_tokenize(std::vector<PreToken>& words) const override {
    split_all(words, [&](std::string_view t) { return pattern_.find_all(t); }, behavior_, invert_);
  }

 private:
  Pattern pattern_;
  Behavior behavior_;
  bool invert_;
};

constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevel : public PreTokenizer {
 public:
  explicit ByteLevel(const json& spec)
      : add_prefix_space_(spec.value("add_prefix_space", true)), use_regex_(spec.value("use_regex", true)) {
    if (use_regex_) regex_ = std::make_unique<Regex>(kGpt2Pattern);
  }
  void pre_tokenize(std::vector<PreToken>& words) const override {
    if (add_prefix_space_)
      for (auto& w : words)
        if (!w.text.empty() && w.text[0] != ' ') w.text = " " + w.text;
    if (use_regex_)
      split_all(words, [&](std::string_view t) { return regex_->find_all(t); }, Behavior::Isolated, false);
    for (auto& w : words) w.text = byte_level_encode(w.text);
  }

 private:
  bool add_prefix_space_, use_regex_;
  std::unique_ptr<Regex> regex_;
};

class Metaspace : public PreTokenizer {
 public:
  explicit Metaspace(const json& spec) {
    std::string rep = spec.value("replacement", "\xE2\x96\x81");
    size_t i = 0;
    replacement_ = next_code_point(rep, i);
    replacement_str_ = rep;
    if (spec.contains("prepend_scheme")) {
      scheme_ = spec.at("prepend_scheme").get<std::string>();
    } else {
      scheme_ = spec.value("add_prefix_space", true) ? "always" : "never";
    }
    if (scheme_ != "always" && scheme_ != "first" && scheme_ != "never")
      fail("tokenizer: Metaspace prepend_scheme '{}' is not supported", scheme_);
    split_ = spec.value("split", true);
  }
  void pre_tokenize(std::vector<PreToken>& words) const override {
    for (auto& w : words) {
      std::string replaced;
      replaced.reserve(w.text.size() + 8);
      for (const char c : w.text) {
        if (c == ' ') replaced += replacement_str_;
        else replaced += c;
      }
      const bool starts = replaced.compare(0, replacement_str_.size(), replacement_str_) == 0;
      if (!starts && (scheme_ == "always" || (scheme_ == "first" && w.at_origin)))
        replaced.insert(0, replacement_str_);
      w.text = std::move(replaced);
    }
    if (split_) {
      const char32_t r = replacement_;
      split_all(words, [&](std::string_view t) { return char_matches(t, [r](char32_t c) { return c == r; }); },
                Behavior::MergedWithNext, false);
    }
  }

 private:
  char32_t replacement_;
  std::string replacement_str_, scheme_;
  bool split_ = true;
};

// Whitespace, WhitespaceSplit, Digits, Punctuation, BertPreTokenizer: predicate or regex splits.
class PredicateSplit : public PreTokenizer {
 public:
  PredicateSplit(std::function<bool(char32_t)> pred, Behavior behavior)
      : pred_(std::move(pred)), behavior_(behavior) {}
  void pre_tokenize(std::vector<PreToken>& words) const override {
    split_all(words, [&](std::string_view t) { return char_matches(t, pred_); }, behavior_, false);
  }

 private:
  std::function<bool(char32_t)> pred_;
  Behavior behavior_;
};

class Whitespace : public PreTokenizer {
 public:
  Whitespace() : regex_(R"(\w+|[^\w\s]+)") {}
  void pre_tokenize(std::vector<PreToken>& words) const override {
    split_all(words, [&](std::string_view t) { return regex_.find_all(t); }, Behavior::Removed, true);
  }

 private:
  Regex regex_;
};

class PreTokenizerSequence : public PreTokenizer {
 public:
  explicit PreTokenizerSequence(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void pre_tokenize(std::vector<PreToken>& words) const override {
    for (const auto& s : steps_) s->pre_tokenize(words);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

}  // namespace

std::string byte_level_encode(std::string_view text) {
  const auto& table = bytes_to_chars();
  std::string out;
  out.reserve(text.size() * 2);
  for (const char c : text) append_utf8(out, table[static_cast<unsigned char>(c)]);
  return out;
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& spec) {
  if (spec.is_null()) return nullptr;
  const std::string type = spec.value("type", "");
  if (type == "Split") return std::make_unique<Split>(spec);
  if (type == "ByteLevel") return std::make_unique<ByteLevel>(spec);
  if (type == "Metaspace") return std::make_unique<Metaspace>(spec);
  if (type == "Whitespace") return std::make_unique<Whitespace>();
  if (type == "WhitespaceSplit") return std::make_unique<PredicateSplit>(is_whitespace, Behavior::Removed);
  if (type == "Digits") {
    const bool individual = spec.value("individual_digits", false);
    return std::make_unique<PredicateSplit>(is_numeric, individual ? Behavior::Isolated : Behavior::Contiguous);
  }
  if (type == "Punctuation") {
    const std::string behavior = spec.value("behavior", "Isolated");
    return std::make_unique<PredicateSplit>(is_punctuation, parse_behavior(behavior));
  }
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    steps.push_back(std::make_unique<PredicateSplit>(is_whitespace, Behavior::Removed));
    steps.push_back(std::make_unique<PredicateSplit>(is_punctuation, Behavior::Isolated));
    return std::make_unique<PreTokenizerSequence>(std::move(steps));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const auto& s : spec.at("pretokenizers"))
      if (auto p = make_pre_tokenizer(s)) steps.push_back(std::move(p));
    return std::make_unique<PreTokenizerSequence>(std::move(steps));
  }
  fail("tokenizer: pre-tokenizer type '{}' is not supported", type);
}

}  // namespace ferrum::tok
