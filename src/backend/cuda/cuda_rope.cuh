// One head of the fused q/k/v projection normed (Qwen3's per-head RMSNorm) and rotated (RoPE),
// by one warp: what qkv_rope_write_kv_kernel does for every head of a token, and what the
// decode attention kernel does for its own heads when it takes the projection itself
// (cuda::QkvRope, cuda_kernels.h). Both round the same F32 values once, so either path stores the same bits.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_numeric.cuh"
#include "backend/cuda/cuda_pdl.cuh"
#include "core/dtype.h"

namespace ferrum::cuda {

// Element i of a small parameter vector (a norm's weight) of type t.
__device__ __forceinline__ float load_param(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::BF16: return to_float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::F16: return to_float(static_cast<const __half*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

// Head `src` (d values of A, an earlier kernel's output) of a token at position pos: normed by
// `norm` (null: none) and rotated where 0 <= pos < max_positions; store(i, o1, o2) gets the
// lane's pairs (i, i + d/2) as F32. Every lane of the warp calls it.
template <typename A, typename Store>
__device__ __forceinline__ void rope_head(const A* src, const void* norm, DType norm_dtype, float eps, int64_t d,
                                          int32_t pos, const float* cos, const float* sin, int64_t max_positions,
                                          int lane, Store&& store) {
  const int64_t half = d / 2;
  const bool rotate = pos >= 0 && pos < max_positions;
  const float* c = cos + static_cast<int64_t>(rotate ? pos : 0) * half;
  const float* sn = sin + static_cast<int64_t>(rotate ? pos : 0) * half;
  float inv = 1.0f;
  if (norm) {
    float ss = 0.0f;
    for (int64_t i = lane; i < d; i += 32) {
      const float v = to_float(load_activation(src + i));
      ss += v * v;
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    inv = 1.0f / sqrtf(ss / static_cast<float>(d) + eps);
  }
  for (int64_t i = lane; i < half; i += 32) {
    float x1 = to_float(load_activation(src + i)), x2 = to_float(load_activation(src + i + half));
    if (norm) x1 = load_param(norm, norm_dtype, i) * (x1 * inv), x2 = load_param(norm, norm_dtype, i + half) * (x2 * inv);
    float o1 = x1, o2 = x2;
    if (rotate) o1 = x1 * c[i] - x2 * sn[i], o2 = x2 * c[i] + x1 * sn[i];
    store(i, o1, o2);
  }
}

}  // namespace ferrum::cuda
