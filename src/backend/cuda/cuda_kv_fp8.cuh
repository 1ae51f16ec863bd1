// How the tensor-core attention kernels read an E4M3 (FP8) KV cache: mma.sync has no E4M3 x
// 16-bit form, so each K/V tile is copied into shared memory as raw bytes with cp.async (the
// next tile in flight, as for 16-bit caches), then converted once, times the per-tensor
// scale, into a 16-bit tile of the activations' type, which the ldmatrix/mma code reads as it
// reads a 16-bit cache's. The raw tiles are half the size of 16-bit ones, so double-buffering
// them and keeping one 16-bit tile takes about the shared memory of two 16-bit tiles.
#pragma once
#include <cuda_fp8.h>

#include <cstdint>

#include "backend/cuda/cuda_mma.cuh"
#include "backend/cuda/cuda_numeric.cuh"

namespace ferrum::cuda {

// 8 E4M3 values (a uint2) times scale, as 8 values of the 16-bit type A (a uint4). The decode
// to half is exact (every E4M3 value is an f16 value); the product is rounded once, to A.
template <typename A>
__device__ __forceinline__ uint4 fp8x8_to(uint2 raw, float scale) {
  const uint32_t words[2] = {raw.x, raw.y};
  uint32_t out[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const __half2_raw h =
        __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(words[i / 2] >> (16 * (i % 2))), __NV_E4M3);
    const float2 f = __half22float2(__half2(h));
    out[i] = pack2<A>(f.x * scale, f.y * scale);
  }
  return make_uint4(out[0], out[1], out[2], out[3]);
}

// Starts the copy (cp.async, 16 bytes a thread at a time) of keys [base, base + keys) of KV
// head kh from the paged E4M3 caches into raw tiles dk, dv [keys][D]; keys at or past `end`
// are zero-filled (their P is 0, and 0 * a stale NaN byte would still be NaN). Key `skip`'s
// rows are left alone (the caller writes them).
template <int D, int kThreads>
__device__ __forceinline__ void copy_fp8_tile(uint8_t* dk, uint8_t* dv, const uint8_t* k_cache,
                                              const uint8_t* v_cache, const int32_t* table, int32_t block_size,
                                              int64_t hk, int64_t kh, int64_t base, int keys, int64_t end,
                                              int64_t skip = -1) {
  constexpr int kChunks = D / 16;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  for (int i = threadIdx.x; i < keys * kChunks; i += kThreads) {
    const int j = i / kChunks, c = i % kChunks;
    const int64_t key = base + j;
    uint8_t* k = dk + j * D + c * 16;
    uint8_t* v = dv + j * D + c * 16;
    if (key == skip) continue;
    if (key < end) {
      const int64_t slot = static_cast<int64_t>(table[key / block_size]) * block_size + key % block_size;
      const int64_t off = (slot * hk + kh) * D + c * 16;
      cp_async16(k, k_cache + off);
      cp_async16(v, v_cache + off);
    } else {
      *reinterpret_cast<uint4*>(k) = zero;
      *reinterpret_cast<uint4*>(v) = zero;
    }
  }
}

// Converts a raw tile [keys][D] (shared, landed) into dst [keys][stride] of type A (shared),
// times scale. The caller syncs the block before (the copies landed) and after (dst is read).
template <typename A, int D, int kThreads>
__device__ __forceinline__ void convert_fp8_tile(const uint8_t* raw, A* dst, int keys, int stride, float scale) {
  constexpr int kChunks = D / 8;
  for (int i = threadIdx.x; i < keys * kChunks; i += kThreads) {
    const int j = i / kChunks, c = i % kChunks;
    const uint2 r = *reinterpret_cast<const uint2*>(raw + j * D + c * 8);
    *reinterpret_cast<uint4*>(dst + j * stride + c * 8) = fp8x8_to<A>(r, scale);
  }
}

}  // namespace ferrum::cuda
