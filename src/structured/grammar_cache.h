// Compiled grammars by the canonical text of what they were compiled from (kind, options and
// the schema / regex / grammar text), least recently used first out: repeated requests with
// the same schema skip compilation. Grammars are immutable, so one is shared by all the
// requests that use it. Thread-safe; compile errors are not cached.
#pragma once
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "structured/grammar.h"

namespace ferrum::structured {

class GrammarCache {
 public:
  explicit GrammarCache(size_t capacity) : capacity_(capacity) {}

  // The cached grammar for key, else compile()'s (stored). compile runs outside the lock.
  std::shared_ptr<const Grammar> get_or_compile(const std::string& key, const std::function<std::shared_ptr<const Grammar>()>& compile);

  size_t hits() const;
  size_t misses() const;
  size_t size() const;

  // The process-wide cache the server uses (256 grammars).
  static GrammarCache& shared();

 private:
  using Entry = std::pair<std::string, std::shared_ptr<const Grammar>>;
  size_t capacity_;
  mutable std::mutex mu_;
  std::list<Entry> order_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  size_t hits_ = 0, misses_ = 0;
};

}  // namespace ferrum::structured
