// Rows of 16-bit activations to E4M3 with a scale per row (cuda_fp8_gemm.h).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "backend/cuda/cuda_fp8_gemm.h"
#include "backend/cuda/cuda_numeric.cuh"

namespace ferrum::cuda {
namespace {

constexpr int kThreads = 256;

template <typename A>
__global__ void quantize_rows_fp8_kernel(const A* x, int64_t K, uint8_t* q, float* scale) {
  __shared__ float warp_max[kThreads / 32];
  const A* row = x + blockIdx.x * K;
  float m = 0.0f;
  for (int64_t i = threadIdx.x; i < K; i += kThreads) m = fmaxf(m, fabsf(to_float(row[i])));
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = m;
  __syncthreads();
  m = 0.0f;
  for (int w = 0; w < kThreads / 32; ++w) m = fmaxf(m, warp_max[w]);
  const float s = m > 0.0f ? m / 448.0f : 1.0f;
  if (threadIdx.x == 0) scale[blockIdx.x] = s;
  uint8_t* out = q + blockIdx.x * K;
  for (int64_t i = threadIdx.x; i < K; i += kThreads)
    out[i] = static_cast<uint8_t>(__nv_cvt_float_to_fp8(to_float(row[i]) / s, __NV_SATFINITE, __NV_E4M3));
}

}  // namespace

void quantize_rows_fp8(const void* x, DType dtype, int64_t M, int64_t K, uint8_t* q, float* scale, cudaStream_t s) {
  if (M == 0) return;
  if (dtype == DType::BF16)
    quantize_rows_fp8_kernel<<<static_cast<unsigned>(M), kThreads, 0, s>>>(static_cast<const __nv_bfloat16*>(x), K, q, scale);
  else
    quantize_rows_fp8_kernel<<<static_cast<unsigned>(M), kThreads, 0, s>>>(static_cast<const __half*>(x), K, q, scale);
}

}  // namespace ferrum::cuda
