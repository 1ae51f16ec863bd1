// The statistics of `ferrum bench serve`, against values worked out by hand.
#include <gtest/gtest.h>

#include "loadgen/stats.h"

namespace ferrum::loadgen {
namespace {

TEST(Percentile, InterpolatesBetweenClosestRanks) {
  const std::vector<double> v = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(percentile(v, 50), 2.5);   // rank 1.5
  EXPECT_DOUBLE_EQ(percentile(v, 90), 3.7);   // rank 2.7
  EXPECT_DOUBLE_EQ(percentile(v, 99), 3.97);  // rank 2.97
  EXPECT_DOUBLE_EQ(percentile(v, 100), 4);
}

TEST(Percentile, TenValues) {
  const std::vector<double> v = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
  EXPECT_DOUBLE_EQ(percentile(v, 50), 55);    // rank 4.5
  EXPECT_DOUBLE_EQ(percentile(v, 90), 91);    // rank 8.1
  EXPECT_NEAR(percentile(v, 99), 99.1, 1e-9); // rank 8.91
}

TEST(Percentile, EdgeCases) {
  EXPECT_EQ(percentile({}, 50), 0);
  EXPECT_EQ(percentile({7}, 1), 7);
  EXPECT_EQ(percentile({7}, 99), 7);
}

TEST(Distribution, SortsAndSummarizes) {
  Distribution d = distribution({4, 1, 3, 2});
  EXPECT_EQ(d.count, 4u);
  EXPECT_DOUBLE_EQ(d.mean, 2.5);
  EXPECT_NEAR(d.stddev, 1.1180339887498949, 1e-12);  // sqrt((2.25 + .25 + .25 + 2.25) / 4)
  EXPECT_DOUBLE_EQ(d.min, 1);
  EXPECT_DOUBLE_EQ(d.max, 4);
  EXPECT_DOUBLE_EQ(d.p50, 2.5);
  EXPECT_DOUBLE_EQ(d.p90, 3.7);
}

TEST(Distribution, EmptyIsAllZero) {
  Distribution d = distribution({});
  EXPECT_EQ(d.count, 0u);
  EXPECT_EQ(d.mean, 0);
  EXPECT_EQ(d.p99, 0);
}

std::vector<RequestResult> sample_results() {
  RequestResult a;  // 3 tokens: first at 100 ms, then two 200 ms gaps, ends at 500 ms
  a.ok = true;
  a.ttft = 0.1;
  a.latency = 0.5;
  a.itl = {0.2, 0.2};
  a.output_tokens = 3;
  a.prompt_tokens = 16;
  RequestResult b;  // 1 token, no usage from the server: no TPOT, no ITL
  b.ok = true;
  b.ttft = 0.3;
  b.latency = 0.3;
  b.output_tokens = 1;
  RequestResult f;
  f.error = "HTTP 404: no such model";
  return {a, b, f, f};
}

TEST(Aggregate, CountsTokensAndRates) {
  RunMetrics m = aggregate(sample_results(), 2.0, 16);
  EXPECT_EQ(m.completed, 2);
  EXPECT_EQ(m.failed, 2);
  EXPECT_EQ(m.total_input_tokens, 32);  // 16 from usage + 16 assumed for b
  EXPECT_EQ(m.total_output_tokens, 4);
  EXPECT_DOUBLE_EQ(m.req_s, 1.0);
  EXPECT_DOUBLE_EQ(m.in_tok_s, 16.0);
  EXPECT_DOUBLE_EQ(m.out_tok_s, 2.0);
  EXPECT_DOUBLE_EQ(m.total_tok_s, 18.0);
  ASSERT_EQ(m.errors.size(), 1u);
  EXPECT_EQ(m.errors.at("HTTP 404: no such model"), 2);
}

TEST(Aggregate, LatencyMetricsInMilliseconds) {
  RunMetrics m = aggregate(sample_results(), 2.0, 16);
  EXPECT_EQ(m.ttft_ms.count, 2u);
  EXPECT_NEAR(m.ttft_ms.mean, 200, 1e-9);  // (100 + 300) / 2
  EXPECT_NEAR(m.ttft_ms.p99, 298, 1e-9);   // 100 + 0.99 * 200
  ASSERT_EQ(m.tpot_ms.count, 1u);          // only a has more than one token
  EXPECT_NEAR(m.tpot_ms.mean, 200, 1e-9);  // (500 - 100) / (3 - 1)
  EXPECT_EQ(m.itl_ms.count, 2u);
  EXPECT_NEAR(m.itl_ms.p50, 200, 1e-9);
  EXPECT_NEAR(m.e2el_ms.mean, 400, 1e-9);  // (500 + 300) / 2
}

TEST(Aggregate, UnknownPromptLengthsCountNothing) {
  RunMetrics m = aggregate(sample_results(), 2.0, -1);
  EXPECT_EQ(m.total_input_tokens, 16);
}

TEST(Aggregate, NothingCompleted) {
  RunMetrics m = aggregate({RequestResult{}}, 0.0, 8);
  EXPECT_EQ(m.completed, 0);
  EXPECT_EQ(m.failed, 1);
  EXPECT_EQ(m.req_s, 0);
  EXPECT_EQ(m.ttft_ms.p50, 0);
  EXPECT_EQ(m.errors.at("unknown error"), 1);
}

}  // namespace
}  // namespace ferrum::loadgen
