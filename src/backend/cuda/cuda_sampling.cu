// Sampling on the GPU (backend/sampling.h): one block per logits row. Raw logprobs first (log-
// sum-exp and the top ones over the untouched row), then the row's sparse edits, then greedy
// or: temperature, min_p, top_k and top_p as thresholds on the scaled logits, and a
// Gumbel-max draw over the tokens that pass. The top_k / top_p thresholds are found by radix
// select over an order-preserving integer key of the floats: four passes of 8-bit digit
// histograms (counts for top_k, probability mass for top_p) instead of a sort.
#include <cuda_runtime.h>

#include <cfloat>
#include <cstdint>

#include "backend/cuda/cuda_kernels.h"
#include "backend/sampling.h"

namespace ferrum::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;

// Larger floats give larger keys (and -inf the smallest of the numbers).
__device__ __forceinline__ uint32_t order_key(float f) {
  const uint32_t b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

struct Best {
  float v;
  int32_t i;
};
// a before b in (value descending, index ascending) order; NaN never wins.
__device__ __forceinline__ bool better(Best a, Best b) {
  if (a.i < 0) return false;
  if (b.i < 0) return true;
  return a.v > b.v || (a.v == b.v && a.i < b.i);
}

struct Shared {
  float f[kWarps];
  Best best[kWarps];
  uint32_t count[256];
  float mass[256];
  float scalar[4];
  uint32_t word[4];
};

__device__ float block_max(float v, Shared& sm) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if (threadIdx.x % 32 == 0) sm.f[threadIdx.x / 32] = v;
  __syncthreads();
  v = sm.f[threadIdx.x % kWarps];
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ float block_sum(float v, Shared& sm) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (threadIdx.x % 32 == 0) sm.f[threadIdx.x / 32] = v;
  __syncthreads();
  v = sm.f[threadIdx.x % kWarps];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ Best block_best(Best b, Shared& sm) {
  for (int o = 16; o > 0; o >>= 1) {
    Best other{__shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.i, o)};
    if (better(other, b)) b = other;
  }
  __syncthreads();
  if (threadIdx.x % 32 == 0) sm.best[threadIdx.x / 32] = b;
  __syncthreads();
  b = sm.best[threadIdx.x % kWarps];
  for (int o = 16; o > 0; o >>= 1) {
    Best other{__shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.i, o)};
    if (better(other, b)) b = other;
  }
  return b;
}

// The largest key K with weight(keys >= K) >= target, where `weigh(i, &key)` returns token i's
// weight (0: not a candidate) and its key. Four passes of 8-bit digits, high to low; within a
// pass, one warp scans the 256 digit totals from the top.
template <bool kMass, typename Weigh>
__device__ uint32_t radix_select(int64_t vocab, float target, Shared& sm, Weigh weigh) {
  uint32_t prefix = 0, prefix_mask = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int d = threadIdx.x; d < 256; d += kThreads) sm.count[d] = 0, sm.mass[d] = 0.0f;
    __syncthreads();
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
      uint32_t key;
      const float w = weigh(i, &key);
      if (w <= 0.0f || (key & prefix_mask) != prefix) continue;
      const uint32_t d = (key >> shift) & 255u;
      if (kMass) atomicAdd(&sm.mass[d], w);
      else atomicAdd(&sm.count[d], 1u);
    }
    __syncthreads();
    if (threadIdx.x < 32) {
      // Lane l holds digits 255 - 8l ... 248 - 8l (from the top).
      const int lane = threadIdx.x;
      float own = 0.0f;
      for (int j = 0; j < 8; ++j) {
        const int d = 255 - 8 * lane - j;
        own += kMass ? sm.mass[d] : static_cast<float>(sm.count[d]);
      }
      float incl = own;  // inclusive prefix over lanes 0..lane (the higher digits)
      for (int o = 1; o < 32; o <<= 1) {
        const float up = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += up;
      }
      const float before = incl - own;
      const unsigned hit = __ballot_sync(0xffffffffu, incl >= target && own > 0.0f);
      // No lane reaches the target only through rounding of the sums: take the lowest digit seen.
      const unsigned any = __ballot_sync(0xffffffffu, own > 0.0f);
      const int chosen = hit ? __ffs(hit) - 1 : (any ? 31 - __clz(any) : 0);
      if (lane == chosen) {
        float cum = before;
        int digit = 255 - 8 * lane - 7;
        for (int j = 0; j < 8; ++j) {
          const int d = 255 - 8 * lane - j;
          const float v = kMass ? sm.mass[d] : static_cast<float>(sm.count[d]);
          if (v > 0.0f) digit = d;
          if (v > 0.0f && cum + v >= target) break;
          cum += v;
        }
        sm.word[0] = static_cast<uint32_t>(digit);
        sm.scalar[0] = target - cum;
      }
    }
    __syncthreads();
    prefix |= sm.word[0] << shift;
    prefix_mask |= 255u << shift;
    target = sm.scalar[0];
    __syncthreads();
  }
  return prefix;
}

__global__ void sample_kernel(float* logits, int64_t vocab, const SampleRow* rows, const LogitEdit* edits,
                              const uint32_t* masks, int32_t mask_words, float* edit_orig, int32_t* tokens, float* logprobs, int32_t* top_ids,
                              float* top_logprobs) {
  __shared__ Shared sm;
  const int64_t r = blockIdx.x;
  const SampleRow row = rows[r];
  float* l = logits + r * vocab;

  // Raw logprobs: of the model's output before any edit.
  float lse = 0.0f;
  if (row.num_logprobs >= 0) {
    float mx = -INFINITY;
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) mx = fmaxf(mx, l[i]);
    mx = block_max(mx, sm);
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) s += __expf(l[i] - mx);
    lse = mx + logf(block_sum(s, sm));
    Best prev{INFINITY, -1};
    for (int j = 0; j < row.num_logprobs && j < kMaxTopLogprobs; ++j) {
      Best b{-INFINITY, -1};
      for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
        const Best c{l[i], static_cast<int32_t>(i)};
        const bool after = prev.i < 0 || better(prev, c);
        if (after && better(c, b)) b = c;
      }
      b = block_best(b, sm);
      if (threadIdx.x == 0) {
        top_ids[r * kMaxTopLogprobs + j] = b.i;
        top_logprobs[r * kMaxTopLogprobs + j] = b.i >= 0 ? b.v - lse : -INFINITY;
      }
      prev = b;
    }
  }

  // Edits, phase by phase (a token appears at most once per phase).
  for (int32_t e = row.edits_begin + threadIdx.x; e < row.edits_end; e += kThreads) edit_orig[e] = l[edits[e].token];
  __syncthreads();
  for (int32_t kind = LogitEdit::Mask; kind <= LogitEdit::Penalty; ++kind) {
    for (int32_t e = row.edits_begin + threadIdx.x; e < row.edits_end; e += kThreads) {
      const LogitEdit ed = edits[e];
      if (ed.kind != kind) continue;
      float& v = l[ed.token];
      if (kind == LogitEdit::Mask) v = -INFINITY;
      else if (kind == LogitEdit::Bias) v += ed.value;
      else if (kind == LogitEdit::Repetition) v = v > 0.0f ? v / ed.value : v * ed.value;
      else v -= ed.value;
    }
    __syncthreads();
  }
  if (row.mask >= 0) {  // structured output, after the edits (as the host Sampler)
    const uint32_t* mask = masks + static_cast<int64_t>(row.mask) * mask_words;
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads)
      if (!mask_allows(mask, i)) l[i] = -INFINITY;
    __syncthreads();
  }

  auto argmax_row = [&](auto score) {
    Best b{-INFINITY, -1};
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
      const Best c{score(i), static_cast<int32_t>(i)};
      if (c.v == c.v && better(c, b)) b = c;  // NaN never wins
    }
    return block_best(b, sm);
  };
  int32_t token = -1;
  if (row.temperature < kGreedyTemperature) {
    token = argmax_row([&](int64_t i) { return l[i]; }).i;
  } else {
    const float inv_t = 1.0f / row.temperature;
    float mx = -INFINITY;
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) mx = fmaxf(mx, __fmul_rn(l[i], inv_t));
    mx = block_max(mx, sm);
    if (!(mx > -INFINITY)) {
      token = argmax_row([&](int64_t i) { return l[i]; }).i;
    } else {
      // Weight of token i among the candidates so far (0: filtered out) and its key.
      uint32_t k_min = 0, p_min = 0;
      auto weight = [&](int64_t i, uint32_t* key, uint32_t key_floor) {
        const float x = __fmul_rn(l[i], inv_t), d = x - mx;  // (no FMA: the split kernels' rounding)
        *key = order_key(x);
        if (!(d >= -87.0f)) return 0.0f;
        const float w = __expf(d);
        if (w < row.min_p || *key < key_floor) return 0.0f;
        return w;
      };
      if (row.top_k > 0 && row.top_k < vocab) {
        k_min = radix_select<false>(vocab, static_cast<float>(row.top_k), sm,
                                    [&](int64_t i, uint32_t* key) { return weight(i, key, 0) > 0.0f ? 1.0f : 0.0f; });
      }
      if (row.top_p < 1.0f) {
        float total = 0.0f;
        for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
          uint32_t key;
          total += weight(i, &key, k_min);
        }
        total = block_sum(total, sm);
        p_min = radix_select<true>(vocab, row.top_p * total, sm,
                                   [&](int64_t i, uint32_t* key) { return weight(i, key, k_min); });
      }
      const uint32_t floor = k_min > p_min ? k_min : p_min;
      token = argmax_row([&](int64_t i) {
                uint32_t key;
                if (weight(i, &key, floor) <= 0.0f) return -INFINITY;
                const float u = sample_uniform(row.key, row.counter, static_cast<uint32_t>(i));
                return __fmul_rn(l[i], inv_t) - logf(-logf(u));
              }).i;
      if (token < 0) token = argmax_row([&](int64_t i) { return l[i]; }).i;
    }
  }
  if (threadIdx.x != 0) return;
  tokens[r] = token;
  if (row.num_logprobs < 0 || token < 0) return;
  float raw = l[token];
  for (int32_t e = row.edits_begin; e < row.edits_end; ++e)
    if (edits[e].token == token) {
      raw = edit_orig[e];
      break;
    }
  logprobs[r] = raw - lse;
}

// ---- Plain rows split over blocks ----
// One block per row is one SM per row: at a few rows a temperature draw over 128k logits (a
// hash and two logs each) took tens of microseconds. Rows without logprobs, edits or masks
// that are greedy or take the temperature alone are split into chunks of kSplitChunk: a first
// kernel finds each chunk's largest scaled logit and best raw one, a second each chunk's best
// Gumbel score against the row's largest, and the row's last block to finish picks the best
// of the chunks. The picks are those of sample_kernel: the same scores, the same order.

constexpr int64_t kSplitChunk = 4096;

__global__ void split_max_kernel(const float* logits, int64_t vocab, const SampleRow* rows, float* part_max,
                                 Best* part_raw) {
  __shared__ Shared sm;
  const int64_t r = blockIdx.y, s = blockIdx.x, parts = gridDim.x;
  const SampleRow row = rows[r];
  const float* l = logits + r * vocab;
  const float inv_t = row.temperature < kGreedyTemperature ? 1.0f : 1.0f / row.temperature;
  const int64_t hi = min(vocab, (s + 1) * kSplitChunk);
  float mx = -INFINITY;
  Best b{-INFINITY, -1};
  for (int64_t i = s * kSplitChunk + threadIdx.x; i < hi; i += kThreads) {
    const Best c{l[i], static_cast<int32_t>(i)};
    mx = fmaxf(mx, __fmul_rn(c.v, inv_t));
    if (c.v == c.v && better(c, b)) b = c;  // NaN never wins
  }
  mx = block_max(mx, sm);
  b = block_best(b, sm);
  if (threadIdx.x == 0) part_max[r * parts + s] = mx, part_raw[r * parts + s] = b;
}

__global__ void split_pick_kernel(const float* logits, int64_t vocab, const SampleRow* rows, const float* part_max,
                                  const Best* part_raw, Best* part_pick, uint32_t* tickets, int32_t* tokens) {
  __shared__ Shared sm;
  __shared__ bool last;
  const int64_t r = blockIdx.y, s = blockIdx.x, parts = gridDim.x;
  const SampleRow row = rows[r];
  const float* l = logits + r * vocab;
  const float mx = block_max(threadIdx.x < parts ? part_max[r * parts + threadIdx.x] : -INFINITY, sm);
  const bool greedy = row.temperature < kGreedyTemperature || !(mx > -INFINITY);
  Best b{-INFINITY, -1};
  if (!greedy) {
    const float inv_t = 1.0f / row.temperature;
    const int64_t hi = min(vocab, (s + 1) * kSplitChunk);
    for (int64_t i = s * kSplitChunk + threadIdx.x; i < hi; i += kThreads) {
      const float x = __fmul_rn(l[i], inv_t), d = x - mx;
      // sample_kernel's candidates are d >= -87 here (no min_p, top_k or top_p); past
      // kGumbelReach none can win, so their draw is skipped.
      float score = -INFINITY;
      if (d >= -kGumbelReach) score = x - logf(-logf(sample_uniform(row.key, row.counter, static_cast<uint32_t>(i))));
      const Best c{score, static_cast<int32_t>(i)};
      if (c.v == c.v && better(c, b)) b = c;
    }
    b = block_best(b, sm);
  }
  if (threadIdx.x == 0) {
    part_pick[r * parts + s] = b;
    __threadfence();  // the pick before the ticket
    last = atomicAdd(&tickets[r], 1u) == static_cast<uint32_t>(parts - 1);
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  // The row's last block: the best chunk (read past L1, which may hold lines from before).
  Best pick{-INFINITY, -1}, raw{-INFINITY, -1};
  if (threadIdx.x < parts) {
    const int64_t k = r * parts + threadIdx.x;
    pick = {__ldcg(&part_pick[k].v), __ldcg(&part_pick[k].i)};
    raw = {__ldcg(&part_raw[k].v), __ldcg(&part_raw[k].i)};
  }
  pick = block_best(pick, sm);
  raw = block_best(raw, sm);
  if (threadIdx.x == 0) {
    tokens[r] = greedy || pick.i < 0 ? raw.i : pick.i;
    tickets[r] = 0;  // for the next draw
  }
}

}  // namespace

int64_t sample_split_parts(int64_t vocab) { return (vocab + kSplitChunk - 1) / kSplitChunk; }

size_t sample_split_scratch_bytes(int64_t vocab) {
  return static_cast<size_t>(kSampleSplitMaxRows) *
         (sizeof(uint32_t) + static_cast<size_t>(sample_split_parts(vocab)) * (sizeof(float) + 2 * sizeof(Best)));
}

bool sample_split(const float* logits, int64_t rows, int64_t vocab, const SampleRow* row_params, void* scratch,
                  int32_t* tokens, cudaStream_t s) {
  const int64_t parts = sample_split_parts(vocab);
  if (rows == 0 || rows > kSampleSplitMaxRows || parts > kThreads) return rows == 0;
  auto* tickets = static_cast<uint32_t*>(scratch);  // first: zeroed once, left zeroed by each draw
  auto* part_max = reinterpret_cast<float*>(tickets + kSampleSplitMaxRows);
  auto* part_raw = reinterpret_cast<Best*>(part_max + rows * parts);
  Best* part_pick = part_raw + rows * parts;
  const dim3 grid(static_cast<unsigned>(parts), static_cast<unsigned>(rows));
  split_max_kernel<<<grid, kThreads, 0, s>>>(logits, vocab, row_params, part_max, part_raw);
  split_pick_kernel<<<grid, kThreads, 0, s>>>(logits, vocab, row_params, part_max, part_raw, part_pick, tickets,
                                              tokens);
  return true;
}

void sample(float* logits, int64_t rows, int64_t vocab, const SampleRow* row_params, const LogitEdit* edits,
            const uint32_t* masks, int32_t mask_words, float* edit_orig, int32_t* tokens, float* logprobs,
            int32_t* top_ids, float* top_logprobs, cudaStream_t s) {
  if (rows == 0) return;
  sample_kernel<<<static_cast<unsigned>(rows), kThreads, 0, s>>>(logits, vocab, row_params, edits, masks, mask_words,
                                                                 edit_orig, tokens, logprobs, top_ids, top_logprobs);
}

}  // namespace ferrum::cuda
