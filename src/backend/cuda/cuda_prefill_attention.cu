// Causal attention for long prompts on tensor cores, FlashAttention-2 style: a block takes 128
// consecutive queries (64 for head_dim 256) of one sequence and one query head; each of its 4
// warps owns 32 (16) query rows. Per step of 64 keys (paged K/V tiles copied into shared memory with cp.async, the next
// tile in flight while this one is used): S = Q K^T with mma.sync m16n8k16 (16-bit inputs, F32
// accumulation) kept in registers, an online softmax on those registers (exp2, the scale
// folded in), then O += P V with P reused as the A operand straight from the S registers.
// Only the diagonal tiles need the causal mask; keys past the sequence are zero-filled. An E4M3
// cache's tiles are copied raw and converted to the activations' type (cuda_kv_fp8.cuh).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <type_traits>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_kv_fp8.cuh"
#include "backend/cuda/cuda_mma.cuh"
#include "backend/cuda/cuda_numeric.cuh"

namespace ferrum::cuda {
namespace {

constexpr int kKeys = 64;  // keys per step
constexpr int kThreads = 128;

// Q, and K and V twice (16-bit caches); or Q, K and V once and the raw E4M3 tiles twice.
template <int D, int kRowTiles, bool kFp8>
constexpr size_t smem_bytes() {
  constexpr size_t row = (D + 8) * 2;
  return kFp8 ? (64 * kRowTiles + 2 * kKeys) * row + 4 * kKeys * D : (64 * kRowTiles + 4 * kKeys) * row;
}

// kRowTiles 16-row MMA tiles per warp: 2 (a 128-query block, 32 rows a warp) lets every K and V
// fragment read from shared memory serve two tiles, as FlashAttention-2 does; head_dim 256
// keeps 1 (its accumulators would not fit twice in registers).
// A: q, out and the MMA inputs (16-bit); C: the cache, A or E4M3.
template <int D, int kRowTiles, typename A, typename C>
__global__ void __launch_bounds__(kThreads)
    flash_prefill_kernel(const A* __restrict__ q, const C* __restrict__ k_cache, const C* __restrict__ v_cache,
                         const int32_t* __restrict__ tiles, const int32_t* __restrict__ query_start,
                         const int32_t* __restrict__ seq_lens, const int32_t* __restrict__ block_tables,
                         int32_t max_blocks, int32_t block_size, int64_t hq, int64_t hk, float scale_log2,
                         float k_scale, float v_scale, A* __restrict__ out) {
  constexpr bool kFp8 = is_fp8_v<C>;
  static_assert(kFp8 || std::is_same_v<A, C>, "a 16-bit cache has the activations' type");
  constexpr int kRows = 64 * kRowTiles;
  constexpr int kStride = D + 8;  // padded rows: the 8 rows an ldmatrix reads hit different banks
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  constexpr int kStages = kFp8 ? 1 : 2;  // 16-bit tiles; an E4M3 cache double-buffers its raw bytes
  extern __shared__ __align__(128) unsigned char smem_raw[];
  A* sq = reinterpret_cast<A*>(smem_raw);
  A* sk = sq + kRows * kStride;            // [kStages][kKeys][kStride]
  A* sv = sk + kStages * kKeys * kStride;  // [kStages][kKeys][kStride]
  uint8_t* raw_k = reinterpret_cast<uint8_t*>(sv + kStages * kKeys * kStride);  // E4M3: [2][kKeys][D]
  uint8_t* raw_v = raw_k + 2 * kKeys * D;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int64_t h = blockIdx.x, kh = h / (hq / hk);
  const int s = tiles[2 * blockIdx.y], t0 = tiles[2 * blockIdx.y + 1];
  const int q_begin = query_start[s], q_len = query_start[s + 1] - q_begin;
  const int rows = min(kRows, q_begin + q_len - t0);
  const int64_t pos0 = static_cast<int64_t>(seq_lens[s]) - q_len + (t0 - q_begin);  // row 0's position
  const int64_t last_key = pos0 + rows - 1;
  const int32_t* table = block_tables + static_cast<int64_t>(s) * max_blocks;
  const uint4 zero = make_uint4(0, 0, 0, 0);

  for (int i = tid; i < kRows * kChunks; i += kThreads) {
    const int r = i / kChunks, c = i % kChunks;
    A* dst = sq + r * kStride + c * 8;
    if (r < rows) cp_async16(dst, q + ((t0 + r) * hq + h) * D + c * 8);
    else *reinterpret_cast<uint4*>(dst) = zero;
  }
  auto load_kv = [&](int stage, int64_t k0) {
    if constexpr (kFp8) {
      copy_fp8_tile<D, kThreads>(raw_k + stage * kKeys * D, raw_v + stage * kKeys * D,
                                 reinterpret_cast<const uint8_t*>(k_cache),
                                 reinterpret_cast<const uint8_t*>(v_cache), table, block_size, hk, kh, k0, kKeys,
                                 last_key + 1);
    } else {
      for (int i = tid; i < kKeys * kChunks; i += kThreads) {
        const int j = i / kChunks, c = i % kChunks;
        const int64_t key = k0 + j;
        A* dk = sk + (stage * kKeys + j) * kStride + c * 8;
        A* dv = sv + (stage * kKeys + j) * kStride + c * 8;
        if (key <= last_key) {
          const int64_t slot = static_cast<int64_t>(table[key / block_size]) * block_size + key % block_size;
          const int64_t off = (slot * hk + kh) * D + c * 8;
          cp_async16(dk, k_cache + off);
          cp_async16(dv, v_cache + off);
        } else {
          *reinterpret_cast<uint4*>(dk) = zero;
          *reinterpret_cast<uint4*>(dv) = zero;
        }
      }
    }
  };
  const int steps = static_cast<int>(last_key / kKeys) + 1;
  load_kv(0, 0);
  cp_async_commit();

  const int g = lane / 4, tig = lane % 4;
  const int row0 = warp * 16 * kRowTiles;  // this warp's first row
  const bool idle = row0 >= rows;          // a ragged last block: nothing to compute
  float o[kRowTiles][D / 8][4];
  float m[kRowTiles][2], l[kRowTiles][2];
#pragma unroll
  for (int rt = 0; rt < kRowTiles; ++rt) {
#pragma unroll
    for (int n = 0; n < D / 8; ++n) o[rt][n][0] = o[rt][n][1] = o[rt][n][2] = o[rt][n][3] = 0.0f;
    m[rt][0] = m[rt][1] = -INFINITY;
    l[rt][0] = l[rt][1] = 0.0f;
  }

  for (int step = 0; step < steps; ++step) {
    if (step + 1 < steps) load_kv((step + 1) & 1, static_cast<int64_t>(step + 1) * kKeys);
    cp_async_commit();
    cp_async_wait<1>();  // everything but the tile just requested has landed
    __syncthreads();
    if constexpr (kFp8) {  // to A, by every thread (idle warps too: the block syncs around it)
      convert_fp8_tile<A, D, kThreads>(raw_k + (step & 1) * kKeys * D, sk, kKeys, kStride, k_scale);
      convert_fp8_tile<A, D, kThreads>(raw_v + (step & 1) * kKeys * D, sv, kKeys, kStride, v_scale);
      __syncthreads();
    }
    const int stage = kFp8 ? 0 : (step & 1);
    const A* K = sk + stage * kKeys * kStride;
    const A* V = sv + stage * kKeys * kStride;
    if (!idle) {
      float sc[kRowTiles][kKeys / 8][4];
#pragma unroll
      for (int rt = 0; rt < kRowTiles; ++rt)
#pragma unroll
        for (int n = 0; n < kKeys / 8; ++n) sc[rt][n][0] = sc[rt][n][1] = sc[rt][n][2] = sc[rt][n][3] = 0.0f;
#pragma unroll
      for (int kc = 0; kc < D / 16; ++kc) {
        uint32_t a[kRowTiles][4];
#pragma unroll
        for (int rt = 0; rt < kRowTiles; ++rt)
          ldmatrix_x4(a[rt], sq + (row0 + rt * 16 + lane % 16) * kStride + kc * 16 + (lane / 16) * 8);
#pragma unroll
        for (int n = 0; n < kKeys / 8; n += 2) {
          uint32_t b[4];
          ldmatrix_x4(b, K + (n * 8 + (lane / 16) * 8 + lane % 8) * kStride + kc * 16 + ((lane / 8) % 2) * 8);
#pragma unroll
          for (int rt = 0; rt < kRowTiles; ++rt) {
            mma16816<A>(sc[rt][n], a[rt], b[0], b[1]);
            mma16816<A>(sc[rt][n + 1], a[rt], b[2], b[3]);
          }
        }
      }

      // Online softmax over this step's keys for each tile's rows g and g + 8.
      const int64_t key0 = static_cast<int64_t>(step) * kKeys;
      uint32_t pa[kRowTiles][kKeys / 16][4];
#pragma unroll
      for (int rt = 0; rt < kRowTiles; ++rt) {
        const int64_t pos_a = pos0 + row0 + rt * 16 + g, pos_b = pos_a + 8;
        const bool diagonal = key0 + kKeys - 1 > pos0 + row0 + rt * 16;  // some key may be past a row
        float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
        for (int n = 0; n < kKeys / 8; ++n) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int64_t key = key0 + n * 8 + 2 * tig + e;
            sc[rt][n][e] = !diagonal || key <= pos_a ? sc[rt][n][e] * scale_log2 : -INFINITY;
            sc[rt][n][2 + e] = !diagonal || key <= pos_b ? sc[rt][n][2 + e] * scale_log2 : -INFINITY;
            mx_a = fmaxf(mx_a, sc[rt][n][e]);
            mx_b = fmaxf(mx_b, sc[rt][n][2 + e]);
          }
        }
#pragma unroll
        for (int x = 1; x < 4; x <<= 1) {
          mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, x));
          mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, x));
        }
        const float new_a = fmaxf(m[rt][0], mx_a), new_b = fmaxf(m[rt][1], mx_b);
        // A row with no visible key yet keeps m = -inf: its p are 0, and nothing is rescaled.
        const float base_a = new_a == -INFINITY ? 0.0f : new_a, base_b = new_b == -INFINITY ? 0.0f : new_b;
        const float corr_a = exp2f(m[rt][0] - base_a), corr_b = exp2f(m[rt][1] - base_b);
        m[rt][0] = new_a, m[rt][1] = new_b;
        float sum_a = 0.0f, sum_b = 0.0f;
#pragma unroll
        for (int n = 0; n < kKeys / 8; ++n) {
          sc[rt][n][0] = exp2f(sc[rt][n][0] - base_a), sc[rt][n][1] = exp2f(sc[rt][n][1] - base_a);
          sc[rt][n][2] = exp2f(sc[rt][n][2] - base_b), sc[rt][n][3] = exp2f(sc[rt][n][3] - base_b);
          sum_a += sc[rt][n][0] + sc[rt][n][1];
          sum_b += sc[rt][n][2] + sc[rt][n][3];
        }
        l[rt][0] = l[rt][0] * corr_a + sum_a;  // this thread's share; the quad's are summed at the end
        l[rt][1] = l[rt][1] * corr_b + sum_b;
#pragma unroll
        for (int n = 0; n < D / 8; ++n)
          o[rt][n][0] *= corr_a, o[rt][n][1] *= corr_a, o[rt][n][2] *= corr_b, o[rt][n][3] *= corr_b;
        // P as the A operand of P V, straight from the S registers (16 keys = two 8-key tiles).
#pragma unroll
        for (int kk = 0; kk < kKeys / 16; ++kk) {
          pa[rt][kk][0] = pack2<A>(sc[rt][2 * kk][0], sc[rt][2 * kk][1]);
          pa[rt][kk][1] = pack2<A>(sc[rt][2 * kk][2], sc[rt][2 * kk][3]);
          pa[rt][kk][2] = pack2<A>(sc[rt][2 * kk + 1][0], sc[rt][2 * kk + 1][1]);
          pa[rt][kk][3] = pack2<A>(sc[rt][2 * kk + 1][2], sc[rt][2 * kk + 1][3]);
        }
      }

      // O += P V; each V fragment serves every row tile.
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk) {
#pragma unroll
        for (int n = 0; n < D / 8; n += 2) {
          uint32_t b[4];
          ldmatrix_x4_trans(b, V + (kk * 16 + lane % 16) * kStride + (n + lane / 16) * 8);
#pragma unroll
          for (int rt = 0; rt < kRowTiles; ++rt) {
            mma16816<A>(o[rt][n], pa[rt][kk], b[0], b[1]);
            mma16816<A>(o[rt][n + 1], pa[rt][kk], b[2], b[3]);
          }
        }
      }
    }
    __syncthreads();  // this stage is read; the next iteration's copy (or conversion) may overwrite it
  }
  if (idle) return;

#pragma unroll
  for (int rt = 0; rt < kRowTiles; ++rt) {
    float la = l[rt][0], lb = l[rt][1];
#pragma unroll
    for (int x = 1; x < 4; x <<= 1) {
      la += __shfl_xor_sync(0xffffffffu, la, x);
      lb += __shfl_xor_sync(0xffffffffu, lb, x);
    }
    const int row_a = row0 + rt * 16 + g, row_b = row_a + 8;
    const float inv_a = la > 0.0f ? 1.0f / la : 0.0f, inv_b = lb > 0.0f ? 1.0f / lb : 0.0f;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      const int x = n * 8 + 2 * tig;
      if (row_a < rows) {
        A* dst = out + ((t0 + row_a) * hq + h) * D + x;
        dst[0] = from_float<A>(o[rt][n][0] * inv_a), dst[1] = from_float<A>(o[rt][n][1] * inv_a);
      }
      if (row_b < rows) {
        A* dst = out + ((t0 + row_b) * hq + h) * D + x;
        dst[0] = from_float<A>(o[rt][n][2] * inv_b), dst[1] = from_float<A>(o[rt][n][3] * inv_b);
      }
    }
  }
}

// The launch arguments that do not depend on the kernel's types.
struct PrefillArgs {
  const void *q, *kc, *vc;
  const int32_t* tiles;
  int32_t num_tiles;
  const int32_t *query_start, *seq_lens, *block_tables;
  int32_t max_blocks, block_size;
  int64_t hq, hk;
  float scale, k_scale, v_scale;
  void* out;
};

template <int D, int kRowTiles, typename A, typename C>
void launch(const PrefillArgs& a, cudaStream_t s) {
  constexpr size_t bytes = smem_bytes<D, kRowTiles, is_fp8_v<C>>();
  static const bool configured = [] {  // beyond 48 KB of shared memory needs opting in
    cudaFuncSetAttribute(flash_prefill_kernel<D, kRowTiles, A, C>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(bytes));
    return true;
  }();
  (void)configured;
  dim3 grid(static_cast<unsigned>(a.hq), static_cast<unsigned>(a.num_tiles));
  flash_prefill_kernel<D, kRowTiles, A, C><<<grid, kThreads, bytes, s>>>(
      static_cast<const A*>(a.q), static_cast<const C*>(a.kc), static_cast<const C*>(a.vc), a.tiles, a.query_start,
      a.seq_lens, a.block_tables, a.max_blocks, a.block_size, a.hq, a.hk, a.scale * 1.4426950408889634f, a.k_scale,
      a.v_scale, static_cast<A*>(a.out));
}

template <typename A, typename C>
bool launch_for(int64_t d, const PrefillArgs& a, cudaStream_t s) {
  switch (d) {
    case 64: launch<64, 2, A, C>(a, s); return true;
    case 128: launch<128, 2, A, C>(a, s); return true;
    case 256: launch<256, 1, A, C>(a, s); return true;
    default: return false;
  }
}

template <typename A>
bool launch_for_cache(int64_t d, DType cache_dtype, const PrefillArgs& a, cudaStream_t s) {
  return cache_dtype == DType::F8E4M3 ? launch_for<A, __nv_fp8_e4m3>(d, a, s) : launch_for<A, A>(d, a, s);
}

}  // namespace

bool prefill_attention(const void* q, DType act_dtype, const void* k_cache, const void* v_cache, DType cache_dtype,
                       float k_scale, float v_scale,
                       const int32_t* tiles, int32_t num_tiles, const int32_t* query_start, const int32_t* seq_lens,
                       const int32_t* block_tables, int32_t max_blocks, int32_t block_size, int64_t hq, int64_t hk,
                       int64_t d, float scale, void* out, cudaStream_t s) {
  if (num_tiles == 0) return true;
  if (!tensor_core_attention(act_dtype, cache_dtype, d)) return false;
  const PrefillArgs a{q,        k_cache,      v_cache,    tiles,      num_tiles, query_start, seq_lens, block_tables,
                      max_blocks, block_size, hq,         hk,         scale,     k_scale,     v_scale,  out};
  if (act_dtype == DType::BF16) return launch_for_cache<__nv_bfloat16>(d, cache_dtype, a, s);
  return launch_for_cache<__half>(d, cache_dtype, a, s);
}

}  // namespace ferrum::cuda
