// Causal attention over the paged KV cache for a flat batch of prefill chunks and decodes.
// Blocks per (query token, query head, key split); warps take every 4th key of the split with
// an online softmax (running max and sum), then merge; splits merge in a second kernel. Query token i of sequence s sits at position
// seq_len - q_len + i and sees keys 0..that position, as in backend/cpu/cpu_attention.cpp.
#include <cuda_runtime.h>

#include <algorithm>

#include "backend/cuda/cuda_kernels.h"

namespace ferrum::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxDim = 256;
constexpr int kPerLane = kMaxDim / 32;

// Blocks (token, head, split): split covers keys [split * keys_per_split, ...). With one split
// the block writes the output; otherwise the unnormalized partial (m, l, acc) that
// combine_kernel merges. Decode has few (token, head) pairs, so splitting the keys is what
// fills the GPU.
__global__ void attention_kernel(const float* q, const float* k_cache, const float* v_cache,
                                 const int32_t* query_start, const int32_t* seq_lens, const int32_t* block_tables,
                                 int32_t num_seqs, int32_t max_blocks, int32_t block_size, int64_t hq, int64_t hk,
                                 int64_t d, float scale, int64_t keys_per_split, float* out, float* partial) {
  __shared__ float sm_acc[kWarps][kMaxDim];
  __shared__ float sm_m[kWarps], sm_l[kWarps];
  const int64_t bh = blockIdx.x, t = bh / hq, h = bh % hq, kh = h / (hq / hk);
  const int64_t split = blockIdx.y, splits = gridDim.y;
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
  const int64_t k0 = split * keys_per_split, k1 = min(ctx, k0 + keys_per_split);
  const int32_t* table = block_tables + static_cast<int64_t>(s) * max_blocks;

  float qr[kPerLane], acc[kPerLane];
  const float* qv = q + bh * d;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t x = lane + 32 * i;
    qr[i] = x < d ? qv[x] * scale : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = k0 + warp; j < k1; j += kWarps) {
    const int64_t slot = static_cast<int64_t>(table[j / block_size]) * block_size + j % block_size;
    const float* kr = k_cache + (slot * hk + kh) * d;
    const float* vr = v_cache + (slot * hk + kh) * d;
    float vv[kPerLane];
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t x = lane + 32 * i;
      vv[i] = x < d ? vr[x] : 0.0f;  // issued with the K loads, used after the softmax
      if (x < d) dot += qr[i] * kr[x];
    }
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    const float m_new = fmaxf(m, dot);
    const float corr = expf(m - m_new), p = expf(dot - m_new);
    l = l * corr + p;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) acc[i] = acc[i] * corr + p * vv[i];
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
  if (splits == 1) {
    float* o = out + bh * d;
    for (int64_t x = threadIdx.x; x < d; x += blockDim.x) {
      float v = 0.0f;
      for (int w = 0; w < kWarps; ++w) v += wgt[w] * sm_acc[w][x];
      o[x] = v / sum;
    }
    return;
  }
  // partial layout per (bh, split): m, l, then d accumulator values.
  float* part = partial + (bh * splits + split) * (d + 2);
  if (threadIdx.x == 0) part[0] = mx, part[1] = sum;  // sum == 0: no keys in this split
  for (int64_t x = threadIdx.x; x < d; x += blockDim.x) {
    float v = 0.0f;
    for (int w = 0; w < kWarps; ++w) v += wgt[w] * sm_acc[w][x];
    part[2 + x] = v;
  }
}

__global__ void combine_kernel(const float* partial, int64_t splits, int64_t d, float* out) {
  const int64_t bh = blockIdx.x;
  const float* part = partial + bh * splits * (d + 2);
  float mx = -INFINITY;
  for (int64_t s = 0; s < splits; ++s)
    if (part[s * (d + 2) + 1] > 0.0f) mx = fmaxf(mx, part[s * (d + 2)]);
  float sum = 0.0f;
  for (int64_t s = 0; s < splits; ++s) {
    const float l = part[s * (d + 2) + 1];
    if (l > 0.0f) sum += l * expf(part[s * (d + 2)] - mx);
  }
  for (int64_t x = threadIdx.x; x < d; x += blockDim.x) {
    float v = 0.0f;
    for (int64_t s = 0; s < splits; ++s) {
      const float* p = part + s * (d + 2);
      if (p[1] > 0.0f) v += p[2 + x] * expf(p[0] - mx);
    }
    out[bh * d + x] = v / sum;
  }
}

}  // namespace

int64_t attention_partial_floats(int64_t tokens, int64_t hq, int64_t d, int64_t max_context, int64_t* splits,
                                 int64_t* keys_per_split) {
  // Enough blocks to fill the GPU (about 8 per SM of an H100), but at least 32 keys a split.
  constexpr int64_t kTargetBlocks = 1024, kMinKeys = 32;
  int64_t n = (kTargetBlocks + tokens * hq - 1) / (tokens * hq);
  n = std::max<int64_t>(1, std::min(n, (max_context + kMinKeys - 1) / kMinKeys));
  *keys_per_split = (max_context + n - 1) / n;
  *splits = (max_context + *keys_per_split - 1) / *keys_per_split;
  return *splits > 1 ? tokens * hq * *splits * (d + 2) : 0;
}

void paged_attention(const float* q, const float* k_cache, const float* v_cache, const int32_t* query_start,
                     const int32_t* seq_lens, const int32_t* block_tables, int32_t num_seqs, int32_t max_blocks,
                     int32_t block_size, int64_t tokens, int64_t hq, int64_t hk, int64_t d, float scale, float* out,
                     int64_t splits, int64_t keys_per_split, float* partial, cudaStream_t s) {
  if (tokens == 0) return;
  dim3 grid(static_cast<unsigned>(tokens * hq), static_cast<unsigned>(splits));
  attention_kernel<<<grid, kWarps * 32, 0, s>>>(q, k_cache, v_cache, query_start, seq_lens, block_tables, num_seqs,
                                                 max_blocks, block_size, hq, hk, d, scale, keys_per_split, out,
                                                 partial);
  if (splits > 1) combine_kernel<<<static_cast<unsigned>(tokens * hq), 128, 0, s>>>(partial, splits, d, out);
}

int max_attention_head_dim() { return kMaxDim; }

}  // namespace ferrum::cuda
