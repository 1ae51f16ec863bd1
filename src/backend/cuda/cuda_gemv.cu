// Skinny matmuls (decode: a few rows of x) against 16-bit weights: out[m, n] = x[m, :] . w[n, :].
// Memory-bound on the weights, which are read once with 16-byte loads, several in flight per
// lane; one warp per output column n, all m rows at once. x is in the weights' type (the
// activations' type), as on the cuBLAS path, with F32 accumulation.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdlib>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_numeric.cuh"
#include "backend/cuda/cuda_pdl.cuh"

namespace ferrum::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;

// One warp's dot products of weight row `row` with the m rows of x (in the weights' type),
// reduced over the warp. K % 8 == 0 and 16-byte aligned rows (checked by the caller).
template <typename W, int M, bool kPdl>
__device__ __forceinline__ void row_dots(const W* __restrict__ x, const W* __restrict__ w_row, int64_t k, int lane,
                                         float* acc) {
  const uint4* row = reinterpret_cast<const uint4*>(w_row);
  const int64_t chunks = k / 8;  // 8 weights per 16-byte load
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  constexpr int kUnroll = 4;
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
    for (int r = 0; r < kUnroll; ++r) {
      float wf[8];
      unpack8<W>(u[r], wf);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float xf[8];
        unpack8<W>(load_x<kPdl>(reinterpret_cast<const uint4*>(x + m * k) + c + 32 * r), xf);
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[m] += wf[i] * xf[i];
      }
    }
  }
  if (!waited) pdl_wait();
  for (; c < chunks; c += 32) {
    float wf[8];
    unpack8<W>(__ldg(row + c), wf);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float xf[8];
      unpack8<W>(load_x<kPdl>(reinterpret_cast<const uint4*>(x + m * k) + c), xf);
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[m] += wf[i] * xf[i];
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m)
    for (int o = 16; o > 0; o >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], o);
}

// One warp per output column n. O is the output's type: W (Store into activations) or float
// (Store into logits, Accumulate into the F32 residual stream).
template <typename W, typename O, int M, GemvMode kMode, bool kPdl>
__global__ void gemv_kernel(const W* __restrict__ x, const W* __restrict__ w, const float* __restrict__ bias,
                            int64_t n_cols, int64_t k, O* __restrict__ out) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  pdl_trigger();
  if (n >= n_cols) return;  // warp 0 of every block has a row (it waits)
  float acc[M];
  row_dots<W, M, kPdl>(x, w + n * k, k, lane, acc);
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
template <typename W, int M, bool kPdl>
__global__ void gate_up_silu_kernel(const W* __restrict__ x, const W* __restrict__ w, const float* __restrict__ bias,
                                    int64_t n_cols, int64_t k, W* __restrict__ out) {
  constexpr int kHalf = kWarpsPerBlock / 2;
  __shared__ float gate[kHalf][M];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kHalf + warp % kHalf;
  const int64_t row = warp < kHalf ? n : n_cols + n;
  float acc[M];
  pdl_trigger();
  if (n < n_cols) row_dots<W, M, kPdl>(x, w + row * k, k, lane, acc);
  else pdl_wait();
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

template <typename W, int M, bool kPdl>
void launch(const void* xv, const void* wv, const float* bias, int64_t n, int64_t k, void* out, DType out_dtype,
            GemvMode mode, cudaStream_t s) {
  const W* x = static_cast<const W*>(xv);
  const W* w = static_cast<const W*>(wv);
  if (mode == GemvMode::SiluMul) {
    const int64_t half = n / 2;
    const unsigned blocks = static_cast<unsigned>((half + kWarpsPerBlock / 2 - 1) / (kWarpsPerBlock / 2));
    launch_pdl(gate_up_silu_kernel<W, M, kPdl>, blocks, kWarpsPerBlock * 32, 0, s, x, w, bias, half, k, static_cast<W*>(out));
    return;
  }
  const unsigned blocks = static_cast<unsigned>((n + kWarpsPerBlock - 1) / kWarpsPerBlock);
  if (mode == GemvMode::Accumulate)
    launch_pdl(gemv_kernel<W, float, M, GemvMode::Accumulate, kPdl>, blocks, kWarpsPerBlock * 32, 0, s, x, w, bias, n, k,
               static_cast<float*>(out));
  else if (out_dtype == DType::F32)
    launch_pdl(gemv_kernel<W, float, M, GemvMode::Store, kPdl>, blocks, kWarpsPerBlock * 32, 0, s, x, w, bias, n, k,
               static_cast<float*>(out));
  else
    launch_pdl(gemv_kernel<W, W, M, GemvMode::Store, kPdl>, blocks, kWarpsPerBlock * 32, 0, s, x, w, bias, n, k,
               static_cast<W*>(out));
}

// Rows of x this kernel takes; beyond, the x reads per weight byte make cuBLAS faster. (A
// tensor-core kernel for 2-16 rows, 16 weight rows against 8 of x per MMA, was tried: cuBLAS
// was faster from 3 rows on; docs/bench/h200-serving.md has the numbers.)
template <typename W>
bool dispatch(int64_t m, const void* x, const void* w, const float* bias, int64_t n, int64_t k, void* out,
              DType out_dtype, GemvMode mode, cudaStream_t s) {
  const bool pdl = pdl_enabled();
  switch (m) {
    case 1: (pdl ? launch<W, 1, true> : launch<W, 1, false>)(x, w, bias, n, k, out, out_dtype, mode, s); return true;
    case 2: (pdl ? launch<W, 2, true> : launch<W, 2, false>)(x, w, bias, n, k, out, out_dtype, mode, s); return true;
    default: return false;
  }
}

}  // namespace

bool gemv_16bit(const void* x, int64_t m, DType dtype, const void* w, const float* bias, int64_t n, int64_t k,
                void* out, DType out_dtype, GemvMode mode, cudaStream_t s) {
  static const bool off = std::getenv("FERRUM_NO_GEMV") != nullptr;  // cuBLAS at every row count (diagnosis)
  if (off) return false;
  if (k % 8 != 0 || reinterpret_cast<uintptr_t>(x) % 16 != 0 || reinterpret_cast<uintptr_t>(w) % 16 != 0) return false;
  if (mode == GemvMode::SiluMul && (n % 2 != 0 || out_dtype != dtype)) return false;
  if (mode == GemvMode::Accumulate && out_dtype != DType::F32) return false;
  if (out_dtype != DType::F32 && out_dtype != dtype) return false;
  if (dtype == DType::BF16) return dispatch<__nv_bfloat16>(m, x, w, bias, n, k, out, out_dtype, mode, s);
  if (dtype == DType::F16) return dispatch<__half>(m, x, w, bias, n, k, out, out_dtype, mode, s);
  return false;
}

}  // namespace ferrum::cuda
