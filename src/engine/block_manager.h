// Paged KV blocks: reference counts, an O(1) LRU queue of free blocks, and a prefix cache that
// maps a chained hash of each full block's tokens to the block that holds their K/V.
//
// Prefix-cache identity is exact, not probabilistic: a hit requires the 64-bit chain hash to
// match, the block's own tokens to be equal, and its parent to be exactly the block matched
// just before (each cached block records the cache generation id of its parent). The hash is
// only an index.
#pragma once
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/sequence.h"

namespace ferrum {

// Chained hash of one full block: hash(parent_hash, tokens).
uint64_t hash_block_tokens(uint64_t parent_hash, std::span<const int32_t> tokens);

class BlockManager {
 public:
  BlockManager(int32_t num_blocks, int32_t block_size, bool enable_prefix_caching);

  int32_t num_blocks() const { return static_cast<int32_t>(blocks_.size()); }
  int32_t block_size() const { return block_size_; }
  int32_t num_free_blocks() const { return num_free_; }  // ref count 0, cached ones included
  int32_t num_used_blocks() const { return num_blocks() - num_free_; }
  int32_t num_cached_blocks() const { return static_cast<int32_t>(cache_.size()); }
  int32_t blocks_for_tokens(int32_t num_tokens) const {
    return (num_tokens + block_size_ - 1) / block_size_;
  }

  // The longest run of cached blocks holding a prefix of seq's tokens, never covering its
  // last token (which must be computed to get logits). Takes no references.
  std::vector<int32_t> find_cached_prefix(Sequence& seq);

  // Whether the table of `seq`, after taking `hits`, can grow to hold num_new_tokens more
  // tokens past its computed ones.
  bool can_allocate(const Sequence& seq, int32_t num_new_tokens,
                    std::span<const int32_t> hits = {}) const;
  // Appends `hits` (references taken) to an empty table; marks their tokens computed.
  void take_cached(Sequence& seq, std::span<const int32_t> hits);
  // Shares the first num_blocks blocks of parent (full, computed prompt blocks) with child.
  void share_prefix(Sequence& child, const Sequence& parent, int32_t num_blocks);
  // Grows the table to hold num_new_tokens past the computed ones. Requires can_allocate.
  void allocate(Sequence& seq, int32_t num_new_tokens);
  // Drops all of seq's references; blocks reaching zero go to the free queue.
  void free(Sequence& seq);
  // Speculative decoding's rollback: frees the blocks past those holding seq's first
  // num_tokens positions (slots reserved for proposed tokens that were rejected). Those
  // blocks hold no cached content: only computed, known tokens are ever cached.
  void truncate(Sequence& seq, int32_t num_tokens);
  // Every block free and uncached again (after an internal error dropped all sequences).
  void reset();
  // Registers seq's full, computed blocks in the prefix cache (after a step ran them).
  void cache_full_blocks(Sequence& seq);

  int32_t ref_count(int32_t block) const { return blocks_[block].ref_count; }
  bool is_cached(int32_t block) const { return blocks_[block].cache_id != 0; }
  // Free-queue order, front (next evicted) first: for tests.
  std::vector<int32_t> free_queue_order() const;

  uint64_t prefix_queries() const { return prefix_queries_; }  // in tokens
  uint64_t prefix_hits() const { return prefix_hits_; }        // in tokens

 private:
  struct Block {
    int32_t ref_count = 0;
    int32_t prev = -1, next = -1;  // free-queue links
    bool in_free_queue = false;
    uint64_t hash = 0;
    uint64_t cache_id = 0;         // 0: not in the prefix cache
    uint64_t parent_cache_id = 0;  // cache_id of the block before it (0 for the first)
    std::vector<int32_t> tokens;   // its tokens, compared on every hit
  };

  void ensure_hashes(Sequence& seq, int32_t num_full_blocks) const;
  void push_front(int32_t b);
  void push_back(int32_t b);
  void unlink(int32_t b);
  int32_t pop_free();          // evicts the block from the prefix cache if it was cached
  void uncache(int32_t b);
  void ref(int32_t b);

  int32_t block_size_;
  bool prefix_caching_;
  std::vector<Block> blocks_;
  int32_t head_ = -1, tail_ = -1, num_free_ = 0;
  std::unordered_map<uint64_t, int32_t> cache_;  // chain hash -> block
  uint64_t next_cache_id_ = 1;
  uint64_t prefix_queries_ = 0, prefix_hits_ = 0;
};

}  // namespace ferrum
