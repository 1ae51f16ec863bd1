// Skinny matmuls (decode: a few rows of x) against 16-bit weights: out[m, n] = x[m, :] . w[n, :].
// Memory-bound on the weights, which are read once with 16-byte loads, several in flight per
// lane; one warp per output column n, all m rows at once. x is rounded to the weights' type
// first, exactly as the cuBLAS path does for larger batches, so results do not depend on the
// batch size's kernel choice beyond summation order.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_numeric.cuh"

namespace ferrum::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;

// One warp's dot products of weight row `row` with the m rows of x, reduced over the warp.
// K % 8 == 0 and 16-byte aligned rows (checked by the caller).
template <typename W, int M>
__device__ __forceinline__ void row_dots(const float* __restrict__ x, const W* __restrict__ w_row, int64_t k,
                                         int lane, float* acc) {
  const uint4* row = reinterpret_cast<const uint4*>(w_row);
  const int64_t chunks = k / 8;  // 8 weights per 16-byte load
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  constexpr int kUnroll = 4;
  int64_t c = lane;
  for (; c + 32 * (kUnroll - 1) < chunks; c += 32 * kUnroll) {
    uint4 u[kUnroll];
#pragma unroll
    for (int r = 0; r < kUnroll; ++r) u[r] = __ldg(row + c + 32 * r);  // all loads issued first
#pragma unroll
    for (int r = 0; r < kUnroll; ++r) {
      float wf[8];
      unpack8<W>(u[r], wf);
      const int64_t base = (c + 32 * r) * 8;
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const float4* xp = reinterpret_cast<const float4*>(x + m * k + base);
        const float4 a = __ldg(xp), b = __ldg(xp + 1);
        acc[m] += wf[0] * round_to<W>(a.x) + wf[1] * round_to<W>(a.y) + wf[2] * round_to<W>(a.z) +
                  wf[3] * round_to<W>(a.w) + wf[4] * round_to<W>(b.x) + wf[5] * round_to<W>(b.y) +
                  wf[6] * round_to<W>(b.z) + wf[7] * round_to<W>(b.w);
      }
    }
  }
  for (; c < chunks; c += 32) {
    float wf[8];
    unpack8<W>(__ldg(row + c), wf);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float* xp = x + m * k + c * 8;
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[m] += wf[i] * round_to<W>(xp[i]);
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m)
    for (int o = 16; o > 0; o >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], o);
}

// Warps are numbered over the columns of every target in turn (q, then k, then v).
template <typename W, int M, GemvMode kMode>
__global__ void gemv_kernel(const float* __restrict__ x, GemvTargets t, int64_t k) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int64_t n = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  // Constant indices only: a dynamic index into the parameters would copy them to local memory.
  const void* wp;
  const float* bias;
  float* out;
  int64_t cols;
  if (n < t.n[0]) {
    wp = t.w[0], bias = t.bias[0], out = t.out[0], cols = t.n[0];
  } else if (t.count > 1 && n - t.n[0] < t.n[1]) {
    n -= t.n[0];
    wp = t.w[1], bias = t.bias[1], out = t.out[1], cols = t.n[1];
  } else if (t.count > 2 && n - t.n[0] - t.n[1] < t.n[2]) {
    n -= t.n[0] + t.n[1];
    wp = t.w[2], bias = t.bias[2], out = t.out[2], cols = t.n[2];
  } else {
    return;
  }
  float acc[M];
  row_dots<W, M>(x, static_cast<const W*>(wp) + n * k, k, lane, acc);
  if (lane != 0) return;
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float v = acc[m] + (bias ? bias[n] : 0.0f);
    if (kMode == GemvMode::Accumulate) out[m * cols + n] += v;
    else out[m * cols + n] = v;
  }
}

// SwiGLU: a block's first half of warps take gate rows, the second half the same up rows (so
// the weight loads in flight are those of two plain GEMVs), then they meet in shared memory.
template <typename W, int M>
__global__ void gate_up_silu_kernel(const float* __restrict__ x, const W* __restrict__ w_gate,
                                    const W* __restrict__ w_up, int64_t n_cols, int64_t k, float* __restrict__ out) {
  constexpr int kHalf = kWarpsPerBlock / 2;
  __shared__ float gate[kHalf][M];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kHalf + warp % kHalf;
  float acc[M];
  if (n < n_cols) row_dots<W, M>(x, (warp < kHalf ? w_gate : w_up) + n * k, k, lane, acc);
  if (warp < kHalf && lane == 0 && n < n_cols)
#pragma unroll
    for (int m = 0; m < M; ++m) gate[warp][m] = acc[m];
  __syncthreads();
  if (warp >= kHalf && lane == 0 && n < n_cols) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float g = gate[warp - kHalf][m];
      out[m * n_cols + n] = g / (1.0f + expf(-g)) * acc[m];
    }
  }
}

template <typename W, int M>
void launch(const float* x, const GemvTargets& t, int64_t k, GemvMode mode, cudaStream_t s) {
  if (mode == GemvMode::SiluMul) {
    const unsigned blocks = static_cast<unsigned>((t.n[0] + kWarpsPerBlock / 2 - 1) / (kWarpsPerBlock / 2));
    gate_up_silu_kernel<W, M><<<blocks, kWarpsPerBlock * 32, 0, s>>>(x, static_cast<const W*>(t.w[0]),
                                                                     static_cast<const W*>(t.w[1]), t.n[0], k, t.out[0]);
    return;
  }
  int64_t n = 0;
  for (int i = 0; i < t.count; ++i) n += t.n[i];
  const unsigned blocks = static_cast<unsigned>((n + kWarpsPerBlock - 1) / kWarpsPerBlock);
  if (mode == GemvMode::Accumulate)
    gemv_kernel<W, M, GemvMode::Accumulate><<<blocks, kWarpsPerBlock * 32, 0, s>>>(x, t, k);
  else
    gemv_kernel<W, M, GemvMode::Store><<<blocks, kWarpsPerBlock * 32, 0, s>>>(x, t, k);
}

// Rows of x this kernel takes; beyond, the x reads per weight byte make cuBLAS faster.
template <typename W>
bool dispatch(int64_t m, const float* x, const GemvTargets& t, int64_t k, GemvMode mode, cudaStream_t s) {
  switch (m) {
    case 1: launch<W, 1>(x, t, k, mode, s); return true;
    case 2: launch<W, 2>(x, t, k, mode, s); return true;
    default: return false;
  }
}

}  // namespace

bool gemv_16bit(const float* x, int64_t m, DType w_dtype, const GemvTargets& targets, int64_t k, GemvMode mode,
                cudaStream_t s) {
  if (k % 8 != 0 || reinterpret_cast<uintptr_t>(x) % 16 != 0) return false;
  for (int i = 0; i < targets.count; ++i)
    if (reinterpret_cast<uintptr_t>(targets.w[i]) % 16 != 0) return false;
  if (w_dtype == DType::BF16) return dispatch<__nv_bfloat16>(m, x, targets, k, mode, s);
  if (w_dtype == DType::F16) return dispatch<__half>(m, x, targets, k, mode, s);
  return false;
}

}  // namespace ferrum::cuda
