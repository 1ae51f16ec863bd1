// Batches of rows times quantized weights (cuda_packed_rows.h), on tensor cores: at 17 to 255
// rows the tiles' MMAs, not the bytes, are the cost (64 rows of x make 32 m16n8k16 MMAs of each
// 512-byte tile), so the kernel is built to keep the tensor cores fed:
// - a block of 4 warps (kW) shares one slice of x (kRows rows x 64 columns) in shared memory,
//   and each warp takes kNT n-tiles (16 output features each), so every fragment of x it reads
//   serves kNT MMAs;
// - weights and x come through a ring of stages with cp.async, one barrier per 64 columns of K,
//   the weights of the first stages requested before waiting for the previous kernel (PDL);
// - split-K over blocks when the n-tiles are too few to fill the GPU (partials summed in a
//   fixed order by cuda_split_k.cuh's kernel, which writes silu(gate) * up for gate/up layers: MoE
//   decode blocks; dense gate/up layers are wide and never split).
// Grouped (mixture of experts): block z takes kRows sorted rows of one expert (cuda_moe.h), its
// x rows gathered from the routes' tokens (gate/up) or the sorted rows themselves (down).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <type_traits>

#include "backend/cuda/cuda_mma.cuh"
#include "backend/cuda/cuda_numeric.cuh"
#include "backend/cuda/cuda_packed_decode.cuh"
#include "backend/cuda/cuda_packed_rows.h"
#include "backend/cuda/cuda_packed_stream.cuh"
#include "backend/cuda/cuda_pdl.cuh"
#include "backend/cuda/cuda_runtime.h"
#include "backend/cuda/cuda_split_k.cuh"
#include "core/error.h"

namespace ferrum::cuda {
namespace {

constexpr int kGroupedWarps = 4;  // warps of a grouped (MoE) block
constexpr int kXStride = 64 + 8;  // padded rows of x: 16-byte reads of 8 rows hit different banks

// Decode blocks (16 rows) read little x per weight byte, so more of the weight is kept in flight.
template <int kTiles>
__host__ __device__ constexpr int stages() {
  return kTiles <= 2 ? 8 : 4;
}
template <PackedMode kMode, int kNT>
__host__ __device__ constexpr int weight_slot_bytes() {  // a warp's kNT tiles and their parameters
  return kNT * ((four_bit(kMode) ? 512 : 1024) + 32 * 8);
}
template <PackedMode kMode, int kTiles, int kNT, int kW, int kS>
__host__ __device__ constexpr int rows_smem() {
  return kS * (kTiles * 8 * kXStride * 2 + kW * weight_slot_bytes<kMode, kNT>());
}

struct RowsArgs {
  const void* x = nullptr;
  int64_t K = 0;
  int M = 0;  // dense: rows of x (up to kRows)
  PackedWeight w;
  int64_t tile_stride = 0, param_stride = 0;  // grouped: from one expert's weight to the next
  const int32_t* sorted_route = nullptr;      // grouped: each sorted row's route, -1 padding
  const int32_t* block_expert = nullptr;      // grouped: each block of kRows sorted rows' expert
  int top_k = 1;
  bool gather = false;     // grouped: x rows are the routes' tokens (route / top_k), else the sorted rows
  int64_t up_ntiles = 0;   // gated: gate n-tile j's up tile is j + up_ntiles
  int ktiles_per_split = 0;
  const float* bias = nullptr;
  void* out = nullptr;
  bool out_f32 = false, accumulate = false;
  int64_t ldo = 0;
  float* partial = nullptr;  // split-K partials [split, partial_rows, w.rows] (row: row0 + m)
  int64_t partial_rows = 0;
};

// kW warps a block, kS stages in the ring.
template <PackedMode kMode, typename A, int kTiles, int kNT, int kW, int kS, bool kGated, bool kGrouped>
__global__ void __launch_bounds__(kW * 32) packed_rows_kernel(RowsArgs p) {
  constexpr int kVecs = four_bit(kMode) ? 1 : 2, kRows = kTiles * 8, kStages = kS, kWarps = kW;
  constexpr int kTileBytes = kVecs * 512, kSlot = weight_slot_bytes<kMode, kNT>(), kXSlot = kRows * kXStride;
  constexpr int kChunks = kRows * 8 / (kWarps * 32);  // 16-byte pieces of x per thread and stage
  static_assert(kChunks >= 1 && kRows * 8 % (kWarps * 32) == 0, "x slice per thread");
  static_assert(!kGated || kNT == 2, "gated: one gate and one up tile per warp");
  extern __shared__ __align__(16) uint8_t smem[];
  A* xs = reinterpret_cast<A*>(smem);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  uint8_t* slots = smem + kStages * kXSlot * sizeof(A) + warp * kStages * kSlot;

  PackedWeight w = p.w;
  int row0 = 0;
  if constexpr (kGrouped) {
    pdl_wait();  // the blocks' experts and rows are the routing kernel's output
    const int e = p.block_expert[blockIdx.z];
    if (e < 0) return;  // the whole block: before any barrier
    row0 = blockIdx.z * kRows;
    w.tiles += e * p.tile_stride;
    w.params += e * p.param_stride;
  }
  const A* x = static_cast<const A*>(p.x);
  const int64_t K = p.K, ktiles = K / 64, groups = K / w.group, ntiles = w.padded_rows / 16;
  const int group = static_cast<int>(w.group);
  const int64_t kt0 = static_cast<int64_t>(blockIdx.y) * p.ktiles_per_split;
  const int64_t kt1 = kt0 + p.ktiles_per_split < ktiles ? kt0 + p.ktiles_per_split : ktiles;
  const int64_t wt = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  int64_t nt[kNT];
  bool valid[kNT];
#pragma unroll
  for (int q = 0; q < kNT; ++q) {
    nt[q] = kGated ? wt + q * p.up_ntiles : wt * kNT + q;
    valid[q] = kGated ? wt < p.up_ntiles : nt[q] < ntiles;
    if (!valid[q]) nt[q] = ntiles - 1;  // read, never stored
  }
  const bool active = valid[0];

  // This thread's pieces of the x slice: row r, columns [c, c + 8) of each 64.
  const A* src[kChunks];
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int i = threadIdx.x + c * kWarps * 32, r = i / 8;
    int64_t xr = -1;
    if constexpr (kGrouped) {
      const int route = p.sorted_route[row0 + r];
      if (route >= 0) xr = p.gather ? route / p.top_k : row0 + r;
    } else {
      xr = r < p.M ? r : -1;
    }
    src[c] = xr < 0 ? nullptr : x + xr * K + i % 8 * 8;
  }
  auto stage_x = [&](int64_t kt, int s) {
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int i = threadIdx.x + c * kWarps * 32;
      cp_async16_zfill(xs + s * kXSlot + i / 8 * kXStride + i % 8 * 8, src[c] ? src[c] + kt * 64 : x,
                       src[c] != nullptr);
    }
  };
  auto stage_w = [&](int64_t kt, int s) {  // each lane its own bytes and parameters
    uint8_t* slot = slots + s * kSlot;
    const int grp = (static_cast<int>(kt) * 64 + 16 * t) / group;  // 32-bit: a 64-bit division is a long routine
#pragma unroll
    for (int q = 0; q < kNT; ++q) {
      const uint4* tile = reinterpret_cast<const uint4*>(w.tiles) + ((nt[q] * ktiles + kt) * 32 + lane) * kVecs;
#pragma unroll
      for (int h = 0; h < kVecs; ++h) cp_async16(slot + q * kTileBytes + (lane * kVecs + h) * 16, tile + h);
      const uint32_t* prm = w.params + (nt[q] * groups + grp) * 16 + g;
      cp_async4(slot + kNT * kTileBytes + (q * 32 + lane) * 8, prm);
      cp_async4(slot + kNT * kTileBytes + (q * 32 + lane) * 8 + 4, prm + 8);
    }
  };

  float acc[kNT][kTiles][4];
#pragma unroll
  for (int q = 0; q < kNT; ++q)
#pragma unroll
    for (int i = 0; i < kTiles; ++i) acc[q][i][0] = acc[q][i][1] = acc[q][i][2] = acc[q][i][3] = 0.0f;

  for (int s = 0; s < kStages - 1; ++s)
    if (active && kt0 + s < kt1) stage_w(kt0 + s, s);
  pdl_wait();  // x is the previous kernel's output
  for (int s = 0; s < kStages - 1; ++s) {
    if (kt0 + s < kt1) stage_x(kt0 + s, s);
    cp_async_commit();
  }
  for (int64_t kt = kt0; kt < kt1; ++kt) {
    const int i = static_cast<int>(kt - kt0), s = i % kStages;
    cp_async_wait<kStages - 2>();
    __syncthreads();  // slice kt is in; every warp is done with the slot refilled next
    if (kt + kStages - 1 < kt1) {
      const int next = (i + kStages - 1) % kStages;
      if (active) stage_w(kt + kStages - 1, next);
      stage_x(kt + kStages - 1, next);
    }
    cp_async_commit();
    if (!active) continue;
    const uint8_t* slot = slots + s * kSlot;
    uint32_t words[kNT][4 * kVecs];
    uint2 prm[kNT];
#pragma unroll
    for (int q = 0; q < kNT; ++q) {
#pragma unroll
      for (int h = 0; h < kVecs; ++h) {
        const uint4 v = *reinterpret_cast<const uint4*>(slot + q * kTileBytes + (lane * kVecs + h) * 16);
        words[q][4 * h] = v.x, words[q][4 * h + 1] = v.y, words[q][4 * h + 2] = v.z, words[q][4 * h + 3] = v.w;
      }
      prm[q] = *reinterpret_cast<const uint2*>(slot + kNT * kTileBytes + (q * 32 + lane) * 8);
    }
    const A* xrow = xs + s * kXSlot + g * kXStride + 16 * t;
#pragma unroll
    for (int half = 0; half < 2; ++half) {  // steps 2 half and 2 half + 1: columns 16t + 8 half + [0, 8)
      uint32_t a[kNT][2][4];
#pragma unroll
      for (int q = 0; q < kNT; ++q)
#pragma unroll
        for (int jj = 0; jj < 2; ++jj) {
          const int j = 2 * half + jj;
          if constexpr (four_bit(kMode)) decode_step<kMode, A>(words[q][j], 0, prm[q].x, prm[q].y, a[q][jj]);
          else decode_step<kMode, A>(words[q][2 * j], words[q][2 * j + 1], prm[q].x, prm[q].y, a[q][jj]);
        }
#pragma unroll
      for (int r = 0; r < kTiles; ++r) {
        const uint4 xv = *reinterpret_cast<const uint4*>(xrow + r * 8 * kXStride + 8 * half);
#pragma unroll
        for (int q = 0; q < kNT; ++q) {
          mma16816<A>(acc[q][r], a[q][0], xv.x, xv.y);
          mma16816<A>(acc[q][r], a[q][1], xv.z, xv.w);
        }
      }
    }
  }
  cp_async_wait<0>();
  if (!active) return;

  // c0, c1: feature g, rows 2t and 2t + 1 of the n8 tile; c2, c3: feature g + 8.
#pragma unroll
  for (int r = 0; r < kTiles; ++r)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int m = r * 8 + 2 * t + e % 2;
      if constexpr (kGrouped) {
        if (p.sorted_route[row0 + m] < 0) continue;
      } else {
        if (m >= p.M) continue;
      }
      const int64_t row = row0 + m;
      if constexpr (kGated) {
        const float gate = acc[0][r][e];
        const int64_t n = wt * 16 + g + (e / 2) * 8;
        write_out<A>(p.out, p.out_f32, row * p.ldo + n, gate / (1.0f + expf(-gate)) * acc[1][r][e], false);
      } else {
#pragma unroll
        for (int q = 0; q < kNT; ++q) {
          const int64_t n = nt[q] * 16 + g + (e / 2) * 8;
          if (!valid[q] || n >= w.rows) continue;
          if (p.partial) p.partial[(blockIdx.y * p.partial_rows + row) * w.rows + n] = acc[q][r][e];
          else write_out<A>(p.out, p.out_f32, row * p.ldo + n, acc[q][r][e] + (p.bias ? p.bias[n] : 0.0f),
                            p.accumulate);
        }
      }
    }
}

template <PackedMode kMode, typename A, int kTiles, int kNT, int kW, int kS, bool kGated, bool kGrouped>
void launch(const RowsArgs& p, dim3 grid, cudaStream_t s) {
  launch_pdl(packed_rows_kernel<kMode, A, kTiles, kNT, kW, kS, kGated, kGrouped>, grid, kW * 32,
             rows_smem<kMode, kTiles, kNT, kW, kS>(), s, p);
}

// Blocks of the kernel the GPU holds at once, asked once per instance (cuda_packed_stream.cuh).
template <PackedMode kMode, typename A, int kTiles, int kNT, int kW, int kS, bool kGated, bool kGrouped>
int64_t resident() {
  static const int64_t n = resident_blocks(packed_rows_kernel<kMode, A, kTiles, kNT, kW, kS, kGated, kGrouped>, kW,
                                           rows_smem<kMode, kTiles, kNT, kW, kS>());
  return n;
}

constexpr int kDenseNT = 2, kDenseWarps = 4, kDenseStages = 4;  // (kDenseNT: the grouped forms too)

// Splits over K for `blocks` blocks of a kernel the GPU holds `resident` of, partials within
// scratch_floats. Dense rows: at most one wave, at least 8 K tiles a split (on the H200 a
// rounded wave and 4 tiles made qkv at 128 rows 1.5x slower). Grouped decode blocks are few and
// short: the nearest whole wave, at least 4 K tiles (MoE decode 10% faster).
int64_t choose_splits(bool grouped, int64_t resident, int64_t blocks, int64_t ktiles,
                      int64_t partial_floats_per_split, int64_t scratch_floats) {
  blocks = std::max<int64_t>(1, blocks);
  int64_t splits = std::clamp<int64_t>(grouped ? (resident + blocks / 2) / blocks : resident / blocks, 1,
                                       std::max<int64_t>(1, ktiles / (grouped ? 4 : 8)));
  while (splits > 1 && splits * partial_floats_per_split > scratch_floats) --splits;
  return splits;
}

// Runs p over `row_blocks` blocks of kTiles * 8 rows (grid z), split over K when that fills the
// GPU better; gated layers (p.up_ntiles) then run as plain ones over both halves into partials
// whose sum writes silu(gate) * up. p.partial_rows: the rows the partials cover.
template <PackedMode kMode, typename A, int kTiles, int kW, int kS, bool kGated, bool kGrouped>
void run_rows(RowsArgs p, unsigned row_blocks, float* scratch, int64_t scratch_floats, cudaStream_t s) {
  const int64_t ntiles = p.w.padded_rows / 16, ktiles = p.K / 64;
  const int64_t plain_blocks = (ntiles + kW * kDenseNT - 1) / (kW * kDenseNT) * row_blocks;
  const int64_t splits = choose_splits(kGrouped, resident<kMode, A, kTiles, kDenseNT, kW, kS, false, kGrouped>(),
                                       plain_blocks, ktiles, p.partial_rows * p.w.rows, scratch ? scratch_floats : 0);
  const int per_split = static_cast<int>((ktiles + splits - 1) / splits);
  const int used = static_cast<int>((ktiles + per_split - 1) / per_split);  // splits that get K tiles
  if (kGated && used == 1) {
    p.ktiles_per_split = static_cast<int>(ktiles);
    launch<kMode, A, kTiles, kDenseNT, kW, kS, true, kGrouped>(
        p, dim3(static_cast<unsigned>((p.up_ntiles + kW - 1) / kW), 1, row_blocks), s);
    return;
  }
  p.ktiles_per_split = per_split;
  RowsArgs q = p;
  if (used > 1) q.partial = scratch, q.bias = nullptr;
  launch<kMode, A, kTiles, kDenseNT, kW, kS, false, kGrouped>(
      q, dim3(static_cast<unsigned>((ntiles + kW * kDenseNT - 1) / (kW * kDenseNT)), static_cast<unsigned>(used),
              row_blocks), s);
  if (used > 1)
    sum_splits<A, kGated>(scratch, used, p.partial_rows, p.w.rows, kGrouped ? p.sorted_route : nullptr, p.bias,
                          p.out, p.out_f32, p.ldo, p.accumulate, s);
}

template <PackedMode kMode, typename A, int kTiles, bool kGated>
void dense_pass(RowsArgs p, float* scratch, int64_t scratch_floats, cudaStream_t s) {
  p.partial_rows = p.M;
  // Dense gate/up layers are wide: split, they measured slower (gate_up at 64 rows 81.9 against
  // 67.3 us unsplit), so they always write silu(gate) * up themselves.
  if (kGated) scratch = nullptr;
  // 4 warps, 4 stages: on the H200, 6 stages were faster for gate_up at 64 rows only, and
  // blocks of 2 warps were 2-4x slower everywhere.
  run_rows<kMode, A, kTiles, kDenseWarps, kDenseStages, kGated, false>(p, 1, scratch, scratch_floats, s);
}

template <typename A, bool kGated>
void dense_rows(const RowsArgs& p, float* scratch, int64_t scratch_floats, cudaStream_t s) {
  with_packed_mode(p.w.mode, [&](auto mode) {
    constexpr PackedMode kMode = decltype(mode)::value;
    if (p.M <= 32) dense_pass<kMode, A, 4, kGated>(p, scratch, scratch_floats, s);
    else if (p.M <= 64) dense_pass<kMode, A, 8, kGated>(p, scratch, scratch_floats, s);
    else dense_pass<kMode, A, 16, kGated>(p, scratch, scratch_floats, s);
  });
}

// Grouped: blocks of 16 sorted rows (decode: stages<2>() deep) or 64, over the capacity's rows.
template <typename A, bool kGated>
void grouped(RowsArgs p, int64_t capacity, int32_t block_m, float* scratch, int64_t scratch_floats, cudaStream_t s) {
  p.partial_rows = capacity;
  with_packed_mode(p.w.mode, [&](auto mode) {
    constexpr PackedMode kMode = decltype(mode)::value;
    if (block_m == 16)
      run_rows<kMode, A, 2, kGroupedWarps, stages<2>(), kGated, true>(p, static_cast<unsigned>(capacity / 16), scratch,
                                                                      scratch_floats, s);
    else
      run_rows<kMode, A, 8, kGroupedWarps, stages<8>(), kGated, true>(p, static_cast<unsigned>(capacity / 64), scratch,
                                                                      scratch_floats, s);
  });
}

template <typename F>
void with_act(DType act, const char* what, F&& f) {
  if (act == DType::BF16) f(static_cast<__nv_bfloat16*>(nullptr));
  else if (act == DType::F16) f(static_cast<__half*>(nullptr));
  else fail("{}: activations must be F16 or BF16, not {}", what, dtype_name(act));
}

template <PackedMode kMode, typename A, int kTiles, int kNT, int kW, int kS, bool kGated, bool kGrouped>
void allow() {
  cudaFuncSetAttribute(packed_rows_kernel<kMode, A, kTiles, kNT, kW, kS, kGated, kGrouped>,
                       cudaFuncAttributeMaxDynamicSharedMemorySize, rows_smem<kMode, kTiles, kNT, kW, kS>());
}
template <PackedMode kMode, typename A, int kTiles, bool kGated>
void allow_dense() {
  allow<kMode, A, kTiles, kDenseNT, kDenseWarps, kDenseStages, kGated, false>();
}
template <PackedMode kMode, typename A>
void allow_all() {
  allow_dense<kMode, A, 4, false>();
  allow_dense<kMode, A, 8, false>();
  allow_dense<kMode, A, 16, false>();
  allow_dense<kMode, A, 4, true>();
  allow_dense<kMode, A, 8, true>();
  allow_dense<kMode, A, 16, true>();
  allow<kMode, A, 2, kDenseNT, kGroupedWarps, stages<2>(), true, true>();
  allow<kMode, A, 2, kDenseNT, kGroupedWarps, stages<2>(), false, true>();
  allow<kMode, A, 8, kDenseNT, kGroupedWarps, stages<8>(), true, true>();
  allow<kMode, A, 8, kDenseNT, kGroupedWarps, stages<8>(), false, true>();
}

}  // namespace

bool packed_rows_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("FERRUM_PACKED_ROWS");
    return !v || std::atoi(v) != 0;
  }();
  return on;
}

void packed_rows_matmul(const void* x, DType act, int M, int64_t K, const PackedWeight& w, const float* bias,
                        void* out, bool out_f32, int64_t ldo, bool accumulate, float* scratch, int64_t scratch_floats,
                        cudaStream_t s) {
  FERRUM_CHECK(M >= 1 && M <= 128 && K == w.cols && K % 64 == 0, "packed_rows_matmul: {} rows, K {} (weight {})", M,
               K, w.cols);
  RowsArgs p;
  p.x = x, p.K = K, p.M = M, p.w = w, p.bias = bias, p.out = out, p.out_f32 = out_f32, p.ldo = ldo;
  p.accumulate = accumulate;
  with_act(act, "packed_rows_matmul", [&](auto* type) {
    dense_rows<std::remove_pointer_t<decltype(type)>, false>(p, scratch, scratch_floats, s);
  });
}

void packed_rows_silu(const void* x, DType act, int M, int64_t K, const PackedWeight& w, void* out, int64_t ldo,
                      float* scratch, int64_t scratch_floats, cudaStream_t s) {
  FERRUM_CHECK(M >= 1 && M <= 128 && K == w.cols && K % 64 == 0 && w.rows % 32 == 0,
               "packed_rows_silu: {} rows, K {} (weight {}), {} gate/up rows", M, K, w.cols, w.rows);
  RowsArgs p;
  p.x = x, p.K = K, p.M = M, p.w = w, p.out = out, p.ldo = ldo, p.up_ntiles = w.rows / 32;
  with_act(act, "packed_rows_silu", [&](auto* type) {
    dense_rows<std::remove_pointer_t<decltype(type)>, true>(p, scratch, scratch_floats, s);
  });
}

void packed_moe_gate_up(const void* x, DType act, const PackedExperts& w, int64_t inter, int32_t top_k,
                        const MoeRoutesDev& r, int64_t capacity, int32_t block_m, void* out, float* scratch,
                        int64_t scratch_floats, cudaStream_t s) {
  FERRUM_CHECK(inter % 16 == 0 && w.w.rows == 2 * inter && w.w.cols % 64 == 0 && (block_m == 16 || block_m == 64),
               "packed_moe_gate_up: {} gate/up rows for {} features, K {}, blocks of {}", w.w.rows, inter, w.w.cols,
               block_m);
  RowsArgs p;
  p.x = x, p.K = w.w.cols, p.w = w.w, p.tile_stride = w.tile_stride, p.param_stride = w.param_stride;
  p.sorted_route = r.sorted_route, p.block_expert = r.block_expert, p.top_k = top_k, p.gather = true;
  p.up_ntiles = inter / 16, p.out = out, p.ldo = inter;
  with_act(act, "packed_moe_gate_up", [&](auto* type) {
    grouped<std::remove_pointer_t<decltype(type)>, true>(p, capacity, block_m, scratch, scratch_floats, s);
  });
}

void packed_moe_down(const void* act_rows, DType act, const PackedExperts& w, const MoeRoutesDev& r,
                     int64_t capacity, int32_t block_m, void* y, float* scratch, int64_t scratch_floats,
                     cudaStream_t s) {
  FERRUM_CHECK(w.w.cols % 64 == 0 && (block_m == 16 || block_m == 64), "packed_moe_down: K {}, blocks of {}",
               w.w.cols, block_m);
  RowsArgs p;
  p.x = act_rows, p.K = w.w.cols, p.w = w.w, p.tile_stride = w.tile_stride, p.param_stride = w.param_stride;
  p.sorted_route = r.sorted_route, p.block_expert = r.block_expert, p.out = y, p.ldo = w.w.rows;
  with_act(act, "packed_moe_down", [&](auto* type) {
    grouped<std::remove_pointer_t<decltype(type)>, false>(p, capacity, block_m, scratch, scratch_floats, s);
  });
}

void packed_rows_prepare() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (PackedMode m : {PackedMode::Int4Zero, PackedMode::Int4Affine, PackedMode::Int8Zero, PackedMode::Int8Affine,
                         PackedMode::Fp8})
      with_packed_mode(m, [](auto mode) {
        allow_all<decltype(mode)::value, __nv_bfloat16>();
        allow_all<decltype(mode)::value, __half>();
      });
  });
}

}  // namespace ferrum::cuda
