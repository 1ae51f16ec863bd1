// Element types of tensors, and scalar conversions between the 16-bit floats and float32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace ferrum {

// F8E4M3: FP8 weights (OCP E4M3: 4 exponent bits, bias 7, no infinities, max 448).
enum class DType : uint8_t { F32, F16, BF16, I32, I64, U8, F8E4M3 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
// Parses safetensors dtype names ("F32", "BF16", ...); throws ferrum::Error on others.
DType dtype_from_safetensors(const std::string& name);

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, as torch does; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
// E4M3 to float (exact) and back (round to nearest even, saturating at +-448; NaN stays NaN).
float fp8_e4m3_to_f32(uint8_t v);
uint8_t f32_to_fp8_e4m3(float f);

// Element i of a host array of F32, BF16 or F16 values, as float (0 for other dtypes).
inline float to_f32(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    default: return 0.0f;
  }
}

}  // namespace ferrum
