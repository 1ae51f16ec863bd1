// Decoding the tiles of cuda_packed_layout.h into m16n8k16 A fragments in registers, shared by
// the tensor-core kernels over them (cuda_packed_matmul.cu, cuda_packed_rows.cu).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>
#include <type_traits>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_packed_stream.cuh"

namespace ferrum::cuda {

template <typename A>
using Pair = std::conditional_t<std::is_same_v<A, __half>, __half2, __nv_bfloat162>;

template <typename A>
__device__ __forceinline__ Pair<A> as_pair(uint32_t v) {
  return *reinterpret_cast<Pair<A>*>(&v);
}
template <typename A>
__device__ __forceinline__ uint32_t as_bits(Pair<A> v) {
  return *reinterpret_cast<uint32_t*>(&v);
}
template <typename A>
__device__ __forceinline__ Pair<A> splat(uint32_t half) {  // the low 16 bits in both halves
  return as_pair<A>((half & 0xffffu) * 0x10001u);
}

// Two 8-bit codes (bytes 2q, 2q + 1 of w) as exact integers u - z (Zero) or u (Affine) in A.
template <PackedMode kMode, typename A>
__device__ __forceinline__ Pair<A> int8_pair(uint32_t w, int q, uint32_t zero_f16) {
  const __half2 v = as_pair<__half>(__byte_perm(w, 0x64646464u, q ? 0x4342 : 0x4140));  // 1024 + u, exact
  const __half2 u = __hsub2(v, kMode == PackedMode::Int8Zero ? as_pair<__half>(zero_f16 * 0x10001u)
                                                             : as_pair<__half>(0x64006400u));
  if constexpr (std::is_same_v<A, __half>) return u;
  else return __float22bfloat162_rn(__half22float2(u));  // |u| <= 255: exact in BF16
}

// The four A registers of one k16 step from the tile's words (w0, and w1 for 8-bit codes).
// p_lo / p_hi: the group parameters of rows g and g + 8 (scale low, zero or offset high).
template <PackedMode kMode, typename A>
__device__ __forceinline__ void decode_step(uint32_t w0, uint32_t w1, uint32_t p_lo, uint32_t p_hi, uint32_t* a) {
  if constexpr (four_bit(kMode)) {
    constexpr uint32_t kMagic = std::is_same_v<A, __half> ? 0x64006400u : 0x43004300u;  // 1024 / 128 in both halves
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const uint32_t prm = q % 2 ? p_hi : p_lo;
      const Pair<A> v = as_pair<A>(((w0 >> (4 * q)) & 0x000F000Fu) | kMagic);
      if constexpr (kMode == PackedMode::Int4Zero)  // (magic + u) - (magic + z), exact; one rounding
        a[q] = as_bits<A>(__hmul2(__hsub2(v, splat<A>(prm >> 16)), splat<A>(prm)));
      else  // u * scale + offset, fused
        a[q] = as_bits<A>(__hfma2(__hsub2(v, as_pair<A>(kMagic)), splat<A>(prm), splat<A>(prm >> 16)));
    }
  } else {
    const uint32_t words[2] = {w0, w1};
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int q = 0; q < 2; ++q) {  // bytes 2q, 2q + 1 of the word: rows g (q = 0), g + 8 (q = 1)
        const uint32_t prm = q ? p_hi : p_lo;
        Pair<A> r;
        if constexpr (kMode == PackedMode::Fp8) {
          Pair<A> v;
          if constexpr (std::is_same_v<A, __half>) {
            v = __half2(__nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(words[h] >> (16 * q)), __NV_E4M3));
          } else {  // E4M3's sign, exponent and mantissa moved into BF16's places (the scale has 2^120)
            const uint32_t p = __byte_perm(words[h], 0, q ? 0x3424 : 0x1404);
            v = as_pair<A>((p & 0x80008000u) | ((p & 0x7f007f00u) >> 4));
          }
          r = __hmul2(v, splat<A>(prm));
        } else if constexpr (kMode == PackedMode::Int8Zero) {
          r = __hmul2(int8_pair<kMode, A>(words[h], q, prm >> 16), splat<A>(prm));
        } else {
          r = __hfma2(int8_pair<kMode, A>(words[h], q, 0), splat<A>(prm), splat<A>(prm >> 16));
        }
        a[2 * h + q] = as_bits<A>(r);
      }
  }
}

// Calls f with the weight's mode as a compile-time constant.
template <typename F>
void with_packed_mode(PackedMode m, F&& f) {
  switch (m) {
    case PackedMode::Int4Zero: return f(std::integral_constant<PackedMode, PackedMode::Int4Zero>{});
    case PackedMode::Int4Affine: return f(std::integral_constant<PackedMode, PackedMode::Int4Affine>{});
    case PackedMode::Int8Zero: return f(std::integral_constant<PackedMode, PackedMode::Int8Zero>{});
    case PackedMode::Int8Affine: return f(std::integral_constant<PackedMode, PackedMode::Int8Affine>{});
    case PackedMode::Fp8: return f(std::integral_constant<PackedMode, PackedMode::Fp8>{});
  }
}

}  // namespace ferrum::cuda
