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

// out[m, n] (rows of ldo) = sum over splits of partial[s, m, n] + bias[n].
template <typename A>
__global__ void sum_splits_kernel(const float* __restrict__ partial, int splits, int64_t M, int64_t N,
                                  const float* __restrict__ bias, void* __restrict__ out, bool out_f32, int64_t ldo,
                                  bool accumulate) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= M * N) return;
  const int64_t m = i / N, n = i % N;
  float v = bias ? bias[n] : 0.0f;
  for (int s = 0; s < splits; ++s) v += partial[s * M * N + i];
  write_out<A>(out, out_f32, m * ldo + n, v, accumulate);
}

// The same, launched on stream s.
template <typename A>
void sum_splits(const float* partial, int splits, int64_t M, int64_t N, const float* bias, void* out, bool out_f32,
                int64_t ldo, bool accumulate, cudaStream_t s) {
  const int64_t total = M * N;
  sum_splits_kernel<A><<<static_cast<unsigned>((total + 255) / 256), 256, 0, s>>>(partial, splits, M, N, bias, out,
                                                                                  out_f32, ldo, accumulate);
}

}  // namespace ferrum::cuda
