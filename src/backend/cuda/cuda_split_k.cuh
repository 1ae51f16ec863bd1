// The epilogue shared by the quantized matmuls (cuda_packed_matmul.cu, cuda_quant_matmul.cu):
// an output element written as F32 (stored, or added to) or in the activations' type, and the
// sum of split-K partials in a fixed order (results do not depend on timing).
#pragma once
#include <cstdint>

#include "backend/cuda/cuda_numeric.cuh"

namespace ferrum::cuda {

// Element i of the output: F32 (stored, or added to) or the activations' type A.
template <typename A>
__device__ __forceinline__ void write_out(void* out, bool out_f32, int64_t i, float v, bool accumulate) {
  if (out_f32) {
    float* o = static_cast<float*>(out);
    o[i] = accumulate ? o[i] + v : v;
  } else {
    static_cast<A*>(out)[i] = from_float<A>(v);
  }
}

// out[r, j] (rows of ldo) = sum over splits of partial[s, r, j] + bias[j], F32 (stored or added
// to) or A; rows whose sorted_route is negative (MoE padding, when given) are skipped. Silu:
// the partials' two halves are gate and up, out[r, j] = silu(gate) * up in A (j < n / 2).
template <typename A, bool kSilu>
__global__ void sum_splits_kernel(const float* __restrict__ partial, int splits, int64_t rows, int64_t n,
                                  const int32_t* __restrict__ sorted_route, const float* __restrict__ bias,
                                  void* __restrict__ out, bool out_f32, int64_t ldo, bool accumulate) {
  const int64_t width = kSilu ? n / 2 : n;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * width) return;
  const int64_t r = i / width, j = i % width;
  if (sorted_route && sorted_route[r] < 0) return;
  float v = 0.0f, u = 0.0f;
  for (int sp = 0; sp < splits; ++sp) {
    const float* at = partial + (sp * rows + r) * n;
    v += at[j];
    if constexpr (kSilu) u += at[width + j];
  }
  if constexpr (kSilu) write_out<A>(out, false, r * ldo + j, v / (1.0f + expf(-v)) * u, false);
  else write_out<A>(out, out_f32, r * ldo + j, v + (bias ? bias[j] : 0.0f), accumulate);
}

// The same, launched on stream s.
template <typename A, bool kSilu = false>
void sum_splits(const float* partial, int splits, int64_t rows, int64_t n, const int32_t* sorted_route,
                const float* bias, void* out, bool out_f32, int64_t ldo, bool accumulate, cudaStream_t s) {
  const int64_t total = rows * (kSilu ? n / 2 : n);
  sum_splits_kernel<A, kSilu><<<static_cast<unsigned>((total + 255) / 256), 256, 0, s>>>(
      partial, splits, rows, n, sorted_route, bias, out, out_f32, ldo, accumulate);
}
// Dense rows (every row real).
template <typename A>
void sum_splits(const float* partial, int splits, int64_t M, int64_t N, const float* bias, void* out, bool out_f32,
                int64_t ldo, bool accumulate, cudaStream_t s) {
  sum_splits<A, false>(partial, splits, M, N, nullptr, bias, out, out_f32, ldo, accumulate, s);
}

}  // namespace ferrum::cuda
