// The mixture-of-experts block on the GPU (see cuda_moe.h): top-k routing (a warp per token)
// and the routes aligned by expert (one block; one warp does both for one token), then grouped
// GEMMs over expert-sorted rows in the way of vLLM's fused_moe: each block of block_m sorted
// rows belongs to one expert, so a GEMM block reads one expert's weight tile, and experts no
// token chose are never read (a decode step reads top_k experts per token, no more).
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <climits>

#include "backend/cuda/cuda_mma.cuh"
#include "backend/cuda/cuda_moe.h"
#include "backend/cuda/cuda_numeric.cuh"
#include "core/error.h"

namespace ferrum::cuda {
namespace {

constexpr int kTopKWarps = 8;       // tokens per block of the top-k kernel
constexpr int kAlignThreads = 1024;
constexpr int kMaxTopK = 32;
constexpr int kMaxExperts = 32 * 32;  // a lane's chosen experts fit one 32-bit mask
constexpr int kRegExperts = 8;        // experts a lane keeps in registers during top-k (E <= 256)

__device__ __forceinline__ void warp_best(float& best, int& best_e) {
  for (int o = 16; o; o /= 2) {
    const float ob = __shfl_xor_sync(0xffffffffu, best, o);
    const int oe = __shfl_xor_sync(0xffffffffu, best_e, o);
    if (ob > best || (ob == best && oe < best_e)) best = ob, best_e = oe;
  }
}

// A token's top k, by one warp: softmax over the experts (F32, as torch's softmax(dtype=float)),
// then k rounds of the best remaining probability (ties: the lower expert, as torch.topk).
// Lane j < k gets the j-th pick's expert and weight (renormalized or not); other lanes INT_MAX
// and 0. Up to 32 * kRegExperts experts each lane keeps its probabilities in registers (the
// same values as the general form's, which recomputes them every round: MoE decode 1.02x on
// the H200).
__device__ void topk_warp(const float* __restrict__ l, int experts, int top_k, bool renormalize, int& my_e,
                          float& my_w) {
  const int lane = threadIdx.x % 32;
  float picked_sum = 0, mine = 0;  // lane j keeps the j-th pick's probability
  my_e = INT_MAX;
  if (experts <= 32 * kRegExperts) {
    float p[kRegExperts];
    float m = -FLT_MAX;
#pragma unroll
    for (int i = 0; i < kRegExperts; ++i) {
      p[i] = lane + 32 * i < experts ? l[lane + 32 * i] : -FLT_MAX;
      m = fmaxf(m, p[i]);
    }
    for (int o = 16; o; o /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    float sum = 0;
#pragma unroll
    for (int i = 0; i < kRegExperts; ++i)
      if (lane + 32 * i < experts) sum += expf(p[i] - m);
    for (int o = 16; o; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
#pragma unroll
    for (int i = 0; i < kRegExperts; ++i) p[i] = lane + 32 * i < experts ? expf(p[i] - m) / sum : -FLT_MAX;
    for (int j = 0; j < top_k; ++j) {
      float best = -1.0f;
      int best_e = INT_MAX;
#pragma unroll
      for (int i = 0; i < kRegExperts; ++i)  // taken and absent experts hold -FLT_MAX
        if (p[i] > best) best = p[i], best_e = lane + 32 * i;
      warp_best(best, best_e);
#pragma unroll
      for (int i = 0; i < kRegExperts; ++i)
        if (lane + 32 * i == best_e) p[i] = -FLT_MAX;
      picked_sum += best;
      if (lane == j) mine = best, my_e = best_e;
    }
  } else {
    float m = -FLT_MAX;
    for (int e = lane; e < experts; e += 32) m = fmaxf(m, l[e]);
    for (int o = 16; o; o /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    float sum = 0;
    for (int e = lane; e < experts; e += 32) sum += expf(l[e] - m);
    for (int o = 16; o; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    uint32_t taken = 0;  // this lane's experts already chosen (bit i: expert lane + 32 i)
    for (int j = 0; j < top_k; ++j) {
      float best = -1.0f;
      int best_e = INT_MAX;
      for (int e = lane, i = 0; e < experts; e += 32, ++i) {
        if (taken >> i & 1u) continue;
        const float p = expf(l[e] - m) / sum;
        if (p > best || (p == best && e < best_e)) best = p, best_e = e;
      }
      warp_best(best, best_e);
      if (lane == best_e % 32) taken |= 1u << (best_e / 32);
      picked_sum += best;
      if (lane == j) mine = best, my_e = best_e;
    }
  }
  my_w = lane < top_k ? (renormalize ? mine / picked_sum : mine) : 0.0f;
  // NaN logits pick nothing: a valid expert all the same (garbage out, no stray read or write).
  if (lane < top_k && my_e >= experts) my_e = experts - 1;
}

// One warp per token: its top k; writes each route's expert (into route_pos, for now: its
// sorted row in align_routes) and weight, and counts the routes per expert.
__device__ void topk_token(const float* __restrict__ logits, int t, int experts, int top_k, bool renormalize,
                           const MoeRoutesDev& r) {
  int e;
  float w;
  topk_warp(logits + static_cast<int64_t>(t) * experts, experts, top_k, renormalize, e, w);
  const int lane = threadIdx.x % 32;
  if (lane >= top_k) return;
  r.route_pos[t * top_k + lane] = e;
  r.route_weight[t * top_k + lane] = w;
  atomicAdd(&r.counts[e], 1);
}

__global__ void moe_topk_kernel(const float* __restrict__ logits, int tokens, int experts, int top_k,
                                bool renormalize, MoeRoutesDev r) {
  const int t = blockIdx.x * kTopKWarps + threadIdx.x / 32;
  if (t < tokens) topk_token(logits, t, experts, top_k, renormalize, r);
}

// One block: each expert's rows padded to whole blocks of block_m (a warp scan of the counts),
// each block's expert, and every route scattered to a row of its expert's range.
__device__ void align_routes(int routes, int experts, int block_m, int capacity, int max_blocks, const MoeRoutesDev& r) {
  extern __shared__ int align_smem[];
  int* offset = align_smem;  // [experts + 1]: first sorted row of each expert; the total last
  int* cursor = offset + experts + 1;
  const int tid = threadIdx.x;
  if (tid < 32) {
    const int per_lane = (experts + 31) / 32, first = tid * per_lane;
    int sum = 0;
    for (int e = first; e < min(experts, first + per_lane); ++e) sum += (r.counts[e] + block_m - 1) / block_m * block_m;
    int scan = sum;  // inclusive scan over the lanes
    for (int o = 1; o < 32; o *= 2) {
      const int v = __shfl_up_sync(0xffffffffu, scan, o);
      if (tid >= o) scan += v;
    }
    int at = scan - sum;
    for (int e = first; e < min(experts, first + per_lane); ++e) {
      offset[e] = at;
      cursor[e] = 0;
      at += (r.counts[e] + block_m - 1) / block_m * block_m;
    }
    if (tid == 31) offset[experts] = scan;
  }
  __syncthreads();
  for (int i = tid; i < capacity; i += blockDim.x) r.sorted_route[i] = -1;
  for (int b = tid; b < max_blocks; b += blockDim.x) {
    const int row = b * block_m;
    int lo = 0, hi = experts;  // the last expert whose range starts at or before row
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (offset[mid] <= row) lo = mid;
      else hi = mid - 1;
    }
    r.block_expert[b] = row < offset[experts] ? lo : -1;
  }
  __syncthreads();
  for (int i = tid; i < routes; i += blockDim.x) {
    const int e = r.route_pos[i];
    const int pos = offset[e] + atomicAdd(&cursor[e], 1);
    r.sorted_route[pos] = i;
    r.route_pos[i] = pos;
    r.route_expert[i] = e;
  }
}

__global__ void moe_align_kernel(int routes, int experts, int block_m, int capacity, int max_blocks, MoeRoutesDev r) {
  align_routes(routes, experts, block_m, capacity, max_blocks, r);
}

// One token (a decode step of one sequence): a warp picks the top k and lays the routes out as
// align_routes would, without counts or block barriers: with one route per chosen expert,
// expert e's range is block rank(e) (its rank among the chosen by id), the route its first row.
__global__ void moe_route_one_kernel(const float* __restrict__ logits, int experts, int top_k, bool renormalize,
                                     int block_m, int capacity, int max_blocks, MoeRoutesDev r) {
  int e;
  float w;
  topk_warp(logits, experts, top_k, renormalize, e, w);
  const int lane = threadIdx.x;
  int rank = 0;
  for (int j = 0; j < top_k; ++j) rank += __shfl_sync(0xffffffffu, e, j) < e;
  for (int i = lane; i < capacity; i += 32) r.sorted_route[i] = -1;
  for (int b = lane; b < max_blocks; b += 32) r.block_expert[b] = -1;
  __syncwarp();
  if (lane >= top_k) return;
  r.route_pos[lane] = rank * block_m;
  r.route_weight[lane] = w;
  r.route_expert[lane] = e;
  r.sorted_route[rank * block_m] = lane;
  r.block_expert[rank] = e;
}

// Decode steps of 2 to 32 tokens: one block zeroes the counts, routes its tokens (a warp each)
// and aligns them, in one kernel instead of a memset and two.
__global__ void __launch_bounds__(kAlignThreads) moe_route_block_kernel(const float* __restrict__ logits, int tokens, int experts, int top_k,
                                       bool renormalize, int block_m, int capacity, int max_blocks, MoeRoutesDev r) {
  for (int e = threadIdx.x; e < experts; e += blockDim.x) r.counts[e] = 0;
  __syncthreads();
  for (int t = threadIdx.x / 32; t < tokens; t += blockDim.x / 32) topk_token(logits, t, experts, top_k, renormalize, r);
  __syncthreads();  // the counts and experts of every route (global memory, this block's own writes)
  align_routes(tokens * top_k, experts, block_m, capacity, max_blocks, r);
}

constexpr int kBN = 64, kBK = 64, kPad = 8, kThreads = 128;
constexpr int kRow = kBK + kPad;  // a tile row in shared memory (16-bit values): no ldmatrix bank conflicts
// Tiles in flight per block: decode blocks (16 rows) are few, one per SM or so, and stream
// their expert's weight alone, so they keep more of it in flight.
template <int BM>
__host__ __device__ constexpr int stages() {
  return BM == 16 ? 6 : 3;
}

template <int BM, bool Gated>
__host__ __device__ constexpr int gemm_smem_bytes() {
  return stages<BM>() * (BM + (Gated ? 2 : 1) * kBN) * kRow * 2;
}

// Sorted rows [block * BM, +BM) times expert e's weight rows [n0, n0 + 64) (and, Gated, the
// matching up rows N + n0...): cp.async tiles of 64 columns of K through a ring of stages<BM>() tiles,
// m16n8k16 MMAs with F32 accumulation. Gated: rows of A are x's rows of the routes' tokens, and
// the epilogue writes silu(gate) * up; else A's rows are the sorted rows themselves. Padding
// rows (route -1) read zeros and are not written.
template <typename C, int BM, bool Gated>
__global__ void __launch_bounds__(kThreads) moe_gemm_kernel(const C* __restrict__ a, int top_k,
                                                            const int32_t* __restrict__ sorted_route,
                                                            const int32_t* __restrict__ block_expert,
                                                            const C* __restrict__ w, int n, int k, C* __restrict__ out) {
  constexpr int kGroups = Gated ? 2 : 1, kStages = stages<BM>();
  constexpr int kWarpsM = BM == 16 ? 1 : 2, kWarpsN = 4 / kWarpsM;
  constexpr int kTM = BM / kWarpsM, kMI = kTM / 16, kTN = kBN / kWarpsN, kNI = kTN / 8;
  const int expert = block_expert[blockIdx.y];
  if (expert < 0) return;
  extern __shared__ __align__(16) unsigned char gemm_smem[];
  C* As = reinterpret_cast<C*>(gemm_smem);
  C* Bs = As + kStages * BM * kRow;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int wm = warp / kWarpsN, wn = warp % kWarpsN;
  const int row0 = blockIdx.y * BM, n0 = blockIdx.x * kBN;
  const C* we = w + static_cast<int64_t>(expert) * kGroups * n * k;

  // Each thread's A rows (BM * 8 chunks of 16 bytes per K tile) and B rows (kGroups * 64 * 8).
  constexpr int kAChunks = BM * kBK / 8 / kThreads, kBChunks = kGroups * kBN * kBK / 8 / kThreads;
  static_assert(kAChunks >= 1 && kBChunks >= 1, "tile sizes");
  const C* a_src[kAChunks];
  int a_col[kAChunks];
  for (int i = 0; i < kAChunks; ++i) {
    const int c = tid + i * kThreads, r = c / (kBK / 8);
    a_col[i] = (c % (kBK / 8)) * 8;
    const int route = sorted_route[row0 + r];
    a_src[i] = route < 0 ? nullptr : a + static_cast<int64_t>(Gated ? route / top_k : row0 + r) * k;
  }
  const C* b_src[kBChunks];
  int b_col[kBChunks];
  for (int i = 0; i < kBChunks; ++i) {
    const int c = tid + i * kThreads, r = c / (kBK / 8), g = r / kBN, col = n0 + r % kBN;
    b_col[i] = (c % (kBK / 8)) * 8;
    b_src[i] = col < n ? we + (static_cast<int64_t>(g) * n + col) * k : nullptr;
  }
  auto load = [&](int stage, int k0) {
    C* as = As + stage * BM * kRow;
    C* bs = Bs + stage * kGroups * kBN * kRow;
    for (int i = 0; i < kAChunks; ++i) {
      const int c = tid + i * kThreads, r = c / (kBK / 8), kc = k0 + a_col[i];
      const bool ok = a_src[i] && kc < k;
      cp_async16_zfill(as + r * kRow + a_col[i], ok ? a_src[i] + kc : a, ok);
    }
    for (int i = 0; i < kBChunks; ++i) {
      const int c = tid + i * kThreads, r = c / (kBK / 8), kc = k0 + b_col[i];
      const bool ok = b_src[i] && kc < k;
      cp_async16_zfill(bs + r * kRow + b_col[i], ok ? b_src[i] + kc : w, ok);
    }
  };

  float acc[kGroups][kMI][kNI][4] = {};
  const int tiles = (k + kBK - 1) / kBK;
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < tiles) load(s, s * kBK);
    cp_async_commit();
  }
  for (int t = 0; t < tiles; ++t) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // tile t is in; every warp is done with the stage the next load overwrites
    if (t + kStages - 1 < tiles) load((t + kStages - 1) % kStages, (t + kStages - 1) * kBK);
    cp_async_commit();
    const C* as = As + (t % kStages) * BM * kRow;
    const C* bs = Bs + (t % kStages) * kGroups * kBN * kRow;
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      uint32_t af[kMI][4];
#pragma unroll
      for (int mi = 0; mi < kMI; ++mi)
        ldmatrix_x4(af[mi], as + (wm * kTM + mi * 16 + lane % 16) * kRow + kk * 16 + (lane / 16) * 8);
#pragma unroll
      for (int g = 0; g < kGroups; ++g)
#pragma unroll
        for (int nj = 0; nj < kNI; nj += 2) {
          uint32_t bf[4];
          ldmatrix_x4(bf, bs + (g * kBN + wn * kTN + nj * 8 + lane % 8 + (lane / 16) * 8) * kRow + kk * 16 +
                              ((lane / 8) % 2) * 8);
#pragma unroll
          for (int mi = 0; mi < kMI; ++mi) {
            mma16816<C>(acc[g][mi][nj], af[mi], bf[0], bf[1]);
            mma16816<C>(acc[g][mi][nj + 1], af[mi], bf[2], bf[3]);
          }
        }
    }
  }
  cp_async_wait<0>();

#pragma unroll
  for (int mi = 0; mi < kMI; ++mi)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = row0 + wm * kTM + mi * 16 + lane / 4 + half * 8;
      if (sorted_route[row] < 0) continue;
#pragma unroll
      for (int nj = 0; nj < kNI; ++nj) {
        const int col = n0 + wn * kTN + nj * 8 + 2 * (lane % 4);
        if (col >= n) continue;
        float v0 = acc[0][mi][nj][2 * half], v1 = acc[0][mi][nj][2 * half + 1];
        if constexpr (Gated) {
          v0 = v0 / (1.0f + expf(-v0)) * acc[kGroups - 1][mi][nj][2 * half];
          v1 = v1 / (1.0f + expf(-v1)) * acc[kGroups - 1][mi][nj][2 * half + 1];
        }
        *reinterpret_cast<uint32_t*>(out + static_cast<int64_t>(row) * n + col) = pack2<C>(v0, v1);
      }
    }
}

constexpr int kCombineThreads = 256;

// Block (t, c): columns [c * 256, +256) of token t's sum.
template <typename C>
__global__ void moe_combine_kernel(const C* __restrict__ y, int64_t h, int top_k, MoeRoutesDev r,
                                   const float* __restrict__ shared, const float* __restrict__ shared_gate,
                                   float* __restrict__ out) {
  const int t = blockIdx.x;
  const float g = shared ? 1.0f / (1.0f + expf(-shared_gate[t])) : 0.0f;
  for (int64_t i = blockIdx.y * static_cast<int64_t>(kCombineThreads) + threadIdx.x; i < h;
       i += static_cast<int64_t>(gridDim.y) * kCombineThreads) {
    float acc = 0;
    for (int j = 0; j < top_k; ++j) {
      const int route = t * top_k + j;
      acc += r.route_weight[route] * to_float(y[static_cast<int64_t>(r.route_pos[route]) * h + i]);
    }
    if (shared) acc += g * shared[t * h + i];
    out[t * h + i] += acc;
  }
}

template <typename C, int BM, bool Gated>
void launch_gemm(const void* a, int top_k, const MoeRoutesDev& r, int64_t capacity, const void* w, int64_t n,
                 int64_t k, void* out, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>((n + kBN - 1) / kBN), static_cast<unsigned>(capacity / BM));
  moe_gemm_kernel<C, BM, Gated><<<grid, kThreads, gemm_smem_bytes<BM, Gated>(), s>>>(
      static_cast<const C*>(a), top_k, r.sorted_route, r.block_expert, static_cast<const C*>(w),
      static_cast<int>(n), static_cast<int>(k), static_cast<C*>(out));
}

template <bool Gated>
void gemm(const void* a, DType dtype, int top_k, const MoeRoutesDev& r, int64_t capacity, int32_t block_m,
          const void* w, int64_t n, int64_t k, void* out, cudaStream_t s) {
  FERRUM_CHECK(k % 8 == 0 && n % 2 == 0 && (dtype == DType::BF16 || dtype == DType::F16) &&
                   (block_m == 16 || block_m == 64),
               "moe gemm: K {} (a multiple of 8), N {} (even), {} (16-bit), block {}", k, n, dtype_name(dtype),
               block_m);
  auto go = [&](auto* type) {
    using C = std::remove_pointer_t<decltype(type)>;
    if (block_m == 16) launch_gemm<C, 16, Gated>(a, top_k, r, capacity, w, n, k, out, s);
    else launch_gemm<C, 64, Gated>(a, top_k, r, capacity, w, n, k, out, s);
  };
  if (dtype == DType::BF16) go(static_cast<__nv_bfloat16*>(nullptr));
  else go(static_cast<__half*>(nullptr));
}

template <typename C, int BM, bool Gated>
void allow_smem() {
  cudaFuncSetAttribute(moe_gemm_kernel<C, BM, Gated>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       gemm_smem_bytes<BM, Gated>());
}
template <typename C>
void allow_smem_all() {
  allow_smem<C, 16, true>();
  allow_smem<C, 16, false>();
  allow_smem<C, 64, true>();
  allow_smem<C, 64, false>();
}

}  // namespace

int32_t moe_block_m(int64_t tokens, int32_t top_k, int32_t num_experts, bool packed) {
  const int64_t routes = tokens * top_k, active = std::min<int64_t>(routes, num_experts);
  // Each block reads its expert's whole weight: at 8 rows per expert and more, blocks of 16
  // would split many experts in two and read them twice. Quantized experts are 3.5x fewer
  // bytes, so reading them twice costs less than blocks of 64 mostly padding (their MMAs).
  return routes / std::max<int64_t>(1, active) >= (packed ? 32 : 8) ? 64 : 16;
}

int64_t moe_sorted_capacity(int64_t tokens, int32_t top_k, int32_t num_experts, int32_t block_m) {
  const int64_t routes = tokens * top_k;
  const int64_t rows = routes + std::min<int64_t>(routes, num_experts) * (block_m - 1);
  return (rows + block_m - 1) / block_m * block_m;
}

void moe_route(const float* logits, int64_t tokens, int32_t num_experts, int32_t top_k, bool renormalize,
               int32_t block_m, const MoeRoutesDev& r, cudaStream_t s) {
  FERRUM_CHECK(num_experts >= 1 && num_experts <= kMaxExperts && top_k >= 1 && top_k <= std::min(kMaxTopK, num_experts),
               "moe_route: top {} of {} experts (CUDA takes up to {} of up to {})", top_k, num_experts, kMaxTopK,
               kMaxExperts);
  const int64_t capacity = moe_sorted_capacity(tokens, top_k, num_experts, block_m);
  if (tokens == 0) return;
  const size_t smem = (2 * static_cast<size_t>(num_experts) + 1) * sizeof(int);
  if (tokens == 1) {
    moe_route_one_kernel<<<1, 32, 0, s>>>(logits, num_experts, top_k, renormalize, block_m,
                                          static_cast<int>(capacity), static_cast<int>(capacity / block_m), r);
    return;
  }
  if (tokens <= kAlignThreads / 32) {
    moe_route_block_kernel<<<1, kAlignThreads, smem, s>>>(logits, static_cast<int>(tokens), num_experts, top_k,
                                                          renormalize, block_m, static_cast<int>(capacity),
                                                          static_cast<int>(capacity / block_m), r);
    return;
  }
  cudaMemsetAsync(r.counts, 0, static_cast<size_t>(num_experts) * sizeof(int32_t), s);
  moe_topk_kernel<<<static_cast<unsigned>((tokens + kTopKWarps - 1) / kTopKWarps), kTopKWarps * 32, 0, s>>>(
      logits, static_cast<int>(tokens), num_experts, top_k, renormalize, r);
  moe_align_kernel<<<1, kAlignThreads, smem, s>>>(static_cast<int>(tokens * top_k), num_experts, block_m,
                                                  static_cast<int>(capacity), static_cast<int>(capacity / block_m), r);
}

void moe_gate_up(const void* x, DType dtype, const void* w, int64_t inter, int64_t k, int32_t top_k,
                 const MoeRoutesDev& r, int64_t capacity, int32_t block_m, void* act, cudaStream_t s) {
  gemm<true>(x, dtype, top_k, r, capacity, block_m, w, inter, k, act, s);
}

void moe_down(const void* act, DType dtype, const void* w, int64_t n, int64_t k, const MoeRoutesDev& r,
              int64_t capacity, int32_t block_m, void* y, cudaStream_t s) {
  gemm<false>(act, dtype, 1, r, capacity, block_m, w, n, k, y, s);
}

void moe_combine(const void* y, DType dtype, int64_t tokens, int64_t h, int32_t top_k, const MoeRoutesDev& r,
                 const float* shared, const float* shared_gate, float* out, cudaStream_t s) {
  if (tokens == 0) return;
  auto go = [&](auto* type) {
    using C = std::remove_pointer_t<decltype(type)>;
    const dim3 grid(static_cast<unsigned>(tokens), static_cast<unsigned>((h + kCombineThreads - 1) / kCombineThreads));
    moe_combine_kernel<C><<<grid, kCombineThreads, 0, s>>>(static_cast<const C*>(y), h, top_k, r, shared, shared_gate,
                                                          out);
  };
  if (dtype == DType::BF16) go(static_cast<__nv_bfloat16*>(nullptr));
  else go(static_cast<__half*>(nullptr));
}

void moe_prepare() {
  static const bool done = [] {
    allow_smem_all<__nv_bfloat16>();
    allow_smem_all<__half>();
    return true;
  }();
  (void)done;
}

}  // namespace ferrum::cuda
