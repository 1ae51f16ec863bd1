#include "models/gguf_tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/json_integer.h"
#include "core/file.h"
#include "io/gguf_writer.h"
#include "io/model_config.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenizer_json.h"

namespace ferrum {
namespace fs = std::filesystem;

namespace {

// llama.cpp's token types.
enum TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

constexpr const char* kSpaceMark = "\xE2\x96\x81";  // "▁", SentencePiece's space

// Pre-tokenizer regexes by llama.cpp's tokenizer.ggml.pre names.
const std::map<std::string, std::string>& pre_regexes() {
  static const std::map<std::string, std::string> m = {
      {"llama-bpe",
       R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
      {"qwen2",
       R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
      {"gpt2", R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"},
  };
  return m;
}

// The vocabulary keys every GGUF tokenizer has.
struct GgufVocab {
  std::vector<std::string> tokens;
  std::vector<int> types;
  std::vector<double> scores;  // "llama" only
};

GgufVocab read_vocab(const GgufFile& g) {
  GgufVocab v;
  v.tokens = g.get_strings("tokenizer.ggml.tokens");
  const size_t n = v.tokens.size();
  v.types.assign(n, kNormal);
  if (g.has("tokenizer.ggml.token_type")) {
    const std::vector<double> t = g.get_numbers("tokenizer.ggml.token_type");
    if (t.size() != n) fail("GGUF file '{}': {} token types for {} tokens", g.path(), t.size(), n);
    // Any numeric array reads here: a float or a u32 out of int range must not reach the cast.
    for (size_t i = 0; i < n; ++i) {
      if (!(t[i] >= std::numeric_limits<int32_t>::min() && t[i] <= std::numeric_limits<int32_t>::max()) ||
          t[i] != std::floor(t[i]))
        fail("GGUF file '{}': token {} has type {}, not a token type", g.path(), i, t[i]);
      v.types[i] = static_cast<int>(t[i]);
    }
  }
  if (g.has("tokenizer.ggml.scores")) {
    v.scores = g.get_numbers("tokenizer.ggml.scores");
    if (v.scores.size() != n) fail("GGUF file '{}': {} token scores for {} tokens", g.path(), v.scores.size(), n);
    // The scores order the merges: a NaN would leave the sort without an order.
    for (size_t i = 0; i < n; ++i)
      if (std::isnan(v.scores[i])) fail("GGUF file '{}': token {} has the score NaN", g.path(), i);
  }
  return v;
}

// Control and user-defined tokens, matched in the text before the model sees it (unknown
// ones too for SentencePiece, as its tokenizer.json lists <unk>).
json added_tokens(const GgufVocab& v, bool with_unknown) {
  json added = json::array();
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    const int type = v.types[i];
    if (type == kControl || type == kUserDefined || (with_unknown && type == kUnknown))
      added.push_back({{"id", i}, {"content", v.tokens[i]}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", false}, {"special", type != kUserDefined}});
  }
  return added;
}

// BOS/EOS strings and whether to add them, as tokenizer_config.json would say.
json special_config(const GgufFile& g, const std::vector<std::string>& tokens) {
  json config = json::object();
  auto token = [&](const char* key) -> std::optional<std::string> {
    if (!g.has(key)) return std::nullopt;
    const int64_t id = g.get_int(key);
    if (id < 0 || id >= static_cast<int64_t>(tokens.size()))
      fail("GGUF file '{}': {} {} is outside the vocabulary", g.path(), key, id);
    return tokens[id];
  };
  if (auto b = token("tokenizer.ggml.bos_token_id")) config["bos_token"] = *b;
  if (auto e = token("tokenizer.ggml.eos_token_id")) config["eos_token"] = *e;
  config["add_bos_token"] = g.has("tokenizer.ggml.add_bos_token") && g.get_bool("tokenizer.ggml.add_bos_token");
  config["add_eos_token"] = g.has("tokenizer.ggml.add_eos_token") && g.get_bool("tokenizer.ggml.add_eos_token");
  return config;
}

// A JSON key ferrum writes for what GGUF has no key for (other readers ignore it).
json ferrum_json(const GgufFile& g, const std::string& key, json fallback) {
  if (!g.has(key)) return fallback;
  json j = json::parse(g.get_string(key), nullptr, false);
  if (j.is_discarded()) fail("GGUF file '{}': {} is not JSON", g.path(), key);
  return j;
}

// "gpt2": byte-level BPE, merges as stored, the pre-tokenizer's split regex by name.
tok::TokenizerJson gpt2_tokenizer(const GgufFile& g, const GgufVocab& v) {
  const std::string pre = g.get_string("tokenizer.ggml.pre", "default");
  const auto re = pre_regexes().find(pre == "default" ? "gpt2" : pre == "llama3" ? "llama-bpe" : pre);
  if (re == pre_regexes().end())
    fail("GGUF file '{}': pre-tokenizer '{}' is not supported (llama-bpe, qwen2 and gpt2 are)", g.path(), pre);
  tok::TokenizerJson t;
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.types[i] != kControl && v.types[i] != kUserDefined && v.types[i] != kUnused)
      t.vocab.emplace_back(v.tokens[i], static_cast<int64_t>(i));
  for (const std::string& m : g.get_strings("tokenizer.ggml.merges")) t.merges.push_back(tok::split_merge(m));
  t.has_vocab = t.has_merges = true;
  // As the tokenizer.json files of these families: Llama 3 skips merges for whole-vocabulary
  // words, Qwen normalizes to NFC.
  t.doc = {{"version", "1.0"},
           {"added_tokens", added_tokens(v, false)},
           {"normalizer", ferrum_json(g, "tokenizer.ferrum.normalizer", pre == "qwen2" ? json{{"type", "NFC"}} : json())},
           {"pre_tokenizer",
            {{"type", "Sequence"},
             {"pretokenizers",
              json::array({{{"type", "Split"}, {"pattern", {{"Regex", re->second}}}, {"behavior", "Isolated"},
                            {"invert", false}},
                           {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                            {"use_regex", false}}})}}},
           {"post_processor", json()},
           {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
           {"model",
            {{"type", "BPE"}, {"dropout", json()}, {"unk_token", json()}, {"fuse_unk", false}, {"byte_fallback", false},
             {"ignore_merges", pre == "llama-bpe" || pre == "llama3"}, {"vocab", json()}, {"merges", json()}}}};
  return t;
}

// "llama": SentencePiece BPE. The pieces' scores order the merges: any two adjacent pieces
// whose concatenation is a normal piece may merge, the highest-scoring concatenation first
// (llama.cpp's SPM tokenizer; Hugging Face's conversion lists the same pairs as merges in
// that order). Text the pieces cannot spell falls back to <0xXX> byte pieces.
tok::TokenizerJson spm_tokenizer(const GgufFile& g, const GgufVocab& v) {
  if (v.scores.empty()) fail("GGUF file '{}': a SentencePiece ('llama') tokenizer needs tokenizer.ggml.scores", g.path());
  tok::TokenizerJson t;
  std::unordered_map<std::string, int64_t> normal;
  std::optional<std::string> unk;
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    const int type = v.types[i];
    if (type == kUnused) continue;
    t.vocab.emplace_back(v.tokens[i], static_cast<int64_t>(i));
    if (type == kNormal) normal.emplace(v.tokens[i], static_cast<int64_t>(i));
    if (type == kUnknown && !unk) unk = v.tokens[i];
  }
  std::vector<std::tuple<double, int64_t, size_t>> splits;  // (score, piece, split byte)
  for (const auto& [piece, id] : normal)
    for (size_t k = 1; k < piece.size(); ++k) {
      if ((static_cast<unsigned char>(piece[k]) & 0xC0) == 0x80) continue;  // inside a UTF-8 character
      if (normal.count(piece.substr(0, k)) && normal.count(piece.substr(k))) splits.emplace_back(v.scores[id], id, k);
    }
  std::sort(splits.begin(), splits.end(), [](const auto& a, const auto& b) {
    if (std::get<0>(a) != std::get<0>(b)) return std::get<0>(a) > std::get<0>(b);
    return std::make_pair(std::get<1>(a), std::get<2>(a)) < std::make_pair(std::get<1>(b), std::get<2>(b));
  });
  for (const auto& [score, id, k] : splits) t.merges.emplace_back(v.tokens[id].substr(0, k), v.tokens[id].substr(k));
  t.has_vocab = t.has_merges = true;

  const bool space_prefix = !g.has("tokenizer.ggml.add_space_prefix") || g.get_bool("tokenizer.ggml.add_space_prefix");
  json replace = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpaceMark}};
  json normalizer = space_prefix ? json{{"type", "Sequence"},
                                        {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", kSpaceMark}}, replace})}}
                                 : replace;
  json decoders = json::array({{{"type", "Replace"}, {"pattern", {{"String", kSpaceMark}}}, {"content", " "}},
                               {{"type", "ByteFallback"}}, {{"type", "Fuse"}}});
  if (space_prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  t.doc = {{"version", "1.0"},
           {"added_tokens", added_tokens(v, true)},
           {"normalizer", ferrum_json(g, "tokenizer.ferrum.normalizer", normalizer)},
           {"pre_tokenizer", ferrum_json(g, "tokenizer.ferrum.pre_tokenizer", json())},
           {"post_processor", json()},
           {"decoder", {{"type", "Sequence"}, {"decoders", decoders}}},
           {"model",
            {{"type", "BPE"}, {"dropout", json()}, {"unk_token", unk ? json(*unk) : json()}, {"fuse_unk", true},
             {"byte_fallback", true}, {"ignore_merges", false}, {"vocab", json()}, {"merges", json()}}}};
  return t;
}

bool is_byte_piece(const std::string& s) {  // <0xAB>
  return s.size() == 6 && s.compare(0, 3, "<0x") == 0 && s[5] == '>' && std::isxdigit(static_cast<unsigned char>(s[3])) &&
         std::isxdigit(static_cast<unsigned char>(s[4]));
}

}  // namespace

std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufFile& g) {
  const std::string kind = g.get_string("tokenizer.ggml.model");
  if (kind == "none" || kind == "no_vocab")
    fail("GGUF file '{}' has no tokenizer (tokenizer.ggml.model '{}': a file of random weights written by "
         "`ferrum quantize --dummy`, say)",
         g.path(), kind);
  if (kind != "gpt2" && kind != "llama")
    fail("GGUF file '{}': tokenizer.ggml.model '{}' is not supported (byte-level BPE 'gpt2' and SentencePiece "
         "'llama' are)",
         g.path(), kind);
  const GgufVocab v = read_vocab(g);
  tok::TokenizerJson t = kind == "gpt2" ? gpt2_tokenizer(g, v) : spm_tokenizer(g, v);
  return std::make_unique<HfTokenizer>(std::move(t), special_config(g, v.tokens));
}

std::map<std::string, std::string> gguf_chat_templates(const GgufFile& g) {
  std::map<std::string, std::string> out;
  const std::string prefix = "tokenizer.chat_template.";
  for (const auto& [key, v] : g.metadata()) {
    if (v.type != GgufValue::Type::String) continue;
    if (key == "tokenizer.chat_template") out["default"] = std::get<std::string>(v.scalar);
    else if (key.rfind(prefix, 0) == 0) out[key.substr(prefix.size())] = std::get<std::string>(v.scalar);
  }
  if (out.empty()) fail("GGUF file '{}' has no chat template (tokenizer.chat_template); give one with --chat-template FILE", g.path());
  return out;
}


ordered_json gguf_special_tokens(const GgufFile& g) {
  ordered_json out = ordered_json::object();
  const std::vector<std::string> tokens = g.has("tokenizer.ggml.tokens") ? g.get_strings("tokenizer.ggml.tokens")
                                                                          : std::vector<std::string>{};
  for (const auto& [key, name] : {std::pair{"tokenizer.ggml.bos_token_id", "bos_token"},
                                  std::pair{"tokenizer.ggml.eos_token_id", "eos_token"}})
    if (g.has(key)) {
      const int64_t id = g.get_int(key);
      if (id >= 0 && id < static_cast<int64_t>(tokens.size())) out[name] = tokens[id];
    }
  return out;
}


void write_tokenizer_metadata(GgufWriter& w, const std::string& model_dir) {
  const fs::path dir(model_dir);
  const fs::path tj = dir / "tokenizer.json";
  tok::TokenizerJson t = tok::parse_tokenizer_json(read_file(tj.string()), tj.string());
  const json& model = t.doc["model"];
  if (!model.is_object() || model.value("type", "") != "BPE")
    fail("{}: {} tokenizers have no GGUF form here (BPE ones, byte-level or with byte fallback, do)", tj.string(),
         model.is_object() ? model.value("type", "?") : "unknown");
  const bool spm = model.value("byte_fallback", false);  // Llama 2 / Mistral style: GGUF "llama"
  // The pre-tokenizer, by its split regex (llama.cpp's tokenizer.ggml.pre names).
  std::string pre;
  const json& pt = t.doc["pre_tokenizer"];
  auto regex_of = [](const json& p) -> std::string {
    if (p.is_object() && p.value("type", "") == "Split" && p.contains("pattern") && p["pattern"].contains("Regex"))
      return p["pattern"]["Regex"].get<std::string>();
    return "";
  };
  std::string regex;
  if (pt.is_object() && pt.value("type", "") == "Sequence")
    for (const json& p : pt["pretokenizers"])
      if (regex.empty()) regex = regex_of(p);
  if (pt.is_object() && pt.value("type", "") == "ByteLevel" && pt.value("use_regex", false)) pre = "gpt2";
  for (const auto& [name, r] : pre_regexes())
    if (!regex.empty() && r == regex) pre = name;
  if (pre.empty() && !spm)
    fail("{}: its pre-tokenizer ({}) has no llama.cpp name; GGUF cannot describe it", tj.string(),
         regex.empty() ? pt.dump().substr(0, 200) : regex);

  int64_t n = 0;
  for (const auto& [tok, id] : t.vocab) n = std::max(n, id + 1);
  const json& added = t.doc["added_tokens"];
  if (added.is_array())
    for (const json& a : added)
      n = std::max<int64_t>(n, json_integer_or<int32_t>(a, "id", 0, "tokenizer: added token id") + 1);
  // Padded to the model's vocabulary (the embedding's rows) with unused [PADi] tokens, as
  // llama.cpp's converter does.
  if (fs::exists(dir / "config.json")) n = std::max(n, ModelConfig::from_dir(model_dir).vocab_size);
  std::vector<std::string> tokens(static_cast<size_t>(n));
  std::vector<int32_t> types(static_cast<size_t>(n), kUnused);
  for (int64_t i = 0; i < n; ++i) tokens[i] = "[PAD" + std::to_string(i) + "]";
  for (const auto& [tok, id] : t.vocab) {
    tokens[id] = tok;
    types[id] = kNormal;
  }
  if (added.is_array())
    for (const json& a : added) {
      const int64_t id = json_integer_or<int32_t>(a, "id", -1, "tokenizer: added token id");
      if (id < 0 || id >= n) continue;
      tokens[id] = a.value("content", "");
      types[id] = a.value("special", false) ? kControl : kUserDefined;
    }
  if (spm) {
    // Scores from the merge ranks: the piece the first merge makes scores 0, the next -1, ...
    // (pieces no merge makes score below all of them); the space prefix from the normalizer
    // (Prepend "▁") or a Metaspace pre-tokenizer.
    std::unordered_map<std::string, int64_t> id_of_piece;
    for (int64_t i = 0; i < n; ++i) id_of_piece.emplace(tokens[i], i);
    const std::string unk = model.value("unk_token", std::string());
    std::vector<float> scores(static_cast<size_t>(n), -1e9f);
    for (size_t r = t.merges.size(); r-- > 0;) {
      const auto it = id_of_piece.find(t.merges[r].first + t.merges[r].second);
      if (it != id_of_piece.end()) scores[it->second] = -static_cast<float>(r);
    }
    for (int64_t i = 0; i < n; ++i) {
      if (types[i] != kNormal) continue;
      if (tokens[i] == unk) types[i] = kUnknown;
      else if (is_byte_piece(tokens[i])) types[i] = kByte;
    }
    if (!unk.empty() && id_of_piece.count(unk)) types[id_of_piece[unk]] = kUnknown;
    const std::string norm = t.doc.value("normalizer", json()).dump(), pre_dump = pt.dump();
    const bool space_prefix = norm.find("\"Prepend\"") != std::string::npos ||
                              (pt.is_object() && pt.value("type", "") == "Metaspace" && pt.value("prepend_scheme", "always") != "never");
    w.add_string("tokenizer.ggml.model", "llama");
    w.add_string("tokenizer.ggml.pre", "default");
    w.add_strings("tokenizer.ggml.tokens", tokens);
    w.add_f32s("tokenizer.ggml.scores", scores);
    w.add_i32s("tokenizer.ggml.token_type", types);
    w.add_bool("tokenizer.ggml.add_space_prefix", space_prefix);
    // GGUF has no keys for these; ferrum records tokenizer.json's, so that reading the file
    // back encodes exactly as it did (other readers ignore them).
    w.add_string("tokenizer.ferrum.normalizer", norm);
    if (!pt.is_null()) w.add_string("tokenizer.ferrum.pre_tokenizer", pre_dump);
  } else {
    std::vector<std::string> merges;
    merges.reserve(t.merges.size());
    for (const auto& [a, b] : t.merges) merges.push_back(a + " " + b);
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string("tokenizer.ggml.pre", pre);
    // GGUF has no key for the normalizer; ferrum records tokenizer.json's (other readers ignore
    // the key; without it, qwen2 files get Qwen's NFC).
    w.add_string("tokenizer.ferrum.normalizer", t.doc.value("normalizer", json()).dump());
    w.add_strings("tokenizer.ggml.tokens", tokens);
    w.add_i32s("tokenizer.ggml.token_type", types);
    w.add_strings("tokenizer.ggml.merges", merges);
  }

  // Special ids from tokenizer_config.json (strings) and the post-processor's BOS/EOS.
  json cfg = json::object();
  if (fs::exists(dir / "tokenizer_config.json")) cfg = json::parse(read_file((dir / "tokenizer_config.json").string()));
  auto id_of = [&](const std::string& s) -> int64_t {
    for (int64_t i = 0; i < n; ++i)
      if (tokens[i] == s) return i;
    return -1;
  };
  auto token_string = [&](const char* key) -> std::string {
    if (!cfg.contains(key) || cfg[key].is_null()) return "";
    if (cfg[key].is_string()) return cfg[key].get<std::string>();
    return cfg[key].value("content", "");
  };
  if (const int64_t bos = id_of(token_string("bos_token")); bos >= 0)
    w.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(bos));
  if (const int64_t eos = id_of(token_string("eos_token")); eos >= 0)
    w.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(eos));
  // generation_config.json's other end-of-turn id (Llama 3's <|eot_id|>, say).
  const std::vector<int32_t> eos_ids =
      fs::exists(dir / "config.json") ? ModelConfig::from_dir(model_dir).eos_token_ids : std::vector<int32_t>{};
  for (int32_t id : eos_ids)
    if (id != id_of(token_string("eos_token")) && id >= 0 && id < n) {
      w.add_u32("tokenizer.ggml.eot_token_id", static_cast<uint32_t>(id));
      break;
    }
  bool add_bos = false, add_eos = false;
  std::function<void(const json&)> scan = [&](const json& p) {
    if (!p.is_object()) return;
    if (p.value("type", "") == "Sequence" && p.contains("processors"))
      for (const json& q : p["processors"]) scan(q);
    if (p.value("type", "") == "TemplateProcessing" && p["single"].is_array() && !p["single"].empty()) {
      add_bos = p["single"].front().contains("SpecialToken");
      add_eos = p["single"].back().contains("SpecialToken");
    }
  };
  scan(t.doc["post_processor"]);
  w.add_bool("tokenizer.ggml.add_bos_token", add_bos);
  w.add_bool("tokenizer.ggml.add_eos_token", add_eos);

  std::string tmpl;
  if (fs::exists(dir / "chat_template.jinja")) tmpl = read_file((dir / "chat_template.jinja").string());
  else if (cfg.contains("chat_template") && cfg["chat_template"].is_string()) tmpl = cfg["chat_template"].get<std::string>();
  else if (cfg.contains("chat_template") && cfg["chat_template"].is_array())
    for (const json& e : cfg["chat_template"]) {
      const std::string name = e.value("name", ""), text = e.value("template", "");
      if (name == "default") tmpl = text;
      else if (!name.empty()) w.add_string("tokenizer.chat_template." + name, text);
    }
  if (!tmpl.empty()) w.add_string("tokenizer.chat_template", tmpl);
}

}  // namespace ferrum
