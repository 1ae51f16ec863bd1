// The backend op harness's references (op_harness.h): what each op computes, in double
// precision and simple loops, written apart from every backend.
#pragma once
#include <cstdint>
#include <vector>

#include "backend/linear.h"

namespace ferrum::op_harness {

using Values = std::vector<double>;

constexpr int32_t kBlockSize = 16;  // KV block size of the attention cases
constexpr float kEps = 1e-6f;       // RMSNorm epsilon of the cases

// A permutation of 0..n-1 from `seed`.
std::vector<int32_t> shuffled_range(int32_t n, uint64_t seed);

// y[m, n] = sum_k x[m, k] w[n, k] + b[n]; b may be empty.
Values ref_matmul(const Values& x, const Values& w, const Values& b, int64_t M, int64_t N, int64_t K);
// y [M, N] of a linear layer's parts under `epilogue`; `initial` is out before an Accumulate.
Values ref_linear_epilogue(const Values& y, int64_t M, int64_t N, LinearEpilogue epilogue, const Values& initial);
// Row-wise x / sqrt(mean(x^2) + eps) * w, in place over rows of w.size() values.
void ref_rms_norm_rows(double* x, int64_t rows, const Values& w, double eps);

struct QkvRef {
  Values q, k_cache, v_cache;
};
// Split of qkv [T, (Hq + 2 Hk) D] into heads, q/k norms (when given), RoPE on q and k, and k/v
// written to the caches (NaN where nothing is written) at slots >= 0.
QkvRef ref_qkv_rope_write_kv(const Values& qkv, const Values* q_norm, const Values* k_norm, const Values& cos,
                             const Values& sin, const std::vector<int32_t>& positions,
                             const std::vector<int32_t>& slots, int64_t Hq, int64_t Hk, int64_t D,
                             int64_t cache_slots);

// A flat batch over a paged cache: per sequence its context (keys after this step) and how
// many of its last tokens are queries in this step.
struct Sequence {
  int32_t context, queries;
};
struct PagedLayout {
  std::vector<int32_t> query_start{0}, seq_lens, block_tables;
  int32_t width = 0;       // block-table entries per sequence
  int32_t num_blocks = 0;  // in the cache
  int64_t max_context = 0;
};
// Block tables over a shuffled cache (a few blocks no sequence uses); `padded`: the table
// width rounded up to a power of two and max_context set to its capacity, as decode graphs do.
PagedLayout paged_layout(const std::vector<Sequence>& seqs, bool padded, uint64_t seed);
// Causal attention: query i of a sequence of context L and q queries sits at L - q + i and
// sees keys 0..that position, through the block table.
Values ref_paged_attention(const Values& q, const Values& kc, const Values& vc, const PagedLayout& l, int64_t Hq,
                           int64_t Hk, int64_t D, double scale);
Values ref_gather_rows(const Values& x, const std::vector<int32_t>& rows, int64_t cols);

// A mixture-of-experts block's weights: router [E, H]; per expert gate, up [I, H] and down
// [H, I]; an optional shared expert (gate, up [S, H], down [H, S]) with its gate [1, H].
struct MoeRefWeights {
  int64_t H = 0, E = 0, I = 0, S = 0;
  Values router;
  std::vector<Values> gate, up, down;
  Values shared_gate_proj, shared_up, shared_down, shared_gate;
};
// out = initial + the block's output for x [T, H]: softmax over the router's logits, the
// top_k experts (ties: the lower), renormalized when `renormalize`, their SwiGLU MLPs
// weighted and summed; plus sigmoid(x . shared_gate) times the shared expert's MLP.
Values ref_moe_ffn(const Values& x, int64_t T, const MoeRefWeights& w, int top_k, bool renormalize,
                   const Values& initial);

}  // namespace ferrum::op_harness
