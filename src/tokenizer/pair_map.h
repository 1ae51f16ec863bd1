// An open-addressing hash map from a token pair (packed in 64 bits) to its merge, built once
// and then only read. BPE spends most of its time in this lookup; node-based maps miss cache.
#pragma once
#include <cstdint>
#include <vector>

namespace ferrum::tok {

struct MergeTarget {
  int32_t rank;
  int32_t new_id;
};

class PairMap {
 public:
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    slots_.assign(cap, Slot{kEmpty, {}});
    shift_ = 64 - __builtin_ctzll(cap);
  }
  // Later insertions of the same pair overwrite earlier ones (as a HashMap::insert would).
  void insert(uint64_t key, MergeTarget value) {
    if (slots_.empty() || 2 * (size_ + 1) > slots_.size()) grow();
    size_t i = index(key);
    while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & (slots_.size() - 1);
    if (slots_[i].key == kEmpty) ++size_;
    slots_[i] = {key, value};
  }
  const MergeTarget* find(uint64_t key) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = index(key);; i = (i + 1) & (slots_.size() - 1)) {
      if (slots_[i].key == key) return &slots_[i].value;
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // ids are non-negative int32: never a key
  struct Slot {
    uint64_t key;
    MergeTarget value;
  };
  size_t index(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_); }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    reserve(old.empty() ? 8 : old.size());
    size_ = 0;
    for (const auto& s : old)
      if (s.key != kEmpty) insert(s.key, s.value);
  }
  std::vector<Slot> slots_;
  size_t size_ = 0;
  int shift_ = 60;
};

}  // namespace ferrum::tok
