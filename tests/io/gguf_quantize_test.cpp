// ferrum's GGUF quantizers against a second implementation of llama.cpp's reference rounding
// (ggml-quants.c, the scalar "_ref" functions) written here from the published algorithm, not
// from ferrum's code: every block must come out byte for byte the same, over random rows,
// rows with zero blocks, constant blocks and outliers. Also: each type's round-trip error, and
// the per-tensor types of the Q4_K_M / Q5_K_M / Q6_K mixes. Compiled with -ffp-contract=off,
// as the quantizers are: the references compare float expressions evaluated in one order.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "io/gguf_mix.h"
#include "io/gguf_quant.h"

namespace ferrum {
namespace {

// --- an independent reference --------------------------------------------------------------

int round_even(float v) { return static_cast<int>(std::nearbyint(v)); }  // default mode: ties to even
float half(float v) { return f16_to_f32(f32_to_f16(v)); }
void put_f16(std::vector<uint8_t>& out, float v) {
  const uint16_t h = f32_to_f16(v);
  out.push_back(static_cast<uint8_t>(h & 0xFF));
  out.push_back(static_cast<uint8_t>(h >> 8));
}

// Weighted fit of x ~ a * q + b, b <= 0, q in [0, top] (make_qkx2_quants, squared error).
struct ScaleMin { float scale, neg_min; std::vector<int> q; };
ScaleMin ref_scale_min(const float* x, const float* w, int n, int top, float rmin, float rdelta, int steps) {
  float lo = x[0], hi = x[0], sw = w[0], sx = w[0] * x[0];
  for (int i = 1; i < n; ++i) {
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
    sw += w[i];
    sx += w[i] * x[i];
  }
  if (lo > 0) lo = 0;
  ScaleMin r{0, -lo, std::vector<int>(n, 0)};
  if (hi == lo) return r;
  float inv = static_cast<float>(top) / (hi - lo);
  r.scale = 1 / inv;
  float best = 0;
  for (int i = 0; i < n; ++i) {
    r.q[i] = std::min(top, std::max(0, round_even(inv * (x[i] - lo))));
    const float e = r.scale * static_cast<float>(r.q[i]) + lo - x[i];
    best += w[i] * (e * e);
  }
  // The offset found so far takes part in the next candidates (as the reference's loop
  // updates its min in place).
  float m = lo;
  for (int s = 0; s <= steps; ++s) {
    inv = (rmin + rdelta * static_cast<float>(s) + static_cast<float>(top)) / (hi - m);
    std::vector<int> q(n);
    float sl = 0, sl2 = 0, sxl = 0;
    for (int i = 0; i < n; ++i) {
      q[i] = std::min(top, std::max(0, round_even(inv * (x[i] - m))));
      const float l = static_cast<float>(q[i]);
      sl += w[i] * l;
      sl2 += w[i] * l * l;
      sxl += w[i] * l * x[i];
    }
    const float det = sw * sl2 - sl * sl;
    if (!(det > 0)) continue;
    float a = (sw * sxl - sx * sl) / det, b = (sl2 * sx - sl * sxl) / det;
    if (b > 0) {
      b = 0;
      a = sxl / sl2;
    }
    float err = 0;
    for (int i = 0; i < n; ++i) {
      const float e = a * static_cast<float>(q[i]) + b - x[i];
      err += w[i] * (e * e);
    }
    if (err < best) {
      best = err;
      r.q = q;
      r.scale = a;
      m = b;
    }
  }
  r.neg_min = -m;
  return r;
}

// Q4_K (bits 4) and Q5_K (bits 5), one super-block of 256.
std::vector<uint8_t> ref_k_block(const float* x, int bits) {
  const int top = (1 << bits) - 1;
  std::vector<int> q(256);
  float sc[8], mn[8], max_sc = 0, max_mn = 0;
  for (int j = 0; j < 8; ++j) {
    const float* v = x + 32 * j;
    float s2 = 0;
    for (int l = 0; l < 32; ++l) s2 += v[l] * v[l];
    const float av = std::sqrt(s2 / 32);
    float w[32];
    for (int l = 0; l < 32; ++l) w[l] = av + std::fabs(v[l]);
    const ScaleMin f = bits == 4 ? ref_scale_min(v, w, 32, top, -1.0f, 0.1f, 20) : ref_scale_min(v, w, 32, top, -0.5f, 0.1f, 15);
    std::copy(f.q.begin(), f.q.end(), q.begin() + 32 * j);
    sc[j] = f.scale;
    mn[j] = f.neg_min;
    max_sc = std::max(max_sc, sc[j]);
    max_mn = std::max(max_mn, mn[j]);
  }
  int ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = std::min(63, round_even((max_sc > 0 ? 63.0f / max_sc : 0.0f) * sc[j]) & 0xFF);
    lm[j] = std::min(63, round_even((max_mn > 0 ? 63.0f / max_mn : 0.0f) * mn[j]) & 0xFF);
  }
  const float d = half(max_sc / 63.0f), dmin = half(max_mn / 63.0f);
  for (int j = 0; j < 8; ++j) {
    const float dj = d * static_cast<float>(ls[j]);
    if (dj == 0) continue;
    const float mj = dmin * static_cast<float>(lm[j]);
    for (int l = 0; l < 32; ++l) q[32 * j + l] = std::min(top, std::max(0, round_even((x[32 * j + l] + mj) / dj)));
  }
  std::vector<uint8_t> out;
  put_f16(out, max_sc / 63.0f);
  put_f16(out, max_mn / 63.0f);
  uint8_t packed[12];
  for (int j = 0; j < 4; ++j) {  // bytes 0-3: scales 0-3 and the top bits of scales 4-7, ...
    packed[j] = static_cast<uint8_t>(ls[j] | ((ls[j + 4] >> 4) << 6));
    packed[j + 4] = static_cast<uint8_t>(lm[j] | ((lm[j + 4] >> 4) << 6));
    packed[j + 8] = static_cast<uint8_t>((ls[j + 4] & 0xF) | ((lm[j + 4] & 0xF) << 4));
  }
  out.insert(out.end(), packed, packed + 12);
  if (bits == 5) {
    for (int l = 0; l < 32; ++l) {
      uint8_t h = 0;
      for (int s = 0; s < 8; ++s) h |= static_cast<uint8_t>(((q[32 * s + l] >> 4) & 1) << s);
      out.push_back(h);
    }
  }
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l)
      out.push_back(static_cast<uint8_t>((q[64 * c + l] & 0xF) | ((q[64 * c + 32 + l] & 0xF) << 4)));
  return out;
}

// Symmetric fit of 16 values, q in [-32, 31], weights x^2 (make_qx_quants, rmse_type 1).
float ref_symmetric(const float* x, int* q) {
  float amax = 0, max = 0;
  for (int i = 0; i < 16; ++i)
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  if (amax < 1e-15f) {
    std::fill(q, q + 16, -32);
    return 0;
  }
  auto fit = [&](float inv, int* out, float& sxl, float& sl2) {
    sxl = sl2 = 0;
    for (int i = 0; i < 16; ++i) {
      const int l = std::min(31, std::max(-32, round_even(inv * x[i])));
      if (out) out[i] = l;
      const float w = x[i] * x[i];
      sxl += w * x[i] * static_cast<float>(l);
      sl2 += w * static_cast<float>(l) * static_cast<float>(l);
    }
  };
  float sxl, sl2;
  fit(-32.0f / max, q, sxl, sl2);
  float scale = sl2 != 0 ? sxl / sl2 : 0.0f, best = scale * sxl;
  for (int s = -9; s <= 9; ++s) {
    if (s == 0) continue;
    const float inv = -(32.0f + 0.1f * static_cast<float>(s)) / max;
    fit(inv, nullptr, sxl, sl2);
    if (sl2 > 0 && sxl * sxl > best * sl2) {
      fit(inv, q, sxl, sl2);
      scale = sxl / sl2;
      best = scale * sxl;
    }
  }
  return scale;
}

std::vector<uint8_t> ref_q6_k_block(const float* x) {
  int q[256];
  float sc[16], max = 0, amax = 0;
  for (int g = 0; g < 16; ++g) {
    sc[g] = ref_symmetric(x + 16 * g, q + 16 * g);
    if (std::fabs(sc[g]) > amax) {
      amax = std::fabs(sc[g]);
      max = sc[g];
    }
  }
  std::vector<uint8_t> out(210, 0);
  if (amax < 1e-15f) return out;
  const float inv = -128.0f / max;
  int8_t s8[16];
  for (int g = 0; g < 16; ++g) s8[g] = static_cast<int8_t>(std::min(127, round_even(inv * sc[g])));
  const float d = half(1 / inv);
  for (int g = 0; g < 16; ++g) {
    const float dg = d * static_cast<float>(s8[g]);
    if (dg == 0) continue;
    for (int i = 0; i < 16; ++i) q[16 * g + i] = std::min(31, std::max(-32, round_even(x[16 * g + i] / dg)));
  }
  for (int i = 0; i < 256; ++i) {  // value i: half h, quarter k, lane l
    const int u = q[i] + 32, h = i / 128, k = (i % 128) / 32, l = i % 32;
    out[64 * h + l + (k & 1) * 32] |= static_cast<uint8_t>((u & 0xF) << ((k >> 1) * 4));
    out[128 + 32 * h + l] |= static_cast<uint8_t>((u >> 4) << (2 * k));
  }
  std::memcpy(out.data() + 192, s8, 16);
  const uint16_t hd = f32_to_f16(1 / inv);
  std::memcpy(out.data() + 208, &hd, 2);
  return out;
}

// Q5_0 / Q5_1 / Q4_1 blocks of 32 (the fallbacks of the K-quant mixes).
std::vector<uint8_t> ref_q5_0_block(const float* x) {
  float amax = 0, max = 0;
  for (int i = 0; i < 32; ++i)
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  const float d = max / -16, id = d != 0 ? 1 / d : 0;
  std::vector<uint8_t> out;
  put_f16(out, d);
  uint32_t qh = 0;
  uint8_t qs[16] = {};
  for (int i = 0; i < 32; ++i) {
    const int q = std::min(31, static_cast<int>(static_cast<int8_t>(x[i] * id + 16.5f)));
    qs[i % 16] |= static_cast<uint8_t>((q & 0xF) << (i < 16 ? 0 : 4));
    qh |= static_cast<uint32_t>(q >> 4) << i;
  }
  for (int b = 0; b < 4; ++b) out.push_back(static_cast<uint8_t>(qh >> (8 * b)));
  out.insert(out.end(), qs, qs + 16);
  return out;
}

std::vector<uint8_t> ref_affine_block(const float* x, int bits) {
  const float lo = *std::min_element(x, x + 32), hi = *std::max_element(x, x + 32);
  const float d = (hi - lo) / static_cast<float>((1 << bits) - 1), id = d != 0 ? 1 / d : 0;
  std::vector<uint8_t> out;
  put_f16(out, d);
  put_f16(out, lo);
  uint32_t qh = 0;
  uint8_t qs[16] = {};
  for (int i = 0; i < 32; ++i) {
    const float v = (x[i] - lo) * id + 0.5f;
    const int q = bits == 4 ? std::min(15, static_cast<int>(static_cast<int8_t>(v))) : static_cast<int>(static_cast<uint8_t>(v));
    qs[i % 16] |= static_cast<uint8_t>((q & 0xF) << (i < 16 ? 0 : 4));
    qh |= static_cast<uint32_t>((q >> 4) & 1) << i;
  }
  if (bits == 5)
    for (int b = 0; b < 4; ++b) out.push_back(static_cast<uint8_t>(qh >> (8 * b)));
  out.insert(out.end(), qs, qs + 16);
  return out;
}

// --- the tests -----------------------------------------------------------------------------

// Rows of 1024 values: gaussian, with a zero block, a constant block, an outlier, all
// positive and all negative stretches.
std::vector<float> hard_row(uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 0.02f);
  std::vector<float> x(1024);
  for (float& v : x) v = g(rng);
  std::fill(x.begin() + 256, x.begin() + 288, 0.0f);  // a zero block of 32
  std::fill(x.begin() + 320, x.begin() + 336, 0.125f);  // constant
  x[700] = 1.5f;                                        // outlier
  for (int i = 768; i < 832; ++i) x[i] = std::fabs(x[i]) + 0.01f;
  for (int i = 832; i < 896; ++i) x[i] = -std::fabs(x[i]) - 0.01f;
  return x;
}

std::vector<uint8_t> ferrum_row(GgmlType t, const std::vector<float>& x) {
  std::vector<uint8_t> out(ggml_row_bytes(t, static_cast<int64_t>(x.size())));
  quantize_row(t, x.data(), out.data(), static_cast<int64_t>(x.size()));
  return out;
}

std::vector<uint8_t> reference_row(GgmlType t, const std::vector<float>& x) {
  std::vector<uint8_t> out;
  const int block = t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q6_K ? 256 : 32;
  for (size_t b = 0; b < x.size(); b += block) {
    const float* v = x.data() + b;
    std::vector<uint8_t> blk = t == GgmlType::Q4_K   ? ref_k_block(v, 4)
                               : t == GgmlType::Q5_K ? ref_k_block(v, 5)
                               : t == GgmlType::Q6_K ? ref_q6_k_block(v)
                               : t == GgmlType::Q5_0 ? ref_q5_0_block(v)
                               : t == GgmlType::Q5_1 ? ref_affine_block(v, 5)
                                                     : ref_affine_block(v, 4);
    out.insert(out.end(), blk.begin(), blk.end());
  }
  return out;
}

class GgufQuantize : public ::testing::TestWithParam<GgmlType> {};

TEST_P(GgufQuantize, MatchesAnIndependentReferenceByteForByte) {
  const GgmlType t = GetParam();
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::vector<float> x = hard_row(seed);
    if (seed % 4 == 0)
      for (float& v : x) v *= 1000.0f;  // large magnitudes
    const std::vector<uint8_t> got = ferrum_row(t, x), want = reference_row(t, x);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(got[i], want[i]) << ggml_type_name(t) << " seed " << seed << " byte " << i;
  }
}

TEST_P(GgufQuantize, RoundTripErrorIsSmall) {
  const GgmlType t = GetParam();
  const std::vector<float> x = hard_row(99);
  std::vector<float> y(x.size());
  dequantize_row(t, ferrum_row(t, x).data(), y.data(), static_cast<int64_t>(x.size()));
  double err = 0, norm = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err += (x[i] - y[i]) * (x[i] - y[i]);
    norm += x[i] * x[i];
  }
  // Relative RMS error: about 2^-bits of the range per value, well under these.
  const double bound = t == GgmlType::Q6_K ? 0.05 : t == GgmlType::Q5_K || t == GgmlType::Q5_0 || t == GgmlType::Q5_1 ? 0.08 : 0.15;
  EXPECT_LT(std::sqrt(err / norm), bound) << ggml_type_name(t);
  EXPECT_EQ(y[256], 0.0f) << "a zero block stays zero";
}

INSTANTIATE_TEST_SUITE_P(Types, GgufQuantize,
                         ::testing::Values(GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q5_0,
                                           GgmlType::Q5_1, GgmlType::Q4_1),
                         [](const auto& info) { return std::string(ggml_type_name(info.param)); });

// The tensor names of a 28-layer decoder (Qwen3-0.6B's depth) in file order.
std::vector<std::string> decoder_names(int layers, bool tied) {
  std::vector<std::string> n = {"token_embd.weight", "output_norm.weight"};
  if (!tied) n.push_back("output.weight");
  for (int l = 0; l < layers; ++l)
    for (const char* t : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                          "ffn_down"})
      n.push_back("blk." + std::to_string(l) + "." + t + ".weight");
  return n;
}

TEST(GgufMix, Q4_K_MGivesSixBitsWhereLlamaCppDoes) {
  const auto names = decoder_names(28, /*tied=*/true);
  GgufQuantMix mix(*gguf_file_type("Q4_K_M"), names);
  std::vector<int> v6, down6;
  for (const std::string& n : names) {
    const bool vec = n.find("norm") != std::string::npos;
    const GgmlType t = mix.type_of(n, vec ? std::vector<int64_t>{1024} : std::vector<int64_t>{1024, 3072});
    if (vec) {
      EXPECT_EQ(t, GgmlType::F32) << n;
      continue;
    }
    const int layer = n.rfind("blk.", 0) == 0 ? std::stoi(n.substr(4)) : -1;
    if (n == "token_embd.weight") EXPECT_EQ(t, GgmlType::Q6_K) << "tied embeddings are the output";
    else if (n.find("attn_v") != std::string::npos && t == GgmlType::Q6_K) v6.push_back(layer);
    else if (n.find("ffn_down") != std::string::npos && t == GgmlType::Q6_K) down6.push_back(layer);
    else EXPECT_EQ(t, GgmlType::Q4_K) << n;
  }
  // The first and last eighth of the layers and every third between (use_more_bits).
  const std::vector<int> want = {0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27};
  EXPECT_EQ(v6, want);
  EXPECT_EQ(down6, want);
}

TEST(GgufMix, UntiedOutputFallbacksAndPlainTypes) {
  const auto names = decoder_names(4, /*tied=*/false);
  GgufQuantMix q5(*gguf_file_type("Q5_K_M"), names);
  EXPECT_EQ(q5.type_of("token_embd.weight", {512, 1000}), GgmlType::Q5_K);
  EXPECT_EQ(q5.type_of("output.weight", {512, 1000}), GgmlType::Q6_K);
  EXPECT_EQ(q5.type_of("blk.0.attn_q.weight", {96, 96}), GgmlType::Q5_1) << "rows of 96: the 32-value fallback";
  EXPECT_EQ(q5.type_of("blk.0.attn_k.weight", {80, 96}), GgmlType::F16) << "rows of 80: no block fits";
  EXPECT_EQ(q5.fallbacks(), 2);
  GgufQuantMix q4(*gguf_file_type("Q4_K_M"), names);
  EXPECT_EQ(q4.type_of("output.weight", {96, 1000}), GgmlType::Q8_0) << "an output of odd rows gets Q8_0";
  EXPECT_EQ(q4.type_of("blk.0.ffn_up.weight", {96, 64}), GgmlType::Q5_0);
  GgufQuantMix q6(*gguf_file_type("Q6_K"), names);
  EXPECT_EQ(q6.type_of("blk.1.ffn_up.weight", {96, 64}), GgmlType::Q8_0);
  EXPECT_EQ(q6.type_of("blk.1.ffn_down.weight", {256, 64}), GgmlType::Q6_K);
  GgufQuantMix q8(*gguf_file_type("Q8_0"), names);
  EXPECT_EQ(q8.type_of("output.weight", {512, 1000}), GgmlType::Q8_0);
  GgufQuantMix q40(*gguf_file_type("Q4_0"), names);
  EXPECT_EQ(q40.type_of("output.weight", {512, 1000}), GgmlType::Q6_K) << "llama.cpp's Q4_0 files keep a Q6_K output";
  GgufQuantMix f16(*gguf_file_type("F16"), names);
  EXPECT_EQ(f16.type_of("blk.0.attn_q.weight", {80, 96}), GgmlType::F16);
  EXPECT_EQ(f16.type_of("blk.0.attn_norm.weight", {80}), GgmlType::F32);
  EXPECT_FALSE(gguf_file_type("Q3_K_M"));
}

}  // namespace
}  // namespace ferrum
