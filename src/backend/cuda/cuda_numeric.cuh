// Element conversions shared by the kernels: F32 / F16 / BF16 (and E4M3, the FP8 KV cache's
// elements) to and from float, in one place.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>
#include <type_traits>

#include "core/dtype.h"

namespace ferrum::cuda {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_fp8_e4m3 v) { return static_cast<float>(v); }  // exact

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
// Round to nearest even, saturating at +-448 as the host's f32_to_fp8_e4m3 (NaN stays NaN):
// an outlier in the KV cache is clipped rather than becoming NaN.
template <>
__device__ __forceinline__ __nv_fp8_e4m3 from_float<__nv_fp8_e4m3>(float v) {
  __nv_fp8_e4m3 r;
  r.__x = __nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3);
  return r;
}

template <typename C>
constexpr bool is_fp8_v = std::is_same_v<C, __nv_fp8_e4m3>;

// A KV cache element of type C from float and back: an E4M3 cache stores x / scale and reads
// stored * scale (per-tensor scales, Backend's KvScales); other caches ignore the scale.
template <typename C>
__device__ __forceinline__ C to_cache(float x, float scale) {
  if constexpr (is_fp8_v<C>) return from_float<C>(x / scale);
  else return from_float<C>(x);
}
template <typename C>
__device__ __forceinline__ float from_cache(C v, float scale) {
  if constexpr (is_fp8_v<C>) return to_float(v) * scale;
  else return to_float(v);
}

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

// The same for a KV cache's dtype, which may also be F8E4M3 (kept apart from with_type so that
// only the cache kernels are instantiated for E4M3).
template <typename F>
void with_cache_type(DType dtype, F&& f) {
  if (dtype == DType::F8E4M3) f(static_cast<__nv_fp8_e4m3*>(nullptr));
  else with_type(dtype, f);
}

}  // namespace ferrum::cuda
