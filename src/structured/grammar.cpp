#include "structured/grammar.h"

#include <algorithm>

#include "core/error.h"

namespace ferrum::structured {

namespace {
// Bounds that turn a pathological grammar (left recursion, wild ambiguity, runaway nesting)
// into a clear error instead of unbounded time or memory.
constexpr int kMaxExpansionDepth = 512;
constexpr size_t kMaxStacks = 8192;
constexpr size_t kMaxStackDepth = 4096;
}  // namespace

uint32_t Grammar::add_rule() {
  rules_.emplace_back();
  finalized_ = false;
  return static_cast<uint32_t>(rules_.size() - 1);
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

void Grammar::finalize() {
  FERRUM_CHECK(root_ < rules_.size(), "grammar: the root rule {} does not exist", root_);
  elements_.clear();
  alt_starts_.assign(rules_.size(), {});
  for (size_t r = 0; r < rules_.size(); ++r) {
    FERRUM_CHECK(!rules_[r].empty(), "grammar: rule {} has no alternative", r);
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
  for (const uint32_t start : grammar_->alt_starts_[grammar_->root_]) expand({start}, stacks_, 0);
  normalize(stacks_);
}

// Brings a stack to a byte class on top (or to empty = accepted), branching at rule
// references into one stack per alternative.
void GrammarMatcher::expand(Stack stack, std::vector<Stack>& out, int depth) const {
  FERRUM_CHECK(depth < kMaxExpansionDepth, "grammar: rules nest more than {} deep without consuming input (left recursion?)", kMaxExpansionDepth);
  const auto& el = grammar_->elements_;
  while (!stack.empty() && el[stack.back()].kind == Grammar::Kind::End) stack.pop_back();
  if (stack.empty() || el[stack.back()].kind == Grammar::Kind::Bytes) {
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
    expand(std::move(next), out, depth + 1);
  }
}

void GrammarMatcher::normalize(std::vector<Stack>& stacks) const {
  std::sort(stacks.begin(), stacks.end());
  stacks.erase(std::unique(stacks.begin(), stacks.end()), stacks.end());
  FERRUM_CHECK(stacks.size() <= kMaxStacks, "grammar: more than {} ambiguous parses at once", kMaxStacks);
}

bool GrammarMatcher::advance(uint8_t byte) {
  const auto& el = grammar_->elements_;
  std::vector<Stack> next;
  for (const Stack& s : stacks_) {
    if (s.empty() || !grammar_->classes_[el[s.back()].arg].test(byte)) continue;
    Stack moved = s;
    moved.back() += 1;
    expand(std::move(moved), next, 0);
  }
  if (next.empty()) return false;
  normalize(next);
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

ByteSet GrammarMatcher::next_bytes() const {
  ByteSet out;
  for (const Stack& s : stacks_)
    if (!s.empty()) out |= grammar_->classes_[grammar_->elements_[s.back()].arg];
  return out;
}

}  // namespace ferrum::structured
