#include "io/gguf_quant.h"

#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "core/gguf_k_scales.h"

namespace ferrum {
namespace {

float h2f(uint16_t h) { return f16_to_f32(h); }

void dequant_q4_0(const BlockQ4_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(b[i].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>((b[i].qs[j] & 0xF) - 8);
      y[j + 16] = d * static_cast<float>((b[i].qs[j] >> 4) - 8);
    }
  }
}

void dequant_q4_1(const BlockQ4_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(b[i].d), m = h2f(b[i].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(b[i].qs[j] & 0xF) + m;
      y[j + 16] = d * static_cast<float>(b[i].qs[j] >> 4) + m;
    }
  }
}

// The fifth bits of a Q5 block: bit j of qh for value j, bit j + 16 for value j + 16.
uint32_t high_bits(const uint8_t* qh) {
  uint32_t v;
  std::memcpy(&v, qh, 4);
  return v;
}

void dequant_q5_0(const BlockQ5_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(b[i].d);
    const uint32_t qh = high_bits(b[i].qh);
    for (int j = 0; j < 16; ++j) {
      const int lo = (b[i].qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1) << 4);
      const int hi = (b[i].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
      y[j] = d * static_cast<float>(lo - 16);
      y[j + 16] = d * static_cast<float>(hi - 16);
    }
  }
}

void dequant_q5_1(const BlockQ5_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(b[i].d), m = h2f(b[i].m);
    const uint32_t qh = high_bits(b[i].qh);
    for (int j = 0; j < 16; ++j) {
      const int lo = (b[i].qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1) << 4);
      const int hi = (b[i].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
      y[j] = d * static_cast<float>(lo) + m;
      y[j + 16] = d * static_cast<float>(hi) + m;
    }
  }
}

void dequant_q8_0(const BlockQ8_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(b[i].d);
    for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(b[i].qs[j]);
  }
}

// 8 sub-blocks of 32: value = d * scale_j * q - dmin * min_j, q the low nibbles of 32 bytes
// for sub-block 2k and their high nibbles for 2k + 1; Q5_K adds a fifth bit, bit s of qh[l]
// for value l of sub-block s (qh null for Q4_K).
void dequant_k4(uint16_t d16, uint16_t dmin16, const uint8_t* scales, const uint8_t* q, const uint8_t* qh,
                float* y) {
  const float d = h2f(d16), dmin = h2f(dmin16);
  for (int s = 0; s < 8; s += 2, q += 32) {
    uint8_t sc, m;
    ggml_scale_min_k4(s, scales, sc, m);
    const float d1 = d * sc, m1 = dmin * m;
    ggml_scale_min_k4(s + 1, scales, sc, m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) {
      const int hi = qh ? (qh[l] >> s & 1) << 4 : 0;
      *y++ = d1 * static_cast<float>((q[l] & 0xF) + hi) - m1;
    }
    for (int l = 0; l < 32; ++l) {
      const int hi = qh ? (qh[l] >> (s + 1) & 1) << 4 : 0;
      *y++ = d2 * static_cast<float>((q[l] >> 4) + hi) - m2;
    }
  }
}

// Two halves of 128: 4 bits from ql, 2 from qh, minus 32, times d and a signed 8-bit scale per
// 16 values.
void dequant_q6_k(const BlockQ6_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = h2f(b[i].d);
    const uint8_t* ql = b[i].ql;
    const uint8_t* qh = b[i].qh;
    const int8_t* sc = b[i].scales;
    for (int n = 0; n < 2; ++n, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
  }
}

}  // namespace

void ggml_scale_min_k4(int j, const uint8_t* q, uint8_t& d, uint8_t& m) {
  int scale, min;
  gguf_scale_min_k4(j, q, scale, min);
  d = static_cast<uint8_t>(scale);
  m = static_cast<uint8_t>(min);
}

std::optional<GgmlTypeInfo> ggml_type_info(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::F32: return GgmlTypeInfo{"F32", 1, 4, true};
    case GgmlType::F16: return GgmlTypeInfo{"F16", 1, 2, true};
    case GgmlType::BF16: return GgmlTypeInfo{"BF16", 1, 2, true};
    case GgmlType::Q4_0: return GgmlTypeInfo{"Q4_0", 32, 18, true};
    case GgmlType::Q4_1: return GgmlTypeInfo{"Q4_1", 32, 20, true};
    case GgmlType::Q5_0: return GgmlTypeInfo{"Q5_0", 32, 22, true};
    case GgmlType::Q5_1: return GgmlTypeInfo{"Q5_1", 32, 24, true};
    case GgmlType::Q8_0: return GgmlTypeInfo{"Q8_0", 32, 34, true};
    case GgmlType::Q8_1: return GgmlTypeInfo{"Q8_1", 32, 36, false};
    case GgmlType::Q2_K: return GgmlTypeInfo{"Q2_K", 256, 84, false};
    case GgmlType::Q3_K: return GgmlTypeInfo{"Q3_K", 256, 110, false};
    case GgmlType::Q4_K: return GgmlTypeInfo{"Q4_K", 256, 144, true};
    case GgmlType::Q5_K: return GgmlTypeInfo{"Q5_K", 256, 176, true};
    case GgmlType::Q6_K: return GgmlTypeInfo{"Q6_K", 256, 210, true};
    case GgmlType::Q8_K: return GgmlTypeInfo{"Q8_K", 256, 292, false};
    case GgmlType::IQ2_XXS: return GgmlTypeInfo{"IQ2_XXS", 256, 66, false};
    case GgmlType::IQ2_XS: return GgmlTypeInfo{"IQ2_XS", 256, 74, false};
    case GgmlType::IQ3_XXS: return GgmlTypeInfo{"IQ3_XXS", 256, 98, false};
    case GgmlType::IQ1_S: return GgmlTypeInfo{"IQ1_S", 256, 50, false};
    case GgmlType::IQ4_NL: return GgmlTypeInfo{"IQ4_NL", 32, 18, false};
    case GgmlType::IQ3_S: return GgmlTypeInfo{"IQ3_S", 256, 110, false};
    case GgmlType::IQ2_S: return GgmlTypeInfo{"IQ2_S", 256, 82, false};
    case GgmlType::IQ4_XS: return GgmlTypeInfo{"IQ4_XS", 256, 136, false};
    case GgmlType::I8: return GgmlTypeInfo{"I8", 1, 1, false};
    case GgmlType::I16: return GgmlTypeInfo{"I16", 1, 2, false};
    case GgmlType::I32: return GgmlTypeInfo{"I32", 1, 4, false};
    case GgmlType::I64: return GgmlTypeInfo{"I64", 1, 8, false};
    case GgmlType::F64: return GgmlTypeInfo{"F64", 1, 8, false};
    case GgmlType::IQ1_M: return GgmlTypeInfo{"IQ1_M", 256, 56, false};
    case GgmlType::TQ1_0: return GgmlTypeInfo{"TQ1_0", 256, 54, false};
    case GgmlType::TQ2_0: return GgmlTypeInfo{"TQ2_0", 256, 66, false};
    case GgmlType::MXFP4: return GgmlTypeInfo{"MXFP4", 32, 17, false};
  }
  return std::nullopt;
}

const char* ggml_type_name(GgmlType t) {
  const auto info = ggml_type_info(static_cast<uint32_t>(t));
  return info ? info->name : "unknown";
}

uint64_t ggml_row_bytes(GgmlType t, int64_t n) {
  const auto info = ggml_type_info(static_cast<uint32_t>(t));
  FERRUM_CHECK(info && n % info->block_elems == 0, "ggml_row_bytes: {} values of {}", n, ggml_type_name(t));
  return static_cast<uint64_t>(n / info->block_elems) * static_cast<uint64_t>(info->block_bytes);
}

void dequantize_row(GgmlType t, const void* src, float* y, int64_t n) {
  const auto info = ggml_type_info(static_cast<uint32_t>(t));
  if (!info || !info->dequantizable) fail("dequantizing {} values is not supported", ggml_type_name(t));
  FERRUM_CHECK(n % info->block_elems == 0, "dequantize_row: {} values are not whole {} blocks", n, info->name);
  const int64_t nb = n / info->block_elems;
  switch (t) {
    case GgmlType::F32: std::memcpy(y, src, static_cast<size_t>(n) * 4); return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) y[i] = h2f(static_cast<const uint16_t*>(src)[i]);
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
      return;
    case GgmlType::Q4_0: return dequant_q4_0(static_cast<const BlockQ4_0*>(src), y, nb);
    case GgmlType::Q4_1: return dequant_q4_1(static_cast<const BlockQ4_1*>(src), y, nb);
    case GgmlType::Q5_0: return dequant_q5_0(static_cast<const BlockQ5_0*>(src), y, nb);
    case GgmlType::Q5_1: return dequant_q5_1(static_cast<const BlockQ5_1*>(src), y, nb);
    case GgmlType::Q8_0: return dequant_q8_0(static_cast<const BlockQ8_0*>(src), y, nb);
    case GgmlType::Q4_K:
      for (const auto* b = static_cast<const BlockQ4_K*>(src); b != static_cast<const BlockQ4_K*>(src) + nb; ++b, y += kQKK)
        dequant_k4(b->d, b->dmin, b->scales, b->qs, nullptr, y);
      return;
    case GgmlType::Q5_K:
      for (const auto* b = static_cast<const BlockQ5_K*>(src); b != static_cast<const BlockQ5_K*>(src) + nb; ++b, y += kQKK)
        dequant_k4(b->d, b->dmin, b->scales, b->qs, b->qh, y);
      return;
    case GgmlType::Q6_K: return dequant_q6_k(static_cast<const BlockQ6_K*>(src), y, nb);
    default: break;
  }
  fail("dequantizing {} values is not supported", info->name);
}

}  // namespace ferrum
