// Adaptive n-gram speculation: which proposals are worth verifying. A proposal costs rows in
// the step (the target scores every proposed token) and pays the tokens that get accepted;
// where verification is not nearly free (the CPU, a small model, a large vocabulary verified on
// the host), proposals that are seldom accepted make decoding slower than no speculation.
// So both sides are measured, and each step keeps the proposals that maximize expected tokens
// per second:
// - Acceptance, per sequence. Every n-gram proposal, verified or not, is scored against the
//   tokens that actually followed it. Point proposals are verified by the target's own draw
//   (spec_decode.h), so a sequence emits the same tokens whether or not it speculates: a
//   proposal that was never verified is scored exactly as verification would have scored it,
//   greedy or sampled. Counts are kept per match length n and per position in the proposal,
//   decayed, so that recent text counts most and a sequence that stopped proposing starts
//   again as soon as its text turns repetitive.
// - Cost: the wall time of decode-only steps, by (sequences, proposed rows), averaged.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace ferrum {

// One sequence's record of its n-gram proposals' acceptance (Sequence::ngram_acceptance).
struct NgramAcceptance {
  // The proposal being scored: made when the sequence had `start` tokens (-1: none).
  int32_t start = -1, n = 0;
  std::vector<int32_t> proposal;
  // Decayed counts, [(n - min_n) * K + position]: proposals tried at that position (all
  // before it accepted), and accepted there.
  std::vector<float> tried, accepted;
};

// Wall time of decode-only steps by the number of sequences and of proposed rows, as a load
// factor times a cost per cell: log(ms) = log(load) + log(cost[seqs][rows]), both fitted
// online from each step's error (clipped: a stall counts as 3x at most). The load moves fast
// and is shared by all cells, the costs slowly (a running mean over a cell's first samples):
// a machine that gets busier while one size is in use makes every size dearer alike, instead
// of making the size in use look dearer than sizes measured before. The choice between sizes
// depends on the costs' ratios only. An unmeasured cell is interpolated linearly in the rows
// between measured ones, extrapolated past the last one by the slope of the last two (flat
// with one: untried sizes look cheap, so they are tried once).
class StepCost {
 public:
  void record(int32_t seqs, int32_t rows, double ms);
  // < 0: nothing measured for this many sequences.
  double estimate(int32_t seqs, int32_t rows) const;

 private:
  static constexpr int32_t kMaxSeqs = 256, kMaxRows = 1024;
  struct Cell {
    double cost = 0.0;  // 0 = unmeasured
    int32_t samples = 0;
  };
  double relative(int32_t seqs, int32_t rows) const;  // the cost, interpolated; < 0: none
  double load_ = 1.0;
  std::vector<std::vector<Cell>> cells_;  // [seqs][rows]
};

class SpecPolicy {
 public:
  // Proposal lengths up to k, matched on min_n..max_n tokens.
  SpecPolicy(int32_t min_n, int32_t max_n, int32_t k);

  // Scores h's pending proposal against `tokens` once they decide it, then (when none is
  // pending) starts scoring `proposal`, matched on n tokens at the end of `tokens`.
  void observe(NgramAcceptance& h, std::span<const int32_t> tokens, std::span<const int32_t> proposal,
               int32_t n) const;
  // The probability that proposal i (i < len) and all before it are accepted, for a proposal
  // matched on n tokens: what verifying it adds to the step's tokens, in expectation.
  void gains(const NgramAcceptance& h, int32_t n, int32_t len, std::vector<double>& out) const;
  // How many leading proposals of each sequence to verify in a step of `seqs` sequences;
  // gains[s] is non-increasing (gains()). Every kProbeEvery-th call verifies one row more than
  // the best choice, and halfway between one row less, so that a cost measured under a
  // passing load (a stall) is measured again instead of ruling its size out for good.
  std::vector<int32_t> choose(const std::vector<std::vector<double>>& gains, int32_t seqs);
  // Whether choose() would verify any of these proposals, probes aside (nothing changes).
  bool worth_proposing(const std::vector<std::vector<double>>& gains, int32_t seqs) const;

  // A decode-only step of `seqs` sequences that verified `rows` proposals took `ms`.
  void record_step(int32_t seqs, int32_t rows, double ms) { cost_.record(seqs, rows, ms); }
  const StepCost& cost() const { return cost_; }

  static constexpr int32_t kProbeEvery = 32;

 private:
  size_t cell(int32_t n, int32_t pos) const { return static_cast<size_t>((n - min_n_) * k_ + pos); }

  int32_t min_n_, max_n_, k_;
  StepCost cost_;
  uint64_t calls_ = 0;
  struct Candidate {
    double gain;
    int32_t seq;
  };
  static void sort_candidates(const std::vector<std::vector<double>>& gains, std::vector<Candidate>& out);
  // How many of the best candidates maximize expected tokens per second.
  int32_t best_count(const std::vector<Candidate>& sorted, int32_t seqs) const;
  std::vector<Candidate> candidates_;
  mutable std::vector<Candidate> scratch_;  // worth_proposing's
};

}  // namespace ferrum
