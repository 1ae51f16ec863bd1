// Element conversions shared by the kernels: F32 / F16 / BF16 to and from float, in one place.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "core/dtype.h"

namespace ferrum::cuda {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }

// v rounded to T's precision (round to nearest even), back as float.
template <typename T>
__device__ __forceinline__ float round_to(float v) { return to_float(from_float<T>(v)); }

__device__ __forceinline__ float2 to_float2(__nv_bfloat162 v) { return __bfloat1622float2(v); }
__device__ __forceinline__ float2 to_float2(__half2 v) { return __half22float2(v); }

// The 8 16-bit values of a 16-byte load, as floats (converted in pairs).
template <typename T>
__device__ __forceinline__ void unpack8(const uint4& u, float* f) {
  static_assert(std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>);
  using T2 = std::conditional_t<std::is_same_v<T, __half>, __half2, __nv_bfloat162>;
  const T2* p = reinterpret_cast<const T2*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 v = to_float2(p[i]);
    f[2 * i] = v.x, f[2 * i + 1] = v.y;
  }
}

// Calls f with a null pointer of the element type of dtype (F32, BF16 or F16): the kernels'
// dispatch from a run-time dtype to a template.
template <typename F>
void with_type(DType dtype, F&& f) {
  if (dtype == DType::BF16) f(static_cast<__nv_bfloat16*>(nullptr));
  else if (dtype == DType::F16) f(static_cast<__half*>(nullptr));
  else f(static_cast<float*>(nullptr));
}

}  // namespace ferrum::cuda
