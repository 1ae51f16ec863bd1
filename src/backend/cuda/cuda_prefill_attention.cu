// Causal attention for long prompts, on tensor cores (FlashAttention-style): a block takes 16
// consecutive queries of one sequence and one KV head, and each of its 4 warps one query head
// of that KV head's group (GQA: K/V tiles are loaded once for all of them). For each step of
// 64 keys: S = Q K^T (bf16 WMMA, F32 accumulation), an online softmax per row in F32, then
// O = O * correction + P V. The per-token kernel in cuda_attention.cu walks every key one at a
// time, which costs the square of the prompt in latency-bound steps.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <type_traits>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_numeric.cuh"

namespace ferrum::cuda {
namespace {

using namespace nvcuda;
constexpr int kTile = kPrefillTile;  // queries per warp (rows of a WMMA tile)
constexpr int kKeys = 64;            // keys per step
constexpr int kHeads = 4;            // warps: query heads of one KV head per block


// Shared memory of one block, for head_dim D.
template <int D>
struct Smem {
  __nv_bfloat16 q[kHeads][kTile][D];  // scaled queries
  __nv_bfloat16 k[kKeys][D], v[kKeys][D];
  float s[kHeads][kTile][kKeys];  // scores
  __nv_bfloat16 p[kHeads][kTile][kKeys];
  float o[kHeads][kTile][D];  // running output (unnormalized)
  float m[kHeads][kTile], l[kHeads][kTile], corr[kHeads][kTile];
};

template <int D, typename C>
__global__ void prefill_attention_kernel(const C* __restrict__ q, const C* __restrict__ k_cache,
                                         const C* __restrict__ v_cache, const int32_t* __restrict__ tiles,
                                         const int32_t* __restrict__ query_start, const int32_t* __restrict__ seq_lens,
                                         const int32_t* __restrict__ block_tables, int32_t max_blocks,
                                         int32_t block_size, int64_t hq, int64_t hk, float scale,
                                         C* __restrict__ out) {
  extern __shared__ __align__(128) unsigned char smem_raw[];
  Smem<D>& sm = *reinterpret_cast<Smem<D>*>(smem_raw);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int s = tiles[2 * blockIdx.x], t0 = tiles[2 * blockIdx.x + 1];
  const int64_t kh = blockIdx.y, group = hq / hk;
  const int64_t head_in_group = static_cast<int64_t>(blockIdx.z) * kHeads + warp;
  const bool active = head_in_group < group;
  const int64_t h = kh * group + (active ? head_in_group : 0);
  const int q_begin = query_start[s], q_len = query_start[s + 1] - q_begin;
  const int rows = min(kTile, q_begin + q_len - t0);
  const int64_t pos0 = static_cast<int64_t>(seq_lens[s]) - q_len + (t0 - q_begin);  // row 0's position
  const int64_t last_key = pos0 + rows - 1;
  const int32_t* table = block_tables + static_cast<int64_t>(s) * max_blocks;

  for (int i = lane; i < kTile * D; i += 32) {
    const int r = i / D, x = i % D;
    const float v = active && r < rows ? to_float(q[((t0 + r) * hq + h) * D + x]) * scale : 0.0f;
    sm.q[warp][r][x] = __float2bfloat16_rn(v);
    sm.o[warp][r][x] = 0.0f;
  }
  if (lane < kTile) sm.m[warp][lane] = -INFINITY, sm.l[warp][lane] = 0.0f;

  for (int64_t k0 = 0; k0 <= last_key; k0 += kKeys) {
    __syncthreads();  // the previous step is done with k and v
    // 16-byte loads: 8 elements of one key's row per thread and iteration.
    constexpr int kVec = 8, kChunks = D / kVec;
    for (int i = threadIdx.x; i < kKeys * kChunks; i += blockDim.x) {
      const int j = i / kChunks, x = (i % kChunks) * kVec;
      const int64_t key = k0 + j;
      uint4 kraw = make_uint4(0, 0, 0, 0), vraw = make_uint4(0, 0, 0, 0);
      if (key <= last_key) {
        const int64_t slot = static_cast<int64_t>(table[key / block_size]) * block_size + key % block_size;
        kraw = __ldg(reinterpret_cast<const uint4*>(k_cache + (slot * hk + kh) * D + x));
        vraw = __ldg(reinterpret_cast<const uint4*>(v_cache + (slot * hk + kh) * D + x));
      }
      if constexpr (std::is_same_v<C, __nv_bfloat16>) {
        *reinterpret_cast<uint4*>(&sm.k[j][x]) = kraw;
        *reinterpret_cast<uint4*>(&sm.v[j][x]) = vraw;
      } else {  // f16 cache: the products run in bf16
        const C* kc8 = reinterpret_cast<const C*>(&kraw);
        const C* vc8 = reinterpret_cast<const C*>(&vraw);
#pragma unroll
        for (int e = 0; e < kVec; ++e) {
          sm.k[j][x + e] = __float2bfloat16_rn(to_float(kc8[e]));
          sm.v[j][x + e] = __float2bfloat16_rn(to_float(vc8[e]));
        }
      }
    }
    __syncthreads();
    if (!active) continue;

    // S = Q K^T, 16 x 64: K row-major [key][x] read as column-major [x][key] matrices.
#pragma unroll
    for (int n = 0; n < kKeys; n += 16) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
#pragma unroll
      for (int x = 0; x < D; x += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b;
        wmma::load_matrix_sync(a, &sm.q[warp][0][x], D);
        wmma::load_matrix_sync(b, &sm.k[n][x], D);
        wmma::mma_sync(acc, a, b, acc);
      }
      wmma::store_matrix_sync(&sm.s[warp][0][n], acc, kKeys, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax: two lanes per row, 32 keys each; keys past the row's position masked.
    {
      const int r = lane / 2, c0 = (lane % 2) * (kKeys / 2);
      const int64_t pos = pos0 + r;
      float mx = -INFINITY;
      for (int c = 0; c < kKeys / 2; ++c)
        if (r < rows && k0 + c0 + c <= pos) mx = fmaxf(mx, sm.s[warp][r][c0 + c]);
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      const float m_old = sm.m[warp][r];
      const float m_new = fmaxf(m_old, mx);
      const float corr = m_new == -INFINITY ? 1.0f : expf(m_old - m_new);
      float sum = 0.0f;
      for (int c = 0; c < kKeys / 2; ++c) {
        const bool visible = r < rows && k0 + c0 + c <= pos;
        const float p = visible ? expf(sm.s[warp][r][c0 + c] - m_new) : 0.0f;
        sm.p[warp][r][c0 + c] = __float2bfloat16_rn(p);
        sum += p;
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      __syncwarp();
      if (lane % 2 == 0) {
        sm.l[warp][r] = sm.l[warp][r] * corr + sum;
        sm.m[warp][r] = m_new;
        sm.corr[warp][r] = corr;
      }
    }
    __syncwarp();
    for (int i = lane; i < kTile * D; i += 32) sm.o[warp][i / D][i % D] *= sm.corr[warp][i / D];
    __syncwarp();

    // O += P V, accumulated in place.
#pragma unroll
    for (int x = 0; x < D; x += 16) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, &sm.o[warp][0][x], D, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kKeys; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> b;
        wmma::load_matrix_sync(a, &sm.p[warp][0][kk], kKeys);
        wmma::load_matrix_sync(b, &sm.v[kk][x], D);
        wmma::mma_sync(acc, a, b, acc);
      }
      wmma::store_matrix_sync(&sm.o[warp][0][x], acc, D, wmma::mem_row_major);
    }
    __syncwarp();
  }
  if (!active) return;
  for (int i = lane; i < rows * D; i += 32) {
    const int r = i / D, x = i % D;
    out[((t0 + r) * hq + h) * D + x] = from_float<C>(sm.o[warp][r][x] / sm.l[warp][r]);
  }
}

template <int D, typename C>
void launch(const void* q, const void* kc, const void* vc, const int32_t* tiles, int32_t num_tiles,
            const int32_t* query_start, const int32_t* seq_lens, const int32_t* block_tables, int32_t max_blocks,
            int32_t block_size, int64_t hq, int64_t hk, float scale, void* out, cudaStream_t s) {
  constexpr size_t bytes = sizeof(Smem<D>);
  static const bool configured = [] {  // beyond 48 KB of shared memory needs opting in
    cudaFuncSetAttribute(prefill_attention_kernel<D, C>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(bytes));
    return true;
  }();
  (void)configured;
  const int64_t chunks = (hq / hk + kHeads - 1) / kHeads;
  dim3 grid(static_cast<unsigned>(num_tiles), static_cast<unsigned>(hk), static_cast<unsigned>(chunks));
  prefill_attention_kernel<D, C><<<grid, kHeads * 32, bytes, s>>>(
      static_cast<const C*>(q), static_cast<const C*>(kc), static_cast<const C*>(vc), tiles, query_start, seq_lens,
      block_tables, max_blocks, block_size, hq, hk, scale, static_cast<C*>(out));
}

template <typename C>
bool launch_for(int64_t d, const void* q, const void* kc, const void* vc, const int32_t* tiles, int32_t num_tiles,
                const int32_t* query_start, const int32_t* seq_lens, const int32_t* block_tables, int32_t max_blocks,
                int32_t block_size, int64_t hq, int64_t hk, float scale, void* out, cudaStream_t s) {
  switch (d) {
    case 64: launch<64, C>(q, kc, vc, tiles, num_tiles, query_start, seq_lens, block_tables, max_blocks, block_size, hq, hk, scale, out, s); return true;
    case 128: launch<128, C>(q, kc, vc, tiles, num_tiles, query_start, seq_lens, block_tables, max_blocks, block_size, hq, hk, scale, out, s); return true;
    case 256: launch<256, C>(q, kc, vc, tiles, num_tiles, query_start, seq_lens, block_tables, max_blocks, block_size, hq, hk, scale, out, s); return true;
    default: return false;
  }
}

}  // namespace

bool prefill_attention(const void* q, const void* k_cache, const void* v_cache, DType cache_dtype,
                       const int32_t* tiles, int32_t num_tiles, const int32_t* query_start, const int32_t* seq_lens,
                       const int32_t* block_tables, int32_t max_blocks, int32_t block_size, int64_t hq, int64_t hk,
                       int64_t d, float scale, void* out, cudaStream_t s) {
  if (num_tiles == 0) return true;
  if (cache_dtype == DType::BF16)
    return launch_for<__nv_bfloat16>(d, q, k_cache, v_cache, tiles, num_tiles, query_start, seq_lens, block_tables,
                                     max_blocks, block_size, hq, hk, scale, out, s);
  if (cache_dtype == DType::F16)
    return launch_for<__half>(d, q, k_cache, v_cache, tiles, num_tiles, query_start, seq_lens, block_tables,
                              max_blocks, block_size, hq, hk, scale, out, s);
  return false;
}

}  // namespace ferrum::cuda
