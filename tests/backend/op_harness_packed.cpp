#include "op_harness_packed.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "core/dtype.h"
#include "core/error.h"

namespace ferrum::op_harness {
namespace {

constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};  // nibble i holds column 8j + kAwqOrder[i]

Tensor host_tensor(Backend& host, std::initializer_list<int64_t> shape, DType dtype) { return host.alloc(shape, dtype); }

// E4M3 from its fields: subnormals m / 8 * 2^-6, normals (1 + m / 8) * 2^(e - 7).
double e4m3(uint8_t c) {
  const int e = (c >> 3) & 15, m = c & 7;
  const double mag = e == 0 ? m / 8.0 * std::pow(2.0, -6) : (1 + m / 8.0) * std::pow(2.0, e - 7);
  return c & 0x80 ? -mag : mag;
}

int64_t int4_group(const LinearPart& p, int64_t K) { return p.quant.group_size <= 0 ? K : p.quant.group_size; }

}  // namespace

bool has_packed_variant(WeightFormat f, int variant) {
  return variant >= 0 && variant < (f == WeightFormat::Gptq ? 4 : f == WeightFormat::Awq ? 2 : 3);
}

void make_packed_part(Backend& host, WeightFormat f, int variant, int64_t K, float w_scale, uint64_t seed,
                      LinearPart& p) {
  std::mt19937_64 rng(seed);
  const int64_t N = p.rows;
  p.format = f;
  if (f == WeightFormat::Fp8) {
    p.weight = host_tensor(host, {N, K}, DType::F8E4M3);
    for (int64_t i = 0; i < N * K; ++i) {  // exponents 0..7: magnitudes below 1
      const uint64_t r = rng();
      p.weight.ptr<uint8_t>()[i] = static_cast<uint8_t>((r & 0x80) | ((r >> 8) % 8) << 3 | ((r >> 16) & 7));
    }
    Tensor s = variant == 0   ? host_tensor(host, {1}, DType::F32)
               : variant == 1 ? host_tensor(host, {N, 1}, DType::F32)
                              : host_tensor(host, {(N + 31) / 32, (K + 63) / 64}, DType::F32);
    std::uniform_real_distribution<float> u(0.5f, 1.0f);
    for (int64_t i = 0; i < s.numel(); ++i) s.ptr<float>()[i] = w_scale * u(rng);
    if (variant == 2) p.quant.fp8_block[0] = 32, p.quant.fp8_block[1] = 64;
    p.extra = {s};
    return;
  }
  const bool gptq = f == WeightFormat::Gptq;
  FERRUM_CHECK(gptq || f == WeightFormat::Awq, "make_packed_part: {}", weight_format_name(f));
  const int bits = gptq && variant == 3 ? 8 : 4, per = 32 / bits;
  const uint32_t levels = 1u << bits;
  FERRUM_CHECK(N % 8 == 0, "make_packed_part: {} rows", N);
  const int64_t G = gptq ? (variant == 0 || variant == 3 ? 32 : variant == 1 ? K : 64) : (variant == 0 ? 32 : 64);
  const int64_t groups = K / G;
  p.quant.bits = bits;
  p.quant.group_size = gptq && variant == 1 ? -1 : G;
  p.quant.zeros_plus_one = gptq && (variant == 0 || variant == 3);
  std::vector<int32_t> g_idx(K);
  for (int64_t k = 0; k < K; ++k) g_idx[k] = static_cast<int32_t>(k / G);
  if (gptq && (variant == 0 || variant == 3)) {  // act order: feature order[r] is in group r / G
    std::vector<int32_t> order(K);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    for (int64_t r = 0; r < K; ++r) g_idx[order[r]] = static_cast<int32_t>(r / G);
  }
  std::vector<uint32_t> q(N * K), z(groups * N);  // q[n][k], z[g][n] (true zero points)
  for (auto& v : q) v = static_cast<uint32_t>(rng() % levels);
  for (auto& v : z) v = static_cast<uint32_t>(p.quant.zeros_plus_one ? 1 + rng() % (levels - 1) : rng() % levels);
  Tensor scales = host_tensor(host, {groups, N}, DType::F16);
  std::uniform_real_distribution<float> u(0.5f, 1.0f);
  for (int64_t i = 0; i < groups * N; ++i) scales.ptr<uint16_t>()[i] = f32_to_f16(w_scale / (levels / 2) * u(rng));
  Tensor qweight = gptq ? host_tensor(host, {K / per, N}, DType::I32) : host_tensor(host, {K, N / 8}, DType::I32);
  Tensor qzeros = host_tensor(host, {groups, N / per}, DType::I32);
  auto* qw = qweight.ptr<uint32_t>();
  auto* qz = qzeros.ptr<uint32_t>();
  std::fill(qw, qw + qweight.numel(), 0u);
  std::fill(qz, qz + qzeros.numel(), 0u);
  if (gptq)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) qw[(k / per) * N + n] |= q[n * K + k] << (bits * (k % per));
  auto awq_pack = [&](uint32_t* out, int64_t rows, auto value) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < N / 8; ++j)
        for (int i = 0; i < 8; ++i) out[r * (N / 8) + j] |= static_cast<uint32_t>(value(r, 8 * j + kAwqOrder[i])) << (4 * i);
  };
  if (!gptq) awq_pack(qw, K, [&](int64_t k, int64_t n) { return q[n * K + k]; });
  if (gptq) {
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t n = 0; n < N; ++n) {
        const uint32_t stored = p.quant.zeros_plus_one ? (z[g * N + n] - 1u) & (levels - 1) : z[g * N + n];
        qz[g * (N / per) + n / per] |= stored << (bits * (n % per));
      }
  } else {
    awq_pack(qz, groups, [&](int64_t g, int64_t n) { return z[g * N + n]; });
  }
  p.weight = qweight;
  p.extra = {qzeros, scales};
  if (gptq && variant != 1) {
    Tensor gi = host_tensor(host, {K}, DType::I32);
    std::copy(g_idx.begin(), g_idx.end(), gi.ptr<int32_t>());
    p.extra.push_back(gi);
  }
}

Values packed_values(const LinearPart& p, int64_t K) {
  const int64_t N = p.rows;
  Values v(static_cast<size_t>(N * K));
  if (p.format == WeightFormat::Fp8) {
    const Tensor& s = p.extra[0];
    const int64_t br = p.quant.fp8_block[0], bc = p.quant.fp8_block[1];
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) {
        const int64_t si = br > 0 ? (n / br) * s.dim(1) + k / bc : s.numel() == 1 ? 0 : n;
        v[n * K + k] = e4m3(p.weight.ptr<uint8_t>()[n * K + k]) * s.ptr<float>()[si];
      }
    return v;
  }
  const bool gptq = p.format == WeightFormat::Gptq;
  const int64_t G = int4_group(p, K);
  const int bits = gptq ? p.quant.bits : 4, per = 32 / bits;
  const uint32_t mask = (1u << bits) - 1;
  const uint32_t* qw = p.weight.ptr<uint32_t>();
  const uint32_t* qz = p.extra[0].ptr<uint32_t>();
  const uint16_t* sc = p.extra[1].ptr<uint16_t>();
  auto awq_nibble = [](uint32_t word, int64_t n) {
    for (int i = 0; i < 8; ++i)
      if (kAwqOrder[i] == n % 8) return (word >> (4 * i)) & 15u;
    return 0u;
  };
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      const int64_t g = p.extra.size() == 3 ? p.extra[2].ptr<int32_t>()[k] : k / G;
      const uint32_t q = gptq ? (qw[(k / per) * N + n] >> (bits * (k % per))) & mask : awq_nibble(qw[k * (N / 8) + n / 8], n);
      const uint32_t zs = gptq ? (qz[g * (N / per) + n / per] >> (bits * (n % per))) & mask
                               : awq_nibble(qz[g * (N / 8) + n / 8], n);
      const double z = static_cast<double>(zs) + (p.quant.zeros_plus_one ? 1 : 0);
      v[n * K + k] = static_cast<double>(f16_to_f32(sc[g * N + n])) * (static_cast<double>(q) - z);
    }
  return v;
}

}  // namespace ferrum::op_harness
