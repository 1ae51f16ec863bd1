#include "op_harness_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "core/dtype.h"
#include "core/error.h"

namespace ferrum::op_harness {
namespace {

double half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return static_cast<double>(f16_to_f32(h));
}

// Q8_0: an f16 scale d = max|x| / 127 and 32 int8 values round(x / d).
void quantize_q8_0(const float* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32, out += 34) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const uint16_t h = f32_to_f16(d);
    std::memcpy(out, &h, 2);
    for (int j = 0; j < 32; ++j)
      out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(d == 0.0f ? 0.0f : std::round(x[j] / d)));
  }
}

// Q4_0: the value of largest magnitude maps to -8, d = max / -8, q = min(15, (int)(x / d +
// 8.5)); value j in the low nibble of byte j, j + 16 in its high one.
void quantize_q4_0(const float* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32, out += 18) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; ++j)
      if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), max = x[j];
    const float d = max / -8.0f;
    const uint16_t h = f32_to_f16(d);
    std::memcpy(out, &h, 2);
    auto q = [&](float v) { return d == 0.0f ? 8 : std::min(15, static_cast<int>(v / d + 8.5f)); };
    for (int j = 0; j < 16; ++j) out[2 + j] = static_cast<uint8_t>(q(x[j]) | (q(x[j + 16]) << 4));
  }
}

// Q4_K / Q5_K: f16 d, dmin, eight 6-bit (scale, min) pairs in 12 bytes (pair j < 4: low 6 bits
// of bytes j and j + 4; j >= 4: nibbles of byte j + 4 with the top 2 bits of bytes j - 4 and
// j), [Q5_K: 32 bytes of fifth bits, bit s of byte l for value 32 s + l], 128 bytes of nibbles
// (byte 32 c + l: value 64 c + l low, 64 c + 32 + l high); value = d sc q - dmin m.
void k4_values(const uint8_t* p, bool five, Values& v) {
  const double d = half_at(p), dmin = half_at(p + 2);
  const uint8_t* sc = p + 4;
  const uint8_t* qs = p + (five ? 48 : 16);
  for (int j = 0; j < 256; ++j) {
    const int s = j / 32, c = j / 64, l = j % 32;
    const int scale = s < 4 ? sc[s] & 63 : (sc[s + 4] & 15) | ((sc[s - 4] >> 6) << 4);
    const int min = s < 4 ? sc[s + 4] & 63 : (sc[s + 4] >> 4) | ((sc[s] >> 6) << 4);
    int q = (qs[32 * c + l] >> (s % 2 ? 4 : 0)) & 0xF;
    if (five) q |= ((p[16 + l] >> s) & 1) << 4;
    v.push_back(d * scale * q - dmin * min);
  }
}

// Q6_K: ql[128], qh[64], int8 scales[16], f16 d; value i: half h, quarter k, lane l:
// ql[64 h + 32 (k % 2) + l] nibble k / 2, qh[32 h + l] bits 2k..2k+1; value = d scale[i / 16]
// (q - 32).
void q6_k_values(const uint8_t* p, Values& v) {
  const double d = half_at(p + 208);
  for (int j = 0; j < 256; ++j) {
    const int h = j / 128, k = j % 128 / 32, l = j % 32;
    const int lo = (p[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0xF, hi = (p[128 + 32 * h + l] >> (2 * k)) & 3;
    v.push_back(d * static_cast<int8_t>(p[192 + j / 16]) * ((lo | (hi << 4)) - 32));
  }
}

}  // namespace

Tensor make_block_weights(Backend& host, WeightFormat f, int64_t rows, int64_t K, float w_scale, uint64_t seed) {
  const int64_t values = gguf_block_values(f), bytes = gguf_block_bytes(f);
  FERRUM_CHECK(values && K % values == 0, "make_block_weights: {} rows of {}", weight_format_name(f), K);
  Tensor w = host.alloc({rows, K / values * bytes}, DType::U8);
  auto* p = w.ptr<uint8_t>();
  if (values == 256) {  // random bytes, then d (and dmin) such that values stay near +-w_scale
    std::mt19937_64 rng(seed);
    for (int64_t i = 0; i < w.numel(); ++i) p[i] = static_cast<uint8_t>(rng());
    const bool q6 = f == WeightFormat::GgufQ6K;
    const uint16_t d = f32_to_f16(q6 ? w_scale / 4096.0f : w_scale / 945.0f), dmin = f32_to_f16(w_scale / 126.0f);
    for (int64_t b = 0; b < w.numel() / bytes; ++b, p += bytes) {
      std::memcpy(p + (q6 ? 208 : 0), &d, 2);
      if (!q6) std::memcpy(p + 2, &dmin, 2);
    }
    return w;
  }
  const Tensor x = host.random_tensor({rows, K}, DType::F32, seed, 0.0f, w_scale);  // quantized as llama.cpp does
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* dst = p + r * w.dim(1);
    if (f == WeightFormat::GgufQ8_0) quantize_q8_0(x.ptr<float>() + r * K, K, dst);
    else quantize_q4_0(x.ptr<float>() + r * K, K, dst);
  }
  return w;
}

Values block_values(WeightFormat f, const Tensor& blocks) {
  Values v;
  const int64_t bytes = gguf_block_bytes(f);
  const auto* p = static_cast<const uint8_t*>(blocks.data);
  for (int64_t i = 0; i < blocks.numel() / bytes; ++i, p += bytes) {
    switch (f) {
      case WeightFormat::GgufQ8_0:
        for (int j = 0; j < 32; ++j) v.push_back(half_at(p) * static_cast<int8_t>(p[2 + j]));
        break;
      case WeightFormat::GgufQ4_0:
        for (int j = 0; j < 32; ++j) v.push_back(half_at(p) * (((p[2 + j % 16] >> (j < 16 ? 0 : 4)) & 0xF) - 8));
        break;
      case WeightFormat::GgufQ4K: k4_values(p, false, v); break;
      case WeightFormat::GgufQ5K: k4_values(p, true, v); break;
      case WeightFormat::GgufQ6K: q6_k_values(p, v); break;
      default: fail("block_values: {} is not a block format", weight_format_name(f));
    }
  }
  return v;
}

}  // namespace ferrum::op_harness
