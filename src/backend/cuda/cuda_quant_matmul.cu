// Matmuls against dense 16-bit parts of quantized layers, and lookups in GGUF block tables
// (cuda_quant.cuh decodes them), x in F16 or BF16:
// - up to 8 rows of x (decode): one warp per output feature reads its weight row as stored,
//   decodes 64 values at a time in registers and dots them with every row of x;
// - more rows: a tensor-core GEMM. Each block decodes a [64, 128] tile of the weight into
//   shared memory in x's type, next to a [64, 128] tile of x, and runs m16n8k16 MMAs with F32
//   accumulation. When the output tiles are too few to fill the GPU (small batches), K is
//   split over blocks, whose F32 partials a second kernel sums (in a fixed order, so results
//   do not depend on timing).
#include <cuda_runtime.h>

#include <algorithm>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_mma.cuh"
#include "backend/cuda/cuda_numeric.cuh"
#include "backend/cuda/cuda_quant.cuh"
#include "backend/cuda/cuda_runtime.h"
#include "backend/cuda/cuda_split_k.cuh"
#include "core/error.h"

namespace ferrum::cuda {
namespace {

constexpr int kGemvRows = 8;      // rows of x the GEMV takes; the GEMM above
constexpr int kGemvWarps = 8;     // output features per GEMV block
constexpr int kBM = 64, kBN = 64, kBK = 128, kThreads = 128;
constexpr int kStride = kBK + 8;  // padded smem rows: ldmatrix's 8 rows hit different banks
constexpr int kMaxSplits = 16;

// M: rows of x the registers hold; rows <= M of them are real.
template <QuantKind F, typename A, int M>
__global__ void __launch_bounds__(kGemvWarps * 32) qgemv_kernel(const A* __restrict__ x, int rows, int64_t K,
                                                                QuantWeight w, const float* __restrict__ bias,
                                                                void* __restrict__ out, bool out_f32, int64_t ldo,
                                                                bool accumulate) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kGemvWarps + warp;
  if (n >= w.rows) return;
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  const int64_t units = K / 64;
  for (int64_t u = lane; u < units; u += 32) {
    float v[64];
    dequant_unit<F, A>(w, n, u, v);
    int64_t k[2];
    unit_runs<F>(u, k[0], k[1]);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      if (m >= rows) break;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const uint4* xp = reinterpret_cast<const uint4*>(x + m * K + k[r]);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          float xf[8];
          unpack8<A>(__ldg(xp + i), xf);
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[m] += v[32 * r + 8 * i + j] * xf[j];
        }
      }
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m)
    for (int o = 16; o > 0; o >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], o);
  if (lane != 0) return;
  const float b = bias ? bias[n] : 0.0f;
#pragma unroll
  for (int m = 0; m < M; ++m)
    if (m < rows) write_out<A>(out, out_f32, m * ldo + n, acc[m] + b, accumulate);
}

// Block (n tile, m tile, split): out tile [64 x rows, 64 weight rows] over this split's K steps.
// Four warps, each 32 x 32 of the tile (2 x 4 MMA tiles). partial: [splits, M, N] F32, or null
// to apply the epilogue here.
template <QuantKind F, typename A>
__global__ void __launch_bounds__(kThreads) qgemm_kernel(const A* __restrict__ x, int64_t M, int64_t K, QuantWeight w,
                                                         int steps_per_split, const float* __restrict__ bias,
                                                         void* __restrict__ out, bool out_f32, int64_t ldo,
                                                         bool accumulate, float* __restrict__ partial) {
  __shared__ __align__(16) A xs[kBM * kStride];
  __shared__ __align__(16) A ws[kBN * kStride];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int wm = warp / 2, wn = warp % 2;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kBN, m0 = static_cast<int64_t>(blockIdx.y) * kBM;
  const int64_t N = w.rows;
  const int64_t steps = (K + kBK - 1) / kBK;
  const int64_t s0 = static_cast<int64_t>(blockIdx.z) * steps_per_split;
  const int64_t s1 = steps < s0 + steps_per_split ? steps : s0 + steps_per_split;
  float acc[2][4][4] = {};
  const uint4 zero = make_uint4(0, 0, 0, 0);

  for (int64_t s = s0; s < s1; ++s) {
    const int64_t kb = s * kBK;
    // x tile: 64 rows x 128 values = 1024 16-byte pieces, 8 per thread.
#pragma unroll
    for (int i = 0; i < kBM * kBK / 8 / kThreads; ++i) {
      const int piece = tid + i * kThreads, r = piece / (kBK / 8), c = piece % (kBK / 8) * 8;
      const bool in = m0 + r < M && kb + c < K;
      *reinterpret_cast<uint4*>(xs + r * kStride + c) =
          in ? __ldg(reinterpret_cast<const uint4*>(x + (m0 + r) * K + kb + c)) : zero;
    }
    // Weight tile: 64 rows x 2 units, one unit per thread, decoded into x's type.
    {
      const int r = tid / 2;
      const int64_t u = s * 2 + tid % 2;
      int64_t k[2];
      unit_runs<F>(u, k[0], k[1]);
      if (n0 + r < N && u * 64 < K) {
        float v[64];
        dequant_unit<F, A>(w, n0 + r, u, v);
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          uint32_t* dst = reinterpret_cast<uint32_t*>(ws + r * kStride + (k[half] - kb));
#pragma unroll
          for (int i = 0; i < 16; ++i) dst[i] = pack2<A>(v[32 * half + 2 * i], v[32 * half + 2 * i + 1]);
        }
      } else {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int64_t c = k[half] - kb;  // within the step: units never straddle steps
          uint4* dst = reinterpret_cast<uint4*>(ws + r * kStride + c);
#pragma unroll
          for (int i = 0; i < 4; ++i) dst[i] = zero;
        }
      }
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      uint32_t a[2][4], b[4][2];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
        ldmatrix_x4(a[mt], xs + (wm * 32 + mt * 16 + lane % 16) * kStride + kk * 16 + (lane / 16) * 8);
#pragma unroll
      for (int np = 0; np < 2; ++np) {
        uint32_t r[4];
        ldmatrix_x4(r, ws + (wn * 32 + np * 16 + (lane / 16) * 8 + lane % 8) * kStride + kk * 16 + ((lane / 8) % 2) * 8);
        b[2 * np][0] = r[0], b[2 * np][1] = r[1], b[2 * np + 1][0] = r[2], b[2 * np + 1][1] = r[3];
      }
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) mma16816<A>(acc[mt][nt], a[mt], b[nt][0], b[nt][1]);
    }
    __syncthreads();
  }

  const int g = lane / 4, tig = lane % 4;
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int nt = 0; nt < 4; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t m = m0 + wm * 32 + mt * 16 + g + (e / 2) * 8;
        const int64_t n = n0 + wn * 32 + nt * 8 + tig * 2 + e % 2;
        if (m >= M || n >= N) continue;
        if (partial) partial[(blockIdx.z * M + m) * N + n] = acc[mt][nt][e];
        else write_out<A>(out, out_f32, m * ldo + n, acc[mt][nt][e] + (bias ? bias[n] : 0.0f), accumulate);
      }
}

template <QuantKind F, typename A>
void run(const A* x, int64_t M, int64_t K, const QuantWeight& w, const float* bias, void* out, bool out_f32,
         int64_t ldo, bool accumulate, float* scratch, cudaStream_t s) {
  if (M <= kGemvRows) {
    const unsigned blocks = static_cast<unsigned>((w.rows + kGemvWarps - 1) / kGemvWarps);
    const int rows = static_cast<int>(M);
    auto go = [&](auto kernel) {
      kernel<<<blocks, kGemvWarps * 32, 0, s>>>(x, rows, K, w, bias, out, out_f32, ldo, accumulate);
    };
    if (M == 1) go(qgemv_kernel<F, A, 1>);
    else if (M == 2) go(qgemv_kernel<F, A, 2>);
    else if (M <= 4) go(qgemv_kernel<F, A, 4>);
    else go(qgemv_kernel<F, A, 8>);
    return;
  }
  const int64_t tiles_n = (w.rows + kBN - 1) / kBN, tiles_m = (M + kBM - 1) / kBM;
  const int64_t steps = (K + kBK - 1) / kBK;
  // Enough blocks for two waves over the SMs; each split keeps at least 4 K steps.
  int64_t splits = std::clamp<int64_t>((2 * sm_count() + tiles_n * tiles_m - 1) / (tiles_n * tiles_m), 1,
                                       std::min<int64_t>(kMaxSplits, std::max<int64_t>(1, steps / 4)));
  while (splits > 1 && splits * M * w.rows > quant_matmul_scratch_floats()) --splits;
  const int per_split = static_cast<int>((steps + splits - 1) / splits);
  splits = (steps + per_split - 1) / per_split;
  const dim3 grid(static_cast<unsigned>(tiles_n), static_cast<unsigned>(tiles_m), static_cast<unsigned>(splits));
  qgemm_kernel<F, A><<<grid, kThreads, 0, s>>>(x, M, K, w, per_split, bias, out, out_f32, ldo, accumulate,
                                               splits > 1 ? scratch : nullptr);
  if (splits > 1) {
    sum_splits<A>(scratch, static_cast<int>(splits), M, w.rows, bias, out, out_f32, ldo, accumulate, s);
  }
}

// Kernels need the row of x [M, K] and the weight's rows addressable in whole 16-byte pieces
// and units of 64 values.
// GGUF weights run in cuda_packed_matmul.cu's tiles; this path takes the dense parts beside
// them (GGUF tensors of types without a GPU layout, dequantized at load).
template <typename A>
void dispatch(const A* x, int64_t M, int64_t K, const QuantWeight& w, const float* bias, void* out, bool out_f32,
              int64_t ldo, bool accumulate, float* scratch, cudaStream_t s) {
  FERRUM_CHECK(w.kind == QuantKind::Dense, "quant_matmul: dense parts only");
  run<QuantKind::Dense, A>(x, M, K, w, bias, out, out_f32, ldo, accumulate, scratch, s);
}

template <typename A>
__global__ void permute_columns_kernel(const A* __restrict__ x, int64_t M, int64_t K, const int32_t* __restrict__ perm,
                                       A* __restrict__ out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= M * K) return;
  out[i] = x[i / K * K + perm[i % K]];
}

template <QuantKind F>
__global__ void quant_embedding_kernel(QuantWeight w, int64_t K, const int32_t* __restrict__ ids,
                                       float* __restrict__ out) {
  const int64_t t = blockIdx.x, id = ids[t];
  if (id < 0 || id >= w.rows) {  // rows a padded graph batch adds hold no token: zeros, as embedding() gives
    for (int64_t i = threadIdx.x; i < K; i += blockDim.x) out[t * K + i] = 0.0f;
    return;
  }
  for (int64_t u = threadIdx.x; u < K / 64; u += blockDim.x) {
    float v[64];
    dequant_unit<F, __nv_bfloat16>(w, id, u, v);
    int64_t k[2];
    unit_runs<F>(u, k[0], k[1]);
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      out[t * K + k[0] + i] = v[i];
      out[t * K + k[1] + i] = v[32 + i];
    }
  }
}

}  // namespace

int64_t quant_matmul_scratch_floats() {
  // splits * M * N <= (2 SMs + tiles) * 64 * 64 while splits > 1 (tiles < 2 SMs): a fixed bound.
  return static_cast<int64_t>(4) * sm_count() * kBM * kBN;
}

void quant_matmul(const void* x, DType act, int64_t M, int64_t K, const QuantWeight& w, const float* bias, void* out,
                  DType out_dtype, int64_t ldo, bool accumulate, float* scratch, cudaStream_t s) {
  FERRUM_CHECK(K % 64 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0,
               "quant_matmul: K = {} must be a multiple of 64 and x 16-byte aligned", K);
  FERRUM_CHECK(!accumulate || out_dtype == DType::F32, "quant_matmul: accumulates into F32 only");
  FERRUM_CHECK(out_dtype == DType::F32 || out_dtype == act, "quant_matmul: output {} for activations {}",
               dtype_name(out_dtype), dtype_name(act));
  if (M == 0) return;
  const bool out_f32 = out_dtype == DType::F32;
  if (act == DType::BF16)
    dispatch(static_cast<const __nv_bfloat16*>(x), M, K, w, bias, out, out_f32, ldo, accumulate, scratch, s);
  else if (act == DType::F16)
    dispatch(static_cast<const __half*>(x), M, K, w, bias, out, out_f32, ldo, accumulate, scratch, s);
  else
    fail("quant_matmul: activations must be F16 or BF16, not {}", dtype_name(act));
}

void permute_columns(const void* x, DType act, int64_t M, int64_t K, const int32_t* perm, void* out, cudaStream_t s) {
  const unsigned blocks = static_cast<unsigned>((M * K + 255) / 256);
  if (M * K == 0) return;
  if (act == DType::BF16)
    permute_columns_kernel<<<blocks, 256, 0, s>>>(static_cast<const __nv_bfloat16*>(x), M, K, perm,
                                                  static_cast<__nv_bfloat16*>(out));
  else
    permute_columns_kernel<<<blocks, 256, 0, s>>>(static_cast<const __half*>(x), M, K, perm, static_cast<__half*>(out));
}

void quant_embedding(const QuantWeight& w, int64_t K, const int32_t* ids, int64_t n, float* out, cudaStream_t s) {
  FERRUM_CHECK(K % 64 == 0, "quant_embedding: rows of {} values are not whole units of 64", K);
  if (n == 0) return;
  const unsigned blocks = static_cast<unsigned>(n);
  switch (w.kind) {
    case QuantKind::Q8_0: quant_embedding_kernel<QuantKind::Q8_0><<<blocks, 128, 0, s>>>(w, K, ids, out); break;
    case QuantKind::Q4_0: quant_embedding_kernel<QuantKind::Q4_0><<<blocks, 128, 0, s>>>(w, K, ids, out); break;
    case QuantKind::Q4K: quant_embedding_kernel<QuantKind::Q4K><<<blocks, 128, 0, s>>>(w, K, ids, out); break;
    case QuantKind::Q5K: quant_embedding_kernel<QuantKind::Q5K><<<blocks, 128, 0, s>>>(w, K, ids, out); break;
    case QuantKind::Q6K: quant_embedding_kernel<QuantKind::Q6K><<<blocks, 128, 0, s>>>(w, K, ids, out); break;
    default: fail("quant_embedding: not a GGUF block table");
  }
}

}  // namespace ferrum::cuda
