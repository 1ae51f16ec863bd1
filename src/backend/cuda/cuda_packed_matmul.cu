// Quantized weights times 16-bit activations on tensor cores, in the tiled layout of
// cuda_packed_layout.h: GPTQ/AWQ int4 and int8, FP8, and GGUF's formats as 4- or 8-bit codes.
//
// The MMA's A operand is the weight (16 output features per warp, decoded in registers: 4-bit
// codes by a mask and an OR that make magic + u in 16 bits, then two packed ops; 8-bit codes
// by a byte permute that makes 1024 + u in F16; FP8 by a byte permute or a conversion) and its
// B operand x (8 rows of x per n8 tile), with F32 accumulation. Two kernels:
// - decode and small batches (up to 16 rows): packed_stream_kernel, one block per 16 output
//   features, its warps splitting K and streaming tiles through a cp.async ring in shared
//   memory; the split sums meet in shared memory (no second kernel);
// - batches (up to 128 rows a pass): packed_kernel, x's 64-column slices staged in shared
//   memory for the block's 8 warps; when the warps are too few to keep the memory busy, K is
//   split over blocks and a second kernel sums the F32 partials in a fixed order.
// Long prefills do not come here: the backend dequantizes the weight (packed_dequantize) and
// runs cuBLAS.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <type_traits>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_mma.cuh"
#include "backend/cuda/cuda_numeric.cuh"
#include "backend/cuda/cuda_packed_decode.cuh"
#include "backend/cuda/cuda_packed_q8.h"
#include "backend/cuda/cuda_packed_rows.h"
#include "backend/cuda/cuda_packed_stream.cuh"
#include "backend/cuda/cuda_pdl.cuh"
#include "backend/cuda/cuda_runtime.h"
#include "backend/cuda/cuda_split_k.cuh"
#include "core/error.h"

namespace ferrum::cuda {
namespace {

constexpr int kWarps = 8;          // warps per block, each its own 16 output features; x is shared
constexpr int kMaxTiles = 16;      // n8 tiles of x per pass: 128 rows
constexpr int kTargetWarps = 4096; // enough loads in flight to keep HBM busy
constexpr int kXStride = 64 + 8;   // padded rows of the x tile: 16-byte reads of 8 rows hit different banks

// Lane (g, t)'s B fragments of x for one n8 tile and one 64-column slice: row g of the tile,
// columns [16t, 16t + 16) (two 16-byte loads); step j's b0, b1 are words 2j, 2j + 1.
template <typename A, bool kPdl>
__device__ __forceinline__ void x_fragments(const A* row, bool real, uint32_t* words) {
  const uint4 lo = real ? load_x<kPdl>(reinterpret_cast<const uint4*>(row)) : make_uint4(0, 0, 0, 0);
  const uint4 hi = real ? load_x<kPdl>(reinterpret_cast<const uint4*>(row) + 1) : make_uint4(0, 0, 0, 0);
  words[0] = lo.x, words[1] = lo.y, words[2] = lo.z, words[3] = lo.w;
  words[4] = hi.x, words[5] = hi.y, words[6] = hi.z, words[7] = hi.w;
}

// One tile's four k16 steps into acc: the lane's words of the tile, its group parameters, and
// x's B fragments of kTiles n8 tiles (8 words each, see x_fragments).
template <PackedMode kMode, typename A, int kTiles>
__device__ __forceinline__ void tile_mma(const uint32_t* words, uint32_t p_lo, uint32_t p_hi,
                                         const uint32_t (*xw)[8], float (*acc)[4]) {
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    uint32_t a[4];
    if constexpr (four_bit(kMode)) decode_step<kMode, A>(words[j], 0, p_lo, p_hi, a);
    else decode_step<kMode, A>(words[2 * j], words[2 * j + 1], p_lo, p_hi, a);
#pragma unroll
    for (int i = 0; i < kTiles; ++i) mma16816<A>(acc[i], a, xw[i][2 * j], xw[i][2 * j + 1]);
  }
}

// c0, c1: feature g, rows 2t and 2t + 1 of the n8 tile; c2, c3: feature g + 8.
template <typename A, int kTiles>
__device__ __forceinline__ void store_tile(const float (*acc)[4], int64_t ntile, int lane, int M, int64_t rows,
                                           const float* bias, void* out, bool out_f32, int64_t ldo, bool accumulate,
                                           float* partial, int split) {
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int i = 0; i < kTiles; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t n = ntile * 16 + g + (e / 2) * 8;
      const int m = i * 8 + 2 * t + e % 2;
      if (n >= rows || m >= M) continue;
      if (partial) partial[(static_cast<int64_t>(split) * M + m) * rows + n] = acc[i][e];
      else write_out<A>(out, out_f32, m * ldo + n, acc[i][e] + (bias ? bias[n] : 0.0f), accumulate);
    }
}

// Decode and small batches (M <= 8 * kTiles rows of x): the weight is the whole cost, so the
// aim is bytes in flight. Block = one n-tile; its warps split K, each streaming its tiles
// through its ring (TileStream). x's fragments come from global memory (L1 hits: every warp
// reads the same rows). The warps' sums meet in shared memory in a fixed order: no second
// kernel. The first tiles are requested before waiting for the previous kernel (PDL): weights
// are not its output.
template <PackedMode kMode, int kTiles>
constexpr int stream_smem(int splits) {
  return std::max(splits * kStreamStages * stream_slot_bytes<kMode>(), splits * kTiles * 4 * 32 * 4);
}

template <PackedMode kMode, typename A, int kTiles, bool kPdl>
__global__ void __launch_bounds__(kMaxSplits * 32) packed_stream_kernel(const A* __restrict__ x, int M, int64_t K,
                                                                        PackedWeight w, int ktiles_per_split,
                                                                        const float* __restrict__ bias,
                                                                        void* __restrict__ out, bool out_f32,
                                                                        int64_t ldo, bool accumulate) {
  extern __shared__ __align__(16) uint8_t ring[];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int splits = blockDim.x / 32;
  const int64_t ntile = blockIdx.x, ktiles = K / 64;
  const int64_t kt0 = static_cast<int64_t>(warp) * ktiles_per_split;
  const int64_t kt1 = kt0 + ktiles_per_split < ktiles ? kt0 + ktiles_per_split : ktiles;
  TileStream<kMode> stream(ring + warp * kStreamStages * stream_slot_bytes<kMode>(), w, ntile, kt0, kt1, lane);
  pdl_trigger();
  stream.prologue();
  pdl_wait();  // x is the previous kernel's output

  float acc[kTiles][4];
#pragma unroll
  for (int i = 0; i < kTiles; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
  const A* x_at = x + g * K + kt0 * 64 + 16 * t;
  for (int64_t kt = kt0; kt < kt1; ++kt, x_at += 64) {
    stream.issue();  // into the slot read one iteration ago
    uint32_t xw[kTiles][8];
#pragma unroll
    for (int i = 0; i < kTiles; ++i) x_fragments<A, kPdl>(x_at + i * 8 * K, i * 8 + g < M, xw[i]);
    uint32_t words[4 * TileStream<kMode>::kVecs];
    uint2 p;
    stream.take(words, p);
    tile_mma<kMode, A, kTiles>(words, p.x, p.y, xw, acc);
  }
  cp_async_wait<0>();
  if (splits > 1) {  // the ring becomes [warp][kTiles * 4][32] partial sums
    __syncthreads();
    float* sums = reinterpret_cast<float*>(ring);
#pragma unroll
    for (int i = 0; i < kTiles; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) sums[(warp * kTiles * 4 + i * 4 + e) * 32 + lane] = acc[i][e];
    __syncthreads();
    if (warp != 0) return;
    for (int s = 1; s < splits; ++s)
#pragma unroll
      for (int i = 0; i < kTiles; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][e] += sums[(s * kTiles * 4 + i * 4 + e) * 32 + lane];
  }
  store_tile<A, kTiles>(acc, ntile, lane, M, w.rows, bias, out, out_f32, ldo, accumulate, nullptr, 0);
}

// Batches (M up to 8 * kTiles rows, 128 a pass): block (bx, split), warp w takes output
// features [16 (bx * kWarps + w), + 16) over the K tiles of the split. The block stages each
// 64-column slice of x in shared memory (double-buffered, cp.async), which every warp reads
// its B fragments from.
template <PackedMode kMode, typename A, int kTiles>
__global__ void __launch_bounds__(kWarps * 32) packed_kernel(const A* __restrict__ x, int M, int64_t K, PackedWeight w,
                                                             int ktiles_per_split, const float* __restrict__ bias,
                                                             void* __restrict__ out, bool out_f32, int64_t ldo,
                                                             bool accumulate, float* __restrict__ partial) {
  constexpr int kVecs = four_bit(kMode) ? 1 : 2, kRows = kTiles * 8;
  __shared__ __align__(16) A xs[2][kRows * kXStride];
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t ntile = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const bool active = ntile * 16 < w.padded_rows;
  const int64_t ktiles = K / 64, groups = K / w.group;
  const int64_t kt0 = static_cast<int64_t>(blockIdx.y) * ktiles_per_split;
  const int64_t kt1 = kt0 + ktiles_per_split < ktiles ? kt0 + ktiles_per_split : ktiles;
  const uint4* tiles = reinterpret_cast<const uint4*>(w.tiles) + (ntile * ktiles * 32 + lane) * kVecs;
  const uint32_t* params = w.params + ntile * groups * 16 + g;
  const int group = static_cast<int>(w.group);

  float acc[kTiles][4];
#pragma unroll
  for (int i = 0; i < kTiles; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;

  auto stage = [&](int64_t kt, int buf) {  // x[0, kRows) x [64 kt, + 64) into xs[buf]; rows >= M zero
    for (int i = threadIdx.x; i < kRows * 8; i += kWarps * 32) {
      const int r = i / 8, c = i % 8 * 8;
      A* dst = xs[buf] + r * kXStride + c;
      if (r < M) cp_async16(dst, x + r * K + kt * 64 + c);
      else *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
    }
    cp_async_commit();
  };
  auto load = [&](int64_t kt, uint4* v) {
#pragma unroll
    for (int h = 0; h < kVecs; ++h) v[h] = __ldg(tiles + kt * 32 * kVecs + h);
  };
  uint4 cur[2] = {}, next[2] = {};
  if (kt0 < kt1 && active) load(kt0, cur);
  pdl_wait();  // x is the previous kernel's output
  if (kt0 < kt1) stage(kt0, 0);
  for (int64_t kt = kt0; kt < kt1; ++kt) {
    const int buf = static_cast<int>((kt - kt0) & 1);
    if (kt + 1 < kt1) {  // the next slice of x and the next weights are on their way meanwhile
      stage(kt + 1, buf ^ 1);
      if (active) load(kt + 1, next);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (active) {
      const int64_t grp = static_cast<int>(kt * 64 + 16 * t) / group;
      uint32_t xw[kTiles][8];
#pragma unroll
      for (int i = 0; i < kTiles; ++i) {
        const uint4* p = reinterpret_cast<const uint4*>(xs[buf] + (i * 8 + g) * kXStride + 16 * t);
        const uint4 lo = p[0], hi = p[1];
        xw[i][0] = lo.x, xw[i][1] = lo.y, xw[i][2] = lo.z, xw[i][3] = lo.w;
        xw[i][4] = hi.x, xw[i][5] = hi.y, xw[i][6] = hi.z, xw[i][7] = hi.w;
      }
      tile_mma<kMode, A, kTiles>(reinterpret_cast<const uint32_t*>(cur), __ldg(params + grp * 16),
                                 __ldg(params + grp * 16 + 8), xw, acc);
    }
    __syncthreads();  // xs[buf] is staged again two slices on
    cur[0] = next[0];
    cur[1] = next[1];
  }
  if (!active) return;
  store_tile<A, kTiles>(acc, ntile, lane, M, w.rows, bias, out, out_f32, ldo, accumulate, partial,
                        static_cast<int>(blockIdx.y));
}

// Rows [16 nt0, 16 (nt0 + ntiles)) of the weight (those below w.rows) as dense [rows, K] in A,
// one warp per tile: the cuBLAS path for long prefills.
template <PackedMode kMode, typename A>
__global__ void dequantize_kernel(PackedWeight w, int64_t nt0, int64_t ntiles, A* __restrict__ out) {
  constexpr int kVecs = four_bit(kMode) ? 1 : 2;
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t K = w.cols, ktiles = K / 64, groups = K / w.group;
  const int64_t tile = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (tile >= ntiles * ktiles) return;
  const int64_t nt = nt0 + tile / ktiles, kt = tile % ktiles;
  const uint4* src = reinterpret_cast<const uint4*>(w.tiles) + ((nt * ktiles + kt) * 32 + lane) * kVecs;
  uint4 v[2] = {};
#pragma unroll
  for (int h = 0; h < kVecs; ++h) v[h] = __ldg(src + h);
  const uint32_t* params = w.params + (nt * groups + (kt * 64 + 16 * t) / w.group) * 16 + g;
  const uint32_t p_lo = __ldg(params), p_hi = __ldg(params + 8);
  const uint32_t* words = reinterpret_cast<const uint32_t*>(v);
  uint32_t row_lo[8], row_hi[8];  // rows g, g + 8: columns 16t + 4j + {0, 1} and {2, 3}
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    uint32_t a[4];
    if constexpr (four_bit(kMode)) decode_step<kMode, A>(words[j], 0, p_lo, p_hi, a);
    else decode_step<kMode, A>(words[2 * j], words[2 * j + 1], p_lo, p_hi, a);
    row_lo[2 * j] = a[0], row_lo[2 * j + 1] = a[2];
    row_hi[2 * j] = a[1], row_hi[2 * j + 1] = a[3];
  }
  const int64_t r = (nt - nt0) * 16 + g, c = kt * 64 + 16 * t;
  if (nt * 16 + g < w.rows) {
    uint4* d = reinterpret_cast<uint4*>(out + r * K + c);
    d[0] = make_uint4(row_lo[0], row_lo[1], row_lo[2], row_lo[3]);
    d[1] = make_uint4(row_lo[4], row_lo[5], row_lo[6], row_lo[7]);
  }
  if (nt * 16 + g + 8 < w.rows) {
    uint4* d = reinterpret_cast<uint4*>(out + (r + 8) * K + c);
    d[0] = make_uint4(row_hi[0], row_hi[1], row_hi[2], row_hi[3]);
    d[1] = make_uint4(row_hi[4], row_hi[5], row_hi[6], row_hi[7]);
  }
}

// Rows of x up to which the streaming (decode) kernel runs; FERRUM_PACKED_STREAM_ROWS=0 sends
// every batch through the shared-memory kernel (to compare them).
int stream_rows() {
  static const int n = [] {
    const char* v = std::getenv("FERRUM_PACKED_STREAM_ROWS");
    return v ? std::clamp(std::atoi(v), 0, 16) : 16;
  }();
  return n;
}

template <PackedMode kMode, typename A, int kTiles>
void launch_stream(const A* x, int M, int64_t K, const PackedWeight& w, const float* bias, void* out, bool out_f32,
                   int64_t ldo, bool accumulate, cudaStream_t s) {
  // The two forms differ only in how x is read (cuda_pdl.cuh, load_x): same resources.
  auto kernel = pdl_enabled() ? packed_stream_kernel<kMode, A, kTiles, true> : packed_stream_kernel<kMode, A, kTiles, false>;
  static int64_t resident[kMaxSplits + 1] = {};  // per split count, asked once
  const int64_t ntiles = w.padded_rows / 16, ktiles = K / 64;
  const int splits = stream_splits(ntiles, ktiles, [&](int c) {
    if (!resident[c]) resident[c] = resident_blocks(kernel, c, stream_smem<kMode, kTiles>(c));
    return resident[c];
  });
  const int per_split = static_cast<int>((ktiles + splits - 1) / splits);
  launch_pdl(kernel, static_cast<unsigned>(ntiles), splits * 32, stream_smem<kMode, kTiles>(splits), s, x, M, K, w,
             per_split, bias, out, out_f32, ldo, accumulate);
}

template <PackedMode kMode, typename A>
void run_stream(const A* x, int M, int64_t K, const PackedWeight& w, const float* bias, void* out, bool out_f32,
                int64_t ldo, bool accumulate, cudaStream_t s) {
  if (M <= 8) launch_stream<kMode, A, 1>(x, M, K, w, bias, out, out_f32, ldo, accumulate, s);
  else launch_stream<kMode, A, 2>(x, M, K, w, bias, out, out_f32, ldo, accumulate, s);
}

// Blocks of up to 16 warps take more than the default 48 KB of shared memory: allowed once,
// at load (not while a graph is being recorded).
template <PackedMode kMode, typename A>
void allow_stream_smem() {
  for (auto kernel : {packed_stream_kernel<kMode, A, 1, false>, packed_stream_kernel<kMode, A, 1, true>})
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, stream_smem<kMode, 1>(kMaxSplits));
  for (auto kernel : {packed_stream_kernel<kMode, A, 2, false>, packed_stream_kernel<kMode, A, 2, true>})
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, stream_smem<kMode, 2>(kMaxSplits));
}

template <PackedMode kMode, typename A>
void run_pass(const A* x, int M, int64_t K, const PackedWeight& w, const float* bias, void* out, bool out_f32,
              int64_t ldo, bool accumulate, float* scratch, int64_t scratch_floats, cudaStream_t s) {
  if (M <= stream_rows()) return run_stream<kMode, A>(x, M, K, w, bias, out, out_f32, ldo, accumulate, s);
  if (packed_rows_enabled())
    return packed_rows_matmul(x, std::is_same_v<A, __half> ? DType::F16 : DType::BF16, M, K, w, bias, out, out_f32,
                              ldo, accumulate, scratch, scratch_floats, s);
  const int64_t warps = w.padded_rows / 16, ktiles = K / 64;
  int64_t splits = std::clamp<int64_t>(kTargetWarps / warps, 1, std::max<int64_t>(1, ktiles / 2));
  while (splits > 1 && splits * M * w.rows > scratch_floats) --splits;
  const int per_split = static_cast<int>((ktiles + splits - 1) / splits);
  splits = (ktiles + per_split - 1) / per_split;
  const dim3 grid(static_cast<unsigned>((warps + kWarps - 1) / kWarps), static_cast<unsigned>(splits));
  float* partial = splits > 1 ? scratch : nullptr;
  auto go = [&](auto kernel) {
    launch_pdl(kernel, grid, kWarps * 32, 0, s, x, M, K, w, per_split, bias, out, out_f32, ldo, accumulate, partial);
  };
  const int tiles = (M + 7) / 8;
  if (tiles <= 1) go(packed_kernel<kMode, A, 1>);
  else if (tiles <= 2) go(packed_kernel<kMode, A, 2>);
  else if (tiles <= 4) go(packed_kernel<kMode, A, 4>);
  else if (tiles <= 8) go(packed_kernel<kMode, A, 8>);
  else go(packed_kernel<kMode, A, 16>);
  if (partial) {
    sum_splits<A>(partial, static_cast<int>(splits), M, w.rows, bias, out, out_f32, ldo, accumulate, s);
  }
}

template <typename A>
void run(const A* x, int64_t M, int64_t K, const PackedWeight& w, const float* bias, void* out, bool out_f32,
         int64_t ldo, bool accumulate, float* scratch, int64_t scratch_floats, cudaStream_t s) {
  const size_t out_size = out_f32 ? 4 : 2;
  for (int64_t m0 = 0; m0 < M; m0 += kMaxTiles * 8) {  // passes of up to 128 rows
    const int rows = static_cast<int>(std::min<int64_t>(kMaxTiles * 8, M - m0));
    void* o = static_cast<uint8_t*>(out) + m0 * ldo * out_size;
    const A* xm = x + m0 * K;
    if (packed_q8_applies(w.mode, rows, K)) {
      packed_matmul_q8(xm, std::is_same_v<A, __half> ? DType::F16 : DType::BF16, rows, K, w, bias, o, out_f32, ldo,
                       accumulate, s);
      continue;
    }
    with_packed_mode(w.mode, [&](auto mode) {
      run_pass<decltype(mode)::value, A>(xm, rows, K, w, bias, o, out_f32, ldo, accumulate, scratch, scratch_floats,
                                         s);
    });
  }
}

}  // namespace

void packed_matmul(const void* x, DType act, int64_t M, int64_t K, const PackedWeight& w, const float* bias, void* out,
                   DType out_dtype, int64_t ldo, bool accumulate, float* scratch, int64_t scratch_floats,
                   cudaStream_t s) {
  FERRUM_CHECK(K % 64 == 0 && K == w.cols && reinterpret_cast<uintptr_t>(x) % 16 == 0,
               "packed_matmul: K = {} (weight {}) must be a multiple of 64", K, w.cols);
  FERRUM_CHECK(!accumulate || out_dtype == DType::F32, "packed_matmul: accumulates into F32 only");
  FERRUM_CHECK(out_dtype == DType::F32 || out_dtype == act, "packed_matmul: output {} for activations {}",
               dtype_name(out_dtype), dtype_name(act));
  if (M == 0) return;
  const bool out_f32 = out_dtype == DType::F32;
  if (act == DType::BF16)
    run(static_cast<const __nv_bfloat16*>(x), M, K, w, bias, out, out_f32, ldo, accumulate, scratch, scratch_floats, s);
  else if (act == DType::F16)
    run(static_cast<const __half*>(x), M, K, w, bias, out, out_f32, ldo, accumulate, scratch, scratch_floats, s);
  else
    fail("packed_matmul: activations must be F16 or BF16, not {}", dtype_name(act));
}

void packed_matmul_prepare() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (PackedMode m : {PackedMode::Int4Zero, PackedMode::Int4Affine, PackedMode::Int8Zero, PackedMode::Int8Affine,
                         PackedMode::Fp8})
      with_packed_mode(m, [](auto mode) {
        allow_stream_smem<decltype(mode)::value, __nv_bfloat16>();
        allow_stream_smem<decltype(mode)::value, __half>();
      });
    packed_q8_prepare();
    packed_rows_prepare();
  });
}

void packed_dequantize(const PackedWeight& w, DType act, int64_t row0, int64_t rows, void* out, cudaStream_t s) {
  FERRUM_CHECK(row0 % 16 == 0 && row0 + rows <= w.rows && w.cols % 64 == 0,
               "packed_dequantize: rows [{}, {}) of {}", row0, row0 + rows, w.rows);
  FERRUM_CHECK(act == DType::BF16 || act == DType::F16, "packed_dequantize: into {}", dtype_name(act));
  if (rows == 0) return;
  const int64_t ntiles = (rows + 15) / 16, tiles = ntiles * (w.cols / 64);
  const unsigned blocks = static_cast<unsigned>((tiles + kWarps - 1) / kWarps);
  with_packed_mode(w.mode, [&](auto mode) {
    constexpr PackedMode kMode = decltype(mode)::value;
    if (act == DType::BF16)
      dequantize_kernel<kMode, __nv_bfloat16><<<blocks, kWarps * 32, 0, s>>>(w, row0 / 16, ntiles,
                                                                              static_cast<__nv_bfloat16*>(out));
    else
      dequantize_kernel<kMode, __half><<<blocks, kWarps * 32, 0, s>>>(w, row0 / 16, ntiles, static_cast<__half*>(out));
  });
}

}  // namespace ferrum::cuda
