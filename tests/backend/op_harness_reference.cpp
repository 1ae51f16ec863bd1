#include "op_harness_reference.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace ferrum::op_harness {
namespace {

// Rotate-half (NeoX) rotary embedding of one head at table row `pos`.
void ref_rope_head(double* v, int64_t D, const Values& cos, const Values& sin, int32_t pos) {
  const int64_t half = D / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double c = cos[pos * half + i], s = sin[pos * half + i];
    const double x1 = v[i], x2 = v[i + half];
    v[i] = x1 * c - x2 * s;
    v[i + half] = x2 * c + x1 * s;
  }
}

}  // namespace

std::vector<int32_t> shuffled_range(int32_t n, uint64_t seed) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(v.begin(), v.end(), rng);
  return v;
}

// y[m, n] = sum_k x[m, k] w[n, k] + b[n]; b may be empty.
Values ref_matmul(const Values& x, const Values& w, const Values& b, int64_t M, int64_t N, int64_t K) {
  Values y(M * N);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = b.empty() ? 0.0 : b[n];
      for (int64_t k = 0; k < K; ++k) s += x[m * K + k] * w[n * K + k];
      y[m * N + n] = s;
    }
  return y;
}

// y [M, N] of a linear layer's parts under `epilogue`; `initial` is out before an Accumulate.
Values ref_linear_epilogue(const Values& y, int64_t M, int64_t N, LinearEpilogue epilogue, const Values& initial) {
  if (epilogue == LinearEpilogue::Store) return y;
  if (epilogue == LinearEpilogue::Accumulate) {
    Values out = initial;
    for (size_t i = 0; i < out.size(); ++i) out[i] += y[i];
    return out;
  }
  const int64_t half = N / 2;  // SiluMul: gate columns, then up columns
  Values out(M * half);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t i = 0; i < half; ++i) {
      const double g = y[m * N + i], u = y[m * N + half + i];
      out[m * half + i] = g / (1.0 + std::exp(-g)) * u;
    }
  return out;
}

// Row-wise x / sqrt(mean(x^2) + eps) * w, in place over rows of w.size() values.
void ref_rms_norm_rows(double* x, int64_t rows, const Values& w, double eps) {
  const int64_t D = static_cast<int64_t>(w.size());
  for (int64_t r = 0; r < rows; ++r) {
    double* v = x + r * D;
    double ss = 0;
    for (int64_t i = 0; i < D; ++i) ss += v[i] * v[i];
    const double inv = 1.0 / std::sqrt(ss / D + eps);
    for (int64_t i = 0; i < D; ++i) v[i] = v[i] * inv * w[i];
  }
}


// Split of qkv [T, (Hq + 2 Hk) D] into heads, q/k norms (when given), RoPE on q and k, and k/v
// written to the caches (NaN where nothing is written) at slots >= 0.
QkvRef ref_qkv_rope_write_kv(const Values& qkv, const Values* q_norm, const Values* k_norm, const Values& cos,
                             const Values& sin, const std::vector<int32_t>& positions,
                             const std::vector<int32_t>& slots, int64_t Hq, int64_t Hk, int64_t D,
                             int64_t cache_slots) {
  const int64_t T = static_cast<int64_t>(positions.size()), row = (Hq + 2 * Hk) * D;
  QkvRef r{Values(T * Hq * D), Values(cache_slots * Hk * D, NAN), Values(cache_slots * Hk * D, NAN)};
  for (int64_t t = 0; t < T; ++t) {
    Values heads(qkv.begin() + t * row, qkv.begin() + (t + 1) * row);
    if (q_norm) ref_rms_norm_rows(heads.data(), Hq, *q_norm, kEps);
    if (k_norm) ref_rms_norm_rows(heads.data() + Hq * D, Hk, *k_norm, kEps);
    for (int64_t h = 0; h < Hq + Hk; ++h) ref_rope_head(heads.data() + h * D, D, cos, sin, positions[t]);
    std::copy_n(heads.begin(), Hq * D, r.q.begin() + t * Hq * D);
    if (slots[t] < 0) continue;
    std::copy_n(heads.begin() + Hq * D, Hk * D, r.k_cache.begin() + slots[t] * Hk * D);
    std::copy_n(heads.begin() + (Hq + Hk) * D, Hk * D, r.v_cache.begin() + slots[t] * Hk * D);
  }
  return r;
}

// Block tables over a shuffled cache (a few blocks no sequence uses); `padded`: the table
// width rounded up to a power of two and max_context set to its capacity, as decode graphs do.
PagedLayout paged_layout(const std::vector<Sequence>& seqs, bool padded, uint64_t seed) {
  PagedLayout l;
  int32_t used = 0;
  for (const Sequence& s : seqs) {
    const int32_t blocks = (s.context + kBlockSize - 1) / kBlockSize;
    l.width = std::max(l.width, blocks);
    used += blocks;
    l.query_start.push_back(l.query_start.back() + s.queries);
    l.seq_lens.push_back(s.context);
  }
  if (padded) {
    int32_t w = 1;
    while (w < l.width) w *= 2;
    l.width = w;
    l.max_context = static_cast<int64_t>(w) * kBlockSize;
  }
  l.num_blocks = used + 3;
  const std::vector<int32_t> perm = shuffled_range(l.num_blocks, seed);
  l.block_tables.assign(seqs.size() * l.width, 0);
  int32_t next = 0;
  for (size_t s = 0; s < seqs.size(); ++s)
    for (int32_t b = 0; b < (seqs[s].context + kBlockSize - 1) / kBlockSize; ++b)
      l.block_tables[s * l.width + b] = perm[next++];
  return l;
}

// Causal attention: query i of a sequence of context L and q queries sits at L - q + i and
// sees keys 0..that position, through the block table.
Values ref_paged_attention(const Values& q, const Values& kc, const Values& vc, const PagedLayout& l, int64_t Hq,
                           int64_t Hk, int64_t D, double scale) {
  const int64_t T = l.query_start.back(), group = Hq / Hk;
  Values out(T * Hq * D, 0.0), p;
  for (size_t s = 0; s < l.seq_lens.size(); ++s) {
    const int32_t* table = l.block_tables.data() + s * l.width;
    const int64_t queries = l.query_start[s + 1] - l.query_start[s];
    for (int64_t i = 0; i < queries; ++i) {
      const int64_t t = l.query_start[s] + i, ctx = l.seq_lens[s] - queries + i + 1;
      for (int64_t h = 0; h < Hq; ++h) {
        const double* qv = q.data() + (t * Hq + h) * D;
        // Offset of key j's row (this query head's KV head) in the caches.
        auto at = [&](int64_t j) {
          const int64_t slot = static_cast<int64_t>(table[j / kBlockSize]) * kBlockSize + j % kBlockSize;
          return (slot * Hk + h / group) * D;
        };
        p.assign(ctx, 0.0);
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < ctx; ++j) {
          const double* k = kc.data() + at(j);
          for (int64_t d = 0; d < D; ++d) p[j] += qv[d] * k[d];
          mx = std::max(mx, p[j] *= scale);
        }
        for (double& x : p) sum += (x = std::exp(x - mx));
        double* o = out.data() + (t * Hq + h) * D;
        for (int64_t j = 0; j < ctx; ++j) {
          const double* v = vc.data() + at(j);
          for (int64_t d = 0; d < D; ++d) o[d] += p[j] / sum * v[d];
        }
      }
    }
  }
  return out;
}

Values ref_gather_rows(const Values& x, const std::vector<int32_t>& rows, int64_t cols) {
  Values out;
  for (int32_t r : rows) out.insert(out.end(), x.begin() + r * cols, x.begin() + (r + 1) * cols);
  return out;
}

namespace {

// down(silu(gate x) * up x) of one row x [H].
Values ref_swiglu(const double* x, int64_t H, int64_t I, const Values& gate, const Values& up, const Values& down) {
  const Values xv(x, x + H);
  const Values g = ref_matmul(xv, gate, {}, 1, I, H), u = ref_matmul(xv, up, {}, 1, I, H);
  Values a(I);
  for (int64_t i = 0; i < I; ++i) a[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
  return ref_matmul(a, down, {}, 1, H, I);
}

}  // namespace

Values ref_moe_ffn(const Values& x, int64_t T, const MoeRefWeights& w, int top_k, bool renormalize,
                   const Values& initial) {
  const int64_t H = w.H, E = w.E;
  Values out = initial;
  for (int64_t t = 0; t < T; ++t) {
    const double* xt = x.data() + t * H;
    Values p = ref_matmul(Values(xt, xt + H), w.router, {}, 1, E, H);
    const double m = *std::max_element(p.begin(), p.end());
    double sum = 0;
    for (double& v : p) sum += v = std::exp(v - m);
    for (double& v : p) v /= sum;
    std::vector<int32_t> order(E);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
    double chosen = 0;
    for (int j = 0; j < top_k; ++j) chosen += p[order[j]];
    for (int j = 0; j < top_k; ++j) {
      const int32_t e = order[j];
      const double weight = renormalize ? p[e] / chosen : p[e];
      const Values y = ref_swiglu(xt, H, w.I, w.gate[e], w.up[e], w.down[e]);
      for (int64_t d = 0; d < H; ++d) out[t * H + d] += weight * y[d];
    }
    if (w.S > 0) {
      const Values y = ref_swiglu(xt, H, w.S, w.shared_gate_proj, w.shared_up, w.shared_down);
      const double g = ref_matmul(Values(xt, xt + H), w.shared_gate, {}, 1, 1, H)[0];
      for (int64_t d = 0; d < H; ++d) out[t * H + d] += y[d] / (1.0 + std::exp(-g));
    }
  }
  return out;
}

}  // namespace ferrum::op_harness
