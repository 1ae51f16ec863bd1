#include <gtest/gtest.h>

#include <memory>
#include <numeric>

#include "engine/scheduler.h"

namespace ferrum {
namespace {

class SchedulerTest : public ::testing::Test {
 protected:
  Sequence* add(int32_t prompt_len, int32_t max_tokens = 8, int32_t first_token = 100) {
    auto s = std::make_unique<Sequence>();
    s->id = seqs_.size();
    s->tokens.resize(prompt_len);
    std::iota(s->tokens.begin(), s->tokens.end(), first_token);
    s->prompt_len = prompt_len;
    s->max_kv_tokens = prompt_len + max_tokens - 1;
    seqs_.push_back(std::move(s));
    sched_->add(seqs_.back().get());
    return seqs_.back().get();
  }
  void make(int32_t num_blocks, int32_t block_size, int32_t max_seqs, int32_t budget, bool caching = true) {
    blocks_ = std::make_unique<BlockManager>(num_blocks, block_size, caching);
    sched_ = std::make_unique<Scheduler>(SchedulerConfig{max_seqs, budget}, *blocks_);
  }
  // Runs the step: computed tokens advance; a sequence that computed its last token "samples".
  void run(const SchedulerOutput& out) {
    sched_->on_step_done(out);
    for (const auto& s : out.scheduled)
      if (s.seq->num_computed_tokens == s.seq->num_tokens()) s.seq->tokens.push_back(7);
  }
  int32_t scheduled_tokens(const SchedulerOutput& out, const Sequence* seq) {
    for (const auto& s : out.scheduled)
      if (s.seq == seq) return s.num_new_tokens;
    return 0;
  }

  std::unique_ptr<BlockManager> blocks_;
  std::unique_ptr<Scheduler> sched_;
  std::vector<std::unique_ptr<Sequence>> seqs_;
};

TEST_F(SchedulerTest, ChunksPrefillWithinTheTokenBudget) {
  make(64, 4, 8, 10);
  Sequence* a = add(25);
  auto out = sched_->schedule();
  EXPECT_EQ(scheduled_tokens(out, a), 10);
  EXPECT_EQ(out.num_tokens, 10);
  run(out);
  out = sched_->schedule();
  EXPECT_EQ(scheduled_tokens(out, a), 10);
  run(out);
  out = sched_->schedule();
  EXPECT_EQ(scheduled_tokens(out, a), 5);  // the rest; now it samples
  run(out);
  EXPECT_EQ(a->num_tokens(), 26);
  out = sched_->schedule();
  EXPECT_EQ(scheduled_tokens(out, a), 1);  // a decode
}

TEST_F(SchedulerTest, RunningDecodesComeBeforeNewPrefills) {
  make(64, 4, 8, 6);
  Sequence* a = add(3);
  Sequence* b = add(3);
  run(sched_->schedule());  // a: 3, b: 3 (budget 6)
  Sequence* c = add(20);
  auto out = sched_->schedule();
  ASSERT_EQ(out.scheduled.size(), 3u);
  EXPECT_EQ(out.scheduled[0].seq, a);
  EXPECT_EQ(out.scheduled[1].seq, b);
  EXPECT_EQ(scheduled_tokens(out, a), 1);
  EXPECT_EQ(scheduled_tokens(out, b), 1);
  EXPECT_EQ(scheduled_tokens(out, c), 4);  // what is left of the budget
  EXPECT_EQ(out.num_tokens, 6);
}

TEST_F(SchedulerTest, RespectsMaxNumSeqs) {
  make(64, 4, 2, 100);
  add(3);
  add(3);
  Sequence* c = add(3);
  auto out = sched_->schedule();
  EXPECT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(scheduled_tokens(out, c), 0);
  EXPECT_EQ(sched_->waiting().front(), c);
}

TEST_F(SchedulerTest, PreemptsTheNewestAndAdmitsNothingThatStep) {
  make(6, 4, 8, 100);  // 24 token slots
  Sequence* a = add(8, 12);
  Sequence* b = add(7, 12);
  Sequence* c = add(7, 12);
  run(sched_->schedule());  // 2 + 2 + 2 blocks: pool full
  EXPECT_EQ(blocks_->num_free_blocks(), 0);
  Sequence* d = add(2);
  // a (9 tokens) needs a 3rd block: the newest running (c) is preempted; d is not admitted.
  auto out = sched_->schedule();
  ASSERT_EQ(out.preempted.size(), 1u);
  EXPECT_EQ(out.preempted[0], c);
  EXPECT_EQ(scheduled_tokens(out, a), 1);
  EXPECT_EQ(scheduled_tokens(out, b), 1);
  EXPECT_EQ(scheduled_tokens(out, d), 0);
  EXPECT_EQ(c->status, SequenceStatus::Waiting);
  EXPECT_EQ(c->num_computed_tokens, 0);
  EXPECT_TRUE(c->block_table.empty());
  EXPECT_EQ(sched_->waiting().front(), c);  // back at the front, ahead of d
  EXPECT_EQ(sched_->num_preemptions(), 1u);
}

TEST_F(SchedulerTest, PreemptsItselfWhenItIsTheNewest) {
  make(4, 4, 8, 100);
  Sequence* a = add(7, 9);
  Sequence* b = add(8, 9);
  run(sched_->schedule());
  // b (the newest) needs a 3rd block and none is free: it preempts itself, a goes on.
  auto out = sched_->schedule();
  EXPECT_EQ(scheduled_tokens(out, a), 1);
  EXPECT_EQ(scheduled_tokens(out, b), 0);
  EXPECT_EQ(out.preempted, std::vector<Sequence*>{b});
  EXPECT_EQ(sched_->running(), std::vector<Sequence*>{a});
}

TEST_F(SchedulerTest, RequestLargerThanThePoolFailsWhileOthersRun) {
  make(4, 4, 8, 100);  // 16 tokens in all
  Sequence* big = add(10, 8);   // needs 17 KV tokens
  Sequence* ok = add(4, 4);
  auto out = sched_->schedule();
  ASSERT_EQ(out.failed.size(), 1u);
  EXPECT_EQ(out.failed[0].first, big);
  EXPECT_NE(out.failed[0].second.find("whole KV cache"), std::string::npos);
  EXPECT_EQ(scheduled_tokens(out, ok), 4);
  EXPECT_EQ(big->status, SequenceStatus::Finished);
}

TEST_F(SchedulerTest, PoolTooSmallForAllStillCompletesEveryone) {
  make(5, 4, 8, 16);
  std::vector<Sequence*> seqs;
  for (int i = 0; i < 6; ++i) seqs.push_back(add(5 + i, 6, 100 * i));
  int steps = 0;
  while (sched_->has_work()) {
    auto out = sched_->schedule();
    ASSERT_TRUE(!out.scheduled.empty() || !out.failed.empty()) << "empty step";
    ASSERT_TRUE(out.failed.empty());
    run(out);
    for (Sequence* s : seqs)
      if (s->status == SequenceStatus::Running && s->num_output_tokens() >= 6) sched_->remove(s);
    ASSERT_LT(++steps, 1000);
  }
  for (Sequence* s : seqs) EXPECT_EQ(s->num_output_tokens(), 6);
  EXPECT_GT(sched_->num_preemptions(), 0u);
  EXPECT_EQ(blocks_->num_used_blocks(), 0);
}

TEST_F(SchedulerTest, NeverReturnsAnEmptyStepWhileWorkRemains) {
  make(4, 4, 8, 100);
  // Blocks held outside the scheduler (as if leaked): the waiting request fits the pool in
  // principle but nothing can run. It must fail rather than leave the step empty forever.
  Sequence holder;
  holder.tokens.assign(12, 1);
  blocks_->allocate(holder, 12);
  Sequence* a = add(8);
  auto out = sched_->schedule();
  EXPECT_TRUE(out.scheduled.empty());
  ASSERT_EQ(out.failed.size(), 1u);
  EXPECT_EQ(out.failed[0].first, a);
  EXPECT_NE(out.failed[0].second.find("cannot be scheduled"), std::string::npos);
  EXPECT_FALSE(sched_->has_work());
}

TEST_F(SchedulerTest, PrefixHitSkipsComputedTokens) {
  make(32, 4, 8, 100);
  Sequence* a = add(10);
  run(sched_->schedule());
  sched_->remove(a);  // its 2 full blocks stay cached
  Sequence* b = add(10);
  auto out = sched_->schedule();
  EXPECT_EQ(b->num_computed_tokens, 8);
  EXPECT_EQ(scheduled_tokens(out, b), 2);
}

TEST_F(SchedulerTest, ForkedCompletionWaitsForAndSharesThePrompt) {
  make(32, 4, 8, 6, /*caching=*/false);
  Sequence* parent = add(10);
  Sequence* child = add(10);
  child->fork_parent = parent;
  auto out = sched_->schedule();  // parent's first chunk only; child waits
  EXPECT_EQ(scheduled_tokens(out, parent), 6);
  EXPECT_EQ(scheduled_tokens(out, child), 0);
  run(out);
  out = sched_->schedule();
  EXPECT_EQ(scheduled_tokens(out, parent), 4);
  EXPECT_EQ(scheduled_tokens(out, child), 0);
  run(out);
  out = sched_->schedule();  // the parent decodes; the child shares 2 full blocks
  EXPECT_EQ(scheduled_tokens(out, parent), 1);
  EXPECT_EQ(scheduled_tokens(out, child), 2);
  EXPECT_EQ(child->block_table[0], parent->block_table[0]);
  EXPECT_EQ(child->block_table[1], parent->block_table[1]);
  EXPECT_NE(child->block_table[2], parent->block_table[2]);
  EXPECT_EQ(blocks_->ref_count(parent->block_table[0]), 2);
}

}  // namespace
}  // namespace ferrum
