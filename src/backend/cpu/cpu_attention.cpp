// Causal attention over a paged KV cache for a flat batch that mixes prefill chunks and
// decodes. Query token i of sequence s sits at position seq_len - q_len + i and sees keys
// 0..that position.
//
// AVX2 (head_dim a multiple of 8): work is split into units of one sequence, one KV head and a
// tile of query rows (a few tokens times the q heads that share that KV head), so each key and
// value row read serves every row of the tile. Keys go in blocks of 16 with an online softmax
// (a running max and sum per row, as flash attention does): scores as dot products of two rows
// against four keys at a time, exp in 8 lanes, then the values weighted into each row's F32
// accumulator. Elsewhere, one (token, head) pair at a time over the whole context.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"

namespace ferrum::cpu {
namespace {

struct Layout {
  int64_t T, Hq, D, Hk, bs, group;
  const int32_t* block_tables;
  int32_t max_blocks;
  const std::vector<int32_t>& query_start;
  const std::vector<int32_t>& seq_lens;
  // Position of token t of sequence s (its context is that + 1).
  int64_t pos(int32_t s, int64_t t) const {
    return seq_lens[s] - (query_start[s + 1] - query_start[s]) + (t - query_start[s]);
  }
  // Row of key j of sequence s for KV head kh in a cache [blocks, bs, Hk, D].
  int64_t kv_row(int32_t s, int64_t j, int64_t kh) const {
    const int64_t slot = static_cast<int64_t>(block_tables[static_cast<int64_t>(s) * max_blocks + j / bs]) * bs + j % bs;
    return (slot * Hk + kh) * D;
  }
};

void attend_one_pair(const Layout& L, int32_t s, int64_t t, int64_t h, const float* q, const float* kc,
                     const float* vc, float scale, float* out) {
  thread_local std::vector<float> scores;
  const int64_t D = L.D, kh = h / L.group, ctx = L.pos(s, t) + 1;
  const float* qv = q + (t * L.Hq + h) * D;
  scores.resize(static_cast<size_t>(ctx));
  float mx = -INFINITY;
  for (int64_t j = 0; j < ctx; ++j) {
    scores[j] = dot_f32(qv, kc + L.kv_row(s, j, kh), D) * scale;
    mx = std::max(mx, scores[j]);
  }
  float sum = 0.0f;
  for (int64_t j = 0; j < ctx; ++j) sum += (scores[j] = std::exp(scores[j] - mx));
  const float inv = 1.0f / sum;
  float* o = out + (t * L.Hq + h) * D;
  for (int64_t d = 0; d < D; ++d) o[d] = 0.0f;
  for (int64_t j = 0; j < ctx; ++j) axpy_f32(scores[j] * inv, vc + L.kv_row(s, j, kh), o, D);
}

#if FERRUM_AVX2
constexpr int kKeys = 16;     // keys per block
constexpr int kMaxRows = 16;  // query rows per unit

// e^x in 8 lanes (Cephes' expf: x = n ln2 + r, a degree-5 polynomial in r, times 2^n); 0 below
// -87, where the result would be denormal (and for -inf, a masked score).
inline __m256 exp256(__m256 x) {
  const __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_add_ps(_mm256_fmadd_ps(y, _mm256_mul_ps(x, x), x), _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(tiny, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

// The sums of eight vectors, as one: lane i = sum of a[i]'s lanes.
inline __m256 sum8(const __m256* a) {
  const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps(m, m, 1)));
}

// o[0, 8V) += sum over the block's keys of p[j] v_j[0, 8V).
template <int V>
inline void weigh_values(const float* p, const float* const* vrows, int nk, int64_t d, float* o) {
  __m256 acc[V];
  for (int i = 0; i < V; ++i) acc[i] = _mm256_loadu_ps(o + 8 * i);
  for (int j = 0; j < nk; ++j) {
    const __m256 pj = _mm256_set1_ps(p[j]);
    for (int i = 0; i < V; ++i) acc[i] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vrows[j] + d + 8 * i), acc[i]);
  }
  for (int i = 0; i < V; ++i) _mm256_storeu_ps(o + 8 * i, acc[i]);
}

// One sequence s, KV head kh, tokens [t0, t1) and q heads [g0, g1) of kh's group: rows r =
// (token, head), token-major. q is pre-scaled into qs.
void attend_unit(const Layout& L, int32_t s, int64_t kh, int64_t t0, int64_t t1, int64_t g0, int64_t g1,
                 const float* q, const float* kc, const float* vc, float scale, float* out) {
  const int64_t D = L.D, heads = g1 - g0, R = (t1 - t0) * heads;
  thread_local std::vector<float> qs, o;
  qs.resize(static_cast<size_t>(R * D));
  o.assign(static_cast<size_t>(R * D), 0.0f);
  alignas(32) float S[kMaxRows][kKeys];
  float m[kMaxRows], l[kMaxRows];
  int64_t ctx[kMaxRows] = {};
  for (int64_t r = 0; r < R; ++r) {
    const int64_t t = t0 + r / heads, h = kh * L.group + g0 + r % heads;
    const float* src = q + (t * L.Hq + h) * D;
    for (int64_t d = 0; d < D; ++d) qs[r * D + d] = src[d] * scale;
    ctx[r] = L.pos(s, t) + 1;
    m[r] = -INFINITY, l[r] = 0.0f;
  }
  const int64_t keys = ctx[R - 1];  // the last token sees the most
  const float* krows[kKeys];
  const float* vrows[kKeys];
  for (int64_t j0 = 0; j0 < keys; j0 += kKeys) {
    const int nk = static_cast<int>(std::min<int64_t>(kKeys, keys - j0));
    for (int j = 0; j < kKeys; ++j) {  // a short block repeats its last key (masked below)
      const int64_t row = L.kv_row(s, j0 + std::min(j, nk - 1), kh);
      krows[j] = kc + row, vrows[j] = vc + row;
    }
    // Scores: two rows against four keys at a time, eight dot products reduced together.
    for (int64_t r = 0; r < R; r += 2) {
      const float* q0 = qs.data() + r * D;
      const float* q1 = qs.data() + std::min(r + 1, R - 1) * D;
      for (int jb = 0; jb < kKeys; jb += 4) {
        __m256 acc[8];
        for (auto& a : acc) a = _mm256_setzero_ps();
        for (int64_t d = 0; d < D; d += 8) {
          const __m256 a0 = _mm256_loadu_ps(q0 + d), a1 = _mm256_loadu_ps(q1 + d);
          for (int j = 0; j < 4; ++j) {
            const __m256 k = _mm256_loadu_ps(krows[jb + j] + d);
            acc[j] = _mm256_fmadd_ps(a0, k, acc[j]);
            acc[4 + j] = _mm256_fmadd_ps(a1, k, acc[4 + j]);
          }
        }
        const __m256 sums = sum8(acc);
        _mm_storeu_ps(&S[r][jb], _mm256_castps256_ps128(sums));
        if (r + 1 < R) _mm_storeu_ps(&S[r + 1][jb], _mm256_extractf128_ps(sums, 1));
      }
    }
    // Online softmax per row, then the values.
    const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t r = 0; r < R; ++r) {
      const int64_t seen = ctx[r] - j0;  // keys of this block the row sees
      if (seen <= 0) continue;
      const __m256 limit = _mm256_set1_ps(static_cast<float>(std::min<int64_t>(seen, nk)));
      const __m256 minus_inf = _mm256_set1_ps(-INFINITY);
      const __m256 s0 = _mm256_blendv_ps(minus_inf, _mm256_load_ps(S[r]), _mm256_cmp_ps(lane, limit, _CMP_LT_OQ));
      const __m256 s1 = _mm256_blendv_ps(minus_inf, _mm256_load_ps(S[r] + 8),
                                         _mm256_cmp_ps(_mm256_add_ps(lane, _mm256_set1_ps(8.0f)), limit, _CMP_LT_OQ));
      const float m_new = std::max(m[r], hmax(_mm256_max_ps(s0, s1)));
      const float corr = std::exp(m[r] - m_new);  // 0 for the first block (m = -inf)
      const __m256 mv = _mm256_set1_ps(m_new);
      const __m256 p0 = exp256(_mm256_sub_ps(s0, mv)), p1 = exp256(_mm256_sub_ps(s1, mv));
      _mm256_store_ps(S[r], p0);
      _mm256_store_ps(S[r] + 8, p1);
      l[r] = l[r] * corr + hsum(_mm256_add_ps(p0, p1));
      m[r] = m_new;
      float* orow = o.data() + r * D;
      if (corr != 1.0f) {
        const __m256 c = _mm256_set1_ps(corr);
        for (int64_t d = 0; d < D; d += 8) _mm256_storeu_ps(orow + d, _mm256_mul_ps(c, _mm256_loadu_ps(orow + d)));
      }
      const int live = static_cast<int>(std::min<int64_t>(seen, nk));
      for (int64_t d = 0; d < D;) {
        if (D - d >= 64) weigh_values<8>(S[r], vrows, live, d, orow + d), d += 64;
        else if (D - d >= 32) weigh_values<4>(S[r], vrows, live, d, orow + d), d += 32;
        else if (D - d >= 16) weigh_values<2>(S[r], vrows, live, d, orow + d), d += 16;
        else weigh_values<1>(S[r], vrows, live, d, orow + d), d += 8;
      }
    }
  }
  for (int64_t r = 0; r < R; ++r) {
    const int64_t t = t0 + r / heads, h = kh * L.group + g0 + r % heads;
    const float inv = 1.0f / l[r];
    float* dst = out + (t * L.Hq + h) * D;
    for (int64_t d = 0; d < D; ++d) dst[d] = o[r * D + d] * inv;
  }
}

struct Unit {
  int32_t s;
  int64_t kh, t0, t1, g0, g1;
};
#endif

}  // namespace

void paged_attention(ThreadPool& pool, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                     const AttentionMeta& meta, float scale, Tensor& out) {
  FERRUM_CHECK(k_cache.dtype == DType::F32 && v_cache.dtype == DType::F32, "the CPU KV cache is F32, not {}",
               dtype_name(k_cache.dtype));
  const int64_t T = q.dim(0), Hq = q.dim(1), D = q.dim(2), Hk = k_cache.dim(2);
  const Layout L{T,       Hq, D, Hk, k_cache.dim(1), Hq / Hk, meta.block_tables.ptr<int32_t>(), meta.max_blocks_per_seq,
                 meta.host_query_start, meta.host_seq_lens};
  const float *qp = q.ptr<float>(), *kc = k_cache.ptr<float>(), *vc = v_cache.ptr<float>();
  float* op = out.ptr<float>();
  if (T == 0) return;
#if FERRUM_AVX2
  if (D % 8 == 0) {
    // Units: per sequence, tiles of tokens times a KV head's q heads, at most kMaxRows rows;
    // the group is split when there would be too few units to keep the threads busy.
    const int64_t group_parts =
        std::min<int64_t>(L.group, std::max<int64_t>(1, (2 * pool.size() + meta.num_seqs * Hk - 1) / (meta.num_seqs * Hk)));
    const int64_t heads = std::min<int64_t>(kMaxRows, (L.group + group_parts - 1) / group_parts);
    const int64_t tokens = std::max<int64_t>(1, kMaxRows / heads);
    std::vector<Unit> units;
    for (int32_t s = 0; s < meta.num_seqs; ++s)
      for (int64_t t0 = L.query_start[s]; t0 < L.query_start[s + 1]; t0 += tokens)
        for (int64_t kh = 0; kh < Hk; ++kh)
          for (int64_t g0 = 0; g0 < L.group; g0 += heads)
            units.push_back({s, kh, t0, std::min<int64_t>(t0 + tokens, L.query_start[s + 1]), g0,
                             std::min(g0 + heads, L.group)});
    pool.parallel_for(static_cast<int64_t>(units.size()), 1, [&](int64_t u0, int64_t u1) {
      for (int64_t u = u0; u < u1; ++u)
        attend_unit(L, units[u].s, units[u].kh, units[u].t0, units[u].t1, units[u].g0, units[u].g1, qp, kc, vc, scale, op);
    });
    return;
  }
#endif
  std::vector<int32_t> seq_of(T);  // token -> sequence
  for (int32_t s = 0; s < meta.num_seqs; ++s)
    for (int32_t t = L.query_start[s]; t < L.query_start[s + 1]; ++t) seq_of[t] = s;
  pool.parallel_for(T * Hq, 1, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; ++u) attend_one_pair(L, seq_of[u / Hq], u / Hq, u % Hq, qp, kc, vc, scale, op);
  });
}

}  // namespace ferrum::cpu
