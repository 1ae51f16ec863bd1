// Causal attention over the paged KV cache for a flat batch of prefill chunks and decodes.
// Blocks per (query token, KV head, key split) serve every query head of that KV head, on
// tensor cores for 16-bit and E4M3 caches beside 16-bit activations (tc_attention_kernel) or on
// CUDA cores (attention_kernel: F32 activations, other head sizes), each with an online softmax
// (running max and sum) per warp; warps merge in shared memory, splits in a second kernel (or,
// for a small decode on tensor cores, in a thread-block cluster: cluster_merge).
// Query token i of sequence s sits at position seq_len - q_len + i and sees keys 0..that
// position, as in backend/cpu/cpu_attention.cpp.
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cstdlib>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_kv_fp8.cuh"
#include "backend/cuda/cuda_mma.cuh"
#include "backend/cuda/cuda_pdl.cuh"
#include "backend/cuda/cuda_numeric.cuh"
#include "backend/cuda/cuda_rope.cuh"

namespace ferrum::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxGroup = 8;  // query heads a block serves from one KV head

// The sequence of flat token t.
__device__ __forceinline__ int sequence_of(const int32_t* query_start, int32_t num_seqs, int64_t t) {
  int lo = 0, hi = num_seqs - 1;  // last s with query_start[s] <= t
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (query_start[mid] <= t) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

constexpr int kMaxSplits = 64;  // key splits of one (token, head), merged by combine_kernel
constexpr int kClusterSplits = 8;  // or merged in a cluster of blocks (the portable cluster size)
constexpr int64_t kClusterMaxBlocks = 256;  // decode grids up to which splits are merged in clusters

// What a block of either decode kernel works on: token t of sequence s, query heads h0..h0+g-1
// of KV head kh, keys [k0, k1) of its context (split `split` of `splits`). done: the token
// belongs to the prefill kernel.
struct BlockWork {
  int64_t t, kh, h0, split, splits, k0, k1, ctx;
  int g, s;
  bool done;
  const int32_t* table;
};

__device__ __forceinline__ BlockWork block_work(const int32_t* query_start, const int32_t* seq_lens,
                                                const int32_t* block_tables, int32_t num_seqs, int32_t max_blocks,
                                                int64_t hq, int64_t hk, int64_t keys_per_split, int group_chunks,
                                                int32_t tiled_min_q, int slots) {
  BlockWork w;
  const int64_t group = hq / hk;
  const int64_t chunk = blockIdx.x % group_chunks;
  w.kh = (blockIdx.x / group_chunks) % hk;
  w.t = blockIdx.x / group_chunks / hk;
  w.h0 = w.kh * group + chunk * kMaxGroup;
  const int64_t left = group - chunk * kMaxGroup;
  w.g = static_cast<int>(left < slots ? left : slots);
  w.split = blockIdx.y, w.splits = gridDim.y;
  w.s = sequence_of(query_start, num_seqs, w.t);
  const int64_t q_len = query_start[w.s + 1] - query_start[w.s];
  w.done = tiled_min_q > 0 && q_len >= tiled_min_q;
  const int64_t ctx = seq_lens[w.s] - q_len + (w.t - query_start[w.s]) + 1;
  w.ctx = ctx;
  w.k0 = w.split * keys_per_split;
  w.k1 = min(ctx, w.k0 + keys_per_split);
  w.table = block_tables + static_cast<int64_t>(w.s) * max_blocks;
  return w;
}

// Merges the warps' online-softmax states (sm_acc [kWarps][slots][stride], sm_m, sm_l
// [kWarps][slots]) of each query head: the output, or with several splits the unnormalized
// partial (m, l, acc) that combine_kernel merges.
template <typename A>
__device__ void write_merged(const BlockWork& w, const float* sm_acc, const float* sm_m, const float* sm_l, int slots,
                             int stride, int64_t hq, int64_t d, A* out, float* partial, bool local = false) {
  for (int i = 0; i < w.g; ++i) {
    float mx = -INFINITY;
    for (int k = 0; k < kWarps; ++k) mx = fmaxf(mx, sm_m[k * slots + i]);
    float sum = 0.0f, wgt[kWarps];
    for (int k = 0; k < kWarps; ++k) {
      const float l = sm_l[k * slots + i];
      sum += l * (wgt[k] = l > 0.0f ? expf(sm_m[k * slots + i] - mx) : 0.0f);
    }
    const int64_t bh = w.t * hq + w.h0 + i;
    float* part = w.splits == 1 ? nullptr : partial + (local ? i : (bh * w.splits + w.split)) * (d + 2);
    if (part && threadIdx.x == 0) part[0] = mx, part[1] = sum;  // sum == 0: no keys in this split
    for (int64_t x = threadIdx.x; x < d; x += blockDim.x) {
      float v = 0.0f;
      for (int k = 0; k < kWarps; ++k) v += wgt[k] * sm_acc[(k * slots + i) * stride + x];
      if (part) part[2 + x] = v;
      else out[bh * d + x] = from_float<A>(v / sum);
    }
  }
}

// Splits merged without a second kernel: the blocks of one (token, KV head, heads) are a
// cluster (one per split, cuda::kClusterSplits at most). Each writes its partials (m, l,
// acc) per head to its own shared memory (`mine`, [head][d + 2]), and after the cluster's
// barrier each block merges a share of the outputs, reading every block's partials through
// distributed shared memory.
template <typename A>
__device__ void cluster_merge(const BlockWork& w, const float* sm_acc, const float* sm_m, const float* sm_l, int slots,
                              int64_t hq, int64_t d, A* out, float* mine) {
  namespace cg = cooperative_groups;
  write_merged(w, sm_acc, sm_m, sm_l, slots, static_cast<int>(d), hq, d, out, mine, true);
  cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();
  const int splits = static_cast<int>(cluster.num_blocks()), rank = static_cast<int>(cluster.block_rank());
  const int64_t threads = blockDim.x;
  for (int64_t idx = rank * threads + threadIdx.x; idx < w.g * d; idx += splits * threads) {
    const int64_t i = idx / d, x = idx % d;
    float mx = -INFINITY;
    for (int r = 0; r < splits; ++r) {
      const float* p = cluster.map_shared_rank(mine, r) + i * (d + 2);
      if (p[1] > 0.0f) mx = fmaxf(mx, p[0]);  // l == 0: no keys in that split
    }
    float num = 0.0f, den = 0.0f;
    for (int r = 0; r < splits; ++r) {
      const float* p = cluster.map_shared_rank(mine, r) + i * (d + 2);
      if (p[1] > 0.0f) {
        const float wgt = expf(p[0] - mx);
        num += wgt * p[2 + x];
        den += wgt * p[1];
      }
    }
    out[(w.t * hq + w.h0 + i) * d + x] = from_float<A>(num / den);
  }
  cluster.sync();  // the others have read this block's partials: it may exit
}

// Blocks (token, KV head, group of up to 8 of its query heads, key split): each key and value
// row is loaded once for all the query heads that share it (GQA). Warps take every 4th key of
// the split with an online softmax per head, then merge in shared memory. With one split the
// block writes the output; otherwise the unnormalized partial (m, l, acc) per head that
// combine_kernel merges. Decode has few (token, head) pairs, so splitting the keys is what
// fills the GPU. A lane holds kPerLane elements of a row (head_dim <= 32 * kPerLane). q and out
// are of the activations' type A, the cache of A or E4M3 (from_cache: times its scale).

template <int kPerLane, typename A, typename C>
__global__ void attention_kernel(const A* q, const C* k_cache, const C* v_cache,
                                 const int32_t* query_start, const int32_t* seq_lens, const int32_t* block_tables,
                                 int32_t num_seqs, int32_t max_blocks, int32_t block_size, int64_t hq, int64_t hk,
                                 int64_t d, float scale, int64_t keys_per_split, int group_chunks, int32_t tiled_min_q,
                                 float k_scale, float v_scale, A* out, float* partial) {
  constexpr int D = kPerLane * 32;
  __shared__ float sm_acc[kWarps][kMaxGroup][D];
  __shared__ float sm_m[kWarps][kMaxGroup], sm_l[kWarps][kMaxGroup];
  const BlockWork w = block_work(query_start, seq_lens, block_tables, num_seqs, max_blocks, hq, hk, keys_per_split,
                                 group_chunks, tiled_min_q, kMaxGroup);
  if (w.done) return;  // prefill_attention_kernel's
  const int64_t t = w.t, kh = w.kh, h0 = w.h0, k0 = w.k0, k1 = w.k1;
  const int g = w.g;
  const int32_t* table = w.table;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

  float qr[kMaxGroup][kPerLane], acc[kMaxGroup][kPerLane], m[kMaxGroup], l[kMaxGroup];
#pragma unroll
  for (int i = 0; i < kMaxGroup; ++i) {
    const A* qv = q + (t * hq + h0 + min(i, g - 1)) * d;
#pragma unroll
    for (int e = 0; e < kPerLane; ++e) {
      qr[i][e] = lane + 32 * e < d ? to_float(qv[lane + 32 * e]) * scale : 0.0f;
      acc[i][e] = 0.0f;
    }
    m[i] = -INFINITY, l[i] = 0.0f;
  }
  for (int64_t j = k0 + warp; j < k1; j += kWarps) {
    const int64_t slot = static_cast<int64_t>(table[j / block_size]) * block_size + j % block_size;
    const C* kr = k_cache + (slot * hk + kh) * d;
    const C* vr = v_cache + (slot * hk + kh) * d;
    float kk[kPerLane], vv[kPerLane];
#pragma unroll
    for (int e = 0; e < kPerLane; ++e) {
      const bool in = lane + 32 * e < d;
      kk[e] = in ? from_cache(kr[lane + 32 * e], k_scale) : 0.0f;
      vv[e] = in ? from_cache(vr[lane + 32 * e], v_scale) : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < kMaxGroup; ++i) {
      if (i >= g) break;
      float dot = 0.0f;
#pragma unroll
      for (int e = 0; e < kPerLane; ++e) dot += qr[i][e] * kk[e];
      for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
      const float m_new = fmaxf(m[i], dot);
      const float corr = expf(m[i] - m_new), p = expf(dot - m_new);
      l[i] = l[i] * corr + p;
#pragma unroll
      for (int e = 0; e < kPerLane; ++e) acc[i][e] = acc[i][e] * corr + p * vv[e];
      m[i] = m_new;
    }
  }
#pragma unroll
  for (int i = 0; i < kMaxGroup; ++i) {
    if (i >= g) break;
#pragma unroll
    for (int e = 0; e < kPerLane; ++e)
      if (lane + 32 * e < d) sm_acc[warp][i][lane + 32 * e] = acc[i][e];
    if (lane == 0) sm_m[warp][i] = m[i], sm_l[warp][i] = l[i];
  }
  __syncthreads();
  write_merged(w, &sm_acc[0][0][0], &sm_m[0][0], &sm_l[0][0], kMaxGroup, D, hq, d, out, partial);
}

// The same blocks on tensor cores, for head_dim 64/128/256 and 16-bit activations A over a cache
// of A or E4M3 (C): the (up to 8) query heads of the block's KV head are the 16 rows of an MMA
// tile (rows past the group are zero), keys come in 64-key tiles copied to shared memory with
// cp.async (the next tile in flight; E4M3 tiles then converted to A, cuda_kv_fp8.cuh), and each
// warp takes 16 keys of a tile: S = Q K^T and O += P V with mma.sync, an online softmax per row
// in registers (exp2, the scale folded in). Per key that is a few instructions where the
// CUDA-core kernels spend dozens; warps merge like theirs.
// kFused (decode steps only: one query token per sequence): q is null and the block forms its
// q heads from the fused projection itself (norm, RoPE: cuda_rope.cuh, rounded to A as
// qkv_rope_write_kv rounds them), and the blocks whose split holds the token's own position
// write the token's k and v to the cache (and to tile 0's row when it lies there) before
// they copy the tiles after tile 0: no separate qkv_rope_write_kv kernel. Only those blocks
// read that position; with more than 8 query heads a KV head has several, which write the
// same bytes (one may copy the slot while another rewrites it: the same values either way).
// A graph's padding rows read slot 0, which a real token may write in the same launch: their
// outputs are discarded.
template <int D, typename A, typename C, bool kCluster, bool kFused>
__global__ void __launch_bounds__(kWarps * 32)
    tc_attention_kernel(const A* __restrict__ q, const C* k_cache, const C* v_cache,
                        const int32_t* query_start, const int32_t* seq_lens, const int32_t* block_tables,
                        int32_t num_seqs, int32_t max_blocks, int32_t block_size, int64_t hq, int64_t hk,
                        float scale_log2, int64_t keys_per_split, int group_chunks, int32_t tiled_min_q,
                        float k_scale, float v_scale, A* out, float* partial, QkvRope rope) {
  constexpr bool kFp8 = is_fp8_v<C>;
  static_assert(kFp8 || std::is_same_v<A, C>, "a 16-bit cache has the activations' type");
  constexpr int kTileKeys = 16 * kWarps, kStride = D + 8, kChunks = D / 8;
  constexpr int kStages = kFp8 ? 1 : 2;  // 16-bit tiles; an E4M3 cache double-buffers its raw bytes
  extern __shared__ __align__(128) unsigned char smem_raw[];
  pdl_wait();
  pdl_trigger();
  A* sq = reinterpret_cast<A*>(smem_raw);       // [16][kStride]
  A* sk = sq + 16 * kStride;                    // [kStages][kTileKeys][kStride]
  A* sv = sk + kStages * kTileKeys * kStride;   // [kStages][kTileKeys][kStride]
  uint8_t* raw_k = reinterpret_cast<uint8_t*>(sv + kStages * kTileKeys * kStride);  // E4M3: [2][kTileKeys][D]
  uint8_t* raw_v = raw_k + 2 * kTileKeys * D;
  const BlockWork w = block_work(query_start, seq_lens, block_tables, num_seqs, max_blocks, hq, hk, keys_per_split,
                                 group_chunks, tiled_min_q, kMaxGroup);
  if (w.done) return;  // prefill_attention_kernel's
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  if constexpr (!kFused) {
    for (int i = tid; i < 16 * kChunks; i += kWarps * 32) {
      const int r = i / kChunks, c = i % kChunks;
      A* dst = sq + r * kStride + c * 8;
      if (r < w.g) cp_async16(dst, q + (w.t * hq + w.h0 + r) * D + c * 8);
      else *reinterpret_cast<uint4*>(dst) = zero;
    }
  }
  // skip: a key whose rows the block writes itself (the fused form's own token in tile 0).
  auto load_kv = [&](int stage, int64_t base, int64_t skip) {
    if constexpr (kFp8) {
      copy_fp8_tile<D, kWarps * 32>(raw_k + stage * kTileKeys * D, raw_v + stage * kTileKeys * D,
                                    reinterpret_cast<const uint8_t*>(k_cache),
                                    reinterpret_cast<const uint8_t*>(v_cache), w.table, block_size, hk, w.kh, base,
                                    kTileKeys, w.k1, skip);
    } else {
      for (int i = tid; i < kTileKeys * kChunks; i += kWarps * 32) {
        const int j = i / kChunks, c = i % kChunks;
        const int64_t key = base + j;
        if (key == skip) continue;
        A* dk = sk + (stage * kTileKeys + j) * kStride + c * 8;
        A* dv = sv + (stage * kTileKeys + j) * kStride + c * 8;
        if (key < w.k1) {
          const int64_t slot = static_cast<int64_t>(w.table[key / block_size]) * block_size + key % block_size;
          const int64_t off = (slot * hk + w.kh) * D + c * 8;
          cp_async16(dk, k_cache + off);
          cp_async16(dv, v_cache + off);
        } else {
          *reinterpret_cast<uint4*>(dk) = zero;
          *reinterpret_cast<uint4*>(dv) = zero;
        }
      }
    }
  };
  const int steps = w.k1 > w.k0 ? static_cast<int>((w.k1 - w.k0 + kTileKeys - 1) / kTileKeys) : 0;
  // The fused form: the blocks of the split that holds the token's own position write its k
  // and v (with more than 8 query heads a KV head has several such blocks, which write the
  // same values). Tile 0 is copied first, without that key if it is there.
  int32_t slot = -1;
  bool writes = false;
  if constexpr (kFused) {
    slot = rope.slots[w.t];
    writes = w.k0 < w.ctx && w.k1 == w.ctx && slot >= 0 && slot < rope.num_slots;
  }
  const int64_t own = writes ? w.ctx - 1 : -1;
  if (steps > 0) load_kv(0, w.k0, own < w.k0 + kTileKeys ? own : -1);
  cp_async_commit();
  if constexpr (kFused) {
    // While tile 0 is on its way: q heads (a warp each; rows past the group zero), then the
    // token's k and v, to the cache and, when in tile 0, to its rows there.
    const A* row = static_cast<const A*>(rope.qkv) + w.t * (hq + 2 * hk) * D;
    const int32_t pos = rope.positions[w.t];
    for (int r = warp; r < 16; r += kWarps) {
      A* dst = sq + r * kStride;
      if (r < w.g)
        rope_head(row + (w.h0 + r) * D, rope.q_norm, rope.norm_dtype, rope.eps, D, pos, rope.cos, rope.sin,
                  rope.max_positions, lane, [&](int64_t i, float o1, float o2) {
                    dst[i] = from_float<A>(o1), dst[i + D / 2] = from_float<A>(o2);
                  });
      else
        for (int c = lane; c < kChunks; c += 32) reinterpret_cast<uint4*>(dst)[c] = zero;
    }
    if (writes) {
      const int64_t at = (static_cast<int64_t>(slot) * hk + w.kh) * D;
      C* kd = const_cast<C*>(k_cache) + at;  // (this kernel's one write to the cache)
      C* vd = const_cast<C*>(v_cache) + at;
      const int64_t j = own - w.k0;  // the key's row in tile 0, if < kTileKeys
      C* k_row = nullptr;
      C* v_row = nullptr;
      if (j < kTileKeys) {
        if constexpr (kFp8) {
          k_row = reinterpret_cast<C*>(raw_k + j * D);
          v_row = reinterpret_cast<C*>(raw_v + j * D);
        } else {
          k_row = sk + j * kStride;
          v_row = sv + j * kStride;
        }
      }
      if (warp == w.g % kWarps) {  // the warps after the last q head's
        rope_head(row + (hq + w.kh) * D, rope.k_norm, rope.norm_dtype, rope.eps, D, pos, rope.cos, rope.sin,
                  rope.max_positions, lane, [&](int64_t i, float o1, float o2) {
                    const C a = to_cache<C>(o1, k_scale), b = to_cache<C>(o2, k_scale);
                    kd[i] = a, kd[i + D / 2] = b;
                    if (k_row) k_row[i] = a, k_row[i + D / 2] = b;
                  });
      } else if (warp == (w.g + 1) % kWarps) {
        for (int i = lane; i < D; i += 32) {
          const C v = to_cache<C>(to_float(load_activation(row + (hq + hk + w.kh) * D + i)), v_scale);
          vd[i] = v;
          if (v_row) v_row[i] = v;
        }
      }
    }
    __syncthreads();  // the cache written before any later tile's copy; q and the rows before use
  }

  const int g4 = lane / 4, tig = lane % 4;
  uint32_t qa[D / 16][4];
  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;
  for (int step = 0; step < steps; ++step) {
    if (step + 1 < steps) load_kv((step + 1) & 1, w.k0 + static_cast<int64_t>(step + 1) * kTileKeys, -1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    if constexpr (kFp8) {  // this step's raw tile has landed: to A, once for all warps
      convert_fp8_tile<A, D, kWarps * 32>(raw_k + (step & 1) * kTileKeys * D, sk, kTileKeys, kStride, k_scale);
      convert_fp8_tile<A, D, kWarps * 32>(raw_v + (step & 1) * kTileKeys * D, sv, kTileKeys, kStride, v_scale);
      __syncthreads();
    }
    if (step == 0) {
#pragma unroll
      for (int kc = 0; kc < D / 16; ++kc) ldmatrix_x4(qa[kc], sq + (lane % 16) * kStride + kc * 16 + (lane / 16) * 8);
    }
    const int stage = kFp8 ? 0 : (step & 1);
    const A* K = sk + (stage * kTileKeys + warp * 16) * kStride;  // this warp's 16 keys
    const A* V = sv + (stage * kTileKeys + warp * 16) * kStride;
    float sc[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
    for (int kc = 0; kc < D / 16; ++kc) {
      uint32_t b[4];
      ldmatrix_x4(b, K + ((lane / 16) * 8 + lane % 8) * kStride + kc * 16 + ((lane / 8) % 2) * 8);
      mma16816<A>(sc[0], qa[kc], b[0], b[1]);
      mma16816<A>(sc[1], qa[kc], b[2], b[3]);
    }
    const int64_t key0 = w.k0 + static_cast<int64_t>(step) * kTileKeys + warp * 16;
    float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
    for (int n = 0; n < 2; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const bool valid = key0 + n * 8 + 2 * tig + e < w.k1;
        sc[n][e] = valid ? sc[n][e] * scale_log2 : -INFINITY;
        sc[n][2 + e] = valid ? sc[n][2 + e] * scale_log2 : -INFINITY;
        mx_a = fmaxf(mx_a, sc[n][e]);
        mx_b = fmaxf(mx_b, sc[n][2 + e]);
      }
#pragma unroll
    for (int x = 1; x < 4; x <<= 1) {
      mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, x));
      mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, x));
    }
    const float new_a = fmaxf(m_a, mx_a), new_b = fmaxf(m_b, mx_b);
    const float base_a = new_a == -INFINITY ? 0.0f : new_a, base_b = new_b == -INFINITY ? 0.0f : new_b;
    const float corr_a = exp2f(m_a - base_a), corr_b = exp2f(m_b - base_b);
    m_a = new_a, m_b = new_b;
    float sum_a = 0.0f, sum_b = 0.0f;
#pragma unroll
    for (int n = 0; n < 2; ++n) {
      sc[n][0] = exp2f(sc[n][0] - base_a), sc[n][1] = exp2f(sc[n][1] - base_a);
      sc[n][2] = exp2f(sc[n][2] - base_b), sc[n][3] = exp2f(sc[n][3] - base_b);
      sum_a += sc[n][0] + sc[n][1];
      sum_b += sc[n][2] + sc[n][3];
    }
    l_a = l_a * corr_a + sum_a;
    l_b = l_b * corr_b + sum_b;
    const uint32_t pa[4] = {pack2<A>(sc[0][0], sc[0][1]), pack2<A>(sc[0][2], sc[0][3]), pack2<A>(sc[1][0], sc[1][1]),
                            pack2<A>(sc[1][2], sc[1][3])};
#pragma unroll
    for (int n = 0; n < D / 8; n += 2) {
      o[n][0] *= corr_a, o[n][1] *= corr_a, o[n][2] *= corr_b, o[n][3] *= corr_b;
      o[n + 1][0] *= corr_a, o[n + 1][1] *= corr_a, o[n + 1][2] *= corr_b, o[n + 1][3] *= corr_b;
      uint32_t b[4];
      ldmatrix_x4_trans(b, V + (lane % 16) * kStride + (n + lane / 16) * 8);
      mma16816<A>(o[n], pa, b[0], b[1]);
      mma16816<A>(o[n + 1], pa, b[2], b[3]);
    }
    __syncthreads();  // this stage is read; the next iteration's copy (or conversion) may overwrite it
  }
  cp_async_wait<0>();
  __syncthreads();
#pragma unroll
  for (int x = 1; x < 4; x <<= 1) {
    l_a += __shfl_xor_sync(0xffffffffu, l_a, x);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, x);
  }
  // The K/V tiles are consumed: their shared memory (with an E4M3 cache's raw tiles, which
  // follow) holds the warps' states for the merge (natural-log maxima, as the other kernels
  // and combine_kernel keep them).
  float* sm_acc = reinterpret_cast<float*>(sk);  // [kWarps][16][D]
  float* sm_m = sm_acc + kWarps * 16 * D;        // [kWarps][16]
  float* sm_l = sm_m + kWarps * 16;
  const int row_a = g4, row_b = g4 + 8;
#pragma unroll
  for (int n = 0; n < D / 8; ++n) {
    const int x = n * 8 + 2 * tig;
    sm_acc[(warp * 16 + row_a) * D + x] = o[n][0], sm_acc[(warp * 16 + row_a) * D + x + 1] = o[n][1];
    sm_acc[(warp * 16 + row_b) * D + x] = o[n][2], sm_acc[(warp * 16 + row_b) * D + x + 1] = o[n][3];
  }
  if (tig == 0) {
    constexpr float kLn2 = 0.6931471805599453f;
    sm_m[warp * 16 + row_a] = m_a * kLn2, sm_l[warp * 16 + row_a] = l_a;
    sm_m[warp * 16 + row_b] = m_b * kLn2, sm_l[warp * 16 + row_b] = l_b;
  }
  __syncthreads();
  if constexpr (kCluster)  // (Q's tile is consumed: its shared memory holds the partials)
    cluster_merge(w, sm_acc, sm_m, sm_l, 16, hq, D, out, reinterpret_cast<float*>(sq));
  else
    write_merged(w, sm_acc, sm_m, sm_l, 16, D, hq, D, out, partial);
}

// Q, and K and V twice (16-bit caches); or Q, K and V once and the raw E4M3 tiles twice. Either
// way at least the merge's [kWarps][16][D] floats and maxima and sums after Q.
template <int D, bool kFp8>
constexpr size_t tc_attention_smem() {
  constexpr size_t keys = 16 * kWarps, row = (D + 8) * 2;
  return kFp8 ? (16 + 2 * keys) * row + 4 * keys * D : (16 + 4 * keys) * row;
}
template <int D>
constexpr bool tc_merge_fits() {
  return tc_attention_smem<D, true>() - 16 * (D + 8) * 2 >= (kWarps * 16 * D + 2 * kWarps * 16) * 4;
}
static_assert(tc_merge_fits<64>() && tc_merge_fits<128>() && tc_merge_fits<256>());
// A cluster's partials ([kMaxGroup][D + 2] floats) fit in Q's tile.
template <int D>
constexpr bool cluster_partials_fit() {
  return kMaxGroup * (D + 2) * 4 <= 16 * (D + 8) * 2;
}
static_assert(cluster_partials_fit<64>() && cluster_partials_fit<128>() && cluster_partials_fit<256>());

// FERRUM_ATTENTION_CLUSTER=0: splits always merged by combine_kernel (to compare).
bool cluster_merge_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("FERRUM_ATTENTION_CLUSTER");
    return !(v && std::atoi(v) == 0);
  }();
  return on;
}

// Whether a decode grid of `blocks` (token, KV head, heads) blocks with `splits` key splits
// merges them in clusters: the one rule attention_partial_floats sizes the splits by and
// paged_attention launches by.
bool merges_in_clusters(int64_t blocks, int64_t splits) {
  return cluster_merge_enabled() && splits > 1 && splits <= kClusterSplits &&
         blocks * kClusterSplits <= kClusterMaxBlocks;
}

// Launches the cluster form (a cluster per (token, KV head, heads): its splits); false where
// the GPU cannot run it (then nothing is left pending).
template <typename... KernelArgs, typename... Args>
bool launch_clusters(void (*kernel)(KernelArgs...), dim3 grid, size_t smem, cudaStream_t s, Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = dim3(kWarps * 32);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[2];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = 1;
  attr[0].val.clusterDim.y = grid.y;
  attr[0].val.clusterDim.z = 1;
  attr[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[1].val.programmaticStreamSerializationAllowed = pdl_enabled() ? 1 : 0;
  cfg.attrs = attr;
  cfg.numAttrs = 2;
  // Whether the GPU can hold one such cluster at all, asked once per kernel, cluster size and
  // shared memory (not a stream operation: fine while a graph is recorded, where a launch
  // that cannot run would only fail when the graph is instantiated or replayed).
  static std::mutex lock;
  static std::map<std::tuple<const void*, unsigned, size_t>, bool> fits;
  {
    std::lock_guard<std::mutex> held(lock);
    const auto key = std::make_tuple(reinterpret_cast<const void*>(kernel), grid.y, smem);
    auto it = fits.find(key);
    if (it == fits.end()) {
      int clusters = 0;
      if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &cfg) != cudaSuccess) {
        cudaGetLastError();  // (its own error; asked again next time)
        return false;
      }
      it = fits.emplace(key, clusters > 0).first;
    }
    if (!it->second) return false;
  }
  if (cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...) == cudaSuccess) return true;
  cudaGetLastError();  // (a launch error is not sticky)
  return false;
}

// Merges a (token, head)'s splits: weights exp(m_s - max) once per split in shared memory,
// then one pass over the accumulators.
template <typename A>
__global__ void combine_kernel(const float* partial, int64_t splits, int64_t d, const int32_t* query_start,
                               int32_t num_seqs, int64_t hq, int32_t tiled_min_q, A* out) {
  __shared__ float weight[kMaxSplits];
  __shared__ float inv_sum;
  pdl_wait();
  pdl_trigger();
  const int64_t bh = blockIdx.x;
  if (tiled_min_q > 0) {
    const int s = sequence_of(query_start, num_seqs, bh / hq);
    if (query_start[s + 1] - query_start[s] >= tiled_min_q) return;
  }
  const float* part = partial + bh * splits * (d + 2);
  if (threadIdx.x < 32) {
    float mx = -INFINITY;
    for (int64_t s = threadIdx.x; s < splits; s += 32)
      if (part[s * (d + 2) + 1] > 0.0f) mx = fmaxf(mx, part[s * (d + 2)]);
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.0f;
    for (int64_t s = threadIdx.x; s < splits; s += 32) {
      const float l = part[s * (d + 2) + 1];
      const float w = l > 0.0f ? expf(part[s * (d + 2)] - mx) : 0.0f;
      weight[s] = w;
      sum += l * w;
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (threadIdx.x == 0) inv_sum = 1.0f / sum;
  }
  __syncthreads();
  for (int64_t x = threadIdx.x; x < d; x += blockDim.x) {
    float v = 0.0f;
#pragma unroll 8
    for (int64_t s = 0; s < splits; ++s) v += weight[s] * part[s * (d + 2) + 2 + x];
    out[bh * d + x] = from_float<A>(v * inv_sum);
  }
}

}  // namespace

int64_t attention_partial_floats(int64_t tokens, int64_t hq, int64_t hk, int64_t d, int64_t max_context,
                                 int64_t* splits, int64_t* keys_per_split) {
  // Enough blocks to fill the GPU (about 16 per SM of an H100), but at least 64 keys a split
  // and at most kMaxSplits splits.
  constexpr int64_t kTargetBlocks = 2048, kMinKeys = 64;
  const int64_t chunks = (hq / hk + kMaxGroup - 1) / kMaxGroup;
  const int64_t blocks = tokens * hk * chunks;
  int64_t n = std::min<int64_t>((kTargetBlocks + blocks - 1) / blocks, kMaxSplits);
  static const int64_t forced = [] {  // FERRUM_ATTENTION_SPLITS=N: at most N key splits (diagnosis)
    const char* v = std::getenv("FERRUM_ATTENTION_SPLITS");
    return v ? std::max<int64_t>(1, std::atoll(v)) : int64_t(0);
  }();
  if (forced) n = std::min(n, forced);
  n = std::max<int64_t>(1, std::min(n, (max_context + kMinKeys - 1) / kMinKeys));
  // A small decode (a few sequences: the GPU mostly idle) merges up to twice kClusterSplits
  // splits as kClusterSplits in a cluster, no second kernel, though a block may then take two
  // tiles of keys. On an H200 that gained 1% at one sequence (Llama-3.1-8B GPTQ, Q4_K_M,
  // Qwen3-30B-A3B) and lost 2% at 16 (GPTQ), whose blocks fill the GPU: those keep
  // combine_kernel.
  if (n <= 2 * kClusterSplits && merges_in_clusters(blocks, kClusterSplits)) n = std::min<int64_t>(n, kClusterSplits);
  *keys_per_split = (max_context + n - 1) / n;
  *splits = (max_context + *keys_per_split - 1) / *keys_per_split;
  return *splits > 1 ? tokens * hq * *splits * (d + 2) : 0;
}

bool paged_attention(const void* q, DType act_dtype, const void* k_cache, const void* v_cache, DType cache_dtype,
                     float k_scale, float v_scale, const int32_t* query_start,
                     const int32_t* seq_lens, const int32_t* block_tables, int32_t num_seqs, int32_t max_blocks,
                     int32_t block_size, int64_t tokens, int64_t hq, int64_t hk, int64_t d, float scale, void* out,
                     int64_t splits, int64_t keys_per_split, float* partial, int32_t tiled_min_q, cudaStream_t s,
                     const QkvRope* rope) {
  if (tokens == 0) return true;
  // The fused form: decode steps only (each token its sequence's last position, no prefill
  // tiles), over the tensor-core kernel.
  if (rope && (!tensor_core_attention(act_dtype, cache_dtype, d) || tokens != num_seqs || tiled_min_q != 0))
    return false;
  const int chunks = static_cast<int>((hq / hk + kMaxGroup - 1) / kMaxGroup);
  dim3 grid(static_cast<unsigned>(tokens * hk * chunks), static_cast<unsigned>(splits));
  if (d > 256 || splits > kMaxSplits) return false;
  if (cache_dtype != act_dtype && cache_dtype != DType::F8E4M3) return false;
  auto combine = [&](auto* act_type) {
    using A = std::remove_pointer_t<decltype(act_type)>;
    if (splits > 1)
      launch_pdl(combine_kernel<A>, static_cast<unsigned>(tokens * hq), 128, 0, s, partial, splits, d, query_start,
                 num_seqs, hq, tiled_min_q, static_cast<A*>(out));
  };
  // The cache's element type: the activations' own, or E4M3.
  auto with_cache = [&](auto* act_type, auto&& f) {
    if (cache_dtype == DType::F8E4M3) f(act_type, static_cast<__nv_fp8_e4m3*>(nullptr));
    else f(act_type, act_type);
  };
  if (tensor_core_attention(act_dtype, cache_dtype, d)) {
    auto tc = [&](auto dim, auto* act_type, auto* cache_type) {
      using A = std::remove_pointer_t<decltype(act_type)>;
      using C = std::remove_pointer_t<decltype(cache_type)>;
      constexpr int D = decltype(dim)::value;
      constexpr size_t bytes = tc_attention_smem<D, is_fp8_v<C>>();
      static const bool configured = [] {  // beyond 48 KB of shared memory needs opting in
        for (auto kernel : {tc_attention_kernel<D, A, C, false, false>, tc_attention_kernel<D, A, C, true, false>,
                            tc_attention_kernel<D, A, C, false, true>, tc_attention_kernel<D, A, C, true, true>})
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
        return true;
      }();
      (void)configured;
      const A* qa = static_cast<const A*>(q);
      const C* kc = static_cast<const C*>(k_cache);
      const C* vc = static_cast<const C*>(v_cache);
      const float scale_log2 = scale * 1.4426950408889634f;
      const QkvRope r = rope ? *rope : QkvRope{};
      auto go = [&](auto fused) {
        constexpr bool kFused = decltype(fused)::value;
        if (merges_in_clusters(grid.x, splits) &&
            launch_clusters(tc_attention_kernel<D, A, C, true, kFused>, grid, bytes, s, qa, kc, vc, query_start,
                            seq_lens, block_tables, num_seqs, max_blocks, block_size, hq, hk, scale_log2,
                            keys_per_split, chunks, tiled_min_q, k_scale, v_scale, static_cast<A*>(out), partial, r))
          return;
        launch_pdl(tc_attention_kernel<D, A, C, false, kFused>, grid, kWarps * 32, bytes, s, qa, kc, vc, query_start,
                   seq_lens, block_tables, num_seqs, max_blocks, block_size, hq, hk, scale_log2, keys_per_split,
                   chunks, tiled_min_q, k_scale, v_scale, static_cast<A*>(out), partial, r);
        combine(act_type);
      };
      if (rope) go(std::true_type{});
      else go(std::false_type{});
    };
    auto with_dim = [&](auto* a, auto* c) {
      if (d == 64) tc(std::integral_constant<int, 64>(), a, c);
      else if (d == 128) tc(std::integral_constant<int, 128>(), a, c);
      else tc(std::integral_constant<int, 256>(), a, c);
    };
    if (act_dtype == DType::BF16) with_cache(static_cast<__nv_bfloat16*>(nullptr), with_dim);
    else with_cache(static_cast<__half*>(nullptr), with_dim);
    return true;
  }
  auto launch = [&](auto per_lane, auto* act_type, auto* cache_type) {
    using A = std::remove_pointer_t<decltype(act_type)>;
    using C = std::remove_pointer_t<decltype(cache_type)>;
    attention_kernel<decltype(per_lane)::value, A, C><<<grid, kWarps * 32, 0, s>>>(
        static_cast<const A*>(q), static_cast<const C*>(k_cache), static_cast<const C*>(v_cache), query_start,
        seq_lens, block_tables, num_seqs, max_blocks, block_size, hq, hk, d, scale, keys_per_split, chunks,
        tiled_min_q, k_scale, v_scale, static_cast<A*>(out), partial);
    if (splits > 1)
      combine_kernel<<<static_cast<unsigned>(tokens * hq), 128, 0, s>>>(partial, splits, d, query_start, num_seqs,
                                                                        hq, tiled_min_q, static_cast<A*>(out));
  };
  auto typed = [&](auto per_lane) {
    with_type(act_dtype, [&](auto* a) { with_cache(a, [&](auto* a2, auto* c) { launch(per_lane, a2, c); }); });
  };
  if (d <= 32) typed(std::integral_constant<int, 1>());
  else if (d <= 64) typed(std::integral_constant<int, 2>());
  else if (d <= 128) typed(std::integral_constant<int, 4>());
  else typed(std::integral_constant<int, 8>());
  return true;
}

}  // namespace ferrum::cuda
