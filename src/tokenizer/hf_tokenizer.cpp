#include "tokenizer/hf_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "core/json_integer.h"
#include "tokenizer/unicode_text.h"

namespace ferrum {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open {}", path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

json read_json(const std::string& path) {
  try {
    return json::parse(read_file(path));
  } catch (const json::exception& e) {
    fail("{} is not valid JSON: {}", path, e.what());
  }
}

// tokenizer_config.json writes special tokens as "text" or {"content": "text", ...}.
std::optional<std::string> config_token(const json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return std::nullopt;
  const json& v = config.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v.at("content").is_string()) return v.at("content").get<std::string>();
  return std::nullopt;
}

// transformers' slow/fast classes that rebuild the post-processor from add_bos_token /
// add_eos_token (LlamaTokenizerFast.update_post_processor and its copies).
bool rebuilds_post_processor(const std::string& tokenizer_class) {
  for (const char* c : {"LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer", "CodeLlamaTokenizerFast",
                        "GemmaTokenizer", "GemmaTokenizerFast"})
    if (tokenizer_class == c) return true;
  return false;
}

}  // namespace

HfTokenizer::HfTokenizer(const json& tokenizer, const json& config) { init(tokenizer, nullptr, nullptr, config); }

HfTokenizer::HfTokenizer(tok::TokenizerJson tokenizer, const json& config) {
  init(tokenizer.doc, tokenizer.has_vocab ? &tokenizer.vocab : nullptr,
       tokenizer.has_merges ? &tokenizer.merges : nullptr, config);
}

// vocab / merges: collected apart by parse_tokenizer_json, or null to read them from `doc`.
void HfTokenizer::init(const json& doc, tok::BpeVocab* vocab, tok::BpeMerges* merges, const json& config) {
  try {
    const json& model = doc.at("model");
    const std::string type = model.value("type", model.contains("merges") ? "BPE" : "");
    if (type != "BPE") fail("tokenizer model type '{}' is not supported (only BPE is)", type);
    if (vocab || merges) {
      if (!vocab || !merges) fail("tokenizer.json: model has vocab or merges but not both");
      model_ = std::make_unique<tok::BpeModel>(model, std::move(*vocab), std::move(*merges));
    } else {
      model_ = std::make_unique<tok::BpeModel>(model);
    }
    normalizer_ = tok::make_normalizer(doc.value("normalizer", json()));
    pre_tokenizer_ = tok::make_pre_tokenizer(doc.value("pre_tokenizer", json()));
    decoder_ = tok::make_decoder(doc.value("decoder", json()));
    frame_ = tok::make_special_token_frame(doc.value("post_processor", json()));
    load_added_tokens(doc.value("added_tokens", json::array()));
    apply_config(config);
  } catch (const json::exception& e) {
    fail("malformed tokenizer.json: {}", e.what());
  }
}

void HfTokenizer::load_added_tokens(const json& added_tokens) {
  for (const auto& t : added_tokens) {
    tok::AddedToken a;
    a.content = t.at("content").get<std::string>();
    a.id = json_integer_or_fail<int32_t>(t.at("id"), "tokenizer: added token id");
    a.single_word = t.value("single_word", false);
    a.lstrip = t.value("lstrip", false);
    a.rstrip = t.value("rstrip", false);
    a.special = t.value("special", false);
    a.normalized = t.value("normalized", !a.special);
    added_.add(std::move(a));
  }
  added_.build(normalizer_.get());
}

void HfTokenizer::apply_config(const json& config) {
  if (!config.is_object()) return;
  bos_token_ = config_token(config, "bos_token");
  eos_token_ = config_token(config, "eos_token");
  const std::string cls = config.value("tokenizer_class", "");
  const bool has_flags = config.contains("add_bos_token") || config.contains("add_eos_token");
  // Python transformers replaces the post-processor for Llama/Gemma classes; elsewhere the
  // flags matter only where tokenizer.json has no template of its own (Llama 2 style).
  if (!rebuilds_post_processor(cls) && !(has_flags && !frame_.has_template)) return;
  auto flag = [&](const char* key, bool fallback) {
    return config.contains(key) && config.at(key).is_boolean() ? config.at(key).get<bool>() : fallback;
  };
  const bool add_bos = flag("add_bos_token", rebuilds_post_processor(cls));
  const bool add_eos = flag("add_eos_token", false);
  auto id_of = [&](const std::optional<std::string>& token, const char* what) {
    if (!token) fail("tokenizer_config.json sets add_{}_token but has no {}_token", what, what);
    auto id = token_to_id(*token);
    if (!id) fail("{} token '{}' is not in the vocabulary", what, *token);
    return *id;
  };
  frame_ = {};
  frame_.has_template = true;
  if (add_bos) frame_.prefix.push_back(id_of(bos_token_, "bos"));
  if (add_eos) frame_.suffix.push_back(id_of(eos_token_, "eos"));
}

void HfTokenizer::encode_piece(std::string_view piece, bool at_origin, std::vector<int32_t>& ids) const {
  std::string normalized(piece);
  if (normalizer_) normalizer_->normalize(normalized);
  std::vector<tok::PreToken> words;
  for (const auto& p : added_.split(normalized, /*normalized=*/true)) {
    if (p.id >= 0) {
      ids.push_back(p.id);
      continue;
    }
    words.assign(1, {normalized.substr(p.start, p.end - p.start), at_origin && p.start == 0});
    if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(words);
    for (const auto& w : words) model_->tokenize(w.text, ids);
  }
}

std::vector<int32_t> HfTokenizer::encode(std::string_view input, bool add_special_tokens) const {
  // HF works on Unicode strings; bytes that are not UTF-8 are read as U+FFFD.
  const std::string text = tok::utf8_lossy(input);
  std::vector<int32_t> ids;
  if (add_special_tokens) ids = frame_.prefix;
  for (const auto& p : added_.split(text, /*normalized=*/false)) {
    if (p.id >= 0) ids.push_back(p.id);
    else encode_piece(std::string_view(text).substr(p.start, p.end - p.start), p.start == 0, ids);
  }
  if (add_special_tokens) ids.insert(ids.end(), frame_.suffix.begin(), frame_.suffix.end());
  return ids;
}

std::string HfTokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    if (const auto* a = added_.find(id)) {
      if (!(skip_special_tokens && a->special)) tokens.push_back(a->content);
    } else if (const std::string* t = model_->id_to_token(id)) {
      tokens.push_back(*t);
    }  // unknown ids are skipped, as HF does
  }
  return tok::run_decoder(decoder_.get(), std::move(tokens));
}

int32_t HfTokenizer::vocab_size() const {
  int32_t n = model_->vocab_size();
  for (const auto& a : added_.tokens()) n = std::max(n, a.id + 1);
  return n;
}

std::optional<int32_t> HfTokenizer::token_to_id(std::string_view token) const {
  if (const auto* a = added_.find(token)) return a->id;
  return model_->token_to_id(token);
}

std::string HfTokenizer::id_to_token(int32_t id) const {
  if (const auto* a = added_.find(id)) return a->content;
  const std::string* t = model_->id_to_token(id);
  return t ? *t : std::string();
}

bool HfTokenizer::is_special(int32_t id) const {
  const auto* a = added_.find(id);
  return a && a->special;
}

std::unique_ptr<Tokenizer> Tokenizer::from_files(const std::string& tokenizer_json,
                                                 const std::string& tokenizer_config_json) {
  auto tokenizer = tok::parse_tokenizer_json(read_file(tokenizer_json), tokenizer_json);
  const json config = tokenizer_config_json.empty() ? json() : read_json(tokenizer_config_json);
  return std::make_unique<HfTokenizer>(std::move(tokenizer), config);
}

std::unique_ptr<Tokenizer> Tokenizer::from_dir(const std::string& model_dir) {
  namespace fs = std::filesystem;
  const fs::path dir(model_dir);
  const fs::path tokenizer = dir / "tokenizer.json";
  if (!fs::exists(tokenizer)) fail("no tokenizer.json in {}", model_dir);
  const fs::path config = dir / "tokenizer_config.json";
  return from_files(tokenizer.string(), fs::exists(config) ? config.string() : "");
}

}  // namespace ferrum
