#include "engine/spec_policy.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace ferrum {

namespace {
constexpr double kLoadRate = 0.2;     // of a step's log error, to the load
constexpr double kCostRate = 0.03;    // to its cell's cost, once past its first samples
constexpr double kMaxError = 1.0986;  // log 3: a stall counts as 3x its estimate at most
constexpr float kDecay = 0.95f;       // of a sequence's counts per scored proposal (~20 count)
constexpr double kPrior = 1.0, kPriorRate = 0.5;  // before any count: one proposal, half accepted
}  // namespace

void StepCost::record(int32_t seqs, int32_t rows, double ms) {
  if (seqs <= 0 || seqs > kMaxSeqs || rows < 0 || rows > kMaxRows || !(ms > 0.0)) return;
  if (cells_.size() <= static_cast<size_t>(seqs)) cells_.resize(seqs + 1);
  std::vector<Cell>& by_rows = cells_[seqs];
  if (by_rows.size() <= static_cast<size_t>(rows)) by_rows.resize(rows + 1);
  Cell& c = by_rows[rows];
  if (c.samples == 0) {  // a new cell says nothing about the load yet
    // Its first step may have stalled (buffers grown for a new size): at most 3x the guess.
    const double guess = relative(seqs, rows);
    const double cost = ms / load_;
    c = {guess > 0.0 ? std::clamp(cost, guess / 3.0, guess * 3.0) : cost, 1};
    return;
  }
  const double error = std::clamp(std::log(ms / (load_ * c.cost)), -kMaxError, kMaxError);
  load_ *= std::exp(kLoadRate * error);
  ++c.samples;
  c.cost *= std::exp(std::max(kCostRate, 1.0 / c.samples) * error);
}

double StepCost::estimate(int32_t seqs, int32_t rows) const {
  const double c = relative(seqs, rows);
  return c > 0.0 ? load_ * c : -1.0;
}

double StepCost::relative(int32_t seqs, int32_t rows) const {
  if (seqs <= 0 || static_cast<size_t>(seqs) >= cells_.size()) return -1.0;
  const std::vector<Cell>& r = cells_[seqs];
  const int32_t size = static_cast<int32_t>(r.size());
  auto known = [&](int32_t i) { return r[i].samples > 0; };
  if (rows < size && known(rows)) return r[rows].cost;
  int32_t lo = std::min(rows, size - 1);
  while (lo >= 0 && !known(lo)) --lo;
  int32_t hi = rows + 1;
  while (hi < size && !known(hi)) ++hi;
  if (lo < 0 && hi >= size) return -1.0;
  if (lo < 0) return r[hi].cost;  // nothing cheaper measured: as the next larger
  if (hi < size) return r[lo].cost + (r[hi].cost - r[lo].cost) * (rows - lo) / (hi - lo);
  int32_t lo2 = lo - 1;
  while (lo2 >= 0 && !known(lo2)) --lo2;
  if (lo2 < 0) return r[lo].cost;
  return r[lo].cost + std::max(0.0, (r[lo].cost - r[lo2].cost) / (lo - lo2)) * (rows - lo);
}

SpecPolicy::SpecPolicy(int32_t min_n, int32_t max_n, int32_t k) : min_n_(min_n), max_n_(max_n), k_(k) {
  FERRUM_CHECK(min_n >= 1 && min_n <= max_n && k >= 1, "speculation policy: bad n-gram sizes {}..{} or K {}", min_n,
               max_n, k);
}

void SpecPolicy::observe(NgramAcceptance& h, std::span<const int32_t> tokens, std::span<const int32_t> proposal,
                         int32_t n) const {
  const size_t cells = static_cast<size_t>((max_n_ - min_n_ + 1) * k_);
  if (h.tried.size() != cells) {
    h.tried.assign(cells, 0.0f);
    h.accepted.assign(cells, 0.0f);
  }
  if (h.start >= 0) {
    const int32_t len = static_cast<int32_t>(h.proposal.size());
    const int32_t known = static_cast<int32_t>(tokens.size()) - h.start;
    int32_t i = 0;
    while (i < len && i < known && tokens[h.start + i] == h.proposal[i]) ++i;
    if (i == len || i < known) {  // all accepted, or the first rejection is known
      for (float& c : h.tried) c *= kDecay;
      for (float& c : h.accepted) c *= kDecay;
      for (int32_t pos = 0; pos < std::min(len, i + 1); ++pos) {
        h.tried[cell(h.n, pos)] += 1.0f;
        if (pos < i) h.accepted[cell(h.n, pos)] += 1.0f;
      }
      h.start = -1;
    }
  }
  if (h.start < 0 && !proposal.empty() && n >= min_n_ && n <= max_n_) {
    h.start = static_cast<int32_t>(tokens.size());
    h.n = n;
    h.proposal.assign(proposal.begin(), proposal.begin() + std::min<size_t>(proposal.size(), k_));
  }
}

void SpecPolicy::gains(const NgramAcceptance& h, int32_t n, int32_t len, std::vector<double>& out) const {
  out.clear();
  if (n < min_n_ || n > max_n_) return;
  double g = 1.0;
  for (int32_t pos = 0; pos < std::min(len, k_); ++pos) {
    const double tried = h.tried.empty() ? 0.0 : h.tried[cell(n, pos)];
    const double accepted = h.accepted.empty() ? 0.0 : h.accepted[cell(n, pos)];
    g *= (accepted + kPrior * kPriorRate) / (tried + kPrior);
    out.push_back(g);
  }
}

void SpecPolicy::sort_candidates(const std::vector<std::vector<double>>& gains, std::vector<Candidate>& out) {
  out.clear();
  for (size_t s = 0; s < gains.size(); ++s)
    for (double g : gains[s]) out.push_back({g, static_cast<int32_t>(s)});
  // Each sequence's gains do not increase, so the best m of all are prefixes of each.
  std::stable_sort(out.begin(), out.end(), [](const Candidate& a, const Candidate& b) { return a.gain > b.gain; });
}

// For a new number of sequences the plain step is measured first (no proposals); then the
// larger sizes look as cheap as it until they are measured, so they are tried.
int32_t SpecPolicy::best_count(const std::vector<Candidate>& sorted, int32_t seqs) const {
  if (cost_.estimate(seqs, 0) <= 0.0) return 0;
  int32_t best = 0;
  double best_rate = -1.0, tokens = seqs;
  for (int32_t m = 0; m <= static_cast<int32_t>(sorted.size()); ++m) {
    if (m > 0) tokens += sorted[m - 1].gain;
    const double rate = tokens / cost_.estimate(seqs, m);
    if (rate > best_rate) {
      best_rate = rate;
      best = m;
    }
  }
  return best;
}

bool SpecPolicy::worth_proposing(const std::vector<std::vector<double>>& gains, int32_t seqs) const {
  sort_candidates(gains, scratch_);
  return best_count(scratch_, seqs) > 0;
}

std::vector<int32_t> SpecPolicy::choose(const std::vector<std::vector<double>>& gains, int32_t seqs) {
  ++calls_;
  sort_candidates(gains, candidates_);
  const int32_t total = static_cast<int32_t>(candidates_.size());
  int32_t best = best_count(candidates_, seqs);
  if (cost_.estimate(seqs, 0) > 0.0) {
    if (calls_ % kProbeEvery == 0 && best < total) {
      ++best;
    } else if (calls_ % kProbeEvery == kProbeEvery / 2 && best > 0) {
      --best;
    }
  }
  std::vector<int32_t> counts(gains.size(), 0);
  for (int32_t m = 0; m < best; ++m) ++counts[candidates_[m].seq];
  return counts;
}

}  // namespace ferrum
