#include "tokenizer/tokenizer_json.h"

#include "core/error.h"

namespace ferrum::tok {

std::pair<std::string, std::string> split_merge(std::string_view merge) {
  const size_t sp = merge.find(' ');
  if (sp == std::string_view::npos) fail("tokenizer: malformed merge '{}'", merge);
  return {std::string(merge.substr(0, sp)), std::string(merge.substr(sp + 1))};
}

namespace {

// SAX handler: forwards events to nlohmann's DOM builder except inside /model/vocab and
// /model/merges, which it collects itself.
class Handler {
 public:
  Handler(TokenizerJson& out) : out_(out), dom_(out.doc) {}

  bool null() { return capturing() ? bad("null") : dom_.null(); }
  bool boolean(bool v) { return capturing() ? bad("a boolean") : dom_.boolean(v); }
  bool number_integer(json::number_integer_t v) { return mode_ == Mode::Vocab ? vocab_id(v) : capturing() ? bad("a number") : dom_.number_integer(v); }
  bool number_unsigned(json::number_unsigned_t v) {
    if (mode_ == Mode::Vocab) return vocab_id(static_cast<int64_t>(std::min<json::number_unsigned_t>(v, INT64_MAX)));
    return capturing() ? bad("a number") : dom_.number_unsigned(v);
  }
  bool number_float(json::number_float_t v, const std::string& s) { return capturing() ? bad("a number") : dom_.number_float(v, s); }
  bool binary(json::binary_t& v) { return capturing() ? bad("binary data") : dom_.binary(v); }
  bool string(std::string& s) {
    if (mode_ == Mode::Vocab) return bad("a string");
    if (mode_ == Mode::Merges) {
      if (depth_ == capture_depth_) out_.merges.push_back(split_merge(s));
      else pair_.push_back(std::move(s));
      return true;
    }
    return dom_.string(s);
  }
  bool key(std::string& k) {
    if (mode_ == Mode::Vocab) {
      pending_token_ = std::move(k);
      return true;
    }
    if (capturing()) return bad("an object");
    keys_[depth_ - 1] = k;
    return dom_.key(k);
  }
  bool start_object(std::size_t n) {
    if (capturing()) return bad("an object");
    if (at_model_key("vocab")) return enter(Mode::Vocab);
    open();
    return dom_.start_object(n);
  }
  bool end_object() {
    if (mode_ == Mode::Vocab) {
      mode_ = Mode::Forward;
      --depth_;
      out_.has_vocab = true;
      return true;
    }
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) {
    if (mode_ == Mode::Merges) {
      if (depth_ != capture_depth_) return bad("a nested array");
      ++depth_;
      pair_.clear();
      return true;
    }
    if (capturing()) return bad("an array");
    if (at_model_key("merges")) return enter(Mode::Merges);
    open();
    return dom_.start_array(n);
  }
  bool end_array() {
    if (mode_ == Mode::Merges) {
      if (depth_ > capture_depth_) {  // the end of one ["a", "b"] pair
        if (pair_.size() != 2) fail("tokenizer: malformed merge with {} parts", pair_.size());
        out_.merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
        --depth_;
        return true;
      }
      mode_ = Mode::Forward;
      --depth_;
      out_.has_merges = true;
      return true;
    }
    --depth_;
    return dom_.end_array();
  }
  bool parse_error(std::size_t pos, const std::string& token, const nlohmann::detail::exception& e) {
    return dom_.parse_error(pos, token, e);
  }

 private:
  enum class Mode { Forward, Vocab, Merges };
  bool capturing() const { return mode_ != Mode::Forward; }
  bool bad(const char* what) { fail("tokenizer: unexpected {} in model.{}", what, mode_ == Mode::Vocab ? "vocab" : "merges"); }
  bool vocab_id(int64_t id) {
    out_.vocab.emplace_back(std::move(pending_token_), id);
    return true;
  }
  // True when the container about to open is the value of "model"."<key>".
  bool at_model_key(const char* key) const { return depth_ == 2 && keys_[0] == "model" && keys_[1] == key; }
  bool enter(Mode m) {
    mode_ = m;
    capture_depth_ = ++depth_;
    // The DOM keeps a null under the key, so the rest of the document stays well formed.
    return dom_.null();
  }
  void open() {
    if (keys_.size() <= depth_) keys_.resize(depth_ + 1);
    keys_[depth_].clear();
    ++depth_;
  }

  TokenizerJson& out_;
  nlohmann::detail::json_sax_dom_parser<json> dom_;
  Mode mode_ = Mode::Forward;
  size_t depth_ = 0, capture_depth_ = 0;
  std::vector<std::string> keys_;  // keys_[d]: the last key read in the open object at depth d+1
  std::string pending_token_;
  std::vector<std::string> pair_;
};

}  // namespace

TokenizerJson parse_tokenizer_json(const std::string& text, const std::string& source) {
  TokenizerJson out;
  Handler handler(out);
  try {
    json::sax_parse(text, &handler);
  } catch (const json::exception& e) {
    fail("{} is not valid JSON: {}", source, e.what());
  }
  return out;
}

}  // namespace ferrum::tok
