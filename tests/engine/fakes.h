// Test doubles for the engine: a model whose logits are a pure function of the (token,
// position) pairs it reads back from its own paged KV store through the block tables, and a
// tiny byte-level tokenizer. A wrong block table, slot mapping or prefix-cache reuse therefore
// changes the output, and reference_logits() gives the right answer without any paging.
#pragma once
#include <atomic>
#include <chrono>
#include <thread>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace ferrum::testing {

inline uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Hash of a context, one (token, position) pair at a time.
inline uint64_t mix_context(uint64_t h, int32_t token, int32_t position) {
  return splitmix(h ^ (static_cast<uint64_t>(static_cast<uint32_t>(token)) << 32 | static_cast<uint32_t>(position)));
}

// Logits in [-4, 4) derived from a context hash.
inline void fill_logits(uint64_t h, std::span<float> row) {
  for (size_t v = 0; v < row.size(); ++v)
    row[v] = static_cast<float>(splitmix(h * 31 + v) >> 40) / static_cast<float>(1 << 24) * 8.0f - 4.0f;
}

// What a correct engine must get for the next token after `tokens`.
inline std::vector<float> reference_logits(std::span<const int32_t> tokens, int32_t vocab) {
  uint64_t h = 0;
  for (size_t j = 0; j < tokens.size(); ++j) h = mix_context(h, tokens[j], static_cast<int32_t>(j));
  std::vector<float> row(vocab);
  fill_logits(h, row);
  return row;
}

class FakeKvCache : public KvCache {
 public:
  FakeKvCache(int32_t num_blocks, int32_t block_size)
      : num_blocks_(num_blocks), block_size_(block_size),
        slots(static_cast<size_t>(num_blocks) * block_size, {-1, -1}) {}
  int32_t num_blocks() const override { return num_blocks_; }
  int32_t block_size() const override { return block_size_; }
  int32_t num_blocks_, block_size_;
  std::vector<std::pair<int32_t, int32_t>> slots;  // (token, position) written to each slot
};

class FakeModel : public Model {
 public:
  explicit FakeModel(int32_t vocab = 64, std::vector<int32_t> eos = {1}) {
    config_.architecture = "FakeForCausalLM";
    config_.vocab_size = vocab;
    config_.max_position_embeddings = 4096;
    config_.eos_token_ids = std::move(eos);
  }
  const ModelConfig& config() const override { return config_; }
  size_t kv_bytes_per_block(int32_t block_size) const override { return 8u * block_size; }
  std::unique_ptr<KvCache> create_kv_cache(int32_t num_blocks, int32_t block_size) override {
    return std::make_unique<FakeKvCache>(num_blocks, block_size);
  }

  // While paused, forward() waits: lets a test queue up requests so that they share steps.
  void pause() {
    std::lock_guard lk(gate_mu_);
    paused_ = true;
  }
  void resume() {
    {
      std::lock_guard lk(gate_mu_);
      paused_ = false;
    }
    gate_cv_.notify_all();
  }

  void forward(const ForwardBatch& b, KvCache& cache, std::vector<float>& logits) override {
    {
      std::unique_lock lk(gate_mu_);
      gate_cv_.wait(lk, [&] { return !paused_; });
    }
    if (throw_once.exchange(false)) fail("FakeModel: injected forward failure");
    if (device_lost.load()) {
      ++forward_calls;
      fail("FakeModel: the device is lost");
    }
    if (int us = step_delay_us.load() + token_delay_us.load() * b.num_tokens(); us > 0)
      std::this_thread::sleep_for(std::chrono::microseconds(us));
    auto& kv = static_cast<FakeKvCache&>(cache);
    const int32_t bs = kv.block_size();
    const int32_t vocab = static_cast<int32_t>(config_.vocab_size);
    ++forward_calls;
    max_seqs_in_batch = std::max<int32_t>(max_seqs_in_batch, b.num_seqs());
    max_tokens_in_batch = std::max<int32_t>(max_tokens_in_batch, b.num_tokens());
    tokens_seen += b.num_tokens();
    if (b.query_start.size() != b.seq_lens.size() + 1 || b.positions.size() != b.token_ids.size() ||
        b.slot_mapping.size() != b.token_ids.size() ||
        b.block_tables.size() != b.seq_lens.size() * static_cast<size_t>(b.max_blocks_per_seq))
      fail("FakeModel: inconsistent batch shapes");
    // Write every token's K/V first, as a real model does per layer before attention.
    for (int32_t t = 0; t < b.num_tokens(); ++t) {
      const int32_t slot = b.slot_mapping[t];
      if (slot < 0 || slot >= kv.num_blocks() * bs) fail("FakeModel: slot {} out of range", slot);
      kv.slots[slot] = {b.token_ids[t], b.positions[t]};
    }
    logits.assign(b.logits_indices.size() * static_cast<size_t>(vocab), 0.0f);
    for (size_t r = 0; r < b.logits_indices.size(); ++r) {
      const int32_t t = b.logits_indices[r];
      int32_t s = 0;
      while (b.query_start[s + 1] <= t) ++s;
      const int32_t pos = b.positions[t];
      if (pos + 1 > b.seq_lens[s]) ++violations;
      uint64_t h = 0;
      const int32_t period = copy_period.load();
      int32_t copied = -1;
      for (int32_t j = 0; j <= pos; ++j) {
        const int32_t block = b.block_tables[s * b.max_blocks_per_seq + j / bs];
        if (block < 0) {
          ++violations;
          continue;
        }
        auto [tok, p] = kv.slots[static_cast<size_t>(block) * bs + j % bs];
        h = mix_context(h, tok, p);  // a stale or misplaced slot changes the hash
        if (period > 0 && j == pos + 1 - period) copied = tok;
      }
      fill_logits(h, std::span<float>(logits.data() + r * vocab, vocab));
      if (copied >= 0 && copied < vocab) logits[r * vocab + copied] += copy_bonus.load();
    }
  }

  std::atomic<int64_t> forward_calls{0}, tokens_seen{0}, violations{0};
  std::atomic<int32_t> max_seqs_in_batch{0}, max_tokens_in_batch{0};
  std::atomic<int> step_delay_us{0};
  std::atomic<int> token_delay_us{0};  // more per token of the batch (a step's cost grows with it)
  // > 0: the token this many positions back gets copy_bonus on its logit, so that the model
  // repeats itself with that period (n-gram proposals are then accepted); reference_logits
  // ignores it.
  std::atomic<int> copy_period{0};
  std::atomic<float> copy_bonus{12.0f};
  std::string device_failure() override { return device_lost.load() ? "FakeModel: device lost" : ""; }
  std::atomic<bool> device_lost{false};  // every forward() throws, and device_failure() says so
  std::atomic<bool> throw_once{false};  // the next forward() throws  // makes a step slow enough to abort mid-request

 private:
  ModelConfig config_;
  std::mutex gate_mu_;
  std::condition_variable gate_cv_;
  bool paused_ = false;
};

// Byte-level vocabulary of 64 pieces; some are lone bytes of multi-byte UTF-8 characters.
// decode() concatenates the bytes and replaces invalid or incomplete sequences with U+FFFD.
class FakeTokenizer : public Tokenizer {
 public:
  FakeTokenizer() {
    pieces_ = {"<unk>", "</s>", "<s>"};
    for (char c = 'a'; c <= 'z'; ++c) pieces_.push_back(std::string(1, c));
    for (const char* w : {" ", " the", " cat", " sat", " on", " mat", ".", "\n", "ST", "OP", "S", "TO", "P"})
      pieces_.push_back(w);
    for (int byte : {0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80})
      pieces_.push_back(std::string(1, static_cast<char>(byte)));
    for (const char* w : {"ab", "ba", " a", "é", "€", "😀", "ok", " dog", "!", "?", "xy", "zz", "q "})
      pieces_.push_back(w);
    if (pieces_.size() != 64) fail("FakeTokenizer: {} pieces", pieces_.size());
  }
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const override {
    std::vector<int32_t> ids;  // greedy longest match
    size_t i = 0;
    while (i < text.size()) {
      int32_t best = -1;
      size_t best_len = 0;
      for (int32_t id = 3; id < static_cast<int32_t>(pieces_.size()); ++id)
        if (pieces_[id].size() > best_len && text.substr(i, pieces_[id].size()) == pieces_[id]) {
          best = id;
          best_len = pieces_[id].size();
        }
      if (best < 0) fail("FakeTokenizer: cannot encode byte {}", static_cast<int>(text[i]));
      ids.push_back(best);
      i += best_len;
    }
    return ids;
  }
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const override {
    std::string bytes;
    for (int32_t id : ids) {
      if (id < 0 || id >= static_cast<int32_t>(pieces_.size())) fail("FakeTokenizer: id {}", id);
      if (skip_special_tokens && is_special(id)) continue;
      bytes += pieces_[id];
    }
    return lossy_utf8(bytes);
  }
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    for (size_t i = 0; i < pieces_.size(); ++i)
      if (pieces_[i] == token) return static_cast<int32_t>(i);
    return std::nullopt;
  }
  std::string id_to_token(int32_t id) const override { return pieces_.at(id); }
  bool is_special(int32_t id) const override { return id >= 0 && id < 3; }
  std::optional<std::string> bos_token() const override { return "<s>"; }
  std::optional<std::string> eos_token() const override { return "</s>"; }

  // Like Rust's String::from_utf8_lossy (what HF tokenizers' byte-level decode does).
  static std::string lossy_utf8(const std::string& s) {
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
      const auto c = static_cast<unsigned char>(s[i]);
      size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
      size_t ok = len > 0 ? 1 : 0;
      while (ok > 0 && ok < len && i + ok < s.size() && (static_cast<unsigned char>(s[i + ok]) & 0xC0) == 0x80) ++ok;
      if (len > 0 && ok == len) {
        out.append(s, i, len);
        i += len;
      } else {
        out += "\xEF\xBF\xBD";
        i += std::max<size_t>(ok, 1);
      }
    }
    return out;
  }

 private:
  std::vector<std::string> pieces_;
};

// True when s is valid UTF-8 (no split characters).
inline bool valid_utf8(const std::string& s) { return FakeTokenizer::lossy_utf8(s) == s; }

}  // namespace ferrum::testing
