// Causal attention over a paged KV cache for a flat batch that mixes prefill chunks and
// decodes. Query token i of sequence s sits at position seq_len - q_len + i and sees keys
// 0..that position. Work is split over (token, head) pairs.
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"

namespace ferrum::cpu {

void paged_attention(ThreadPool& pool, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                     const AttentionMeta& meta, float scale, Tensor& out) {
  FERRUM_CHECK(k_cache.dtype == DType::F32 && v_cache.dtype == DType::F32, "the CPU KV cache is F32, not {}",
               dtype_name(k_cache.dtype));
  const int64_t T = q.dim(0), Hq = q.dim(1), D = q.dim(2);
  const int64_t Hk = k_cache.dim(2), bs = k_cache.dim(1);
  const int64_t group = Hq / Hk;
  const int32_t* bt = meta.block_tables.ptr<int32_t>();
  const auto& qs = meta.host_query_start;
  const auto& lens = meta.host_seq_lens;

  // token -> sequence
  std::vector<int32_t> seq_of(T);
  for (int32_t s = 0; s < meta.num_seqs; ++s)
    for (int32_t t = qs[s]; t < qs[s + 1]; ++t) seq_of[t] = s;

  pool.parallel_for(T * Hq, 1, [&](int64_t u0, int64_t u1) {
    thread_local std::vector<float> scores;
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t t = u / Hq, h = u % Hq, kh = h / group;
      const int32_t s = seq_of[t];
      const int64_t q_len = qs[s + 1] - qs[s];
      const int64_t pos = lens[s] - q_len + (t - qs[s]);
      const int64_t ctx = pos + 1;
      const int32_t* table = bt + static_cast<int64_t>(s) * meta.max_blocks_per_seq;
      const float* qv = q.ptr<float>() + (t * Hq + h) * D;
      scores.resize(ctx);
      float mx = -INFINITY;
      for (int64_t j = 0; j < ctx; ++j) {
        const int64_t slot = static_cast<int64_t>(table[j / bs]) * bs + j % bs;
        const float* kv = k_cache.ptr<float>() + (slot * Hk + kh) * D;
        scores[j] = dot_f32(qv, kv, D) * scale;
        mx = std::max(mx, scores[j]);
      }
      float sum = 0.0f;
      for (int64_t j = 0; j < ctx; ++j) sum += (scores[j] = std::exp(scores[j] - mx));
      const float inv = 1.0f / sum;
      float* o = out.ptr<float>() + (t * Hq + h) * D;
      for (int64_t d = 0; d < D; ++d) o[d] = 0.0f;
      for (int64_t j = 0; j < ctx; ++j) {
        const int64_t slot = static_cast<int64_t>(table[j / bs]) * bs + j % bs;
        axpy_f32(scores[j] * inv, v_cache.ptr<float>() + (slot * Hk + kh) * D, o, D);
      }
    }
  });
}

}  // namespace ferrum::cpu
