#include <gtest/gtest.h>

#include <numeric>

#include "engine/block_manager.h"

namespace ferrum {
namespace {

Sequence make_seq(std::vector<int32_t> tokens) {
  Sequence s;
  s.prompt_len = static_cast<int32_t>(tokens.size());
  s.tokens = std::move(tokens);
  return s;
}

std::vector<int32_t> iota_tokens(int32_t n, int32_t start = 100) {
  std::vector<int32_t> t(n);
  std::iota(t.begin(), t.end(), start);
  return t;
}

// Admits and "computes" a whole sequence, as the scheduler + a step would.
void admit_all(BlockManager& bm, Sequence& s) {
  auto hits = bm.find_cached_prefix(s);
  ASSERT_TRUE(bm.can_allocate(s, s.num_tokens() - static_cast<int32_t>(hits.size()) * bm.block_size(), hits));
  bm.take_cached(s, hits);
  bm.allocate(s, s.num_tokens() - s.num_computed_tokens);
  s.num_computed_tokens = s.num_tokens();
  bm.cache_full_blocks(s);
}

TEST(BlockHash, ChainsOverParentAndTokens) {
  std::vector<int32_t> a{1, 2, 3, 4}, b{1, 2, 3, 5};
  EXPECT_EQ(hash_block_tokens(0, a), hash_block_tokens(0, a));
  EXPECT_NE(hash_block_tokens(0, a), hash_block_tokens(0, b));
  EXPECT_NE(hash_block_tokens(0, a), hash_block_tokens(hash_block_tokens(0, b), a));
}

TEST(BlockManager, AllocatesByBlockAndFreesWithRefCounts) {
  BlockManager bm(8, 4, true);
  Sequence s = make_seq(iota_tokens(9));
  EXPECT_TRUE(bm.can_allocate(s, 9));
  bm.allocate(s, 9);
  EXPECT_EQ(s.block_table.size(), 3u);  // ceil(9 / 4)
  EXPECT_EQ(bm.num_free_blocks(), 5);
  for (int32_t b : s.block_table) EXPECT_EQ(bm.ref_count(b), 1);
  EXPECT_FALSE(bm.can_allocate(make_seq(iota_tokens(24)), 24));
  bm.free(s);
  EXPECT_EQ(bm.num_free_blocks(), 8);
  EXPECT_TRUE(s.block_table.empty());
}

TEST(BlockManager, PrefixHitSharesBlocksAndKeepsLastTokenComputed) {
  BlockManager bm(16, 4, true);
  Sequence a = make_seq(iota_tokens(12));  // exactly 3 full blocks
  admit_all(bm, a);
  EXPECT_EQ(bm.num_cached_blocks(), 3);

  Sequence b = make_seq(iota_tokens(12));
  auto hits = bm.find_cached_prefix(b);
  ASSERT_EQ(hits.size(), 2u);  // the block holding the last token is recomputed
  EXPECT_EQ(hits[0], a.block_table[0]);
  EXPECT_EQ(hits[1], a.block_table[1]);
  bm.take_cached(b, hits);
  EXPECT_EQ(b.num_computed_tokens, 8);
  EXPECT_EQ(bm.ref_count(a.block_table[0]), 2);

  Sequence c = make_seq(iota_tokens(13));  // one more token: all 3 blocks reusable
  EXPECT_EQ(bm.find_cached_prefix(c).size(), 3u);
  EXPECT_EQ(bm.prefix_hits(), 8u);
  EXPECT_EQ(bm.prefix_queries(), 24u);  // a and b, 12 tokens each
}

TEST(BlockManager, DivergingSuffixStopsTheChain) {
  BlockManager bm(16, 4, true);
  Sequence a = make_seq(iota_tokens(12));
  admit_all(bm, a);
  auto t = iota_tokens(13);
  t[5] = 7;  // differs inside block 1
  Sequence b = make_seq(t);
  EXPECT_EQ(bm.find_cached_prefix(b).size(), 1u);
  t = iota_tokens(13);
  t[0] = 7;  // block 0 differs: later identical blocks must not match (chained hash)
  Sequence c = make_seq(t);
  EXPECT_EQ(bm.find_cached_prefix(c).size(), 0u);
}

TEST(BlockManager, HashMatchAloneIsNotIdentity) {
  BlockManager bm(8, 4, true);
  Sequence a = make_seq(iota_tokens(8));
  admit_all(bm, a);
  // Forge a sequence whose stored hash claims block 0 of `a` but whose tokens differ.
  Sequence b = make_seq({9, 9, 9, 9, 9});
  b.block_hashes.push_back(a.block_hashes[0]);
  EXPECT_TRUE(bm.find_cached_prefix(b).empty());
}

TEST(BlockManager, FreedCachedBlocksAreReusedThenEvictedInLruOrder) {
  BlockManager bm(4, 4, true);
  Sequence a = make_seq(iota_tokens(8, 100));
  admit_all(bm, a);
  Sequence b = make_seq(iota_tokens(8, 200));
  admit_all(bm, b);
  EXPECT_EQ(bm.num_free_blocks(), 0);
  bm.free(a);  // a's blocks become free but stay cached
  bm.free(b);
  EXPECT_EQ(bm.num_free_blocks(), 4);
  EXPECT_EQ(bm.num_cached_blocks(), 4);

  // A hit on a's prefix revives its first block out of the free queue (ref count 1).
  Sequence a2 = make_seq(iota_tokens(9, 100));
  auto hits = bm.find_cached_prefix(a2);
  ASSERT_EQ(hits.size(), 2u);
  bm.take_cached(a2, hits);
  EXPECT_EQ(bm.num_free_blocks(), 2);
  EXPECT_EQ(bm.ref_count(hits[0]), 1);

  // Allocating two new blocks must evict b's (the only free ones), last block first.
  Sequence c = make_seq(iota_tokens(8, 300));
  ASSERT_TRUE(bm.can_allocate(c, 8));
  bm.allocate(c, 8);
  EXPECT_EQ(bm.num_free_blocks(), 0);
  Sequence b2 = make_seq(iota_tokens(9, 200));
  EXPECT_TRUE(bm.find_cached_prefix(b2).empty());  // evicted
  Sequence a3 = make_seq(iota_tokens(9, 100));
  EXPECT_EQ(bm.find_cached_prefix(a3).size(), 2u);  // still cached (in use)
}

TEST(BlockManager, LruEvictsOldestFreedFirst) {
  BlockManager bm(6, 2, true);
  Sequence a = make_seq(iota_tokens(4, 10)), b = make_seq(iota_tokens(4, 20)), c = make_seq(iota_tokens(4, 30));
  admit_all(bm, a);
  admit_all(bm, b);
  admit_all(bm, c);
  const auto a_blocks = a.block_table, b_blocks = b.block_table, c_blocks = c.block_table;
  bm.free(b);
  bm.free(a);
  bm.free(c);
  // Freed order b, a, c; each sequence's blocks in reverse.
  std::vector<int32_t> expected{b_blocks[1], b_blocks[0], a_blocks[1], a_blocks[0], c_blocks[1], c_blocks[0]};
  EXPECT_EQ(bm.free_queue_order(), expected);
  // Touching a's first block removes it from the middle of the queue in O(1).
  Sequence a2 = make_seq(iota_tokens(5, 10));
  auto hits = bm.find_cached_prefix(a2);
  ASSERT_EQ(hits.size(), 2u);
  bm.take_cached(a2, hits);
  expected = {b_blocks[1], b_blocks[0], c_blocks[1], c_blocks[0]};
  EXPECT_EQ(bm.free_queue_order(), expected);
}

TEST(BlockManager, UncachedBlocksAreReusedBeforeCachedOnes) {
  BlockManager bm(4, 4, true);
  Sequence a = make_seq(iota_tokens(6));  // one full cached block + one partial
  admit_all(bm, a);
  const int32_t full = a.block_table[0], partial = a.block_table[1];
  bm.free(a);
  auto order = bm.free_queue_order();
  EXPECT_EQ(order.front(), partial);
  EXPECT_EQ(order.back(), full);
}

TEST(BlockManager, CanAllocateCountsRevivedHits) {
  BlockManager bm(3, 4, true);
  Sequence a = make_seq(iota_tokens(8));
  admit_all(bm, a);
  bm.free(a);  // 3 free, 2 of them cached
  Sequence b = make_seq(iota_tokens(16));
  auto hits = bm.find_cached_prefix(b);
  ASSERT_EQ(hits.size(), 2u);
  // 16 tokens need 4 blocks: 2 hits + 2 new, but only 1 block is free besides the hits.
  EXPECT_FALSE(bm.can_allocate(b, 8, hits));
  EXPECT_TRUE(bm.can_allocate(b, 4, hits));
}

TEST(BlockManager, PrefixCachingOffFindsNothing) {
  BlockManager bm(8, 4, false);
  Sequence a = make_seq(iota_tokens(12));
  admit_all(bm, a);
  Sequence b = make_seq(iota_tokens(12));
  EXPECT_TRUE(bm.find_cached_prefix(b).empty());
  EXPECT_EQ(bm.num_cached_blocks(), 0);
}

TEST(BlockManager, SharePrefixTakesReferences) {
  BlockManager bm(8, 4, true);
  Sequence parent = make_seq(iota_tokens(10));
  admit_all(bm, parent);
  Sequence child = make_seq(iota_tokens(10));
  bm.share_prefix(child, parent, 2);
  EXPECT_EQ(child.num_computed_tokens, 8);
  EXPECT_EQ(bm.ref_count(parent.block_table[0]), 2);
  bm.free(parent);
  EXPECT_EQ(bm.ref_count(child.block_table[1]), 1);
  EXPECT_EQ(bm.num_used_blocks(), 2);
  bm.free(child);
  EXPECT_EQ(bm.num_used_blocks(), 0);
}

TEST(BlockManager, DuplicateContentComputedTwiceIsCachedOnce) {
  BlockManager bm(8, 4, true);
  Sequence a = make_seq(iota_tokens(9)), b = make_seq(iota_tokens(9));
  // Both computed in the same step (no hit possible yet).
  bm.allocate(a, 9);
  bm.allocate(b, 9);
  a.num_computed_tokens = b.num_computed_tokens = 9;
  bm.cache_full_blocks(a);
  bm.cache_full_blocks(b);
  EXPECT_EQ(bm.num_cached_blocks(), 2);
  Sequence c = make_seq(iota_tokens(9));
  auto hits = bm.find_cached_prefix(c);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0], a.block_table[0]);
}

}  // namespace
}  // namespace ferrum
