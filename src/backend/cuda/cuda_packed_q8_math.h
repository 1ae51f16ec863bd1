// The arithmetic of the int8-x decode (cuda_packed_q8.cu), as host + device functions: the
// kernels run them on the GPU, and tests/backend/cuda_packed_layout_test.cpp runs the same
// functions on the host over tiles built by cuda_packed_layout.cpp, against the dequantized
// weight, so that CI checks the layout reasoning below without a GPU.
//
// Per lane and tile (cuda_packed_layout.h): rows g and g + 8, columns [16t, 16t + 16) of the
// tile, one group. Step j's four columns 16t + 4j + {0..3} come as
// - 4-bit: word j; its low nibbles (& 0x0F0F0F0F) are row g's codes of columns {0, 2, 1, 3},
//   its high nibbles row g + 8's: so x's bytes are stored in that order (`swap`);
// - 8-bit: words 2j, 2j + 1; a byte permute gives each row's four codes in column order.
// With x = sx * q (q int8, |q| <= 127) and w = s * (u - z) (zero modes) or s * u + o (affine
// modes), the lane's sum over its 16 columns is s * sx * (sum u q - z sum q) or
// sx * (s * sum u q + o sum q): sum q of each 16 columns is kept beside sx.
#pragma once
#include <cmath>
#include <cstdint>

#include "backend/cuda/cuda_kernels.h"
#include "backend/splitmix.h"  // FERRUM_HOST_DEVICE
#include "core/dtype.h"

#ifdef __CUDACC__
#include <cuda_fp16.h>
#endif

namespace ferrum::cuda::q8 {

constexpr int kChunk = 16;  // columns of x per int8 scale: one lane's columns of a tile

FERRUM_HOST_DEVICE constexpr bool nibbles(PackedMode m) { return m == PackedMode::Int4Zero || m == PackedMode::Int4Affine; }
FERRUM_HOST_DEVICE constexpr bool zero_mode(PackedMode m) { return m == PackedMode::Int4Zero || m == PackedMode::Int8Zero; }

FERRUM_HOST_DEVICE inline uint32_t byte_perm(uint32_t a, uint32_t b, uint32_t selector) {
#ifdef __CUDA_ARCH__
  return __byte_perm(a, b, selector);
#else
  const uint64_t bytes = static_cast<uint64_t>(b) << 32 | a;
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r |= static_cast<uint32_t>((bytes >> (8 * ((selector >> (4 * i)) & 7))) & 0xff) << (8 * i);
  return r;
#endif
}

// c + the dot product of four codes (a, unsigned bytes) and four int8 values of x (b).
FERRUM_HOST_DEVICE inline int dot4(uint32_t a, uint32_t b, int c) {
#ifdef __CUDA_ARCH__
  int d;
  asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
#else
  for (int i = 0; i < 4; ++i) c += static_cast<int>((a >> (8 * i)) & 0xff) * static_cast<int8_t>(b >> (8 * i));
  return c;
#endif
}

// The 16-bit value in the low half of `bits` (a group parameter) as F32: F16 or BF16.
FERRUM_HOST_DEVICE inline float param_float(uint32_t bits, bool bf16) {
  const auto h = static_cast<uint16_t>(bits & 0xffffu);
#ifdef __CUDA_ARCH__
  return bf16 ? __uint_as_float(static_cast<uint32_t>(h) << 16) : __half2float(__ushort_as_half(h));
#else
  return bf16 ? bf16_to_f32(h) : f16_to_f32(h);
#endif
}

// The integer zero point z in a zero-mode parameter's high half, stored as magic + z (exact):
// 4-bit codes in the activations' type (magic 1024 in F16, 128 in BF16), 8-bit codes in F16.
FERRUM_HOST_DEVICE inline int zero_point(PackedMode m, uint32_t p, bool bf16) {
  const int magic = m == PackedMode::Int8Zero || !bf16 ? 0x6400 : 0x4300;
  return static_cast<int>(p >> 16) - magic;
}

// One chunk of 16 values of x as int8 words (round to nearest, scale amax / 127), their scale
// and their sum. swap: columns {0, 2, 1, 3} in each word, the order of a 4-bit word's nibbles.
FERRUM_HOST_DEVICE inline void quantize_chunk(const float* f, bool swap, uint32_t* words, float& scale, int& sum) {
  float amax = 0.0f;
  for (int c = 0; c < kChunk; ++c) amax = fmaxf(amax, fabsf(f[c]));
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  sum = 0;
  for (int j = 0; j < 4; ++j) {
    int b[4];
    for (int c = 0; c < 4; ++c) {
      b[c] = static_cast<int>(rintf(f[4 * j + c] * inv));
      sum += b[c];
    }
    if (swap) {
      const int m = b[1];
      b[1] = b[2], b[2] = m;
    }
    words[j] = static_cast<uint32_t>(b[0] & 0xff) | static_cast<uint32_t>(b[1] & 0xff) << 8 |
               static_cast<uint32_t>(b[2] & 0xff) << 16 | static_cast<uint32_t>(b[3] & 0xff) << 24;
  }
  scale = amax / 127.0f;
}

// A lane's codes of one tile: codes[0][j] row g's four of step j, codes[1][j] row g + 8's, in
// the order of x's words.
template <PackedMode kMode>
FERRUM_HOST_DEVICE inline void tile_codes(const uint32_t* words, uint32_t (*codes)[4]) {
  for (int j = 0; j < 4; ++j) {
    if constexpr (nibbles(kMode)) {
      codes[0][j] = words[j] & 0x0F0F0F0Fu;
      codes[1][j] = (words[j] >> 4) & 0x0F0F0F0Fu;
    } else {
      codes[0][j] = byte_perm(words[2 * j], words[2 * j + 1], 0x5410);
      codes[1][j] = byte_perm(words[2 * j], words[2 * j + 1], 0x7632);
    }
  }
}

// One weight row's sum over the lane's 16 columns, times x's: prm is the row's group
// parameter, xw x's four int8 words of these columns, sx their scale and qsum their sum.
template <PackedMode kMode>
FERRUM_HOST_DEVICE inline float tile_row_sum(const uint32_t* codes, uint32_t prm, const uint32_t* xw, float sx, int qsum,
                                             bool bf16) {
  int d = 0;
  for (int j = 0; j < 4; ++j) d = dot4(codes[j], xw[j], d);
  const float scale = param_float(prm, bf16);
  if constexpr (zero_mode(kMode)) return scale * sx * static_cast<float>(d - zero_point(kMode, prm, bf16) * qsum);
  return sx * fmaf(scale, static_cast<float>(d), param_float(prm >> 16, bf16) * static_cast<float>(qsum));
}

}  // namespace ferrum::cuda::q8
