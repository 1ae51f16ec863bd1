// The engine's output contract: stop strings, stop tokens, UTF-8-safe streaming, logprobs,
// abort, validation, shutdown.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <numeric>
#include <thread>

#include "core/error.h"
#include "engine_test_util.h"
#include "samples_on_device.h"

namespace ferrum::testing {
namespace {

using namespace std::chrono_literals;

EngineOptions options() {
  EngineOptions o;
  o.block_size = 4;
  o.num_kv_blocks = 256;
  o.max_num_batched_tokens = 32;
  return o;
}

struct Fixture {
  std::shared_ptr<FakeModel> model = std::make_shared<FakeModel>();
  std::shared_ptr<FakeTokenizer> tok = std::make_shared<FakeTokenizer>();
  std::unique_ptr<Engine> engine = Engine::create(model, tok, options());
  Collected run(const std::vector<int32_t>& prompt, const SamplingParams& p) {
    return collect(*engine->submit(prompt, p), p.n);
  }
};

SamplingParams greedy(int32_t max_tokens) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_tokens = max_tokens;
  p.ignore_eos = true;
  return p;
}

// Byte offsets in the decoded text where each token's text ends.
std::vector<size_t> token_ends(const Tokenizer& tok, const std::vector<int32_t>& tokens) {
  std::vector<size_t> ends;
  for (size_t i = 1; i <= tokens.size(); ++i)
    ends.push_back(tok.decode(std::span<const int32_t>(tokens.data(), i), true).size());
  return ends;
}

TEST(EngineOutput, StopStringSpanningTokensIsNeverEmitted) {
  Fixture f;
  std::mt19937 rng(11);
  int tested = 0;
  for (int attempt = 0; attempt < 40 && tested < 6; ++attempt) {
    auto prompt = ascii_prompt(rng, 6 + attempt);
    auto ref = reference_greedy(prompt, 40, *f.model, *f.tok, true);
    // A 3-byte stop string that starts inside one token and ends in a later one.
    auto ends = token_ends(*f.tok, ref.tokens);
    const size_t cut = ends[ends.size() / 2];
    if (cut < 2 || cut + 2 > ref.text.size()) continue;
    const std::string stop = ref.text.substr(cut - 1, 3);
    if (std::any_of(stop.begin(), stop.end(), [](char ch) { return ch & 0x80; })) continue;
    const size_t first = ref.text.find(stop);
    ASSERT_LE(first, cut - 1);
    for (bool include : {false, true}) {
      SamplingParams p = greedy(40);
      p.stop = {"zzzzzz", stop};
      p.include_stop_str_in_output = include;
      auto c = f.run(prompt, p);
      const Completion& got = c.completions[0];
      const std::string expected = ref.text.substr(0, first + (include ? stop.size() : 0));
      EXPECT_EQ(got.text, expected) << "stop '" << stop << "'";
      EXPECT_EQ(got.finish, FinishReason::Stop);
      EXPECT_EQ(got.stop_reason, stop);
      // Every prefix the client saw is a prefix of the final text: nothing was taken back.
      std::string seen;
      for (const auto& piece : got.pieces) {
        seen += piece;
        EXPECT_EQ(expected.compare(0, seen.size(), seen), 0);
      }
      // Tokens stop at the one completing the match.
      size_t k = 0;
      while (ends[k] < first + stop.size()) ++k;
      EXPECT_EQ(got.tokens.size(), k + 1);
    }
    ++tested;
  }
  EXPECT_GE(tested, 3);
}

TEST(EngineOutput, StreamedPiecesAreWholeUtf8AndConcatenateToTheFullDecode) {
  Fixture f;
  std::mt19937 rng(12);
  int split_chars = 0;
  for (int i = 0; i < 30; ++i) {
    SamplingParams p;
    p.temperature = 1.5f;
    p.max_tokens = 40;
    p.seed = i;
    // Favour the lone-byte tokens (ids 42..50) so that characters arrive in pieces.
    for (int32_t t = 42; t <= 50; ++t) p.logit_bias[t] = 3.0f;
    auto c = f.run(ascii_prompt(rng, 5), p);
    const Completion& got = c.completions[0];
    std::vector<int32_t> text_ids = got.tokens;
    if (got.finish == FinishReason::Stop) text_ids.pop_back();  // EOS
    EXPECT_EQ(got.text, f.tok->decode(text_ids, true));
    for (const auto& piece : got.pieces) EXPECT_TRUE(valid_utf8(piece)) << piece;
    for (size_t k = 0; k + 1 < got.tokens.size(); ++k)
      split_chars += (got.tokens[k] == 42 && got.tokens[k + 1] == 43) ? 1 : 0;  // C3 A9 = é
  }
  EXPECT_GT(split_chars, 0) << "the test never produced a character split over tokens";
}

TEST(EngineOutput, StopTokenIdsEosAndMinTokens) {
  Fixture f;
  std::mt19937 rng(13);
  auto prompt = ascii_prompt(rng, 9);
  auto ref = reference_greedy(prompt, 30, *f.model, *f.tok, true);
  SamplingParams p = greedy(30);
  p.stop_token_ids = {ref.tokens[4]};
  const size_t first = std::find(ref.tokens.begin(), ref.tokens.end(), ref.tokens[4]) - ref.tokens.begin();
  auto c = f.run(prompt, p).completions[0];
  EXPECT_EQ(c.finish, FinishReason::Stop);
  EXPECT_EQ(c.stop_reason, std::to_string(ref.tokens[4]));
  EXPECT_EQ(c.tokens, std::vector<int32_t>(ref.tokens.begin(), ref.tokens.begin() + first + 1));
  // The stop token's own text is not in the output.
  EXPECT_EQ(c.text, f.tok->decode(std::vector<int32_t>(ref.tokens.begin(), ref.tokens.begin() + first), true));

  // min_tokens masks stop tokens (and EOS) until reached: the greedy pick changes.
  p.min_tokens = static_cast<int32_t>(first) + 3;
  c = f.run(prompt, p).completions[0];
  EXPECT_GE(c.tokens.size(), first + 3);
  for (size_t k = 0; k < first + 2; ++k) EXPECT_NE(c.tokens[k], ref.tokens[4]);

  // EOS (id 1) ends a request unless ignore_eos; force it with logit_bias.
  SamplingParams eos = greedy(10);
  eos.ignore_eos = false;
  eos.logit_bias[1] = 100.0f;
  c = f.run(prompt, eos).completions[0];
  EXPECT_EQ(c.tokens, std::vector<int32_t>{1});
  EXPECT_EQ(c.finish, FinishReason::Stop);
  EXPECT_EQ(c.text, "");
  eos.ignore_eos = true;
  c = f.run(prompt, eos).completions[0];
  EXPECT_EQ(c.tokens.size(), 10u);
  EXPECT_EQ(c.finish, FinishReason::Length);
}

TEST(EngineOutput, LogprobsAreThoseOfTheRawModelDistribution) {
  Fixture f;
  std::mt19937 rng(14);
  auto prompt = ascii_prompt(rng, 7);
  SamplingParams p = greedy(6);
  p.logprobs = 5;
  p.repetition_penalty = 1.3f;  // penalties do not change the reported logprobs
  auto c = f.run(prompt, p).completions[0];
  ASSERT_EQ(c.logprobs.size(), 6u);
  std::vector<int32_t> ctx = prompt;
  for (size_t k = 0; k < c.tokens.size(); ++k) {
    auto row = reference_logits(ctx, 64);
    double sum = 0;
    const float mx = *std::max_element(row.begin(), row.end());
    for (float l : row) sum += std::exp(static_cast<double>(l - mx));
    const double lse = mx + std::log(sum);
    const TokenLogprob& lp = c.logprobs[k];
    EXPECT_EQ(lp.token_id, c.tokens[k]);
    EXPECT_NEAR(lp.logprob, row[c.tokens[k]] - lse, 1e-4);
    ASSERT_EQ(lp.top.size(), 5u);
    std::vector<int32_t> order(64);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
    for (int j = 0; j < 5; ++j) {
      EXPECT_EQ(lp.top[j].first, order[j]);
      EXPECT_NEAR(lp.top[j].second, row[order[j]] - lse, 1e-4);
    }
    ctx.push_back(c.tokens[k]);
  }
}

TEST(EngineOutput, AbortFreesTheBlocksAndEndsTheStream) {
  Fixture f;
  std::mt19937 rng(15);
  f.model->step_delay_us = 1000;
  SamplingParams p = greedy(900);
  auto stream = f.engine->submit(ascii_prompt(rng, 40), p);
  auto first = stream->next();
  ASSERT_TRUE(first.has_value());
  EXPECT_GT(f.engine->stats().kv_blocks_used, 0);
  stream->abort();
  FinishReason reason = FinishReason::None;
  while (auto out = stream->next())
    for (auto& d : out->deltas)
      if (d.finish_reason != FinishReason::None) reason = d.finish_reason;
  EXPECT_EQ(reason, FinishReason::Abort);
  for (int i = 0; i < 200 && f.engine->stats().kv_blocks_used > 0; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(f.engine->stats().kv_blocks_used, 0);

  // Dropping the stream without reading it aborts too (a client gone).
  f.engine->submit(ascii_prompt(rng, 40), p).reset();
  for (int i = 0; i < 200 && f.engine->stats().running + f.engine->stats().waiting > 0; ++i)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(f.engine->stats().running + f.engine->stats().waiting, 0);
  EXPECT_EQ(f.engine->stats().kv_blocks_used, 0);
}

TEST(EngineOutput, ModelFailureEndsTheStepsRequestsAndTheEngineGoesOn) {
  Fixture f;
  f.model->throw_once = true;
  auto failed = f.run({3, 4, 5}, greedy(5)).completions[0];
  EXPECT_EQ(failed.finish, FinishReason::Error);
  EXPECT_NE(failed.error.find("injected forward failure"), std::string::npos) << failed.error;
  auto ok = f.run({3, 4, 5}, greedy(5));
  EXPECT_EQ(ok.completions[0].tokens, reference_greedy({3, 4, 5}, 5, *f.model, *f.tok, true).tokens);
  for (int i = 0; i < 200 && f.engine->stats().kv_blocks_used > 0; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(f.engine->stats().kv_blocks_used, 0);
}

TEST(EngineOutput, ADeviceThatFailedForGoodFailsEveryRequestAtOnce) {
  Fixture f;
  f.model->device_lost = true;
  auto failed = f.run({3, 4, 5}, greedy(5)).completions[0];
  EXPECT_EQ(failed.finish, FinishReason::Error);
  EXPECT_NE(failed.error.find("the device is lost"), std::string::npos) << failed.error;
  const int64_t calls = f.model->forward_calls.load();
  EXPECT_EQ(calls, 1);
  std::string failure;
  for (int i = 0; i < 200 && failure.empty(); ++i, std::this_thread::sleep_for(5ms)) failure = f.engine->stats().device_failure;
  EXPECT_NE(failure.find("FakeModel: device lost"), std::string::npos) << failure;
  EXPECT_NE(failure.find("restart the server"), std::string::npos) << failure;
  try {
    f.engine->submit({3, 4, 5}, greedy(5));
    ADD_FAILURE() << "submit after the device failed";
  } catch (const DeviceFailed& e) {
    EXPECT_EQ(std::string(e.what()), failure);
  }
  EXPECT_EQ(f.model->forward_calls.load(), calls);  // no step was tried again
  EXPECT_EQ(f.engine->stats().kv_blocks_used, 0);
}

// The same with overlapped steps (the model's sampler, as on a GPU, where a failed device shows
// when a step's picks are waited for): the step launched after the failed one is still in
// flight. The engine must neither wait for it nor spin on it.
TEST(EngineOutput, ADeviceLostWithAStepInFlightLeavesTheEngineIdle) {
  auto fake = std::make_shared<FakeModel>();
  fake->step_delay_us = 500;
  auto model = std::make_shared<SamplesOnDevice>(fake);
  auto engine = Engine::create(model, std::make_shared<FakeTokenizer>(), options());
  auto stream = engine->submit({3, 4, 5}, greedy(400));
  while (fake->forward_calls.load() < 5) std::this_thread::sleep_for(1ms);
  model->lost_at_collect = true;
  const auto failed = collect(*stream).completions[0];
  EXPECT_EQ(failed.finish, FinishReason::Error);
  EXPECT_LT(failed.tokens.size(), 400u);
  const std::clock_t cpu0 = std::clock();
  std::this_thread::sleep_for(300ms);
  const double cpu_ms = 1000.0 * double(std::clock() - cpu0) / CLOCKS_PER_SEC;
  EXPECT_LT(cpu_ms, 100.0) << "the engine thread kept running after the device failed";
  EXPECT_FALSE(engine->stats().device_failure.empty());
  EXPECT_THROW(engine->submit({3, 4, 5}, greedy(5)), DeviceFailed);
}

TEST(EngineOutput, IdleEngineDoesNotStep) {
  Fixture f;
  f.run({3, 4, 5}, greedy(5));
  const int64_t calls = f.model->forward_calls.load();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(f.model->forward_calls.load(), calls);
}

TEST(EngineOutput, InvalidRequestsAreRejectedWithClearMessages) {
  Fixture f;
  SamplingParams p = greedy(10);
  EXPECT_THROW(f.engine->submit({}, p), InvalidRequest);
  EXPECT_THROW(f.engine->submit({3, 64}, p), InvalidRequest);  // outside the vocabulary
  ASSERT_EQ(f.engine->max_model_len(), 1024);  // the pool's 256 blocks of 4
  p.max_tokens = 1020;
  try {
    f.engine->submit(std::vector<int32_t>(10, 3), p);
    FAIL() << "expected InvalidRequest";
  } catch (const InvalidRequest& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("10 tokens"), std::string::npos) << msg;
    EXPECT_NE(msg.find("1020"), std::string::npos) << msg;
    EXPECT_NE(msg.find("1024"), std::string::npos) << msg;
  }
  p = greedy(10);
  p.top_p = 0.0f;
  EXPECT_THROW(f.engine->submit({3}, p), InvalidRequest);
  p = greedy(10);
  p.logprobs = 21;
  EXPECT_THROW(f.engine->submit({3}, p), InvalidRequest);
  p = greedy(10);
  p.stop = {""};
  EXPECT_THROW(f.engine->submit({3}, p), InvalidRequest);
  p = greedy(10);
  p.logit_bias[64] = 1.0f;
  EXPECT_THROW(f.engine->submit({3}, p), InvalidRequest);
  p = greedy(10);
  p.min_tokens = 11;
  EXPECT_THROW(f.engine->submit({3}, p), InvalidRequest);
}

TEST(EngineOutput, ShutdownEndsInFlightStreamsWithAbort) {
  Fixture f;
  f.model->step_delay_us = 1000;
  auto stream = f.engine->submit({3, 4, 5}, greedy(900));
  ASSERT_TRUE(stream->next().has_value());
  f.engine->shutdown();
  FinishReason reason = FinishReason::None;
  while (auto out = stream->next())
    for (auto& d : out->deltas)
      if (d.finish_reason != FinishReason::None) reason = d.finish_reason;
  EXPECT_EQ(reason, FinishReason::Abort);
  EXPECT_THROW(f.engine->submit({3}, greedy(1)), Error);
}

TEST(EngineOutput, QueueFullBeyondMaxWaiting) {
  auto model = std::make_shared<FakeModel>();
  EngineOptions o = options();
  o.max_waiting = 2;
  o.max_num_seqs = 1;
  auto engine = Engine::create(model, std::make_shared<FakeTokenizer>(), o);
  model->pause();
  std::vector<std::shared_ptr<RequestStream>> streams;
  bool full = false;
  for (int i = 0; i < 6 && !full; ++i) {
    try {
      streams.push_back(engine->submit({3, 4}, greedy(5)));
    } catch (const QueueFull&) {
      full = true;
    }
  }
  model->resume();
  EXPECT_TRUE(full);
  for (auto& s : streams) EXPECT_TRUE(collect(*s).finished);
}

}  // namespace
}  // namespace ferrum::testing
