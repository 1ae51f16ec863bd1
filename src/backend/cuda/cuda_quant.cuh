// Decoding of GGUF blocks on the GPU, 64 values (a "unit": two runs of 32) at a time, from
// the blocks as stored (ggml-common.h's layouts). The CPU reference is src/io/gguf_quant.cpp
// (and the op harness's own block decoder); the op harness compares them.
#pragma once
#include <cuda_fp16.h>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_numeric.cuh"
#include "core/gguf_k_scales.h"

namespace ferrum::cuda {

__device__ __forceinline__ float half_at(const uint8_t* p) {  // an f16 at a 2-byte-aligned address
  return __half2float(__ushort_as_half(*reinterpret_cast<const unsigned short*>(p)));
}

// The k offsets of unit u's two runs of 32 values. Q6_K pairs the runs that share their bytes
// (values l and l + 64 of a half super-block); every other format decodes 64 in a row.
template <QuantKind F>
__device__ __forceinline__ void unit_runs(int64_t u, int64_t& k0, int64_t& k1) {
  if constexpr (F == QuantKind::Q6K) {
    const int64_t r = u % 4;
    k0 = u / 4 * 256 + r / 2 * 128 + r % 2 * 32;
    k1 = k0 + 64;
  } else {
    k0 = u * 64;
    k1 = k0 + 32;
  }
}

// Two bytes at a 2-byte-aligned address.
__device__ __forceinline__ uint32_t bytes2(const uint8_t* p) { return *reinterpret_cast<const unsigned short*>(p); }

// v[0, 32) = w[n][k0, k0 + 32), v[32, 64) = w[n][k1, k1 + 32) for unit u (unit_runs).
template <QuantKind F, typename A>
__device__ __forceinline__ void dequant_unit(const QuantWeight& w, int64_t n, int64_t u, float* v) {
  const uint8_t* row = w.data + n * w.row_bytes;
  if constexpr (F == QuantKind::Dense) {  // 64 values of A: eight 16-byte loads
    const uint4* p = reinterpret_cast<const uint4*>(row) + u * 8;
#pragma unroll
    for (int i = 0; i < 8; ++i) unpack8<A>(__ldg(p + i), v + 8 * i);
  } else if constexpr (F == QuantKind::Q8_0) {  // two blocks: f16 d, 32 int8
#pragma unroll
    for (int b = 0; b < 2; ++b) {
      const uint8_t* blk = row + (2 * u + b) * 34;
      const float d = half_at(blk);
#pragma unroll
      for (int i = 0; i < 32; i += 2) {
        const uint32_t pair = bytes2(blk + 2 + i);
        v[32 * b + i] = d * static_cast<int8_t>(pair & 0xff);
        v[32 * b + i + 1] = d * static_cast<int8_t>(pair >> 8);
      }
    }
  } else if constexpr (F == QuantKind::Q4_0) {  // two blocks: f16 d, 16 bytes (value i low, i + 16 high)
#pragma unroll
    for (int b = 0; b < 2; ++b) {
      const uint8_t* blk = row + (2 * u + b) * 18;
      const float d = half_at(blk);
#pragma unroll
      for (int i = 0; i < 16; i += 2) {
        const uint32_t pair = bytes2(blk + 2 + i);
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const uint32_t q = (pair >> (8 * j)) & 0xff;
          v[32 * b + i + j] = d * (static_cast<int>(q & 15) - 8);
          v[32 * b + i + j + 16] = d * (static_cast<int>(q >> 4) - 8);
        }
      }
    }
  } else if constexpr (F == QuantKind::Q4K || F == QuantKind::Q5K) {
    // Sub-blocks 2p and 2p + 1 of a super-block share 32 bytes of quants (low, high nibbles).
    constexpr int kBytes = F == QuantKind::Q4K ? 144 : 176, kQs = F == QuantKind::Q4K ? 16 : 48;
    const uint8_t* blk = row + u / 4 * kBytes;
    const int p = static_cast<int>(u % 4);
    const float d = half_at(blk), dmin = half_at(blk + 2);
    int sc0, m0, sc1, m1;
    gguf_scale_min_k4(2 * p, blk + 4, sc0, m0);
    gguf_scale_min_k4(2 * p + 1, blk + 4, sc1, m1);
    const float d0 = d * sc0, o0 = dmin * m0, d1 = d * sc1, o1 = dmin * m1;
    uint4 q[2], h[2];
    q[0] = __ldg(reinterpret_cast<const uint4*>(blk + kQs + 32 * p));
    q[1] = __ldg(reinterpret_cast<const uint4*>(blk + kQs + 32 * p + 16));
    if constexpr (F == QuantKind::Q5K) {
      h[0] = __ldg(reinterpret_cast<const uint4*>(blk + 16));
      h[1] = __ldg(reinterpret_cast<const uint4*>(blk + 32));
    }
    const uint8_t* qb = reinterpret_cast<const uint8_t*>(q);
    const uint8_t* hb = reinterpret_cast<const uint8_t*>(h);
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      int lo = qb[l] & 15, hi = qb[l] >> 4;
      if constexpr (F == QuantKind::Q5K) {
        lo += ((hb[l] >> (2 * p)) & 1) << 4;
        hi += ((hb[l] >> (2 * p + 1)) & 1) << 4;
      }
      v[l] = d0 * lo - o0;
      v[32 + l] = d1 * hi - o1;
    }
  } else if constexpr (F == QuantKind::Q6K) {
    // ql[128], qh[64], int8 scales[16], f16 d; half h of the super-block, pair p: values
    // 32p + l (low nibbles, qh bits 2p) and 32p + 64 + l (high nibbles, qh bits 2p + 4).
    const uint8_t* blk = row + u / 4 * 210;
    const int r = static_cast<int>(u % 4), h = r / 2, p = r % 2;
    const uint8_t* ql = blk + 64 * h + 32 * p;
    const uint8_t* qh = blk + 128 + 32 * h;
    const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192) + 8 * h + 2 * p;
    const float d = half_at(blk + 208);
    const float s_lo[2] = {d * sc[0], d * sc[1]}, s_hi[2] = {d * sc[4], d * sc[5]};
#pragma unroll
    for (int l = 0; l < 32; l += 2) {
      const uint32_t b2 = bytes2(ql + l), h2 = bytes2(qh + l);
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const uint32_t b = (b2 >> (8 * j)) & 0xff, hb = (h2 >> (8 * j)) & 0xff;
        const int lo = static_cast<int>((b & 15) | (((hb >> (2 * p)) & 3) << 4)) - 32;
        const int hi = static_cast<int>((b >> 4) | (((hb >> (2 * p + 4)) & 3) << 4)) - 32;
        v[l + j] = s_lo[(l + j) / 16] * lo;
        v[32 + l + j] = s_hi[(l + j) / 16] * hi;
      }
    }
  }
}

}  // namespace ferrum::cuda
