// Skinny matmuls (decode: a few rows of x) against 16-bit weights: out[m, n] = x[m, :] . w[n, :].
// Memory-bound on the weights, which are read once with 16-byte loads, several in flight per
// lane; one warp per output column n, all m rows at once. x is in the weights' type (the
// activations' type), as on the cuBLAS path, with F32 accumulation.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdlib>
#include <type_traits>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_numeric.cuh"

namespace ferrum::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;

// One warp's dot products of weight row `row` with the m rows of x (in the weights' type),
// reduced over the warp. K % 8 == 0 and 16-byte aligned rows (checked by the caller).
// kUnroll 16-byte weight loads per lane are in flight; kPipelined: the next group is loaded
// before the current one is used (two groups in flight, no wait between them).
template <typename W, int M>
__device__ __forceinline__ void dot_chunk(const W* __restrict__ x, int64_t k, int64_t c, const uint4& u, float* acc) {
  float wf[8];
  unpack8<W>(u, wf);
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float xf[8];
    unpack8<W>(__ldg(reinterpret_cast<const uint4*>(x + m * k) + c), xf);
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[m] += wf[i] * xf[i];
  }
}

template <typename W, int M, int kUnroll, bool kPipelined>
__device__ __forceinline__ void row_dots(const W* __restrict__ x, const W* __restrict__ w_row, int64_t k, int lane,
                                         float* acc) {
  const uint4* row = reinterpret_cast<const uint4*>(w_row);
  const int64_t chunks = k / 8;  // 8 weights per 16-byte load
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  constexpr int64_t kStep = 32 * kUnroll;
  if constexpr (kPipelined) {
    const uint4 zero = make_uint4(0, 0, 0, 0);
    uint4 a[kUnroll], b[kUnroll];
    auto load = [&](uint4* u, int64_t base) {
#pragma unroll
      for (int r = 0; r < kUnroll; ++r) u[r] = base + 32 * r < chunks ? __ldg(row + base + 32 * r) : zero;
    };
    auto use = [&](const uint4* u, int64_t base) {
#pragma unroll
      for (int r = 0; r < kUnroll; ++r)
        if (base + 32 * r < chunks) dot_chunk<W, M>(x, k, base + 32 * r, u[r], acc);
    };
    load(a, lane);
    for (int64_t base = lane; base < chunks; base += 2 * kStep) {
      load(b, base + kStep);
      use(a, base);
      load(a, base + 2 * kStep);
      use(b, base + kStep);
    }
  } else {
    int64_t c = lane;
    for (; c + 32 * (kUnroll - 1) < chunks; c += kStep) {
      uint4 u[kUnroll];
#pragma unroll
      for (int r = 0; r < kUnroll; ++r) u[r] = __ldg(row + c + 32 * r);  // all loads issued first
#pragma unroll
      for (int r = 0; r < kUnroll; ++r) dot_chunk<W, M>(x, k, c + 32 * r, u[r], acc);
    }
    for (; c < chunks; c += 32) dot_chunk<W, M>(x, k, c, __ldg(row + c), acc);
  }
#pragma unroll
  for (int m = 0; m < M; ++m)
    for (int o = 16; o > 0; o >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], o);
}

// One warp per output column n. O is the output's type: W (Store into activations) or float
// (Store into logits, Accumulate into the F32 residual stream).
template <typename W, typename O, int M, GemvMode kMode, int U, bool P>
__global__ void gemv_kernel(const W* __restrict__ x, const W* __restrict__ w, const float* __restrict__ bias,
                            int64_t n_cols, int64_t k, O* __restrict__ out) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  if (n >= n_cols) return;
  float acc[M];
  row_dots<W, M, U, P>(x, w + n * k, k, lane, acc);
  if (lane != 0) return;
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float v = acc[m] + (bias ? bias[n] : 0.0f);
    if constexpr (kMode == GemvMode::Accumulate) out[m * n_cols + n] = to_float(out[m * n_cols + n]) + v;
    else out[m * n_cols + n] = from_float<O>(v);
  }
}

// SwiGLU over one weight of 2 * n_cols rows (gate rows, then up rows): a block's first half of
// warps take gate rows, the second half the same up rows (so the weight loads in flight are
// those of two plain GEMVs), then they meet in shared memory.
template <typename W, int M, int U, bool P>
__global__ void gate_up_silu_kernel(const W* __restrict__ x, const W* __restrict__ w, const float* __restrict__ bias,
                                    int64_t n_cols, int64_t k, W* __restrict__ out) {
  constexpr int kHalf = kWarpsPerBlock / 2;
  __shared__ float gate[kHalf][M];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kHalf + warp % kHalf;
  const int64_t row = warp < kHalf ? n : n_cols + n;
  float acc[M];
  if (n < n_cols) row_dots<W, M, U, P>(x, w + row * k, k, lane, acc);
  const float b = bias && n < n_cols ? bias[row] : 0.0f;
  if (warp < kHalf && lane == 0 && n < n_cols)
#pragma unroll
    for (int m = 0; m < M; ++m) gate[warp][m] = acc[m] + b;
  __syncthreads();
  if (warp >= kHalf && lane == 0 && n < n_cols) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float g = gate[warp - kHalf][m];
      out[m * n_cols + n] = from_float<W>(g / (1.0f + expf(-g)) * (acc[m] + b));
    }
  }
}

template <typename W, int M, int U, bool P>
void launch_variant(const void* xv, const void* wv, const float* bias, int64_t n, int64_t k, void* out, DType out_dtype,
            GemvMode mode, cudaStream_t s) {
  const W* x = static_cast<const W*>(xv);
  const W* w = static_cast<const W*>(wv);
  if (mode == GemvMode::SiluMul) {
    const int64_t half = n / 2;
    const unsigned blocks = static_cast<unsigned>((half + kWarpsPerBlock / 2 - 1) / (kWarpsPerBlock / 2));
    gate_up_silu_kernel<W, M, U, P><<<blocks, kWarpsPerBlock * 32, 0, s>>>(x, w, bias, half, k, static_cast<W*>(out));
    return;
  }
  const unsigned blocks = static_cast<unsigned>((n + kWarpsPerBlock - 1) / kWarpsPerBlock);
  if (mode == GemvMode::Accumulate)
    gemv_kernel<W, float, M, GemvMode::Accumulate, U, P>
        <<<blocks, kWarpsPerBlock * 32, 0, s>>>(x, w, bias, n, k, static_cast<float*>(out));
  else if (out_dtype == DType::F32)
    gemv_kernel<W, float, M, GemvMode::Store, U, P>
        <<<blocks, kWarpsPerBlock * 32, 0, s>>>(x, w, bias, n, k, static_cast<float*>(out));
  else
    gemv_kernel<W, W, M, GemvMode::Store, U, P><<<blocks, kWarpsPerBlock * 32, 0, s>>>(x, w, bias, n, k, static_cast<W*>(out));
}

// FERRUM_GEMV_VARIANT (experiments): 0 four loads in flight, 1 eight, 2 four pipelined.
int gemv_variant() {
  static const int v = [] {
    const char* e = std::getenv("FERRUM_GEMV_VARIANT");
    return e ? std::atoi(e) : 0;
  }();
  return v;
}

template <typename W, int M>
void launch(const void* x, const void* w, const float* bias, int64_t n, int64_t k, void* out, DType out_dtype,
            GemvMode mode, cudaStream_t s) {
  switch (gemv_variant()) {
    case 1: return launch_variant<W, M, 8, false>(x, w, bias, n, k, out, out_dtype, mode, s);
    case 2: return launch_variant<W, M, 4, true>(x, w, bias, n, k, out, out_dtype, mode, s);
    default: return launch_variant<W, M, 4, false>(x, w, bias, n, k, out, out_dtype, mode, s);
  }
}

// Which rows go where: one row here (one warp per weight row), 2-16 on tensor cores
// (cuda_skinny_mma.cu), where re-reading every x row per weight load costs more than the
// weights; more to cuBLAS. FERRUM_SKINNY_MIN / FERRUM_SKINNY_MAX move the bounds (experiments).
int env_or(const char* name, int fallback) {
  const char* e = std::getenv(name);
  return e ? std::atoi(e) : fallback;
}

template <typename W>
bool dispatch(int64_t m, const void* x, const void* w, const float* bias, int64_t n, int64_t k, void* out,
              DType out_dtype, GemvMode mode, cudaStream_t s) {
  static const int skinny_min = env_or("FERRUM_SKINNY_MIN", 2), skinny_max = env_or("FERRUM_SKINNY_MAX", 16);
  if (m >= skinny_min && m <= skinny_max && m <= 16) {
    skinny_mma_16bit(x, m, std::is_same_v<W, __half> ? DType::F16 : DType::BF16, w, bias, n, k, out, out_dtype, mode,
                     s);
    return true;
  }
  switch (m) {
    case 1: launch<W, 1>(x, w, bias, n, k, out, out_dtype, mode, s); return true;
    case 2: launch<W, 2>(x, w, bias, n, k, out, out_dtype, mode, s); return true;
    default: return false;
  }
}

}  // namespace

bool gemv_16bit(const void* x, int64_t m, DType dtype, const void* w, const float* bias, int64_t n, int64_t k,
                void* out, DType out_dtype, GemvMode mode, cudaStream_t s) {
  if (k % 8 != 0 || reinterpret_cast<uintptr_t>(x) % 16 != 0 || reinterpret_cast<uintptr_t>(w) % 16 != 0) return false;
  if (mode == GemvMode::SiluMul && (n % 2 != 0 || out_dtype != dtype)) return false;
  if (mode == GemvMode::Accumulate && out_dtype != DType::F32) return false;
  if (out_dtype != DType::F32 && out_dtype != dtype) return false;
  if (dtype == DType::BF16) return dispatch<__nv_bfloat16>(m, x, w, bias, n, k, out, out_dtype, mode, s);
  if (dtype == DType::F16) return dispatch<__half>(m, x, w, bias, n, k, out, out_dtype, mode, s);
  return false;
}

}  // namespace ferrum::cuda
