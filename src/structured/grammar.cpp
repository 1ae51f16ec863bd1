#include "structured/grammar.h"

#include <algorithm>

#include "core/error.h"

#define XXH_INLINE_ALL  // header-only: no link dependency
#include <xxhash.h>

namespace ferrum::structured {

namespace {
// Bounds that turn a pathological grammar (left recursion, wild ambiguity, runaway nesting)
// into a clear error instead of unbounded time or memory.
constexpr int kMaxExpansionDepth = 512;
constexpr size_t kMaxStacks = 8192;
// Stacks a plain expansion may produce before duplicates are merged. Nested optional rules (a
// pattern's "x???...") reach the same stacks by exponentially many paths: past this the
// expansion is redone remembering every stack it has seen, so each is expanded once.
constexpr size_t kMaxPlainExpandedStacks = 2 * kMaxStacks;
constexpr size_t kMaxSeenStacks = 16 * kMaxStacks;
constexpr size_t kMaxStackDepth = 4096;
}  // namespace

uint32_t Grammar::add_rule(std::string name) {
  rules_.emplace_back();
  names_.push_back(std::move(name));
  finalized_ = false;
  return static_cast<uint32_t>(rules_.size() - 1);
}

std::vector<Grammar::Symbol> repeat_symbols(Grammar& g, std::vector<Grammar::Symbol> x, int lo, int hi,
                                            const std::function<uint32_t()>& new_rule) {
  const uint32_t item = new_rule();
  g.add_alternative(item, std::move(x));
  std::vector<Grammar::Symbol> out;
  for (int i = 0; i < lo; ++i) out.push_back(Grammar::rule(item));
  if (hi < 0) {
    const uint32_t star = new_rule();
    g.add_alternative(star, {});
    g.add_alternative(star, {Grammar::rule(item), Grammar::rule(star)});
    out.push_back(Grammar::rule(star));
  } else if (hi > lo) {
    uint32_t tail = new_rule();
    g.add_alternative(tail, {});
    g.add_alternative(tail, {Grammar::rule(item)});
    for (int i = 1; i < hi - lo; ++i) {
      const uint32_t r = new_rule();
      g.add_alternative(r, {});
      g.add_alternative(r, {Grammar::rule(item), Grammar::rule(tail)});
      tail = r;
    }
    out.push_back(Grammar::rule(tail));
  }
  return out;
}

void Grammar::add_alternative(uint32_t rule, std::vector<Symbol> sequence) {
  FERRUM_CHECK(rule < rules_.size(), "grammar: no rule {}", rule);
  rules_[rule].push_back(std::move(sequence));
  finalized_ = false;
}

Grammar::Symbol Grammar::bytes(const ByteSet& set) {
  for (size_t i = 0; i < classes_.size(); ++i)
    if (classes_[i] == set) return {false, static_cast<uint32_t>(i)};
  classes_.push_back(set);
  return {false, static_cast<uint32_t>(classes_.size() - 1)};
}

std::vector<Grammar::Symbol> Grammar::literal(std::string_view text) {
  std::vector<Symbol> out;
  for (const char c : text) {
    ByteSet s;
    s.set(static_cast<uint8_t>(c));
    out.push_back(bytes(s));
  }
  return out;
}

std::string Grammar::describe(uint32_t rule) const {
  return names_[rule].empty() ? "rule " + std::to_string(rule) : "rule '" + names_[rule] + "'";
}

// A rule is productive when some alternative derives a finite byte string. Alternatives that
// use an unproductive rule are removed: the matcher would otherwise let the sampler enter a
// branch it can never leave (e.g. a recursive schema whose recursion is required).
void Grammar::drop_unproductive() {
  std::vector<char> productive(rules_.size(), 0);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < rules_.size(); ++r) {
      if (productive[r]) continue;
      for (const auto& alt : rules_[r]) {
        const bool ok = std::all_of(alt.begin(), alt.end(), [&](const Symbol& s) {
          return !s.is_rule || (s.id < rules_.size() && productive[s.id]);
        });
        if (ok) {
          productive[r] = changed = true;
          break;
        }
      }
    }
  }
  if (!productive[root_])
    throw InvalidRequest("grammar: no finite output satisfies it (" + describe(root_) + " only recurses forever)");
  for (size_t r = 0; r < rules_.size(); ++r) {
    auto& alts = rules_[r];
    alts.erase(std::remove_if(alts.begin(), alts.end(), [&](const std::vector<Symbol>& alt) {
                 return std::any_of(alt.begin(), alt.end(), [&](const Symbol& s) { return s.is_rule && s.id < rules_.size() && !productive[s.id]; });
               }),
               alts.end());
  }
}

// Left recursion (a rule reaching itself before consuming a byte) would expand forever in
// the matcher: refuse it when the grammar is built, not in the middle of a request.
void Grammar::check_left_recursion() const {
  const size_t n = rules_.size();
  std::vector<char> nullable(n, 0);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < n; ++r) {
      if (nullable[r]) continue;
      for (const auto& alt : rules_[r])
        if (std::all_of(alt.begin(), alt.end(), [&](const Symbol& s) { return s.is_rule && nullable[s.id]; })) {
          nullable[r] = changed = true;
          break;
        }
    }
  }
  // Edges r -> s when s can come first in r. Iterative DFS looking for a cycle.
  std::vector<std::vector<uint32_t>> first(n);
  for (size_t r = 0; r < n; ++r)
    for (const auto& alt : rules_[r])
      for (const Symbol& s : alt) {
        if (!s.is_rule) break;
        first[r].push_back(s.id);
        if (!nullable[s.id]) break;
      }
  std::vector<uint8_t> color(n, 0);  // 0 new, 1 on the path, 2 done
  std::vector<std::pair<uint32_t, size_t>> path;
  for (uint32_t start = 0; start < n; ++start) {
    if (color[start]) continue;
    path.push_back({start, 0});
    color[start] = 1;
    while (!path.empty()) {
      auto& [r, i] = path.back();
      if (i == first[r].size()) {
        color[r] = 2;
        path.pop_back();
        continue;
      }
      const uint32_t next = first[r][i++];
      if (color[next] == 1) throw InvalidRequest("grammar: " + describe(next) + " is left-recursive (it can reach itself without consuming input)");
      if (color[next] == 0) {
        color[next] = 1;
        path.push_back({next, 0});
      }
    }
  }
}

void Grammar::finalize() {
  FERRUM_CHECK(root_ < rules_.size(), "grammar: the root rule {} does not exist", root_);
  drop_unproductive();
  check_left_recursion();
  elements_.clear();
  alt_starts_.assign(rules_.size(), {});
  for (size_t r = 0; r < rules_.size(); ++r) {
    // Every rule reachable from the root keeps an alternative (it is productive); one left
    // empty is unreachable or was unproductive, and matches nothing.
    for (const auto& alt : rules_[r]) {
      alt_starts_[r].push_back(static_cast<uint32_t>(elements_.size()));
      for (const Symbol& s : alt) {
        FERRUM_CHECK(s.is_rule ? s.id < rules_.size() : s.id < classes_.size(), "grammar: dangling symbol in rule {}", r);
        elements_.push_back({s.is_rule ? Kind::Rule : Kind::Bytes, s.id});
      }
      elements_.push_back({Kind::End, 0});
    }
  }
  finalized_ = true;
}

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar) : grammar_(std::move(grammar)) {
  FERRUM_CHECK(grammar_ && grammar_->finalized_, "grammar matcher: the grammar is not finalized");
  std::vector<Stack> starts;
  for (const uint32_t start : grammar_->alt_starts_[grammar_->root_]) starts.push_back({start});
  expand_all(starts, stacks_);
}

size_t GrammarMatcher::StackHash::operator()(const Stack& s) const noexcept {
  return static_cast<size_t>(XXH3_64bits(s.data(), s.size() * sizeof(uint32_t)));
}

void GrammarMatcher::expand_all(const std::vector<Stack>& from, std::vector<Stack>& out) const {
  // Plain first: remembering stacks costs a hash set per byte, which the common grammars,
  // with few paths, do not need.
  try {
    for (const Stack& s : from) expand(s, out, 0, nullptr);
  } catch (const TooManyPaths&) {
    out.clear();
    SeenStacks seen;
    for (const Stack& s : from) expand(s, out, 0, &seen);
  }
  normalize(out);
}

// Brings a stack to a byte class on top (or to empty = accepted), branching at rule
// references into one stack per alternative. With `seen`, a stack met before is dropped: its
// expansion is already in `out`.
void GrammarMatcher::expand(Stack stack, std::vector<Stack>& out, int depth, SeenStacks* seen) const {
  FERRUM_CHECK(depth < kMaxExpansionDepth, "grammar: rules nest more than {} deep without consuming input (left recursion?)", kMaxExpansionDepth);
  const auto& el = grammar_->elements_;
  while (!stack.empty() && el[stack.back()].kind == Grammar::Kind::End) stack.pop_back();
  if (seen) {
    if (!seen->insert(stack).second) return;
    if (seen->size() > kMaxSeenStacks)  // the request's grammar, not a bug: a clear 400
      throw InvalidRequest("grammar: more than " + std::to_string(kMaxSeenStacks) +
                           " distinct ways to read the next byte (nested optional or repeated parts)");
  }
  if (stack.empty() || el[stack.back()].kind == Grammar::Kind::Bytes) {
    if (!seen && out.size() >= kMaxPlainExpandedStacks) throw TooManyPaths{};
    out.push_back(std::move(stack));
    return;
  }
  const uint32_t rule = el[stack.back()].arg;
  // Continue after the reference once the rule is done. A reference in tail position leaves
  // no return position (tail call), so right recursion keeps stacks short.
  stack.back() += 1;
  while (!stack.empty() && el[stack.back()].kind == Grammar::Kind::End) stack.pop_back();
  FERRUM_CHECK(stack.size() < kMaxStackDepth, "grammar: nesting deeper than {}", kMaxStackDepth);
  for (const uint32_t start : grammar_->alt_starts_[rule]) {
    Stack next = stack;
    next.push_back(start);
    expand(std::move(next), out, depth + 1, seen);
  }
}

void GrammarMatcher::normalize(std::vector<Stack>& stacks) const {
  std::sort(stacks.begin(), stacks.end());
  stacks.erase(std::unique(stacks.begin(), stacks.end()), stacks.end());
  FERRUM_CHECK(stacks.size() <= kMaxStacks, "grammar: more than {} ambiguous parses at once", kMaxStacks);
}

bool GrammarMatcher::advance(uint8_t byte) {
  const auto& el = grammar_->elements_;
  std::vector<Stack> moved;
  for (const Stack& s : stacks_) {
    if (s.empty() || !grammar_->classes_[el[s.back()].arg].test(byte)) continue;
    moved.push_back(s);
    moved.back().back() += 1;
  }
  if (moved.empty()) return false;
  std::vector<Stack> next;
  expand_all(moved, next);
  if (next.empty()) return false;
  stacks_ = std::move(next);
  return true;
}

bool GrammarMatcher::advance(std::string_view bytes) {
  GrammarMatcher trial = *this;
  for (const char c : bytes)
    if (!trial.advance(static_cast<uint8_t>(c))) return false;
  *this = std::move(trial);
  return true;
}

bool GrammarMatcher::accepts() const {
  return !stacks_.empty() && stacks_.front().empty();  // sorted: an empty stack comes first
}

bool GrammarMatcher::can_continue() const { return !stacks_.empty() && !stacks_.back().empty(); }

std::string GrammarMatcher::state_key() const {
  std::string key;
  for (const Stack& s : stacks_) {
    key.append(reinterpret_cast<const char*>(s.data()), s.size() * sizeof(uint32_t));
    key.append(4, '\xff');  // no element id is 0xffffffff
  }
  return key;
}

ByteSet GrammarMatcher::next_bytes() const {
  ByteSet out;
  for (const Stack& s : stacks_)
    if (!s.empty()) out |= grammar_->classes_[grammar_->elements_[s.back()].arg];
  return out;
}

}  // namespace ferrum::structured
