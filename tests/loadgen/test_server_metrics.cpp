// Reading speculative decoding's counters from a server's /metrics text (ferrum's and vLLM's).
#include <gtest/gtest.h>

#include "loadgen/server_metrics.h"

namespace ferrum::loadgen {
namespace {

TEST(ServerMetrics, ReadsFerrumsSpecDecodeCounters) {
  const auto c = parse_spec_decode_counters(
      "# HELP ferrum_num_preemptions_total Requests preempted.\n"
      "ferrum_num_preemptions_total 3\n"
      "ferrum_spec_decode_num_drafts_total 10\n"
      "ferrum_spec_decode_num_draft_tokens_total 40\n"
      "ferrum_spec_decode_num_accepted_tokens_total 25\n"
      "ferrum_spec_decode_acceptance_rate 0.625\n");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->drafts, 10);
  EXPECT_EQ(c->draft_tokens, 40);
  EXPECT_EQ(c->accepted_tokens, 25);
}

TEST(ServerMetrics, AddsVllmsLabelledSeries) {
  const auto c = parse_spec_decode_counters(
      "vllm:spec_decode_num_drafts_total{engine=\"0\",model_name=\"m\"} 4.0\n"
      "vllm:spec_decode_num_drafts_total{engine=\"1\",model_name=\"m\"} 6.0\n"
      "vllm:spec_decode_num_draft_tokens_total{engine=\"0\",model_name=\"m\"} 30.0\n"
      "vllm:spec_decode_num_accepted_tokens_total{engine=\"0\",model_name=\"m\"} 12.0\n");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->drafts, 10);
  EXPECT_EQ(c->draft_tokens, 30);
  EXPECT_EQ(c->accepted_tokens, 12);
}

TEST(ServerMetrics, NoCountersIsNone) {
  EXPECT_FALSE(parse_spec_decode_counters("ferrum_num_preemptions_total 3\nnum_drafts 4\n").has_value());
  EXPECT_FALSE(parse_spec_decode_counters("").has_value());
}

}  // namespace
}  // namespace ferrum::loadgen
