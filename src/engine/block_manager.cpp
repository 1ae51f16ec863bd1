#include "engine/block_manager.h"

#include <algorithm>

#include "core/error.h"

#define XXH_INLINE_ALL  // header-only: no link dependency
#include <xxhash.h>

namespace ferrum {

uint64_t hash_block_tokens(uint64_t parent_hash, std::span<const int32_t> tokens) {
  return XXH3_64bits_withSeed(tokens.data(), tokens.size_bytes(), parent_hash);
}

BlockManager::BlockManager(int32_t num_blocks, int32_t block_size, bool enable_prefix_caching)
    : block_size_(block_size), prefix_caching_(enable_prefix_caching), blocks_(num_blocks) {
  FERRUM_CHECK(num_blocks > 0 && block_size > 0, "KV pool needs at least one block (got {} of {})",
               num_blocks, block_size);
  reset();
}

void BlockManager::reset() {
  const size_t n = blocks_.size();
  blocks_.assign(n, Block{});
  cache_.clear();
  head_ = tail_ = -1;
  num_free_ = 0;
  for (int32_t b = 0; b < static_cast<int32_t>(n); ++b) push_back(b);
}

// ---- free queue (intrusive doubly linked list, O(1) everywhere) ----

void BlockManager::push_back(int32_t b) {
  Block& blk = blocks_[b];
  blk.prev = tail_;
  blk.next = -1;
  if (tail_ >= 0) blocks_[tail_].next = b; else head_ = b;
  tail_ = b;
  blk.in_free_queue = true;
  ++num_free_;
}

void BlockManager::push_front(int32_t b) {
  Block& blk = blocks_[b];
  blk.prev = -1;
  blk.next = head_;
  if (head_ >= 0) blocks_[head_].prev = b; else tail_ = b;
  head_ = b;
  blk.in_free_queue = true;
  ++num_free_;
}

void BlockManager::unlink(int32_t b) {
  Block& blk = blocks_[b];
  if (blk.prev >= 0) blocks_[blk.prev].next = blk.next; else head_ = blk.next;
  if (blk.next >= 0) blocks_[blk.next].prev = blk.prev; else tail_ = blk.prev;
  blk.prev = blk.next = -1;
  blk.in_free_queue = false;
  --num_free_;
}

int32_t BlockManager::pop_free() {
  FERRUM_CHECK(head_ >= 0, "KV block pool exhausted (internal error: allocate without room)");
  int32_t b = head_;
  unlink(b);
  if (blocks_[b].cache_id != 0) uncache(b);  // evict the least recently used cached block
  return b;
}

void BlockManager::uncache(int32_t b) {
  Block& blk = blocks_[b];
  auto it = cache_.find(blk.hash);
  if (it != cache_.end() && it->second == b) cache_.erase(it);
  blk.cache_id = 0;
  blk.parent_cache_id = 0;
  blk.hash = 0;
  blk.tokens.clear();
}

void BlockManager::ref(int32_t b) {
  Block& blk = blocks_[b];
  if (blk.in_free_queue) unlink(b);
  ++blk.ref_count;
}

std::vector<int32_t> BlockManager::free_queue_order() const {
  std::vector<int32_t> order;
  for (int32_t b = head_; b >= 0; b = blocks_[b].next) order.push_back(b);
  return order;
}

// ---- sequences ----

void BlockManager::ensure_hashes(Sequence& seq, int32_t num_full_blocks) const {
  auto& hashes = seq.block_hashes;
  for (int32_t i = static_cast<int32_t>(hashes.size()); i < num_full_blocks; ++i) {
    uint64_t parent = i == 0 ? 0 : hashes[i - 1];
    std::span<const int32_t> toks(seq.tokens.data() + static_cast<size_t>(i) * block_size_,
                                  block_size_);
    hashes.push_back(hash_block_tokens(parent, toks));
  }
}

std::vector<int32_t> BlockManager::find_cached_prefix(Sequence& seq) {
  std::vector<int32_t> hits;
  if (!prefix_caching_ || seq.num_tokens() == 0) return hits;
  const int32_t max_blocks = (seq.num_tokens() - 1) / block_size_;  // keep the last token
  ensure_hashes(seq, max_blocks);
  uint64_t parent_id = 0;
  for (int32_t i = 0; i < max_blocks; ++i) {
    auto it = cache_.find(seq.block_hashes[i]);
    if (it == cache_.end()) break;
    const Block& blk = blocks_[it->second];
    const int32_t* toks = seq.tokens.data() + static_cast<size_t>(i) * block_size_;
    if (blk.parent_cache_id != parent_id || !std::equal(blk.tokens.begin(), blk.tokens.end(), toks))
      break;  // a hash match alone is not identity
    hits.push_back(it->second);
    parent_id = blk.cache_id;
  }
  return hits;
}

bool BlockManager::can_allocate(const Sequence& seq, int32_t num_new_tokens,
                                std::span<const int32_t> hits) const {
  const int32_t table = static_cast<int32_t>(seq.block_table.size() + hits.size());
  const int32_t computed = hits.empty() ? seq.num_computed_tokens
                                        : static_cast<int32_t>(hits.size()) * block_size_;
  const int32_t needed = blocks_for_tokens(computed + num_new_tokens) - table;
  int32_t revived = 0;  // free cached hits that leave the free queue when taken
  for (int32_t b : hits) revived += blocks_[b].ref_count == 0 ? 1 : 0;
  return needed <= num_free_ - revived;
}

void BlockManager::take_cached(Sequence& seq, std::span<const int32_t> hits) {
  FERRUM_CHECK(seq.block_table.empty(), "take_cached on a sequence that already holds blocks");
  for (int32_t b : hits) {
    ref(b);
    seq.block_table.push_back(b);
  }
  seq.num_computed_tokens = static_cast<int32_t>(hits.size()) * block_size_;
  seq.num_cache_checked_blocks = static_cast<int32_t>(hits.size());
  if (prefix_caching_) {
    prefix_queries_ += seq.num_tokens();
    prefix_hits_ += seq.num_computed_tokens;
  }
}

void BlockManager::share_prefix(Sequence& child, const Sequence& parent, int32_t num_blocks) {
  FERRUM_CHECK(child.block_table.empty() && num_blocks <= (int32_t)parent.block_table.size() &&
                   num_blocks * block_size_ <= parent.num_computed_tokens,
               "share_prefix: invalid fork of sequence {}", parent.id);
  for (int32_t i = 0; i < num_blocks; ++i) {
    ref(parent.block_table[i]);
    child.block_table.push_back(parent.block_table[i]);
  }
  child.num_computed_tokens = num_blocks * block_size_;
  child.num_cache_checked_blocks = 0;
}

void BlockManager::allocate(Sequence& seq, int32_t num_new_tokens) {
  const int32_t needed = blocks_for_tokens(seq.num_computed_tokens + num_new_tokens) -
                         static_cast<int32_t>(seq.block_table.size());
  for (int32_t i = 0; i < needed; ++i) {
    int32_t b = pop_free();
    blocks_[b].ref_count = 1;
    seq.block_table.push_back(b);
  }
}

void BlockManager::free(Sequence& seq) {
  // Reverse order: a sequence's last blocks are the least likely to be shared, so they are
  // evicted first. Blocks holding no cached content go to the front (reused before any cached).
  for (auto it = seq.block_table.rbegin(); it != seq.block_table.rend(); ++it) {
    Block& blk = blocks_[*it];
    FERRUM_CHECK(blk.ref_count > 0, "double free of KV block {}", *it);
    if (--blk.ref_count == 0) {
      if (blk.cache_id != 0) push_back(*it); else push_front(*it);
    }
  }
  seq.block_table.clear();
  seq.num_computed_tokens = 0;
  seq.num_cache_checked_blocks = 0;
  seq.draft_num_computed = 0;
}

void BlockManager::truncate(Sequence& seq, int32_t num_tokens) {
  const int32_t keep = blocks_for_tokens(num_tokens);
  while (static_cast<int32_t>(seq.block_table.size()) > keep) {
    const int32_t b = seq.block_table.back();
    Block& blk = blocks_[b];
    FERRUM_CHECK(blk.ref_count == 1 && blk.cache_id == 0,
                 "truncate: KV block {} past the computed tokens is shared or cached", b);
    blk.ref_count = 0;
    push_front(b);
    seq.block_table.pop_back();
  }
  seq.num_cache_checked_blocks = std::min(seq.num_cache_checked_blocks, keep);
}

void BlockManager::cache_full_blocks(Sequence& seq) {
  if (!prefix_caching_) return;
  // Computed and known: a token still on its way (overlapped steps) has K/V but no id here yet.
  const int32_t known = std::min(seq.num_computed_tokens, seq.num_tokens());
  const int32_t num_full = std::min<int32_t>(known / block_size_, static_cast<int32_t>(seq.block_table.size()));
  if (seq.num_cache_checked_blocks >= num_full) return;
  ensure_hashes(seq, num_full);
  for (int32_t i = seq.num_cache_checked_blocks; i < num_full; ++i) {
    const int32_t b = seq.block_table[i];
    Block& blk = blocks_[b];
    if (blk.cache_id != 0) continue;
    const uint64_t parent_id = i == 0 ? 0 : blocks_[seq.block_table[i - 1]].cache_id;
    if (i > 0 && parent_id == 0) break;  // the chain is broken: nothing after it is findable
    const int32_t* toks = seq.tokens.data() + static_cast<size_t>(i) * block_size_;
    const uint64_t h = seq.block_hashes[i];
    auto it = cache_.find(h);
    if (it != cache_.end()) {
      const Block& other = blocks_[it->second];
      if (other.parent_cache_id == parent_id && std::equal(other.tokens.begin(), other.tokens.end(), toks))
        break;  // the same content is already cached (computed twice in one step)
      uncache(it->second);  // stale chain or a true hash collision: the newest wins
    }
    blk.hash = h;
    blk.cache_id = next_cache_id_++;
    blk.parent_cache_id = parent_id;
    blk.tokens.assign(toks, toks + block_size_);
    cache_[h] = b;
  }
  seq.num_cache_checked_blocks = num_full;
}

}  // namespace ferrum
