// Causal attention over the paged KV cache for a flat batch of prefill chunks and decodes.
// One block per (query token, query head); its warps take every 4th key with an online
// softmax (running max and sum), then merge. Query token i of sequence s sits at position
// seq_len - q_len + i and sees keys 0..that position, as in backend/cpu/cpu_attention.cpp.
#include <cuda_runtime.h>

#include "backend/cuda/cuda_kernels.h"

namespace ferrum::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxDim = 256;
constexpr int kPerLane = kMaxDim / 32;

__global__ void paged_attention_kernel(const float* q, const float* k_cache, const float* v_cache,
                                       const int32_t* query_start, const int32_t* seq_lens,
                                       const int32_t* block_tables, int32_t num_seqs, int32_t max_blocks,
                                       int32_t block_size, int64_t hq, int64_t hk, int64_t d, float scale,
                                       float* out) {
  __shared__ float sm_acc[kWarps][kMaxDim];
  __shared__ float sm_m[kWarps], sm_l[kWarps];
  const int64_t t = blockIdx.x / hq, h = blockIdx.x % hq, kh = h / (hq / hk);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

  int lo = 0, hi = num_seqs - 1;  // the sequence of token t: last s with query_start[s] <= t
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (query_start[mid] <= t) lo = mid;
    else hi = mid - 1;
  }
  const int s = lo;
  const int64_t q_len = query_start[s + 1] - query_start[s];
  const int64_t ctx = seq_lens[s] - q_len + (t - query_start[s]) + 1;
  const int32_t* table = block_tables + static_cast<int64_t>(s) * max_blocks;

  float qr[kPerLane], acc[kPerLane];
  const float* qv = q + (t * hq + h) * d;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t x = lane + 32 * i;
    qr[i] = x < d ? qv[x] * scale : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = warp; j < ctx; j += kWarps) {
    const int64_t slot = static_cast<int64_t>(table[j / block_size]) * block_size + j % block_size;
    const float* kr = k_cache + (slot * hk + kh) * d;
    const float* vr = v_cache + (slot * hk + kh) * d;
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t x = lane + 32 * i;
      if (x < d) dot += qr[i] * kr[x];
    }
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    const float m_new = fmaxf(m, dot);
    const float corr = expf(m - m_new), p = expf(dot - m_new);
    l = l * corr + p;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t x = lane + 32 * i;
      if (x < d) acc[i] = acc[i] * corr + p * vr[x];
    }
    m = m_new;
  }
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t x = lane + 32 * i;
    if (x < d) sm_acc[warp][x] = acc[i];
  }
  if (lane == 0) sm_m[warp] = m, sm_l[warp] = l;
  __syncthreads();
  float mx = -INFINITY;
  for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, sm_m[w]);
  float sum = 0.0f, wgt[kWarps];
  for (int w = 0; w < kWarps; ++w) sum += sm_l[w] * (wgt[w] = sm_l[w] > 0.0f ? expf(sm_m[w] - mx) : 0.0f);
  float* o = out + (t * hq + h) * d;
  for (int64_t x = threadIdx.x; x < d; x += blockDim.x) {
    float v = 0.0f;
    for (int w = 0; w < kWarps; ++w) v += wgt[w] * sm_acc[w][x];
    o[x] = v / sum;
  }
}

}  // namespace

void paged_attention(const float* q, const float* k_cache, const float* v_cache, const int32_t* query_start,
                     const int32_t* seq_lens, const int32_t* block_tables, int32_t num_seqs, int32_t max_blocks,
                     int32_t block_size, int64_t tokens, int64_t hq, int64_t hk, int64_t d, float scale, float* out,
                     cudaStream_t s) {
  if (tokens == 0) return;
  paged_attention_kernel<<<static_cast<unsigned>(tokens * hq), kWarps * 32, 0, s>>>(
      q, k_cache, v_cache, query_start, seq_lens, block_tables, num_seqs, max_blocks, block_size, hq, hk, d, scale,
      out);
}

int max_attention_head_dim() { return kMaxDim; }

}  // namespace ferrum::cuda
