#include "structured/grammar_cache.h"

namespace ferrum::structured {

std::shared_ptr<const Grammar> GrammarCache::get_or_compile(const std::string& key,
                                                            const std::function<std::shared_ptr<const Grammar>()>& compile) {
  {
    std::lock_guard lk(mu_);
    if (auto it = index_.find(key); it != index_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      ++hits_;
      return it->second->second;
    }
    ++misses_;
  }
  auto grammar = compile();  // may throw: nothing is stored
  std::lock_guard lk(mu_);
  if (auto it = index_.find(key); it != index_.end()) return it->second->second;  // compiled meanwhile
  order_.emplace_front(key, grammar);
  index_[key] = order_.begin();
  while (order_.size() > capacity_) {
    index_.erase(order_.back().first);
    order_.pop_back();
  }
  return grammar;
}

size_t GrammarCache::hits() const {
  std::lock_guard lk(mu_);
  return hits_;
}

size_t GrammarCache::misses() const {
  std::lock_guard lk(mu_);
  return misses_;
}

size_t GrammarCache::size() const {
  std::lock_guard lk(mu_);
  return order_.size();
}

GrammarCache& GrammarCache::shared() {
  static GrammarCache cache(256);
  return cache;
}

}  // namespace ferrum::structured
