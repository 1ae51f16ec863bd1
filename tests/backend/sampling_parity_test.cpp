// The CUDA sampling kernel against the CPU reference (backend/cpu/cpu_sampling.cpp) on random
// rows of real vocabulary sizes: the same tokens (the draw is the same Gumbel-max over the same
// hash), logprobs within float rounding, grammar masks obeyed. Skipped without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "backend/backend.h"
#include "backend/sampling.h"

namespace ferrum {
namespace {

TEST(SamplingParity, CudaPicksTheSameTokensAsTheCpuReference) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
  auto cpu = make_cpu_backend(2);
  auto gpu = make_cuda_backend(0);
  std::mt19937_64 rng(11);
  for (int64_t vocab : {1000, 128256, 151936}) {
    const int64_t rows = 96;
    SampleBatch batch;
    std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(vocab) - 1);
    batch.mask_words = static_cast<int32_t>((vocab + 31) / 32);
    for (int64_t r = 0; r < rows; ++r) {
      SampleRow row;
      const int kind = static_cast<int>(r % 6);
      row.temperature = kind == 0 ? 0.0f : 0.5f + 0.25f * (r % 4);
      row.top_k = kind == 2 || kind == 5 ? 1 + static_cast<int32_t>(r % 50) : 0;
      row.top_p = kind == 3 || kind == 5 ? 0.5f + 0.1f * (r % 5) : 1.0f;
      row.min_p = kind == 4 ? 0.05f : 0.0f;
      row.key = rng();
      row.counter = r;
      row.num_logprobs = r % 3 == 0 ? static_cast<int32_t>(r % 21) : -1;
      row.edits_begin = static_cast<int32_t>(batch.edits.size());
      if (r % 2) {
        batch.edits.push_back({tok(rng), LogitEdit::Mask, 0.0f});
        batch.edits.push_back({tok(rng), LogitEdit::Bias, 5.0f});
        batch.edits.push_back({tok(rng), LogitEdit::Repetition, 1.3f});
        batch.edits.push_back({tok(rng), LogitEdit::Penalty, 0.7f});
      }
      row.edits_end = static_cast<int32_t>(batch.edits.size());
      if (r % 3 == 1) {  // a grammar's token mask: half the vocabulary, or a handful of tokens
        row.mask = batch.num_masks();
        const size_t at = batch.masks.size();
        batch.masks.resize(at + batch.mask_words, 0u);
        const bool dense = r % 2 == 0;
        for (int64_t t = 0; t < vocab; ++t)
          if (dense ? rng() % 2 == 0 : rng() % 5000 == 0) batch.masks[at + t / 32] |= 1u << (t % 32);
        const int32_t one = tok(rng);  // never empty
        batch.masks[at + one / 32] |= 1u << (one % 32);
      }
      batch.rows.push_back(row);
    }
    Tensor host = cpu->alloc({rows, vocab}, DType::F32);
    std::normal_distribution<float> n(0.0f, 2.5f);
    for (int64_t i = 0; i < host.numel(); ++i) host.ptr<float>()[i] = n(rng);
    Tensor dev = gpu->upload(host);
    SampleResult want, got;
    cpu->sample(host, batch, want);
    gpu->sample(dev, batch, got);
    int same = 0;
    for (int64_t r = 0; r < rows; ++r) {
      same += got.tokens[r] == want.tokens[r];
      const SampleRow& row = batch.rows[r];
      if (row.num_logprobs < 0 || got.tokens[r] != want.tokens[r]) continue;
      EXPECT_NEAR(got.logprobs[r], want.logprobs[r], 2e-3) << "vocab " << vocab << " row " << r;
      for (int j = 0; j < row.num_logprobs; ++j) {
        EXPECT_EQ(got.top_ids[r * kMaxTopLogprobs + j], want.top_ids[r * kMaxTopLogprobs + j]) << r << " top " << j;
        EXPECT_NEAR(got.top_logprobs[r * kMaxTopLogprobs + j], want.top_logprobs[r * kMaxTopLogprobs + j], 2e-3);
      }
    }
    // Ties within float rounding (a top_p boundary, two Gumbel scores) may differ: rare.
    EXPECT_GE(same, rows - 2) << "vocab " << vocab;
    for (int64_t r = 0; r < rows; ++r) {
      if (batch.rows[r].temperature == 0.0f) {
        EXPECT_EQ(got.tokens[r], want.tokens[r]) << "greedy row " << r;
      }
      if (batch.rows[r].mask >= 0) {
        const uint32_t* mask = batch.masks.data() + batch.rows[r].mask * batch.mask_words;
        EXPECT_TRUE(mask_allows(mask, got.tokens[r])) << "row " << r << " picked masked token " << got.tokens[r];
      }
    }
  }
}

// Few rows that are greedy or take the temperature alone: the GPU splits each row over blocks
// (cuda::sample_split) and must still pick what the CPU picks.
TEST(SamplingParity, CudaSplitRowsPickTheSameTokensAsTheCpuReference) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
  auto cpu = make_cpu_backend(2);
  auto gpu = make_cuda_backend(0);
  std::mt19937_64 rng(12);
  int draws = 0, same = 0;
  for (int64_t vocab : {1000, 4096, 128256, 151936}) {
    for (int64_t rows : {1, 5, 16}) {
      SampleBatch batch;
      for (int64_t r = 0; r < rows; ++r) {
        SampleRow row;
        row.temperature = r % 4 == 0 ? 0.0f : 0.3f + 0.35f * (r % 4);
        row.top_k = r % 5 == 1 ? static_cast<int32_t>(vocab) : 0;  // top_k of the whole vocabulary: no filter
        row.key = rng();
        row.counter = r;
        batch.rows.push_back(row);
      }
      Tensor host = cpu->alloc({rows, vocab}, DType::F32);
      std::normal_distribution<float> n(0.0f, 2.5f);
      for (int64_t i = 0; i < host.numel(); ++i) host.ptr<float>()[i] = n(rng);
      if (rows == 5) {  // a row of one huge logit, a row with -inf entries
        host.ptr<float>()[vocab + vocab / 3] = 60.0f;
        for (int64_t i = 0; i < vocab; i += 7) host.ptr<float>()[2 * vocab + i] = -INFINITY;
      }
      Tensor dev = gpu->upload(host);
      SampleResult want, got, whole;
      cpu->sample(host, batch, want);
      gpu->sample(dev, batch, got);
      // The same rows asking for logprobs take one block per row (sample_kernel): the same picks.
      SampleBatch asking = batch;
      for (SampleRow& row : asking.rows) row.num_logprobs = 0;
      Tensor dev2 = gpu->upload(host);
      gpu->sample(dev2, asking, whole);
      EXPECT_EQ(got.tokens, whole.tokens) << "vocab " << vocab << ", " << rows << " rows";
      for (int64_t r = 0; r < rows; ++r) {
        ++draws;
        same += got.tokens[r] == want.tokens[r];
        if (batch.rows[r].temperature == 0.0f) {
          EXPECT_EQ(got.tokens[r], want.tokens[r]) << "greedy row " << r;
        }
      }
      if (rows == 5) {
        EXPECT_EQ(got.tokens[1], vocab / 3) << "the huge logit";
      }
    }
  }
  // Two Gumbel scores within float rounding of each other may order differently: rare.
  EXPECT_GE(same, draws - 2);
}

// The draw's uniform numbers lie strictly inside (0, 1), for every value of the bits it takes:
// u = 1 would give a Gumbel score of +inf (that token always picked).
TEST(SampleUniform, NeverReachesZeroOrOne) {
  float lo = 1.0f, hi = 0.0f;
  for (uint64_t v = 0; v < (uint64_t{1} << 23); ++v) {
    const float u = uniform_from_bits(v << 41 | 0x1234567ull);
    lo = std::min(lo, u), hi = std::max(hi, u);
  }
  EXPECT_GT(lo, 0.0f);
  EXPECT_LT(hi, 1.0f);
  EXPECT_TRUE(std::isfinite(-std::log(-std::log(hi))));
  EXPECT_TRUE(std::isfinite(-std::log(-std::log(lo))));
}

}  // namespace
}  // namespace ferrum
