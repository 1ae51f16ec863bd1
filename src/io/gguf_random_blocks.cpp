// Random but valid GGUF blocks, for benchmark files of a shape (`ferrum quantize --dummy
// --random-blocks`): quantizing gigabytes of random floats with the reference rounding takes
// minutes, while a block here costs a few PRNG draws. Codes are uniform; scales are drawn so
// that every value dequantizes within about +-0.1 (the float dummy weights are +-0.05) and
// varies from block to block, and every f16 scale is a normal number (never NaN, Inf or
// subnormal, which some kernels treat slowly or not at all).
#include <algorithm>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "io/gguf_quant.h"

namespace ferrum {
namespace {

// splitmix64: fast, and streams started from hashed seeds do not overlap in practice.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(mix(seed)) {}
  uint64_t next() { return mix(s_ += 0x9E3779B97F4A7C15ull); }
  float uniform(float lo, float hi) {  // [lo, hi)
    return lo + (hi - lo) * static_cast<float>(next() >> 40) * (1.0f / 16777216.0f);
  }
  int between(int lo, int hi) {  // [lo, hi]
    return lo + static_cast<int>((next() >> 32) % static_cast<uint64_t>(hi - lo + 1));
  }
  void fill(void* dst, size_t n) {
    auto* p = static_cast<uint8_t*>(dst);
    for (; n >= 8; n -= 8, p += 8) {
      const uint64_t v = next();
      std::memcpy(p, &v, 8);
    }
    if (n) {
      const uint64_t v = next();
      std::memcpy(p, &v, n);
    }
  }

 private:
  static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t s_;
};

// The largest |value| of a block, drawn per block so that blocks differ in range.
float amplitude(Rng& r) { return r.uniform(0.03f, 0.09f); }

// Q4_0 / Q5_0: value = d * (q - 2^(bits-1)); d puts the most negative level at -amplitude.
template <typename Block, int kBits>
void symmetric(Rng& r, Block* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    r.fill(&b[i], sizeof(Block));  // codes (and Q5_0's fifth bits)
    b[i].d = f32_to_f16(amplitude(r) / static_cast<float>(1 << (kBits - 1)));
  }
}

// Q4_1 / Q5_1: value = d * q + m; m near -d * top / 2 centers the codes on zero.
template <typename Block, int kBits>
void affine(Rng& r, Block* b, int64_t nb) {
  constexpr float kHalf = static_cast<float>((1 << kBits) - 1) / 2;
  for (int64_t i = 0; i < nb; ++i) {
    r.fill(&b[i], sizeof(Block));
    const float d = amplitude(r) / kHalf / 1.1f;
    b[i].d = f32_to_f16(d);
    b[i].m = f32_to_f16(-d * kHalf * r.uniform(0.9f, 1.1f));
  }
}

void q8_0(Rng& r, BlockQ8_0* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    r.fill(b[i].qs, 32);  // int8 codes, -128 included (the reference never writes it; any reader takes it)
    b[i].d = f32_to_f16(amplitude(r) / 128.0f);
  }
}

// Q4_K / Q5_K: value = d * sc_j * q - dmin * m_j over 8 sub-blocks. Scales sc_j in [8, 63]
// (so the packed top bits take every pattern), mins m_j = sc_j +- 4 and dmin ~ d * top / 2:
// each sub-block is roughly centered on zero. d keeps the largest value under about 0.1.
template <int kBits>
void k_scales(Rng& r, uint16_t& d16, uint16_t& dmin16, uint8_t* packed) {
  constexpr float kHalf = static_cast<float>((1 << kBits) - 1) / 2;
  const float d = kBits == 4 ? r.uniform(1.0e-4f, 1.9e-4f) : r.uniform(6.5e-5f, 9.5e-5f);
  d16 = f32_to_f16(d);
  dmin16 = f32_to_f16(d * kHalf * r.uniform(0.95f, 1.05f));
  std::memset(packed, 0, 12);
  for (int j = 0; j < 8; ++j) {  // the layout quantize_row writes (ggml_scale_min_k4 reads)
    const int ls = r.between(8, 63), lm = std::clamp(ls + r.between(-4, 4), 0, 63);
    if (j < 4) {
      packed[j] = static_cast<uint8_t>(ls);
      packed[j + 4] = static_cast<uint8_t>(lm);
    } else {
      packed[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      packed[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      packed[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
}

void q4_k(Rng& r, BlockQ4_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    r.fill(b[i].qs, sizeof(b[i].qs));
    k_scales<4>(r, b[i].d, b[i].dmin, b[i].scales);
  }
}

void q5_k(Rng& r, BlockQ5_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    r.fill(b[i].qh, sizeof(b[i].qh));
    r.fill(b[i].qs, sizeof(b[i].qs));
    k_scales<5>(r, b[i].d, b[i].dmin, b[i].scales);
  }
}

// Q6_K: value = d * sc * (q - 32), sc a signed 8-bit scale per 16 values, |sc| in [8, 31]
// (larger scales would need a subnormal d for values this small).
void q6_k(Rng& r, BlockQ6_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    r.fill(b[i].ql, sizeof(b[i].ql));
    r.fill(b[i].qh, sizeof(b[i].qh));
    for (int8_t& s : b[i].scales) s = static_cast<int8_t>(r.between(8, 31) * (r.next() >> 63 ? -1 : 1));
    b[i].d = f32_to_f16(r.uniform(6.5e-5f, 9.5e-5f));
  }
}

}  // namespace

bool can_random_blocks(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q8_0:
    case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
      return true;
    default: return false;
  }
}

void random_blocks(GgmlType t, uint64_t seed, void* dst, int64_t n) {
  if (!can_random_blocks(t)) fail("random blocks of type {} are not implemented", ggml_type_name(t));
  const auto info = ggml_type_info(static_cast<uint32_t>(t));
  FERRUM_CHECK(n % info->block_elems == 0, "random_blocks: {} values are not whole {} blocks", n, info->name);
  const int64_t nb = n / info->block_elems;
  Rng r(seed);
  switch (t) {
    case GgmlType::Q4_0: return symmetric<BlockQ4_0, 4>(r, static_cast<BlockQ4_0*>(dst), nb);
    case GgmlType::Q5_0: return symmetric<BlockQ5_0, 5>(r, static_cast<BlockQ5_0*>(dst), nb);
    case GgmlType::Q4_1: return affine<BlockQ4_1, 4>(r, static_cast<BlockQ4_1*>(dst), nb);
    case GgmlType::Q5_1: return affine<BlockQ5_1, 5>(r, static_cast<BlockQ5_1*>(dst), nb);
    case GgmlType::Q8_0: return q8_0(r, static_cast<BlockQ8_0*>(dst), nb);
    case GgmlType::Q4_K: return q4_k(r, static_cast<BlockQ4_K*>(dst), nb);
    case GgmlType::Q5_K: return q5_k(r, static_cast<BlockQ5_K*>(dst), nb);
    case GgmlType::Q6_K: return q6_k(r, static_cast<BlockQ6_K*>(dst), nb);
    default: break;
  }
}

}  // namespace ferrum
