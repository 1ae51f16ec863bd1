// Decode (1 or 2 rows of x) for weights of integer codes (GPTQ/AWQ int4 and int8, GGUF's Q4_0,
// Q4_K, Q5_K, Q6_K and Q8_0 as 4- or 8-bit codes), as llama.cpp's MMVQ does: x is rounded to
// int8 first, per 16 columns with its own scale, and the codes meet it in dp4a (four products
// a 32-bit instruction). At one row the 16-bit path (packed_stream_kernel) is bound by its
// decode instructions, about 5 per byte of 4-bit codes; here a word of eight 4-bit codes costs
// two masks and two dp4a, and the group's scale and zero point are applied once per tile.
// Each warp rounds its own part of x first, into shared memory (one kernel, no pre-pass: on an
// H200 the separate rounding kernel cost about 2.4 us per linear layer at one row, four times a
// layer).
//
// The arithmetic per lane and tile, and the order x is stored in: cuda_packed_q8_math.h.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>

#include "backend/cuda/cuda_packed_q8.h"
#include "backend/cuda/cuda_packed_q8_math.h"
#include "backend/cuda/cuda_packed_stream.cuh"
#include "backend/cuda/cuda_numeric.cuh"
#include "backend/cuda/cuda_pdl.cuh"
#include "backend/cuda/cuda_split_k.cuh"
#include "core/error.h"

namespace ferrum::cuda {
namespace {

using q8::kChunk;

// Rounds x's chunks [c0, c0 + n) of rows m < M (16 columns each, A; row m at x + m * x_step)
// to int8 words and {scale as float bits, sum of q} in shared memory, [m][chunk]: lane l takes
// chunks l, l + 32, ...
template <typename A, int kRows>
__device__ __forceinline__ void quantize_x_chunks(const A* x, int M, int64_t x_step, int64_t c0, int n, bool swap,
                                                  uint4* q, int2* s, int lane) {
#pragma unroll
  for (int m = 0; m < kRows; ++m) {
    if (m >= M) break;
    const uint4* src = reinterpret_cast<const uint4*>(x + m * x_step) + 2 * c0;
    for (int c = lane; c < n; c += 32) {
      float f[kChunk];
      unpack8<A>(load_activation(src + 2 * c), f);  // (through L2: the kernel overlaps x's writer)
      unpack8<A>(load_activation(src + 2 * c + 1), f + 8);
      uint32_t words[4];
      float scale;
      int sum;
      q8::quantize_chunk(f, swap, words, scale, sum);
      q[m * n + c] = make_uint4(words[0], words[1], words[2], words[3]);
      s[m * n + c] = make_int2(__float_as_int(scale), sum);
    }
  }
}

// One tile's contribution to the lane's sums: acc[m][0] row g, acc[m][1] row g + 8 of the
// weight, for rows m of x (xq: its 16 bytes of the lane's columns, xs: their scale and sum).
template <PackedMode kMode, typename A, int kRows>
__device__ __forceinline__ void tile_q8(const uint32_t* words, uint2 p, const uint4* xq, const int2* xs,
                                        float (*acc)[2]) {
  uint32_t codes[2][4];  // [row g, row g + 8][step]
  q8::tile_codes<kMode>(words, codes);
  const uint32_t prm[2] = {p.x, p.y};
  constexpr bool kBf16 = std::is_same_v<A, __nv_bfloat16>;
#pragma unroll
  for (int m = 0; m < kRows; ++m) {
    const uint32_t xw[4] = {xq[m].x, xq[m].y, xq[m].z, xq[m].w};
#pragma unroll
    for (int r = 0; r < 2; ++r)
      acc[m][r] += q8::tile_row_sum<kMode>(codes[r], prm[r], xw, __int_as_float(xs[m].x), xs[m].y, kBf16);
  }
}

// Buffers of the warps' sums of one n-tile: a warp may write the next n-tile's while others
// read this one's; with gate/up pairs, a gate's are read with its up's.
template <bool kSilu>
__host__ __device__ constexpr int q8_sum_buffers() { return kSilu ? 4 : 2; }

// Shared memory of a block: the warps' rings, their sums, then each warp's rounded x (kRows
// rows of its chunks: 16 bytes of codes and 8 of scale and sum each).
template <int kRows, bool kSilu>
__host__ __device__ constexpr int q8_ring_smem(int splits, int slot_bytes) {
  return splits * kStreamStages * slot_bytes + q8_sum_buffers<kSilu>() * splits * kRows * 16 * 4;
}
template <int kRows, bool kSilu>
__host__ __device__ constexpr int q8_smem(int splits, int slot_bytes, int ktiles_per_split) {
  return q8_ring_smem<kRows, kSilu>(splits, slot_bytes) + splits * kRows * ktiles_per_split * 4 * 24;
}

// silu(gate) * up as silu_mul_halves computes it from gate and up rounded to A.
template <typename A>
__device__ __forceinline__ A silu_mul(float gate, float up) {
  const float g = to_float(from_float<A>(gate)), u = to_float(from_float<A>(up));
  return from_float<A>(g / (1.0f + expf(-g)) * u);
}

// Block = n-tiles blockIdx.x, + gridDim.x, ... (16 output features each) of block row
// blockIdx.y's weight (one but for grouped experts: see Q8Routes); its warps split K,
// each rounds x's chunks of its part of K to int8 once (while its first tiles are on their
// way) and streams its tiles of every n-tile of the block (TileStream): a block that does
// several n-tiles rounds x once for all of them. Lanes t of one g sum by shuffles, the warps
// in shared memory in a fixed order, once per n-tile.
// kSilu: the weight is gate rows, then as many up rows (a multiple of 16 each); a block walks
// pairs of n-tiles (gate i, up i) and writes silu(gate) * up, rows / 2 features (A, ldo).
// (The body of a block: bx of nbx blocks that share the weight, blockIdx.x of gridDim.x for a
// launch of one weight.)
template <PackedMode kMode, typename A, int kRows, bool kSilu>
__device__ __forceinline__ void q8_block(const A* x, int M, int64_t K, PackedWeight w, int ktiles_per_split,
                                         const float* __restrict__ bias, void* __restrict__ out, bool out_f32,
                                         int64_t ldo, bool accumulate, const Q8Routes& routes, int64_t bx,
                                         int64_t nbx) {
  extern __shared__ __align__(16) uint8_t ring[];
  int64_t x_step = K;  // from one row of x to the next
  if (routes.route_pos) {  // route blockIdx.y's expert, row of x and row of out (the routing's output)
    pdl_wait();
    const int pos = routes.route_pos[blockIdx.y], e = routes.route_expert[blockIdx.y];
    const int row = routes.x_by_pos ? pos : static_cast<int>(blockIdx.y) / routes.top_k;
    if (routes.sorted_route) {  // paired (kRows 2): an expert's rows start at an even sorted row
      if (pos & 1) return;      // the route before it takes this one
      const int next = routes.sorted_route[pos + 1];  // the same block of rows: within capacity
      if (next >= 0) {
        M = 2;
        x_step = static_cast<int64_t>((routes.x_by_pos ? pos + 1 : next / routes.top_k) - row) * K;
      }
    }
    w.tiles += e * routes.tile_stride;
    w.params += e * routes.param_stride;
    x += row * K;
    out = static_cast<uint8_t*>(out) + pos * ldo * (out_f32 ? 4 : sizeof(A));
  }
  constexpr int kSlot = stream_slot_bytes<kMode>();
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int splits = blockDim.x / 32;
  const int64_t ntiles = w.padded_rows / 16, ktiles = K / 64;
  const int64_t half = ntiles / 2, walked = kSilu ? half : ntiles;  // n-tiles (pairs) the blocks share
  const int64_t count = (walked - bx + nbx - 1) / nbx * (kSilu ? 2 : 1);  // this block's
  const int64_t kt0 = static_cast<int64_t>(warp) * ktiles_per_split;
  const int64_t kt1 = kt0 + ktiles_per_split < ktiles ? kt0 + ktiles_per_split : ktiles;
  TileStream<kMode, true> stream(ring + warp * kStreamStages * kSlot, w, bx, kSilu ? half : nbx,
                                 kSilu ? nbx - half : nbx, count, kt0, kt1, lane);
  pdl_trigger();
  stream.prologue();
  pdl_wait();  // x is the previous kernel's output
  const int nchunks = static_cast<int>(kt1 > kt0 ? (kt1 - kt0) * 4 : 0);
  float* sums = reinterpret_cast<float*>(ring + splits * kStreamStages * kSlot);  // [buffer][warp][kRows][16]
  uint8_t* rounded = ring + q8_ring_smem<kRows, kSilu>(splits, kSlot);
  const int per_warp = kRows * ktiles_per_split * 4;  // chunks
  uint4* xq = reinterpret_cast<uint4*>(rounded) + warp * per_warp;
  int2* xs = reinterpret_cast<int2*>(rounded + splits * per_warp * 16) + warp * per_warp;
  quantize_x_chunks<A, kRows>(x, M, x_step, kt0 * 4, nchunks, four_bit(kMode), xq, xs, lane);
  __syncwarp();

  // x's rounded chunks by shared address: row m's chunk c at + m * row + 16 * c (codes), 8 * c (scales)
  const uint32_t xq0 = smem_addr(xq + t), xs0 = smem_addr(xs + t);
  const uint32_t q_row = static_cast<uint32_t>(nchunks) * 16, s_row = static_cast<uint32_t>(nchunks) * 8;
  for (int64_t j = 0; j < count; ++j) {
    float acc[kRows][2];
#pragma unroll
    for (int m = 0; m < kRows; ++m) acc[m][0] = acc[m][1] = 0.0f;
    uint32_t xq_at = xq0, xs_at = xs0;
    for (int c0 = t; c0 < nchunks; c0 += 4, xq_at += 64, xs_at += 32) {  // this lane's chunk of each k-tile
      stream.issue();
      uint4 q[kRows];
      int2 s[kRows];
#pragma unroll
      for (int m = 0; m < kRows; ++m) {
        const bool real = m < M;
        const uint2 sv = real ? lds64(xs_at + m * s_row) : make_uint2(0, 0);
        q[m] = real ? lds128(xq_at + m * q_row) : make_uint4(0, 0, 0, 0);
        s[m] = make_int2(static_cast<int>(sv.x), static_cast<int>(sv.y));
      }
      uint32_t words[4 * TileStream<kMode>::kVecs];
      uint2 p;
      stream.take(words, p);
      tile_q8<kMode, A, kRows>(words, p, q, s, acc);
    }
#pragma unroll
    for (int m = 0; m < kRows; ++m)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        acc[m][r] += __shfl_xor_sync(0xffffffffu, acc[m][r], 1);
        acc[m][r] += __shfl_xor_sync(0xffffffffu, acc[m][r], 2);
      }
    const int64_t stride = static_cast<int64_t>(splits) * kRows * 16;
    float* buf = sums + (j % q8_sum_buffers<kSilu>()) * stride;
    if (t == 0)
#pragma unroll
      for (int m = 0; m < kRows; ++m) {
        buf[(warp * kRows + m) * 16 + g] = acc[m][0];
        buf[(warp * kRows + m) * 16 + g + 8] = acc[m][1];
      }
    __syncthreads();
    if (kSilu && j % 2 == 0) continue;  // a gate n-tile: written with its up
    const int64_t ntile = kSilu ? bx + j / 2 * nbx : bx + j * nbx;  // (gate's)
    for (int i = threadIdx.x; i < M * 16; i += blockDim.x) {
      const int m = i / 16, f = i % 16;
      const int64_t n = ntile * 16 + f;
      if (n >= (kSilu ? w.rows / 2 : w.rows)) continue;
      float v = 0.0f;
      for (int s = 0; s < splits; ++s) v += buf[(s * kRows + m) * 16 + f];
      if constexpr (kSilu) {
        const float* gate_buf = sums + ((j - 1) % q8_sum_buffers<kSilu>()) * stride;
        float gv = 0.0f;
        for (int s = 0; s < splits; ++s) gv += gate_buf[(s * kRows + m) * 16 + f];
        const int64_t up_n = n + w.rows / 2;
        static_cast<A*>(out)[m * ldo + n] =
            silu_mul<A>(gv + (bias ? bias[n] : 0.0f), v + (bias ? bias[up_n] : 0.0f));
      } else {
        write_out<A>(out, out_f32, m * ldo + n, v + (bias ? bias[n] : 0.0f), accumulate);
      }
    }
  }
  cp_async_wait<0>();
}

template <PackedMode kMode, typename A, int kRows, bool kSilu>
__global__ void __launch_bounds__(kMaxSplits * 32) packed_q8_kernel(const A* x, int M, int64_t K,
                                                                    PackedWeight w, int ktiles_per_split,
                                                                    const float* __restrict__ bias,
                                                                    void* __restrict__ out, bool out_f32, int64_t ldo,
                                                                    bool accumulate, Q8Routes routes) {
  q8_block<kMode, A, kRows, kSilu>(x, M, K, w, ktiles_per_split, bias, out, out_f32, ldo, accumulate, routes,
                                   blockIdx.x, gridDim.x);
}

// Two weights of one input in one launch (a layer's q/k in Q4_K and v in Q6_K, say): blocks
// [0, blocks0) take the first, the rest the second, each writing its own output columns. One
// launch instead of two saves a kernel's latency where each weight alone is too small to fill
// the GPU.
struct Q8Two {
  PackedWeight w[2];
  const float* bias[2];
  void* out[2];
  int64_t blocks0;
};
template <PackedMode kMode0, PackedMode kMode1, typename A, int kRows>
__global__ void __launch_bounds__(kMaxSplits * 32) packed_q8_two_kernel(const A* x, int M, int64_t K, Q8Two two,
                                                                        int ktiles_per_split, bool out_f32,
                                                                        int64_t ldo, bool accumulate) {
  if (blockIdx.x < two.blocks0)
    q8_block<kMode0, A, kRows, false>(x, M, K, two.w[0], ktiles_per_split, two.bias[0], two.out[0], out_f32, ldo,
                                      accumulate, Q8Routes{}, blockIdx.x, two.blocks0);
  else
    q8_block<kMode1, A, kRows, false>(x, M, K, two.w[1], ktiles_per_split, two.bias[1], two.out[1], out_f32, ldo,
                                      accumulate, Q8Routes{}, blockIdx.x - two.blocks0, gridDim.x - two.blocks0);
}

// The launch of a q8 GEMV: warps per block (each its part of K), blocks (each every
// blocks-th n-tile) and shared memory. Picks the split count under which the GPU holds the
// most warps at once, with the n-tiles spread evenly over one wave of blocks; of equal
// counts, the fewest splits (longer runs of tiles per warp, fewer barriers).
struct Q8Launch {
  int splits = 1, per_split = 1, smem = 0;
  int64_t blocks = 1;
  int64_t per_route = 1;  // grouped: blocks per route's row of the grid
  int64_t first_blocks = 0;  // two weights: the first one's blocks
};
template <typename Smem, typename Resident>
Q8Launch plan_q8(int64_t ntiles, int64_t ktiles, Smem&& smem, Resident&& resident) {
  Q8Launch best;
  int64_t best_warps = -1;
  for (int c = 1; c <= kMaxSplits; ++c) {
    const int per = static_cast<int>((ktiles + c - 1) / c);
    if (static_cast<int64_t>(c - 1) * per >= ktiles) continue;  // a warp would have no tiles
    const int bytes = smem(c, per);
    const int64_t fit = resident(c, bytes);
    if (fit <= 0) continue;
    const int64_t per_block = (ntiles + fit - 1) / fit, blocks = (ntiles + per_block - 1) / per_block;
    if (blocks * c > best_warps) {
      best_warps = blocks * c;
      best = {c, per, bytes, blocks};
    }
  }
  return best;
}

// The launch plan of `kernel` for `key`, made once by make(resident) (under a lock: two
// engines of one process may launch from two threads); resident(splits, smem bytes) asks the
// GPU once per pair how many blocks an SM holds.
template <typename Kernel, typename Make>
Q8Launch q8_plan(Kernel kernel, int64_t key, Make&& make) {
  static std::mutex lock;  // (per kernel signature: the maps are keyed by the kernel too)
  static std::map<std::pair<const void*, int64_t>, Q8Launch> plans;
  static std::map<std::tuple<const void*, int, int>, int64_t> resident;
  const void* k = reinterpret_cast<const void*>(kernel);
  std::lock_guard<std::mutex> held(lock);
  auto it = plans.find({k, key});
  if (it != plans.end()) return it->second;
  auto fit = [&](int c, int bytes) {
    int64_t& r = resident[{k, c, bytes}];
    if (!r) r = resident_blocks(kernel, c, bytes);
    return r;
  };
  return plans.emplace(std::make_pair(k, key), make(fit)).first->second;
}

// Block rows that work when `routes` routes spread evenly at random over `experts` experts
// are paired (Q8Routes): each expert hit k times has ceil(k / 2), k Poisson-distributed. Real
// routers are less even (more pairs), so this errs towards more rows than work.
int expected_pair_leaders(int routes, int experts) {
  if (experts <= 0) return routes;
  const double lambda = static_cast<double>(routes) / experts;
  double p = std::exp(-lambda), rows = 0.0;  // p = P(k)
  for (int k = 1; k <= 4 * routes + 64 && k <= 100000; ++k) {
    p *= lambda / k;
    rows += (k + 1) / 2 * p;
  }
  return std::clamp(static_cast<int>(std::ceil(rows * experts)), 1, routes);
}

template <PackedMode kMode, typename A, int kRows, bool kSilu>
void launch_q8(const A* x, int M, int64_t K, const PackedWeight& w, const float* bias, void* out, bool out_f32,
               int64_t ldo, bool accumulate, cudaStream_t s, const Q8Routes& routes, int num_routes) {
  // Always launched to overlap the kernel before it (programmatic dependent launch, whatever
  // FERRUM_PDL says): its weight copies start during that kernel's tail, and it reads x, the
  // only thing an earlier kernel wrote, once per warp after pdl_wait(), through L2 (load_activation),
  // so the overlap costs nothing in the loop (cuda_pdl.cuh says why the read-only path races).
  // Routed (experts): the routes come from the kernel before, so every block waits first and
  // only the launch overlaps.
  auto kernel = packed_q8_kernel<kMode, A, kRows, kSilu>;
  // A plan per weight shape. (Grouped: as one weight of every working route's n-tiles, blocks
  // split evenly over them. Paired: sized for the rows expected to work, estimated once per
  // plan, not per launch.)
  const int64_t ntiles = w.padded_rows / 16, ktiles = K / 64;
  const int64_t experts = routes.sorted_route ? routes.num_experts : 0;
  const int64_t key = ((static_cast<int64_t>(num_routes) << 16 | experts) << 20 | ntiles) << 10 | ktiles;
  const Q8Launch p = q8_plan(kernel, key, [&](auto&& resident) {
    const int working = experts ? expected_pair_leaders(num_routes, static_cast<int>(experts)) : num_routes;
    Q8Launch plan = plan_q8(
        (kSilu ? ntiles / 2 : ntiles) * working, ktiles,
        [](int c, int per) { return q8_smem<kRows, kSilu>(c, stream_slot_bytes<kMode>(), per); }, resident);
    plan.per_route = (plan.blocks + working - 1) / working;
    return plan;
  });
  launch_overlapping(true, kernel, dim3(static_cast<unsigned>(p.per_route), static_cast<unsigned>(num_routes)),
                     p.splits * 32, p.smem, s, x, M, K, w, p.per_split, bias, out, out_f32, ldo, accumulate, routes);
}

// Two weights in one launch (packed_q8_two_kernel): one plan for their n-tiles together (the
// larger of the two modes' shared memory), its blocks shared out by the bytes of each weight.
template <PackedMode kMode0, PackedMode kMode1, typename A, int kRows>
void launch_q8_two(const A* x, int M, int64_t K, Q8Two two, bool out_f32, int64_t ldo, bool accumulate,
                   cudaStream_t s) {
  auto kernel = packed_q8_two_kernel<kMode0, kMode1, A, kRows>;
  const int64_t n0 = two.w[0].padded_rows / 16, n1 = two.w[1].padded_rows / 16, ktiles = K / 64;
  const Q8Launch p = q8_plan(kernel, (n0 << 24 | n1) << 12 | ktiles, [&](auto&& resident) {
    constexpr int kSlot0 = stream_slot_bytes<kMode0>(), kSlot1 = stream_slot_bytes<kMode1>();
    Q8Launch plan = plan_q8(
        n0 + n1, ktiles,
        [](int c, int per) { return std::max(q8_smem<kRows, false>(c, kSlot0, per), q8_smem<kRows, false>(c, kSlot1, per)); },
        resident);
    const double bytes0 = static_cast<double>(n0) * kSlot0, bytes1 = static_cast<double>(n1) * kSlot1;
    const int64_t total = std::max<int64_t>(2, plan.blocks);
    plan.first_blocks = std::clamp<int64_t>(std::llround(total * bytes0 / (bytes0 + bytes1)), 1, std::min(n0, total - 1));
    plan.blocks = plan.first_blocks + std::min(n1, total - plan.first_blocks);
    return plan;
  });
  two.blocks0 = p.first_blocks;
  launch_overlapping(true, kernel, dim3(static_cast<unsigned>(p.blocks)), p.splits * 32, p.smem, s, x, M, K, two,
                     p.per_split, out_f32, ldo, accumulate);
}

template <PackedMode kMode, typename A, bool kSilu = false>
void run_q8(const A* x, int M, int64_t K, const PackedWeight& w, const float* bias, void* out, bool out_f32,
            int64_t ldo, bool accumulate, cudaStream_t s, const Q8Routes& routes, int num_routes) {
  static_assert(kQ8MaxRows == 2);
  if (M <= 1 && !routes.sorted_route)
    launch_q8<kMode, A, 1, kSilu>(x, M, K, w, bias, out, out_f32, ldo, accumulate, s, routes, num_routes);
  else launch_q8<kMode, A, 2, kSilu>(x, M, K, w, bias, out, out_f32, ldo, accumulate, s, routes, num_routes);
}

template <typename F>
void with_int_mode(PackedMode m, F&& f) {
  switch (m) {
    case PackedMode::Int4Zero: return f(std::integral_constant<PackedMode, PackedMode::Int4Zero>{});
    case PackedMode::Int4Affine: return f(std::integral_constant<PackedMode, PackedMode::Int4Affine>{});
    case PackedMode::Int8Zero: return f(std::integral_constant<PackedMode, PackedMode::Int8Zero>{});
    case PackedMode::Int8Affine: return f(std::integral_constant<PackedMode, PackedMode::Int8Affine>{});
    case PackedMode::Fp8: fail("packed_matmul_q8: FP8 codes are not integers");
  }
}

template <PackedMode kMode, typename A>
void allow_q8_smem(int bytes) {
  for (auto kernel : {packed_q8_kernel<kMode, A, 1, false>, packed_q8_kernel<kMode, A, 2, false>,
                      packed_q8_kernel<kMode, A, 1, true>, packed_q8_kernel<kMode, A, 2, true>})
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
}

// The pairs of modes packed_q8_two_kernel is built for: llama.cpp's K-quant mixes, whose
// attn_v (and ffn_down) take Q6_K in some layers beside Q4_K or Q5_K q/k.
template <typename F>
bool with_two_modes(PackedMode m0, PackedMode m1, F&& f) {
  if (m1 != PackedMode::Int8Zero) return false;
  if (m0 == PackedMode::Int4Affine)
    return f(std::integral_constant<PackedMode, PackedMode::Int4Affine>{}), true;
  if (m0 == PackedMode::Int8Affine)
    return f(std::integral_constant<PackedMode, PackedMode::Int8Affine>{}), true;
  return false;
}

template <PackedMode kMode0, typename A>
void allow_q8_two_smem(int bytes) {
  for (auto kernel : {packed_q8_two_kernel<kMode0, PackedMode::Int8Zero, A, 1>,
                      packed_q8_two_kernel<kMode0, PackedMode::Int8Zero, A, 2>})
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
}

// The most shared memory a launch takes: 8-bit slots, K = kQ8MaxK split 16 ways, two rows.
constexpr int kQ8MaxSmem = q8_smem<kQ8MaxRows, true>(kMaxSplits, stream_slot_bytes<PackedMode::Int8Zero>(),
                                               static_cast<int>((kQ8MaxK / 64 + kMaxSplits - 1) / kMaxSplits));

}  // namespace

bool packed_q8_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("FERRUM_DECODE_X8");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
}

bool packed_q8_applies(PackedMode mode, int64_t M, int64_t K) {
  return packed_q8_enabled() && mode != PackedMode::Fp8 && M >= 1 && M <= kQ8MaxRows && K <= kQ8MaxK;
}

namespace {

// run_q8 with the activations' type and the weight's mode as compile-time constants.
template <bool kSilu>
void dispatch_q8(const void* x, DType act, int M, int64_t K, const PackedWeight& w, const float* bias, void* out,
                 bool out_f32, int64_t ldo, bool accumulate, cudaStream_t s, const Q8Routes& routes = {},
                 int num_routes = 1) {
  auto go = [&](auto type) {
    using A = decltype(type);
    with_int_mode(w.mode, [&](auto mode) {
      run_q8<decltype(mode)::value, A, kSilu>(static_cast<const A*>(x), M, K, w, bias, out, out_f32, ldo, accumulate,
                                              s, routes, num_routes);
    });
  };
  if (act == DType::BF16) go(__nv_bfloat16{});
  else if (act == DType::F16) go(__half{});
  else fail("packed_matmul_q8: activations must be F16 or BF16, not {}", dtype_name(act));
}

}  // namespace

void packed_matmul_q8(const void* x, DType act, int M, int64_t K, const PackedWeight& w, const float* bias, void* out,
                      bool out_f32, int64_t ldo, bool accumulate, cudaStream_t s) {
  FERRUM_CHECK(packed_q8_applies(w.mode, M, K) && K % 64 == 0, "packed_matmul_q8: {} rows of K = {}", M, K);
  dispatch_q8<false>(x, act, M, K, w, bias, out, out_f32, ldo, accumulate, s);
}

bool packed_q8_two_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("FERRUM_Q8_TWO");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
}

bool packed_matmul_q8_two(const void* x, DType act, int M, int64_t K, const PackedWeight& w0, const float* bias0,
                          void* out0, const PackedWeight& w1, const float* bias1, void* out1, bool out_f32,
                          int64_t ldo, bool accumulate, cudaStream_t s) {
  if (!packed_q8_two_enabled() || !packed_q8_applies(w0.mode, M, K) || !packed_q8_applies(w1.mode, M, K) ||
      K % 64 != 0 || w0.cols != K || w1.cols != K || w0.perm || w1.perm || (act != DType::BF16 && act != DType::F16) ||
      (accumulate && !out_f32) || reinterpret_cast<uintptr_t>(x) % 16 != 0)
    return false;
  Q8Two two{{w0, w1}, {bias0, bias1}, {out0, out1}, 0};
  return with_two_modes(w0.mode, w1.mode, [&](auto mode0) {
    constexpr PackedMode kMode0 = decltype(mode0)::value;
    auto go = [&](auto type) {
      using A = decltype(type);
      if (M <= 1) launch_q8_two<kMode0, PackedMode::Int8Zero, A, 1>(static_cast<const A*>(x), M, K, two, out_f32, ldo, accumulate, s);
      else launch_q8_two<kMode0, PackedMode::Int8Zero, A, 2>(static_cast<const A*>(x), M, K, two, out_f32, ldo, accumulate, s);
    };
    if (act == DType::BF16) go(__nv_bfloat16{});
    else go(__half{});
  });
}

bool packed_matmul_q8_silu(const void* x, DType act, int M, int64_t K, const PackedWeight& w, const float* bias,
                           void* out, int64_t ldo, cudaStream_t s) {
  if (!packed_q8_applies(w.mode, M, K) || K % 64 != 0 || w.perm || w.rows % 32 != 0 || w.padded_rows != w.rows)
    return false;
  if (act != DType::BF16 && act != DType::F16) return false;
  dispatch_q8<true>(x, act, M, K, w, bias, out, false, ldo, false, s);
  return true;
}

int q8_max_routes() {
  static const int n = [] {
    const char* v = std::getenv("FERRUM_MOE_Q8_ROUTES");
    return v ? std::clamp(std::atoi(v), 0, 65535) : 128;  // (a grid's rows)
  }();
  return n;
}

bool packed_moe_q8(const void* x, DType act, const PackedWeight& w, bool gate_up, int num_routes, const Q8Routes& routes,
                   void* out, int64_t ldo, cudaStream_t s) {
  if (!packed_q8_applies(w.mode, 1, w.cols) || w.cols % 64 != 0 || w.perm || num_routes < 1 ||
      num_routes > q8_max_routes() || (act != DType::BF16 && act != DType::F16))
    return false;
  if (gate_up && (w.rows % 32 != 0 || w.padded_rows != w.rows)) return false;
  // Pairs from two tokens on (one token's routes are all different experts), and only for 4-bit
  // codes with a zero point (GPTQ, AWQ, Q4_0). On the H200 at 16 tokens of Qwen3-30B-A3B they
  // took GPTQ experts from 1,716 to 1,986 tok/s, and a Q4_K_M file (Q4_K and Q6_K experts) from
  // 1,640 to 1,555-1,566: a pair's block does two rows' arithmetic even for an expert of one
  // route, and the K-quants' tiles cost more of it per byte.
  Q8Routes r = routes;
  if (num_routes <= routes.top_k || w.mode != PackedMode::Int4Zero) r.sorted_route = nullptr;
  if (gate_up) dispatch_q8<true>(x, act, 1, w.cols, w, nullptr, out, false, ldo, false, s, r, num_routes);
  else dispatch_q8<false>(x, act, 1, w.cols, w, nullptr, out, false, ldo, false, s, r, num_routes);
  return true;
}

void packed_q8_prepare() {
  for (PackedMode m : {PackedMode::Int4Zero, PackedMode::Int4Affine, PackedMode::Int8Zero, PackedMode::Int8Affine}) {
    with_int_mode(m, [](auto mode) {
      allow_q8_smem<decltype(mode)::value, __nv_bfloat16>(kQ8MaxSmem);
      allow_q8_smem<decltype(mode)::value, __half>(kQ8MaxSmem);
    });
  }
  for (PackedMode m : {PackedMode::Int4Affine, PackedMode::Int8Affine})
    with_two_modes(m, PackedMode::Int8Zero, [](auto mode) {
      allow_q8_two_smem<decltype(mode)::value, __nv_bfloat16>(kQ8MaxSmem);
      allow_q8_two_smem<decltype(mode)::value, __half>(kQ8MaxSmem);
    });
}

}  // namespace ferrum::cuda
