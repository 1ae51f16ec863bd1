// The tokenizer.json pipeline: added tokens -> normalizer -> pre-tokenizer -> BPE model ->
// post-processor, and the decoder chain back, mirroring HF `tokenizers` step by step.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "core/json.h"
#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoders.h"
#include "tokenizer/normalizers.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizers.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_json.h"

namespace ferrum {

class HfTokenizer final : public Tokenizer {
 public:
  // `config` is tokenizer_config.json, or null when there is none.
  HfTokenizer(const json& tokenizer, const json& config);
  HfTokenizer(tok::TokenizerJson tokenizer, const json& config);

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const override;
  int32_t vocab_size() const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  bool is_special(int32_t id) const override;
  std::optional<std::string> bos_token() const override { return bos_token_; }
  std::optional<std::string> eos_token() const override { return eos_token_; }

 private:
  void init(const json& doc, tok::BpeVocab* vocab, tok::BpeMerges* merges, const json& config);
  void load_added_tokens(const json& added_tokens);
  void apply_config(const json& config);
  // Encodes a piece of text that holds no raw-text added token.
  void encode_piece(std::string_view piece, bool at_origin, std::vector<int32_t>& ids) const;

  std::unique_ptr<tok::Normalizer> normalizer_;
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer_;
  std::unique_ptr<tok::BpeModel> model_;
  tok::AddedVocabulary added_;
  tok::SpecialTokenFrame frame_;
  std::unique_ptr<tok::Decoder> decoder_;
  std::optional<std::string> bos_token_, eos_token_;
};

}  // namespace ferrum
