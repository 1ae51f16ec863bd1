// A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json), encoding exactly as the
// `tokenizers` library does.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ferrum {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Loads tokenizer.json (and tokenizer_config.json beside it, if present) from a model
  // folder. Throws ferrum::Error on a missing or malformed file.
  static std::unique_ptr<Tokenizer> from_dir(const std::string& model_dir);
  static std::unique_ptr<Tokenizer> from_files(const std::string& tokenizer_json,
                                               const std::string& tokenizer_config_json = "");

  // add_special_tokens: apply the post-processor (BOS etc.), as HF's tokenizer(text).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const = 0;
  // As `tokenizers` decodes: transformers' clean_up_tokenization_spaces is not applied, bytes
  // that do not form UTF-8 come out as U+FFFD, and ids outside the vocabulary are skipped.
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const = 0;

  virtual int32_t vocab_size() const = 0;  // including added tokens
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  virtual std::string id_to_token(int32_t id) const = 0;  // raw vocabulary string
  virtual bool is_special(int32_t id) const = 0;

  // From tokenizer_config.json: bos_token / eos_token (strings and ids) and chat_template.
  virtual std::optional<std::string> bos_token() const = 0;
  virtual std::optional<std::string> eos_token() const = 0;
};

}  // namespace ferrum
