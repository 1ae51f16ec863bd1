// A context-free grammar over bytes, and a matcher that runs it one byte at a time.
// JSON Schema (json_schema.h) compiles into this form; masks over a tokenizer's vocabulary
// (token_vocab.h) are computed by walking the matcher through each token's bytes.
//
// The matcher is a nondeterministic pushdown automaton: its state is the set of possible
// stacks of grammar positions (top = the next element to match, below = return positions).
// Stacks are kept expanded, so every top is a byte class; an empty stack means the input so
// far is a complete sentence. The state is a plain value: copy a matcher to save it, assign
// to roll back.
#pragma once
#include <bitset>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace ferrum::structured {

using ByteSet = std::bitset<256>;

class Grammar {
 public:
  // One element of an alternative: a byte class or a reference to a rule.
  struct Symbol {
    bool is_rule = false;
    uint32_t id = 0;  // class index or rule id
  };

  // `name` only labels errors (GBNF rule names, JSON pointers).
  uint32_t add_rule(std::string name = {});
  void add_alternative(uint32_t rule, std::vector<Symbol> sequence);
  Symbol bytes(const ByteSet& set);
  static Symbol rule(uint32_t id) { return {true, id}; }
  // The symbols of a literal byte string, one byte class per byte.
  std::vector<Symbol> literal(std::string_view text);
  void set_root(uint32_t rule) { root_ = rule; }

  // Lays the rules out flat for matching. Alternatives that can never finish (they need a
  // rule that only recurses forever) are dropped, so sampling cannot walk into a dead end.
  // Throws InvalidRequest when the root can never finish or a rule is left-recursive (it
  // could expand forever without consuming a byte), ferrum::Error on a dangling symbol.
  void finalize();

  size_t num_rules() const { return rules_.size(); }
  const std::string& rule_name(uint32_t rule) const { return names_[rule]; }

 private:
  friend class GrammarMatcher;
  enum class Kind : uint8_t { Bytes, Rule, End };
  struct Element {
    Kind kind;
    uint32_t arg;
  };

  void drop_unproductive();
  void check_left_recursion() const;
  std::string describe(uint32_t rule) const;

  std::vector<ByteSet> classes_;
  std::vector<std::string> names_;
  std::vector<std::vector<std::vector<Symbol>>> rules_;  // rule -> alternatives
  uint32_t root_ = 0;
  // After finalize: alternatives laid out as runs of elements ending in End.
  std::vector<Element> elements_;
  std::vector<std::vector<uint32_t>> alt_starts_;  // rule -> first element of each alternative
  bool finalized_ = false;
};

// x repeated lo to hi times (hi < 0: without bound) as rules of g: the returned sequence is lo
// references to a rule for x, then a rule for the optional rest (nested, so hi - lo more at
// most). new_rule adds each rule, so that callers bound a grammar's size as it grows.
std::vector<Grammar::Symbol> repeat_symbols(Grammar& g, std::vector<Grammar::Symbol> x, int lo, int hi,
                                            const std::function<uint32_t()>& new_rule);

class GrammarMatcher {
 public:
  explicit GrammarMatcher(std::shared_ptr<const Grammar> grammar);

  // Consumes one byte; false (and the state unchanged) when the grammar does not allow it.
  bool advance(uint8_t byte);
  // Consumes all of `bytes`, or nothing (false) when some byte is not allowed.
  bool advance(std::string_view bytes);

  bool accepts() const;       // the input so far is a complete sentence
  bool can_continue() const;  // some byte may still follow
  // The bytes that may come next (union of the stack tops' classes).
  ByteSet next_bytes() const;

  // The state as a key: equal keys (for one grammar) mean equal states, hence equal masks.
  std::string state_key() const;
  const std::shared_ptr<const Grammar>& grammar() const { return grammar_; }

 private:
  using Stack = std::vector<uint32_t>;
  struct StackHash {
    size_t operator()(const Stack& s) const noexcept;
  };
  using SeenStacks = std::unordered_set<Stack, StackHash>;
  struct TooManyPaths {};  // a plain expansion gave up: expand_all redoes it remembering stacks
  // Expands every stack of `from` into `out` (sorted, unique).
  void expand_all(const std::vector<Stack>& from, std::vector<Stack>& out) const;
  void expand(Stack stack, std::vector<Stack>& out, int depth, SeenStacks* seen) const;
  void normalize(std::vector<Stack>& stacks) const;

  std::shared_ptr<const Grammar> grammar_;
  std::vector<Stack> stacks_;  // sorted, unique
};

}  // namespace ferrum::structured
