// Skinny matmuls (decode: a few rows of x) against 16-bit or E4M3 weights: out[m, n] =
// x[m, :] . w[n, :] (times the row's scale for E4M3). Memory-bound on the weights, which are
// read once with 16-byte loads, several in flight per lane; one warp per output column n, all m
// rows at once. x is in the activations' type (F16/BF16), with F32 accumulation.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <type_traits>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_numeric.cuh"
#include "backend/cuda/cuda_pdl.cuh"

namespace ferrum::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;

// How a 16-byte load of weights of element type W becomes floats: 8 16-bit values, or 16 E4M3
// codes (converted in pairs to half, exact, then to float).
template <typename W>
struct Codec {
  static constexpr int kPerLoad = 8;
  __device__ __forceinline__ static void unpack(const uint4& u, float* f) { unpack8<W>(u, f); }
};
template <>
struct Codec<__nv_fp8_e4m3> {
  static constexpr int kPerLoad = 16;
  __device__ __forceinline__ static void unpack(const uint4& u, float* f) {
    const uint32_t words[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const __half2_raw r = __nv_cvt_fp8x2_to_halfraw2(
            static_cast<__nv_fp8x2_storage_t>(words[i] >> (16 * h)), __NV_E4M3);  // low byte: first value
        const float2 v = __half22float2(__half2(r));
        f[4 * i + 2 * h] = v.x, f[4 * i + 2 * h + 1] = v.y;
      }
    }
  }
};

// One warp's dot products of weight row `w_row` (K values of W) with the m rows of x (type A),
// reduced over the warp. K % kPerLoad == 0 and 16-byte aligned rows (checked by the caller).
template <typename A, typename W, int M, bool kPdl>
__device__ __forceinline__ void row_dots(const A* __restrict__ x, const W* __restrict__ w_row, int64_t k, int lane,
                                         float* acc) {
  using C = Codec<W>;
  constexpr int kPer = C::kPerLoad, kXLoads = kPer / 8;  // x's 16-byte loads per weight load
  const uint4* row = reinterpret_cast<const uint4*>(w_row);
  const int64_t chunks = k / kPer;
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  // Loads in flight per lane: 64 bytes of 16-bit weights, 128 of E4M3 (the same 32 weights).
  constexpr int kUnroll = kPer == 8 ? 4 : 8;
  const auto dot = [&](const uint4& u, int64_t c) {
    float wf[kPer];
    C::unpack(u, wf);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const uint4* xm = reinterpret_cast<const uint4*>(x + m * k) + c * kXLoads;
#pragma unroll
      for (int j = 0; j < kXLoads; ++j) {
        float xf[8];
        unpack8<A>(load_x<kPdl>(xm + j), xf);
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[m] += wf[8 * j + i] * xf[i];
      }
    }
  };
  int64_t c = lane;
  bool waited = false;
  for (; c + 32 * (kUnroll - 1) < chunks; c += 32 * kUnroll) {
    uint4 u[kUnroll];
#pragma unroll
    for (int r = 0; r < kUnroll; ++r) u[r] = __ldg(row + c + 32 * r);  // all loads issued first
    if (!waited) {  // the first weights are on their way; x is the previous op's output
      pdl_wait();
      waited = true;
    }
#pragma unroll
    for (int r = 0; r < kUnroll; ++r) dot(u[r], c + 32 * r);
  }
  if (!waited) pdl_wait();
  for (; c < chunks; c += 32) dot(__ldg(row + c), c);
#pragma unroll
  for (int m = 0; m < M; ++m)
    for (int o = 16; o > 0; o >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], o);
}

// The row's factor: E4M3 rows have a scale each (null for 16-bit weights).
__device__ __forceinline__ float row_scale(const float* scales, int64_t row) { return scales ? scales[row] : 1.0f; }

// One warp per output column n. O is the output's type: A (Store into activations) or float
// (Store into logits, Accumulate into the F32 residual stream).
template <typename A, typename W, typename O, int M, GemvMode kMode, bool kPdl>
__global__ void gemv_kernel(const A* __restrict__ x, const W* __restrict__ w, const float* __restrict__ scales,
                            const float* __restrict__ bias, int64_t n_cols, int64_t k, O* __restrict__ out,
                            int64_t ldo) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  pdl_trigger();
  if (n >= n_cols) return;  // warp 0 of every block has a row (it waits)
  float acc[M];
  row_dots<A, W, M, kPdl>(x, w + n * k, k, lane, acc);
  if (lane != 0) return;
  const float s = row_scale(scales, n);
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float v = acc[m] * s + (bias ? bias[n] : 0.0f);
    if constexpr (kMode == GemvMode::Accumulate) out[m * ldo + n] = to_float(out[m * ldo + n]) + v;
    else out[m * ldo + n] = from_float<O>(v);
  }
}

// SwiGLU over one weight of 2 * n_cols rows (gate rows, then up rows): a block's first half of
// warps take gate rows, the second half the same up rows (so the weight loads in flight are
// those of two plain GEMVs), then they meet in shared memory. gate and up are rounded to A
// first, as the unfused path (a matmul into A, then silu_mul_halves) takes them.
template <typename A, typename W, int M, bool kPdl>
__global__ void gate_up_silu_kernel(const A* __restrict__ x, const W* __restrict__ w, const float* __restrict__ scales,
                                    const float* __restrict__ bias, int64_t n_cols, int64_t k, A* __restrict__ out,
                                    int64_t ldo) {
  constexpr int kHalf = kWarpsPerBlock / 2;
  __shared__ float gate[kHalf][M];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kHalf + warp % kHalf;
  const int64_t row = warp < kHalf ? n : n_cols + n;
  float acc[M];
  pdl_trigger();
  if (n < n_cols) row_dots<A, W, M, kPdl>(x, w + row * k, k, lane, acc);
  else pdl_wait();
  const float s = n < n_cols ? row_scale(scales, row) : 0.0f;
  const float b = bias && n < n_cols ? bias[row] : 0.0f;
  if (warp < kHalf && lane == 0 && n < n_cols)
#pragma unroll
    for (int m = 0; m < M; ++m) gate[warp][m] = round_to<A>(acc[m] * s + b);
  __syncthreads();
  if (warp >= kHalf && lane == 0 && n < n_cols) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float g = gate[warp - kHalf][m], u = round_to<A>(acc[m] * s + b);
      out[m * ldo + n] = from_float<A>(g / (1.0f + expf(-g)) * u);
    }
  }
}

template <typename A, typename W, int M, bool kPdl>
void launch(const void* xv, const void* wv, const float* scales, const float* bias, int64_t n, int64_t k, void* out,
            int64_t ldo, DType out_dtype, GemvMode mode, cudaStream_t s) {
  const A* x = static_cast<const A*>(xv);
  const W* w = static_cast<const W*>(wv);
  if (mode == GemvMode::SiluMul) {
    const int64_t half = n / 2;
    const unsigned blocks = static_cast<unsigned>((half + kWarpsPerBlock / 2 - 1) / (kWarpsPerBlock / 2));
    launch_pdl(gate_up_silu_kernel<A, W, M, kPdl>, blocks, kWarpsPerBlock * 32, 0, s, x, w, scales, bias, half, k,
               static_cast<A*>(out), ldo);
    return;
  }
  const unsigned blocks = static_cast<unsigned>((n + kWarpsPerBlock - 1) / kWarpsPerBlock);
  if (mode == GemvMode::Accumulate)
    launch_pdl(gemv_kernel<A, W, float, M, GemvMode::Accumulate, kPdl>, blocks, kWarpsPerBlock * 32, 0, s, x, w,
               scales, bias, n, k, static_cast<float*>(out), ldo);
  else if (out_dtype == DType::F32)
    launch_pdl(gemv_kernel<A, W, float, M, GemvMode::Store, kPdl>, blocks, kWarpsPerBlock * 32, 0, s, x, w, scales,
               bias, n, k, static_cast<float*>(out), ldo);
  else
    launch_pdl(gemv_kernel<A, W, A, M, GemvMode::Store, kPdl>, blocks, kWarpsPerBlock * 32, 0, s, x, w, scales, bias,
               n, k, static_cast<A*>(out), ldo);
}

template <typename A, typename W, int M>
void launch_m(const void* x, const void* w, const float* scales, const float* bias, int64_t n, int64_t k, void* out,
              int64_t ldo, DType out_dtype, GemvMode mode, cudaStream_t s) {
  (pdl_enabled() ? launch<A, W, M, true> : launch<A, W, M, false>)(x, w, scales, bias, n, k, out, ldo, out_dtype, mode,
                                                                    s);
}

// m rows of x: 1-2, or up to 4 for E4M3 weights; false beyond.
template <typename A, typename W>
bool dispatch(int64_t m, const void* x, const void* w, const float* scales, const float* bias, int64_t n, int64_t k,
              void* out, int64_t ldo, DType out_dtype, GemvMode mode, cudaStream_t s) {
  constexpr bool kWide = !std::is_same_v<A, W>;  // 3-4 rows: E4M3 only (cuBLAS wins on 16-bit weights)
  switch (m) {
    case 1: launch_m<A, W, 1>(x, w, scales, bias, n, k, out, ldo, out_dtype, mode, s); return true;
    case 2: launch_m<A, W, 2>(x, w, scales, bias, n, k, out, ldo, out_dtype, mode, s); return true;
    case 3: if constexpr (kWide) return launch_m<A, W, 3>(x, w, scales, bias, n, k, out, ldo, out_dtype, mode, s), true;
      return false;
    case 4: if constexpr (kWide) return launch_m<A, W, 4>(x, w, scales, bias, n, k, out, ldo, out_dtype, mode, s), true;
      return false;
    default: return false;
  }
}

// The checks both entry points share: shapes, alignment and output types the kernels take.
bool suits(const void* x, const void* w, int64_t k, int per_load, DType act, int64_t n, DType out_dtype,
           GemvMode mode) {
  if (act != DType::BF16 && act != DType::F16) return false;
  if (k % per_load != 0 || reinterpret_cast<uintptr_t>(x) % 16 != 0 || reinterpret_cast<uintptr_t>(w) % 16 != 0)
    return false;
  if (mode == GemvMode::SiluMul && (n % 2 != 0 || out_dtype != act)) return false;
  if (mode == GemvMode::Accumulate && out_dtype != DType::F32) return false;
  return out_dtype == DType::F32 || out_dtype == act;
}

}  // namespace

// Rows of x the 16-bit kernel takes; beyond, the x reads per weight byte make cuBLAS faster. (A
// tensor-core kernel for 2-16 rows, 16 weight rows against 8 of x per MMA, was tried: cuBLAS
// was faster from 3 rows on; docs/bench/h200-serving.md has the numbers.)
bool gemv_16bit(const void* x, int64_t m, DType dtype, const void* w, const float* bias, int64_t n, int64_t k,
                void* out, DType out_dtype, GemvMode mode, cudaStream_t s) {
  static const bool off = std::getenv("FERRUM_NO_GEMV") != nullptr;  // cuBLAS at every row count (diagnosis)
  if (off || !suits(x, w, k, 8, dtype, n, out_dtype, mode)) return false;
  const int64_t ldo = mode == GemvMode::SiluMul ? n / 2 : n;
  if (dtype == DType::BF16)
    return dispatch<__nv_bfloat16, __nv_bfloat16>(m, x, w, nullptr, bias, n, k, out, ldo, out_dtype, mode, s);
  return dispatch<__half, __half>(m, x, w, nullptr, bias, n, k, out, ldo, out_dtype, mode, s);
}

int fp8_gemv_max_rows() {
  static const int rows = [] {
    const char* v = std::getenv("FERRUM_FP8_GEMV_ROWS");
    return v ? std::clamp(std::atoi(v), 0, 4) : 1;
  }();
  return rows;
}

bool gemv_fp8(const void* x, int64_t m, DType act, const uint8_t* w, const float* row_scales, const float* bias,
              int64_t n, int64_t k, void* out, int64_t ldo, DType out_dtype, GemvMode mode, cudaStream_t s) {
  if (m > fp8_gemv_max_rows() || !suits(x, w, k, 16, act, n, out_dtype, mode)) return false;
  if (act == DType::BF16)
    return dispatch<__nv_bfloat16, __nv_fp8_e4m3>(m, x, w, row_scales, bias, n, k, out, ldo, out_dtype, mode, s);
  return dispatch<__half, __nv_fp8_e4m3>(m, x, w, row_scales, bias, n, k, out, ldo, out_dtype, mode, s);
}

}  // namespace ferrum::cuda
