#include "tokenizer/decoders.h"

#include <cctype>

#include "core/error.h"
#include "core/json_integer.h"
#include "tokenizer/normalizers.h"
#include "tokenizer/unicode_text.h"

namespace ferrum::tok {
namespace {

std::vector<char32_t> code_points(std::string_view s) {
  std::vector<char32_t> cps;
  size_t i = 0;
  while (i < s.size()) cps.push_back(next_code_point(s, i));
  return cps;
}

std::string from_code_points(const std::vector<char32_t>& cps, size_t begin, size_t end) {
  std::string out;
  for (size_t k = begin; k < end; ++k) append_utf8(out, cps[k]);
  return out;
}

// Every token becomes its bytes (through the GPT-2 alphabet when all its characters are in
// it, raw otherwise); the joined bytes are read back as UTF-8, lossily.
class ByteLevelDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) {
      std::string mapped;
      bool all_mapped = true;
      size_t i = 0;
      while (i < t.size()) {
        const int b = char_to_byte(next_code_point(t, i));
        if (b < 0) {
          all_mapped = false;
          break;
        }
        mapped += static_cast<char>(b);
      }
      bytes += all_mapped ? mapped : t;
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

// "<0xAB>" tokens are gathered into bytes; valid UTF-8 becomes text, else one U+FFFD per byte.
class ByteFallbackDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (is_valid_utf8(pending)) out.push_back(pending);
      else
        for (size_t k = 0; k < pending.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
      pending.clear();
    };
    for (auto& t : tokens) {
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) &&
          std::isxdigit(static_cast<unsigned char>(t[4]))) {
        pending += static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16));
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens = std::move(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string joined;
    for (const auto& t : tokens) joined += t;
    tokens.assign(1, std::move(joined));
  }
};

class StripDecoder : public Decoder {
 public:
  explicit StripDecoder(const json& spec)
      : start_(json_integer_or<uint32_t>(spec, "start", 0, "tokenizer: Strip decoder start")),
        stop_(json_integer_or<uint32_t>(spec, "stop", 0, "tokenizer: Strip decoder stop")) {
    const std::string content = spec.at("content").get<std::string>();
    size_t i = 0;
    content_ = next_code_point(content, i);
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      const auto cps = code_points(t);
      size_t begin = 0, end = cps.size();
      for (size_t k = 0; k < start_ && k < cps.size() && cps[k] == content_; ++k) begin = k + 1;
      for (size_t k = 0; k < stop_ && k < cps.size(); ++k) {
        const size_t index = cps.size() - k - 1;
        if (cps[index] != content_) break;
        end = index;
      }
      t = begin < end ? from_code_points(cps, begin, end) : std::string();
    }
  }

 private:
  size_t start_, stop_;
  char32_t content_;
};

class ReplaceDecoder : public Decoder {
 public:
  explicit ReplaceDecoder(const json& spec) : replace_(make_normalizer(spec)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) replace_->normalize(t);
  }

 private:
  std::unique_ptr<Normalizer> replace_;
};

class MetaspaceDecoder : public Decoder {
 public:
  explicit MetaspaceDecoder(const json& spec) {
    const std::string rep = spec.value("replacement", "\xE2\x96\x81");
    size_t i = 0;
    replacement_ = next_code_point(rep, i);
    const std::string scheme = spec.contains("prepend_scheme")
                                   ? spec.at("prepend_scheme").get<std::string>()
                                   : (spec.value("add_prefix_space", true) ? "always" : "never");
    strip_first_ = scheme != "never";
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t k = 0; k < tokens.size(); ++k) {
      std::string out;
      size_t i = 0;
      while (i < tokens[k].size()) {
        const char32_t c = next_code_point(tokens[k], i);
        if (c == replacement_) {
          // HF drops every replacement in the first token, not only the leading one.
          if (!(k == 0 && strip_first_)) out += ' ';
        } else {
          append_utf8(out, c);
        }
      }
      tokens[k] = std::move(out);
    }
  }

 private:
  char32_t replacement_;
  bool strip_first_;
};

class DecoderSequence : public Decoder {
 public:
  explicit DecoderSequence(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& s : steps_) s->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& spec) {
  if (spec.is_null()) return nullptr;
  const std::string type = spec.value("type", "");
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") return std::make_unique<StripDecoder>(spec);
  if (type == "Replace") return std::make_unique<ReplaceDecoder>(spec);
  if (type == "Metaspace") return std::make_unique<MetaspaceDecoder>(spec);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const auto& s : spec.at("decoders"))
      if (auto d = make_decoder(s)) steps.push_back(std::move(d));
    return std::make_unique<DecoderSequence>(std::move(steps));
  }
  fail("tokenizer: decoder type '{}' is not supported", type);
}

std::string run_decoder(const Decoder* decoder, std::vector<std::string> tokens) {
  std::string out;
  if (!decoder) {  // HF joins raw tokens with spaces when there is no decoder
    for (size_t k = 0; k < tokens.size(); ++k) out += (k ? " " : "") + tokens[k];
    return out;
  }
  decoder->decode_chain(tokens);
  for (const auto& t : tokens) out += t;
  return out;
}

}  // namespace ferrum::tok
