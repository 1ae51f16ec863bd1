// Quantized weights times 16-bit activations on tensor cores, for any number of rows of x
// (decode to prefill), in the tiled layout of cuda_packed_layout.h: GPTQ/AWQ int4, FP8, and
// GGUF's formats as 4- or 8-bit codes.
//
// The MMA's A operand is the weight (16 output features per warp) and its B operand x (8 rows
// of x per n8 tile, up to 16 tiles: 128 rows a pass), so that one row of x costs no more than
// eight: the weight is the stream, read once per pass with one 16- or 32-byte load per lane
// per 16 x 64 tile and decoded in registers (4-bit codes: a mask and an OR make magic + u in
// 16 bits, then two packed ops; 8-bit codes: a byte permute makes 1024 + u in F16; FP8: a
// byte permute or a conversion instruction), with F32 accumulation. The warps of a block
// share x: each 64-column slice is staged in shared memory and read with ldmatrix. When the
// warps are too few to keep the GPU's memory busy, K is split over them and a second kernel
// sums the F32 partials in a fixed order.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_mma.cuh"
#include "backend/cuda/cuda_numeric.cuh"
#include "backend/cuda/cuda_split_k.cuh"
#include "core/error.h"

namespace ferrum::cuda {
namespace {

constexpr int kWarps = 8;          // warps per block, each its own 16 output features; x is shared
constexpr int kMaxTiles = 16;      // n8 tiles of x per pass: 128 rows
constexpr int kTargetWarps = 4096; // enough loads in flight to keep HBM busy
constexpr int kXStride = 64 + 8;   // padded rows of the x tile: ldmatrix's 8 rows hit different banks

template <typename A>
using Pair = std::conditional_t<std::is_same_v<A, __half>, __half2, __nv_bfloat162>;

template <typename A>
__device__ __forceinline__ Pair<A> as_pair(uint32_t v) {
  return *reinterpret_cast<Pair<A>*>(&v);
}
template <typename A>
__device__ __forceinline__ uint32_t as_bits(Pair<A> v) {
  return *reinterpret_cast<uint32_t*>(&v);
}
template <typename A>
__device__ __forceinline__ Pair<A> splat(uint32_t half) {  // the low 16 bits in both halves
  return as_pair<A>((half & 0xffffu) * 0x10001u);
}

__host__ __device__ constexpr bool four_bit(PackedMode m) { return m == PackedMode::Int4Zero || m == PackedMode::Int4Affine; }

// Two 8-bit codes (bytes 2q, 2q + 1 of w) as exact integers u - z (Zero) or u (Affine) in A.
template <PackedMode kMode, typename A>
__device__ __forceinline__ Pair<A> int8_pair(uint32_t w, int q, uint32_t zero_f16) {
  const __half2 v = as_pair<__half>(__byte_perm(w, 0x64646464u, q ? 0x4342 : 0x4140));  // 1024 + u, exact
  const __half2 u = __hsub2(v, kMode == PackedMode::Int8Zero ? as_pair<__half>(zero_f16 * 0x10001u)
                                                             : as_pair<__half>(0x64006400u));
  if constexpr (std::is_same_v<A, __half>) return u;
  else return __float22bfloat162_rn(__half22float2(u));  // |u| <= 255: exact in BF16
}

// The four A registers of one k16 step from the tile's words (w0, and w1 for 8-bit codes).
// p_lo / p_hi: the group parameters of rows g and g + 8 (scale low, zero or offset high).
template <PackedMode kMode, typename A>
__device__ __forceinline__ void decode_step(uint32_t w0, uint32_t w1, uint32_t p_lo, uint32_t p_hi, uint32_t* a) {
  if constexpr (four_bit(kMode)) {
    constexpr uint32_t kMagic = std::is_same_v<A, __half> ? 0x64006400u : 0x43004300u;  // 1024 / 128 in both halves
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const uint32_t prm = q % 2 ? p_hi : p_lo;
      const Pair<A> v = as_pair<A>(((w0 >> (4 * q)) & 0x000F000Fu) | kMagic);
      if constexpr (kMode == PackedMode::Int4Zero)  // (magic + u) - (magic + z), exact; one rounding
        a[q] = as_bits<A>(__hmul2(__hsub2(v, splat<A>(prm >> 16)), splat<A>(prm)));
      else  // u * scale + offset, fused
        a[q] = as_bits<A>(__hfma2(__hsub2(v, as_pair<A>(kMagic)), splat<A>(prm), splat<A>(prm >> 16)));
    }
  } else {
    const uint32_t words[2] = {w0, w1};
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int q = 0; q < 2; ++q) {  // bytes 2q, 2q + 1 of the word: rows g (q = 0), g + 8 (q = 1)
        const uint32_t prm = q ? p_hi : p_lo;
        Pair<A> r;
        if constexpr (kMode == PackedMode::Fp8) {
          Pair<A> v;
          if constexpr (std::is_same_v<A, __half>) {
            v = __half2(__nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(words[h] >> (16 * q)), __NV_E4M3));
          } else {  // E4M3's sign, exponent and mantissa moved into BF16's places (the scale has 2^120)
            const uint32_t p = __byte_perm(words[h], 0, q ? 0x3424 : 0x1404);
            v = as_pair<A>((p & 0x80008000u) | ((p & 0x7f007f00u) >> 4));
          }
          r = __hmul2(v, splat<A>(prm));
        } else if constexpr (kMode == PackedMode::Int8Zero) {
          r = __hmul2(int8_pair<kMode, A>(words[h], q, prm >> 16), splat<A>(prm));
        } else {
          r = __hfma2(int8_pair<kMode, A>(words[h], q, 0), splat<A>(prm), splat<A>(prm >> 16));
        }
        a[2 * h + q] = as_bits<A>(r);
      }
  }
}

// Block (bx, split): warp w takes output features [16 (bx * kWarps + w), + 16) over the K tiles
// of the split, for x rows [0, M) (M <= 8 * kTiles). The block stages each 64-column slice of
// x in shared memory (double-buffered, cp.async) and every warp reads its B fragments there.
template <PackedMode kMode, typename A, int kTiles>
__global__ void __launch_bounds__(kWarps * 32) packed_kernel(const A* __restrict__ x, int M, int64_t K, PackedWeight w,
                                                             int ktiles_per_split, const float* __restrict__ bias,
                                                             void* __restrict__ out, bool out_f32, int64_t ldo,
                                                             bool accumulate, float* __restrict__ partial) {
  constexpr int kTileBytes = four_bit(kMode) ? 512 : 1024, kRows = kTiles * 8;
  __shared__ __align__(16) A xs[2][kRows * kXStride];
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t ntile = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const bool active = ntile * 16 < w.padded_rows;
  const int64_t ktiles = K / 64, groups = K / w.group;
  const int64_t kt0 = static_cast<int64_t>(blockIdx.y) * ktiles_per_split;
  const int64_t kt1 = kt0 + ktiles_per_split < ktiles ? kt0 + ktiles_per_split : ktiles;
  const uint8_t* tiles = w.tiles + (ntile * ktiles * 32 + lane) * (kTileBytes / 32);
  const uint32_t* params = w.params + ntile * groups * 16 + g;

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
    v[0] = __ldg(reinterpret_cast<const uint4*>(tiles + kt * kTileBytes));
    if constexpr (!four_bit(kMode)) v[1] = __ldg(reinterpret_cast<const uint4*>(tiles + kt * kTileBytes) + 1);
  };
  uint4 cur[2] = {}, next[2] = {};
  if (kt0 < kt1) {
    stage(kt0, 0);
    if (active) load(kt0, cur);
  }
  int64_t group = -1;
  uint32_t p_lo = 0, p_hi = 0;
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
      const uint32_t* words = reinterpret_cast<const uint32_t*>(cur);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t grp = (kt * 64 + j * 16) / w.group;
        if (grp != group) {
          group = grp;
          p_lo = __ldg(params + grp * 16);
          p_hi = __ldg(params + grp * 16 + 8);
        }
        uint32_t a[4];
        if constexpr (four_bit(kMode)) decode_step<kMode, A>(words[j], 0, p_lo, p_hi, a);
        else decode_step<kMode, A>(words[2 * j], words[2 * j + 1], p_lo, p_hi, a);
#pragma unroll
        for (int i = 0; i < kTiles; i += 2) {
          // Matrices: x rows of tile i (and i + 1) at k 16j and 16j + 8: b0, b1 of each.
          const int row = (kTiles > 1 ? i + lane / 16 : i) * 8 + lane % 8;
          uint32_t b[4];
          ldmatrix_x4(b, xs[buf] + row * kXStride + j * 16 + ((lane / 8) % 2) * 8);
          mma16816<A>(acc[i], a, b[0], b[1]);
          if (i + 1 < kTiles) mma16816<A>(acc[i + 1], a, b[2], b[3]);
        }
      }
    }
    __syncthreads();  // xs[buf] is staged again two slices on
    cur[0] = next[0];
    cur[1] = next[1];
  }
  if (!active) return;

  // c0, c1: feature g, rows 2t and 2t + 1 of the tile; c2, c3: feature g + 8.
#pragma unroll
  for (int i = 0; i < kTiles; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t n = ntile * 16 + g + (e / 2) * 8;
      const int m = i * 8 + 2 * t + e % 2;
      if (n >= w.rows || m >= M) continue;
      if (partial) {
        partial[(static_cast<int64_t>(blockIdx.y) * M + m) * w.rows + n] = acc[i][e];
      } else {
        write_out<A>(out, out_f32, m * ldo + n, acc[i][e] + (bias ? bias[n] : 0.0f), accumulate);
      }
    }
}

template <PackedMode kMode, typename A>
void run_pass(const A* x, int M, int64_t K, const PackedWeight& w, const float* bias, void* out, bool out_f32,
              int64_t ldo, bool accumulate, float* scratch, int64_t scratch_floats, cudaStream_t s) {
  const int64_t warps = w.padded_rows / 16, ktiles = K / 64;
  int64_t splits = std::clamp<int64_t>(kTargetWarps / warps, 1, std::max<int64_t>(1, ktiles / 2));
  while (splits > 1 && splits * M * w.rows > scratch_floats) --splits;
  const int per_split = static_cast<int>((ktiles + splits - 1) / splits);
  splits = (ktiles + per_split - 1) / per_split;
  const dim3 grid(static_cast<unsigned>((warps + kWarps - 1) / kWarps), static_cast<unsigned>(splits));
  float* partial = splits > 1 ? scratch : nullptr;
  auto go = [&](auto kernel) {
    kernel<<<grid, kWarps * 32, 0, s>>>(x, M, K, w, per_split, bias, out, out_f32, ldo, accumulate, partial);
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
    switch (w.mode) {
      case PackedMode::Int4Zero:
        run_pass<PackedMode::Int4Zero, A>(xm, rows, K, w, bias, o, out_f32, ldo, accumulate, scratch, scratch_floats, s);
        break;
      case PackedMode::Int4Affine:
        run_pass<PackedMode::Int4Affine, A>(xm, rows, K, w, bias, o, out_f32, ldo, accumulate, scratch, scratch_floats, s);
        break;
      case PackedMode::Int8Zero:
        run_pass<PackedMode::Int8Zero, A>(xm, rows, K, w, bias, o, out_f32, ldo, accumulate, scratch, scratch_floats, s);
        break;
      case PackedMode::Int8Affine:
        run_pass<PackedMode::Int8Affine, A>(xm, rows, K, w, bias, o, out_f32, ldo, accumulate, scratch, scratch_floats, s);
        break;
      case PackedMode::Fp8:
        run_pass<PackedMode::Fp8, A>(xm, rows, K, w, bias, o, out_f32, ldo, accumulate, scratch, scratch_floats, s);
        break;
    }
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

}  // namespace ferrum::cuda
