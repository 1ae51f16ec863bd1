#include "backend/quant_pack.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "backend/dummy_fill.h"
#include "backend/splitmix.h"
#include "core/error.h"

namespace ferrum {
namespace {

// Which nibble of an AWQ int32 holds output column 8j + c (the inverse of AWQ's packing
// order 0, 2, 4, 6, 1, 3, 5, 7).
constexpr int kAwqNibble[8] = {0, 4, 1, 5, 2, 6, 3, 7};

void expect_shape(const Tensor& t, std::initializer_list<int64_t> shape, std::initializer_list<DType> dtypes,
                  const std::string& layer, const std::string& what) {
  bool ok = t.ndim == static_cast<int>(shape.size());
  int i = 0;
  for (int64_t d : shape) ok = ok && t.shape[i++] == d;
  if (!ok || std::find(dtypes.begin(), dtypes.end(), t.dtype) == dtypes.end()) {
    std::string want = "[";
    for (int64_t d : shape) want += (want.size() > 1 ? ", " : "") + std::to_string(d);
    fail("layer '{}': {} is {} {}, expected {}] ({})", layer, what, dtype_name(t.dtype), t.shape_str(), want,
         dtype_name(*dtypes.begin()));
  }
  FERRUM_CHECK(t.device == Device::CPU, "layer '{}': {} is not in host memory", layer, what);
}

float scalar(const Tensor& t, int64_t i) { return to_f32(t.data, t.dtype, i); }

inline void set_nibble(uint8_t* row, int64_t i, int v) {
  uint8_t& b = row[i / 32 * 16 + i % 16];
  b = i % 32 < 16 ? static_cast<uint8_t>((b & 0xf0) | v) : static_cast<uint8_t>((b & 0x0f) | (v << 4));
}

// The stored order of input features: sorted by group (stable), each group exactly `group`
// features; empty when g_idx is the identity's k / group.
std::vector<int32_t> act_order(const Tensor* g_idx, int64_t K, int64_t group, const std::string& layer) {
  if (!g_idx) return {};
  const int32_t* g = g_idx->ptr<int32_t>();
  bool trivial = true;
  for (int64_t k = 0; k < K; ++k) {
    if (g[k] < 0 || g[k] >= K / group) fail("layer '{}': g_idx[{}] = {} is not a group of {}", layer, k, g[k], K / group);
    trivial &= g[k] == k / group;
  }
  if (trivial) return {};
  std::vector<int32_t> perm(K);
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return g[a] < g[b]; });
  for (int64_t i = 0; i < K; ++i)
    if (g[perm[i]] != i / group)
      fail("layer '{}': g_idx puts {} features in group {} (every group needs exactly {})", layer,
           std::count(g, g + K, g[perm[i]]), g[perm[i]], group);
  return perm;
}

}  // namespace

PackedInt pack_int(const LinearPart& p, int64_t K, const std::string& layer) {
  const bool gptq = p.format == WeightFormat::Gptq;
  FERRUM_CHECK(gptq || p.format == WeightFormat::Awq, "pack_int: {} is not GPTQ or AWQ", weight_format_name(p.format));
  const int bits = gptq ? p.quant.bits : 4;
  if (bits != 4 && bits != 8) fail("layer '{}': {} with {} bits is not supported (4 or 8)", layer, weight_format_name(p.format), bits);
  const int64_t per = 32 / bits, mask = (1 << bits) - 1;  // values per int32
  const int64_t N = p.rows;
  const int64_t G = p.quant.group_size <= 0 ? K : p.quant.group_size;
  if (G % 32 != 0 || K % G != 0)
    fail("layer '{}': {} group size {} must be a multiple of 32 that divides the {} input features", layer,
         weight_format_name(p.format), p.quant.group_size, K);
  if (N % per != 0)
    fail("layer '{}': {} needs output features in multiples of {}, not {}", layer, weight_format_name(p.format), per, N);
  if (p.extra.size() != 2 && !(gptq && p.extra.size() == 3))
    fail("layer '{}': {} needs qzeros and scales{}", layer, weight_format_name(p.format), gptq ? " (and g_idx)" : "");
  const Tensor& qw = p.weight;
  const Tensor &qz = p.extra[0], &sc = p.extra[1];
  const int64_t groups = K / G;
  const auto floats = {DType::F16, DType::BF16, DType::F32};
  if (gptq) expect_shape(qw, {K / per, N}, {DType::I32}, layer, "qweight");
  else expect_shape(qw, {K, N / 8}, {DType::I32}, layer, "qweight");
  expect_shape(qz, {groups, N / per}, {DType::I32}, layer, "qzeros");
  expect_shape(sc, {groups, N}, floats, layer, "scales");
  const Tensor* g_idx = p.extra.size() == 3 ? &p.extra[2] : nullptr;
  if (g_idx) expect_shape(*g_idx, {K}, {DType::I32}, layer, "g_idx");

  PackedInt w;
  w.bits = bits;
  w.rows = N;
  w.cols = K;
  w.group = G;
  w.perm = act_order(g_idx, K, G, layer);
  w.qs.assign(static_cast<size_t>(N * K * bits / 8), 0);
  w.scales.resize(static_cast<size_t>(N * groups));
  w.zeros.resize(static_cast<size_t>(N * groups));
  const uint32_t* q = qw.ptr<uint32_t>();
  const uint32_t* z = qz.ptr<uint32_t>();
  // Column n's value in a packed int32 of a row of output columns (GPTQ in order; AWQ in its order).
  auto column_value = [&](uint32_t word, int64_t n) {
    return (word >> (bits * (gptq ? n % per : kAwqNibble[n % 8]))) & mask;
  };
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t n = 0; n < N; ++n) {
      w.scales[n * groups + g] = scalar(sc, g * N + n);
      w.zeros[n * groups + g] = static_cast<uint16_t>(column_value(z[g * (N / per) + n / per], n) + (p.quant.zeros_plus_one ? 1 : 0));
    }
  for (int64_t n = 0; n < N; ++n) {
    uint8_t* row = w.qs.data() + n * (K * bits / 8);
    for (int64_t i = 0; i < K; ++i) {
      const int64_t k = w.perm.empty() ? i : w.perm[i];
      const uint32_t v = gptq ? (q[(k / per) * N + n] >> (bits * (k % per))) & mask : column_value(q[k * (N / 8) + n / 8], n);
      if (bits == 8) row[i] = static_cast<uint8_t>(v);
      else set_nibble(row, i, static_cast<int>(v));
    }
  }
  return w;
}

PackedFp8 pack_fp8(const LinearPart& p, int64_t K, const std::string& layer) {
  FERRUM_CHECK(p.format == WeightFormat::Fp8, "pack_fp8: {} is not FP8", weight_format_name(p.format));
  const int64_t N = p.rows;
  const Tensor& t = p.weight;
  PackedFp8 w;
  w.rows = N;
  w.cols = K;
  if (t.dtype != DType::F8E4M3) {  // a dense weight: quantize per output row
    expect_shape(t, {N, K}, {DType::BF16, DType::F16, DType::F32}, layer, "the weight to quantize to FP8");
    if (!p.extra.empty()) fail("layer '{}': a dense weight to quantize to FP8 takes no scales", layer);
    w.block_rows = 1;
    w.block_cols = K;
    w.q.resize(static_cast<size_t>(N * K));
    w.scales.resize(static_cast<size_t>(N));
    for (int64_t n = 0; n < N; ++n) {
      float amax = 0;
      for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(to_f32(t.data, t.dtype, n * K + k)));
      const float s = amax > 0 ? amax / 448.0f : 1.0f;
      w.scales[n] = s;
      for (int64_t k = 0; k < K; ++k) w.q[n * K + k] = f32_to_fp8_e4m3(to_f32(t.data, t.dtype, n * K + k) / s);
    }
    return w;
  }
  expect_shape(t, {N, K}, {DType::F8E4M3}, layer, "weight");
  if (p.extra.size() != 1) fail("layer '{}': FP8 weights need one scale tensor (weight_scale or weight_scale_inv)", layer);
  const Tensor& sc = p.extra[0];
  const int64_t br = p.quant.fp8_block[0], bc = p.quant.fp8_block[1];
  if (br > 0 && bc > 0) {
    w.block_rows = br;
    w.block_cols = bc;
    expect_shape(sc, {(N + br - 1) / br, (K + bc - 1) / bc}, {DType::F32, DType::BF16, DType::F16}, layer,
                 "weight_scale_inv (one per block of weight_block_size)");
  } else if (sc.numel() == 1) {
    w.block_rows = N;
    w.block_cols = K;
  } else if (sc.numel() == N && (sc.ndim == 1 || (sc.ndim == 2 && sc.dim(1) == 1))) {
    w.block_rows = 1;
    w.block_cols = K;
  } else {
    fail("layer '{}': FP8 weight_scale is {} {}: expected one value, one per output row ({}), or blocks with "
         "weight_block_size", layer, dtype_name(sc.dtype), sc.shape_str(), N);
  }
  FERRUM_CHECK(sc.device == Device::CPU, "layer '{}': FP8 scales are not in host memory", layer);
  w.scales.resize(static_cast<size_t>(sc.numel()));
  for (int64_t i = 0; i < sc.numel(); ++i) w.scales[i] = scalar(sc, i);
  const uint8_t* src = t.ptr<uint8_t>();
  w.q.assign(src, src + N * K);
  return w;
}

PackedInt int_weight(const LinearSpec& spec, const LinearPart& p) {
  return spec.dummy ? random_int(p.rows, spec.in_features, p.quant.group_size, dummy_seed(p.name.c_str()))
                    : pack_int(p, spec.in_features, spec.name);
}

PackedFp8 fp8_weight(const LinearSpec& spec, const LinearPart& p) {
  return spec.dummy ? random_fp8(p.rows, spec.in_features, dummy_seed(p.name.c_str()))
                    : pack_fp8(p, spec.in_features, spec.name);
}

namespace {
std::string expert_label(const LinearSpec& spec, const LinearPart& p, int64_t e) {
  return fmt::format("{}, expert {} of '{}'", spec.name, e, p.name);
}
}  // namespace

PackedInt expert_int_weight(const LinearSpec& spec, const LinearPart& grouped, int64_t e) {
  const LinearPart p = expert_part(grouped, e);
  return spec.dummy ? int_weight(spec, p) : pack_int(p, spec.in_features, expert_label(spec, grouped, e));
}

PackedFp8 expert_fp8_weight(const LinearSpec& spec, const LinearPart& grouped, int64_t e) {
  const LinearPart p = expert_part(grouped, e);
  return spec.dummy ? fp8_weight(spec, p) : pack_fp8(p, spec.in_features, expert_label(spec, grouped, e));
}

PackedInt random_int(int64_t rows, int64_t cols, int64_t group, uint64_t seed) {
  PackedInt w;
  w.rows = rows;
  w.cols = cols;
  w.group = group <= 0 ? cols : group;
  w.qs.resize(static_cast<size_t>(rows * cols / 2));
  for (size_t i = 0; i < w.qs.size(); i += 8) {
    const uint64_t r = splitmix64_mix(seed + (i + 1) * kGoldenGamma);
    for (size_t b = 0; b < 8 && i + b < w.qs.size(); ++b) w.qs[i + b] = static_cast<uint8_t>(r >> (8 * b));
  }
  // Uniform nibbles around zero 8 give values in about +-0.05 (dummy_fill.h's range).
  w.scales.assign(static_cast<size_t>(rows * w.groups()), 0.05f / 8);
  w.zeros.assign(static_cast<size_t>(rows * w.groups()), 8);
  return w;
}

PackedFp8 random_fp8(int64_t rows, int64_t cols, uint64_t seed) {
  PackedFp8 w;
  w.rows = rows;
  w.cols = cols;
  w.block_rows = 1;
  w.block_cols = cols;
  w.q.resize(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < w.q.size(); i += 8) {
    const uint64_t r = splitmix64_mix(seed + (i + 1) * kGoldenGamma);
    for (size_t b = 0; b < 8 && i + b < w.q.size(); ++b) {
      const uint8_t v = static_cast<uint8_t>(r >> (8 * b));
      w.q[i + b] = (v & 0x7f) == 0x7f ? 0 : v;  // no NaNs
    }
  }
  w.scales.assign(static_cast<size_t>(rows), 0.05f / 448);
  return w;
}

void int_row(const PackedInt& w, int64_t n, float* out) {
  const uint8_t* row = w.qs.data() + n * (w.cols * w.bits / 8);
  const int64_t groups = w.groups();
  thread_local std::vector<float> stored;  // act order: values in stored order, then scattered
  float* dst = out;
  if (!w.perm.empty()) {
    stored.resize(static_cast<size_t>(w.cols));
    dst = stored.data();
  }
  for (int64_t c = 0; c < w.cols / 32; ++c, dst += 32) {  // 32 values at a time: one scale and zero
    const int64_t g = n * groups + c * 32 / w.group;
    const float s = w.scales[g];
    const int z = w.zeros[g];
    if (w.bits == 8) {
      const uint8_t* q = row + c * 32;
      for (int i = 0; i < 32; ++i) dst[i] = s * static_cast<float>(q[i] - z);
      continue;
    }
    const uint8_t* q = row + c * 16;
    for (int i = 0; i < 16; ++i) {
      dst[i] = s * static_cast<float>((q[i] & 15) - z);
      dst[i + 16] = s * static_cast<float>((q[i] >> 4) - z);
    }
  }
  if (!w.perm.empty())
    for (int64_t i = 0; i < w.cols; ++i) out[w.perm[i]] = stored[i];
}

void fp8_round_rows(float* x, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * cols;
    float m = 0.0f;
    for (int64_t i = 0; i < cols; ++i) m = std::max(m, std::fabs(row[i]));
    const float s = m > 0.0f ? m / 448.0f : 1.0f;
    for (int64_t i = 0; i < cols; ++i) row[i] = fp8_e4m3_to_f32(f32_to_fp8_e4m3(row[i] / s)) * s;
  }
}

void fp8_row(const PackedFp8& w, int64_t n, float* out) {
  const float* s = w.scales.data() + (n / w.block_rows) * w.scale_cols();
  const uint8_t* q = w.q.data() + n * w.cols;
  static const std::vector<float> table = [] {
    std::vector<float> t(256);
    for (int v = 0; v < 256; ++v) t[v] = fp8_e4m3_to_f32(static_cast<uint8_t>(v));
    return t;
  }();
  for (int64_t k0 = 0; k0 < w.cols; k0 += w.block_cols) {  // one scale per block of columns
    const float scale = s[k0 / w.block_cols];
    const int64_t k1 = std::min(w.cols, k0 + w.block_cols);
    for (int64_t k = k0; k < k1; ++k) out[k] = table[q[k]] * scale;
  }
}

}  // namespace ferrum
