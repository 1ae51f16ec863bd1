// The CPU model against transformers' float32 outputs on the same weights (fixtures written by
// tools/gen_fixtures.py): logits within 1e-4 relative error and identical greedy tokens, for
// one-shot prefill, chunked prefill and a batch of all prompts at once.
#include <gtest/gtest.h>

#include "backend/cpu/cpu_kernels.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <unistd.h>
#include <fstream>

#include "core/json.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "backend/backend.h"

namespace ferrum {
namespace {

const std::string kFixtures = std::string(FERRUM_SOURCE_DIR) + "/tests/fixtures/models/";

struct Prompt {
  std::vector<int32_t> ids, greedy;
  std::vector<int32_t> rows;  // rows of prompt + greedy whose logits were recorded
  Tensor logits;              // [rows, vocab]
};

std::vector<Prompt> load_reference(const std::string& dir, WeightStore& store) {
  std::ifstream in(dir + "/reference.json");
  json j = json::parse(in);
  std::vector<Prompt> out;
  for (size_t i = 0; i < j["prompts"].size(); ++i) {
    const auto& p = j["prompts"][i];
    Prompt pr;
    pr.ids = p["prompt_ids"].get<std::vector<int32_t>>();
    pr.greedy = p["greedy_ids"].get<std::vector<int32_t>>();
    pr.rows = p["logit_rows"].get<std::vector<int32_t>>();
    pr.logits = store.get("logits_" + std::to_string(i));
    out.push_back(pr);
  }
  return out;
}

// The CUDA run of a 16-bit model against the float32 reference: matmuls take 16-bit inputs
// and K/V are stored in 16 bits, as in transformers' own 16-bit run, whose error on these
// fixtures is up to 0.085 (tools/bf16_reference_error.py); ferrum's is up to 0.063. Subtle
// kernel errors are the CUDA parity tests' job (1e-5 against the CPU ops).
constexpr double kSixteenBitTolerance = 0.1;

double rel_error(const float* a, const float* ref, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    num += (double(a[i]) - ref[i]) * (double(a[i]) - ref[i]);
    den += double(ref[i]) * ref[i];
  }
  return std::sqrt(num / den);
}

// Runs several sequences together, each with its own contiguous run of KV blocks.
class Runner {
 public:
  Runner(Model& m, int seqs, int max_len) : model_(m), blocks_per_seq_((max_len + 15) / 16) {
    cache_ = m.create_kv_cache(seqs * blocks_per_seq_, 16);
    lens_.assign(seqs, 0);
  }
  // Feeds chunks[s] to sequence s (empty = skip) and returns the logits of every fed token.
  std::vector<std::vector<float>> step(const std::vector<std::vector<int32_t>>& chunks) {
    ForwardBatch b;
    b.max_blocks_per_seq = blocks_per_seq_;
    std::vector<int> owner;
    for (size_t s = 0; s < chunks.size(); ++s) {
      if (chunks[s].empty()) continue;
      b.query_start.push_back(b.num_tokens());
      for (int32_t id : chunks[s]) {
        const int32_t pos = lens_[s]++;
        b.logits_indices.push_back(b.num_tokens());
        b.token_ids.push_back(id);
        b.positions.push_back(pos);
        b.slot_mapping.push_back((static_cast<int32_t>(s) * blocks_per_seq_ + pos / 16) * 16 + pos % 16);
        owner.push_back(static_cast<int>(s));
      }
      b.seq_lens.push_back(lens_[s]);
      for (int i = 0; i < blocks_per_seq_; ++i) b.block_tables.push_back(static_cast<int32_t>(s) * blocks_per_seq_ + i);
    }
    b.query_start.push_back(b.num_tokens());
    std::vector<float> logits;
    model_.forward(b, *cache_, logits);
    const int64_t V = model_.config().vocab_size;
    std::vector<std::vector<float>> rows;
    for (size_t r = 0; r < b.logits_indices.size(); ++r) rows.emplace_back(logits.begin() + r * V, logits.begin() + (r + 1) * V);
    return rows;
  }

 private:
  Model& model_;
  int blocks_per_seq_;
  std::unique_ptr<KvCache> cache_;
  std::vector<int32_t> lens_;
};

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Generates greedily for every prompt at once, prefilling in chunks of `chunk` tokens, and
// checks tokens and recorded logits against the reference. On the CPU everything is float32
// (1e-4); on CUDA, matmuls with 16-bit weights take 16-bit inputs, as PyTorch's bf16/f16
// models do (the bound is then bf16's: 2e-2).
// teacher_forced: feed the reference's tokens instead of our own picks, so that a near-tie
// decided the other way (16-bit rounding) does not change every later context.
// bf16_gemm: the CPU's BF16 prefill GEMM (x and w rounded to bf16 above 16 rows): bf16's bound.
// routed (mixtures of experts, 16-bit activations): a token whose k-th and (k+1)-th experts are
// as good as tied may take the other one, a whole expert's output apart. Up to a tenth of the
// recorded rows (at least one) may then miss the bound, by no more than kRoutedBound; the
// kernels themselves are held to bf16's bound with identical routes by the op harness.
constexpr double kRoutedBound = 0.5;
void check_model(const std::string& name, int chunk, bool batched, const std::string& device = "cpu",
                 bool teacher_forced = false, bool bf16_gemm = false, bool routed = false) {
  const std::string dir = kFixtures + name;
  auto model = load_model(dir, 2, device);
  const bool exact = !bf16_gemm && (device == "cpu" || model->config().torch_dtype == "float32");
  // BF16 GEMM inputs on float32 checkpoints round twice as much as a bf16 checkpoint's own
  // rounding, through every layer: 5e-2 (a wrong RoPE, mask or norm is off by O(1)).
  const double tol = exact ? 1e-4 : bf16_gemm ? 5e-2 : kSixteenBitTolerance;
  WeightStore ref_store = WeightStore::open_file(dir + "/reference.safetensors");
  auto prompts = load_reference(dir, ref_store);
  const int64_t V = model->config().vocab_size;
  const size_t groups = batched ? 1 : prompts.size();
  double worst = 0, worst_max = 0;  // relative errors of the worst recorded row: norm-wise, element-wise
  size_t recorded = 0, rerouted = 0;  // rows checked; rows over the bound (routed models)
  for (size_t g = 0; g < groups; ++g) {
    std::vector<size_t> members;
    for (size_t i = 0; i < prompts.size(); ++i)
      if (batched || i == g) members.push_back(i);
    Runner run(*model, static_cast<int>(members.size()), 128);
    // all[m] = logits for every position of member m's prompt + generated tokens
    std::vector<std::vector<std::vector<float>>> all(members.size());
    std::vector<std::vector<int32_t>> generated(members.size());
    std::vector<size_t> fed(members.size(), 0);
    for (bool busy = true; busy;) {
      busy = false;
      std::vector<std::vector<int32_t>> chunks(members.size());
      for (size_t m = 0; m < members.size(); ++m) {
        const Prompt& p = prompts[members[m]];
        if (fed[m] < p.ids.size()) {
          const size_t n = std::min<size_t>(chunk, p.ids.size() - fed[m]);
          chunks[m].assign(p.ids.begin() + fed[m], p.ids.begin() + fed[m] + n);
        } else if (generated[m].size() < p.greedy.size()) {
          chunks[m] = {teacher_forced ? p.greedy[generated[m].size() - 1] : generated[m].back()};
        }
      }
      std::vector<size_t> order;
      for (size_t m = 0; m < members.size(); ++m)
        if (!chunks[m].empty()) order.push_back(m);
      if (order.empty()) break;
      busy = true;
      auto rows = run.step(chunks);
      size_t r = 0;
      for (size_t m : order) {
        for (size_t i = 0; i < chunks[m].size(); ++i) all[m].push_back(rows[r++]);
        const Prompt& p = prompts[members[m]];
        fed[m] += fed[m] < p.ids.size() ? chunks[m].size() : 0;
        if (fed[m] >= p.ids.size() && generated[m].size() < p.greedy.size())
          generated[m].push_back(argmax(all[m].back()));
      }
    }
    for (size_t m = 0; m < members.size(); ++m) {
      const Prompt& p = prompts[members[m]];
      if (!teacher_forced) {
        EXPECT_EQ(generated[m], p.greedy) << name << " prompt " << members[m];
      }
      for (size_t r = 0; r < p.rows.size(); ++r) {
        const size_t row = static_cast<size_t>(p.rows[r]);
        ASSERT_LT(row, all[m].size());
        const float* ref = p.logits.ptr<float>() + r * V;
        const double err = rel_error(all[m][row].data(), ref, V);
        worst = std::max(worst, err);
        double diff = 0, scale = 0;  // also reported: max |a - ref| / max |ref|
        for (int64_t i = 0; i < V; ++i) {
          diff = std::max(diff, std::fabs(double(all[m][row][i]) - ref[i]));
          scale = std::max(scale, std::fabs(double(ref[i])));
        }
        worst_max = std::max(worst_max, diff / scale);
        ++recorded;
        if (routed && !exact && err >= tol) {
          ++rerouted;
          EXPECT_LT(err, kRoutedBound) << name << " prompt " << members[m] << " row " << row << " on " << device;
          continue;
        }
        if (teacher_forced) {
          // Our pick must be the reference's, or as good as tied in the reference's logits.
          const int32_t ours = argmax(all[m][row]);
          const int32_t theirs = argmax(std::vector<float>(ref, ref + V));
          double rms = 0;
          for (int64_t i = 0; i < V; ++i) rms += double(ref[i]) * ref[i];
          rms = std::sqrt(rms / V);
          EXPECT_TRUE(ours == theirs || ref[theirs] - ref[ours] < 2 * tol * rms)
              << name << " prompt " << members[m] << " row " << row << ": picked " << ours << " (" << ref[ours]
              << "), reference " << theirs << " (" << ref[theirs] << ")";
        }
        EXPECT_LT(err, tol) << name << " prompt " << members[m] << " row " << row << " on " << device;
      }
    }
  }
  EXPECT_LE(rerouted, std::max<size_t>(1, recorded / 10)) << name << ": rows over the bound on " << device;
  std::printf("%s on %s: worst relative error %.3g (bound %.0e), element-wise %.3g; %zu of %zu rows over it\n",
              name.c_str(), device.c_str(), worst, tol, worst_max, rerouted, recorded);
}

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, PrefillAtOnce) { check_model(GetParam(), 1 << 20, false); }
TEST_P(Golden, ChunkedPrefill) { check_model(GetParam(), 3, false); }
TEST_P(Golden, AllPromptsInOneBatch) { check_model(GetParam(), 5, true); }

// The CPU with the BF16 prefill GEMM (the default on AVX512-BF16 processors; the tests above
// keep the exact F32 one): within bf16's bound, picks as good as the reference's.
class GoldenCpuBf16Gemm : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    was_ = cpu::bf16_gemm_enabled();
    cpu::set_bf16_gemm(true);
  }
  void TearDown() override { cpu::set_bf16_gemm(was_); }
  bool was_ = false;
};
TEST_P(GoldenCpuBf16Gemm, PrefillAtOnce) { check_model(GetParam(), 1 << 20, false, "cpu", true, true); }
TEST_P(GoldenCpuBf16Gemm, AllPromptsInOneBatch) { check_model(GetParam(), 1 << 20, true, "cpu", true, true); }

// The same on the GPU (skipped without one).
class GoldenCuda : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
  }
};
TEST_P(GoldenCuda, PrefillAtOnce) { check_model(GetParam(), 1 << 20, false, "cuda", true); }
TEST_P(GoldenCuda, ChunkedPrefill) { check_model(GetParam(), 3, false, "cuda", true); }
TEST_P(GoldenCuda, AllPromptsInOneBatch) { check_model(GetParam(), 5, true, "cuda", true); }

std::string fixture_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = info.param;
  for (char& c : n)
    if (c == '-') c = '_';
  return n;
}
const auto kAllFixtures =
    ::testing::Values("tiny-llama", "tiny-llama-mqa", "tiny-qwen2", "tiny-qwen3", "tiny-mistral");
INSTANTIATE_TEST_SUITE_P(Fixtures, Golden, kAllFixtures, fixture_name);
INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenCuda, kAllFixtures, fixture_name);
INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenCpuBf16Gemm, kAllFixtures, fixture_name);
// Mixtures of experts (tools/gen_moe_fixtures.py): 8 experts, top 2, renormalized or not, a
// dense layer among sparse ones, Qwen2-MoE's shared expert. The CPU's exact F32 path only:
// under the BF16 GEMM a token whose two best experts are nearly tied may take the other one (a
// whole expert's output apart: one of tiny-qwen2-moe's 117 recorded rows is off by 0.27), so the dense
// bound above does not apply; the BF16 GEMM's expert products are checked by the op harness.
const auto kMoeFixtures = ::testing::Values("tiny-qwen3-moe", "tiny-qwen3-moe-nonorm", "tiny-qwen2-moe");
INSTANTIATE_TEST_SUITE_P(MoeFixtures, Golden, kMoeFixtures, fixture_name);

// The same on the GPU: routing, grouped expert GEMMs and the weighted sums in bf16.
class GoldenCudaMoe : public GoldenCuda {};
TEST_P(GoldenCudaMoe, PrefillAtOnce) { check_model(GetParam(), 1 << 20, false, "cuda", true, false, true); }
TEST_P(GoldenCudaMoe, ChunkedPrefill) { check_model(GetParam(), 3, false, "cuda", true, false, true); }
TEST_P(GoldenCudaMoe, AllPromptsInOneBatch) { check_model(GetParam(), 5, true, "cuda", true, false, true); }
INSTANTIATE_TEST_SUITE_P(MoeFixtures, GoldenCudaMoe, kMoeFixtures, fixture_name);

}  // namespace
}  // namespace ferrum

namespace ferrum {
namespace {

TEST(LoadModel, ClearErrors) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ferrum_model_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto err = [&] {
    try {
      load_model(dir.string(), 1);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(err().find("no config.json"), std::string::npos);
  fs::copy_file(kFixtures + "tiny-llama/config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  EXPECT_NE(err().find("no model.safetensors"), std::string::npos);
  // A checkpoint of another model: what is missing is named.
  fs::copy_file(kFixtures + "tiny-qwen3/model.safetensors", dir / "model.safetensors", fs::copy_options::overwrite_existing);
  EXPECT_NE(err().find("missing tensor 'lm_head.weight'"), std::string::npos) << err();
  // Truncated weights file.
  fs::resize_file(dir / "model.safetensors", 1000);
  EXPECT_NE(err().find("truncated"), std::string::npos) << err();
  std::ofstream(dir / "config.json") << R"({"architectures":["GPT2LMHeadModel"],"vocab_size":10,"hidden_size":8,
    "intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2})";
  EXPECT_NE(err().find("not supported"), std::string::npos) << err();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ferrum
