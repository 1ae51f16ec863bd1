// Seeds for fuzz_gguf, written by ferrum's own GgufWriter as `ferrum quantize` writes files:
// tokenizer keys by write_tokenizer_metadata from small tokenizer folders (byte-level BPE under
// each pre-tokenizer name, SentencePiece BPE, chat templates), tensors of every type ferrum
// knows, and metadata of every value type. Each file stays under the 16 KiB that
// scripts/fuzz.sh gives libFuzzer (-max_len), which would cut longer seeds short.
//   gguf_seeds REPO_ROOT OUT_DIR
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "models/gguf_tokenizer.h"

namespace fs = std::filesystem;
using ferrum::GgmlType;
using ferrum::GgufValue;
using ferrum::GgufWriter;
using ferrum::json;

namespace {

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A tokenizer folder (tokenizer.json + tokenizer_config.json) under `tmp`, from one of the
// fuzz_tokenizer_load seeds with its pre-tokenizer replaced when `pre_tokenizer` is given.
fs::path tokenizer_dir(const fs::path& root, const fs::path& tmp, const std::string& name, const std::string& seed,
                       const json& pre_tokenizer, const json& config) {
  json doc = json::parse(ferrum::read_file((root / "fuzz/seeds/fuzz_tokenizer_load" / seed).string()));
  if (!pre_tokenizer.is_null()) doc["pre_tokenizer"] = pre_tokenizer;
  const fs::path dir = tmp / name;
  fs::create_directories(dir);
  write_text(dir / "tokenizer.json", doc.dump());
  write_text(dir / "tokenizer_config.json", config.dump());
  return dir;
}

// The architecture keys convert_to_gguf writes, for a small Llama.
void add_llama_keys(GgufWriter& w) {
  w.add_string("general.architecture", "llama");
  w.add_string("general.name", "tiny");
  w.add_u32("general.file_type", 7);  // Q8_0
  w.add_u32("general.quantization_version", 2);
  w.add_u32("llama.context_length", 2048);
  w.add_u32("llama.embedding_length", 32);
  w.add_u32("llama.block_count", 1);
  w.add_u32("llama.feed_forward_length", 64);
  w.add_u32("llama.attention.head_count", 4);
  w.add_u32("llama.attention.head_count_kv", 2);
  w.add_u32("llama.attention.key_length", 8);
  w.add_u32("llama.attention.value_length", 8);
  w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.add_f32("llama.rope.freq_base", 500000.0f);
  w.add_u32("llama.vocab_size", 16);
  w.add_string("llama.rope.scaling.type", "linear");
  w.add_f32("llama.rope.scaling.factor", 2.0f);
}

// One tensor of `blocks` blocks of type t: quantized from a ramp where ferrum can quantize t,
// else deterministic bytes.
void add_tensor(GgufWriter& w, const std::string& name, GgmlType t, int64_t blocks) {
  const auto info = *ferrum::ggml_type_info(static_cast<uint32_t>(t));
  const int64_t n = info.block_elems * blocks;
  w.add_tensor(name, t, {n}, [t, n](std::vector<uint8_t>& out) {
    out.resize(ferrum::ggml_row_bytes(t, n));
    if (ferrum::can_quantize(t)) {
      std::vector<float> x(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * (1.0f + static_cast<float>(i % 7));
      ferrum::quantize_row(t, x.data(), out.data(), n);
    } else {
      for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(i * 131 + 7);
    }
  });
}

GgufValue scalar(GgufValue::Type type, std::variant<uint64_t, int64_t, double, bool, std::string> v) {
  GgufValue g;
  g.type = type;
  g.scalar = std::move(v);
  return g;
}

GgufValue array(GgufValue::Type element, std::vector<GgufValue> items) {
  GgufValue g;
  g.type = GgufValue::Type::Array;
  g.array_type = element;
  g.array = std::move(items);
  return g;
}

// Every value type as a key, with edge values: negatives, an unsigned over INT64_MAX (which
// get_int refuses), infinities, empty arrays and strings.
void add_every_value_type(GgufWriter& w) {
  using T = GgufValue::Type;
  w.add_value("v.u8", scalar(T::U8, uint64_t{255}));
  w.add_value("v.i8", scalar(T::I8, int64_t{-128}));
  w.add_value("v.u16", scalar(T::U16, uint64_t{65535}));
  w.add_value("v.i16", scalar(T::I16, int64_t{-32768}));
  w.add_value("v.u32", scalar(T::U32, uint64_t{4294967295u}));
  w.add_value("v.i32", scalar(T::I32, int64_t{-2147483647 - 1}));
  w.add_value("v.u64", scalar(T::U64, uint64_t{18446744073709551615u}));
  w.add_value("v.i64", scalar(T::I64, int64_t{-9223372036854775807 - 1}));
  w.add_value("v.f32", scalar(T::F32, -INFINITY));
  w.add_value("v.f64", scalar(T::F64, 1e308));
  w.add_value("v.bool", scalar(T::Bool, true));
  w.add_value("v.string", scalar(T::String, std::string("\xe2\x96\x81text\n")));
  w.add_value("v.empty_string", scalar(T::String, std::string()));
  w.add_value("v.u8s", array(T::U8, {scalar(T::U8, uint64_t{0}), scalar(T::U8, uint64_t{7})}));
  w.add_value("v.i16s", array(T::I16, {scalar(T::I16, int64_t{-1})}));
  w.add_value("v.u64s", array(T::U64, {scalar(T::U64, uint64_t{1} << 63)}));
  w.add_value("v.f64s", array(T::F64, {scalar(T::F64, 0.5), scalar(T::F64, -0.0)}));
  w.add_value("v.bools", array(T::Bool, {scalar(T::Bool, false), scalar(T::Bool, true)}));
  w.add_value("v.strings", array(T::String, {scalar(T::String, std::string("a")), scalar(T::String, std::string())}));
  w.add_value("v.empty_array", array(T::I32, {}));
}

void write_seed(const GgufWriter& w, const fs::path& out, const std::string& name) {
  const fs::path path = out / name;
  w.write(path.string());
  const auto size = fs::file_size(path);
  if (size > 16384) ferrum::fail("gguf_seeds: {} is {} bytes, over the fuzzers' -max_len of 16384", path.string(), size);
}

// The same file with one string key changed (tokenizer.ggml.pre's other names): its keys and
// tensors copied through GgufWriter, as requantizing copies them.
void write_with_string(const fs::path& in, const fs::path& out, const std::string& name, const std::string& key,
                       const std::string& value) {
  std::shared_ptr<ferrum::GgufFile> g = ferrum::GgufFile::open((out / in).string());
  GgufWriter w;
  for (const auto& [k, v] : g->metadata())
    if (k != "general.alignment") w.add_value(k, k == key ? scalar(GgufValue::Type::String, value) : v);
  for (const ferrum::GgufTensor& t : g->tensors())
    w.add_tensor(t.name, t.type, t.dims, [g, &t](std::vector<uint8_t>& bytes) { bytes.assign(t.data, t.data + t.nbytes); });
  write_seed(w, out, name);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: gguf_seeds REPO_ROOT OUT_DIR\n");
    return 2;
  }
  try {
    const fs::path root = argv[1], out = argv[2];
    fs::create_directories(out);
    const fs::path tmp = fs::temp_directory_path() / ("ferrum-gguf-seeds-" + std::to_string(::getpid()));
    fs::create_directories(tmp);
    const std::string tmpl = ferrum::read_file((root / "tests/fixtures/chat_templates/phi3_mini.jinja").string());
    const std::string tool_tmpl = ferrum::read_file((root / "tests/fixtures/chat_templates/llama3.jinja").string());

    // Byte-level BPE ("gpt2"): a ByteLevel pre-tokenizer with its regex is llama.cpp's "gpt2".
    const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
    const fs::path bpe = tokenizer_dir(root, tmp, "bpe", "tiny_bpe.json", byte_level,
                                       {{"bos_token", "<s>"}, {"eos_token", {{"content", "</s>"}}}, {"chat_template", tmpl}});
    {
      GgufWriter w;
      add_llama_keys(w);
      ferrum::write_tokenizer_metadata(w, bpe.string());
      add_tensor(w, "token_embd.weight", GgmlType::Q8_0, 2);
      add_tensor(w, "output_norm.weight", GgmlType::F32, 32);
      write_seed(w, out, "gpt2_tokenizer.gguf");
    }
    for (const std::string pre : {"llama-bpe", "qwen2", "llama3"})
      write_with_string("gpt2_tokenizer.gguf", out, "pre_" + pre + ".gguf", "tokenizer.ggml.pre", pre);

    // SentencePiece BPE ("llama"), with a named template besides the default.
    const json templates = json::array({{{"name", "default"}, {"template", tmpl}}, {{"name", "tool_use"}, {"template", tool_tmpl}}});
    const fs::path spm = tokenizer_dir(root, tmp, "spm", "sentencepiece_like.json", json(),
                                       {{"bos_token", "<unk>"}, {"eos_token", nullptr}, {"chat_template", templates}});
    {
      GgufWriter w;
      w.add_string("general.architecture", "llama");
      ferrum::write_tokenizer_metadata(w, spm.string());
      write_seed(w, out, "spm_tokenizer.gguf");
    }

    // Every tensor type ferrum names, one block or 8 values each.
    {
      GgufWriter w;
      add_llama_keys(w);
      for (uint32_t t = 0; t < 64; ++t)
        if (const auto info = ferrum::ggml_type_info(t))
          add_tensor(w, std::string("blk.0.") + info->name, static_cast<GgmlType>(t), info->block_elems == 1 ? 8 : 1);
      write_seed(w, out, "every_tensor_type.gguf");
    }
    {
      GgufWriter w;
      add_every_value_type(w);
      write_seed(w, out, "every_value_type.gguf");
    }
    write_seed(GgufWriter(), out, "empty.gguf");
    fs::remove_all(tmp);
  } catch (const ferrum::Error& e) {
    std::fprintf(stderr, "gguf_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
